//! The `video` partitioner: probes the upload (rejecting what is not decodable video), records
//! its facts, splits the video stream into chunks — at source keyframes by stream copy when they
//! allow the wanted chunk length, otherwise frame-exactly through a lossless intermediate — and
//! extracts the first audio stream as one more chunk, encoded once for the whole file.

use super::cost;
use super::probe::{self, Facts};
use super::{VideoParams, progress_frames, readable, scratch, tool, tool_with_complaints};
use crate::apps::plugin::{InputSize, PartitionError, Partitioner, Plan, Split, Workload};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
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

/// Writes the source's first video stream, passed through `codec`, as Matroska chunk files
/// named by `pattern`, cut by the segment muxer every `seconds` (at the first keyframe after
/// each multiple). A source that ends early or breaks off is refused as damaged.
async fn segment(src: &str, codec: &[&str], seconds: &str, pattern: &str) -> Result<(), String> {
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
        pattern,
    ]);
    let (_, complaints) = tool_with_complaints("ffmpeg", &args).await?;
    match super::damage(&complaints) {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

/// One chunk file of the split.
#[derive(Debug)]
struct Chunk {
    /// The chunk file.
    path: PathBuf,
    /// Frames that decode from it.
    frames: u64,
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
    Ok(Chunk { path, frames })
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

/// Codecs whose packets hold exactly one frame each in any container FFmpeg demuxes.
const ONE_FRAME_PER_PACKET: &[&str] = &["h264", "hevc"];

/// Counts the frames of chunks cut at source keyframes and sends them on in order. `Ok(false)`
/// — before anything was sent — when a chunk does not decode on its own frame for frame (open
/// GOPs), or is more than twice the `target` seconds long (sparse keyframes), and the split
/// must be redone frame-exactly.
///
/// A chunk's frames are its packets when its packets show it is self-contained, counted
/// without decoding. For codecs not known to put one frame in each packet, the first chunk is
/// decoded in full and must decode to as many frames as it has packets, or every chunk is
/// decoded in full.
async fn count_cut(
    paths: Vec<PathBuf>,
    facts: &Facts,
    target: f64,
    out: &mpsc::Sender<Chunk>,
) -> Result<bool, String> {
    let packets: Vec<Vec<probe::Packet>> = futures::stream::iter(paths.clone())
        .map(|path| async move { probe::packets(&path).await })
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
    let mut rest = paths.into_iter().zip(contents);
    if !ONE_FRAME_PER_PACKET.contains(&facts.codec.as_str())
        && let Some((path, (frames, _))) = rest.next()
    {
        let first = decoded_frames(path).await?;
        let calibrated = first.frames == frames;
        out.send(first).await.map_err(|_| STOPPED.to_string())?;
        if !calibrated {
            // Packets are not frames here: count every chunk by decoding it.
            return count_all(rest.map(|(path, _)| path).collect(), out)
                .await
                .map(|()| true);
        }
    }
    for (path, (frames, _)) in rest {
        out.send(Chunk { path, frames })
            .await
            .map_err(|_| STOPPED.to_string())?;
    }
    Ok(true)
}

/// Splits the video stream into chunk files in `dir` and sends each on, in order, with the
/// frames that decode from it as soon as it is counted; returns how they were made.
/// Every one of the source's `facts.frames` packets must come out as a decoded frame of some
/// chunk. A cut at a source keyframe by stream copy is used only if every frame still decodes
/// from its chunk — with open GOPs or leading B-frames the frames before a cut's keyframe need
/// the previous chunk, and the cut is redone frame-exactly through a lossless all-keyframe
/// intermediate.
async fn split_video(
    source: &Path,
    dir: &Path,
    facts: &Facts,
    target: f64,
    constant_rate: Option<f64>,
    out: mpsc::Sender<Chunk>,
) -> Result<&'static str, String> {
    let src = source.to_string_lossy();
    let pattern = dir.join("%05d.mkv");
    let pattern = pattern.to_string_lossy();
    let target_s = format!("{target}");
    // A variable frame rate is made constant at the average by the frame-exact cut below.
    if constant_rate.is_none() {
        segment(&src, &["-c", "copy"], &target_s, &pattern).await?;
        let paths = list_chunks(dir)?;
        if count_cut(paths.clone(), facts, target, &out).await? {
            return Ok("keyframes");
        }
        for path in &paths {
            std::fs::remove_file(path).map_err(|e| e.to_string())?;
        }
    }
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
    segment(&src, &codec, &target_s, &pattern).await?;
    // The intermediate is x264's: one frame per packet, counted without decoding.
    for path in list_chunks(dir)? {
        let frames = probe::count_packets(&path).await?;
        out.send(Chunk { path, frames })
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
        audio_secs: if facts.audio_streams > 0 {
            facts.audio_duration.unwrap_or(facts.duration)
        } else {
            0.0
        },
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
        if !options.get("lines").is_none_or(serde_json::Value::is_null) {
            return Err(
                "chunk_lines is for apps that split text by lines; a video is cut by \
                 chunk_seconds"
                    .into(),
            );
        }
        chunk_seconds(options).map(|_| ())
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
            InputSize::Bytes(_) | InputSize::Text { .. } => Err(
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
        let params = VideoParams::parse(&job.spec.params).map_err(rejected)?;
        let fixed = chunk_seconds(&job.spec.partition_options).map_err(rejected)?;
        let (dir, source, mut facts) = probed_input(job, blobs).await?;
        params
            .check_for_source(facts.width, facts.height, facts.fps)
            .map_err(rejected)?;
        let (target, workload) = cost::workload(&params, &source_of(&facts), fixed, plan);
        out.send(Split::Workload(workload))
            .await
            .map_err(|_| PartitionError::Stopped)?;
        let chunks_dir = dir.path().join("chunks");
        std::fs::create_dir_all(&chunks_dir).map_err(|e| {
            PartitionError::Storage(idlegrid_storage::StorageError::Backend(e.to_string()))
        })?;
        // A variable frame rate is made constant at the average; a frame rate asked for
        // replaces the source's.
        let constant_rate = match params.fps {
            Some(fps) if (fps - facts.fps).abs() > 0.001 => Some(fps),
            _ if facts.variable_frame_rate => Some(facts.fps),
            _ => None,
        };
        // One MP4, or the renditions of an HLS ladder: every rendition encodes every chunk.
        let sizes = params.output_sizes(facts.width, facts.height);
        let (width, height) = sizes[0];
        let encoder = serde_json::to_value(&params.encoder).unwrap_or_default();
        // Chunks are stored and their tasks sent as soon as each is split and counted, so
        // workers start on the first while the rest are being made. Tasks are numbered chunk
        // by chunk: chunk i, rendition r is task i × renditions + r.
        let (chunk_tx, mut chunk_rx) = mpsc::channel::<Chunk>(2);
        let splitting = split_video(
            &source,
            &chunks_dir,
            &facts,
            target,
            constant_rate,
            chunk_tx,
        );
        let source_size = (facts.width, facts.height);
        let keyint = max_keyframe_interval(constant_rate.unwrap_or(facts.fps));
        let dispatching = async {
            let (mut chunks, mut counted) = (0u64, 0u64);
            while let Some(chunk) = chunk_rx.recv().await {
                let index = chunks;
                chunks += 1;
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
                        work_ms: cost::video_task_ms(chunk.frames, (w, h), &params.encoder.preset),
                        meta: Some(json!({
                            "kind": "video", "frames": chunk.frames, "width": w, "height": h,
                            "scale": (w, h) != source_size, "keyint": keyint,
                            "rendition": rendition, "encoder": encoder,
                        })),
                    })
                    .collect();
                out.send(Split::Tasks(tasks))
                    .await
                    .map_err(|_| PartitionError::Stopped)?;
            }
            Ok::<_, PartitionError>((chunks, counted))
        };
        let (split, dispatched) = tokio::join!(splitting, dispatching);
        let (chunks, counted) = dispatched?;
        let split = split.map_err(|e| rejected(format!("splitting the video failed: {e}")))?;
        let mut notes = Vec::new();
        let mut tasks = Vec::new();
        if let Some(rate) = constant_rate {
            notes.push(if facts.variable_frame_rate && params.fps.is_none() {
                format!(
                    "variable frame rate: made constant at the average, {rate:.3} fps ({counted} frames from the source's {})",
                    facts.frames
                )
            } else {
                format!(
                    "frame rate converted from {:.3} to {rate:.3} fps ({counted} frames from the source's {})",
                    facts.fps, facts.frames
                )
            });
            facts.frames = counted;
            facts.fps = rate;
        } else if counted != facts.frames {
            return Err(rejected(format!(
                "the video is damaged or truncated: {counted} of its {} frames decode",
                facts.frames
            )));
        }
        if facts.audio_streams > 0 {
            let audio = dir.path().join("audio.mka");
            tool(
                "ffmpeg",
                &[
                    "-nostdin",
                    "-v",
                    "error",
                    "-i",
                    &source.to_string_lossy(),
                    "-map",
                    "0:a:0",
                    "-vn",
                    "-sn",
                    "-dn",
                    "-c",
                    "copy",
                    "-f",
                    "matroska",
                    &audio.to_string_lossy(),
                ],
            )
            .await
            .map_err(|e| rejected(format!("extracting the audio failed: {e}")))?;
            let key = crate::blob_keys::chunk(job.id, "audio.mka");
            let stored = blobs.put_file(&key, &audio).await?;
            tasks.push(NewTask {
                index: chunks * sizes.len() as u64,
                input_key: Some(key),
                offset: 0,
                len: stored.size,
                work_ms: cost::audio_task_ms(facts.audio_duration.unwrap_or(facts.duration)),
                meta: Some(json!({
                    "kind": "audio", "duration": facts.audio_duration, "encoder": encoder,
                })),
            });
            if facts.audio_streams > 1 {
                notes.push(format!(
                    "the input has {} audio streams: only the first is kept",
                    facts.audio_streams
                ));
            }
        } else {
            notes.push("the input has no audio: neither has the output".to_string());
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
        recorded["task_order"] = json!("chunk-major");
        recorded["split"] = json!(split);
        recorded["output"] = json!({"width": width, "height": height, "codec": "h264", "audio": facts.audio_streams > 0});
        if params.hls_ladder.is_some() {
            recorded["hls"] = json!({
                "renditions": sizes.iter().map(|(w, h)| json!({"width": w, "height": h})).collect::<Vec<_>>(),
                "segment_seconds": super::params::HLS_SEGMENT_SECONDS,
            });
            notes.push(format!(
                "HLS: {} rendition{} ({})",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_longer_than_twice_the_target_are_too_long() {
        assert!(!too_long(300, 30.0, 10.0));
        assert!(!too_long(600, 30.0, 10.0));
        assert!(too_long(601, 30.0, 10.0));
        assert!(!too_long(601, 0.0, 10.0));
    }
}
