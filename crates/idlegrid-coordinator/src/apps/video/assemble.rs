//! The `video` assembler: joins each rendition's encoded chunks in order with the concat demuxer
//! (stream copy), muxes the audio encoded once for the whole file into a `+faststart` MP4, and
//! checks it before the job may complete: every source frame is there, and the audio lasts as
//! long as the source's within two AAC frames (the encoder's priming and padding). For an HLS
//! job each rendition's MP4 is then cut into segments at its aligned keyframes, and the output
//! is a tar archive of the renditions' playlists and segments with a master playlist.

use super::probe::count_packets;
use super::{probe_stream, readable_output, scratch, tool};
use crate::apps::plugin::{AssembleError, Assembler};
use async_trait::async_trait;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, OutputRef, Store, StoredBlob};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The video assembler.
pub struct VideoAssembler;

/// Name of the master playlist in an HLS output.
pub const MASTER_PLAYLIST: &str = "master.m3u8";

fn inconsistent(e: impl std::fmt::Display) -> AssembleError {
    AssembleError::Inconsistent(e.to_string())
}

/// Joins chunk files and the audio into `out` and checks the result against the facts.
async fn join(
    chunks: &[PathBuf],
    audio: Option<&Path>,
    facts: &serde_json::Value,
    dir: &Path,
    out: &Path,
) -> Result<(), AssembleError> {
    let list: String = chunks
        .iter()
        // The concat demuxer's quoting: a quote inside becomes '\''.
        .map(|c| {
            format!(
                "file '{}'\n",
                c.display().to_string().replace('\'', "'\\''")
            )
        })
        .collect();
    let list_path = dir.join(format!(
        "{}.txt",
        out.file_stem().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&list_path, list)
        .map_err(|e| inconsistent(format!("writing the chunk list: {e}")))?;
    let mut args: Vec<String> = [
        "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i",
    ]
    .map(String::from)
    .to_vec();
    args.push(list_path.to_string_lossy().into_owned());
    if let Some(audio) = audio {
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
    args.push(out.to_string_lossy().into_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("ffmpeg", &args)
        .await
        .map_err(|e| inconsistent(format!("joining the chunks failed: {e}")))?;

    let frames = count_packets(out).await.map_err(inconsistent)?;
    let expected = facts["frames"].as_u64().unwrap_or(0);
    if frames != expected {
        return Err(inconsistent(format!(
            "the joined video has {frames} frames, the source {expected}"
        )));
    }
    if audio.is_some() {
        let stream = probe_stream(out, "a:0", "duration,sample_rate", &[])
            .await
            .map_err(inconsistent)?;
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
    Ok(())
}

/// The RFC 6381 codec string of an H.264 + AAC-LC rendition, from FFprobe's profile and level.
async fn codecs(mp4: &Path, with_audio: bool) -> Result<String, AssembleError> {
    let stream = probe_stream(mp4, "v:0", "profile,level", &[])
        .await
        .map_err(inconsistent)?;
    let profile = match stream["profile"].as_str().unwrap_or("High") {
        "Constrained Baseline" => "42E0",
        "Baseline" => "4200",
        "Main" => "4D40",
        _ => "6400",
    };
    let level = stream["level"].as_u64().unwrap_or(40);
    let video = format!("avc1.{profile}{level:02X}");
    Ok(if with_audio {
        format!("{video},mp4a.40.2")
    } else {
        video
    })
}

/// Cuts each rendition into HLS segments and writes the master playlist; returns the tar.
async fn package_hls(
    renditions: &[(PathBuf, u64, u64)],
    with_audio: bool,
    facts: &serde_json::Value,
    dir: &Path,
) -> Result<PathBuf, AssembleError> {
    let hls = dir.join("hls");
    let segment = facts["hls"]["segment_seconds"]
        .as_f64()
        .unwrap_or(6.0)
        .to_string();
    let duration = facts["duration"].as_f64().unwrap_or(1.0).max(0.001);
    let mut master = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    for (mp4, width, height) in renditions {
        let name = format!("{width}x{height}");
        let rendition_dir = hls.join(&name);
        std::fs::create_dir_all(&rendition_dir).map_err(inconsistent)?;
        let segments = rendition_dir.join("segment_%05d.ts");
        let playlist = rendition_dir.join("index.m3u8");
        tool(
            "ffmpeg",
            &[
                "-nostdin",
                "-v",
                "error",
                "-i",
                &mp4.to_string_lossy(),
                "-c",
                "copy",
                "-f",
                "hls",
                "-hls_time",
                &segment,
                "-hls_playlist_type",
                "vod",
                "-hls_segment_filename",
                &segments.to_string_lossy(),
                &playlist.to_string_lossy(),
            ],
        )
        .await
        .map_err(|e| inconsistent(format!("cutting HLS segments failed: {e}")))?;
        let bytes = std::fs::metadata(mp4).map_err(inconsistent)?.len();
        let bandwidth = (bytes as f64 * 8.0 / duration * 1.2) as u64;
        let _ = writeln!(
            master,
            "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={width}x{height},CODECS=\"{}\"\n{name}/index.m3u8",
            codecs(mp4, with_audio).await?
        );
    }
    std::fs::write(hls.join(MASTER_PLAYLIST), master).map_err(inconsistent)?;
    let tar_path = dir.join("hls.tar");
    let file = std::fs::File::create(&tar_path).map_err(inconsistent)?;
    let mut archive = tar::Builder::new(file);
    archive.append_dir_all(".", &hls).map_err(inconsistent)?;
    archive.finish().map_err(inconsistent)?;
    Ok(tar_path)
}

#[async_trait]
impl Assembler for VideoAssembler {
    async fn assemble(
        &self,
        job: &JobRecord,
        store: &Arc<dyn Store>,
        blobs: &Arc<dyn BlobStore>,
        output_key: &str,
    ) -> Result<StoredBlob, AssembleError> {
        let facts = job.facts.clone().unwrap_or_default();
        let video_chunks = facts["video_chunks"].as_u64().ok_or_else(|| {
            inconsistent("the job's facts do not say how many video chunks it has")
        })?;
        let sizes: Vec<(u64, u64)> = match facts["hls"]["renditions"].as_array() {
            Some(list) => list
                .iter()
                .map(|r| {
                    (
                        r["width"].as_u64().unwrap_or(0),
                        r["height"].as_u64().unwrap_or(0),
                    )
                })
                .collect(),
            None => vec![(
                facts["output"]["width"].as_u64().unwrap_or(0),
                facts["output"]["height"].as_u64().unwrap_or(0),
            )],
        };
        let has_audio = facts["output"]["audio"].as_bool().unwrap_or(false);
        let video_tasks = video_chunks * sizes.len() as u64;
        let total = job.chunks_total.unwrap_or(0);
        let outputs: Vec<(u64, OutputRef)> =
            store.accepted_outputs(job.id, 0, total as u32 + 1).await?;
        if outputs.len() as u64 != total || total != video_tasks + u64::from(has_audio) {
            return Err(inconsistent(format!(
                "{} of {total} chunks have accepted outputs",
                outputs.len()
            )));
        }
        let dir = scratch()?;
        let mut chunk_files = Vec::with_capacity(video_tasks as usize);
        let mut audio = None;
        for (index, output) in &outputs {
            if *index < video_tasks {
                let copy = dir.path().join(format!("{index:05}.mkv"));
                chunk_files.push(readable_output(blobs.as_ref(), output, &copy).await?);
            } else {
                let copy = dir.path().join("audio.m4a");
                audio = Some(readable_output(blobs.as_ref(), output, &copy).await?);
            }
        }
        // Tasks are numbered chunk by chunk (chunk i, rendition r is i × renditions + r);
        // jobs split before that numbered them rendition by rendition.
        let chunk_major = facts["task_order"] == "chunk-major";
        let mut renditions = Vec::with_capacity(sizes.len());
        for rendition in 0..sizes.len() {
            let chunks: Vec<PathBuf> = (0..video_chunks as usize)
                .map(|i| {
                    let index = if chunk_major {
                        i * sizes.len() + rendition
                    } else {
                        rendition * video_chunks as usize + i
                    };
                    chunk_files[index].clone()
                })
                .collect();
            let out = dir.path().join(format!("rendition-{rendition}.mp4"));
            join(&chunks, audio.as_deref(), &facts, dir.path(), &out).await?;
            let (w, h) = sizes[rendition];
            renditions.push((out, w, h));
        }
        let output = if facts["hls"].is_object() {
            package_hls(&renditions, audio.is_some(), &facts, dir.path()).await?
        } else {
            renditions.swap_remove(0).0
        };
        Ok(blobs.put_file(output_key, &output).await?)
    }
}
