//! The `video` validator. Nothing a device receives says what will be checked: every choice
//! below is made from the coordinator's own randomness after the result arrived.
//!
//! A video chunk's result must be the codec asked (H.264, HEVC, AV1, VP9) in 8-bit 4:2:0 at
//! the size asked, with exactly as many
//! frames as the source chunk, each with its own time (read from the container, no decoding).
//! Then one frame is picked at random, uniformly over the chunk, and both the result and the
//! source chunk are decoded from the keyframe before it (closed GOPs decode on their own) up
//! to it; every frame of that window is compared at the result's full resolution
//! ([`super::quality`]): another picture rejects the result, a worse one than the settings
//! give makes it suspect. A decoding error in the window rejects it.
//!
//! The audio result must be AAC-LC (or Opus) with the channels and sample rate asked, as long
//! as the
//! source, and carry the source's sound: both are decoded to 8 kHz mono and compared over
//! eight half-second windows at random times, each by its best normalised correlation within
//! 40 ms of shift. A silent window of the source must stay quiet.
//!
//! What this costs and what it catches, beside replication, is in ARCHITECTURE.md.

use super::container::{FrameTable, frame_table, source_frame_table};
use super::params::{WATERMARK_FILE, ssim_db};
use super::quality::{self, Expectation, FrameMeasure, Plane};
use super::retime::Retime;
use super::{probe_stream, readable, readable_output, scratch};
use crate::apps::plugin::{Judgment, Validator};
use crate::tools;
use async_trait::async_trait;
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, ResultRecord};
use rand::Rng;
use std::io::Read;
use std::path::Path;

/// The video validator.
pub struct VideoValidator {
    /// Results checked at once: each check runs FFmpeg, so more than the cores would only
    /// thrash.
    slots: tokio::sync::Semaphore,
}

impl Default for VideoValidator {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        VideoValidator {
            slots: tokio::sync::Semaphore::new(cores.max(2)),
        }
    }
}

/// Compared frames whose detail is measured, at most (the picked frame and others spread over
/// the window); PSNR and repeats are measured on every frame of the window.
const DETAIL_FRAMES: usize = 8;

/// Fewest frames a window compares (where the chunk has them).
const MIN_WINDOW: usize = 8;

/// Frames `from..=to` (display indices) of a chunk, decoded from the keyframe before `from`.
pub(super) struct Window {
    pub from: usize,
    pub to: usize,
}

/// One file's part in decoding a window: FFmpeg's options for it as an input, and the filter
/// that turns its decoded frames into the window's raw luma planes (through `shape`, the
/// filters that made the result's frames from the source's, when given). Decoding starts at the window's keyframe: the time passed to `-ss` is that
/// keyframe's, plus the 3/23 s FFmpeg takes off a seek in a stream with B-frames, so the
/// demuxer lands on it rather than the keyframe before.
pub(super) fn side_args(
    path: &Path,
    table: &FrameTable,
    window: &Window,
    shape: Option<&str>,
) -> (Vec<String>, String) {
    let mut input: Vec<String> = vec!["-threads".into(), "1".into()];
    let key = table.key_before(window.from).unwrap_or(0);
    if key > 0 {
        let lead = if table.reordered { 3.0 / 23.0 } else { 0.0 };
        input.extend(["-seek_timestamp", "1", "-noaccurate_seek", "-ss"].map(String::from));
        input.push(format!("{:.6}", table.times[key] + lead + 0.0005));
    }
    input.push("-i".into());
    input.push(path.to_string_lossy().into_owned());
    // Frames are picked by their times (to the container's millisecond), wherever the demuxer
    // started.
    let (first, last) = (table.times[window.from], table.times[window.to]);
    let mut filter = format!(
        "select='between(t\\,{:.6}\\,{:.6})'",
        first - 0.0004,
        last + 0.0004
    );
    if let Some(shape) = shape {
        filter.push(',');
        filter.push_str(shape);
    }
    // The luma plane as coded (video range): taken out of 4:2:0 frames as it is, which costs
    // far less than converting to full-range grey (the result is 4:2:0 already; a source in
    // another format is converted once here).
    filter.push_str(",format=yuv420p,extractplanes=y");
    (input, filter)
}

/// One file's part in decoding a window: its input options and its filter ([`side_args`]).
pub(super) type Side = (Vec<String>, String);

/// FFmpeg arguments decoding each side's window to its output (`pipe:1`, `pipe:3`), as many
/// frames as its count, in one process: starting FFmpeg costs as much CPU as decoding a dozen
/// frames.
pub(super) fn decode_args(sides: &[(Side, &str, usize)]) -> Vec<String> {
    let mut args: Vec<String> = ["-nostdin", "-v", "error", "-copyts"]
        .map(String::from)
        .to_vec();
    for ((input, _), _, _) in sides {
        args.extend(input.iter().cloned());
    }
    for (i, ((_, filter), output, count)) in sides.iter().enumerate() {
        args.extend([
            "-map".into(),
            format!("{i}:v:0"),
            "-vf".into(),
            filter.clone(),
        ]);
        args.extend(["-fps_mode", "passthrough", "-frames:v"].map(String::from));
        args.push(count.to_string());
        args.extend(["-f", "rawvideo", "-pix_fmt", "gray"].map(String::from));
        args.push(output.to_string());
    }
    args
}

/// Reads frames of `size` bytes from `out` into `frames` until it ends or `limit` frames came;
/// returns how many came. Dropping `out` on return tells the decoder nobody listens.
fn read_frames(
    mut out: impl Read,
    size: usize,
    limit: usize,
    frames: std::sync::mpsc::Sender<Vec<u8>>,
) -> usize {
    let mut read = 0;
    while read < limit {
        let mut frame = vec![0u8; size];
        if out.read_exact(&mut frame).is_err() || frames.send(frame).is_err() {
            break;
        }
        read += 1;
    }
    read
}

/// Whether the source's side of a window decodes on its own: asked only when decoding both
/// sides at once failed, to tell a result that breaks FFmpeg from a source that does.
async fn source_decodes(source: (Vec<String>, String), count: usize, size: usize) -> bool {
    let args = decode_args(&[(source, "pipe:1", count)]);
    let Ok((mut tool, _guard)) = tools::start("ffmpeg", &args, false) else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let drain = std::thread::spawn(move || rx.into_iter().map(drop).count());
        let read = tool
            .stdout()
            .map_or(0, |out| read_frames(out, size, count, tx));
        let _ = drain.join();
        read == count && tool.finish().is_ok_and(|s| s.success())
    })
    .await
    .unwrap_or(false)
}

/// Decodes `window` of the result and the source frames it pictures (`pictured`: the source
/// chunk's index of each window frame's, ascending; made into the result's `size` by `shape`
/// when given) side by side and measures every frame pair; the error says what went wrong with
/// the result, or `Err(Err)` when the source could not be decoded (the coordinator's problem).
#[allow(clippy::too_many_arguments)]
async fn compare_window(
    result: &Path,
    result_table: &FrameTable,
    source: &Path,
    source_table: &FrameTable,
    pictured: &[usize],
    window: Window,
    (width, height): (u32, u32),
    shape: Option<&str>,
    with_ssim: bool,
    mark: Option<quality::Area>,
) -> Result<Result<Vec<FrameMeasure>, String>, String> {
    let count = window.to - window.from + 1;
    let result_side = side_args(result, result_table, &window, None);
    let (first, last) = match pictured {
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
        [] => return Err("no source frame for the window".into()),
    };
    if pictured.len() != count || pictured.windows(2).any(|w| w[1] < w[0]) {
        return Err("the window's source frames are out of order".into());
    }
    // Each result frame's source frame, counted from the first decoded.
    let offsets: Vec<usize> = pictured.iter().map(|m| m - first).collect();
    let source_count = last - first + 1;
    let source_window = Window {
        from: first,
        to: last,
    };
    let source_side = side_args(source, source_table, &source_window, shape);
    // The source side decodes the frames pictured, and those between (a lower rate's).
    let args = decode_args(&[
        (result_side, "pipe:1", count),
        (source_side.clone(), "pipe:3", source_count),
    ]);
    let (mut tool, _guard, source_out) = tools::start_with_fd3("ffmpeg", &args)?;
    let result_out = tool.stdout();
    let from = window.from as u64;
    let size = width as usize * height as usize;
    let detail_every = count.div_ceil(DETAIL_FRAMES).max(1);
    let stage = tools::current_stage();
    let measured = tokio::task::spawn_blocking(move || {
        // Unbounded: FFmpeg writes both outputs from one thread, so a side it runs ahead on
        // must not block it. It keeps the sides within a few frames (it serves the output
        // that is behind); at worst a side holds the window, at most a GOP of frames.
        let (source_tx, source_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let (result_tx, result_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let source_reader =
            std::thread::spawn(move || read_frames(source_out, size, source_count, source_tx));
        let result_reader = std::thread::spawn(move || {
            result_out.map_or(0, |out| read_frames(out, size, count, result_tx))
        });
        let mut measures = Vec::with_capacity(count);
        let mut before: Option<(Vec<u8>, Vec<u8>)> = None;
        // Owning both receivers: when either side stops, the loop ends and drops them, so the
        // other side's reader stops too (and closes its pipe, which ends the decoder).
        let mut sources = source_rx.into_iter().enumerate();
        let mut current: Option<(usize, Vec<u8>)> = None;
        for (k, r) in result_rx.into_iter().enumerate() {
            // The source frame it pictures: the same as the one before, or one further on.
            while current.as_ref().is_none_or(|(at, _)| *at < offsets[k]) {
                match sources.next() {
                    Some(next) => current = Some(next),
                    None => break,
                }
            }
            let Some(s) = current
                .as_ref()
                .filter(|(at, _)| *at == offsets[k])
                .map(|(_, s)| s)
            else {
                break;
            };
            let plane = |pixels| Plane {
                width: width as usize,
                pixels,
            };
            // Detail is measured on the window's last frame (the picked one, or past it in a
            // short window) and a spread of the others.
            let with_detail = k + 1 == count || (count - 1 - k).is_multiple_of(detail_every);
            let measure = || {
                let previous = before.as_ref().map(|(ps, pr)| (plane(ps), plane(pr)));
                quality::measure(
                    from + k as u64,
                    &plane(s),
                    &plane(&r),
                    previous.as_ref().map(|(ps, pr)| (ps, pr)),
                    with_detail,
                    // An SSIM report is checked on the frames whose detail is measured.
                    with_detail && with_ssim,
                    mark,
                )
            };
            measures.push(tools::counted(stage, measure));
            before = Some((s.clone(), r));
        }
        drop(sources);
        let source = source_reader.join().unwrap_or(0);
        let result = result_reader.join().unwrap_or(0);
        (measures, source, result, tool.finish())
    })
    .await
    .map_err(|e| format!("comparing frames failed: {e}"))?;
    let (measures, source_frames, result_frames, status) = measured;
    let succeeded = status.is_ok_and(|s| s.success());
    if succeeded
        && source_frames == source_count
        && result_frames == count
        && measures.len() == count
    {
        return Ok(Ok(measures));
    }
    // Something failed: the source's side alone tells whose fault it was.
    if !source_decodes(source_side, source_count, size).await {
        return Err(format!(
            "the source chunk does not decode frames {}..={}",
            window.from, window.to
        ));
    }
    Ok(Err(format!(
        "frames {}..={} do not decode ({result_frames} of {count} came out)",
        window.from, window.to
    )))
}

/// What a chunk encoded to a quality target says of its search, in its video track's name
/// (`idlegrid crf=24 psnr=40.123456`, written by the task script).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchClaim {
    /// The rate factor chosen.
    pub crf: f64,
    /// The metric (`psnr`, `ssim`).
    pub metric: String,
    /// The quality the device measured for the chunk.
    pub value: f64,
}

/// The claim in `name`, checked against the job's `target` (its encoder's `target`): the
/// metric asked, a rate factor the search may use and a value the metric can take.
pub fn search_claim(name: Option<&str>, target: &serde_json::Value) -> Result<SearchClaim, String> {
    let name = name.ok_or("the chunk does not say which rate factor its quality search chose")?;
    let wrong = || format!("the chunk's track name {name:?} is not its quality search's result");
    let mut words = name.split(' ');
    if words.next() != Some("idlegrid") {
        return Err(wrong());
    }
    let crf = words
        .next()
        .and_then(|w| w.strip_prefix("crf="))
        .and_then(|c| c.parse::<f64>().ok())
        .filter(|c| c.is_finite())
        .ok_or_else(wrong)?;
    let (metric, value) = words
        .next()
        .and_then(|w| w.split_once('='))
        .and_then(|(m, v)| Some((m.to_string(), v.parse::<f64>().ok()?)))
        .ok_or_else(wrong)?;
    if words.next().is_some() {
        return Err(wrong());
    }
    let asked = target["metric"].as_str().unwrap_or("");
    if metric != asked {
        return Err(format!(
            "the chunk reports {metric}, the job's target is {asked}"
        ));
    }
    let (low, high) = (
        target["crf_low"].as_f64().unwrap_or(0.0),
        target["crf_high"].as_f64().unwrap_or(0.0),
    );
    let step = target["crf_step"].as_f64().unwrap_or(1.0).max(0.01);
    if !(low..=high).contains(&crf) || ((crf / step).round() * step - crf).abs() > 1e-6 {
        return Err(format!(
            "the chunk reports rate factor {crf}; the search may use {low} to {high} in steps \
             of {step}"
        ));
    }
    let range = if metric == "psnr" {
        0.0..=100.0
    } else {
        0.0..=1.0
    };
    if !value.is_finite() || !range.contains(&value) {
        return Err(format!(
            "the chunk reports {metric} {value}, which it cannot be"
        ));
    }
    Ok(SearchClaim { crf, metric, value })
}

/// How far (dB) a chunk's reported PSNR may be above what its checked frames allow: the
/// device and the validator measure the same frames, up to the printed digits.
const CLAIM_SLACK_DB: f64 = 0.05;
/// How far (dB) below its target a chunk's checked frames may hold it before it is suspect.
const TARGET_SHORTFALL_DB: f64 = 2.0;
/// How far (dB) a chunk's reported PSNR may be above that of the frames checked before it is
/// suspect: a chunk's PSNR is its frames' mean error, so a window of frames much worse than
/// the rest says the report is high; an honest chunk's worse part (a noisy half is about 3 dB
/// under a clean-and-noisy chunk's figure) costs a re-run at worst.
const CLAIM_ABOVE_WINDOW_DB: f64 = 3.0;

/// Judges the quality a chunk reports from its measured frames (`measured` of its `total`):
/// a PSNR it cannot have is a false report; a report (PSNR or SSIM) well above the frames
/// checked, or a chunk well below its target, is believed only if a re-run agrees. The rate factor a claim names
/// does not excuse a shortfall: "the lowest was not enough" is what a device that skipped the
/// search and encoded cheaply would say too, and an honest one loses only a re-run.
fn judge_claim(
    claim: &SearchClaim,
    target: &serde_json::Value,
    measured: &[FrameMeasure],
    total: usize,
) -> Option<Judgment> {
    let frames = format!(
        "frames {}..={}",
        measured.first().map_or(0, |f| f.index),
        measured.last().map_or(0, |f| f.index)
    );
    let goal = target["value"].as_f64().unwrap_or(0.0);
    if claim.metric == "ssim" {
        // A mean of its frames' SSIM bounds nothing of the chunk's from a few frames, so an
        // SSIM report is only held for a re-run: far above the frames checked, or those far
        // under the target (both in SSIM's decibels).
        let measured: Vec<f64> = measured.iter().filter_map(|f| f.ssim).collect();
        if measured.is_empty() {
            return None;
        }
        let window = ssim_db(measured.iter().sum::<f64>() / measured.len() as f64);
        if ssim_db(claim.value) > window + CLAIM_ABOVE_WINDOW_DB
            || window < ssim_db(goal) - TARGET_SHORTFALL_DB
        {
            return Some(Judgment::Suspect(format!(
                "the chunk reports SSIM {:.4} against a {goal} target; {frames} measure {:.4}",
                claim.value,
                1.0 - 10f64.powf(-window / 10.0)
            )));
        }
        return None;
    }
    let ceiling = quality::psnr_ceiling(measured, total);
    if claim.value > ceiling + CLAIM_SLACK_DB {
        return Some(Judgment::Reject(format!(
            "the chunk reports PSNR {:.2} dB; {frames} alone hold it to {ceiling:.2} dB",
            claim.value
        )));
    }
    let window = quality::pooled_psnr(measured);
    if claim.value > window + CLAIM_ABOVE_WINDOW_DB {
        return Some(Judgment::Suspect(format!(
            "the chunk reports PSNR {:.2} dB; {frames} measure {window:.2} dB",
            claim.value
        )));
    }
    if ceiling < goal - TARGET_SHORTFALL_DB {
        return Some(Judgment::Suspect(format!(
            "{frames} hold the chunk to {ceiling:.2} dB, under its {goal} dB target"
        )));
    }
    None
}

/// Checks a video result against its source chunk.
async fn check_video(
    result: &Path,
    source: &Path,
    meta: &serde_json::Value,
) -> Result<Judgment, String> {
    let table = match frame_table(result).await {
        Ok(table) => table,
        Err(e) => {
            return Ok(Judgment::Reject(format!(
                "the chunk is not readable video: {e}"
            )));
        }
    };
    // Tasks made before codecs could be chosen were H.264.
    let codec = meta["encoder"]["codec"].as_str().unwrap_or("h264");
    if table.codec != codec {
        return Ok(Judgment::Reject(format!(
            "the chunk is {} video, not {codec}",
            table.codec
        )));
    }
    if table.pix_fmt != "yuv420p" {
        return Ok(Judgment::Reject(format!(
            "the chunk's pixel format is {}, not yuv420p",
            table.pix_fmt
        )));
    }
    let size = (
        meta["width"].as_u64().unwrap_or(0) as u32,
        meta["height"].as_u64().unwrap_or(0) as u32,
    );
    if (table.width, table.height) != size {
        return Ok(Judgment::Reject(format!(
            "the chunk is {}x{}, not {}x{}",
            table.width, table.height, size.0, size.1
        )));
    }
    let expected = meta["frames"].as_u64().unwrap_or(0) as usize;
    if table.times.len() != expected {
        return Ok(Judgment::Reject(format!(
            "the chunk has {} frames, the source chunk {expected}",
            table.times.len()
        )));
    }
    if table.keys.first() != Some(&0) {
        return Ok(Judgment::Reject(
            "the chunk does not start with a keyframe".into(),
        ));
    }
    // Checks decode from the keyframe before the frame they pick: a longer GOP than asked
    // only makes them dearer.
    if let Some(keyint) = meta["keyint"].as_u64()
        && table.longest_gop() as u64 > keyint
    {
        return Ok(Judgment::Reject(format!(
            "the chunk has {} frames between keyframes, at most {keyint} were asked for",
            table.longest_gop()
        )));
    }
    let target = &meta["encoder"]["target"];
    let claim = if target.is_object() {
        match search_claim(table.name.as_deref(), target) {
            Ok(claim) => Some(claim),
            Err(why) => return Ok(Judgment::Reject(why)),
        }
    } else {
        None
    };
    let source_table = if meta["from"].is_number() {
        source_frame_table(source).await
    } else {
        frame_table(source).await
    };
    let source_table = source_table.map_err(|e| format!("the source chunk cannot be read: {e}"))?;
    // A chunk cut from the keyframe before its frames holds others around them: its own are
    // those shown from `from` to before `to` (to the millisecond the file keeps).
    let skip = meta["from"].as_f64().map_or(0, |from| {
        source_table.times.partition_point(|&t| t < from - 0.0005)
    });
    let own = match meta["to"].as_f64() {
        Some(to) => source_table.times.partition_point(|&t| t < to - 0.0005),
        None => source_table.times.len(),
    }
    .saturating_sub(skip);
    // The source frame each of the result's frames pictures: its own frames one for one, or
    // at a new frame rate, the latest shown by each frame's time.
    let rate = meta["rate"].as_str().and_then(Retime::parse);
    let own_times = &source_table.times[skip.min(source_table.times.len())..][..own];
    let made = match (rate, meta["to"].as_f64()) {
        (None, _) => own as u64,
        (Some(rate), Some(to)) if own > 0 => rate.slots(own_times[0], to),
        // The last chunk's slots run to the video's end, which only the split knew.
        (Some(_), _) => expected as u64,
    };
    // Its own frames decode from a keyframe of the chunk (undecodable leading frames of an
    // open GOP before it are not its own).
    if own == 0 || made != expected as u64 || source_table.key_before(skip).is_none() {
        return Err(format!(
            "the source chunk has {own} frames of its own (making {made}) and keyframes at \
             {:?}, not the {expected} frames recorded",
            &source_table.keys[..source_table.keys.len().min(4)]
        ));
    }
    let pictured: Vec<usize> = match rate {
        Some(rate) => rate.pictured(own_times, expected),
        None => (0..expected).collect(),
    }
    .into_iter()
    .map(|m| m + skip)
    .collect();
    // The one choice the device cannot know: which frame, from the coordinator's randomness.
    let picked = rand::rng().random_range(0..expected);
    // The window starts at a keyframe of the result, or later where the source's keyframe
    // before the picked frame's is later (neither side decodes much it does not compare).
    let source_key = source_table.key_before(pictured[picked]).unwrap_or(0);
    let from = table
        .key_before(picked)
        .unwrap_or(0)
        .max(pictured.partition_point(|&m| m < source_key).min(picked));
    // At least MIN_WINDOW frames are compared: a frame picked on (or just after) a keyframe
    // would otherwise be checked alone, and a chunk whose only true frame is its first passed
    // one time in as many frames as it has.
    let to = picked.max((from + MIN_WINDOW - 1).min(expected - 1));
    let window = Window { from, to };
    // How the task made its frames from the source's: framed to an aspect ratio (the filters
    // the coordinator gave it), or scaled to the size asked.
    let shape = match meta["geometry"].as_str() {
        Some(geometry) => Some(geometry.to_string()),
        None => meta["scale"]
            .as_bool()
            .unwrap_or(true)
            .then(|| format!("scale={}:{}:flags=bicubic", size.0, size.1)),
    };
    // The stills it carries picture their frames (and it carries no others).
    if let Some(reason) = super::stills::check(
        result,
        source,
        &source_table,
        &pictured,
        meta,
        shape.as_deref(),
    )
    .await?
    {
        return Ok(Judgment::Reject(reason));
    }
    match compare_window(
        result,
        &table,
        source,
        &source_table,
        &pictured[from..=to],
        window,
        size,
        shape.as_deref(),
        claim.as_ref().is_some_and(|c| c.metric == "ssim"),
        watermark_area(meta),
    )
    .await?
    {
        Err(reason) => Ok(Judgment::Reject(reason)),
        Ok(measures) => {
            // A quality search's own choice sets what its frames must reach.
            let crf = match &claim {
                // Rounded up: the worse quality of the two whole rate factors around it.
                Some(claim) => Some(claim.crf.ceil().clamp(0.0, 63.0) as u8),
                None => meta["encoder"]["crf"].as_u64().map(|c| c.min(63) as u8),
            };
            let bitrate = meta["encoder"]["bitrate"].is_string();
            let crf = crf.map(|c| quality::x264_equivalent(codec, c));
            let expect = Expectation::for_crf(if bitrate { None } else { crf });
            let judged = quality::judge(&measures, expect);
            if !matches!(judged, quality::Judgment::Bad(_))
                && let Some(verdict) = claim
                    .as_ref()
                    .and_then(|c| judge_claim(c, target, &measures, expected))
            {
                return Ok(verdict);
            }
            Ok(match judged {
                quality::Judgment::Good => Judgment::Accept,
                quality::Judgment::Suspect(why) => Judgment::Suspect(why),
                quality::Judgment::Bad(why) => Judgment::Reject(why),
            })
        }
    }
}

/// Where the task's watermark lies in its frames (its meta's `mark`: x, y, width, height).
fn watermark_area(meta: &serde_json::Value) -> Option<quality::Area> {
    let area: Vec<usize> = meta["mark"]
        .as_array()?
        .iter()
        .map(|v| v.as_u64().map(|n| n as usize))
        .collect::<Option<_>>()?;
    match area[..] {
        [x, y, w, h] => Some((x, y, w, h)),
        _ => None,
    }
}

/// Writes a task's watermark (its meta's `watermark`, base64) into `dir` and points the task's
/// filters at it there: the task reads it from its own working directory.
fn watermark_here(meta: &mut serde_json::Value, dir: &Path) -> Result<(), String> {
    use base64::Engine;
    let Some(image) = meta["watermark"].as_str() else {
        return Ok(());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(image)
        .map_err(|e| format!("the task's watermark is not base64: {e}"))?;
    let path = dir.join(WATERMARK_FILE);
    std::fs::write(&path, bytes).map_err(|e| format!("writing the watermark failed: {e}"))?;
    let path = path.to_string_lossy();
    if path.contains(['\'', '\\', ';', ',', '[', ']']) {
        return Err(format!(
            "the scratch path {path} cannot be named in a filter"
        ));
    }
    if let Some(geometry) = meta["geometry"].as_str() {
        let here = geometry.replace(
            &format!("movie={WATERMARK_FILE},"),
            &format!("movie='{path}',"),
        );
        meta["geometry"] = serde_json::json!(here);
    }
    Ok(())
}

/// Sample rate the audio is compared at, Hz.
const AUDIO_RATE: usize = 8000;
/// Windows compared, and their length in samples.
const AUDIO_WINDOWS: usize = 8;
const AUDIO_WINDOW: usize = AUDIO_RATE / 2;
/// Largest shift searched between the two signals, in samples (40 ms): decoders and the
/// encoder's priming may leave them a few milliseconds apart.
const AUDIO_LAG: usize = AUDIO_RATE / 25;
/// RMS (of full scale) below which a window is silent.
const SILENT_RMS: f64 = 0.003;
/// Lowest best correlation of a window that is the source's sound. AAC-LC at the lowest
/// bitrate allowed keeps the 0–4 kHz waveform above 0.9 on tones and noise alike; silence, a
/// tone of another pitch or another sound score near 0.
const MIN_CORRELATION: f64 = 0.6;

/// Decodes `path`'s first audio stream to 8 kHz mono and keeps the samples of `spans`
/// (start, length in samples); returns them and how many samples the whole stream had.
fn decode_spans(tool: &mut tools::Tool, spans: &[(usize, usize)]) -> (Vec<Vec<f32>>, usize) {
    let mut kept: Vec<Vec<f32>> = spans
        .iter()
        .map(|&(_, len)| Vec::with_capacity(len))
        .collect();
    let Some(mut out) = tool.stdout() else {
        return (kept, 0);
    };
    let mut position = 0usize;
    let mut buffer = vec![0u8; 64 * 1024];
    // An odd byte count leaves half a sample for the next read.
    let mut carry: Option<u8> = None;
    let mut take = |lo: u8, hi: u8, position: &mut usize| {
        let sample = f32::from(i16::from_le_bytes([lo, hi])) / 32768.0;
        for (span, keep) in spans.iter().zip(kept.iter_mut()) {
            if (span.0..span.0 + span.1).contains(position) {
                keep.push(sample);
            }
        }
        *position += 1;
    };
    loop {
        let mut data = match out.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => &buffer[..n],
        };
        if let Some(lo) = carry.take()
            && let Some((&hi, rest)) = data.split_first()
        {
            take(lo, hi, &mut position);
            data = rest;
        }
        let pairs = data.chunks_exact(2);
        carry = pairs.remainder().first().copied();
        for pair in pairs {
            take(pair[0], pair[1], &mut position);
        }
    }
    (kept, position)
}

/// The best normalised correlation of `source` with `result` shifted by up to [`AUDIO_LAG`]
/// samples (`result` holds [`AUDIO_LAG`] samples more on each side where it can).
fn best_correlation(source: &[f32], result: &[f32], offset: usize) -> f64 {
    let energy = |s: &[f32]| s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
    let source_energy = energy(source);
    let mut best: f64 = 0.0;
    for start in 0..=(offset * 2) {
        let Some(part) = result.get(start..start + source.len()) else {
            break;
        };
        let denominator = (source_energy * energy(part)).sqrt();
        if denominator > 0.0 {
            let dot: f64 = source
                .iter()
                .zip(part)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            best = best.max(dot / denominator);
        }
    }
    best
}

fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        / samples.len() as f64)
        .sqrt()
}

/// FFmpeg arguments decoding a file's first audio stream to 8 kHz mono 16-bit on stdout.
fn audio_args(path: &Path) -> Vec<String> {
    let mut args: Vec<String> = ["-nostdin", "-v", "error", "-i"].map(String::from).to_vec();
    args.push(path.to_string_lossy().into_owned());
    args.extend(
        [
            "-map", "0:a:0", "-ac", "1", "-ar", "8000", "-f", "s16le", "-",
        ]
        .map(String::from),
    );
    args
}

/// Integrated loudness of `path`'s first audio stream (EBU R128, LUFS), as FFmpeg's `ebur128`
/// filter measures it (its per-frame log at the verbose level, which is not shown); `None` for
/// silence (below its gate).
async fn integrated_loudness(path: &Path) -> Result<Option<f64>, String> {
    let file = path.to_string_lossy();
    let args = [
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-v",
        "info",
        "-i",
        &file,
        "-map",
        "0:a:0",
        "-af",
        "ebur128=framelog=verbose",
        "-f",
        "null",
        "-",
    ];
    let (_, log) = super::tool_with_complaints("ffmpeg", &args).await?;
    let summary = log
        .rsplit_once("Integrated loudness:")
        .map(|(_, rest)| rest)
        .ok_or("FFmpeg's ebur128 filter printed no summary")?;
    let value = summary
        .split_whitespace()
        .skip_while(|w| *w != "I:")
        .nth(1)
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or("FFmpeg's ebur128 summary has no integrated loudness")?;
    Ok((value > SILENCE_LUFS).then_some(value))
}

/// Below this (LUFS) a track is silence as far as its loudness goes.
const SILENCE_LUFS: f64 = -60.0;
/// How far (LU) a normalised track may be from the loudness asked: FFmpeg's two passes landed
/// within 0.2 LU in the tests here (-23.0 for -23, -15.8 for -16).
const LOUDNESS_SUSPECT_LU: f64 = 1.0;
/// Beyond this (LU), the track was not normalised as asked.
const LOUDNESS_WRONG_LU: f64 = 3.0;

/// Compares the sound of `result` with `source` over random windows; `gain` is how much
/// louder the result is meant to be (loudness normalisation), which silent windows may be too.
async fn compare_audio(
    result: &Path,
    source: &Path,
    duration: f64,
    gain: f64,
) -> Result<Judgment, String> {
    let total = (duration * AUDIO_RATE as f64) as usize;
    if total < AUDIO_WINDOW + 2 * AUDIO_LAG {
        return Ok(Judgment::Accept);
    }
    // Where to listen, from the coordinator's randomness, chosen now.
    let mut starts: Vec<usize> = {
        let mut rng = rand::rng();
        (0..AUDIO_WINDOWS)
            .map(|_| rng.random_range(AUDIO_LAG..=total - AUDIO_WINDOW - AUDIO_LAG))
            .collect()
    };
    starts.sort_unstable();
    let source_spans: Vec<(usize, usize)> = starts.iter().map(|&s| (s, AUDIO_WINDOW)).collect();
    let result_spans: Vec<(usize, usize)> = starts
        .iter()
        .map(|&s| (s - AUDIO_LAG, AUDIO_WINDOW + 2 * AUDIO_LAG))
        .collect();
    let (mut source_tool, _source_guard) = tools::start("ffmpeg", &audio_args(source), false)?;
    let (mut result_tool, _result_guard) = tools::start("ffmpeg", &audio_args(result), false)?;
    let decoded = tokio::task::spawn_blocking(move || {
        let source = std::thread::spawn(move || {
            let kept = decode_spans(&mut source_tool, &source_spans);
            (kept, source_tool.finish())
        });
        let kept = decode_spans(&mut result_tool, &result_spans);
        let result = (kept, result_tool.finish());
        (source.join(), result)
    })
    .await
    .map_err(|e| format!("comparing sound failed: {e}"))?;
    let (source, ((result_windows, result_samples), result_status)) = decoded;
    let ((source_windows, _), source_status) =
        source.map_err(|_| "the source audio decoder panicked".to_string())?;
    if !source_status.is_ok_and(|s| s.success()) {
        return Err("the source audio could not be decoded".into());
    }
    if !result_status.is_ok_and(|s| s.success()) {
        return Ok(Judgment::Reject("the audio does not decode".into()));
    }
    if result_samples < total.saturating_sub(AUDIO_RATE / 10) {
        return Ok(Judgment::Reject(format!(
            "the audio decodes to {:.3} s, the source lasts {duration:.3} s",
            result_samples as f64 / AUDIO_RATE as f64
        )));
    }
    let listen = || {
        for ((start, source), result) in starts.iter().zip(&source_windows).zip(&result_windows) {
            let at = *start as f64 / AUDIO_RATE as f64;
            let (loudness, heard) = (rms(source), rms(result));
            if loudness < SILENT_RMS {
                if heard > (4.0 * loudness * gain).max(SILENT_RMS * gain.max(1.0)) {
                    return Judgment::Reject(format!(
                        "the audio has sound at {at:.2} s where the source is silent"
                    ));
                }
                continue;
            }
            let correlation = best_correlation(source, result, AUDIO_LAG);
            if correlation < MIN_CORRELATION {
                return Judgment::Reject(format!(
                    "the audio at {at:.2} s is not the source's sound (correlation \
                     {correlation:.2}, at least {MIN_CORRELATION} expected)"
                ));
            }
        }
        Judgment::Accept
    };
    Ok(tools::counted(tools::current_stage(), listen))
}

/// Checks an audio result's format, length and sound.
async fn check_audio(
    result: &Path,
    source: &Path,
    meta: &serde_json::Value,
) -> Result<Judgment, String> {
    let stream = match probe_stream(
        result,
        "a:0",
        "codec_name,profile,sample_rate,channels,duration",
        &[],
    )
    .await
    {
        Ok(stream) => stream,
        Err(e) => return Ok(Judgment::Reject(format!("the audio does not decode: {e}"))),
    };
    let encoder = &meta["encoder"];
    // Tasks made before codecs could be chosen were AAC.
    let opus = encoder["audio_codec"] == "opus";
    let format_ok = if opus {
        stream["codec_name"] == "opus"
    } else {
        stream["codec_name"] == "aac" && stream["profile"] == "LC"
    };
    if !format_ok {
        return Ok(Judgment::Reject(format!(
            "the audio is {} {}, not {}",
            stream["codec_name"],
            stream["profile"],
            if opus { "Opus" } else { "AAC-LC" }
        )));
    }
    let rate = stream["sample_rate"]
        .as_str()
        .and_then(|r| r.parse::<u64>().ok());
    // Opus always decodes at 48 kHz, whatever rate it was encoded from.
    let asked_rate = if opus {
        Some(48_000)
    } else {
        encoder["audio_sample_rate"].as_u64()
    };
    if let Some(asked) = asked_rate
        && rate != Some(asked)
    {
        return Ok(Judgment::Reject(format!(
            "the audio is sampled at {} Hz, not {asked} Hz",
            rate.unwrap_or(0)
        )));
    }
    if let Some(asked) = encoder["audio_channels"].as_u64()
        && stream["channels"].as_u64() != Some(asked)
    {
        return Ok(Judgment::Reject(format!(
            "the audio has {} channels, not {asked}",
            stream["channels"]
        )));
    }
    let duration: f64 = stream["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    let Some(expected) = meta["duration"].as_f64() else {
        return Ok(Judgment::Accept);
    };
    if (duration - expected).abs() > 0.1 {
        return Ok(Judgment::Reject(format!(
            "the audio lasts {duration:.3} s, the source {expected:.3} s"
        )));
    }
    let mut gain = 1.0;
    if let Some(asked) = encoder["loudness"].as_f64() {
        let heard = match integrated_loudness(result).await {
            Ok(heard) => heard,
            // Whose fault: the source measured the same way tells.
            Err(e) => {
                integrated_loudness(source).await?;
                return Ok(Judgment::Reject(format!(
                    "the audio's loudness cannot be measured: {e}"
                )));
            }
        };
        // Silence stays silence: the windows below tell whether it should be.
        if let Some(heard) = heard {
            let off = (heard - asked).abs();
            if off > LOUDNESS_WRONG_LU {
                return Ok(Judgment::Reject(format!(
                    "the audio is at {heard:.1} LUFS, {asked} LUFS was asked"
                )));
            }
            if off > LOUDNESS_SUSPECT_LU {
                return Ok(Judgment::Suspect(format!(
                    "the audio is at {heard:.1} LUFS, {off:.1} LU from the {asked} LUFS asked"
                )));
            }
            if let Some(original) = integrated_loudness(source).await? {
                gain = 10f64.powf((heard - original) / 20.0);
            }
        }
    }
    compare_audio(result, source, expected, gain).await
}

#[async_trait]
impl Validator for VideoValidator {
    async fn validate(
        &self,
        _job: &JobRecord,
        result: &ResultRecord,
        blobs: &dyn BlobStore,
    ) -> Result<Judgment, StorageError> {
        let _slot =
            self.slots.acquire().await.map_err(|_| {
                StorageError::Backend("the video validator is shutting down".into())
            })?;
        let meta = result.task.chunk.meta.clone().unwrap_or_default();
        let Some(source_key) = result.task.chunk.input_key.as_deref() else {
            return Ok(Judgment::Reject(
                "the chunk has no source to compare with".into(),
            ));
        };
        let dir = scratch()?;
        let mut meta = meta;
        if let Err(why) = watermark_here(&mut meta, dir.path()) {
            return Err(StorageError::Backend(format!("checking the result: {why}")));
        }
        let output = readable_output(blobs, &result.output, &dir.path().join("result")).await?;
        let source = readable(blobs, source_key, &dir.path().join("source")).await?;
        let judged = async {
            match meta["kind"].as_str() {
                Some("video") => check_video(&output, &source, &meta).await,
                Some("audio") => check_audio(&output, &source, &meta).await,
                other => Ok(Judgment::Reject(format!("unknown chunk kind {other:?}"))),
            }
        }
        .await;
        // A source that cannot be read is the coordinator's trouble, never the device's.
        judged.map_err(|e| StorageError::Backend(format!("checking the result: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> serde_json::Value {
        serde_json::json!({"metric": "psnr", "value": 40.0, "crf_low": 10, "crf_high": 45, "crf_step": 0.25})
    }

    #[test]
    fn a_quality_search_claim_is_read_strictly() {
        let claim = search_claim(Some("idlegrid crf=24 psnr=40.123456"), &target()).unwrap();
        assert_eq!(
            (claim.crf, claim.metric.as_str(), claim.value),
            (24.0, "psnr", 40.123456)
        );
        let quarter = search_claim(Some("idlegrid crf=23.75 psnr=40"), &target()).unwrap();
        assert_eq!(quarter.crf, 23.75);
        for (name, needle) in [
            (None, "does not say"),
            (Some("crf=24 psnr=40"), "is not its quality search's result"),
            (
                Some("idlegrid crf=24 psnr=40 extra"),
                "is not its quality search's result",
            ),
            (
                Some("idlegrid crf=x psnr=40"),
                "is not its quality search's result",
            ),
            (Some("idlegrid crf=24 ssim=0.9"), "the job's target is psnr"),
            (Some("idlegrid crf=5 psnr=40"), "may use 10 to 45"),
            (Some("idlegrid crf=46 psnr=40"), "may use 10 to 45"),
            (Some("idlegrid crf=23.3 psnr=40"), "in steps of 0.25"),
            (
                Some("idlegrid crf=inf psnr=40"),
                "is not its quality search's result",
            ),
            (Some("idlegrid crf=24 psnr=NaN"), "cannot be"),
            (Some("idlegrid crf=24 psnr=400"), "cannot be"),
        ] {
            let err = search_claim(name, &target()).unwrap_err();
            assert!(err.contains(needle), "{name:?}: {err}");
        }
    }

    #[test]
    fn a_claimed_psnr_the_checked_frames_rule_out_is_rejected() {
        // Ten frames at 36 dB (219 peak) of a 20-frame chunk: the chunk is at most 3.01 dB
        // above their pooled 37.32 dB (255 peak), however good the others are.
        let frames: Vec<FrameMeasure> = (0..10)
            .map(|index| FrameMeasure {
                index,
                psnr_db: 36.0,
                detail: None,
                repeats: false,
                ssim: None,
                mark_psnr: None,
                worst_block_db: 100.0,
            })
            .collect();
        let pooled = quality::pooled_psnr(&frames);
        assert!((pooled - (36.0 + 20.0 * (255.0f64 / 219.0).log10())).abs() < 1e-9);
        let ceiling = quality::psnr_ceiling(&frames, 20);
        assert!((ceiling - pooled - 3.0103).abs() < 1e-3);
        let claim = |crf, value| SearchClaim {
            crf,
            metric: "psnr".into(),
            value,
        };
        assert_eq!(
            judge_claim(&claim(24.0, pooled + 2.9), &target(), &frames, 20),
            None
        );
        // Above the frames checked by more than 3 dB: believed only if a re-run agrees.
        assert!(matches!(
            judge_claim(&claim(24.0, ceiling - 0.01), &target(), &frames, 20),
            Some(Judgment::Suspect(_))
        ));
        assert!(matches!(
            judge_claim(&claim(24.0, ceiling + 0.2), &target(), &frames, 20),
            Some(Judgment::Reject(_))
        ));
        // The whole chunk measured at 37.3 dB against a 40 dB target: a search cut short,
        // whatever rate factor it names (the lowest too: a cheap encode could claim it).
        for crf in [30.0, 10.0] {
            assert!(matches!(
                judge_claim(&claim(crf, 30.0), &target(), &frames, 10),
                Some(Judgment::Suspect(_))
            ));
        }
        // SSIM: frames at 0.95 (13 dB) against a 0.99 (20 dB) target are held, whatever the
        // report says; frames at 0.99 with a report of 0.99 pass; a report of 0.999 (30 dB)
        // over them is held.
        let ssim_target = serde_json::json!({"metric": "ssim", "value": 0.99, "crf_low": 10,
            "crf_high": 45, "crf_step": 0.25});
        let at = |ssim| -> Vec<FrameMeasure> {
            frames
                .iter()
                .map(|f| FrameMeasure {
                    ssim: Some(ssim),
                    ..*f
                })
                .collect()
        };
        let said = |value| SearchClaim {
            crf: 10.0,
            metric: "ssim".into(),
            value,
        };
        assert!(matches!(
            judge_claim(&said(0.99), &ssim_target, &at(0.95), 20),
            Some(Judgment::Suspect(_))
        ));
        assert_eq!(judge_claim(&said(0.99), &ssim_target, &at(0.99), 20), None);
        assert!(matches!(
            judge_claim(&said(0.999), &ssim_target, &at(0.99), 20),
            Some(Judgment::Suspect(_))
        ));
        assert_eq!(judge_claim(&said(0.99), &ssim_target, &frames, 20), None);
    }

    #[test]
    fn correlation_finds_a_shifted_copy_and_not_another_sound() {
        let tone = |freq: f64, n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    (2.0 * std::f64::consts::PI * freq * i as f64 / AUDIO_RATE as f64).sin() as f32
                        * 0.5
                })
                .collect()
        };
        let source = tone(440.0, AUDIO_WINDOW + 2 * AUDIO_LAG);
        let window = &source[AUDIO_LAG..AUDIO_LAG + AUDIO_WINDOW];
        // The same sound, shifted by 7 samples.
        let mut shifted = vec![0.0f32; 7];
        shifted.extend_from_slice(&source[..source.len() - 7]);
        assert!(best_correlation(window, &shifted, AUDIO_LAG) > 0.99);
        // Another pitch, and silence.
        let other = tone(1000.0, AUDIO_WINDOW + 2 * AUDIO_LAG);
        assert!(best_correlation(window, &other, AUDIO_LAG) < 0.3);
        let silence = vec![0.0f32; AUDIO_WINDOW + 2 * AUDIO_LAG];
        assert_eq!(best_correlation(window, &silence, AUDIO_LAG), 0.0);
        assert!(rms(&silence) < SILENT_RMS && rms(window) > 0.3);
    }
}
