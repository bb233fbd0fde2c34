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
