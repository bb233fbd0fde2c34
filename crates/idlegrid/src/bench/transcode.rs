//! `idlegrid bench transcode`: one clip through the local grid and through one plain `ffmpeg`
//! process with the same settings using all cores. Prints both wall times and their ratio,
//! frame counts, PSNR of each against the source (frames aligned by index) and sizes, and a
//! model of the speed-up with W remote devices built from the measured phases.

use super::ffmpeg;
use crate::cli::CoordinatorArgs;
use crate::cli::bench::TranscodeArgs;
use crate::local::LocalGrid;
use anyhow::Context;
use idlegrid_client::Client;
use serde::Serialize;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// One encode's figures.
#[derive(Debug, Serialize)]
pub struct Encode {
    /// Wall time, seconds.
    pub wall_secs: f64,
    /// Output size, bytes.
    pub bytes: u64,
    /// Frames counted in the output.
    pub frames: u64,
    /// Average PSNR against the source, dB.
    pub psnr_db: f64,
}

/// Modelled grid time with W devices.
#[derive(Debug, Serialize)]
pub struct Modelled {
    /// Speed-up over W: how much of the devices' time is used (1 is perfect).
    pub efficiency: f64,
    /// Devices.
    pub devices: u32,
    /// plain / W + split + stitch, seconds.
    pub ideal_secs: f64,
    /// The same with no more devices than video chunks helping, seconds.
    pub chunk_bound_secs: f64,
    /// plain time / chunk-bound time.
    pub speedup: f64,
}

/// The measured figures.
#[derive(Debug, Serialize)]
pub struct TranscodeFigures {
    /// Source frames (counted).
    pub source_frames: u64,
    /// Video chunks the grid made.
    pub video_chunks: u64,
    /// Local grid workers.
    pub workers: usize,
    /// The grid's encode (upload → completed → downloaded).
    pub grid: Encode,
    /// One ffmpeg process.
    pub plain: Encode,
    /// grid wall / plain wall.
    pub wall_ratio: f64,
    /// grid PSNR − plain PSNR, dB.
    pub psnr_delta_db: f64,
    /// grid size / plain size − 1.
    pub size_delta: f64,
    /// Seconds from `run` until the job left `partitioning` (probe + split + chunk upload).
    pub split_secs: f64,
    /// Seconds from `run` until the first chunk was out for devices.
    pub first_chunk_secs: f64,
    /// The first chunk's wait: its fixed seconds and its seconds per second of source, from
    /// this source and a quarter of it (a split that copies the whole source before sending
    /// anything makes it grow with the source).
    pub first_chunk_fixed_secs: f64,
    /// See `first_chunk_fixed_secs`.
    pub first_chunk_secs_per_source_second: f64,
    /// Seconds the job spent `assembling` (join, mux, final checks).
    pub stitch_secs: f64,
    /// Whether both outputs have every source frame.
    pub frame_exact: bool,
    /// Speed-up model for W remote devices.
    pub model: Vec<Modelled>,
    /// The model for a 10-minute source of this kind, with the split and the encodes
    /// overlapping as they do (each chunk is sent as soon as it is cut): the plain encode
    /// scaled by length, the split and the join their fixed parts plus their parts per second
    /// of source, chunks of this length.
    pub model_10_minutes: Vec<Modelled>,
    /// The split's fixed seconds (probe, start-up), from splitting this source and a quarter
    /// of it.
    pub split_fixed_secs: f64,
    /// The split's seconds per second of source.
    pub split_secs_per_source_second: f64,
    /// The join's fixed seconds, from joining this source and a quarter of it.
    pub stitch_fixed_secs: f64,
    /// The join's seconds per second of source.
    pub stitch_secs_per_source_second: f64,
    /// The codec both encodes used, with its rate factor and speed preset.
    pub codec: String,
    /// Coordinator CPU seconds (partition, validation, assembly) per minute of output.
    pub coordinator_cpu_per_minute: f64,
    /// The coordinator's serial seconds (split + stitch) per minute of output.
    pub serial_secs_per_minute: f64,
    /// CPU seconds the devices spent on the job (the local grid's task scripts and their
    /// FFmpeg).
    pub device_cpu_secs: f64,
    /// CPU seconds the coordinator's tools spent splitting, checking and joining.
    pub coordinator_cpu_secs: CoordinatorCpu,
    /// Checking results' CPU over the devices' CPU (goal: at most 3% at the default settings).
    pub validation_share: f64,
}

/// The coordinator's CPU seconds per stage.
#[derive(Debug, Serialize, Default)]
pub struct CoordinatorCpu {
    /// Probing and splitting the input.
    pub partition: f64,
    /// Checking results.
    pub validate: f64,
    /// Joining them.
    pub assemble: f64,
}

fn count_frames(path: &Path) -> anyhow::Result<u64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
        ])
        .args(["stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .context("cannot run ffprobe")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_end_matches(',')
        .parse()
        .with_context(|| format!("ffprobe could not count frames of {}", path.display()))
}

/// Frames in two seconds of `path`'s video: the longest GOP the grid's encodes may have, given
/// to the plain encode too so both make the same kind of stream.
fn two_second_gop(path: &Path) -> anyhow::Result<u64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=avg_frame_rate", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .context("cannot run ffprobe")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .trim()
        .trim_end_matches(',')
        .split_once('/')
        .and_then(|(n, d)| Some(n.parse::<f64>().ok()? / d.parse::<f64>().ok()?))
        .filter(|r| r.is_finite() && *r > 0.0)
        .with_context(|| format!("ffprobe found no frame rate in {}", path.display()))?;
    Ok(((2.0 * rate).round() as u64).max(1))
}

fn psnr(output: &Path, source: &Path) -> anyhow::Result<f64> {
    let log = ffmpeg(&[
        "-nostdin",
        "-i",
        &output.to_string_lossy(),
        "-i",
        &source.to_string_lossy(),
        "-lavfi",
        "[0:v]settb=1/30,setpts=N[a];[1:v]settb=1/30,setpts=N[b];[a][b]psnr",
        "-f",
        "null",
        "-",
    ])?;
    let average = log
        .split_whitespace()
        .find_map(|w| w.strip_prefix("average:"))
        .context("ffmpeg printed no PSNR")?;
    Ok(if average == "inf" {
        100.0
    } else {
        average.parse()?
    })
}

/// Time to encode with `W` devices when chunks are sent as they are cut: `chunks` chunks of
/// `plain / chunks` seconds of one device's work each, the first out after `first` seconds
/// (measured), the split ending after `split_fixed + split_rest`; then the stitch. The encode
/// ends when the last chunk cut has been encoded or when the devices have worked through every
/// chunk from the first one's arrival, whichever is later.
fn pipelined(
    plain: f64,
    (split_fixed, split_rest): (f64, f64),
    first: f64,
    stitch: f64,
    chunks: f64,
) -> Vec<Modelled> {
    let chunks = chunks.max(1.0);
    let per_chunk = plain / chunks;
    // The first chunk cannot be out before the split's fixed part and its own cut.
    let first = first.max(split_fixed + split_rest / chunks);
    [1u32, 2, 4, 8, 16, 32, 64, 128]
        .into_iter()
        .map(|w| {
            let rounds = (chunks / f64::from(w)).ceil();
            let encode = (split_fixed + split_rest + per_chunk).max(first + rounds * per_chunk);
            let total = encode + stitch;
            Modelled {
                devices: w,
                ideal_secs: plain / f64::from(w) + first + stitch,
                chunk_bound_secs: total,
                speedup: plain / total,
                efficiency: plain / total / f64::from(w),
            }
        })
        .collect()
}

/// The grid's default rate factor for `codec`.
fn default_crf(codec: &str) -> u64 {
    match codec {
        "hevc" => 25,
        "av1" | "vp9" => 35,
        _ => 23,
    }
}

/// One plain ffmpeg process's encoder options for `codec` at `crf` and `speed` (default: the
/// grid's), as close to the task script's as a single process allows; and the speed used.
pub(crate) fn plain_codec_args(
    codec: &str,
    speed: Option<&str>,
    crf: u64,
) -> (Vec<String>, String) {
    let speed = speed
        .unwrap_or(match codec {
            "av1" => "8",
            "vp9" => "4",
            _ => "medium",
        })
        .to_string();
    let crf = crf.to_string();
    let args: Vec<&str> = match codec {
        "hevc" => vec![
            "-c:v",
            "libx265",
            "-preset",
            &speed,
            "-crf",
            &crf,
            "-x265-params",
            "log-level=error:open-gop=0",
        ],
        "av1" => vec!["-c:v", "libsvtav1", "-preset", &speed, "-crf", &crf],
        "vp9" => vec![
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "good",
            "-cpu-used",
            &speed,
            "-row-mt",
            "1",
            "-crf",
            &crf,
            "-b:v",
            "0",
        ],
        _ => vec!["-c:v", "libx264", "-preset", &speed, "-crf", &crf],
    };
    (args.into_iter().map(String::from).collect(), speed)
}

pub async fn transcode(args: TranscodeArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let source = match &args.input {
        Some(path) => path.clone(),
        None => {
            let path = dir.path().join("source.mp4");
            if !args.json {
                eprintln!("making a {} s {} test clip", args.seconds, args.size);
            }
            super::test_clip(
                &path,
                &format!("size={}:rate=30", args.size),
                "",
                args.seconds,
                &["-preset", "ultrafast", "-crf", "12", "-g", "60"],
            )?;
            path
        }
    };
    let source_frames = count_frames(&source)?;
    // The grid's own defaults for the codec, when not given.
    let mut params = serde_json::json!({"video_codec": args.codec});
    if let Some(crf) = args.crf {
        params["crf"] = crf.into();
    }
    if let Some(speed) = &args.speed {
        params["speed"] = speed.as_str().into();
    }
    let crf = args.crf.map_or(default_crf(&args.codec), u64::from);
    let (codec_args, speed) = plain_codec_args(&args.codec, args.speed.as_deref(), crf);
    let codec_args: Vec<&str> = codec_args.iter().map(String::as_str).collect();
    let gop = two_second_gop(&source)?.to_string();

    // One plain ffmpeg process, all cores.
    let plain_out = dir.path().join("plain.mp4");
    if !args.json {
        eprintln!("encoding with one ffmpeg process");
    }
    let started = Instant::now();
    let source_arg = source.to_string_lossy();
    let mut plain_args = vec![
        "-nostdin",
        "-v",
        "error",
        "-i",
        &source_arg,
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
    ];
    plain_args.extend(&codec_args);
    let plain_out_arg = plain_out.to_string_lossy();
    plain_args.extend([
        "-g",
        &gop,
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-ac",
        "2",
        "-ar",
        "48000",
        "-movflags",
        "+faststart",
        &plain_out_arg,
    ]);
    ffmpeg(&plain_args)?;
    let plain_wall = started.elapsed().as_secs_f64();

    // The local grid.
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if !args.json {
        eprintln!("encoding on a local grid with {workers} workers");
    }
    let grid_dir = dir.path().join("grid");
    let grid = LocalGrid::start(&grid_dir, 0, workers, &CoordinatorArgs::default()).await?;
    let client = Client::new(&grid.url, &grid.credentials.api_key)?;
    let cpu_before = (super::children_cpu(), super::media_cpu(&client).await?);
    let grid_out = dir.path().join("grid.mp4");
    let started = Instant::now();
    let super::FinishedJob {
        job: finished,
        split_secs: split,
        stitch_secs: stitch,
        first_chunk_secs: first_chunk,
    } = super::run_video_job(&client, &source, params.clone(), args.chunk_seconds).await?;
    let sha = finished
        .output
        .as_ref()
        .map(|o| o.sha256.clone())
        .unwrap_or_default();
    client.download_output(finished.id, &grid_out, &sha).await?;
    let grid_wall = started.elapsed().as_secs_f64();
    let media = super::media_cpu(&client).await?;
    // A quarter of the source (cut by stream copy) through the grid too, to tell the split's
    // and the join's fixed costs from their costs per second of source.
    let quarter = dir.path().join("quarter.mkv");
    let quarter_secs = f64::from(args.seconds.max(4)) / 4.0;
    let short_split = if args.input.is_none() {
        ffmpeg(&[
            "-nostdin",
            "-v",
            "error",
            "-i",
            &source.to_string_lossy(),
            "-t",
            &quarter_secs.to_string(),
            "-c",
            "copy",
            &quarter.to_string_lossy(),
        ])?;
        let short =
            super::run_video_job(&client, &quarter, params.clone(), args.chunk_seconds).await?;
        Some((short.split_secs, short.stitch_secs, short.first_chunk_secs))
    } else {
        None
    };
    grid.stop().await?;
    // Every child of this process that ran for the job has been waited for now: the workers'
    // task scripts (with their FFmpeg) and the coordinator's tools, which count themselves.
    let spent = |stage: &str, after: &std::collections::BTreeMap<String, Duration>| {
        let before = cpu_before.1.get(stage).copied().unwrap_or_default();
        after
            .get(stage)
            .copied()
            .unwrap_or_default()
            .saturating_sub(before)
            .as_secs_f64()
    };

    let encode = |path: &Path, wall: f64| -> anyhow::Result<Encode> {
        Ok(Encode {
            wall_secs: wall,
            bytes: std::fs::metadata(path)?.len(),
            frames: count_frames(path)?,
            psnr_db: psnr(path, &source)?,
        })
    };
    let grid_figures = encode(&grid_out, grid_wall)?;
    let plain = encode(&plain_out, plain_wall)?;
    let video_chunks = finished
        .facts
        .as_ref()
        .and_then(|f| f["video_chunks"].as_u64())
        .unwrap_or(1);
    let model_of = |plain: f64, split: f64, stitch: f64, chunks: f64| {
        [1u32, 2, 4, 8, 16, 32, 64, 128]
            .into_iter()
            .map(|w| {
                let ideal = plain / f64::from(w) + split + stitch;
                let bound = plain / f64::from(w).min(chunks) + split + stitch;
                Modelled {
                    devices: w,
                    ideal_secs: ideal,
                    chunk_bound_secs: bound,
                    speedup: plain / bound,
                    efficiency: plain / bound / f64::from(w),
                }
            })
            .collect::<Vec<_>>()
    };
    let model = model_of(plain_wall, split, stitch, video_chunks as f64);
    let source_secs = source_frames as f64 / 30.0;
    let scale = 600.0 / source_secs.max(1e-9);
    // The split's fixed part and its part per second of source, from the two lengths (or, for
    // a given input, all of it per second: the safe side).
    // Fixed part and part per second of source from the two lengths (or, for a given input,
    // all of it per second: the safe side).
    let fit = |long: f64, short: Option<f64>| match short {
        Some(short) => {
            let per_second = ((long - short) / (source_secs - quarter_secs).max(1e-9)).max(0.0);
            ((long - per_second * source_secs).max(0.0), per_second)
        }
        None => (0.0, long / source_secs.max(1e-9)),
    };
    let (split_fixed, split_per_second) = fit(split, short_split.map(|s| s.0));
    let (stitch_fixed, stitch_per_second) = fit(stitch, short_split.map(|s| s.1));
    let (first_fixed, first_per_second) = fit(first_chunk, short_split.map(|s| s.2));
    let model_10_minutes = pipelined(
        plain_wall * scale,
        (split_fixed, split_per_second * 600.0),
        first_fixed + first_per_second * 600.0,
        stitch_fixed + stitch_per_second * 600.0,
        (video_chunks as f64 * scale).ceil(),
    );
    let coordinator_cpu = CoordinatorCpu {
        partition: spent("partition", &media),
        validate: spent("validate", &media),
        assemble: spent("assemble", &media),
    };
    let children = super::children_cpu()
        .saturating_sub(cpu_before.0)
        .as_secs_f64();
    let device_cpu =
        children - coordinator_cpu.partition - coordinator_cpu.validate - coordinator_cpu.assemble;
    let minutes = source_secs / 60.0;
    let figures = TranscodeFigures {
        codec: format!("{} crf {crf} speed {speed}", args.codec),
        coordinator_cpu_per_minute: (coordinator_cpu.partition
            + coordinator_cpu.validate
            + coordinator_cpu.assemble)
            / minutes.max(1e-9),
        serial_secs_per_minute: (split + stitch) / minutes.max(1e-9),
        model_10_minutes,
        split_fixed_secs: split_fixed,
        split_secs_per_source_second: split_per_second,
        stitch_fixed_secs: stitch_fixed,
        stitch_secs_per_source_second: stitch_per_second,
        validation_share: coordinator_cpu.validate / device_cpu.max(1e-9),
        device_cpu_secs: device_cpu,
        coordinator_cpu_secs: coordinator_cpu,
        source_frames,
        video_chunks,
        workers,
        wall_ratio: grid_figures.wall_secs / plain.wall_secs,
        psnr_delta_db: grid_figures.psnr_db - plain.psnr_db,
        size_delta: grid_figures.bytes as f64 / plain.bytes as f64 - 1.0,
        frame_exact: grid_figures.frames == source_frames && plain.frames == source_frames,
        grid: grid_figures,
        plain,
        split_secs: split,
        stitch_secs: stitch,
        first_chunk_secs: first_chunk,
        first_chunk_fixed_secs: first_fixed,
        first_chunk_secs_per_source_second: first_per_second,
        model,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        let f = &figures;
        println!(
            "transcode benchmark ({}): {} frames, {} video chunks, {} local workers",
            f.codec, f.source_frames, f.video_chunks, f.workers
        );
        println!(
            "  {:<8} {:>9} {:>12} {:>8} {:>10}",
            "", "wall s", "bytes", "frames", "PSNR dB"
        );
        for (name, e) in [("grid", &f.grid), ("ffmpeg", &f.plain)] {
            println!(
                "  {name:<8} {:>9.2} {:>12} {:>8} {:>10.3}",
                e.wall_secs, e.bytes, e.frames, e.psnr_db
            );
        }
        println!(
            "  grid/plain wall time {:.3}, PSNR {:+.3} dB, size {:+.2}%, frame-exact {}",
            f.wall_ratio,
            f.psnr_delta_db,
            f.size_delta * 100.0,
            f.frame_exact
        );
        println!(
            "  split {:.2} s (the first chunk out after {:.2} s), stitch {:.2} s",
            f.split_secs, f.first_chunk_secs, f.stitch_secs
        );
        let c = &f.coordinator_cpu_secs;
        println!(
            "  CPU: devices {:.2} s; coordinator partition {:.2} s, validation {:.2} s ({:.2}% of the devices'), assembly {:.2} s",
            f.device_cpu_secs,
            c.partition,
            c.validate,
            f.validation_share * 100.0,
            c.assemble
        );
        println!(
            "  model with W remote devices (plain/W + split + stitch; at most one device per chunk helps):"
        );
        for m in &f.model {
            println!(
                "    W={:<3} ideal {:>7.2} s   chunk-bound {:>7.2} s   speed-up {:>5.2}x",
                m.devices, m.ideal_secs, m.chunk_bound_secs, m.speedup
            );
        }
        println!(
            "  split {:.2} s + {:.4} s per second of source, join {:.2} s + {:.4} s per second \
             (this source and a quarter of it)",
            f.split_fixed_secs,
            f.split_secs_per_source_second,
            f.stitch_fixed_secs,
            f.stitch_secs_per_source_second
        );
        println!(
            "  coordinator per minute of output: {:.2} CPU s, {:.2} serial s; a 10-minute source \
             of this kind (chunks sent as they are cut):",
            f.coordinator_cpu_per_minute, f.serial_secs_per_minute
        );
        for m in f
            .model_10_minutes
            .iter()
            .filter(|m| [8, 32, 128].contains(&m.devices))
        {
            println!(
                "    W={:<3} {:>8.1} s   speed-up {:>6.2}x   parallel efficiency {:.2}",
                m.devices, m.chunk_bound_secs, m.speedup, m.efficiency
            );
        }
    }
    Ok(if figures.frame_exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
