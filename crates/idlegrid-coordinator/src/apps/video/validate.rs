//! The `video` validator. A video chunk's result must be H.264 in 4:2:0 at the size asked,
//! decode without error, hold exactly as many frames as the source chunk, and look like it: the
//! PSNR of every frame against the source chunk's frame of the same index must reach
//! [`MIN_PSNR_DB`]. The audio result must be AAC-LC lasting as long as the source audio.

use super::{fetch, fetch_output, scratch, tool};
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
pub struct VideoValidator;

async fn check_video(result: &Path, source: &Path, meta: &serde_json::Value) -> Result<(), String> {
    let probed = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=codec_name,width,height,pix_fmt,nb_read_packets",
            "-of",
            "json",
            &result.to_string_lossy(),
        ],
    )
    .await
    .map_err(|e| format!("the chunk is not readable video: {e}"))?;
    let info: serde_json::Value = serde_json::from_str(&probed).map_err(|e| e.to_string())?;
    let stream = &info["streams"][0];
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
    // One pass decodes every frame of both (failing on a decoding error), compares each pair
    // by index, and so also counts the decoded frames.
    let resize = if meta["scale"].as_bool().unwrap_or(true) {
        format!("scale={}:{}:flags=bicubic,", meta["width"], meta["height"])
    } else {
        String::new()
    };
    let graph = format!(
        "[0:v]setpts=N/TB[a];[1:v]{resize}format=yuv420p,setpts=N/TB[b];[a][b]psnr=stats_file=-"
    );
    let stats = tool(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-xerror",
            "-i",
            &result.to_string_lossy(),
            "-i",
            &source.to_string_lossy(),
            "-lavfi",
            &graph,
            "-f",
            "null",
            "-",
        ],
    )
    .await
    .map_err(|e| format!("the chunk does not decode cleanly: {e}"))?;
    let psnrs: Vec<f64> = stats
        .lines()
        .filter_map(|l| {
            let v = l
                .split_whitespace()
                .find_map(|f| f.strip_prefix("psnr_avg:"))?;
            Some(if v == "inf" { 100.0 } else { v.parse().ok()? })
        })
        .collect();
    if psnrs.len() as u64 != expected {
        return Err(format!(
            "the chunk decodes to {} frames, the source chunk has {expected}",
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
    let probed = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name,profile,duration",
            "-of",
            "json",
            &result.to_string_lossy(),
        ],
    )
    .await
    .map_err(|e| format!("the audio does not decode: {e}"))?;
    let info: serde_json::Value = serde_json::from_str(&probed).map_err(|e| e.to_string())?;
    let stream = &info["streams"][0];
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
        let meta = result.task.chunk.meta.clone().unwrap_or_default();
        let dir = scratch()?;
        let output = dir.path().join("result");
        fetch_output(blobs, &result.output, &output).await?;
        let verdict = match meta["kind"].as_str() {
            Some("video") => {
                let Some(key) = &result.task.chunk.input_key else {
                    return Ok(Err("the chunk has no source to compare with".into()));
                };
                let source = dir.path().join("source.mkv");
                fetch(blobs, key, &source).await?;
                check_video(&output, &source, &meta).await
            }
            Some("audio") => check_audio(&output, &meta).await,
            other => Err(format!("unknown chunk kind {other:?}")),
        };
        Ok(verdict)
    }
}
