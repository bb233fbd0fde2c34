//! What FFprobe says about a media file, and the checks that turn a file into acceptable video.

use super::{tool, tool_with_complaints};
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
    /// When the video stream starts, in seconds on the file's clock (its first frame's time).
    pub start: f64,
    /// When the file starts (its earliest stream), in seconds: FFmpeg reads a file's streams
    /// from there.
    pub file_start: f64,
    /// Number of audio streams.
    pub audio_streams: usize,
    /// Duration of the first audio stream, in seconds.
    pub audio_duration: Option<f64>,
    /// Whether the frame rate is variable.
    pub variable_frame_rate: bool,
    /// The audio streams, in order.
    pub audio: Vec<Track>,
    /// The subtitle streams, in order.
    pub subtitles: Vec<Track>,
}

/// One audio or subtitle stream of a source.
#[derive(Debug, Clone, Serialize)]
pub struct Track {
    /// Its position among the source's streams of its kind (`0:a:N`, `0:s:N`).
    pub position: usize,
    /// Codec, as FFmpeg names it.
    pub codec: String,
    /// ISO 639-2 language tag, when the source has one.
    pub language: Option<String>,
    /// Duration in seconds, when the container says.
    pub duration: Option<f64>,
    /// When it starts, in seconds on the file's clock.
    pub start: f64,
    /// Channels (audio).
    pub channels: Option<u64>,
}

impl Track {
    fn of(position: usize, stream: &serde_json::Value) -> Track {
        let start = seconds(stream.get("start_time")).unwrap_or(0.0);
        let language = stream["tags"]["language"]
            .as_str()
            // What reaches the output's tags and the customer's page: letters only.
            .filter(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()))
            .filter(|l| *l != "und")
            .map(str::to_ascii_lowercase);
        Track {
            position,
            codec: stream["codec_name"]
                .as_str()
                .filter(|c| c.len() <= 32)
                .unwrap_or("unknown")
                .to_string(),
            language,
            duration: seconds(stream.get("duration")).or_else(|| {
                // Matroska's tag is when the track ends on the file's clock, not how long.
                let end = stream["tags"]["DURATION"]
                    .as_str()
                    .and_then(clock_seconds)?;
                Some((end - start).max(0.0))
            }),
            start,
            channels: stream["channels"].as_u64(),
        }
    }

    /// Whether it is text (carried as mov_text or WebVTT), not pictures (PGS, DVD).
    pub fn is_text(&self) -> bool {
        matches!(
            self.codec.as_str(),
            "subrip" | "srt" | "ass" | "ssa" | "webvtt" | "mov_text" | "text"
        )
    }
}

fn ratio(value: Option<&serde_json::Value>) -> Option<f64> {
    let (n, d) = value?.as_str()?.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (d > 0.0 && n > 0.0).then_some(n / d)
}

fn seconds(value: Option<&serde_json::Value>) -> Option<f64> {
    value?
        .as_str()?
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite())
}

/// `00:00:03.500000000` (how Matroska tags a track's duration) in seconds.
fn clock_seconds(text: &str) -> Option<f64> {
    let mut parts = text.trim().splitn(3, ':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let secs: f64 = parts.next()?.parse().ok()?;
    let total = hours * 3600.0 + minutes * 60.0 + secs;
    (total.is_finite() && total >= 0.0).then_some(total)
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
    // The container's index (MP4, MOV) says how many frames it holds; fewer readable ones
    // mean the file was cut short.
    if let Some(indexed) = video["nb_frames"]
        .as_str()
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&n| n > frames)
    {
        return Err(format!(
            "the video is damaged or truncated: its index lists {indexed} frames, but only {frames} can be read"
        ));
    }
    let fps = avg.or(real).unwrap_or(0.0);
    let duration = seconds(video.get("duration"))
        .or_else(|| seconds(info["format"].get("duration")))
        .unwrap_or(if fps > 0.0 { frames as f64 / fps } else { 0.0 });
    let audio_tracks: Vec<Track> = audio
        .iter()
        .enumerate()
        .map(|(i, s)| Track::of(i, s))
        .map(|mut t| {
            // A container that does not say lasts as long as the video.
            t.duration = t.duration.or(Some(duration));
            t
        })
        .collect();
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
        start: seconds(video.get("start_time")).unwrap_or(0.0),
        file_start: seconds(info["format"].get("start_time")).unwrap_or(0.0),
        audio_streams: audio.len(),
        audio_duration: audio_tracks.first().and_then(|t| t.duration),
        variable_frame_rate: matches!((avg, real), (Some(a), Some(r)) if (a - r).abs() > 0.01 * r),
        audio: audio_tracks,
        subtitles: streams
            .iter()
            .filter(|s| s["codec_type"] == "subtitle")
            .enumerate()
            .map(|(i, s)| Track::of(i, s))
            .collect(),
    })
}

/// One packet of a video stream, read without decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packet {
    /// Presentation time, in seconds; `None` when the container has none.
    pub pts: Option<f64>,
    /// Flagged as a keyframe (where the segment muxer can cut).
    pub key: bool,
}

/// The first video stream's packets in decode order, read without decoding. A file that ends
/// early or breaks off mid-packet is refused: its damage would otherwise surface as chunks
/// that no worker can encode.
pub async fn packets(path: &Path) -> Result<Vec<Packet>, String> {
    let (out, complaints) = tool_with_complaints(
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
    if let Some(problem) = super::damage(&complaints) {
        return Err(problem);
    }
    Ok(parse_packets(&out))
}

/// Parses `ffprobe -show_entries packet=pts_time,flags -of csv=p=0`.
fn parse_packets(csv: &str) -> Vec<Packet> {
    csv.lines()
        .filter_map(|l| {
            let (time, flags) = l.split_once(',')?;
            Some(Packet {
                pts: time.trim().parse::<f64>().ok(),
                key: flags.contains('K'),
            })
        })
        .collect()
}

/// What a chunk cut at a keyframe holds, from its packets: their count, which equals the
/// frames it decodes to, and the presentation index of each keyframe. `None` if the chunk
/// cannot be decoded on its own frame for frame: its first packet is not a keyframe, a packet
/// lacks a time, or a later packet is shown before the first (the leading pictures of an open
/// GOP, which need the previous chunk).
pub fn self_contained(packets: &[Packet]) -> Option<(u64, Vec<u64>)> {
    let first = packets.first()?;
    if !first.key {
        return None;
    }
    let start = first.pts?;
    let mut times = Vec::with_capacity(packets.len());
    for (i, p) in packets.iter().enumerate() {
        let pts = p.pts?;
        // Shown before the keyframe, or with it: a reader that cannot say "before the
        // start" (a negative time read as 0) gives the start.
        if pts < start || (i > 0 && pts <= start) {
            return None;
        }
        times.push(pts);
    }
    let mut order = times.clone();
    order.sort_by(f64::total_cmp);
    let keyframes = packets
        .iter()
        .zip(&times)
        .filter(|(p, _)| p.key)
        .map(|(_, t)| order.partition_point(|o| o < t) as u64)
        .collect();
    Some((packets.len() as u64, keyframes))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matroska_track_durations_are_read_from_their_tags() {
        assert_eq!(clock_seconds("00:00:03.500000000"), Some(3.5));
        assert_eq!(clock_seconds("01:02:03.25"), Some(3723.25));
        assert_eq!(clock_seconds("3.5"), None);
        assert_eq!(clock_seconds("aa:00:01"), None);
    }

    #[test]
    fn packets_parse() {
        let packets =
            parse_packets("0.000000,K_\n0.100000,__\n0.066667,__\nN/A,__\n2.0,K_\n1.0,K__\n");
        assert_eq!(packets.len(), 6);
        assert_eq!(packets[3].pts, None);
        assert!(packets[0].key && !packets[1].key);
    }

    fn p(pts: f64, key: bool) -> Packet {
        Packet {
            pts: Some(pts),
            key,
        }
    }

    #[test]
    fn a_chunk_is_self_contained_unless_it_has_leading_pictures() {
        // Closed GOP with B-frames, decode order I P B B I P B: keyframes at display 0 and 4.
        let closed = [
            p(0.0, true),
            p(3.0, false),
            p(1.0, false),
            p(2.0, false),
            p(4.0, true),
            p(6.0, false),
            p(5.0, false),
        ];
        assert_eq!(self_contained(&closed), Some((7, vec![0, 4])));
        // Open GOP: B-frames after the first keyframe are shown before it.
        let open = [p(2.0, true), p(0.0, false), p(1.0, false), p(5.0, false)];
        assert_eq!(self_contained(&open), None);
        // The same leading pictures read where negative times are read as the start (0).
        let clamped = [p(0.0, true), p(0.0, false), p(0.0, false), p(0.1, false)];
        assert_eq!(self_contained(&clamped), None);
        // Not starting on a keyframe, no times, or nothing at all.
        assert_eq!(self_contained(&[p(0.0, false), p(1.0, true)]), None);
        let untimed = [
            p(0.0, true),
            Packet {
                pts: None,
                key: false,
            },
        ];
        assert_eq!(self_contained(&untimed), None);
        assert_eq!(self_contained(&[]), None);
    }
}
