//! What video work costs: the cost model that turns a chunk into reference core-milliseconds
//! (what its validated result is charged and paid for), and the chunk length a job is cut
//! into when the customer does not fix it.
//!
//! One 1080p frame encoded with x264's `medium` preset is [`MS_PER_1080P_FRAME`] of work on
//! the reference device; other sizes scale with their pixels, other presets by x264's relative
//! speed, and other codecs by their encoders' speed against x264's (measured on two cores of
//! this project's machines with the task script's settings: x265 `medium` pinned to SSE4 2.2×,
//! SVT-AV1 preset 8 2.3× and preset 6 4.8×, libvpx-vp9 `cpu-used` 4 1.7×; the other presets
//! are interpolated from those and the encoders' documented steps). Each task adds [`MS_PER_TASK`] for its start-up (download, FFmpeg starting,
//! upload); the audio task costs [`MS_PER_AUDIO_SECOND`] per second of audio.

use super::params::{AudioCodec, VideoCodec, VideoParams};
use crate::apps::plugin::{Plan, Workload};

/// Work of one 1920×1080 frame at preset `medium` (reference core-ms).
pub const MS_PER_1080P_FRAME: f64 = 100.0;
/// Work of a task's start-up (reference core-ms).
pub const MS_PER_TASK: i64 = 500;
/// Work per second of audio encoded (reference core-ms).
pub const MS_PER_AUDIO_SECOND: f64 = 20.0;
/// Shortest and longest chunk the grid cuts on its own, in seconds.
const CHUNK_SECONDS: (f64, f64) = (2.0, 120.0);

/// x264's time per frame at a preset, relative to `medium`.
fn preset_factor(preset: &str) -> f64 {
    match preset {
        "ultrafast" => 0.2,
        "superfast" => 0.3,
        "veryfast" => 0.4,
        "faster" => 0.6,
        "fast" => 0.8,
        "slow" => 1.5,
        "slower" => 2.5,
        "veryslow" => 5.0,
        "placebo" => 12.0,
        _ => 1.0,
    }
}

/// An encoder's time per frame at `preset`, relative to x264's `medium`.
fn codec_factor(codec: VideoCodec, preset: &str) -> f64 {
    match codec {
        VideoCodec::H264 => preset_factor(preset),
        VideoCodec::Hevc => 2.2 * preset_factor(preset),
        VideoCodec::Av1 => {
            const SVT: [f64; 14] = [
                140.0, 70.0, 35.0, 18.0, 10.0, 7.0, 4.8, 3.3, 2.3, 1.4, 0.8, 0.6, 0.4, 0.3,
            ];
            preset
                .parse::<usize>()
                .ok()
                .and_then(|p| SVT.get(p))
                .copied()
                .unwrap_or(2.3)
        }
        VideoCodec::Vp9 => {
            const VPX: [f64; 9] = [12.0, 7.0, 4.0, 2.5, 1.7, 1.3, 1.0, 0.8, 0.6];
            preset
                .parse::<usize>()
                .ok()
                .and_then(|p| VPX.get(p))
                .copied()
                .unwrap_or(1.7)
        }
        VideoCodec::Copy => 0.0,
    }
}

/// What a chunk with a quality target costs against one encode: its search encodes and
/// measures up to four times, stopping within a quarter dB. `idlegrid bench target-quality`
/// measured the devices' CPU for the whole job at 4.6–6 times one plain ffmpeg encode of the
/// clip (every try, its measurement and the grid's per-task start-ups); charged at 4.
pub const TARGET_SEARCH_FACTOR: f64 = 4.0;

/// Work of one output frame of `width`×`height` with the job's encoder.
fn frame_ms(width: u32, height: u32, params: &VideoParams) -> f64 {
    let search = if params.encoder.target.is_some() {
        TARGET_SEARCH_FACTOR
    } else {
        1.0
    };
    f64::from(width) * f64::from(height) / (1920.0 * 1080.0)
        * MS_PER_1080P_FRAME
        * codec_factor(params.video_codec, &params.encoder.preset)
        * search
}

/// Work of encoding `frames` frames into one rendition.
pub fn video_task_ms(frames: u64, (width, height): (u32, u32), params: &VideoParams) -> i64 {
    MS_PER_TASK + (frames as f64 * frame_ms(width, height, params)).ceil() as i64
}

/// Work of encoding `seconds` of audio.
/// Work of encoding `seconds` of one audio track; twice that when it is normalised (a pass to
/// measure its loudness, then the encode).
pub fn audio_task_ms(seconds: f64, normalised: bool) -> i64 {
    let passes = if normalised { 2.0 } else { 1.0 };
    MS_PER_TASK + (seconds.max(0.0) * MS_PER_AUDIO_SECOND * passes).ceil() as i64
}

/// A source, as pricing sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source {
    /// Frames of the source.
    pub frames: u64,
    /// Source frames per second.
    pub fps: f64,
    /// Source width.
    pub width: u32,
    /// Source height.
    pub height: u32,
    /// Seconds of audio (0 without audio).
    pub audio_secs: f64,
}

/// The chunk length (seconds) and the workload of transcoding `source` with `params`: the
/// customer's chunk length when given, otherwise the one the plan's work per chunk calls for.
/// A chunk cut at keyframes may be up to twice the length asked for, so the largest chunk is
/// counted as twice the length, and one chunk more than the length divides into.
pub fn workload(
    params: &VideoParams,
    source: &Source,
    seconds: Option<f64>,
    plan: &Plan,
) -> (f64, Workload) {
    let sizes = if params.video_codec == VideoCodec::Copy {
        Vec::new()
    } else {
        params.output_sizes(source.width, source.height)
    };
    let per_frame: f64 = sizes.iter().map(|&(w, h)| frame_ms(w, h, params)).sum();
    let source_fps = if source.fps > 0.0 { source.fps } else { 30.0 };
    let duration = source.frames as f64 / source_fps;
    // A frame rate asked for changes how many frames are encoded.
    let fps = params.fps.unwrap_or(source_fps);
    let frames = (duration * fps).round() as u64;
    let video_ms = (frames as f64 * per_frame).ceil() as i64;
    let seconds = seconds.unwrap_or_else(|| {
        // The heaviest rendition's task is what must fit the plan's work per chunk.
        let heaviest = sizes
            .iter()
            .map(|&(w, h)| frame_ms(w, h, params))
            .fold(0.0, f64::max)
            * fps;
        let target = plan.chunk_work_ms(video_ms) as f64;
        (target / heaviest.max(1e-9)).clamp(CHUNK_SECONDS.0, CHUNK_SECONDS.1)
    });
    let chunks = (duration / seconds).ceil().max(1.0) as u64 + 1;
    let tasks = chunks * sizes.len() as u64;
    let audio = (source.audio_secs > 0.0 && params.audio_codec != AudioCodec::Copy)
        .then(|| audio_task_ms(source.audio_secs, params.encoder.loudness.is_some()));
    let largest_frames = (2.0 * seconds * fps).ceil() as u64;
    let largest = sizes
        .iter()
        .map(|&size| video_task_ms(largest_frames.min(frames), size, params))
        .max()
        .unwrap_or(0)
        .max(audio.unwrap_or(0));
    (
        seconds,
        Workload {
            work_ms: video_ms + MS_PER_TASK * tasks as i64 + audio.unwrap_or(0),
            chunks: tasks + u64::from(audio.is_some()),
            largest_chunk_ms: largest,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use idlegrid_domain::Tier;
    use idlegrid_domain::schedule::Capacity;
    use serde_json::json;

    fn plan(slots: u64) -> Plan {
        Plan {
            tier: Tier::Standard,
            capacity: Capacity {
                slots,
                speed: slots as f64,
            },
            timeout_secs: 600,
        }
    }

    fn minute_1080p() -> Source {
        Source {
            frames: 1800,
            fps: 30.0,
            width: 1920,
            height: 1080,
            audio_secs: 60.0,
        }
    }

    #[test]
    fn a_minute_of_1080p_costs_three_core_minutes() {
        let params = VideoParams::parse(&json!({})).unwrap();
        let (seconds, work) = workload(&params, &minute_1080p(), Some(10.0), &plan(4));
        assert_eq!(seconds, 10.0);
        assert_eq!(work.chunks, 7 + 1);
        assert_eq!(
            work.work_ms,
            180_000 + 7 * MS_PER_TASK + audio_task_ms(60.0, false)
        );
        assert_eq!(
            work.largest_chunk_ms,
            video_task_ms(600, (1920, 1080), &params)
        );
    }

    #[test]
    fn a_bigger_grid_gets_shorter_chunks_and_presets_cost_what_they_take() {
        let params = VideoParams::parse(&json!({})).unwrap();
        let (few, _) = workload(&params, &minute_1080p(), None, &plan(2));
        let (many, _) = workload(&params, &minute_1080p(), None, &plan(16));
        assert!(many < few, "{many} s chunks on 16 slots, {few} s on 2");
        assert!(many >= CHUNK_SECONDS.0);
        let slow = VideoParams::parse(&json!({"x264_preset": "veryslow"})).unwrap();
        let (_, fast_work) = workload(&params, &minute_1080p(), Some(10.0), &plan(4));
        let (_, slow_work) = workload(&slow, &minute_1080p(), Some(10.0), &plan(4));
        assert!(slow_work.work_ms > 4 * fast_work.work_ms);
    }

    #[test]
    fn codecs_cost_what_their_encoders_take_and_copies_cost_no_encoding() {
        let work = |params: serde_json::Value| {
            let params = VideoParams::parse(&params).unwrap();
            workload(&params, &minute_1080p(), Some(10.0), &plan(4)).1
        };
        let h264 = work(json!({}));
        let av1 = work(json!({"video_codec": "av1", "container": "mkv"}));
        let av1_slow = work(json!({"video_codec": "av1", "speed": 4, "container": "mkv"}));
        let hevc = work(json!({"video_codec": "hevc"}));
        assert!(av1.work_ms > 2 * h264.work_ms && av1_slow.work_ms > 4 * av1.work_ms);
        assert!(hevc.work_ms > 2 * h264.work_ms);
        let copy = work(json!({"video_codec": "copy"}));
        assert_eq!((copy.chunks, copy.work_ms), (1, audio_task_ms(60.0, false)));
        let transmux = work(json!({"video_codec": "copy", "audio_codec": "copy"}));
        assert_eq!((transmux.chunks, transmux.work_ms), (0, 0));
    }
}
