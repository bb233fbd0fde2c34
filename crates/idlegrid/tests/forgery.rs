//! Devices that want the pay without the work, against the real coordinator and honest real
//! workers, with the default settings. On the open grid every device is of an owner of its
//! own and the job is verified by default (adaptive replication); in a private fleet (every
//! device the customer's own, nothing replicated) only the validator's checks stand between
//! a forgery and the output. A cheating device here speaks the Tasks API itself, takes the
//! chunks first and returns what its strategy makes; the job must still complete with every
//! chunk honest, the cheater must never be credited, a cheater caught must be quarantined,
//! and no honest device ever is.

mod common;

use common::{Coordinator, clip, sh, tail, tile_psnr};
use idlegrid_api::jobs::Job;
use idlegrid_api::tasks::{Lease, LeaseRequest, Report, ReportItem, ReportOutcome};
use idlegrid_api::{JobState, ReplicationMode};
use idlegrid_client::{Client, sha256_bytes};
use idlegrid_testkit::job_once_ended;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The FFmpeg version this machine's workers report, so a cheater's results are compared
/// with theirs (a cheater claiming another version would only be left out of every quorum).
fn ffmpeg_version() -> String {
    let out = sh("ffmpeg", &["-version"]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string()
}

/// A cheating owner: devices whose results are whatever its strategy makes of a chunk. A new
/// device on probation holds one chunk of checked work at a time, so the owner registers as
/// many devices as it wants chunks at once (all its own: one party).
struct Cheater {
    url: String,
    token: String,
    devices: Vec<Client>,
    /// Which device holds each lease.
    holders: std::collections::HashMap<idlegrid_api::LeaseId, usize>,
    /// Devices that sent a forgery.
    forgers: std::sync::Mutex<std::collections::HashSet<usize>>,
    dir: PathBuf,
}

impl Cheater {
    async fn register(coordinator: &Coordinator, token: &str, dir: &Path) -> Cheater {
        let dir = dir.join(format!("cheater-{}", &token[..8.min(token.len())]));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cheater = Cheater {
            url: coordinator.ready.url.clone(),
            token: token.to_string(),
            devices: Vec::new(),
            holders: Default::default(),
            forgers: Default::default(),
            dir,
        };
        cheater.add_device().await;
        cheater
    }

    async fn add_device(&mut self) -> usize {
        let capabilities = idlegrid_api::Capabilities {
            cores: 4,
            memory_mb: 8192,
            os: "linux".into(),
            arch: "x86_64".into(),
            python: Some("3.11".into()),
            ffmpeg: Some(ffmpeg_version()),
            benchmark: 1000.0,
            slots: 8,
            // It claims every encoder, to be offered any job.
            encoders: idlegrid_domain::GRID_ENCODERS.map(String::from).to_vec(),
            ..Default::default()
        };
        let name = format!("cheater-{}", self.devices.len());
        let device =
            idlegrid_testkit::register_device(&self.url, &self.token, &name, capabilities).await;
        self.devices.push(device);
        self.devices.len() - 1
    }

    /// The device holding `lease`.
    fn client(&self, lease: &Lease) -> &Client {
        &self.devices[self.holders.get(&lease.lease_id).copied().unwrap_or(0)]
    }

    /// Leases `want` chunks (waiting for the split) with as few devices as it can, and says
    /// the job's bundle.
    async fn take(&mut self, want: usize) -> (Vec<Lease>, String) {
        let mut leases = Vec::new();
        let mut bundle = String::new();
        let mut device = self.devices.len() - 1;
        for _ in 0..100 {
            let grant = self.devices[device]
                .lease(&LeaseRequest {
                    max_tasks: 8,
                    wait_ms: 200,
                })
                .await
                .unwrap();
            if let Some(job) = grant.jobs.first() {
                bundle = job.bundle_sha256.clone();
            }
            let got = !grant.leases.is_empty();
            for lease in grant.leases {
                self.holders.insert(lease.lease_id, device);
                leases.push(lease);
            }
            if leases.len() >= want {
                break;
            }
            if got {
                // The device holds what its probation allows: another device asks.
                device = self.add_device().await;
            }
        }
        assert!(
            leases.len() >= want,
            "the cheater got {} chunks",
            leases.len()
        );
        (leases, bundle)
    }

    /// What the coordinator says of each of the owner's devices.
    async fn records(&self) -> Vec<idlegrid_api::tasks::WorkerStatus> {
        let mut records = Vec::new();
        for client in &self.devices {
            records.push(client.me().await.unwrap());
        }
        records
    }

    /// The lease's chunk, downloaded.
    async fn chunk(&self, lease: &Lease) -> PathBuf {
        let path = self.dir.join(format!("{}.in.mkv", lease.lease_id));
        self.client(lease)
            .download_lease_input(lease.lease_id, &path)
            .await
            .unwrap();
        path
    }

    /// Runs the job's own task script on the lease's chunk with `params` for its parameters:
    /// what an honest device does with the lease's own.
    async fn run_script(&self, lease: &Lease, bundle: &str, params: &serde_json::Value) -> Vec<u8> {
        let bundle = self
            .client(lease)
            .bundle(bundle, lease.lease_id)
            .await
            .unwrap();
        let work = self.dir.join(lease.lease_id.to_string());
        std::fs::create_dir_all(work.join("input")).unwrap();
        std::fs::create_dir_all(work.join("output")).unwrap();
        std::fs::rename(
            self.chunk(lease).await,
            work.join("input").join("chunk.mkv"),
        )
        .unwrap();
        for (name, text) in &bundle.files {
            std::fs::write(work.join(name), text).unwrap();
        }
        let out = std::process::Command::new("python3")
            .arg(&bundle.manifest.entrypoint)
            .current_dir(&work)
            .env("IDLEGRID_TASK", params.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let output = std::fs::read_dir(work.join("output"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::read(output).unwrap()
    }

    /// Reports `bytes` as the lease's output; `false` once the device is quarantined.
    async fn report(&self, lease: &Lease, bytes: &[u8]) -> bool {
        let path = self.dir.join(format!("{}.out", lease.lease_id));
        std::fs::write(&path, bytes).unwrap();
        let sha = sha256_bytes(bytes);
        let client = self.client(lease);
        if let Some(&device) = self.holders.get(&lease.lease_id) {
            self.forgers.lock().unwrap().insert(device);
        }
        if let Err(e) = client
            .upload_lease_output(lease.lease_id, &path, &sha)
            .await
        {
            return e.code() != Some("worker_quarantined");
        }
        let reply = client
            .report(&Report {
                reports: vec![ReportItem {
                    lease_id: lease.lease_id,
                    task_id: lease.task_id,
                    outcome: ReportOutcome::Completed {
                        sha256: sha,
                        size: bytes.len() as u64,
                        inline_base64: None,
                    },
                    log: None,
                }],
            })
            .await;
        !matches!(reply, Err(e) if e.code() == Some("worker_quarantined"))
    }
}

/// FFmpeg's output for `args` (the input and output files included).
fn ffmpeg(args: &[&str]) {
    let mut all = vec!["-nostdin", "-v", "error", "-y"];
    all.extend(args);
    sh("ffmpeg", &all);
}

/// An H.264 chunk in Matroska made from `chunk` through `filter` at the lease's size.
fn encode(lease: &Lease, chunk: &Path, filter: &str, extra: &[&str], out: &Path) -> Vec<u8> {
    let (w, h) = (&lease.task_params["width"], &lease.task_params["height"]);
    let scale = format!("{filter}scale={w}:{h}:flags=bicubic");
    let mut args = vec![
        "-i",
        chunk.to_str().unwrap(),
        "-map",
        "0:v:0",
        "-vf",
        &scale,
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-fps_mode",
        "passthrough",
    ];
    args.extend(extra);
    args.extend(["-f", "matroska", out.to_str().unwrap()]);
    ffmpeg(&args);
    std::fs::read(out).unwrap()
}

/// Whose devices run the job.
#[derive(Clone, Copy, PartialEq)]
enum Fleet {
    /// Every device of an owner of its own: the open grid, verified by replication.
    Open,
    /// Every device the customer's own: nothing replicated.
    Private,
}

/// A grid with two honest workers and a cheater that has taken the chunks of a video job (a
/// 4 s 320x240 clip with a tone, 2 s chunks) before them.
struct Scene {
    dir: tempfile::TempDir,
    coordinator: Coordinator,
    cheater: Cheater,
    job: Job,
    source: PathBuf,
    leases: Vec<Lease>,
    bundle: String,
    honest: Vec<common::Proc>,
    /// FFmpeg filters making the output's frames from the source's, when the job frames the
    /// picture (the crop asked); compared through them.
    shape: Option<String>,
    /// Seconds between thumbnails, when the job asks for them (its output is then an archive).
    stills_every: Option<f64>,
}

impl Scene {
    async fn start(params: serde_json::Value) -> Scene {
        Scene::start_in(Fleet::Open, params).await
    }

    async fn start_in(fleet: Fleet, params: serde_json::Value) -> Scene {
        // The source is 320x240: a 16:9 crop keeps its middle 320x180.
        let params_shape = (params["aspect"] == "16:9" && params["fit"] == "crop")
            .then(|| "crop=320:180:0:30".to_string());
        let stills_every = params["thumbnails"]["every"].as_f64();
        let dir = tempfile::tempdir().unwrap();
        // A watermark (a 40x20 picture at its share of the width, bottom right, 10 pixels in)
        // is compared through its overlay.
        let params_shape = match params["watermark"]["image"].as_str() {
            Some(image) => {
                use base64::Engine;
                let logo = dir.path().join("logo.png");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(image)
                    .unwrap();
                std::fs::write(&logo, bytes).unwrap();
                let share = params["watermark"]["width"].as_f64().unwrap();
                let width = (320.0 * share / 2.0).round() as u32 * 2;
                let height = width / 2;
                Some(format!(
                    "scale=320:240:flags=bicubic[main];movie='{}',scale={width}:{height}:\
                     flags=bicubic,format=rgba[mark];[main][mark]overlay={}:{}",
                    logo.display(),
                    320 - width - 10,
                    240 - height - 10
                ))
            }
            None => params_shape,
        };
        // Half the source's 25 fps: the output's frames are its even ones.
        let params_shape = if params["fps"] == 12.5 {
            Some("select='not(mod(n\\,2))'".to_string())
        } else {
            params_shape
        };
        let source = clip(
            dir.path(),
            "source.mp4",
            "testsrc2=size=320x240:rate=25:duration=4",
            Some("sine=frequency=440:sample_rate=48000:duration=4"),
            &["-c:v", "libx264", "-g", "25", "-c:a", "aac"],
        );
        let coordinator = Coordinator::start(dir.path(), &["--trust-min-age-secs", "0"]);
        // On the open grid, owners first: the job is made on a grid of strangers.
        let (cheater_token, honest_tokens) = match fleet {
            Fleet::Open => (
                coordinator.ready.owner("mallory").await,
                [
                    coordinator.ready.owner("alice").await,
                    coordinator.ready.owner("bob").await,
                ],
            ),
            Fleet::Private => {
                let own = coordinator.ready.enrollment_token.clone();
                (own.clone(), [own.clone(), own])
            }
        };
        let customer = coordinator.ready.customer();
        let job = customer
            .create_job(&idlegrid_testkit::transcode_job(params, Some(2.0)))
            .await
            .unwrap();
        let expected = match fleet {
            Fleet::Open => ReplicationMode::Adaptive,
            Fleet::Private => ReplicationMode::None,
        };
        assert_eq!(
            job.preferences.replication.map(|r| r.mode),
            Some(expected),
            "{}",
            job.verification.summary
        );
        customer.upload_input_file(job.id, &source).await.unwrap();
        customer.run_job(job.id).await.unwrap();
        let mut cheater = Cheater::register(&coordinator, &cheater_token, dir.path()).await;
        let (leases, bundle) = cheater.take(3).await;
        let honest = honest_tokens
            .iter()
            .zip(["alice", "bob"])
            .map(|(token, name)| coordinator.worker(dir.path(), token, name, 1))
            .collect();
        Scene {
            dir,
            coordinator,
            cheater,
            job,
            source,
            leases,
            bundle,
            honest,
            shape: params_shape,
            stills_every,
        }
    }

    /// The cheater's leases of `kind` (`video` or `audio`), each with its chunk downloaded.
    async fn chunks(&self, kind: &str) -> Vec<(Lease, PathBuf)> {
        let mut out = Vec::new();
        for lease in self.leases.iter().filter(|l| l.task_params["kind"] == kind) {
            out.push((lease.clone(), self.cheater.chunk(lease).await));
        }
        assert!(!out.is_empty(), "the cheater holds no {kind} chunk");
        out
    }

    /// Hands back the leases the strategy does not forge, so honest devices run them.
    async fn hand_back_all_but(&self, kind: &str) {
        for lease in self.leases.iter().filter(|l| l.task_params["kind"] != kind) {
            let reports = vec![ReportItem {
                lease_id: lease.lease_id,
                task_id: lease.task_id,
                outcome: ReportOutcome::Released,
                log: None,
            }];
            self.cheater
                .client(lease)
                .report(&Report { reports })
                .await
                .unwrap();
        }
    }

    /// Waits for the job to finish, then checks: it completed, its output is the honest one
    /// (every frame close to the source, the sound the source's), the cheater was caught and
    /// quarantined, and neither honest device was.
    async fn assert_caught(self) {
        self.assert_kept_out(true).await;
    }

    /// As [`Scene::assert_caught`]; `caught` says whether the cheater must also have been
    /// caught (in a private fleet a suspect result that another device outweighs is void,
    /// neither credited nor blamed).
    async fn assert_kept_out(self, caught: bool) {
        let customer = self.coordinator.ready.customer();
        let job = job_once_ended(&customer, self.job.id, Duration::from_millis(100), 1200).await;
        if job.state != JobState::Completed {
            let tail = |name: &str| format!("{name}:\n{}", tail(&self.dir.path().join(name), 30));
            panic!(
                "job {:?} ({:?}); chunks {:?}\n{}\n{}\n{}",
                job.state,
                job.error,
                customer.job_chunks(job.id, 0, 100).await.map(|c| c.tasks),
                tail("serve.log"),
                tail("alice.log"),
                tail("bob.log")
            );
        }
        let mut output = self.dir.path().join("out.mp4");
        customer
            .download_output(job.id, &output, &job.output.as_ref().unwrap().sha256)
            .await
            .unwrap();
        if let Some(every) = self.stills_every {
            // An archive of the video and its thumbnails: every thumbnail is its frame's.
            let folder = self.dir.path().join("out");
            tar::Archive::new(std::fs::File::open(&output).unwrap())
                .unpack(&folder)
                .unwrap();
            let thumbnails = folder.join("thumbnails");
            let mut k = 0;
            while thumbnails.join(format!("thumbnail-{k:05}.jpg")).exists() {
                let frame = (k as f64 * every * 25.0).round() as u64;
                let psnr = tile_psnr(
                    &thumbnails.join(format!("thumbnail-{k:05}.jpg")),
                    "null",
                    &self.source,
                    frame,
                    "scale=80:60:flags=bicubic",
                );
                assert!(
                    psnr > 30.0,
                    "a forged thumbnail {k} reached the output: {psnr:.1} dB"
                );
                k += 1;
            }
            assert_eq!(k, (4.0 / every).ceil() as u64, "thumbnails are missing");
            output = folder.join("video.mp4");
        }
        let worst = worst_psnr(&output, &self.source, self.shape.as_deref());
        assert!(
            worst > 30.0,
            "a forged frame reached the output: PSNR {worst:.1} dB"
        );
        let records = self.cheater.records().await;
        for record in &records {
            assert_eq!(record.valid, 0, "a forgery was accepted: {record:?}");
            assert_eq!(record.earned.0, 0, "a forgery was paid: {record:?}");
        }
        if caught {
            // A device caught forging is quarantined; its owner's other devices lose their
            // trust, and their results not yet confirmed are run again elsewhere.
            let forgers = self.cheater.forgers.lock().unwrap().clone();
            assert!(
                forgers
                    .iter()
                    .any(|&d| records[d].invalid >= 1 && records[d].quarantined),
                "no forging device was caught: {records:?}"
            );
        }
        for name in ["alice", "bob"] {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                .unwrap_or_default();
            assert!(
                !log.contains("quarantined"),
                "{name} was quarantined:\n{log}"
            );
        }
        drop(self.honest);
    }
}

/// The lowest per-frame PSNR (luma) of `output` against `source` (through `shape` when given),
/// frames aligned by index.
fn worst_psnr(output: &Path, source: &Path, shape: Option<&str>) -> f64 {
    let graph = format!(
        "[0:v]settb=1/25,setpts=N[a];[1:v]{}settb=1/25,setpts=N[b];[a][b]psnr=stats_file=-",
        shape.map(|s| format!("{s},")).unwrap_or_default()
    );
    let out = sh(
        "ffmpeg",
        &[
            "-nostdin",
            "-i",
            output.to_str().unwrap(),
            "-i",
            source.to_str().unwrap(),
            "-lavfi",
            &graph,
            "-f",
            "null",
            "-",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("psnr_y:"))
                .map(|v| {
                    if v == "inf" {
                        100.0
                    } else {
                        v.parse().unwrap()
                    }
                })
        })
        .fold(f64::INFINITY, f64::min)
}

#[tokio::test]
async fn frames_replaced_by_a_solid_colour_are_caught() {
    let scene = Scene::start(serde_json::json!({})).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        // The first frame is the source's, every other one flat grey.
        let out = scene.cheater.dir.join("solid.mkv");
        let bytes = encode(
            &lease,
            &chunk,
            "drawbox=x=0:y=0:w=iw:h=ih:color=gray:t=fill:enable='gt(n,0)',",
            &["-preset", "ultrafast"],
            &out,
        );
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

#[tokio::test]
async fn a_tiny_encode_scaled_back_up_is_caught() {
    let scene = Scene::start(serde_json::json!({})).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        let small = scene.cheater.dir.join("small.mkv");
        ffmpeg(&[
            "-i",
            chunk.to_str().unwrap(),
            "-vf",
            "scale=96:54",
            "-c:v",
            "libx264",
            "-crf",
            "45",
            "-fps_mode",
            "passthrough",
            small.to_str().unwrap(),
        ]);
        let out = scene.cheater.dir.join("upscaled.mkv");
        let bytes = encode(&lease, &small, "", &["-crf", "23"], &out);
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

#[tokio::test]
async fn a_lazy_device_with_a_faster_preset_is_caught_by_replication() {
    let scene = Scene::start(serde_json::json!({"x264_preset": "slow"})).await;
    scene.hand_back_all_but("video").await;
    for (lease, _) in scene.chunks("video").await {
        // Our own task script, told to use the cheapest preset: the pictures look right.
        let mut params = lease.task_params.clone();
        params["encoder"]["preset"] = "ultrafast".into();
        let bytes = scene
            .cheater
            .run_script(&lease, &scene.bundle, &params)
            .await;
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

#[tokio::test]
async fn frames_copied_instead_of_encoded_are_caught() {
    let scene = Scene::start(serde_json::json!({})).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        // Every other frame is the one before it again: half the pictures, same count.
        let out = scene.cheater.dir.join("repeated.mkv");
        let bytes = encode(&lease, &chunk, "shuffleframes=0 0,", &["-crf", "23"], &out);
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

/// An AAC file of `audio` (a lavfi source) as long as the source's sound, in the form asked.
fn fake_audio(dir: &Path, audio: &str) -> Vec<u8> {
    let out = dir.join("fake.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        audio,
        "-t",
        "4",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-ac",
        "2",
        "-ar",
        "48000",
        "-f",
        "mp4",
        out.to_str().unwrap(),
    ]);
    std::fs::read(out).unwrap()
}

#[tokio::test]
async fn silence_instead_of_the_sound_is_caught() {
    let scene = Scene::start(serde_json::json!({})).await;
    scene.hand_back_all_but("audio").await;
    for (lease, _) in scene.chunks("audio").await {
        let bytes = fake_audio(&scene.cheater.dir, "anullsrc=r=48000:cl=stereo");
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

#[tokio::test]
async fn a_tone_instead_of_the_sound_is_caught() {
    let scene = Scene::start(serde_json::json!({})).await;
    scene.hand_back_all_but("audio").await;
    for (lease, _) in scene.chunks("audio").await {
        let bytes = fake_audio(&scene.cheater.dir, "sine=frequency=1000:sample_rate=48000");
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

#[tokio::test]
async fn in_a_private_fleet_solid_frames_are_rejected_without_replication() {
    let scene = Scene::start_in(Fleet::Private, serde_json::json!({})).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        let out = scene.cheater.dir.join("solid.mkv");
        let bytes = encode(
            &lease,
            &chunk,
            "drawbox=x=0:y=0:w=iw:h=ih:color=gray:t=fill:enable='gt(n,0)',",
            &["-preset", "ultrafast"],
            &out,
        );
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

#[tokio::test]
async fn in_a_private_fleet_an_upscaled_encode_is_re_run_before_it_counts() {
    let scene = Scene::start_in(Fleet::Private, serde_json::json!({})).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        let small = scene.cheater.dir.join("small.mkv");
        ffmpeg(&[
            "-i",
            chunk.to_str().unwrap(),
            "-vf",
            "scale=96:54",
            "-c:v",
            "libx264",
            "-crf",
            "45",
            "-fps_mode",
            "passthrough",
            small.to_str().unwrap(),
        ]);
        let out = scene.cheater.dir.join("upscaled.mkv");
        let bytes = encode(&lease, &small, "", &["-crf", "23"], &out);
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_kept_out(false).await;
}

#[tokio::test]
async fn in_a_private_fleet_silent_audio_is_rejected_without_replication() {
    let scene = Scene::start_in(Fleet::Private, serde_json::json!({})).await;
    scene.hand_back_all_but("audio").await;
    for (lease, _) in scene.chunks("audio").await {
        let bytes = fake_audio(&scene.cheater.dir, "anullsrc=r=48000:cl=stereo");
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

/// A cheaper codec than the one asked (x264 `ultrafast` for AV1), of the right picture, size
/// and frames: rejected by the validator alone, with nothing replicated.
#[tokio::test]
async fn in_a_private_fleet_a_cheaper_codec_than_asked_is_rejected() {
    let params = serde_json::json!({"video_codec": "av1", "container": "mkv"});
    let scene = Scene::start_in(Fleet::Private, params).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        let out = scene.cheater.dir.join("h264.mkv");
        let bytes = encode(&lease, &chunk, "", &["-preset", "ultrafast"], &out);
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

/// The sound of the source in AAC where Opus was asked: rejected by the validator alone.
#[tokio::test]
async fn in_a_private_fleet_aac_where_opus_was_asked_is_rejected() {
    let params = serde_json::json!({"audio_codec": "opus"});
    let scene = Scene::start_in(Fleet::Private, params).await;
    scene.hand_back_all_but("audio").await;
    for (lease, _) in scene.chunks("audio").await {
        let source = scene.source.to_str().unwrap().to_string();
        let bytes = fake_audio(&scene.cheater.dir, &format!("amovie={source}"));
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

/// The source's sound where it was to be normalised to -30 LUFS: the right codec, length and
/// waveform, but not the loudness asked; rejected by the validator alone.
#[tokio::test]
async fn in_a_private_fleet_sound_left_at_its_loudness_is_rejected() {
    let params = serde_json::json!({"loudness": -30});
    let scene = Scene::start_in(Fleet::Private, params).await;
    scene.hand_back_all_but("audio").await;
    for (lease, _) in scene.chunks("audio").await {
        let source = scene.source.to_str().unwrap().to_string();
        let bytes = fake_audio(&scene.cheater.dir, &format!("amovie={source}"));
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_caught().await;
}

/// The whole picture squeezed into a 16:9 frame where a centred crop was asked (cheaper than
/// nothing, but not the work): the validator compares with the source cropped as asked.
#[tokio::test]
async fn in_a_private_fleet_a_squeezed_picture_where_a_crop_was_asked_never_counts() {
    let params = serde_json::json!({"aspect": "16:9", "fit": "crop"});
    let scene = Scene::start_in(Fleet::Private, params).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        let out = scene.cheater.dir.join("squeezed.mkv");
        let bytes = encode(&lease, &chunk, "", &["-crf", "18"], &out);
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_kept_out(false).await;
}

/// A private fleet's video job with quality target `target` whose chunks the cheater takes and
/// answers with one encode at `crf` (no search), its track named `claim` as the task script
/// names it.
async fn one_encode_for_a_target(target: &str, crf: &str, claim: &str) -> Scene {
    let params = serde_json::json!({ "target_quality": target });
    let scene = Scene::start_in(Fleet::Private, params).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        let out = scene.cheater.dir.join("one-encode.mkv");
        let title = format!("title=idlegrid {claim}");
        let bytes = encode(
            &lease,
            &chunk,
            "",
            &["-crf", crf, "-metadata:s:v:0", &title],
            &out,
        );
        scene.cheater.report(&lease, &bytes).await;
    }
    scene
}

/// A quality search skipped, named as if it had found a low rate factor and reached the
/// target. The PSNR it reports is far above the frames the validator compares (rejected
/// outright when they are enough of the chunk to rule it out, else re-run on an independent
/// device, whose bytes differ): it never counts.
#[tokio::test]
async fn in_a_private_fleet_an_overstated_quality_never_counts() {
    let scene = one_encode_for_a_target("psnr:45", "35", "crf=20 psnr=45.000000").await;
    scene.assert_kept_out(false).await;
}

/// The same skipped search, honest about its one encode's rate factor and modest about its
/// quality: far below the target, so it counts only if an independent device makes the same
/// bytes, which the search's do not.
#[tokio::test]
async fn in_a_private_fleet_a_search_cut_short_is_re_run_before_it_counts() {
    let scene = one_encode_for_a_target("psnr:45", "45", "crf=45 psnr=20.000000").await;
    scene.assert_kept_out(false).await;
}

/// The skipped search's other excuse: naming the lowest rate factor allowed, as if even that
/// fell short of the target, over a cheap encode at a high one. A shortfall is held for a
/// re-run whatever rate factor the chunk names.
#[tokio::test]
async fn in_a_private_fleet_a_cheap_encode_claiming_the_lowest_rate_factor_never_counts() {
    let scene = one_encode_for_a_target("psnr:45", "45", "crf=10 psnr=20.000000").await;
    scene.assert_kept_out(false).await;
}

/// The same with an SSIM target, whose reports nothing bounds: a cheap encode claiming the
/// lowest rate factor and the target's SSIM is held for a re-run by the SSIM of the frames
/// the validator compares.
#[tokio::test]
async fn in_a_private_fleet_a_cheap_encode_for_an_ssim_target_never_counts() {
    let scene = one_encode_for_a_target("ssim:0.99", "45", "crf=10 ssim=0.990000").await;
    scene.assert_kept_out(false).await;
}

/// FFmpeg's arguments reading the lavfi source `graph`.
fn lavfi(graph: &str) -> Vec<String> {
    ["-f", "lavfi", "-i", graph].map(String::from).to_vec()
}

/// A still's size as FFmpeg writes it: `WxH`.
fn size(still: &serde_json::Value) -> String {
    format!("{}x{}", still["width"], still["height"])
}

/// A private fleet's job with thumbnails every second (two in each 2 s chunk) whose video
/// chunks the cheater encodes honestly, attaching the stills `still` makes (`None`: none at
/// all) instead of picturing the frames asked.
async fn stills_forged(still: Option<fn(&serde_json::Value, &Path) -> Vec<String>>) -> Scene {
    let params = serde_json::json!({ "thumbnails": { "every": 1, "width": 80 } });
    let scene = Scene::start_in(Fleet::Private, params).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        let folder = scene.cheater.dir.join(format!("stills-{}", lease.lease_id));
        std::fs::create_dir_all(&folder).unwrap();
        let mut extra: Vec<String> = Vec::new();
        let asked = lease.task_params["stills"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!asked.is_empty(), "every chunk pictures a frame: {asked:?}");
        if let Some(make) = still {
            for (i, s) in asked.iter().enumerate() {
                let path = folder.join(s["name"].as_str().unwrap());
                let mut args = make(s, &chunk);
                args.extend(["-frames:v", "1", "-f", "image2", "-update", "1"].map(String::from));
                args.push(path.to_string_lossy().into_owned());
                ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
                extra.extend([
                    "-attach".into(),
                    path.to_string_lossy().into_owned(),
                    format!("-metadata:s:t:{i}"),
                    "mimetype=application/octet-stream".into(),
                ]);
            }
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let out = scene.cheater.dir.join(format!("{}.mkv", lease.lease_id));
        let bytes = encode(&lease, &chunk, "", &extra, &out);
        scene.cheater.report(&lease, &bytes).await;
    }
    scene
}

/// Thumbnails of one grey: the video is honest, the pictures are not, and they never reach
/// the output.
#[tokio::test]
async fn in_a_private_fleet_grey_thumbnails_never_count() {
    let scene = stills_forged(Some(|s, _| {
        lavfi(&format!("color=c=gray:size={}", size(s)))
    }))
    .await;
    scene.assert_kept_out(false).await;
}

/// Thumbnails of a test picture rather than of the frames asked (the cheapest picture that is
/// not blank).
#[tokio::test]
async fn in_a_private_fleet_thumbnails_of_another_picture_never_count() {
    let scene = stills_forged(Some(|s, _| lavfi(&format!("testsrc=size={}", size(s))))).await;
    scene.assert_kept_out(false).await;
}

/// The stills' work skipped: an honest video without them.
#[tokio::test]
async fn in_a_private_fleet_a_chunk_without_its_thumbnails_never_counts() {
    let scene = stills_forged(None).await;
    scene.assert_kept_out(false).await;
}

/// A watermark left out: the cheater encodes the source's picture as it is, without the logo
/// the customer asked for over it (96x48 of 320x240, opaque).
#[tokio::test]
async fn in_a_private_fleet_a_watermark_left_out_never_counts() {
    watermark_left_out(0.3).await;
}

/// The same with a small logo (16x8 of 320x240): too little of the frame for its PSNR to
/// tell, so the watermark's own area is compared.
#[tokio::test]
async fn in_a_private_fleet_a_small_watermark_left_out_never_counts() {
    watermark_left_out(0.05).await;
}

/// A private fleet's job with an opaque red watermark `share` of the width wide whose video
/// chunks the cheater encodes without it.
async fn watermark_left_out(share: f64) {
    use base64::Engine;
    let made = tempfile::tempdir().unwrap();
    let logo = made.path().join("logo.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:size=40x20",
        "-frames:v",
        "1",
        logo.to_str().unwrap(),
    ]);
    let image = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&logo).unwrap());
    let params = serde_json::json!({
        "watermark": { "image": image, "width": share, "opacity": 1 },
    });
    let scene = Scene::start_in(Fleet::Private, params).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        let out = scene.cheater.dir.join(format!("{}.mkv", lease.lease_id));
        let bytes = encode(&lease, &chunk, "", &[], &out);
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_kept_out(false).await;
}

/// A frame rate asked for, left unconverted: the chunk's own frames one for one, cut to the
/// count asked (each of which should picture every other source frame).
#[tokio::test]
async fn in_a_private_fleet_frames_not_made_at_the_rate_asked_never_count() {
    let scene = Scene::start_in(Fleet::Private, serde_json::json!({"fps": 12.5})).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        let out = scene.cheater.dir.join(format!("{}.mkv", lease.lease_id));
        let count = lease.task_params["frames"].to_string();
        let bytes = encode(&lease, &chunk, "", &["-frames:v", &count], &out);
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_kept_out(false).await;
}

/// Something drawn over a corner of every frame (a 24x12 box, an advertisement's size): the
/// frames as a whole stay close to the source's, the patch does not.
#[tokio::test]
async fn in_a_private_fleet_a_patch_drawn_over_the_frames_never_counts() {
    let scene = Scene::start_in(Fleet::Private, serde_json::json!({})).await;
    scene.hand_back_all_but("video").await;
    for (lease, chunk) in scene.chunks("video").await {
        let out = scene.cheater.dir.join(format!("{}.mkv", lease.lease_id));
        let patch = "drawbox=x=40:y=40:w=24:h=12:color=white:t=fill,";
        let bytes = encode(&lease, &chunk, patch, &[], &out);
        scene.cheater.report(&lease, &bytes).await;
    }
    scene.assert_kept_out(false).await;
}

/// A thumbnail of the frame asked with a box drawn at its corner (caught as a picture under
/// the stills' 30 dB: a patch small enough to pass that is a few pixels of a thumbnail).
#[tokio::test]
async fn in_a_private_fleet_a_thumbnail_with_a_patch_never_counts() {
    // The frame asked, as the task pictures it, with a 12x8 box drawn at its corner.
    let scene = stills_forged(Some(|s, chunk| {
        let filter = format!(
            "select='eq(n\\,{})',scale={}:{}:flags=bicubic,\
             drawbox=x=4:y=4:w=12:h=8:color=white:t=fill",
            s["frame"], s["width"], s["height"]
        );
        [
            "-i",
            chunk.to_str().unwrap(),
            "-vf",
            &filter,
            "-fps_mode",
            "passthrough",
        ]
        .map(String::from)
        .to_vec()
    }))
    .await;
    scene.assert_kept_out(false).await;
}

/// What a device is given for a chunk names its input and the encoding asked, nothing of what
/// the validator will look at: no reference frames, thumbnails, sample positions or keys.
#[tokio::test]
async fn the_lease_says_nothing_of_what_will_be_checked() {
    let scene = Scene::start(serde_json::json!({})).await;
    let allowed = [
        "kind",
        "frames",
        "width",
        "height",
        "scale",
        "rendition",
        "encoder",
        // The longest GOP asked: an encoder setting, bounding what a check decodes, not where.
        "keyint",
        "duration",
        // Which of the source's audio tracks the task encodes: its input.
        "track",
        // How the picture is framed to an aspect ratio (crop or pad around the scale): the work.
        "geometry",
        // Which frames of a chunk cut from the keyframe before them are its own: the work.
        "from",
        "to",
        // That the encoder keeps the source's clock: an encoder setting.
        "variable_rate",
        // The frames to picture as stills, and the turn that makes them upright: the work
        // (every one listed is checked).
        "stills",
        "upright",
        // The picture laid over the frames (the customer's): the work.
        "watermark",
    ];
    for lease in &scene.leases {
        let params = lease.task_params.as_object().unwrap();
        for key in params.keys() {
            assert!(
                allowed.contains(&key.as_str()),
                "the lease tells {key}: {params:?}"
            );
        }
        let text = lease.task_params.to_string();
        assert!(!text.contains("ref"), "{text}");
    }
    let bundle = scene
        .cheater
        .client(&scene.leases[0])
        .bundle(&scene.bundle, scene.leases[0].lease_id)
        .await
        .unwrap();
    let files: Vec<&String> = bundle.files.keys().collect();
    assert_eq!(files, ["task.py"], "the bundle holds only the task script");
    scene.hand_back_all_but("none").await;
}

/// Two devices of different owners return the same forged bytes for a chunk (colluders, or
/// one forging tool): agreeing on rejected bytes proves nothing, so the job does not fail and
/// neither is believed; a third owner's result settles it, and both are caught.
#[tokio::test]
async fn identical_forgeries_of_two_owners_are_not_believed() {
    let scene = Scene::start(serde_json::json!({})).await;
    // The honest workers would redo the chunk: not yet, the second device is another
    // cheater, of another owner, that returns the same bytes.
    drop(scene.honest);
    let second_token = scene.coordinator.ready.owner("trudy").await;
    let mut second = Cheater::register(&scene.coordinator, &second_token, scene.dir.path()).await;
    let solid = |cheater: &Cheater, lease: &Lease| {
        let out = cheater.dir.join(format!("{}.mkv", lease.lease_id));
        let (w, h) = (&lease.task_params["width"], &lease.task_params["height"]);
        let frames = lease.task_params["frames"].to_string();
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("color=c=gray:size={w}x{h}:rate=25"),
            "-frames:v",
            &frames,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-f",
            "matroska",
            out.to_str().unwrap(),
        ]);
        std::fs::read(out).unwrap()
    };
    let video: Vec<Lease> = scene
        .leases
        .iter()
        .filter(|l| l.task_params["kind"] == "video")
        .cloned()
        .collect();
    let target = video[0].clone();
    for lease in &video {
        let bytes = solid(&scene.cheater, lease);
        scene.cheater.report(lease, &bytes).await;
    }
    // The second owner's device gets the chunk again, and returns the same bytes.
    let (again, _) = second.take(1).await;
    let same = again
        .iter()
        .find(|l| l.task_id == target.task_id)
        .or_else(|| again.first())
        .unwrap()
        .clone();
    let bytes = solid(&second, &same);
    second.report(&same, &bytes).await;
    // Two owners agreeing on rejected bytes prove nothing (colluders agree): the job goes on,
    // neither device is blamed yet, and the chunk waits for another party.
    let customer = scene.coordinator.ready.customer();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = customer.job(scene.job.id).await.unwrap();
    assert!(!job.state.is_terminal(), "{job:?}");
    // Honest devices of two more owners (a new device's result needs another party's) redo
    // it; their result is accepted, and both forgers are caught.
    let mut honest = Vec::new();
    for name in ["carol", "dave"] {
        let token = scene.coordinator.ready.owner(name).await;
        honest.push(scene.coordinator.worker(scene.dir.path(), &token, name, 2));
    }
    let job = job_once_ended(&customer, scene.job.id, Duration::from_millis(100), 1200).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    for owner in [&scene.cheater, &second] {
        let records = owner.records().await;
        assert!(
            records.iter().any(|r| r.invalid >= 1 && r.quarantined),
            "{records:?}"
        );
    }
}

/// A new identity is cheap, so a new device is on probation: it holds one chunk of checked
/// work in doubt at a time (one more for each valid result in its run), however many it asks
/// for, and a forger's fresh device wastes one check before it is caught rather than as many
/// as it could return meanwhile.
#[tokio::test]
async fn a_new_device_holds_one_result_in_doubt_at_a_time() {
    let mut scene = Scene::start(serde_json::json!({})).await;
    drop(std::mem::take(&mut scene.honest));
    // Three chunks took three devices.
    assert_eq!(scene.cheater.devices.len(), 3, "{:?}", scene.leases);
    let ask = async |client: &Client| {
        client
            .lease(&LeaseRequest {
                max_tasks: 8,
                wait_ms: 300,
            })
            .await
            .unwrap()
            .leases
    };
    // The first device returns its chunk (the result waits for another owner's); the second
    // hands its chunk back, so there is work to take.
    let (first, second) = (&scene.leases[0], &scene.leases[1]);
    let bytes = b"anything".to_vec();
    scene.cheater.report(first, &bytes).await;
    scene
        .cheater
        .client(second)
        .report(&Report {
            reports: vec![ReportItem {
                lease_id: second.lease_id,
                task_id: second.task_id,
                outcome: ReportOutcome::Released,
                log: None,
            }],
        })
        .await
        .unwrap();
    let (one, three) = (
        scene.cheater.client(first),
        scene.cheater.client(&scene.leases[2]),
    );
    // Its result is rejected by the validator: disputed until another owner's result settles
    // the chunk, and in doubt meanwhile.
    assert!(
        ask(one).await.is_empty(),
        "a device with a result in doubt took more"
    );
    assert!(
        ask(three).await.is_empty(),
        "a device holding a chunk took another"
    );
    // The chunk is there for a device that holds nothing.
    let mut cheater = scene.cheater;
    let fresh = cheater.add_device().await;
    let got = ask(&cheater.devices[fresh]).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].task_id, second.task_id);
}
