//! The `video` partitioner: probes the upload (rejecting what is not decodable video), records
//! its facts, splits the video stream into chunks — at source keyframes by stream copy when they
//! allow the wanted chunk length, otherwise frame-exactly through a lossless intermediate — and
//! extracts the first audio stream as one more chunk, encoded once for the whole file.

use super::container;
use super::cost;
use super::params::{AudioCodec, Container, VideoCodec, WATERMARK_FILE};
use super::probe::{self, Facts};
use super::retime::Retime;
use super::stills;
use super::{VideoParams, progress_frames, readable, scratch, tool, tool_with_complaints};
use crate::apps::plugin::{
    InputSize, PartitionError, Partitioner, Plan, Split, Workload, refuse_other_options,
};
use async_trait::async_trait;
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use idlegrid_domain::Requirements;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, NewTask};
use serde_json::json;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// The video partitioner.
pub struct VideoPartitioner;

/// The chunk length the customer fixed, if any.
fn chunk_seconds(options: &serde_json::Value) -> Result<Option<f64>, String> {
    match options.get("seconds") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(s) if (1.0..=600.0).contains(&s) => Ok(Some(s)),
            _ => Err(format!("chunk_seconds must be from 1 to 600, got {v}")),
        },
    }
}

/// A chunk cut at keyframes is too long when it holds more than twice the target: the
/// source's keyframes are too sparse for the chunk length asked for.
fn too_long(frames: u64, fps: f64, target: f64) -> bool {
    fps > 0.0 && frames as f64 / fps > 2.0 * target + 1e-6
}

fn rejected(e: String) -> PartitionError {
    PartitionError::Rejected(e)
}

/// The job's input, fetched into a fresh scratch directory (kept while the returned directory
/// lives), with what probing it found.
async fn probed_input(
    job: &JobRecord,
    blobs: &dyn BlobStore,
) -> Result<(tempfile::TempDir, PathBuf, Facts), PartitionError> {
    let input = job
        .input
        .as_ref()
        .ok_or_else(|| rejected("the job has no input".into()))?;
    let dir = scratch()?;
    let source = readable(blobs, &input.key, &dir.path().join("source")).await?;
    let facts = probe::probe(&source).await.map_err(rejected)?;
    Ok((dir, source, facts))
}

fn list_chunks(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut chunks: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("splitting produced no chunks: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mkv"))
        .collect();
    chunks.sort();
    Ok(chunks)
}

/// FFmpeg's arguments writing the source's first video stream, passed through `codec`, as
/// Matroska chunk files named by `pattern`, cut by the segment muxer every `seconds` (at the
/// first keyframe after each multiple), listed in `list` (`name,start,end` lines, each written
/// as its chunk ends).
fn segment_args<'a>(
    src: &'a str,
    codec: &[&'a str],
    seconds: &'a str,
    pattern: &'a str,
    list: &'a str,
) -> Vec<&'a str> {
    let mut args = vec![
        "-nostdin", "-v", "error", "-i", src, "-map", "0:v:0", "-an", "-sn", "-dn",
    ];
    args.extend(codec);
    args.extend([
        "-f",
        "segment",
        "-segment_time",
        seconds,
        "-reset_timestamps",
        "1",
        "-segment_format",
        "matroska",
        "-segment_list",
        list,
        "-segment_list_type",
        "csv",
        pattern,
    ]);
    args
}

/// Runs the segment muxer ([`segment_args`]) to its end. A source that ends early or breaks
/// off is refused as damaged.
async fn segment(
    src: &str,
    codec: &[&str],
    seconds: &str,
    pattern: &str,
    list: &str,
) -> Result<(), String> {
    let args = segment_args(src, codec, seconds, pattern, list);
    let (_, complaints) = tool_with_complaints("ffmpeg", &args).await?;
    match super::damage(&complaints) {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

/// The size of the PNG `image`, written to `path` and read by FFprobe; the error says it is
/// not a picture FFmpeg reads.
async fn image_size(path: &Path, image: &[u8]) -> Result<(u32, u32), String> {
    tokio::fs::write(path, image)
        .await
        .map_err(|e| format!("writing the watermark failed: {e}"))?;
    let file = path.to_string_lossy();
    let size = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-f",
            "png_pipe",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
            &file,
        ],
    )
    .await
    .ok()
    .and_then(|out| {
        let (w, h) = out.trim().split_once(',')?;
        Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?))
    });
    match size {
        Some((w, h)) if (1..=4096).contains(&w) && (1..=4096).contains(&h) => Ok((w, h)),
        _ => Err(
            "the watermark is not a PNG picture FFmpeg can read (at most 4096 pixels a side)"
                .into(),
        ),
    }
}

/// One chunk file of the split.
#[derive(Debug)]
struct Chunk {
    /// The chunk file.
    path: PathBuf,
    /// Frames that decode from it.
    frames: u64,
    /// For a chunk that holds more than its frames (it starts at the keyframe before them and
    /// ends past them): its frames' times on the source's clock, from the first to before the
    /// next chunk's first (`None`: to the end). The device decodes the file and keeps those.
    span: Option<(f64, Option<f64>)>,
    /// When its first frame is shown, on the source's clock (its place in the output: the
    /// chunks' encodes start at 0).
    start: Option<f64>,
    /// The frame rate its device makes its `frames` at, from its frames of `span`.
    retime: Option<Retime>,
}

impl Chunk {
    /// A chunk that decodes to its `frames` on its own, placed at `start` when known.
    fn cut(path: PathBuf, frames: u64, start: Option<f64>) -> Chunk {
        Chunk {
            path,
            frames,
            span: None,
            start,
            retime: None,
        }
    }
}

/// Each segment's start time from the segment muxer's CSV list (`name,start,end`), in order.
fn segment_starts(list: &Path) -> Vec<f64> {
    std::fs::read_to_string(list)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(',').nth(1)?.trim().parse::<f64>().ok())
        .collect()
}

/// Decodes a chunk in full and returns the frames that decode from it.
async fn decoded_frames(path: PathBuf) -> Result<Chunk, String> {
    let input = path.to_string_lossy();
    // One decoding thread: chunks are decoded side by side, and threads cost CPU.
    let args = [
        "-nostdin",
        "-v",
        "error",
        "-threads",
        "1",
        "-i",
        &input,
        "-map",
        "0:v:0",
        "-f",
        "null",
        "-",
        "-progress",
        "pipe:1",
    ];
    let progress = tool("ffmpeg", &args).await?;
    let frames = progress_frames(&progress)
        .ok_or_else(|| format!("FFmpeg did not say how many frames {input} holds"))?;
    Ok(Chunk::cut(path, frames, None))
}

/// Counts every chunk's frames by decoding it, as many at once as the machine has cores, and
/// sends them on in order.
async fn count_all(paths: Vec<PathBuf>, out: &mpsc::Sender<Chunk>) -> Result<(), String> {
    let mut chunks = futures::stream::iter(paths)
        .map(decoded_frames)
        .buffered(cores());
    while let Some(chunk) = chunks.next().await {
        out.send(chunk?).await.map_err(|_| STOPPED.to_string())?;
    }
    Ok(())
}

/// Why splitting ends when the job's partitioning was stopped.
const STOPPED: &str = "stopped";

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Codecs whose packets are one shown frame each in every container FFmpeg demuxes (VP9's
/// superframes and AV1's temporal units hold hidden frames with their one shown frame).
const ONE_FRAME_PER_PACKET: &[&str] = &["h264", "hevc", "vp9", "av1"];

/// Counts the frames of chunks cut at source keyframes of a codec not known to put one frame
/// in each packet (those go out as they are cut: `cut_at_keyframes_as_they_close`), and sends
/// them on in order. `Ok(false)` — before anything was sent — when a chunk does not decode on
/// its own frame for frame (open GOPs), or is more than twice the `target` seconds long
/// (sparse keyframes), and the split must be redone frame-exactly.
///
/// The first chunk is decoded in full and must decode to as many frames as it has packets;
/// then each chunk's frames are its packets, counted without decoding. Otherwise every chunk
/// is decoded in full.
async fn count_cut(
    paths: Vec<PathBuf>,
    facts: &Facts,
    target: f64,
    listed: Vec<f64>,
    out: &mpsc::Sender<Chunk>,
) -> Result<bool, String> {
    let packets: Vec<Vec<probe::Packet>> = futures::stream::iter(paths.clone())
        .map(|path| async move { container::packets(&path).await })
        .buffered(cores())
        .try_collect()
        .await?;
    let Some(contents) = packets
        .iter()
        .map(|p| probe::self_contained(p))
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(false);
    };
    if contents
        .iter()
        .any(|(frames, _)| too_long(*frames, facts.fps, target))
    {
        return Ok(false);
    }
    let starts: Vec<Option<f64>> = if listed.len() == packets.len() {
        listed
            .iter()
            .zip(&packets)
            .map(|(&at, p)| placed(at, p))
            .collect()
    } else {
        vec![None; packets.len()]
    };
    // Packets may not be frames in this codec: the first chunk is decoded to see.
    let mut rest = paths.into_iter().zip(contents).zip(starts);
    if let Some(((path, (frames, _)), start)) = rest.next() {
        let first = Chunk {
            start,
            ..decoded_frames(path).await?
        };
        let calibrated = first.frames == frames;
        out.send(first).await.map_err(|_| STOPPED.to_string())?;
        if !calibrated {
            // Packets are not frames here: count every chunk by decoding it (placed by the
            // joined chunks' own lengths).
            return count_all(rest.map(|((path, _), _)| path).collect(), out)
                .await
                .map(|()| true);
        }
    }
    for ((path, (frames, _)), start) in rest {
        out.send(Chunk::cut(path, frames, start))
            .await
            .map_err(|_| STOPPED.to_string())?;
    }
    Ok(true)
}

/// Where a chunk the segment muxer listed at `at` starts: there plus its first packet's time
/// (a self-contained chunk shows nothing before it). The muxer takes the listed time off each
/// chunk's timestamps, and the listed times alone are not on one clock (the first chunk's is 0
/// where its frames start after the shift that keeps B-frames' decoding times from going
/// negative, and the later ones include that shift: two frames off at every cut).
fn placed(at: f64, packets: &[probe::Packet]) -> Option<f64> {
    Some(at + packets.first()?.pts?)
}

/// Where cutting at keyframes as the segment muxer goes stopped.
#[derive(Debug, PartialEq)]
enum KeyframeCut {
    /// Every frame went out in chunks cut at keyframes.
    Whole,
    /// The chunk after the first `frames` frames does not decode on its own (or is too long):
    /// the rest is to be cut otherwise. `first` is where the first chunk sent is placed
    /// (`None`: none was sent).
    From { frames: u64, first: Option<f64> },
}

/// Cuts the source (a codec whose packets are one frame each) at keyframes by stream copy and
/// sends each chunk on as soon as the segment muxer has closed it and its packets show it is
/// self-contained and at most twice the `target` length, so devices start on the first chunks
/// while the muxer copies the rest. At the first chunk that is not, the muxer is left to
/// finish alone and the rest is reported for cutting otherwise.
async fn cut_at_keyframes_as_they_close(
    source: &Path,
    dir: &Path,
    facts: &Facts,
    target: f64,
    out: &mpsc::Sender<Chunk>,
) -> Result<KeyframeCut, String> {
    let src = source.to_string_lossy();
    let pattern = dir.join("%05d.mkv");
    let pattern = pattern.to_string_lossy();
    let target_s = format!("{target}");
    let args = segment_args(&src, &["-c", "copy"], &target_s, &pattern, "pipe:1");
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<String>();
    let muxing = crate::tools::run_with_lines("ffmpeg", &args, lines_tx);
    let counting = async {
        let (mut sent, mut first) = (0u64, None);
        // A chunk is listed when it ends, before its file is closed: it is taken when the
        // next one is listed, or when the muxer has ended.
        let mut listed: Option<(PathBuf, f64)> = None;
        loop {
            let next = match lines.recv().await {
                None => None,
                Some(line) => {
                    let mut fields = line.split(',');
                    let name = fields.next().unwrap_or_default().trim();
                    let at = fields.next().and_then(|at| at.trim().parse::<f64>().ok());
                    // Only a chunk file of the muxer's own naming, in its directory.
                    match at {
                        Some(at)
                            if name.strip_suffix(".mkv").is_some_and(|n| {
                                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                            }) =>
                        {
                            Some((dir.join(name), at))
                        }
                        _ => return Err(format!("the segment muxer listed {line:?}")),
                    }
                }
            };
            let ended = next.is_none();
            if let Some((path, at)) = std::mem::replace(&mut listed, next) {
                let packets = container::packets(&path).await?;
                let whole = probe::self_contained(&packets)
                    .filter(|(frames, _)| !too_long(*frames, facts.fps, target));
                let Some((frames, _)) = whole else {
                    // Closing the list stops nothing: the muxer copies on (cheap) and ends.
                    drop(lines);
                    return Ok::<_, String>(KeyframeCut::From {
                        frames: sent,
                        first,
                    });
                };
                let start = placed(at, &packets);
                if sent == 0 {
                    first = start;
                }
                out.send(Chunk::cut(path, frames, start))
                    .await
                    .map_err(|_| STOPPED.to_string())?;
                sent += frames;
            }
            if ended {
                return Ok(KeyframeCut::Whole);
            }
        }
    };
    let (muxed, counted) = tokio::join!(muxing, counting);
    let cut = counted?;
    let (status, complaints) = muxed?;
    if cut == KeyframeCut::Whole {
        if !status.success() {
            return Err(super::last_lines(
                &super::without_paths(complaints.trim()),
                3,
            ));
        }
        if let Some(problem) = super::damage(&super::without_paths(complaints.trim())) {
            return Err(problem);
        }
    }
    Ok(cut)
}

/// How far past its last frame's time a chunk's cut goes, at first and at most, in seconds:
/// the frames just before the next keyframe may be stored after it (open GOPs), and the cut
/// must hold them.
const CUT_PAST: [f64; 2] = [0.5, 5.0];

/// How far before the time asked FFmpeg seeks in a stream with B-frames, in seconds.
const SEEK_LEAD: f64 = 3.0 / 23.0;

/// The chunks of a source with `times` (its frames' presentation times, ascending) and
/// keyframes at `keys` (ascending times): index ranges of about `target` seconds, ending at a
/// keyframe when one comes within half a chunk more, else at any frame.
fn spans(times: &[f64], keys: &[f64], target: f64) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    while start < times.len() {
        let goal = times[start] + target;
        let at_key = keys
            .iter()
            .find(|&&k| k >= goal - 1e-6)
            .filter(|&&k| k <= goal + target / 2.0)
            .map(|&k| times.partition_point(|&t| t < k - 1e-6));
        let end = at_key
            .unwrap_or_else(|| times.partition_point(|&t| t < goal - 1e-6))
            .max(start + 1)
            .min(times.len());
        spans.push((start, end));
        start = end;
    }
    spans
}

/// The source's frames as its packets tell them: every presentation time and the keyframes',
/// ascending, in seconds.
struct Frames {
    times: Vec<f64>,
    keys: Vec<f64>,
}

impl Frames {
    /// The source's frames, or `None` when its packets cannot say where its frames are: a
    /// codec whose packets are not one shown frame each, a packet without a time, two frames
    /// within the Matroska millisecond, frames shown before the first keyframe.
    async fn read(source: &Path, facts: &Facts) -> Result<Option<Frames>, String> {
        if !ONE_FRAME_PER_PACKET.contains(&facts.codec.as_str()) {
            return Ok(None);
        }
        let packets = probe::packets(source).await?;
        let Some(mut times) = packets.iter().map(|p| p.pts).collect::<Option<Vec<f64>>>() else {
            return Ok(None);
        };
        let mut keys: Vec<f64> = packets
            .iter()
            .filter(|p| p.key)
            .filter_map(|p| p.pts)
            .collect();
        times.sort_by(f64::total_cmp);
        keys.sort_by(f64::total_cmp);
        if times.windows(2).any(|w| w[1] - w[0] < 0.001) || keys.first() != times.first() {
            return Ok(None);
        }
        Ok(Some(Frames { times, keys }))
    }

    /// When the last frame ends: a frame's length at the source's average rate after it.
    fn end(&self, fps: f64) -> f64 {
        let last = self.times.last().copied().unwrap_or(0.0);
        last + if fps > 0.0 { 1.0 / fps } else { 0.04 }
    }
}

/// Splits a source whose keyframes do not cut it into chunks that decode on their own (open
/// GOPs, leading B-frames, keyframes too far apart), or whose frame rate is to change, with
/// stream copies only: each chunk holds its frames from the keyframe before the first to past
/// the last, and its device decodes it and keeps its frames by their times — and with
/// `retime`, makes the output frames of its slots from them. `Ok(false)` (nothing sent) when
/// a chunk's frames cannot be cut.
#[allow(clippy::too_many_arguments)]
async fn split_decoding_from_keyframes(
    source: &Path,
    dir: &Path,
    facts: &Facts,
    target: f64,
    (frames, from, shift): (&Frames, usize, f64),
    retime: Option<Retime>,
    out: &mpsc::Sender<Chunk>,
) -> Result<bool, String> {
    let (times, keys) = (&frames.times, &frames.keys);
    let end = frames.end(facts.fps);
    let src = source.to_string_lossy().into_owned();
    // The frames from `from` on (those before went out in chunks cut at keyframes, placed on
    // a clock `shift` ahead of the source's).
    let plan: Vec<(usize, usize)> = spans(&times[from.min(times.len())..], keys, target)
        .into_iter()
        .map(|(a, b)| (a + from, b + from))
        .collect();
    let cuts = plan.into_iter().enumerate().map(|(i, (a, b))| {
        let (lo, hi) = (times[a], times.get(b).copied());
        let at = keys.partition_point(|&k| k <= lo + 1e-6) - 1;
        let key = keys[at];
        // FFmpeg seeks 3/23 s before the time asked in a stream with B-frames, which would
        // land on the keyframe before: ask past it, unless the next keyframe is that close.
        let seek = match keys.get(at + 1) {
            Some(&next) if next <= key + SEEK_LEAD + 0.002 => key,
            _ => key + SEEK_LEAD + 0.0005,
        };
        let path = dir.join(format!("span-{i:05}.mkv"));
        let src = src.clone();
        // A new frame rate: the output frames of the chunk's slots (the chunk's device keeps
        // them at the rate's own times, from 0).
        let (made, start) = match retime {
            Some(rate) => (rate.slots(lo, hi.unwrap_or(end)), None),
            None => ((b - a) as u64, Some(lo + shift)),
        };
        async move {
            if made == 0 {
                // Its frames fall between two slots of a lower rate: it makes none.
                return Ok(Some(None));
            }
            for past in CUT_PAST {
                cut(&src, seek, hi.map(|h| h + past), &path).await?;
                // The cut must hold every frame of the span (and starts on the keyframe).
                let held = container::packets(&path).await?;
                let inside = held
                    .iter()
                    .filter_map(|p| p.pts)
                    .filter(|&t| t >= lo - 0.0005 && hi.is_none_or(|h| t < h - 0.0005))
                    .count();
                if inside == b - a && held.first().is_some_and(|p| p.key) {
                    return Ok(Some(Some(Chunk {
                        path,
                        frames: made,
                        span: Some((lo, hi)),
                        start,
                        retime,
                    })));
                }
            }
            Ok::<_, String>(None)
        }
    });
    let mut cuts = futures::stream::iter(cuts).buffered(cores());
    let mut sent = false;
    while let Some(chunk) = cuts.next().await {
        match chunk? {
            Some(Some(chunk)) => {
                out.send(chunk).await.map_err(|_| STOPPED.to_string())?;
                sent = true;
            }
            Some(None) => {}
            None if !sent => return Ok(false),
            None => return Err("a chunk's frames could not be cut from the source".into()),
        }
    }
    Ok(true)
}

/// Copies the source's video from the keyframe FFmpeg seeks to for `seek` to `to` (or the end)
/// into `out`, keeping the source's timestamps.
async fn cut(src: &str, seek: f64, to: Option<f64>, out: &Path) -> Result<(), String> {
    let from = format!("{seek:.6}");
    let mut args = vec!["-nostdin", "-v", "error", "-copyts", "-ss", &from];
    let to = to.map(|t| format!("{t:.6}"));
    if let Some(to) = &to {
        args.extend(["-to", to]);
    }
    let out = out.to_string_lossy();
    args.extend([
        "-i", src, "-map", "0:v:0", "-an", "-sn", "-dn", "-c", "copy", "-f", "matroska", &out,
    ]);
    tool("ffmpeg", &args).await.map(|_| ())
}

/// Splits the video stream into chunk files in `dir` and sends each on, in order, with the
/// frames that decode from it as soon as it is counted; returns how they were made.
/// Every one of the source's `facts.frames` packets must come out as a decoded frame of some
/// chunk, and the coordinator's work is stream copies and probes. A cut at a source keyframe
/// by stream copy is used as it is if every frame decodes from its chunk; with open GOPs,
/// leading B-frames or keyframes too far apart, each chunk is cut from the keyframe before its
/// frames to past them and its device keeps its frames by their times. A frame rate asked for
/// is made the same way, each device making its chunk's slots. Only a codec whose packets are
/// not frames takes a lossless intermediate of the whole video, made here.
async fn split_video(
    source: &Path,
    dir: &Path,
    facts: &Facts,
    target: f64,
    (retime, frames): (Option<Retime>, Option<&Frames>),
    out: mpsc::Sender<Chunk>,
) -> Result<&'static str, String> {
    let src = source.to_string_lossy();
    let pattern = dir.join("%05d.mkv");
    let pattern = pattern.to_string_lossy();
    let target_s = format!("{target}");
    if let Some(rate) = retime {
        if let Some(frames) = frames
            && split_decoding_from_keyframes(
                source,
                dir,
                facts,
                target,
                (frames, 0, 0.0),
                Some(rate),
                &out,
            )
            .await?
        {
            return Ok(
                "frames, each device decoding from the keyframe before its chunk and \
                       making its slots at the new rate",
            );
        }
    } else if ONE_FRAME_PER_PACKET.contains(&facts.codec.as_str()) {
        // Chunks go out as the muxer closes them; where one does not decode on its own, the
        // rest of the source is cut from the keyframe before each chunk.
        let (sent, first) =
            match cut_at_keyframes_as_they_close(source, dir, facts, target, &out).await? {
                KeyframeCut::Whole => return Ok("keyframes"),
                KeyframeCut::From { frames, first } => (frames as usize, first),
            };
        let frames = Frames::read(source, facts).await?;
        if let Some(frames) = &frames {
            if sent >= frames.times.len() {
                return Err(format!(
                    "the video's chunks held {sent} frames where its packets say {}",
                    frames.times.len()
                ));
            }
            // The chunks sent are placed on the muxer's clock (ahead of the source's by the
            // shift that keeps B-frames' decoding times from going negative): the rest too.
            let shift = first.map_or(0.0, |at| at - frames.times[0]);
            if split_decoding_from_keyframes(
                source,
                dir,
                facts,
                target,
                (frames, sent, shift),
                None,
                &out,
            )
            .await?
            {
                return Ok(if sent == 0 {
                    "frames, each device decoding from the keyframe before its chunk"
                } else {
                    "keyframes, then frames, each device decoding from the keyframe before its \
                     chunk"
                });
            }
        }
        if sent > 0 {
            return Err(
                "the video's keyframes cut its first chunks, but the rest cannot be cut by its \
                 frames' times"
                    .into(),
            );
        }
    } else {
        let list = dir.join("segments.csv");
        segment(
            &src,
            &["-c", "copy"],
            &target_s,
            &pattern,
            &list.to_string_lossy(),
        )
        .await?;
        let paths = list_chunks(dir)?;
        if count_cut(paths, facts, target, segment_starts(&list), &out).await? {
            return Ok("keyframes");
        }
    }
    // Whatever the tries above left is not the intermediate's.
    for path in list_chunks(dir)? {
        std::fs::remove_file(path).map_err(|e| e.to_string())?;
    }
    let constant_rate = retime.map(|r| r.fps());
    let force = format!("expr:gte(t,n_forced*{target})");
    let fps = constant_rate.unwrap_or(facts.fps);
    let rate = format!("fps={fps:.6}");
    // A keyframe every two seconds too: the validator decodes a source chunk from the keyframe
    // before the frames it compares, so short GOPs keep that cheap.
    let gop = ((2.0 * fps).round() as u64).max(1).to_string();
    let mut codec = vec![
        "-c:v",
        "libx264",
        "-qp",
        "0",
        "-preset",
        "ultrafast",
        "-g",
        &gop,
        "-force_key_frames",
        &force,
    ];
    if constant_rate.is_some() {
        // A constant rate: the fps filter duplicates or drops frames to fit.
        codec.extend(["-vf", &rate]);
    }
    codec.extend(["-fps_mode", "passthrough"]);
    let list = dir.join("segments.csv").to_string_lossy().into_owned();
    segment(&src, &codec, &target_s, &pattern, &list).await?;
    // The intermediate is x264's: one frame per packet, counted without decoding.
    for path in list_chunks(dir)? {
        let frames = probe::count_packets(&path).await?;
        out.send(Chunk::cut(path, frames, None))
            .await
            .map_err(|_| STOPPED.to_string())?;
    }
    Ok(if constant_rate.is_some() {
        "exact frames (lossless intermediate at a constant frame rate)"
    } else {
        "exact frames (lossless intermediate: the source's keyframes do not allow clean cuts)"
    })
}

/// The most frames between two keyframes of a result: two seconds' worth. The validator
/// decodes a result from the keyframe before the frame it picked, so this bounds what a check
/// costs (the usual streaming GOP; it costs 1–2% more bytes than x264's default of 250 frames).
fn max_keyframe_interval(fps: f64) -> u64 {
    if fps.is_finite() && fps > 0.0 {
        ((2.0 * fps).round() as u64).max(1)
    } else {
        60
    }
}

/// A probed source as pricing sees it.
fn source_of(facts: &Facts) -> cost::Source {
    cost::Source {
        frames: facts.frames,
        fps: facts.fps,
        width: facts.width,
        height: facts.height,
        // Every track is priced: which are kept is known once the split reads their tags.
        audio_secs: facts
            .audio
            .iter()
            .map(|t| t.duration.unwrap_or(facts.duration))
            .sum(),
    }
}

/// A probed source as an [`InputSize`].
fn size_of(facts: &Facts) -> InputSize {
    let source = source_of(facts);
    InputSize::Video {
        frames: source.frames,
        fps: source.fps,
        width: source.width,
        height: source.height,
        audio_secs: source.audio_secs,
    }
}

#[async_trait]
impl Partitioner for VideoPartitioner {
    fn check_job(
        &self,
        params: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<(), String> {
        VideoParams::parse(params)?;
        refuse_other_options(options, &["seconds"], "a video: it is cut by chunk_seconds")?;
        chunk_seconds(options).map(|_| ())
    }

    fn requirements(&self, params: &serde_json::Value, base: &Requirements) -> Requirements {
        let mut needs = base.clone();
        if let Ok(params) = VideoParams::parse(params) {
            needs.encoders = params.encoders();
        }
        needs
    }

    fn workload(
        &self,
        params: &serde_json::Value,
        options: &serde_json::Value,
        size: &InputSize,
        plan: &Plan,
    ) -> Result<Workload, String> {
        let params = VideoParams::parse(params)?;
        let seconds = chunk_seconds(options)?;
        match *size {
            InputSize::Video {
                frames,
                fps,
                width,
                height,
                audio_secs,
            } => {
                params.check_for_source(width, height, fps)?;
                let source = cost::Source {
                    frames,
                    fps,
                    width,
                    height,
                    audio_secs,
                };
                Ok(cost::workload(&params, &source, seconds, plan).1)
            }
            InputSize::Bytes(_) | InputSize::Text { .. } | InputSize::Items { .. } => Err(
                "a video's price needs its frames and size: give the job's id with its input \
                 uploaded, or the video's duration, size and frame rate"
                    .into(),
            ),
        }
    }

    async fn measure(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
    ) -> Result<InputSize, PartitionError> {
        let (_dir, _source, facts) = probed_input(job, blobs).await?;
        Ok(size_of(&facts))
    }

    async fn split(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
        plan: &Plan,
        out: mpsc::Sender<Split>,
    ) -> Result<Option<serde_json::Value>, PartitionError> {
        let mut params = VideoParams::parse(&job.spec.params).map_err(rejected)?;
        let fixed = chunk_seconds(&job.spec.partition_options).map_err(rejected)?;
        let (dir, source, mut facts) = probed_input(job, blobs).await?;
        params.quarter_turn = facts.rotation.rem_euclid(180) == 90;
        params
            .check_for_source(facts.width, facts.height, facts.fps)
            .map_err(rejected)?;
        let copy = params.video_codec == VideoCodec::Copy;
        if copy && !params.container.carries_video(&facts.codec) {
            return Err(rejected(format!(
                "the source's video is {}, which a {} file cannot carry: encode it \
                 (video_codec) or choose mkv",
                facts.codec,
                params.container.name()
            )));
        }
        let mut notes = Vec::new();
        if facts.variable_frame_rate && params.fps.is_none() {
            notes.push(format!(
                "variable frame rate (about {:.3} fps on average): every frame kept at its time",
                facts.fps
            ));
        }
        let audio = kept_audio(&params, &facts, &mut notes).map_err(rejected)?;
        let offsets = Offsets::of(&facts, &audio).map_err(rejected)?;
        if facts.frames > 0 && facts.duration / facts.frames as f64 > 10.0 {
            notes.push(format!(
                "the video's {} frames span {:.1} hours: each is shown for {:.0} s on average \
                 (a slideshow, or damaged timestamps)",
                facts.frames,
                facts.duration / 3600.0,
                facts.duration / facts.frames as f64
            ));
        }
        let (target, workload) = cost::workload(&params, &source_of(&facts), fixed, plan);
        out.send(Split::Workload(workload))
            .await
            .map_err(|_| PartitionError::Stopped)?;
        let chunks_dir = dir.path().join("chunks");
        std::fs::create_dir_all(&chunks_dir).map_err(|e| {
            PartitionError::Storage(idlegrid_storage::StorageError::Backend(e.to_string()))
        })?;
        // A variable frame rate is kept as it is; a frame rate asked for replaces the
        // source's.
        let retime = match params.fps {
            Some(fps) if (fps - facts.fps).abs() > 0.001 && !copy => Some(Retime::new(fps)),
            _ => None,
        };
        let constant_rate = retime.map(|r| r.fps());
        // A new rate's frames are the slots from the first frame's to the last one's end.
        let source_frames = match retime {
            Some(_) => Frames::read(&source, &facts).await.map_err(rejected)?,
            None => None,
        };
        // One file, or the renditions of an HLS ladder: every rendition encodes every chunk.
        let sizes = if copy {
            Vec::new()
        } else {
            params.output_sizes(facts.width, facts.height)
        };
        let (width, height) = sizes
            .first()
            .copied()
            .unwrap_or((facts.width, facts.height));
        let encoder = serde_json::to_value(&params.encoder).unwrap_or_default();
        // Stills are pictured by the first rendition's tasks, each of its own frames.
        let expected_frames = match (retime, &source_frames) {
            (None, _) => facts.frames,
            (Some(rate), Some(frames)) => rate.slots(frames.times[0], frames.end(facts.fps)),
            // Through the intermediate (about its frames).
            (Some(rate), None) => ((facts.duration * rate.fps()).floor() as u64).saturating_sub(1),
        };
        let stills = stills::Plan::new(
            &params.stills,
            constant_rate.unwrap_or(facts.fps),
            facts.duration,
            expected_frames,
            (width, height),
            facts.rotation,
        )
        .map_err(rejected)?;
        let stills = &stills;
        // The watermark's size, read by FFmpeg as the task and the validator will read it.
        let mark = match &params.watermark {
            None => None,
            Some(watermark) => Some(
                image_size(&dir.path().join(WATERMARK_FILE), &watermark.image)
                    .await
                    .map_err(rejected)?,
            ),
        };
        let mut split = "nothing: the video is copied as it is";
        let mut chunk_starts: Option<Vec<f64>> = None;
        let mut chunks = 0u64;
        if !copy {
            // Chunks are stored and their tasks sent as soon as each is split and counted, so
            // workers start on the first while the rest are being made. Tasks are numbered
            // chunk by chunk: chunk i, rendition r is task i × renditions + r.
            let (chunk_tx, mut chunk_rx) = mpsc::channel::<Chunk>(2);
            let splitting = split_video(
                &source,
                &chunks_dir,
                &facts,
                target,
                (retime, source_frames.as_ref()),
                chunk_tx,
            );
            let source_size = (facts.width, facts.height);
            let keyint = max_keyframe_interval(constant_rate.unwrap_or(facts.fps));
            let variable_rate = facts.variable_frame_rate && constant_rate.is_none();
            let dispatching = async {
                let (mut chunks, mut counted) = (0u64, 0u64);
                let mut starts = Vec::new();
                while let Some(chunk) = chunk_rx.recv().await {
                    starts.push(chunk.start);
                    let index = chunks;
                    chunks += 1;
                    let first = counted;
                    counted += chunk.frames;
                    let key = crate::blob_keys::chunk(job.id, &format!("{index:05}.mkv"));
                    // Scratch files are never used again once stored: moved, not copied.
                    let stored = blobs.put_file(&key, &chunk.path).await?;
                    let tasks = sizes
                        .iter()
                        .enumerate()
                        .map(|(rendition, &(w, h))| NewTask {
                            index: index * sizes.len() as u64 + rendition as u64,
                            input_key: Some(key.clone()),
                            offset: 0,
                            len: stored.size,
                            work_ms: cost::video_task_ms(chunk.frames, (w, h), &params),
                            meta: Some({
                                let mut meta = json!({
                                    "kind": "video", "frames": chunk.frames, "width": w,
                                    "height": h, "scale": (w, h) != source_size,
                                    "keyint": keyint, "rendition": rendition,
                                    "encoder": encoder,
                                });
                                if let Some(geometry) = params.shape(source_size, (w, h), mark) {
                                    meta["geometry"] = json!(geometry);
                                    meta["scale"] = json!(true);
                                }
                                if let Some((from, to)) = chunk.span {
                                    meta["from"] = json!(from);
                                    meta["to"] = json!(to);
                                }
                                if let Some(rate) = chunk.retime {
                                    // The filters making its frames at the new rate, and the
                                    // rate its frames are checked by.
                                    meta["retime"] = json!(rate.filters(chunk.frames));
                                    meta["rate"] = json!(rate.text());
                                }
                                if variable_rate {
                                    meta["variable_rate"] = json!(true);
                                }
                                if let (Some(watermark), Some(image)) = (&params.watermark, mark) {
                                    meta["watermark"] = json!(
                                        base64::engine::general_purpose::STANDARD
                                            .encode(&watermark.image)
                                    );
                                    // Where it goes: the work (its area is compared).
                                    let (x, y, ow, oh) = watermark.place(image, (w, h));
                                    meta["mark"] = json!([x, y, ow, oh]);
                                }
                                if let Some(plan) = stills.as_ref().filter(|_| rendition == 0) {
                                    let own = plan.for_chunk(first, chunk.frames);
                                    if !own.is_empty() {
                                        meta["stills"] = json!(own);
                                        if let Some(turn) = plan.upright {
                                            meta["upright"] = json!(turn);
                                        }
                                    }
                                }
                                meta
                            }),
                        })
                        .collect();
                    out.send(Split::Tasks(tasks))
                        .await
                        .map_err(|_| PartitionError::Stopped)?;
                }
                Ok::<_, PartitionError>((chunks, counted, starts))
            };
            let (made, dispatched) = tokio::join!(splitting, dispatching);
            let (counted, starts);
            (chunks, counted, starts) = dispatched?;
            // Where each chunk goes in the output, when every one says: the joined chunks are
            // placed there, so pauses between frames at chunk boundaries stay.
            chunk_starts = starts.into_iter().collect::<Option<Vec<f64>>>();
            split = made.map_err(|e| rejected(format!("splitting the video failed: {e}")))?;
            if let Some(rate) = constant_rate {
                notes.push(format!(
                    "frame rate converted from {:.3} to {rate:.3} fps ({counted} frames from the source's {})",
                    facts.fps, facts.frames
                ));
                facts.frames = counted;
                facts.fps = rate;
            } else if counted != facts.frames {
                return Err(rejected(format!(
                    "the video is damaged or truncated: {counted} of its {} frames decode",
                    facts.frames
                )));
            }
        }
        let video_tasks = chunks * sizes.len() as u64;
        let source_path = source.to_string_lossy().into_owned();
        let mut tasks = Vec::new();
        if params.audio_codec == AudioCodec::Copy {
            if !audio.is_empty() {
                // Carried over by the assembler as they are: no device's work.
                let path = dir.path().join(AUDIO_COPY);
                extract(&source_path, &audio, "a", &path).await?;
                blobs
                    .put_file(&crate::blob_keys::chunk(job.id, AUDIO_COPY), &path)
                    .await?;
            }
        } else {
            for (k, track) in audio.iter().enumerate() {
                // One task per track, each its own file: the script encodes `0:a:0`.
                let name = format!("audio-{k}.mka");
                let path = dir.path().join(&name);
                extract(&source_path, std::slice::from_ref(track), "a", &path).await?;
                let key = crate::blob_keys::chunk(job.id, &name);
                let stored = blobs.put_file(&key, &path).await?;
                let duration = track.duration.unwrap_or(facts.duration);
                tasks.push(NewTask {
                    index: video_tasks + k as u64,
                    input_key: Some(key),
                    offset: 0,
                    len: stored.size,
                    work_ms: cost::audio_task_ms(duration, params.encoder.loudness.is_some()),
                    meta: Some(json!({
                        "kind": "audio", "duration": duration, "track": k, "encoder": encoder,
                    })),
                });
            }
        }
        let subtitles = kept_subtitles(&params, &facts, &mut notes);
        if !subtitles.is_empty() {
            let path = dir.path().join(SUBTITLES);
            extract(&source_path, &subtitles, "s", &path).await?;
            blobs
                .put_file(&crate::blob_keys::chunk(job.id, SUBTITLES), &path)
                .await?;
        }
        if facts.rotation != 0 {
            notes.push(format!(
                "rotation metadata ({}°) is carried over to the output",
                facts.rotation
            ));
        }
        if (width, height) != (facts.width, facts.height) {
            notes.push(format!(
                "scaled from {}x{} to {width}x{height}",
                facts.width, facts.height
            ));
        }
        if !tasks.is_empty() {
            out.send(Split::Tasks(tasks))
                .await
                .map_err(|_| PartitionError::Stopped)?;
        }
        let mut recorded = serde_json::to_value(&facts).unwrap_or_default();
        recorded["video_chunks"] = json!(chunks);
        if let Some(starts) = &chunk_starts {
            recorded["chunk_starts"] = json!(starts);
        }
        recorded["task_order"] = json!("chunk-major");
        recorded["split"] = json!(split);
        recorded["output"] = json!({
            "width": width, "height": height,
            "codec": if copy { facts.codec.as_str() } else { params.video_codec.name() },
            "video_copy": copy,
            "container": if params.hls_ladder.is_some() { "hls" } else { params.container.name() },
            "audio": !audio.is_empty(),
            "audio_codec": params.audio_codec.name(),
            "audio_tracks": audio.iter().map(|t| json!({
                "source": t.position, "language": t.language, "duration": t.duration,
                "offset": t.start - offsets.origin,
            })).collect::<Vec<_>>(),
            "video_offset": offsets.video,
            // The source, and the tracks copied out of it here, are read from the file's start.
            "source_offset": facts.file_start - offsets.origin,
            "subtitles": subtitles.iter().map(|t| json!({
                "source": t.position, "language": t.language, "codec": t.codec,
            })).collect::<Vec<_>>(),
        });
        if let Some(plan) = stills {
            recorded["stills"] = plan.facts(facts.frames);
            // The video and its stills, in one archive.
            recorded["output"]["archive"] = json!(true);
        }
        if let Some(target) = &params.encoder.target {
            recorded["output"]["target_quality"] = json!(target);
        }
        if let Some(lufs) = params.encoder.loudness
            && !audio.is_empty()
        {
            recorded["output"]["loudness"] = json!(lufs);
        }
        if params.hls_ladder.is_some() {
            recorded["hls"] = json!({
                "renditions": sizes.iter().map(|(w, h)| json!({"width": w, "height": h})).collect::<Vec<_>>(),
                "segment_seconds": super::params::HLS_SEGMENT_SECONDS,
                // Fragmented-MP4 segments shared by a DASH manifest and the HLS playlists.
                "packaging": "cmaf",
            });
            notes.push(format!(
                "HLS and DASH (CMAF): {} rendition{} ({})",
                sizes.len(),
                if sizes.len() == 1 { "" } else { "s" },
                sizes
                    .iter()
                    .map(|(w, h)| format!("{w}x{h}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        recorded["notes"] = json!(notes);
        Ok(Some(recorded))
    }
}

/// Where each stream starts in the output, in seconds: the source's streams keep their places
/// relative to each other (a video that starts 1.5 s after its sound still does), and the
/// earliest starts at 0. Encoded chunks and tracks start at 0; the source, and the tracks
/// copied out of it, start where FFmpeg reads the file from (its earliest stream, kept or not).
struct Offsets {
    /// The earliest start of the streams kept, on the source's clock.
    origin: f64,
    /// The video's start in the output.
    video: f64,
}

/// Farthest apart the streams kept may start, in seconds: past it the timestamps are damaged.
const MAX_OFFSET: f64 = 600.0;

impl Offsets {
    fn of(facts: &Facts, audio: &[probe::Track]) -> Result<Offsets, String> {
        let origin = audio
            .iter()
            .map(|t| t.start)
            .chain([facts.start])
            .filter(|s| s.is_finite())
            .fold(f64::INFINITY, f64::min);
        let origin = if origin.is_finite() { origin } else { 0.0 };
        let video = facts.start - origin;
        for (what, offset) in audio
            .iter()
            .map(|t| (format!("audio track {}", t.position + 1), t.start - origin))
            .chain([("the video".to_string(), video)])
        {
            if !(0.0..=MAX_OFFSET).contains(&offset) {
                return Err(format!(
                    "{what} starts {offset:.1} s after the earliest stream: the timestamps are \
                     damaged (at most {MAX_OFFSET:.0} s apart are taken)"
                ));
            }
        }
        Ok(Offsets { origin, video })
    }
}

/// Name of the blob holding the audio tracks carried over as they are (`audio_codec: copy`).
pub const AUDIO_COPY: &str = "audio-copy.mka";
/// Name of the blob holding the subtitle tracks carried over.
pub const SUBTITLES: &str = "subtitles.mkv";

/// The source's audio tracks the output keeps, by the job's choice; notes what is left out.
/// Refused: languages asked for that no track has, or tracks copied into a container that
/// cannot carry their codec.
fn kept_audio(
    params: &VideoParams,
    facts: &Facts,
    notes: &mut Vec<String>,
) -> Result<Vec<probe::Track>, String> {
    let kept: Vec<probe::Track> = facts
        .audio
        .iter()
        .filter(|t| params.audio_tracks.keeps(t.position, t.language.as_deref()))
        .cloned()
        .collect();
    if facts.audio.is_empty() {
        notes.push("the input has no audio: neither has the output".to_string());
        return Ok(kept);
    }
    if kept.is_empty() {
        let languages: Vec<&str> = facts
            .audio
            .iter()
            .map(|t| t.language.as_deref().unwrap_or("untagged"))
            .collect();
        return Err(format!(
            "no audio track is in the languages asked for; the input's are: {}",
            languages.join(", ")
        ));
    }
    if params.audio_codec == AudioCodec::Copy {
        let container = if params.hls_ladder.is_some() {
            Container::Mp4
        } else {
            params.container
        };
        if let Some(track) = kept.iter().find(|t| !container.carries_audio(&t.codec)) {
            return Err(format!(
                "audio track {} is {}, which a {} file cannot carry: encode it (audio_codec \
                 aac or opus) or choose mkv",
                track.position + 1,
                track.codec,
                container.name()
            ));
        }
    }
    if kept.len() < facts.audio.len() {
        notes.push(format!(
            "{} of the input's {} audio tracks kept",
            kept.len(),
            facts.audio.len()
        ));
    }
    Ok(kept)
}

/// The source's subtitle tracks the output carries: every one in Matroska, text ones elsewhere
/// (pictures cannot become mov_text or WebVTT), none in HLS for now; notes what is left out.
fn kept_subtitles(
    params: &VideoParams,
    facts: &Facts,
    notes: &mut Vec<String>,
) -> Vec<probe::Track> {
    if facts.subtitles.is_empty() {
        return Vec::new();
    }
    if !params.subtitles {
        notes.push("subtitles left out, as asked".into());
        return Vec::new();
    }
    // A streaming ladder's renditions are MP4 (its text tracks become WebVTT files beside the
    // segments).
    let kept: Vec<probe::Track> = facts
        .subtitles
        .iter()
        .filter(|t| params.container == Container::Mkv || t.is_text())
        .cloned()
        .collect();
    if kept.len() < facts.subtitles.len() {
        notes.push(format!(
            "{} picture subtitle track(s) left out: a {} file carries text subtitles only (mkv \
             carries both)",
            facts.subtitles.len() - kept.len(),
            params.container.name()
        ));
    }
    kept
}

/// Copies `tracks` of kind `kind` (`a`, `s`) of the source, as they are, into a Matroska file.
async fn extract(
    source: &str,
    tracks: &[probe::Track],
    kind: &str,
    out: &Path,
) -> Result<(), PartitionError> {
    let mut args: Vec<String> = ["-nostdin", "-v", "error", "-i", source]
        .map(String::from)
        .to_vec();
    for track in tracks {
        args.push("-map".into());
        args.push(format!("0:{kind}:{}", track.position));
    }
    args.extend(["-c", "copy"].map(String::from));
    for (i, track) in tracks.iter().enumerate() {
        // MP4's and QuickTime's text tracks have no place in Matroska: their text is kept as
        // SubRip (their styling is lost), which every output container takes.
        if kind == "s" && matches!(track.codec.as_str(), "mov_text" | "tx3g") {
            args.extend([format!("-c:s:{i}"), "srt".into()]);
        }
    }
    args.extend(["-f", "matroska"].map(String::from));
    args.push(out.to_string_lossy().into_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("ffmpeg", &args).await.map_err(|e| {
        rejected(format!(
            "extracting the {} failed: {e}",
            if kind == "a" { "audio" } else { "subtitles" }
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_end_at_keyframes_when_near_and_at_any_frame_otherwise() {
        let times: Vec<f64> = (0..100).map(|i| f64::from(i) / 10.0).collect();
        // Keyframes every 3 s: chunks of 2 s end at the keyframe at 3 s (within a chunk and a
        // half), then 5 s is past 6 + 1 = … at 6 s.
        let keys = [0.0, 3.0, 6.0, 9.0];
        assert_eq!(
            spans(&times, &keys, 2.0),
            [(0, 30), (30, 60), (60, 90), (90, 100)]
        );
        // A single keyframe: cut anywhere, every frame in exactly one chunk.
        let one = spans(&times, &[0.0], 3.0);
        assert_eq!(one, [(0, 30), (30, 60), (60, 90), (90, 100)]);
        assert_eq!(spans(&times[..1], &[0.0], 3.0), [(0, 1)]);
    }

    #[test]
    fn chunks_longer_than_twice_the_target_are_too_long() {
        assert!(!too_long(300, 30.0, 10.0));
        assert!(!too_long(600, 30.0, 10.0));
        assert!(too_long(601, 30.0, 10.0));
        assert!(!too_long(601, 0.0, 10.0));
    }
}
