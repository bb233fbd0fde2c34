//! The `video` validator. A video chunk's result must be H.264 in 4:2:0 at the size asked,
//! decode without error, hold exactly as many frames as the source chunk, and look like it:
//! sampled frames, reduced to thumbnails exactly as the source chunk's were when it was split,
//! must each reach [`MIN_PSNR_DB`] against the source's thumbnail of the same frame index. The
//! source chunk itself is not decoded again. The audio result must be AAC-LC lasting as long as the source audio.

use super::{
    Picks, REF_HEIGHT, REF_WIDTH, every_nth, probe_stream, progress_frames, readable,
    readable_output, reference_filter, scratch, tool,
};
use crate::validator::Validator;
use async_trait::async_trait;
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, ResultRecord};
use std::path::Path;

/// Lowest PSNR of sampled frames accepted. Honest encodes at any sensible quality score well
/// above it (CRF 23 on test footage: about 43 dB); another chunk's frames or garbage score far
/// below.
pub const MIN_PSNR_DB: f64 = 25.0;

/// The video validator.
pub struct VideoValidator {
    /// Chunks checked at once: each check runs FFmpeg for about a second of CPU per 10 s of
    /// 1080p, so more than the cores would only thrash.
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

/// Checks a video result; `work` is a scratch directory (the inputs may be the blob store's own
/// files, never written to).
async fn check_video(
    result: &Path,
    refs: &Path,
    meta: &serde_json::Value,
    work: &Path,
) -> Result<(), String> {
    let stream = probe_stream(
        result,
        "v:0",
        "codec_name,width,height,pix_fmt,nb_read_packets",
        &["-count_packets"],
    )
    .await
    .map_err(|e| format!("the chunk is not readable video: {e}"))?;
    if stream["codec_name"] != "h264" {
        return Err(format!(
            "the chunk is {} video, not H.264",
            stream["codec_name"]
        ));
    }
    if stream["pix_fmt"] != "yuv420p" {
        return Err(format!(
            "the chunk's pixel format is {}, not yuv420p",
            stream["pix_fmt"]
        ));
    }
    let (w, h) = (stream["width"].as_u64(), stream["height"].as_u64());
    if (w, h) != (meta["width"].as_u64(), meta["height"].as_u64()) {
        return Err(format!(
            "the chunk is {}x{}, not {}x{}",
            w.unwrap_or(0),
            h.unwrap_or(0),
            meta["width"],
            meta["height"]
        ));
    }
    let expected = meta["frames"].as_u64().unwrap_or(0);
    let packets: u64 = stream["nb_read_packets"]
        .as_str()
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    if packets != expected {
        return Err(format!(
            "the chunk has {packets} frames, the source chunk {expected}"
        ));
    }
    // One pass decodes every frame of the result (failing on a decoding error), counts them,
    // and compares the sampled ones with the source chunk's reference thumbnails, taken by
    // the same filter when the source was split.
    // The frames the references show; chunks split before references were listed kept every
    // `ref_step`-th frame.
    let picks: Vec<u64> = match meta["ref_frames"].as_array() {
        Some(frames) => frames
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .collect(),
        None => every_nth(expected, meta["ref_step"].as_u64().unwrap_or(1)),
    };
    let stats_path = work.join("psnr.log");
    let graph = format!(
        "[0:v]split[all][s];[s]{},setpts=N/TB[a];[1:v]setpts=N/TB[b];[a][b]psnr=stats_file={}[compared]",
        reference_filter(Picks::Frames(&picks)),
        stats_path.display()
    );
    let size = format!("{REF_WIDTH}x{REF_HEIGHT}");
    let progress = tool(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-xerror",
            // One decoding thread: results are validated side by side, and threads cost CPU.
            "-threads",
            "1",
            "-i",
            &result.to_string_lossy(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-s",
            &size,
            "-i",
            &refs.to_string_lossy(),
            "-filter_complex",
            &graph,
            "-map",
            "[all]",
            "-f",
            "null",
            "-",
            "-map",
            "[compared]",
            "-f",
            "null",
            "-",
            "-progress",
            "pipe:1",
        ],
    )
    .await
    .map_err(|e| format!("the chunk does not decode cleanly: {e}"))?;
    let decoded = progress_frames(&progress).unwrap_or(0);
    if decoded != expected {
        return Err(format!(
            "the chunk decodes to {decoded} frames, the source chunk has {expected}"
        ));
    }
    let stats = std::fs::read_to_string(&stats_path).unwrap_or_default();
    let psnrs: Vec<f64> = stats
        .lines()
        .filter_map(|l| {
            let v = l
                .split_whitespace()
                .find_map(|f| f.strip_prefix("psnr_avg:"))?;
            Some(if v == "inf" { 100.0 } else { v.parse().ok()? })
        })
        .collect();
    let samples = picks.len() as u64;
    if samples == 0 || psnrs.len() as u64 != samples {
        return Err(format!(
            "{} of the chunk's {samples} sampled frames could be compared with the source",
            psnrs.len()
        ));
    }
    let worst = psnrs.iter().copied().fold(f64::INFINITY, f64::min);
    if worst < MIN_PSNR_DB {
        return Err(format!(
            "the chunk does not match its source: a frame has PSNR {worst:.1} dB (at least {MIN_PSNR_DB} dB expected)"
        ));
    }
    Ok(())
}

async fn check_audio(result: &Path, meta: &serde_json::Value) -> Result<(), String> {
    let stream = probe_stream(result, "a:0", "codec_name,profile,duration", &[])
        .await
        .map_err(|e| format!("the audio does not decode: {e}"))?;
    if stream["codec_name"] != "aac" || stream["profile"] != "LC" {
        return Err(format!(
            "the audio is {} {}, not AAC-LC",
            stream["codec_name"], stream["profile"]
        ));
    }
    let duration: f64 = stream["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    if let Some(expected) = meta["duration"].as_f64()
        && (duration - expected).abs() > 0.1
    {
        return Err(format!(
            "the audio lasts {duration:.3} s, the source {expected:.3} s"
        ));
    }
    Ok(())
}

#[async_trait]
impl Validator for VideoValidator {
    async fn validate(
        &self,
        _job: &JobRecord,
        result: &ResultRecord,
        blobs: &dyn BlobStore,
    ) -> Result<Result<(), String>, StorageError> {
        let _slot =
            self.slots.acquire().await.map_err(|_| {
                StorageError::Backend("the video validator is shutting down".into())
            })?;
        let meta = result.task.chunk.meta.clone().unwrap_or_default();
        let dir = scratch()?;
        let output = readable_output(blobs, &result.output, &dir.path().join("result")).await?;
        let verdict = match meta["kind"].as_str() {
            Some("video") => {
                let Some(key) = meta["refs"].as_str() else {
                    return Ok(Err("the chunk has no references to compare with".into()));
                };
                let refs = readable(blobs, key, &dir.path().join("refs.gray")).await?;
                check_video(&output, &refs, &meta, dir.path()).await
            }
            Some("audio") => check_audio(&output, &meta).await,
            other => Err(format!("unknown chunk kind {other:?}")),
        };
        Ok(verdict)
    }
}
