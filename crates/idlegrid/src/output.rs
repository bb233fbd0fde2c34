//! How jobs are shown to people (the `--json` forms print the API's own JSON).

use idlegrid_api::jobs::Job;
use std::fmt::Write;

/// Chunks done out of total (or created so far while partitioning).
pub fn chunk_progress(job: &Job) -> String {
    match job.chunks.total {
        Some(total) => format!("{}/{total}", job.chunks.done),
        None => format!("{}/{}+", job.chunks.done, job.chunks.created),
    }
}

/// A job, in a few lines.
pub fn job_details(job: &Job) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "job {}  {}  ({} {})",
        job.id, job.state, job.app, job.app_version
    );
    let _ = writeln!(
        s,
        "  chunks:  {} done, {} running, {} failed, {} failed attempts retried",
        chunk_progress(job),
        job.chunks.running,
        job.chunks.failed,
        job.chunks.failed_attempts
    );
    if job.preferences.replication.is_replicated() {
        let _ = writeln!(s, "  {}", replication_summary(job));
    }
    if let Some(input) = &job.input {
        let _ = writeln!(
            s,
            "  input:   {} bytes, sha256 {}",
            input.size, input.sha256
        );
    }
    if let Some(output) = &job.output {
        let _ = writeln!(
            s,
            "  output:  {} bytes, sha256 {}",
            output.size, output.sha256
        );
    }
    let _ = writeln!(s, "  created: {}", job.created_at);
    if let Some(at) = job.finished_at {
        let _ = writeln!(s, "  ended:   {at}");
    }
    if let Some(error) = &job.error {
        let _ = writeln!(s, "  error:   {error}");
    }
    s
}

/// Jobs as a table.
pub fn job_table(jobs: &[Job]) -> String {
    let mut s = format!(
        "{:>6}  {:<12}  {:<14}  {:>13}  {}\n",
        "ID", "STATE", "APP", "CHUNKS", "CREATED"
    );
    for job in jobs {
        let _ = writeln!(
            s,
            "{:>6}  {:<12}  {:<14}  {:>13}  {}",
            job.id,
            job.state.as_str(),
            job.app,
            chunk_progress(job),
            job.created_at.strftime("%Y-%m-%d %H:%M:%S")
        );
    }
    s
}

/// What the partitioner found out about the input, for people: a video's facts and notes.
pub fn facts_summary(facts: &serde_json::Value) -> String {
    let mut s = String::new();
    if let (Some(codec), Some(frames)) = (facts["codec"].as_str(), facts["frames"].as_u64()) {
        let _ = writeln!(
            s,
            "  source:  {} {}x{} {:.3} fps, {frames} frames ({:.2} s), {} audio stream(s), in {}",
            codec,
            facts["width"],
            facts["height"],
            facts["fps"].as_f64().unwrap_or(0.0),
            facts["duration"].as_f64().unwrap_or(0.0),
            facts["audio_streams"],
            facts["container"].as_str().unwrap_or("?")
        );
        let out = &facts["output"];
        let _ = writeln!(
            s,
            "  output:  h264 {}x{}{}, {frames} frames verified; {} video chunks split at {}",
            out["width"],
            out["height"],
            if out["audio"].as_bool() == Some(true) {
                " + aac"
            } else {
                ""
            },
            facts["video_chunks"],
            facts["split"].as_str().unwrap_or("?")
        );
    }
    for note in facts["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(s, "  note:    {}", note.as_str().unwrap_or_default());
    }
    s
}

/// What replication cost and caught: results per chunk and results rejected.
pub fn replication_summary(job: &Job) -> String {
    let chunks = job.chunks.done.max(1);
    format!(
        "replication ({}): {} results for {} chunks ({:.2} per chunk), {} rejected",
        serde_json::to_value(job.preferences.replication.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        job.chunks.results,
        job.chunks.done,
        job.chunks.results as f64 / chunks as f64,
        job.chunks.rejected
    )
}
