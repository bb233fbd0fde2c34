//! What FFprobe says about a media file, and the checks that turn a file into acceptable video.

use super::tool;
use serde::Serialize;
use std::path::Path;

/// Largest frame side accepted, in pixels.
const MAX_SIDE: u32 = 8192;

/// The facts of a source video, recorded on the job.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// Container format as FFprobe names it.
    pub container: String,
    /// Video codec.
    pub codec: String,
    /// Coded width.
    pub width: u32,
    /// Coded height.
    pub height: u32,
    /// Rotation from the display matrix, in degrees.
    pub rotation: i32,
    /// Average frame rate.
    pub fps: f64,
    /// Frames counted by decoding the whole video stream (every chunk).
    pub frames: u64,
    /// Duration of the video stream, in seconds.
    pub duration: f64,
    /// Number of audio streams.
    pub audio_streams: usize,
    /// Duration of the first audio stream, in seconds.
    pub audio_duration: Option<f64>,
    /// Whether the frame rate is variable.
    pub variable_frame_rate: bool,
}

fn ratio(value: Option<&serde_json::Value>) -> Option<f64> {
    let (n, d) = value?.as_str()?.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (d > 0.0 && n > 0.0).then_some(n / d)
}

fn seconds(value: Option<&serde_json::Value>) -> Option<f64> {
    value?.as_str()?.parse().ok()
}

/// Probes a source; the error is a reason a customer understands.
pub async fn probe(path: &Path) -> Result<Facts, String> {
    let file = path.to_string_lossy();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the input: {e}"))?;
    if meta.len() == 0 {
        return Err("the input is empty (0 bytes)".into());
    }
    let json = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-print_format",
            "json",
            "-count_packets",
            "-show_format",
            "-show_streams",
            &file,
        ],
    )
    .await
    .map_err(|e| format!("the input is not a media file FFmpeg can read ({e})"))?;
    let info: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("ffprobe gave unreadable output: {e}"))?;
    let streams = info["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video" && s["disposition"]["attached_pic"] != 1)
        .ok_or_else(|| {
            if streams.iter().any(|s| s["codec_type"] == "audio") {
                "the input has no video stream (audio only)".to_string()
            } else {
                "the input has no video stream".to_string()
            }
        })?;
    let audio: Vec<&serde_json::Value> = streams
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .collect();
    let width = video["width"].as_u64().unwrap_or(0) as u32;
    let height = video["height"].as_u64().unwrap_or(0) as u32;
    if !(2..=MAX_SIDE).contains(&width) || !(2..=MAX_SIDE).contains(&height) {
        return Err(format!(
            "the video is {width}x{height}; sides from 2 to {MAX_SIDE} pixels are accepted"
        ));
    }
    let rotation = video["side_data_list"]
        .as_array()
        .and_then(|list| list.iter().find_map(|d| d["rotation"].as_f64()))
        .or_else(|| {
            video["tags"]["rotate"]
                .as_str()
                .and_then(|r| r.parse().ok())
        })
        .unwrap_or(0.0) as i32;
    let avg = ratio(video.get("avg_frame_rate"));
    let real = ratio(video.get("r_frame_rate"));
    // Packets for now; the partitioner replaces this with the frames that decode.
    let frames = video["nb_read_packets"]
        .as_str()
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or("the video stream cannot be read (its packets could not be counted)")?;
    if frames == 0 {
        return Err("the video stream has no frames".into());
    }
    let fps = avg.or(real).unwrap_or(0.0);
    let duration = seconds(video.get("duration"))
        .or_else(|| seconds(info["format"].get("duration")))
        .unwrap_or(if fps > 0.0 { frames as f64 / fps } else { 0.0 });
    Ok(Facts {
        container: info["format"]["format_name"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        codec: video["codec_name"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        width,
        height,
        rotation,
        fps,
        frames,
        duration,
        audio_streams: audio.len(),
        audio_duration: audio
            .first()
            .and_then(|a| seconds(a.get("duration")))
            .or_else(|| audio.first().map(|_| duration)),
        variable_frame_rate: matches!((avg, real), (Some(a), Some(r)) if (a - r).abs() > 0.01 * r),
    })
}

/// Times of the video's keyframes, in seconds, ascending: the packets flagged as keyframes,
/// which are where the segment muxer can cut (read without decoding).
pub async fn keyframes(path: &Path) -> Result<Vec<f64>, String> {
    let out = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
            &path.to_string_lossy(),
        ],
    )
    .await?;
    let mut times: Vec<f64> = out
        .lines()
        .filter_map(|l| {
            let (time, flags) = l.split_once(',')?;
            flags
                .contains('K')
                .then(|| time.trim().parse::<f64>().ok())
                .flatten()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// Packets (= frames) of the first video stream, counted without decoding.
pub async fn count_packets(path: &Path) -> Result<u64, String> {
    let out = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            &path.to_string_lossy(),
        ],
    )
    .await?;
    out.trim()
        .trim_end_matches(',')
        .parse()
        .map_err(|_| format!("could not count packets (ffprobe said {out:?})"))
}
