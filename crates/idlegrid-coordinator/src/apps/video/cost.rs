//! What video work costs: the cost model that turns a chunk into reference core-milliseconds
//! (what its validated result is charged and paid for), and the chunk length a job is cut
//! into when the customer does not fix it.
//!
//! One 1080p frame encoded with x264's `medium` preset is [`MS_PER_1080P_FRAME`] of work on
//! the reference device; other sizes scale with their pixels and other presets by x264's
//! relative speed. Each task adds [`MS_PER_TASK`] for its start-up (download, FFmpeg starting,
//! upload); the audio task costs [`MS_PER_AUDIO_SECOND`] per second of audio.

use super::params::VideoParams;
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

/// Work of one output frame of `width`×`height` at `preset`.
fn frame_ms(width: u32, height: u32, preset: &str) -> f64 {
    f64::from(width) * f64::from(height) / (1920.0 * 1080.0)
        * MS_PER_1080P_FRAME
        * preset_factor(preset)
}

/// Work of encoding `frames` frames into one rendition.
pub fn video_task_ms(frames: u64, (width, height): (u32, u32), preset: &str) -> i64 {
    MS_PER_TASK + (frames as f64 * frame_ms(width, height, preset)).ceil() as i64
}

/// Work of encoding `seconds` of audio.
pub fn audio_task_ms(seconds: f64) -> i64 {
    MS_PER_TASK + (seconds.max(0.0) * MS_PER_AUDIO_SECOND).ceil() as i64
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
    let sizes = params.output_sizes(source.width, source.height);
    let preset = params.encoder.preset.as_str();
    let per_frame: f64 = sizes.iter().map(|&(w, h)| frame_ms(w, h, preset)).sum();
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
            .map(|&(w, h)| frame_ms(w, h, preset))
            .fold(0.0, f64::max)
            * fps;
        let target = plan.chunk_work_ms(video_ms) as f64;
        (target / heaviest.max(1e-9)).clamp(CHUNK_SECONDS.0, CHUNK_SECONDS.1)
    });
    let chunks = (duration / seconds).ceil().max(1.0) as u64 + 1;
    let tasks = chunks * sizes.len() as u64;
    let audio = (source.audio_secs > 0.0).then(|| audio_task_ms(source.audio_secs));
    let largest_frames = (2.0 * seconds * fps).ceil() as u64;
    let largest = sizes
        .iter()
        .map(|&size| video_task_ms(largest_frames.min(frames), size, preset))
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
            180_000 + 7 * MS_PER_TASK + audio_task_ms(60.0)
        );
        assert_eq!(
            work.largest_chunk_ms,
            video_task_ms(600, (1920, 1080), "medium")
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
}
