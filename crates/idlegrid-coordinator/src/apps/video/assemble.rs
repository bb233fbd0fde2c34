//! The `video` assembler: joins the encoded chunks in order with the concat demuxer (stream
//! copy), muxes the audio encoded once for the whole file, writes a `+faststart` MP4, and checks
//! the result before the job may complete: every source frame is there, and the audio lasts as
//! long as the source's, within two AAC frames (the encoder's priming and padding).

use super::probe::count_packets;
use super::{fetch_output, scratch, store_file, tool};
use crate::assembler::{AssembleError, Assembler};
use crate::grid::Grid;
use async_trait::async_trait;
use idlegrid_storage::records::{JobRecord, StoredBlob};
use std::fmt::Write;

/// The video assembler.
pub struct VideoAssembler;

fn inconsistent(e: impl std::fmt::Display) -> AssembleError {
    AssembleError::Inconsistent(e.to_string())
}

#[async_trait]
impl Assembler for VideoAssembler {
    async fn assemble(
        &self,
        job: &JobRecord,
        grid: &Grid,
        output_key: &str,
    ) -> Result<StoredBlob, AssembleError> {
        let facts = job.facts.clone().unwrap_or_default();
        let video_chunks = facts["video_chunks"].as_u64().ok_or_else(|| {
            inconsistent("the job's facts do not say how many video chunks it has")
        })?;
        let has_audio = facts["output"]["audio"].as_bool().unwrap_or(false);
        let total = job.chunks_total.unwrap_or(0);
        let outputs = grid
            .store
            .accepted_outputs(job.id, 0, total as u32 + 1)
            .await?;
        if outputs.len() as u64 != total || total != video_chunks + u64::from(has_audio) {
            return Err(inconsistent(format!(
                "{} of {total} chunks have accepted outputs",
                outputs.len()
            )));
        }
        let dir = scratch()?;
        let mut list = String::new();
        let mut audio = None;
        for (index, output) in &outputs {
            if *index < video_chunks {
                let path = dir.path().join(format!("{index:05}.mkv"));
                fetch_output(grid.blobs.as_ref(), output, &path).await?;
                let _ = writeln!(list, "file '{}'", path.display());
            } else {
                let path = dir.path().join("audio.m4a");
                fetch_output(grid.blobs.as_ref(), output, &path).await?;
                audio = Some(path);
            }
        }
        let list_path = dir.path().join("chunks.txt");
        std::fs::write(&list_path, list)
            .map_err(|e| inconsistent(format!("writing the chunk list: {e}")))?;
        let out = dir.path().join("output.mp4");
        let list_arg = list_path.to_string_lossy().into_owned();
        let out_arg = out.to_string_lossy().into_owned();
        let mut args: Vec<String> = [
            "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", &list_arg,
        ]
        .map(String::from)
        .to_vec();
        if let Some(audio) = &audio {
            args.extend(["-i".into(), audio.to_string_lossy().into_owned()]);
            args.extend(["-map", "0:v:0", "-map", "1:a:0"].map(String::from));
        }
        args.extend(["-c", "copy"].map(String::from));
        let rotation = facts["rotation"].as_i64().unwrap_or(0);
        if rotation != 0 {
            args.push("-metadata:s:v:0".into());
            args.push(format!("rotate={}", rotation.rem_euclid(360)));
        }
        args.extend(["-movflags", "+faststart", "-f", "mp4"].map(String::from));
        args.push(out_arg);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tool("ffmpeg", &args)
            .await
            .map_err(|e| inconsistent(format!("joining the chunks failed: {e}")))?;

        let frames = count_packets(&out).await.map_err(inconsistent)?;
        let expected = facts["frames"].as_u64().unwrap_or(0);
        if frames != expected {
            return Err(inconsistent(format!(
                "the joined video has {frames} frames, the source {expected}"
            )));
        }
        if audio.is_some() {
            let probed = tool(
                "ffprobe",
                &[
                    "-v",
                    "error",
                    "-select_streams",
                    "a:0",
                    "-show_entries",
                    "stream=duration,sample_rate",
                    "-of",
                    "json",
                    &out.to_string_lossy(),
                ],
            )
            .await
            .map_err(inconsistent)?;
            let info: serde_json::Value = serde_json::from_str(&probed).map_err(inconsistent)?;
            let stream = &info["streams"][0];
            let duration: f64 = stream["duration"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0.0);
            let rate: f64 = stream["sample_rate"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(48_000.0);
            let source = facts["audio_duration"].as_f64().unwrap_or(duration);
            let tolerance = 2.0 * 1024.0 / rate;
            if (duration - source).abs() > tolerance {
                return Err(inconsistent(format!(
                    "the output's audio lasts {duration:.3} s, the source's {source:.3} s"
                )));
            }
        }
        Ok(store_file(grid.blobs.as_ref(), output_key, &out).await?)
    }
}
