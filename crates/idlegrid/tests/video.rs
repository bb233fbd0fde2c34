//! The video-transcode app end to end: `idlegrid transcode` on clips made with FFmpeg's test
//! sources, through a throw-away local grid of the real binary; outputs checked with ffprobe
//! (counted frames, codecs, sizes, durations) and PSNR against the source, frames aligned by
//! index. Needs `ffmpeg` and `ffprobe` on PATH (scripts/setup.sh installs them).

mod common;

use common::{clip, idlegrid, psnr_figure, sh, tile_psnr};
use idlegrid_testkit::files_under;
use std::path::Path;
use std::process::Command;

struct Probe {
    video: serde_json::Value,
    audio: Option<serde_json::Value>,
}

fn probe(path: &Path) -> Probe {
    let out = sh(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_type,codec_name,profile,width,height,pix_fmt,nb_read_frames,duration",
            "-of",
            "json",
            &path.to_string_lossy(),
        ],
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = info["streams"].as_array().unwrap().clone();
    let find = |kind: &str| streams.iter().find(|s| s["codec_type"] == kind).cloned();
    Probe {
        video: find("video").expect("no video stream"),
        audio: find("audio"),
    }
}

fn frames(stream: &serde_json::Value) -> u64 {
    stream["nb_read_frames"].as_str().unwrap().parse().unwrap()
}

/// Average PSNR (all planes) of `output` against `source` scaled to the output's size, frames
/// aligned by index, both as coded (rotation metadata is checked separately).
fn psnr(output: &Path, source: &Path, width: u64, height: u64) -> f64 {
    psnr_field(
        (output, "null"),
        source,
        &format!("scale={width}:{height}:flags=bicubic"),
        "average:",
    )
}

/// Average luma PSNR of `output` against `source` made into the output's frames by `shape`
/// (FFmpeg filters), frames aligned by index.
fn psnr_through(output: &Path, source: &Path, shape: &str) -> f64 {
    psnr_field((output, "null"), source, shape, "y:")
}

/// The figure `field` (`y:`, `average:`) of FFmpeg's PSNR of `output`'s frames picked by
/// `picked` (a filter; `null` for all) against `source` made into them by `shape`, frames
/// aligned by index, both as coded; 100 for identical pictures.
fn psnr_field((output, picked): (&Path, &str), source: &Path, shape: &str, field: &str) -> f64 {
    let graph = format!(
        "[0:v]{picked},settb=1/30,setpts=N[a];\
         [1:v]{shape},format=yuv420p,settb=1/30,setpts=N[b];[a][b]psnr"
    );
    let out = sh(
        "ffmpeg",
        &[
            "-nostdin",
            "-noautorotate",
            "-i",
            &output.to_string_lossy(),
            "-noautorotate",
            "-i",
            &source.to_string_lossy(),
            "-lavfi",
            &graph,
            "-f",
            "null",
            "-",
        ],
    );
    psnr_figure(&String::from_utf8_lossy(&out.stderr), field)
}

/// Runs `idlegrid transcode` with no coordinator configured; returns (success, stdout, stderr).
fn transcode(dir: &Path, input: &Path, output: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = idlegrid(&dir.join("home"))
        .arg("transcode")
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(["--local-workers", "2"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_mp4_with_audio_is_transcoded_frame_exact_and_scaled() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mp4",
        "testsrc2=size=640x360:rate=30:duration=8",
        Some("sine=frequency=440:duration=8"),
        &["-c:v", "libx264", "-g", "45", "-bf", "2", "-c:a", "aac"],
    );
    let output = dir.path().join("out.mp4");
    let (ok, stdout, stderr) = transcode(
        dir.path(),
        &source,
        &output,
        &["--preset", "360p", "--chunk-seconds", "2"],
    );
    assert!(ok, "transcode failed: {stderr}");
    assert!(stdout.contains("240 frames verified"), "{stdout}");
    let (src, out) = (probe(&source), probe(&output));
    assert_eq!(frames(&out.video), frames(&src.video));
    assert_eq!(out.video["codec_name"], "h264");
    assert_eq!(out.video["pix_fmt"], "yuv420p");
    assert_eq!(
        (out.video["width"].as_u64(), out.video["height"].as_u64()),
        (Some(640), Some(360))
    );
    let audio = out.audio.expect("the audio is kept");
    assert_eq!(
        (audio["codec_name"].as_str(), audio["profile"].as_str()),
        (Some("aac"), Some("LC"))
    );
    let seconds = |s: &serde_json::Value| s["duration"].as_str().unwrap().parse::<f64>().unwrap();
    assert!(
        (seconds(&audio) - seconds(&out.video)).abs() < 0.1,
        "{audio} vs {}",
        out.video
    );
    let quality = psnr(&output, &source, 640, 360);
    assert!(quality > 35.0, "PSNR {quality} dB");
}

#[test]
fn odd_sized_vp9_in_mkv_without_audio_and_a_downscale() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mkv",
        "testsrc2=size=321x241:rate=25:duration=4",
        None,
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "25",
        ],
    );
    let (stdout, out) = transcode_checked(dir.path(), &source, &["--chunk-seconds", "1"], 30.0);
    assert!(
        stdout.contains("no audio"),
        "the job says the input has no audio: {stdout}"
    );
    assert_eq!(
        (out.video["width"].as_u64(), out.video["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert!(out.audio.is_none());
}

#[test]
fn a_long_gop_source_is_split_frame_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mov",
        "testsrc2=size=320x240:rate=24:duration=6",
        Some("sine=frequency=300:duration=6"),
        &[
            "-c:v",
            "libx264",
            "-g",
            "1000",
            "-keyint_min",
            "1000",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
        ],
    );
    let (stdout, _) = transcode_checked(dir.path(), &source, &["--chunk-seconds", "1"], 35.0);
    assert!(
        stdout.contains("each device decoding from the keyframe before its chunk"),
        "sparse keyframes: chunks cut by stream copy, decoded from the keyframe before: {stdout}"
    );
}

#[test]
fn unusable_inputs_fail_with_a_reason_that_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(100)).unwrap();
    let audio_only = clip(
        dir.path(),
        "audio.m4a",
        "sine=frequency=440:duration=2",
        None,
        &["-c:a", "aac"],
    );
    let whole = clip(
        dir.path(),
        "whole.mp4",
        "testsrc2=size=320x240:rate=30:duration=4",
        None,
        &["-c:v", "libx264", "-g", "30", "-movflags", "+faststart"],
    );
    let bytes = std::fs::read(&whole).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // Matroska has no frame index: the cut shows only when the demuxer runs out of file.
    let whole_mkv = clip(
        dir.path(),
        "whole.mkv",
        "testsrc2=size=320x240:rate=30:duration=8",
        None,
        &["-c:v", "libx264", "-g", "30"],
    );
    let bytes = std::fs::read(&whole_mkv).unwrap();
    let truncated_mkv = dir.path().join("truncated.mkv");
    std::fs::write(&truncated_mkv, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let absurd = clip(
        dir.path(),
        "absurd.mkv",
        "testsrc2=size=9000x16:rate=5:duration=1",
        None,
        &["-c:v", "ffv1"],
    );
    for (input, reason) in [
        (&empty, "empty"),
        (&text, "not a media file"),
        (&audio_only, "no video stream (audio only)"),
        (&truncated, "damaged or truncated"),
        (
            &truncated_mkv,
            "damaged or truncated: File ended prematurely",
        ),
        (&absurd, "9000x16"),
    ] {
        let (ok, _, stderr) = transcode(dir.path(), input, &dir.path().join("out.mp4"), &[]);
        assert!(!ok, "{} should fail", input.display());
        assert!(stderr.contains(reason), "{}: {stderr}", input.display());
    }
    let (ok, _, stderr) = transcode(
        dir.path(),
        &text,
        &dir.path().join("o.mp4"),
        &["--crf", "99"],
    );
    assert!(!ok);
    assert!(stderr.contains("crf must be from 0 to 51"), "{stderr}");
}

#[tokio::test]
async fn tampered_chunks_are_caught_and_the_job_still_completes() {
    use idlegrid_api::tasks::{LeaseRequest, Report, ReportItem};
    use idlegrid_client::Client;

    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mp4",
        "testsrc2=size=320x240:rate=25:duration=6",
        None,
        &["-c:v", "libx264", "-g", "25"],
    );
    let coordinator = common::Coordinator::start(dir.path(), &[]);
    let (url, key, enroll) = (
        coordinator.ready.url.clone(),
        coordinator.ready.api_key.clone(),
        coordinator.ready.enrollment_token.clone(),
    );

    let customer = Client::new(&url, &key).unwrap();
    let job = customer
        .create_job(&idlegrid_testkit::transcode_job(
            serde_json::json!({"x264_preset": "veryfast"}),
            Some(2.0),
        ))
        .await
        .unwrap();
    customer.upload_input_file(job.id, &source).await.unwrap();
    customer.run_job(job.id).await.unwrap();

    // A lying device takes every chunk first: one comes back a frame short, one is a
    // well-formed encode of other pictures, the rest is garbage.
    let capabilities = idlegrid_api::Capabilities {
        cores: 2,
        memory_mb: 8192,
        os: "linux".into(),
        arch: "x86_64".into(),
        python: Some("3.11".into()),
        ffmpeg: Some("5.1".into()),
        benchmark: 1.0,
        slots: 10,
        allows: Default::default(),
        ..Default::default()
    };
    let liar = idlegrid_testkit::register_device(&url, &enroll, "liar", capabilities).await;
    let mut leases = Vec::new();
    while leases.len() < 3 {
        leases.extend(
            liar.lease(&LeaseRequest {
                max_tasks: 10,
                wait_ms: 5000,
            })
            .await
            .unwrap()
            .leases,
        );
    }
    let mut reports = Vec::new();
    for (i, lease) in leases.iter().enumerate() {
        let bytes = if i == 0 {
            let chunk = dir.path().join("chunk.mkv");
            liar.download_lease_input(lease.lease_id, &chunk)
                .await
                .unwrap();
            let short = dir.path().join("short.mkv");
            let frames = (lease.task_params["frames"].as_u64().unwrap() - 1).to_string();
            sh(
                "ffmpeg",
                &[
                    "-v",
                    "error",
                    "-i",
                    &chunk.to_string_lossy(),
                    "-frames:v",
                    &frames,
                    "-c:v",
                    "libx264",
                    "-f",
                    "matroska",
                    &short.to_string_lossy(),
                ],
            );
            std::fs::read(short).unwrap()
        } else if i == 1 {
            // The right codec, size and frame count, but not the source's pictures.
            let fake = dir.path().join("fake.mkv");
            let params = &lease.task_params;
            let source = format!(
                "testsrc=size={}x{}:rate=25",
                params["width"], params["height"]
            );
            let frames = params["frames"].as_u64().unwrap().to_string();
            sh(
                "ffmpeg",
                &[
                    "-v",
                    "error",
                    "-f",
                    "lavfi",
                    "-i",
                    &source,
                    "-frames:v",
                    &frames,
                    "-c:v",
                    "libx264",
                    "-pix_fmt",
                    "yuv420p",
                    "-f",
                    "matroska",
                    &fake.to_string_lossy(),
                ],
            );
            std::fs::read(fake).unwrap()
        } else {
            (0..5000u32)
                .map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect()
        };
        reports.push(ReportItem {
            lease_id: lease.lease_id,
            task_id: lease.task_id,
            outcome: idlegrid_testkit::completed(&bytes),
            log: None,
        });
    }
    let reply = liar.report(&Report { reports }).await.unwrap();
    assert!(reply.results.iter().all(|r| r.accepted), "{reply:?}");

    // An honest worker does the work again.
    let _worker = coordinator.worker(dir.path(), &enroll, "worker", 2);
    let status = idlegrid_testkit::job_once_ended(
        &customer,
        job.id,
        std::time::Duration::from_millis(100),
        600,
    )
    .await;
    assert_eq!(
        status.state,
        idlegrid_api::JobState::Completed,
        "{:?}",
        status.error
    );
    assert_eq!(
        status.chunks.failed_attempts,
        leases.len() as u64,
        "every forgery was caught"
    );
    // The liar's record shows it, and with that many invalid results it gets no more work.
    let record = liar.me().await.unwrap();
    assert_eq!(record.invalid, leases.len() as u64, "{record:?}");
    assert_eq!(record.valid, 0, "{record:?}");
    assert!(record.quarantined, "{record:?}");
    let refused = liar
        .lease(&LeaseRequest {
            max_tasks: 1,
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert!(refused.to_string().contains("quarantined"), "{refused}");
    let output = dir.path().join("out.mp4");
    customer
        .download_output(job.id, &output, &status.output.unwrap().sha256)
        .await
        .unwrap();
    assert_eq!(frames(&probe(&output).video), frames(&probe(&source).video));
    assert!(psnr(&output, &source, 320, 240) > 35.0);
    // Chunks and workers' results are deleted once the job completed; input and output stay.
    let blobs = dir.path().join("data/blobs");
    for (what, path, expected) in [
        ("chunks", format!("jobs/{}/chunks", job.id), 0),
        ("results", format!("results/{}", job.id), 0),
        ("input and output", format!("jobs/{}", job.id), 2),
    ] {
        assert_eq!(
            files_under(&blobs.join(&path)),
            expected,
            "{what} in {path}"
        );
    }
}

/// Transcodes `source` with the given extra arguments and checks the output has every source
/// frame, is H.264, and looks like the source; returns (stdout, output probe).
fn transcode_checked(dir: &Path, source: &Path, extra: &[&str], min_psnr: f64) -> (String, Probe) {
    let output = dir.join("out.mp4");
    let (ok, stdout, stderr) = transcode(dir, source, &output, extra);
    assert!(ok, "transcoding {} failed: {stderr}", source.display());
    let (src, out) = (probe(source), probe(&output));
    assert_eq!(
        frames(&out.video),
        frames(&src.video),
        "{}",
        source.display()
    );
    assert_eq!(out.video["codec_name"], "h264");
    let (w, h) = (
        out.video["width"].as_u64().unwrap(),
        out.video["height"].as_u64().unwrap(),
    );
    let quality = psnr(&output, source, w, h);
    assert!(
        quality > min_psnr,
        "{}: PSNR {quality} dB",
        source.display()
    );
    (stdout, out)
}

#[test]
fn hevc_in_mp4_with_b_frames() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "hevc.mp4",
        "testsrc2=size=320x240:rate=30:duration=4",
        Some("sine=frequency=500:duration=4"),
        &[
            "-c:v",
            "libx265",
            "-x265-params",
            "keyint=30:bframes=4:log-level=error",
            "-tag:v",
            "hvc1",
            "-c:a",
            "aac",
        ],
    );
    transcode_checked(dir.path(), &source, &["--chunk-seconds", "1"], 33.0);
}

#[test]
fn mpeg4_part2_and_open_gop_h264_sources() {
    let dir = tempfile::tempdir().unwrap();
    let mpeg4 = clip(
        dir.path(),
        "mpeg4.mp4",
        "testsrc2=size=352x288:rate=25:duration=4",
        None,
        &["-c:v", "mpeg4", "-q:v", "3", "-g", "25", "-bf", "2"],
    );
    transcode_checked(dir.path(), &mpeg4, &["--chunk-seconds", "1"], 30.0);
    let open_gop = clip(
        dir.path(),
        "open.mkv",
        "testsrc2=size=320x240:rate=30:duration=4",
        None,
        &[
            "-c:v",
            "libx264",
            "-x264-params",
            "open-gop=1:keyint=30:bframes=3",
        ],
    );
    transcode_checked(dir.path(), &open_gop, &["--chunk-seconds", "1"], 33.0);
}

#[test]
fn webm_vp9_opus_shorter_than_one_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "short.webm",
        "testsrc2=size=320x240:rate=30:duration=1.5",
        Some("sine=frequency=440:duration=1.5"),
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-c:a",
            "libopus",
        ],
    );
    let (stdout, out) = transcode_checked(dir.path(), &source, &[], 30.0);
    assert!(stdout.contains("1 video chunks"), "{stdout}");
    assert_eq!(out.audio.unwrap()["codec_name"], "aac");
}

/// A 3 s 320×240 clip with two audio tracks (English at 440 Hz, French at 880 Hz) and English
/// text subtitles, its video starting `video_start` seconds after its sound, in Matroska.
fn rich_source(dir: &Path, video_start: f64) -> std::path::PathBuf {
    let subtitles = dir.join("subtitles.srt");
    std::fs::write(
        &subtitles,
        "1\n00:00:00,500 --> 00:00:01,500\nHello\n\n2\n00:00:02,000 --> 00:00:02,800\nWorld\n",
    )
    .unwrap();
    let source = dir.join("rich.mkv");
    let start = video_start.to_string();
    sh(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-itsoffset",
            &start,
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30:duration=3",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=3.5",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=880:duration=3.5",
            "-i",
            &subtitles.to_string_lossy(),
            "-map",
            "0",
            "-map",
            "1",
            "-map",
            "2",
            "-map",
            "3",
            "-c:v",
            "libx264",
            "-g",
            "30",
            "-fps_mode",
            "passthrough",
            "-c:a",
            "aac",
            "-c:s",
            "srt",
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=fra",
            "-metadata:s:s:0",
            "language=eng",
            &source.to_string_lossy(),
        ],
    );
    source
}

/// Every stream of `path`: codec, kind, language, start, pixel format, counted frames.
fn streams(path: &Path) -> Vec<serde_json::Value> {
    let out = sh(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_type,codec_name,pix_fmt,start_time,nb_read_frames:stream_tags=language",
            "-of",
            "json",
            &path.to_string_lossy(),
        ],
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info["streams"].as_array().unwrap().clone()
}

/// How long after the first audio stream `path`'s video starts, as the container says (an
/// AAC track's start counts its encoder's priming, up to one AAC frame).
fn video_after_audio(path: &Path) -> f64 {
    let streams = streams(path);
    let start = |kind: &str| {
        let stream = streams.iter().find(|s| s["codec_type"] == kind).unwrap();
        stream["start_time"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    start("video") - start("audio")
}

/// Checks a transcode of [`rich_source`] `source`: the codecs asked, every frame, both audio
/// tracks with their languages, the subtitles in the container's own format, and sound and
/// picture still starting where they did (within one frame).
fn check_rich(output: &Path, source: &Path, video: &str, audio: &str, subtitles: &str) {
    let streams = streams(output);
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        streams.iter().filter(|s| s["codec_type"] == kind).collect()
    };
    let (v, a, s) = (of("video"), of("audio"), of("subtitle"));
    assert_eq!(v.len(), 1, "{streams:?}");
    assert_eq!(v[0]["codec_name"], video, "{streams:?}");
    assert_eq!(v[0]["pix_fmt"], "yuv420p");
    assert_eq!(frames(v[0]), 90, "every source frame");
    let languages: Vec<&str> = a
        .iter()
        .map(|t| t["tags"]["language"].as_str().unwrap())
        .collect();
    assert_eq!(languages, ["eng", "fra"], "{streams:?}");
    assert!(a.iter().all(|t| t["codec_name"] == audio), "{streams:?}");
    assert_eq!(s.len(), 1, "{streams:?}");
    assert_eq!(
        (
            s[0]["codec_name"].as_str(),
            s[0]["tags"]["language"].as_str()
        ),
        (Some(subtitles), Some("eng"))
    );
    let (apart, was) = (video_after_audio(output), video_after_audio(source));
    assert!(
        (apart - was).abs() <= 1.0 / 30.0,
        "the video starts {apart:.3} s after the sound, {was:.3} s in the source"
    );
}

#[test]
fn hevc_in_mp4_with_every_audio_track_and_subtitles_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let source = rich_source(dir.path(), 0.5);
    let output = dir.path().join("out.mp4");
    let (ok, stdout, stderr) = transcode(
        dir.path(),
        &source,
        &output,
        &["--codec", "hevc", "--chunk-seconds", "1"],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("hevc 320x240 + 2 aac tracks + 1 subtitle track(s) in mp4"),
        "{stdout}"
    );
    check_rich(&output, &source, "hevc", "aac", "mov_text");
    assert!(video_after_audio(&output) > 0.45, "the late start is kept");
    let tag = sh(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=codec_tag_string",
            "-of",
            "csv=p=0",
            &output.to_string_lossy(),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&tag.stdout).trim(),
        "hvc1",
        "Apple's players need hvc1"
    );
    assert!(psnr(&output, &source, 320, 240) > 33.0);
}

#[test]
fn av1_in_webm_with_opus_and_webvtt() {
    let dir = tempfile::tempdir().unwrap();
    let source = rich_source(dir.path(), 1.5);
    // The container from the output's name; Opus is WebM's audio.
    let output = dir.path().join("out.webm");
    let (ok, stdout, stderr) = transcode(
        dir.path(),
        &source,
        &output,
        &["--codec", "av1", "--chunk-seconds", "1"],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("av1 320x240 + 2 opus tracks"), "{stdout}");
    check_rich(&output, &source, "av1", "opus", "webvtt");
    assert!(video_after_audio(&output) > 1.45, "the late start is kept");
    assert!(psnr(&output, &source, 320, 240) > 33.0);
}

#[test]
fn vp9_in_mkv_and_h264_in_mov_with_chosen_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let source = rich_source(dir.path(), 0.0);
    let output = dir.path().join("out.mkv");
    let (ok, _, stderr) = transcode(
        dir.path(),
        &source,
        &output,
        &["--codec", "vp9", "--speed", "6"],
    );
    assert!(ok, "{stderr}");
    check_rich(&output, &source, "vp9", "aac", "subrip");
    assert!(psnr(&output, &source, 320, 240) > 33.0);
    // Only the French track, no subtitles, in a QuickTime file.
    let output = dir.path().join("out.mov");
    let (ok, stdout, stderr) = transcode(
        dir.path(),
        &source,
        &output,
        &[
            "--audio-tracks",
            "fra",
            "--no-subtitles",
            "--audio-codec",
            "aac",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("1 of the input's 2 audio tracks kept"),
        "{stdout}"
    );
    let streams = streams(&output);
    let kinds: Vec<&str> = streams
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["video", "audio"], "{streams:?}");
    assert_eq!(streams[1]["tags"]["language"], "fra");
    // A language the source does not have is the customer's mistake, named.
    let (ok, _, stderr) = transcode(
        dir.path(),
        &source,
        &dir.path().join("none.mp4"),
        &["--audio-tracks", "deu"],
    );
    assert!(!ok);
    assert!(stderr.contains("the input's are: eng, fra"), "{stderr}");
    // A codec the container cannot carry, refused before anything is uploaded.
    let (ok, _, stderr) = transcode(dir.path(), &source, &dir.path().join("x.webm"), &[]);
    assert!(!ok);
    assert!(
        stderr.contains("a webm file cannot carry h264 video"),
        "{stderr}"
    );
}

/// Transmuxing: the video and sound are carried over untouched (the same packets), into
/// another container, with every frame checked and no device's work.
#[test]
fn transmuxing_copies_every_packet_into_another_container() {
    let dir = tempfile::tempdir().unwrap();
    let source = rich_source(dir.path(), 0.5);
    let output = dir.path().join("out.mp4");
    let (ok, stdout, stderr) = transcode(
        dir.path(),
        &source,
        &output,
        &["--codec", "copy", "--audio-codec", "copy"],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("0 chunks"), "no device's work: {stdout}");
    assert!(stdout.contains("the video copied as it is"), "{stdout}");
    check_rich(&output, &source, "h264", "aac", "mov_text");
    // The same coded packets, byte for byte.
    let hashes = |path: &Path, stream: &str| {
        let out = sh(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-i",
                &path.to_string_lossy(),
                "-map",
                stream,
                "-c",
                "copy",
                "-f",
                "streamhash",
                "-hash",
                "sha256",
                "-",
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for stream in ["0:v:0", "0:a:0", "0:a:1"] {
        assert_eq!(hashes(&output, stream), hashes(&source, stream), "{stream}");
    }
    // A source whose every stream starts a second in: the copies keep their places too.
    let late = dir.path().join("late.mkv");
    sh(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30:duration=3",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=3",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-output_ts_offset",
            "1",
            &late.to_string_lossy(),
        ],
    );
    let output = dir.path().join("late-out.mkv");
    let (ok, _, stderr) = transcode(
        dir.path(),
        &late,
        &output,
        &["--codec", "copy", "--audio-codec", "copy"],
    );
    assert!(ok, "{stderr}");
    let (apart, was) = (video_after_audio(&output), video_after_audio(&late));
    assert!(
        (apart - was).abs() < 0.002,
        "{apart:.3} s apart, {was:.3} s in the source"
    );
}

#[test]
fn rotation_metadata_is_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    let upright = clip(
        dir.path(),
        "upright.mp4",
        "testsrc2=size=320x240:rate=30:duration=2",
        None,
        &["-c:v", "libx264"],
    );
    // FFmpeg 5.1 writes the rotate tag as a display matrix when it copies the stream.
    let source = dir.path().join("rotated.mov");
    sh(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            &upright.to_string_lossy(),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
            &source.to_string_lossy(),
        ],
    );
    let rotation = |path: &Path| {
        let out = sh(
            "ffprobe",
            &[
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream_side_data=rotation",
                "-of",
                "csv=p=0",
                &path.to_string_lossy(),
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let rotated = rotation(&source);
    assert!(
        !rotated.is_empty() && rotated != "0",
        "the test clip carries a rotation"
    );
    let (stdout, _) = transcode_checked(dir.path(), &source, &[], 33.0);
    assert!(stdout.contains("rotation"), "{stdout}");
    assert_eq!(rotation(&dir.path().join("out.mp4")), rotated);
}

/// The video's frames' presentation times, ascending, relative to its first.
fn frame_times(path: &Path) -> Vec<f64> {
    let out = sh(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
            &path.to_string_lossy(),
        ],
    );
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    let first = times[0];
    times.iter().map(|t| t - first).collect()
}

/// Keyframes every second for 4 s and then none for 5 s (B-frames throughout): the first
/// chunks go out cut at keyframes as the muxer closes them, the rest is cut from the keyframe
/// before each chunk's frames, and every frame keeps its time across the switch.
#[test]
fn keyframes_that_stop_partway_switch_the_rest_to_frame_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mp4",
        "testsrc2=size=320x240:rate=30:duration=9",
        None,
        &[
            "-c:v",
            "libx264",
            "-g",
            "1000",
            "-sc_threshold",
            "0",
            "-bf",
            "3",
            "-force_key_frames",
            "expr:lt(t,4)*gte(t,n_forced)",
        ],
    );
    let output = dir.path().join("out.mp4");
    let (ok, stdout, stderr) = transcode(dir.path(), &source, &output, &["--chunk-seconds", "1"]);
    assert!(ok, "transcode failed: {stderr}");
    assert!(stdout.contains("270 frames verified"), "{stdout}");
    assert!(
        stdout.contains("split at keyframes, then frames, each device decoding"),
        "{stdout}"
    );
    assert!(psnr(&output, &source, 320, 240) > 35.0);
    let (before, after) = (frame_times(&source), frame_times(&output));
    assert_eq!(before.len(), after.len());
    let worst = before
        .iter()
        .zip(&after)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 0.002, "a frame moved by {worst:.4} s");
}

/// 90 frames at 30 fps with a 0.7 s pause after frame 45 and 0.4 s after frame 60 (frame n is
/// shown at n/30 s, plus 0.7 from frame 45 and 0.4 more from frame 60), open GOPs, and 4.1 s
/// of sound.
fn vfr_clip(dir: &Path) -> std::path::PathBuf {
    clip(
        dir,
        "vfr.mp4",
        "testsrc2=size=320x240:rate=30:duration=3",
        Some("sine=frequency=440:duration=4.1"),
        &[
            "-vf",
            "setpts='(N/30+0.7*gte(N,45)+0.4*gte(N,60))/TB'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-x264-params",
            "open-gop=1:keyint=20",
            "-c:a",
            "aac",
        ],
    )
}

/// A variable frame rate (a pause mid-chunk and one at a chunk boundary, and open GOPs so the
/// chunks are decoded from the keyframe before them) keeps every frame at its own time: no
/// frame is dropped or repeated, nothing is made constant on the coordinator.
#[test]
fn a_variable_frame_rate_keeps_every_frame_at_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let source = vfr_clip(dir.path());
    let output = dir.path().join("out.mp4");
    let (ok, stdout, stderr) = transcode(dir.path(), &source, &output, &["--chunk-seconds", "1"]);
    assert!(ok, "transcode failed: {stderr}");
    assert!(stdout.contains("variable frame rate"), "{stdout}");
    assert!(stdout.contains("90 frames verified"), "{stdout}");
    let (before, after) = (frame_times(&source), frame_times(&output));
    assert_eq!(before.len(), after.len());
    let worst = before
        .iter()
        .zip(&after)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 0.002, "a frame moved by {worst:.4} s");
    assert!(
        (video_after_audio(&output) - video_after_audio(&source)).abs() <= 1.0 / 30.0,
        "sound and picture stay together"
    );
}

#[test]
fn hls_output_is_a_ladder_of_aligned_renditions_with_a_master_playlist() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mp4",
        "testsrc2=size=1280x720:rate=30:duration=7",
        Some("sine=frequency=440:duration=7"),
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-c:a",
            "aac",
        ],
    );
    let hls = dir.path().join("hls");
    let out = idlegrid(&dir.path().join("home"))
        .arg("transcode")
        .arg(&source)
        .arg("--hls")
        .arg(&hls)
        .args([
            "--chunk-seconds",
            "3",
            "--x264-preset",
            "veryfast",
            "--local-workers",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_streaming(&hls, &source, &["1280x720", "852x480", "640x360"], "avc1");
}

/// Counted video frames of `path` (a file or a playlist) as FFmpeg reads it, per video stream.
fn counted_video_frames(path: &Path) -> Vec<u64> {
    let out = sh(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v",
            "-count_packets",
            "-show_entries",
            "stream=index,nb_read_packets",
            "-of",
            "csv=p=0",
            &path.to_string_lossy(),
        ],
    );
    // By stream index: a program lists its streams again.
    let streams: std::collections::BTreeMap<u64, u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (index, count) = l.trim().trim_end_matches(',').split_once(',')?;
            Some((index.parse().ok()?, count.parse().ok()?))
        })
        .collect();
    streams.into_values().collect()
}

/// A streaming output in `dir`: CMAF segments described by a DASH manifest and HLS playlists,
/// the `sizes` ladder in both (highest first), every rendition with every source frame, the
/// video playlists cut at the same times, `codec` (e.g. `avc1`) named in the master playlist.
fn check_streaming(dir: &Path, source: &Path, sizes: &[&str], codec: &str) {
    let master = std::fs::read_to_string(dir.join("master.m3u8")).unwrap();
    for size in sizes {
        assert!(master.contains(&format!("RESOLUTION={size}")), "{master}");
    }
    assert!(
        master.contains(codec) && master.contains("mp4a.40.2"),
        "{master}"
    );
    let playlists: Vec<&str> = master
        .lines()
        .filter(|l| !l.starts_with('#') && l.ends_with(".m3u8"))
        .collect();
    assert_eq!(playlists.len(), sizes.len(), "{master}");
    let source_frames = frames(&probe(source).video);
    let mut segment_times = Vec::new();
    for playlist in playlists {
        let path = dir.join(playlist);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("#EXT-X-ENDLIST") && text.contains("#EXT-X-MAP"),
            "{text}"
        );
        let durations: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(str::to_string)
            .collect();
        assert!(durations.len() >= 2, "{text}");
        segment_times.push(durations);
        assert_eq!(
            counted_video_frames(&path),
            [source_frames],
            "{playlist} has every frame"
        );
    }
    // Aligned: every rendition is cut at the same times, so players can switch between them.
    assert!(
        segment_times.windows(2).all(|w| w[0] == w[1]),
        "{segment_times:?}"
    );
    // The DASH manifest describes the same segment files (counted through the playlists
    // above): FFmpeg finds every rendition in it at its size.
    let manifest = dir.join("manifest.mpd");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("type=\"static\""), "{text}");
    assert!(
        text.contains("initialization=\"init-$RepresentationID$.m4s\""),
        "{text}"
    );
    let out = sh(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=index,width,height",
            "-of",
            "csv=p=0",
            &manifest.to_string_lossy(),
        ],
    );
    // By stream index: a program lists its streams again.
    let found: std::collections::BTreeMap<u64, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (index, size) = l.trim().trim_end_matches(',').split_once(',')?;
            Some((index.parse().ok()?, size.replace(',', "x")))
        })
        .collect();
    assert_eq!(found.into_values().collect::<Vec<_>>(), sizes, "{text}");
}

/// A ladder of another codec: CMAF carries HEVC as well as H.264.
#[test]
fn an_hevc_ladder_is_packaged_for_dash_and_hls() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mp4",
        "testsrc2=size=854x480:rate=25:duration=7",
        Some("sine=frequency=440:duration=7"),
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
        ],
    );
    let hls = dir.path().join("stream");
    let out = idlegrid(&dir.path().join("home"))
        .arg("transcode")
        .arg(&source)
        .arg("--hls")
        .arg(&hls)
        .args([
            "--codec",
            "hevc",
            "--speed",
            "ultrafast",
            "--chunk-seconds",
            "2",
            "--poster",
            "1.5",
        ])
        .args(["--local-workers", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_streaming(&hls, &source, &["854x480", "640x360"], "hvc1");
    // A streaming output's stills sit beside its playlists, made from the top rendition.
    // 1.5 s at 25 fps: frame 37.5, rounded up.
    let poster = still_psnr(&hls.join("poster.jpg"), &source, 38, "null");
    assert!(poster > 30.0, "the poster is not frame 38: {poster:.1} dB");
}

/// Luma PSNR of the still `jpeg` against frame `frame` (by number) of `source` made into it by
/// `shape`; panics unless the still is a JPEG of the size `shape` makes.
fn still_psnr(jpeg: &Path, source: &Path, frame: u64, shape: &str) -> f64 {
    tile_psnr(jpeg, "null", source, frame, shape)
}

/// Thumbnails every 2 s and a poster: each pictures its own frame of the source (chunks of
/// 2 s with B-frames, so the stills fall inside chunks, at their first frames and in the
/// last, shorter chunk), the sprite sheet holds them in order and the index times them by the
/// output's frames; the video itself is as without them.
#[test]
fn thumbnails_and_a_poster_picture_their_frames() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mp4",
        "testsrc2=size=320x240:rate=30:duration=7",
        Some("sine=frequency=440:duration=7"),
        &["-c:v", "libx264", "-g", "30", "-bf", "2", "-c:a", "aac"],
    );
    let (stdout, _) = transcode_checked(
        dir.path(),
        &source,
        &[
            "--chunk-seconds",
            "2",
            "--thumbnails",
            "2",
            "--thumbnail-width",
            "96",
            "--poster",
            "3.5",
        ],
        33.0,
    );
    assert!(stdout.contains("stills written to"), "{stdout}");
    let stills = dir.path().join("out");
    let poster = still_psnr(&stills.join("poster.jpg"), &source, 105, "null");
    assert!(poster > 30.0, "the poster is not frame 105: {poster:.1} dB");
    let thumbs = stills.join("thumbnails");
    for k in 0..4u64 {
        let file = thumbs.join(format!("thumbnail-{k:05}.jpg"));
        let right = still_psnr(&file, &source, k * 60, "scale=96:72:flags=bicubic");
        assert!(right > 30.0, "thumbnail {k}: {right:.1} dB");
    }
    assert!(!thumbs.join("thumbnail-00004.jpg").exists());
    let index = std::fs::read_to_string(thumbs.join("thumbnails.vtt")).unwrap();
    let cues: Vec<&str> = index.lines().filter(|l| l.contains("-->")).collect();
    assert_eq!(
        cues,
        [
            "00:00:00.000 --> 00:00:02.000",
            "00:00:02.000 --> 00:00:04.000",
            "00:00:04.000 --> 00:00:06.000",
            "00:00:06.000 --> 00:00:07.000",
        ],
        "{index}"
    );
    assert!(index.contains("sprite-001.jpg#xywh=288,0,96,72"), "{index}");
    // The sprite sheet: the thumbnails side by side, in order.
    let sheet = thumbs.join("sprite-001.jpg");
    for k in 0..4u64 {
        let crop = format!("crop=96:72:{}:0", k * 96);
        let tile = tile_psnr(&sheet, &crop, &source, k * 60, "scale=96:72:flags=bicubic");
        assert!(tile > 28.0, "tile {k} of the sprite sheet: {tile:.1} dB");
    }
}

/// Luma PSNR of frame `k` of `output` against frame `m` of `source` (both by number, at the
/// output's size).
fn frame_psnr(output: &Path, k: u64, source: &Path, m: u64) -> f64 {
    psnr_field(
        (output, &format!("select='eq(n\\,{k})'")),
        source,
        &format!("select='eq(n\\,{m})'"),
        "y:",
    )
}

/// Half the frame rate keeps every other frame, made on the devices (no intermediate of the
/// whole video on the coordinator), and the poster asked for pictures its time at the new rate.
#[test]
fn a_frame_rate_asked_for_replaces_the_sources() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mp4",
        "testsrc2=size=320x240:rate=30:duration=4",
        None,
        &["-c:v", "libx264", "-g", "30"],
    );
    let output = dir.path().join("out.mp4");
    let (ok, stdout, stderr) = transcode(
        dir.path(),
        &source,
        &output,
        &["--fps", "15", "--poster", "1", "--chunk-seconds", "1"],
    );
    assert!(ok, "transcode failed: {stderr}");
    assert!(
        stdout.contains("frame rate converted from 30.000 to 15.000 fps"),
        "{stdout}"
    );
    assert!(!stdout.contains("intermediate"), "{stdout}");
    // The summary names where the video went, not the archive it came in.
    assert!(
        stdout.contains(&format!("written to {}", output.display())),
        "{stdout}"
    );
    let out = probe(&output);
    assert_eq!(frames(&out.video), 60, "4 s at 15 fps");
    let even = psnr_through(&output, &source, "select='not(mod(n\\,2))'");
    let odd = psnr_through(&output, &source, "select='mod(n\\,2)'");
    assert!(
        even > 35.0 && odd < even - 8.0,
        "even {even:.1} dB, odd {odd:.1} dB"
    );
    // The poster at 1 s: output frame 15, the source's frame 30.
    let poster = dir.path().join("out").join("poster.jpg");
    let right = still_psnr(&poster, &source, 30, "null");
    let next = still_psnr(&poster, &source, 31, "null");
    assert!(
        right > 35.0 && next < right - 5.0,
        "{right:.1} dB, next {next:.1} dB"
    );
}

/// A variable frame rate made constant: each output frame pictures the source frame shown at
/// its time (a pause is held), chunk by chunk on the devices, and sound and picture stay
/// together.
#[test]
fn a_variable_frame_rate_is_made_constant_on_the_devices() {
    let dir = tempfile::tempdir().unwrap();
    let source = vfr_clip(dir.path());
    let output = dir.path().join("out.mp4");
    let (ok, stdout, stderr) = transcode(
        dir.path(),
        &source,
        &output,
        &["--fps", "25", "--chunk-seconds", "1"],
    );
    assert!(ok, "transcode failed: {stderr}");
    assert!(!stdout.contains("intermediate"), "{stdout}");
    let shown = |n: u64| {
        n as f64 / 30.0 + if n >= 45 { 0.7 } else { 0.0 } + if n >= 60 { 0.4 } else { 0.0 }
    };
    // The last frame at 4.067 s, held for a frame's length at the average rate.
    let count = frames(&probe(&output).video);
    assert!((102..=104).contains(&count), "{count} frames");
    // Output frames at 0.4 s, in the first pause (2.0 s), after it, and in the second.
    for k in [10u64, 50, 58, 80, 95] {
        let at = k as f64 / 25.0;
        let m = (0..90).rev().find(|&n| shown(n) <= at + 0.0005).unwrap();
        let right = frame_psnr(&output, k, &source, m);
        assert!(
            right > 33.0,
            "output frame {k} ({at} s) against source frame {m}: {right:.1} dB"
        );
        let other = if m + 1 < 90 { m + 1 } else { m - 1 };
        let wrong = frame_psnr(&output, k, &source, other);
        assert!(
            wrong < right - 5.0,
            "frame {k}: {right:.1} dB, frame {other} {wrong:.1} dB"
        );
    }
    assert!(
        (video_after_audio(&output) - video_after_audio(&source)).abs() <= 1.0 / 25.0,
        "sound and picture stay together"
    );
}

/// The task script, run by hand twice on the same chunk with the same parameters, writes the
/// same bytes: results from different devices can be compared by hash.
#[test]
fn the_task_script_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mkv",
        "testsrc2=size=320x240:rate=25:duration=4",
        None,
        &["-c:v", "libx264", "-g", "25"],
    );
    // The first chunk the segment muxer makes of it, as the partitioner cuts.
    let pattern = dir.path().join("%05d.mkv");
    sh(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            &source.to_string_lossy(),
            "-c",
            "copy",
            "-f",
            "segment",
            "-segment_time",
            "2",
            "-reset_timestamps",
            "1",
            "-segment_format",
            "matroska",
            &pattern.to_string_lossy(),
        ],
    );
    let chunk = dir.path().join("00000.mkv");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../idlegrid-coordinator/apps/video-transcode/task.py");
    let task = |scale: bool, width: u32, height: u32, codec: &str, preset: &str, crf: u8| {
        serde_json::json!({
            "kind": "video", "frames": 50, "width": width, "height": height, "rendition": 0,
            "scale": scale, "keyint": 50,
            "encoder": {"codec": codec, "preset": preset, "crf": crf, "bitrate": null,
                        "maxrate": null, "bufsize": null, "profile": null, "level": null,
                        "threads": 2, "keyframe_seconds": null, "audio_codec": "aac",
                        "audio_bitrate": "128000", "audio_channels": 2,
                        "audio_sample_rate": 48000},
        })
    };
    // Busy devices: sixteen encodes at once, most of them squeezed onto one core (x264's
    // threaded lookahead gave other bytes in one of eight such runs).
    let run = |name: String, task: serde_json::Value, one_core: bool| {
        let scratch = dir.path().join(&name);
        std::fs::create_dir_all(scratch.join("input")).unwrap();
        std::fs::create_dir_all(scratch.join("output")).unwrap();
        std::fs::copy(&chunk, scratch.join("input/chunk.mkv")).unwrap();
        let mut command = if one_core {
            let mut c = Command::new("taskset");
            c.args(["-c", "0", "python3"]);
            c
        } else {
            Command::new("python3")
        };
        let out = command
            .arg(&script)
            .current_dir(&scratch)
            .env("IDLEGRID_TASK", task.to_string())
            .env("IDLEGRID_PARAMS", "{}")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(scratch.join("output/chunk.mkv")).unwrap()
    };
    // Stills attached to the chunk (a thumbnail and a poster), with a watermark laid over.
    let mut stills = task(true, 160, 120, "h264", "medium", 23);
    stills["stills"] = serde_json::json!([
        {"frame": 3, "name": "thumbnail-00000.jpg", "width": 80, "height": 60},
        {"frame": 40, "name": "poster.jpg", "width": 160, "height": 120},
    ]);
    {
        use base64::Engine;
        let logo = dir.path().join("logo.png");
        sh(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "color=c=red:size=16x8",
                "-frames:v",
                "1",
                &logo.to_string_lossy(),
            ],
        );
        stills["watermark"] = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(&logo).unwrap())
            .into();
        stills["geometry"] = "scale=160:120:flags=bicubic[main];movie=watermark.png,\
                              scale=24:12:flags=bicubic,format=rgba,colorchannelmixer=aa=0.800\
                              [mark];[main][mark]overlay=131:5"
            .into();
    }
    for (kind, task, runs) in [
        ("same size", task(false, 320, 240, "h264", "medium", 23), 16),
        ("stills and a watermark", stills, 8),
        ("scaled", task(true, 160, 120, "h264", "medium", 23), 16),
        // The other encoders, fewer times each (they are slower).
        ("hevc", task(false, 320, 240, "hevc", "fast", 25), 6),
        ("av1", task(false, 320, 240, "av1", "10", 35), 6),
        ("vp9", task(false, 320, 240, "vp9", "6", 35), 6),
    ] {
        let outputs: Vec<Vec<u8>> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..runs)
                .map(|i| {
                    let task = task.clone();
                    let name = format!("{kind}-{i}");
                    s.spawn(move || run(name, task, i % 3 != 0))
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert!(!outputs[0].is_empty());
        let differing = outputs.iter().filter(|o| **o != outputs[0]).count();
        assert_eq!(
            differing, 0,
            "{kind}: {differing} of {runs} encodes of one chunk differ"
        );
    }
}

/// `idlegrid bench transcode` runs end to end on a small clip and reports sane figures (nothing
/// here is timed).
#[test]
fn bench_transcode_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let out = idlegrid(&dir.path().join("home"))
        .args(["bench", "transcode", "--seconds", "3", "--size", "320x240"])
        .args([
            "--chunk-seconds",
            "1",
            "--x264-preset",
            "veryfast",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(figures["frame_exact"], true, "{figures}");
    assert_eq!(figures["source_frames"], 90);
    assert_eq!(figures["grid"]["frames"], 90);
    for side in ["grid", "plain"] {
        assert!(figures[side]["wall_secs"].as_f64().unwrap() > 0.0);
        assert!(
            figures[side]["psnr_db"].as_f64().unwrap() > 30.0,
            "{figures}"
        );
    }
    assert!(figures["video_chunks"].as_u64().unwrap() >= 2, "{figures}");
    assert_eq!(figures["model"].as_array().unwrap().len(), 8);
    let ten_minutes = figures["model_10_minutes"].as_array().unwrap();
    let w32 = ten_minutes.iter().find(|m| m["devices"] == 32).unwrap();
    let efficiency = w32["efficiency"].as_f64().unwrap();
    assert!(efficiency > 0.0 && efficiency <= 1.0, "{figures}");
    assert!(figures["coordinator_cpu_per_minute"].as_f64().unwrap() > 0.0);
    // The split measured at two lengths: a fixed part and a part per second of source.
    let fixed = figures["split_fixed_secs"].as_f64().unwrap();
    let per_second = figures["split_secs_per_source_second"].as_f64().unwrap();
    assert!(
        fixed >= 0.0 && per_second >= 0.0 && fixed + per_second > 0.0,
        "{figures}"
    );
}

/// Luma PSNR of each chunk of `output` against `source` (same size, frames aligned by index;
/// chunk k starts at frame `starts[k]`), each from its frames' mean squared error as FFmpeg's
/// `psnr` filter sums frames up.
fn chunk_psnrs(output: &Path, source: &Path, starts: &[usize]) -> Vec<f64> {
    let out = sh(
        "ffmpeg",
        &[
            "-nostdin",
            "-i",
            &output.to_string_lossy(),
            "-i",
            &source.to_string_lossy(),
            "-lavfi",
            "[0:v]settb=1,setpts=N[a];[1:v]format=yuv420p,settb=1,setpts=N[b];[a][b]psnr=stats_file=-",
            "-f",
            "null",
            "-",
        ],
    );
    let mse: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("mse_y:"))
                .map(|v| v.parse().unwrap())
        })
        .collect();
    starts
        .iter()
        .zip(starts.iter().skip(1).chain([&mse.len()]))
        .map(|(&from, &to)| {
            let c = &mse[from..to];
            let mean = c.iter().sum::<f64>() / c.len() as f64;
            10.0 * (255.0f64 * 255.0 / mean).log10()
        })
        .collect()
}

/// A quality target: each chunk finds its own rate factor (a clean half and a noisy half need
/// different ones), lands within half a dB of the target, and the quality the job reports for
/// each chunk is what the output's frames measure. The source has B-frames and is cut at its
/// keyframes: every frame keeps its time (the segment muxer's list is two frames off there).
#[test]
fn a_psnr_target_is_reached_chunk_by_chunk_and_reported_truthfully() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mkv",
        "testsrc2=size=320x240:rate=25:duration=4,noise=alls=24:allf=t:enable='gte(t,2)'",
        None,
        &["-c:v", "libx264", "-crf", "10", "-g", "25"],
    );
    let output = dir.path().join("out.mkv");
    let (ok, stdout, stderr) = transcode(
        dir.path(),
        &source,
        &output,
        &[
            "--target-quality",
            "psnr:38",
            "--chunk-seconds",
            "1",
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let (times, source_times) = (frame_times(&output), frame_times(&source));
    assert_eq!(times.len(), source_times.len());
    for (i, (t, s)) in times.iter().zip(&source_times).enumerate() {
        assert!(
            (t - s).abs() < 0.002,
            "frame {i} is at {t} s, in the source at {s} s"
        );
    }
    let job: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let report = &job["facts"]["quality"];
    assert_eq!(report["metric"], "psnr", "{report}");
    let chunks = report["chunks"].as_array().unwrap();
    let listed = job["facts"]["chunk_starts"].as_array().unwrap();
    let first = listed[0].as_f64().unwrap();
    let starts: Vec<usize> = listed[..chunks.len()]
        .iter()
        .map(|t| ((t.as_f64().unwrap() - first) * 25.0).round() as usize)
        .collect();
    assert!(chunks.len() >= 3, "{report}");
    let measured = chunk_psnrs(&output, &source, &starts);
    for (chunk, truth) in chunks.iter().zip(&measured) {
        let value = chunk["value"].as_f64().unwrap();
        assert!(
            (value - truth).abs() < 0.01,
            "chunk reports {value} dB, its frames measure {truth} dB: {report}"
        );
        assert!((value - 38.0).abs() <= 0.5, "{report}");
    }
    assert_eq!(report["within"], chunks.len(), "{report}");
    let crf = |k: usize| chunks[k]["crf"].as_f64().unwrap();
    assert!(
        crf(0) > crf(chunks.len() - 1) + 5.0,
        "the noisy half needs a much lower rate factor than the clean one: {report}"
    );
}

/// Integrated loudness (LUFS) of `path`'s first audio stream.
fn loudness(path: &Path) -> f64 {
    let out = sh(
        "ffmpeg",
        &[
            "-nostdin",
            "-i",
            &path.to_string_lossy(),
            "-map",
            "0:a:0",
            "-af",
            "ebur128=framelog=verbose",
            "-f",
            "null",
            "-",
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let (_, summary) = log.rsplit_once("Integrated loudness:").unwrap();
    summary.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Loudness normalisation: a quiet track (about -32 LUFS) comes out at the -16 LUFS asked, as
/// the source's sound; impossible asks are refused before anything runs.
#[test]
fn audio_is_normalised_to_the_loudness_asked() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "quiet.mkv",
        "testsrc2=size=160x120:rate=25:duration=4",
        Some("sine=frequency=440:duration=4,volume=0.05"),
        &["-c:v", "libx264", "-g", "25", "-c:a", "aac"],
    );
    let before = loudness(&source);
    assert!(before < -28.0, "the source is at {before} LUFS");
    let output = dir.path().join("loud.mp4");
    let (ok, stdout, stderr) = transcode(dir.path(), &source, &output, &["--loudness", "-16"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("at -16 LUFS"), "{stdout}");
    let after = loudness(&output);
    assert!((after + 16.0).abs() <= 1.0, "the output is at {after} LUFS");
    for (extra, needle) in [
        (
            &["--loudness", "-50"][..],
            "loudness must be from -36 to -8 LUFS",
        ),
        (
            &["--loudness", "-16", "--audio-codec", "copy"][..],
            "cannot go with audio_codec copy",
        ),
    ] {
        let (ok, _, stderr) = transcode(dir.path(), &source, &dir.path().join("no.mp4"), extra);
        assert!(!ok && stderr.contains(needle), "{extra:?}: {stderr}");
    }
}

/// An aspect ratio: cropped (centred, part of the picture cut) or padded (black bars), every
/// frame there and the picture the source's through the same crop or padding.
#[test]
fn pictures_are_cropped_or_padded_to_an_aspect_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "four-three.mkv",
        "testsrc2=size=320x240:rate=25:duration=2",
        None,
        &["-c:v", "libx264", "-g", "25"],
    );
    for (fit, size, shape) in [
        ("crop", (320, 180), "crop=320:180:0:30"),
        ("pad", (426, 240), "pad=426:240:52:0:black"),
    ] {
        let output = dir.path().join(format!("{fit}.mp4"));
        let (ok, _, stderr) = transcode(
            dir.path(),
            &source,
            &output,
            &["--aspect", "16:9", "--fit", fit, "--chunk-seconds", "1"],
        );
        assert!(ok, "{fit}: {stderr}");
        let out = probe(&output);
        assert_eq!(
            (out.video["width"].as_u64(), out.video["height"].as_u64()),
            (Some(size.0), Some(size.1)),
            "{fit}"
        );
        assert_eq!(frames(&out.video), 50, "{fit}");
        let quality = psnr_through(&output, &source, shape);
        assert!(quality > 35.0, "{fit}: PSNR {quality} dB through {shape}");
    }
}

/// Subtitles of a streaming output: each text track as WebVTT, with its cues at their times,
/// listed with its language by the HLS master playlist and the DASH manifest.
#[test]
fn subtitles_reach_dash_and_hls_as_webvtt() {
    let dir = tempfile::tempdir().unwrap();
    let source = rich_source(dir.path(), 0.0);
    let stream = dir.path().join("stream");
    let out = idlegrid(&dir.path().join("home"))
        .arg("transcode")
        .arg(&source)
        .arg("--hls")
        .arg(&stream)
        .args(["--chunk-seconds", "1", "--x264-preset", "ultrafast"])
        .args(["--local-workers", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vtt = std::fs::read_to_string(stream.join("subtitles-0.vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    // The cues at their times on the output's clock, on which the video starts where it did
    // in the source (within a frame: MP4 outputs have always placed text tracks 23 ms late).
    let cue = |text: &str| -> f64 {
        let line = vtt
            .lines()
            .take_while(|l| *l != text)
            .filter(|l| l.contains(" --> "))
            .last()
            .unwrap_or_else(|| panic!("no cue before {text:?} in {vtt}"));
        let start = line.split(" --> ").next().unwrap();
        let (m, s) = start.split_once(':').unwrap();
        m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap()
    };
    assert!((cue("Hello") - 0.5).abs() < 1.0 / 30.0, "{vtt}");
    assert!((cue("World") - 2.0).abs() < 1.0 / 30.0, "{vtt}");
    let master = std::fs::read_to_string(stream.join("master.m3u8")).unwrap();
    assert!(
        master.contains("TYPE=SUBTITLES,GROUP-ID=\"subs\"")
            && master.contains("LANGUAGE=\"eng\"")
            && master.contains("URI=\"subtitles-0.m3u8\""),
        "{master}"
    );
    assert!(
        master.contains("TYPE=AUDIO,NAME=\"eng\",LANGUAGE=\"eng\"")
            && master.contains("TYPE=AUDIO,NAME=\"fra\",LANGUAGE=\"fra\""),
        "{master}"
    );
    let variants = master.matches("#EXT-X-STREAM-INF:").count();
    assert!(variants >= 1, "{master}");
    assert_eq!(
        master.matches("SUBTITLES=\"subs\"").count(),
        variants,
        "{master}"
    );
    let playlist = std::fs::read_to_string(stream.join("subtitles-0.m3u8")).unwrap();
    assert!(
        playlist.contains("subtitles-0.vtt") && playlist.contains("#EXT-X-ENDLIST"),
        "{playlist}"
    );
    let manifest = std::fs::read_to_string(stream.join("manifest.mpd")).unwrap();
    assert!(
        manifest.contains("mimeType=\"text/vtt\" lang=\"eng\"")
            && manifest.contains("<BaseURL>subtitles-0.vtt</BaseURL>"),
        "{manifest}"
    );
    // Every set its own id (players name a text track by it), the text one a subtitle.
    let mut ids: Vec<&str> = manifest
        .split("<AdaptationSet id=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(
        ids.len(),
        manifest.matches("<AdaptationSet").count(),
        "{manifest}"
    );
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        manifest.matches("<AdaptationSet").count(),
        "{manifest}"
    );
    assert!(
        manifest.contains("<Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"subtitle\"/>"),
        "{manifest}"
    );
    // Both audio tracks with their languages (FFmpeg's DASH reader does not take side-loaded
    // WebVTT, so the manifest is read as text here; dash.js plays it in the dashboard).
    assert!(
        manifest.contains("contentType=\"audio\"") && manifest.contains("lang=\"fra\""),
        "{manifest}"
    );
}

/// An MP4's own text subtitles (mov_text, which Matroska cannot hold) come through: their text
/// is carried as SubRip on the coordinator and written back as mov_text.
#[test]
fn an_mp4s_own_text_subtitles_come_through() {
    let dir = tempfile::tempdir().unwrap();
    let srt = dir.path().join("s.srt");
    std::fs::write(&srt, "1\n00:00:00,500 --> 00:00:01,500\nHello\n").unwrap();
    let source = dir.path().join("subtitled.mp4");
    sh(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25:duration=2",
            "-i",
            &srt.to_string_lossy(),
            "-map",
            "0",
            "-map",
            "1",
            "-c:v",
            "libx264",
            "-c:s",
            "mov_text",
            &source.to_string_lossy(),
        ],
    );
    let output = dir.path().join("out.mp4");
    let (ok, _, stderr) = transcode(dir.path(), &source, &output, &["--chunk-seconds", "1"]);
    assert!(ok, "{stderr}");
    let text = sh(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            &output.to_string_lossy(),
            "-map",
            "0:s:0",
            "-f",
            "srt",
            "-",
        ],
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("00:00:00,500 --> 00:00:01,500\nHello"),
        "{text}"
    );
}

/// A watermark laid over every frame where it was asked, at its share of the width: the
/// output matches the source through the same overlay, and not without it.
#[test]
fn a_watermark_is_laid_over_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let source = clip(
        dir.path(),
        "source.mp4",
        "testsrc2=size=320x240:rate=25:duration=4",
        None,
        &["-c:v", "libx264", "-g", "25"],
    );
    let logo = dir.path().join("logo.png");
    sh(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:size=40x20",
            "-frames:v",
            "1",
            &logo.to_string_lossy(),
        ],
    );
    let output = dir.path().join("out.mp4");
    let (ok, _, stderr) = transcode(
        dir.path(),
        &source,
        &output,
        &[
            "--chunk-seconds",
            "2",
            "--watermark",
            &logo.to_string_lossy(),
            "--watermark-position",
            "top-right",
            "--watermark-width",
            "0.25",
            "--watermark-opacity",
            "1",
        ],
    );
    assert!(ok, "{stderr}");
    // 80x40 (a quarter of the width, the logo's shape), 10 pixels (3% of the width) from the
    // top and right edges.
    let overlay = format!(
        "scale=320:240:flags=bicubic[main];movie='{}',scale=80:40:flags=bicubic,format=rgba[mark];\
         [main][mark]overlay=230:10",
        logo.display()
    );
    let with = psnr_through(&output, &source, &overlay);
    let without = psnr_through(&output, &source, "scale=320:240:flags=bicubic");
    assert!(
        with > 35.0,
        "not the source under the watermark: {with:.1} dB"
    );
    assert!(
        without < with - 8.0,
        "no watermark: {without:.1} dB without it, {with:.1} with"
    );
    // Refused before anything runs: not a PNG.
    let (ok, _, stderr) = transcode(
        dir.path(),
        &source,
        &dir.path().join("bad.mp4"),
        &["--watermark", &source.to_string_lossy()],
    );
    assert!(!ok && stderr.contains("must be a PNG"), "{stderr}");
}
