//! `idlegrid bench target-quality`: a clip whose content changes every few seconds (clean,
//! noisy, very noisy, blurred) through the local grid with a quality target, measured from the
//! output itself: each chunk's luma PSNR against the source (not what the devices report), how
//! many are within half a dB of the target, how far frames at the chunks' boundaries fall
//! below their chunk's level against frames inside them, and the same clip encoded by one ffmpeg process at one rate
//! factor (the chunks' median) for the spread a single rate factor gives, its size and the CPU
//! one encode costs against the search's.

use super::ffmpeg;
use crate::cli::CoordinatorArgs;
use crate::cli::bench::QualityArgs;
use crate::local::LocalGrid;
use anyhow::Context;
use idlegrid_client::Client;
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// How near the target a chunk counts as reaching it (the goal: 95% of chunks).
const WITHIN_DB: f64 = 0.5;
/// Seconds each kind of content lasts before the next.
const SCENE_SECONDS: u32 = 3;

/// One chunk as measured.
#[derive(Debug, Serialize)]
pub struct ChunkFigures {
    /// The rate factor its search chose (as reported).
    pub crf: Option<f64>,
    /// The PSNR its device reported, dB.
    pub reported_db: Option<f64>,
    /// Its frames' PSNR in the output against the source, dB.
    pub measured_db: f64,
    /// The same frames of the one-rate-factor encode, dB.
    pub fixed_crf_db: f64,
}

/// The measured figures.
#[derive(Debug, Serialize)]
pub struct QualityFigures {
    /// The target, e.g. `psnr:40`.
    pub target: String,
    /// Codec and speed of the encodes.
    pub codec: String,
    /// Source frames.
    pub frames: usize,
    /// Every chunk.
    pub chunks: Vec<ChunkFigures>,
    /// Share of chunks measured within half a dB of the target.
    pub share_within: f64,
    /// Largest difference between a chunk's reported and measured PSNR, dB.
    pub reported_error_db: f64,
    /// Mean shortfall of a chunk's first and last frames below their chunk's level (the mean
    /// of its frames' PSNR), dB: the dip at the boundaries.
    pub boundary_mean_db: f64,
    /// The same for the frames inside chunks, dB.
    pub inside_mean_db: f64,
    /// Largest shortfall of a boundary frame below its chunk's level, dB.
    pub boundary_worst_drop_db: f64,
    /// Largest shortfall of a frame inside a chunk below its chunk's level, dB.
    pub inside_worst_drop_db: f64,
    /// The one-rate-factor encode's rate factor (the chunks' median).
    pub fixed_crf: u64,
    /// Lowest and highest chunk PSNR with the target, dB.
    pub target_range_db: (f64, f64),
    /// Lowest and highest chunk PSNR at the one rate factor, dB.
    pub fixed_range_db: (f64, f64),
    /// Output bytes with the target, and at the one rate factor.
    pub bytes: (u64, u64),
    /// Device CPU seconds of the grid's job, over one ffmpeg process's CPU at the one rate
    /// factor: what the search costs (the cost model charges 2.5).
    pub search_cpu_factor: f64,
    /// Wall time of the grid's job, seconds.
    pub grid_wall_secs: f64,
}

/// Per-frame luma MSE of `output` against `source` (frames aligned by index).
fn frame_mse(output: &Path, source: &Path) -> anyhow::Result<Vec<f64>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(output)
        .arg("-i")
        .arg(source)
        .args([
            "-lavfi",
            "[0:v]settb=1,setpts=N[a];[1:v]format=yuv420p,settb=1,setpts=N[b];[a][b]psnr=stats_file=-",
            "-f",
            "null",
            "-",
        ])
        .output()
        .context("cannot run ffmpeg")?;
    anyhow::ensure!(out.status.success(), "measuring PSNR failed");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("mse_y:"))?
                .parse()
                .ok()
        })
        .collect())
}

fn db(mse: f64) -> f64 {
    10.0 * (255.0 * 255.0 / mse.max(1e-10)).log10()
}

/// PSNR of each run of frames `starts[k]..starts[k+1]`.
fn chunk_db(mse: &[f64], starts: &[usize]) -> Vec<f64> {
    starts
        .iter()
        .zip(starts.iter().skip(1).chain([&mse.len()]))
        .map(|(&a, &b)| db(mse[a..b].iter().sum::<f64>() / (b - a).max(1) as f64))
        .collect()
}

fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        })
}

pub async fn target_quality(args: QualityArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("source.mkv");
    let scene = SCENE_SECONDS;
    let cycle = 4 * scene;
    // Clean, noisy, very noisy and blurred, each for SCENE_SECONDS, over and over.
    let video = format!(
        "testsrc2=size={}:rate=30:duration={},\
         noise=alls=10:allf=t:enable='between(mod(t,{cycle}),{scene},{})',\
         noise=alls=30:allf=t:enable='between(mod(t,{cycle}),{},{})',\
         gblur=sigma=2:enable='gte(mod(t,{cycle}),{})'",
        args.size,
        args.seconds,
        2 * scene,
        2 * scene,
        3 * scene,
        3 * scene
    );
    if !args.json {
        eprintln!("making a {} s {} test clip", args.seconds, args.size);
    }
    let source_arg = source.to_string_lossy().into_owned();
    ffmpeg(&[
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &video,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "8",
        "-g",
        "60",
        &source_arg,
    ])?;

    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if !args.json {
        eprintln!(
            "encoding to {} on a local grid with {workers} workers",
            args.target
        );
    }
    let grid = LocalGrid::start(
        &dir.path().join("grid"),
        0,
        workers,
        &CoordinatorArgs::default(),
    )
    .await?;
    let client = Client::new(&grid.url, &grid.credentials.api_key)?;
    let cpu_before = (super::children_cpu(), super::media_cpu(&client).await?);
    let mut params = serde_json::json!({"video_codec": args.codec, "target_quality": args.target});
    if let Some(speed) = &args.speed {
        params["speed"] = speed.as_str().into();
    }
    let started = Instant::now();
    let finished = super::run_video_job(&client, &source, params, args.chunk_seconds)
        .await?
        .job;
    let grid_out = dir.path().join("grid.mkv");
    let sha = finished
        .output
        .as_ref()
        .map(|o| o.sha256.clone())
        .unwrap_or_default();
    client.download_output(finished.id, &grid_out, &sha).await?;
    let grid_wall = started.elapsed().as_secs_f64();
    let media = super::media_cpu(&client).await?;
    grid.stop().await?;
    let coordinator: f64 = ["partition", "validate", "assemble"]
        .iter()
        .map(|stage| {
            let before = cpu_before.1.get(*stage).copied().unwrap_or_default();
            media
                .get(*stage)
                .copied()
                .unwrap_or_default()
                .saturating_sub(before)
                .as_secs_f64()
        })
        .sum();
    let device_cpu = super::children_cpu()
        .saturating_sub(cpu_before.0)
        .as_secs_f64()
        - coordinator;

    let facts = finished.facts.clone().unwrap_or_default();
    let reported = facts["quality"]["chunks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let listed: Vec<f64> = facts["chunk_starts"]
        .as_array()
        .map(|s| s.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    anyhow::ensure!(
        !listed.is_empty() && listed.len() == reported.len(),
        "the job reports {} chunks and {} chunk starts",
        reported.len(),
        listed.len()
    );
    let starts: Vec<usize> = listed
        .iter()
        .map(|t| ((t - listed[0]) * 30.0).round() as usize)
        .collect();
    let mse = frame_mse(&grid_out, &source)?;
    let measured = chunk_db(&mse, &starts);

    // One rate factor for the whole clip: the chunks' median.
    let mut crfs: Vec<f64> = reported.iter().filter_map(|c| c["crf"].as_f64()).collect();
    crfs.sort_by(f64::total_cmp);
    let fixed_crf = crfs.get(crfs.len() / 2).map_or(23, |c| c.round() as u64);
    let (codec, speed) =
        super::transcode::plain_codec_args(&args.codec, args.speed.as_deref(), fixed_crf);
    let fixed_out = dir.path().join("fixed.mkv");
    let fixed_arg = fixed_out.to_string_lossy().into_owned();
    let cpu = super::children_cpu();
    let mut fixed_args = vec![
        "-nostdin",
        "-v",
        "error",
        "-i",
        &source_arg,
        "-map",
        "0:v:0",
    ];
    fixed_args.extend(codec.iter().map(String::as_str));
    fixed_args.extend(["-g", "60", "-pix_fmt", "yuv420p", &fixed_arg]);
    ffmpeg(&fixed_args)?;
    let fixed_cpu = super::children_cpu().saturating_sub(cpu).as_secs_f64();
    let fixed_mse = frame_mse(&fixed_out, &source)?;
    let fixed = chunk_db(&fixed_mse, &starts);

    let goal: f64 = args
        .target
        .strip_prefix("psnr:")
        .and_then(|v| v.parse().ok())
        .context("the benchmark measures PSNR targets: give --target psnr:DB")?;
    let frame_db: Vec<f64> = mse.iter().map(|&m| db(m)).collect();
    // Each frame's shortfall below its own chunk's level (the mean of its frames' PSNR): the
    // content's changes from chunk to chunk are out of it, a frame worse than its neighbours
    // is in it. Boundary frames are each chunk's first and last (not the video's own ends).
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .copied()
        .chain([frame_db.len()])
        .collect();
    let (mut at_boundary, mut inside) = (Vec::new(), Vec::new());
    for (&from, &to) in starts.iter().zip(&ends) {
        let frames = &frame_db[from..to];
        let level = frames.iter().sum::<f64>() / frames.len().max(1) as f64;
        for (i, &v) in frames.iter().enumerate() {
            let at_cut = (i == 0 && from > 0) || (i + 1 == frames.len() && to < frame_db.len());
            if at_cut {
                at_boundary.push(level - v);
            } else {
                inside.push(level - v);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let worst = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (boundary_worst, inside_worst) = (worst(&at_boundary), worst(&inside));
    let chunks: Vec<ChunkFigures> = reported
        .iter()
        .zip(&measured)
        .zip(&fixed)
        .map(|((r, &m), &f)| ChunkFigures {
            crf: r["crf"].as_f64(),
            reported_db: r["value"].as_f64(),
            measured_db: m,
            fixed_crf_db: f,
        })
        .collect();
    let figures = QualityFigures {
        target: args.target.clone(),
        codec: format!("{} speed {speed}", args.codec),
        frames: mse.len(),
        share_within: chunks
            .iter()
            .filter(|c| (c.measured_db - goal).abs() <= WITHIN_DB)
            .count() as f64
            / chunks.len().max(1) as f64,
        reported_error_db: chunks
            .iter()
            .filter_map(|c| Some((c.reported_db? - c.measured_db).abs()))
            .fold(0.0, f64::max),
        boundary_mean_db: mean(&at_boundary),
        inside_mean_db: mean(&inside),
        boundary_worst_drop_db: boundary_worst,
        inside_worst_drop_db: inside_worst,
        fixed_crf,
        target_range_db: range(&measured),
        fixed_range_db: range(&fixed),
        bytes: (
            std::fs::metadata(&grid_out)?.len(),
            std::fs::metadata(&fixed_out)?.len(),
        ),
        search_cpu_factor: device_cpu / fixed_cpu.max(1e-9),
        grid_wall_secs: grid_wall,
        chunks,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
        return Ok(ExitCode::SUCCESS);
    }
    let f = &figures;
    println!(
        "target-quality benchmark ({}, {}): {} frames, {} chunks, {:.1} s on the grid",
        f.target,
        f.codec,
        f.frames,
        f.chunks.len(),
        f.grid_wall_secs
    );
    println!(
        "  {:>5} {:>4} {:>11} {:>11} {:>11}",
        "chunk", "crf", "reported dB", "measured dB", "fixed-crf dB"
    );
    for (k, c) in f.chunks.iter().enumerate() {
        println!(
            "  {k:>5} {:>6} {:>11} {:>11.3} {:>11.3}",
            c.crf.map_or("-".into(), |c| format!("{c}")),
            c.reported_db.map_or("-".into(), |v| format!("{v:.3}")),
            c.measured_db,
            c.fixed_crf_db
        );
    }
    println!(
        "  within {WITHIN_DB} dB of the target: {:.0}% of chunks (goal 95%); reports off by at most {:.3} dB",
        f.share_within * 100.0,
        f.reported_error_db
    );
    println!(
        "  chunk PSNR from {:.2} to {:.2} dB; at one rate factor ({}) from {:.2} to {:.2} dB",
        f.target_range_db.0,
        f.target_range_db.1,
        f.fixed_crf,
        f.fixed_range_db.0,
        f.fixed_range_db.1
    );
    println!(
        "  below their chunk's level: frames at boundaries {:.2} dB on average, inside chunks {:.2} dB; at worst {:.2} dB at a boundary, {:.2} dB inside",
        f.boundary_mean_db, f.inside_mean_db, f.boundary_worst_drop_db, f.inside_worst_drop_db
    );
    println!(
        "  bytes {} with the target, {} at one rate factor; the search cost {:.2}x one encode's CPU",
        f.bytes.0, f.bytes.1, f.search_cpu_factor
    );
    Ok(ExitCode::SUCCESS)
}
