//! The `video` assembler: joins each rendition's encoded chunks in order with the concat demuxer
//! (stream copy) — or takes the source's video as it is, when transmuxing — muxes the audio
//! tracks (encoded once each for the whole file, or copied) and the subtitles into the container
//! asked (`+faststart` for MP4 and MOV), and checks it before the job may complete: every
//! source frame is there, and every audio track lasts as long as the source's within two AAC
//! frames (the encoder's priming and padding) or 0.1 s (Opus, copies). For a streaming job
//! (`"hls": true`) the renditions' MP4s are then packaged as CMAF: fragmented-MP4 segments at
//! their aligned keyframes, described by a DASH manifest and by HLS playlists alike, in a tar.

use super::params::Container;
use super::partition::{AUDIO_COPY, SUBTITLES};
use super::probe::count_packets;
use super::{readable, readable_output, scratch, tool};
use crate::apps::plugin::{AssembleError, Assembler};
use async_trait::async_trait;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, OutputRef, Store, StoredBlob};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The video assembler.
pub struct VideoAssembler;

/// Name of the HLS master playlist in a streaming output.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// Name of the DASH manifest in a streaming output.
pub const DASH_MANIFEST: &str = "manifest.mpd";
/// Name (before its container's extension) of the video in an output archive with stills.
pub const VIDEO_STEM: &str = "video";

/// Writes the stills of the first rendition's `chunks` into `folder`, timed by `video`'s frames.
async fn add_stills(
    chunks: &[PathBuf],
    facts: &serde_json::Value,
    video: &Path,
    folder: &Path,
) -> Result<(), AssembleError> {
    let times = frame_times(video).await?;
    let fps = facts["fps"].as_f64().filter(|f| *f > 0.0).unwrap_or(25.0);
    let end = times.last().map_or(0.0, |t| t + 1.0 / fps);
    super::stills::package(chunks, facts, &times, end, folder)
        .await
        .map_err(|e| inconsistent(format!("packaging the stills failed: {e}")))
}

fn inconsistent(e: impl std::fmt::Display) -> AssembleError {
    AssembleError::Inconsistent(e.to_string())
}

/// Where the output's video comes from.
enum Video<'a> {
    /// Encoded chunks, joined in order by stream copy.
    Chunks(&'a [PathBuf]),
    /// The source, whose video is copied as it is (transmuxing).
    Copy(&'a Path),
}

/// The output's other streams.
struct Streams<'a> {
    /// Encoded audio tracks, one per file, in order.
    audio: &'a [PathBuf],
    /// Audio tracks carried over as they are, all in one file.
    audio_copy: Option<&'a Path>,
    /// Subtitle tracks carried over, all in one file.
    subtitles: Option<&'a Path>,
}

/// FFmpeg arguments muxing `video` and `streams` into `out` as `container`. Nothing of the
/// devices' files but their coded streams reaches the output: their tags are dropped, and the
/// languages are set from the source's (checked when probed).
fn mux_args(
    video: &Video,
    list_path: &Path,
    streams: &Streams,
    facts: &serde_json::Value,
    container: Container,
    out: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = ["-nostdin", "-v", "error"].map(String::from).to_vec();
    let output = &facts["output"];
    // Where each input starts in the output (jobs split before offsets were kept: all at 0).
    let offset = |value: &serde_json::Value| value.as_f64().filter(|o| o.is_finite());
    let input = |args: &mut Vec<String>, offset: Option<f64>, file: &Path| {
        if let Some(o) = offset.filter(|o| *o != 0.0) {
            args.extend(["-itsoffset".into(), format!("{o:.6}")]);
        }
        args.extend(["-i".into(), file.to_string_lossy().into_owned()]);
    };
    match video {
        Video::Chunks(_) => {
            args.extend(["-f", "concat", "-safe", "0"].map(String::from));
            input(&mut args, offset(&output["video_offset"]), list_path);
        }
        Video::Copy(source) => input(&mut args, offset(&output["source_offset"]), source),
    }
    let mut maps = vec!["0:v:0".to_string()];
    let mut next = 1;
    for (k, file) in streams.audio.iter().enumerate() {
        input(
            &mut args,
            offset(&output["audio_tracks"][k]["offset"]),
            file,
        );
        maps.push(format!("{next}:a:0"));
        next += 1;
    }
    if let Some(file) = streams.audio_copy {
        input(&mut args, offset(&output["source_offset"]), file);
        maps.push(format!("{next}:a"));
        next += 1;
    }
    if let Some(file) = streams.subtitles {
        input(&mut args, offset(&output["source_offset"]), file);
        maps.push(format!("{next}:s"));
    }
    for map in maps {
        args.extend(["-map".into(), map]);
    }
    args.extend(["-c", "copy", "-map_metadata", "-1", "-map_metadata:s", "-1"].map(String::from));
    if streams.subtitles.is_some() {
        args.extend(["-c:s".into(), container.subtitle_codec().into()]);
    }
    let languages = |kind: &str| {
        facts["output"][kind]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|t| t["language"].as_str().unwrap_or("und").to_string())
            .collect::<Vec<_>>()
    };
    for (kind, spec) in [("audio_tracks", "a"), ("subtitles", "s")] {
        for (k, language) in languages(kind).iter().enumerate() {
            args.push(format!("-metadata:s:{spec}:{k}"));
            args.push(format!("language={language}"));
        }
    }
    let rotation = facts["rotation"].as_i64().unwrap_or(0);
    if rotation != 0 {
        args.push("-metadata:s:v:0".into());
        args.push(format!("rotate={}", rotation.rem_euclid(360)));
    }
    if matches!(container, Container::Mp4 | Container::Mov) {
        if facts["output"]["codec"] == "hevc" {
            // The tag Apple's players ask for.
            args.extend(["-tag:v", "hvc1"].map(String::from));
        }
        args.extend(["-movflags", "+faststart"].map(String::from));
    }
    args.extend(["-f".into(), container.muxer().into()]);
    args.push(out.to_string_lossy().into_owned());
    args
}

/// When a file's `k`th audio stream ends, in seconds: its last packet's time and length (read
/// without decoding, the same way in every container).
async fn audio_end(path: &Path, k: usize) -> Result<f64, String> {
    let out = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            &format!("a:{k}"),
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv=p=0",
            &path.to_string_lossy(),
        ],
    )
    .await?;
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let pts: f64 = fields.next()?.trim().parse().ok()?;
            let duration: f64 = fields.next()?.trim().parse().unwrap_or(0.0);
            Some(pts + duration)
        })
        .fold(None, |end: Option<f64>, t| {
            Some(end.map_or(t, |e| e.max(t)))
        })
        .ok_or_else(|| format!("audio track {} has no packets", k + 1))
}

/// Joins the video and the other streams into `out` and checks the result against the facts:
/// every source frame, and every audio track as long as the source's.
async fn join(
    video: Video<'_>,
    streams: &Streams<'_>,
    facts: &serde_json::Value,
    container: Container,
    dir: &Path,
    out: &Path,
) -> Result<(), AssembleError> {
    let list_path = dir.join(format!(
        "{}.txt",
        out.file_stem().unwrap_or_default().to_string_lossy()
    ));
    if let Video::Chunks(chunks) = &video {
        // Each chunk lasts until the next one starts on the source's clock, when the split
        // said where they start (a variable frame rate's pauses at the cuts stay); otherwise
        // the concat demuxer places each after the last frame of the one before.
        let starts: Vec<f64> = facts["chunk_starts"]
            .as_array()
            .map(|s| s.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        let placed = starts.len() == chunks.len();
        let list: String = chunks
            .iter()
            .enumerate()
            // The concat demuxer's quoting: a quote inside becomes '\''.
            .map(|(i, c)| {
                let mut entry = format!(
                    "file '{}'\n",
                    c.display().to_string().replace('\'', "'\\''")
                );
                if placed && let Some(next) = starts.get(i + 1) {
                    entry.push_str(&format!("duration {:.6}\n", next - starts[i]));
                }
                entry
            })
            .collect();
        std::fs::write(&list_path, list)
            .map_err(|e| inconsistent(format!("writing the chunk list: {e}")))?;
    }
    let args = mux_args(&video, &list_path, streams, facts, container, out);
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
    let tracks = facts["output"]["audio_tracks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let aac = facts["output"]["audio_codec"]
        .as_str()
        .is_none_or(|c| c == "aac");
    for (k, track) in tracks.iter().enumerate() {
        let end = audio_end(out, k).await.map_err(inconsistent)?;
        let source = track["duration"]
            .as_f64()
            .or(facts["audio_duration"].as_f64())
            .map_or(end, |d| d + track["offset"].as_f64().unwrap_or(0.0));
        // AAC in MP4 and MOV: two frames of priming and padding (their edit lists hide the
        // rest); elsewhere the priming is on the timeline, and Opus and copies have their own
        // frames and the containers' rounding.
        let edit_lists = matches!(container, Container::Mp4 | Container::Mov);
        let tolerance = if aac && edit_lists {
            2.0 * 1024.0 / 44_100.0
        } else {
            0.1
        };
        if (end - source).abs() > tolerance {
            return Err(inconsistent(format!(
                "the output's audio track {} lasts {end:.3} s, the source's {source:.3} s",
                k + 1
            )));
        }
    }
    Ok(())
}

/// Adds the subtitle tracks of `rendition` (its MP4 carries them as `mov_text`) to a streaming
/// output in `out`: each as one WebVTT file, listed in the HLS master playlist (a subtitles
/// group every variant names, one single-segment playlist per track) and in the DASH manifest
/// (a text adaptation set per track), with its language.
async fn add_subtitles(
    rendition: &Path,
    languages: &[String],
    facts: &serde_json::Value,
    out: &Path,
) -> Result<(), AssembleError> {
    let duration = facts["duration"].as_f64().unwrap_or(1.0).max(0.001);
    let master_path = out.join(MASTER_PLAYLIST);
    let manifest_path = out.join(DASH_MANIFEST);
    let mut master = std::fs::read_to_string(&master_path).map_err(inconsistent)?;
    let mut manifest = std::fs::read_to_string(&manifest_path).map_err(inconsistent)?;
    let mut media = String::new();
    let mut sets = String::new();
    // Each set its own numeric id after FFmpeg's (video 0, audio 1...): dash.js names a text
    // track by its set's id ("null" without one).
    let first_id = manifest.matches("<AdaptationSet").count();
    for (k, language) in languages.iter().enumerate() {
        let vtt = format!("subtitles-{k}.vtt");
        tool(
            "ffmpeg",
            &[
                "-nostdin",
                "-v",
                "error",
                "-i",
                &rendition.to_string_lossy(),
                "-map",
                &format!("0:s:{k}"),
                "-c:s",
                "webvtt",
                "-f",
                "webvtt",
                &out.join(&vtt).to_string_lossy(),
            ],
        )
        .await
        .map_err(|e| inconsistent(format!("writing subtitle track {k} as WebVTT failed: {e}")))?;
        let playlist = format!("subtitles-{k}.m3u8");
        std::fs::write(
            out.join(&playlist),
            format!(
                "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{}\n#EXT-X-PLAYLIST-TYPE:VOD\n\
                 #EXTINF:{duration:.3},\n{vtt}\n#EXT-X-ENDLIST\n",
                duration.ceil() as u64
            ),
        )
        .map_err(inconsistent)?;
        let _ = writeln!(
            media,
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"{language}-{k}\",\
             LANGUAGE=\"{language}\",DEFAULT=NO,AUTOSELECT=YES,URI=\"{playlist}\""
        );
        // Subtitles (not captions, which players assume without a role), labelled with
        // their language.
        let _ = write!(
            sets,
            "\t\t<AdaptationSet id=\"{}\" contentType=\"text\" mimeType=\"text/vtt\" \
             lang=\"{language}\">\n\
             \t\t\t<Label>{language}</Label>\n\
             \t\t\t<Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"subtitle\"/>\n\
             \t\t\t<Representation id=\"subtitles-{k}\" bandwidth=\"256\">\n\
             \t\t\t\t<BaseURL>{vtt}</BaseURL>\n\
             \t\t\t</Representation>\n\
             \t\t</AdaptationSet>\n",
            first_id + k
        );
    }
    // Every variant names the group; the group's entries go before the first variant.
    master = master.replace(
        "#EXT-X-STREAM-INF:",
        "#EXT-X-STREAM-INF:SUBTITLES=\"subs\",",
    );
    let at = master
        .find("#EXT-X-STREAM-INF:")
        .ok_or_else(|| inconsistent("the HLS master playlist lists no variant"))?;
    master.insert_str(at, &media);
    let end = manifest
        .rfind("</Period>")
        .ok_or_else(|| inconsistent("the DASH manifest has no period"))?;
    // At the start of the period's closing line, so the sets keep the manifest's indentation.
    let line = manifest[..end].rfind('\n').map_or(end, |at| at + 1);
    manifest.insert_str(line, &sets);
    std::fs::write(&master_path, master).map_err(inconsistent)?;
    std::fs::write(&manifest_path, manifest).map_err(inconsistent)?;
    Ok(())
}

/// Packages the renditions for streaming as CMAF: fragmented-MP4 segments cut at the
/// renditions' aligned keyframes (every rendition's at the same times), described both by a
/// DASH manifest ([`DASH_MANIFEST`]) and by HLS playlists ([`MASTER_PLAYLIST`] and one per
/// stream): one set of files for both. The video renditions form one adaptation set, each
/// audio track (from the first rendition, which carries them all) its own, with its language.
/// Returns the folder holding it all.
async fn package_streaming(
    renditions: &[(PathBuf, u64, u64)],
    audio_tracks: usize,
    facts: &serde_json::Value,
    dir: &Path,
) -> Result<PathBuf, AssembleError> {
    let out = dir.join("stream");
    std::fs::create_dir_all(&out).map_err(inconsistent)?;
    let segment = facts["hls"]["segment_seconds"]
        .as_f64()
        .unwrap_or(6.0)
        .to_string();
    let mut args: Vec<String> = ["-nostdin", "-v", "error"].map(String::from).to_vec();
    for (mp4, _, _) in renditions {
        args.extend(["-i".into(), mp4.to_string_lossy().into_owned()]);
    }
    for i in 0..renditions.len() {
        args.extend(["-map".into(), format!("{i}:v:0")]);
    }
    for a in 0..audio_tracks {
        args.extend(["-map".into(), format!("0:a:{a}")]);
    }
    let mut sets = "id=0,streams=v".to_string();
    for a in 0..audio_tracks {
        let _ = write!(sets, " id={},streams={}", a + 1, renditions.len() + a);
    }
    let manifest = out.join(DASH_MANIFEST);
    args.extend(
        [
            "-c",
            "copy",
            "-f",
            "dash",
            "-dash_segment_type",
            "mp4",
            "-seg_duration",
            &segment,
            "-use_template",
            "1",
            "-use_timeline",
            "1",
            "-hls_playlist",
            "1",
            "-hls_master_name",
            MASTER_PLAYLIST,
            "-adaptation_sets",
            &sets,
            "-init_seg_name",
            "init-$RepresentationID$.m4s",
            "-media_seg_name",
            "segment-$RepresentationID$-$Number%05d$.m4s",
        ]
        .map(String::from),
    );
    args.push(manifest.to_string_lossy().into_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("ffmpeg", &args)
        .await
        .map_err(|e| inconsistent(format!("packaging the renditions failed: {e}")))?;
    // Letters only (the partitioner's probe keeps no others): they go into playlists.
    let languages = |kind: &str| -> Vec<String> {
        facts["output"][kind]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let language = t["language"].as_str().unwrap_or("und");
                if language.bytes().all(|b| b.is_ascii_alphabetic()) && !language.is_empty() {
                    language.to_string()
                } else {
                    "und".into()
                }
            })
            .collect()
    };
    // FFmpeg's HLS master names audio renditions audio_1, audio_2...: their languages, as the
    // DASH manifest has them.
    let master_path = out.join(MASTER_PLAYLIST);
    let master = std::fs::read_to_string(&master_path).map_err(inconsistent)?;
    let mut audio = languages("audio_tracks").into_iter();
    let named: Vec<String> = master
        .lines()
        .map(|line| match line.strip_prefix("#EXT-X-MEDIA:TYPE=AUDIO,") {
            Some(rest) => {
                let language = audio.next().unwrap_or_else(|| "und".into());
                let rest = rest
                    .split(',')
                    .filter(|attribute| !attribute.starts_with("NAME="))
                    .collect::<Vec<_>>()
                    .join(",");
                format!(
                    "#EXT-X-MEDIA:TYPE=AUDIO,NAME=\"{language}\",LANGUAGE=\"{language}\",{rest}"
                )
            }
            None => line.to_string(),
        })
        .collect();
    std::fs::write(&master_path, named.join("\n") + "\n").map_err(inconsistent)?;
    let languages = languages("subtitles");
    if let Some((first, _, _)) = renditions.first()
        && !languages.is_empty()
    {
        add_subtitles(first, &languages, facts, &out).await?;
    }
    Ok(out)
}

/// A tar archive of the folder `folder`, written beside it.
fn archive(folder: &Path) -> Result<PathBuf, AssembleError> {
    let tar_path = folder.with_extension("tar");
    let file = std::fs::File::create(&tar_path).map_err(inconsistent)?;
    let mut archive = tar::Builder::new(file);
    archive.append_dir_all(".", folder).map_err(inconsistent)?;
    archive.finish().map_err(inconsistent)?;
    Ok(tar_path)
}

/// Each frame's presentation time in a video file's first video stream, ascending (read from
/// its packets, without decoding).
async fn frame_times(path: &Path) -> Result<Vec<f64>, AssembleError> {
    let packets = super::probe::packets(path)
        .await
        .map_err(|e| inconsistent(format!("reading the output's frame times failed: {e}")))?;
    let mut times: Vec<f64> = packets.iter().filter_map(|p| p.pts).collect();
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// How near its target (dB; SSIM as decibels) a chunk counts as having reached it, in the
/// job's report: the goal is 95% of chunks within it.
pub const REPORTED_TOLERANCE_DB: f64 = 0.5;

/// The job's quality report: each video task's rate factor and quality, as its device
/// measured and wrote them in the chunk (the validator checked the PSNR it reports against
/// the frames it compared; replicas agree byte for byte), and how many are within
/// [`REPORTED_TOLERANCE_DB`] of the target.
fn quality_report(
    target: &serde_json::Map<String, serde_json::Value>,
    chunk_files: &[PathBuf],
    renditions: usize,
    chunk_major: bool,
) -> serde_json::Value {
    let metric = target.get("metric").and_then(|m| m.as_str()).unwrap_or("");
    let goal = target.get("value").and_then(|v| v.as_f64()).unwrap_or(0.0);
    let to_db = |v: f64| {
        if metric == "ssim" {
            super::params::ssim_db(v)
        } else {
            v
        }
    };
    let chunks_per_rendition = chunk_files.len() / renditions.max(1);
    let mut within = 0;
    let chunks: Vec<serde_json::Value> = chunk_files
        .iter()
        .enumerate()
        .map(|(task, file)| {
            let (chunk, rendition) = if chunk_major {
                (task / renditions.max(1), task % renditions.max(1))
            } else {
                (
                    task % chunks_per_rendition.max(1),
                    task / chunks_per_rendition.max(1),
                )
            };
            let claim = super::validate::search_claim(
                super::container::video_track_name(file).as_deref(),
                &serde_json::Value::Object(target.clone()),
            )
            .ok();
            if let Some(c) = &claim
                && (to_db(c.value) - to_db(goal)).abs() <= REPORTED_TOLERANCE_DB
            {
                within += 1;
            }
            serde_json::json!({
                "chunk": chunk,
                "rendition": rendition,
                "crf": claim.as_ref().map(|c| c.crf),
                "value": claim.as_ref().map(|c| c.value),
            })
        })
        .collect();
    serde_json::json!({
        "metric": metric,
        "target": goal,
        "tolerance_db": REPORTED_TOLERANCE_DB,
        "within": within,
        "chunks": chunks,
    })
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
        let audio_tracks = facts["output"]["audio_tracks"]
            .as_array()
            .map(Vec::len)
            // Jobs split before tracks were listed kept the first, when there was one.
            .unwrap_or(usize::from(
                facts["output"]["audio"].as_bool().unwrap_or(false),
            )) as u64;
        let audio_copy = facts["output"]["audio_codec"] == "copy";
        let audio_tasks = if audio_copy { 0 } else { audio_tracks };
        let video_tasks = video_chunks * sizes.len() as u64;
        let total = job.chunks_total.unwrap_or(0);
        let outputs: Vec<(u64, OutputRef)> =
            store.accepted_outputs(job.id, 0, total as u32 + 1).await?;
        if outputs.len() as u64 != total || total != video_tasks + audio_tasks {
            return Err(inconsistent(format!(
                "{} of {total} chunks have accepted outputs",
                outputs.len()
            )));
        }
        let dir = scratch()?;
        let mut chunk_files = Vec::with_capacity(video_tasks as usize);
        let mut audio = Vec::new();
        for (index, output) in &outputs {
            if *index < video_tasks {
                let copy = dir.path().join(format!("{index:05}.mkv"));
                chunk_files.push(readable_output(blobs.as_ref(), output, &copy).await?);
            } else {
                let copy = dir
                    .path()
                    .join(format!("audio-{}.m4a", index - video_tasks));
                audio.push(readable_output(blobs.as_ref(), output, &copy).await?);
            }
        }
        let scratch_dir = dir.path();
        let work_file = |name: &'static str| async move {
            let copy = scratch_dir.join(name);
            readable(
                blobs.as_ref(),
                &crate::blob_keys::chunk(job.id, name),
                &copy,
            )
            .await
        };
        let audio_copy_file = if audio_copy && audio_tracks > 0 {
            Some(work_file(AUDIO_COPY).await?)
        } else {
            None
        };
        let subtitles = facts["output"]["subtitles"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        let subtitles_file = if subtitles {
            Some(work_file(SUBTITLES).await?)
        } else {
            None
        };
        let streams = Streams {
            audio: &audio,
            audio_copy: audio_copy_file.as_deref(),
            subtitles: subtitles_file.as_deref(),
        };
        let container = facts["output"]["container"]
            .as_str()
            .and_then(Container::from_name)
            .unwrap_or(Container::Mp4);
        // Each rendition's video: its chunks in order, or (transmuxing) the source's own.
        // Tasks are numbered chunk by chunk (chunk i, rendition r is i × renditions + r);
        // jobs split before that numbered them rendition by rendition.
        let chunk_major = facts["task_order"] == "chunk-major";
        let chunks_of = |rendition: usize| -> Vec<PathBuf> {
            (0..video_chunks as usize)
                .map(|i| {
                    let index = if chunk_major {
                        i * sizes.len() + rendition
                    } else {
                        rendition * video_chunks as usize + i
                    };
                    chunk_files[index].clone()
                })
                .collect()
        };
        let source = if facts["output"]["video_copy"] == true {
            let input = job
                .input
                .as_ref()
                .ok_or_else(|| inconsistent("the job's input is gone"))?;
            Some(readable(blobs.as_ref(), &input.key, &dir.path().join("source")).await?)
        } else {
            None
        };
        if let Some(target) = facts["output"]["target_quality"].as_object() {
            let report = quality_report(target, &chunk_files, sizes.len(), chunk_major);
            let mut facts = facts.clone();
            facts["quality"] = report;
            store.set_job_facts(job.id, &facts).await?;
        }
        let mut renditions = Vec::with_capacity(sizes.len());
        for (rendition, &(w, h)) in sizes.iter().enumerate() {
            let chunks = chunks_of(rendition);
            let video = match &source {
                Some(source) => Video::Copy(source),
                None => Video::Chunks(&chunks),
            };
            let out = dir
                .path()
                .join(format!("rendition-{rendition}.{}", container.name()));
            join(video, &streams, &facts, container, dir.path(), &out).await?;
            renditions.push((out, w, h));
        }
        let stills = facts["stills"].is_object();
        let output = if facts["hls"].is_object() {
            let folder =
                package_streaming(&renditions, audio_tracks as usize, &facts, dir.path()).await?;
            if stills {
                add_stills(&chunks_of(0), &facts, &renditions[0].0, &folder).await?;
            }
            archive(&folder)?
        } else if stills {
            // The video and its stills, in one archive.
            let folder = dir.path().join("output");
            std::fs::create_dir_all(&folder).map_err(inconsistent)?;
            let video = folder.join(format!("{VIDEO_STEM}.{}", container.name()));
            std::fs::rename(&renditions[0].0, &video).map_err(inconsistent)?;
            add_stills(&chunks_of(0), &facts, &video, &folder).await?;
            archive(&folder)?
        } else {
            renditions.swap_remove(0).0
        };
        Ok(blobs.put_file(output_key, &output).await?)
    }
}
