//! How jobs are shown to people, and the `--json` forms of what the coordinator sends.
//!
//! Every string the coordinator sends goes through [`shown`] before it reaches the terminal:
//! a job's error quotes devices' failure reasons, and a device is free to put escape sequences
//! there (clear the screen, print a fake "completed"). Numbers, enums and timestamps are
//! parsed values and need no such care. The JSON forms keep the strings as they are, written
//! with JSON escapes ([`json`]).

use idlegrid_api::jobs::{Balance, Estimate, Job, JobCost};
pub use idlegrid_domain::text::shown;
use std::fmt::Write;

/// `value` as pretty JSON in which every character [`shown`] would escape is a `\uXXXX`
/// escape: serde_json writes DEL, the C1 controls and bidirectional overrides as they are,
/// and a terminal may act on them.
pub fn json(value: &impl serde::Serialize) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    Ok(text
        .chars()
        .fold(String::with_capacity(text.len()), |mut out, c| {
            if idlegrid_domain::text::is_hidden(c) && c != '\n' {
                // Outside strings JSON has only spaces and line breaks; inside, a control
                // character below 0x20 is already escaped, so what is left is 0x7f and up.
                let _ = write!(out, "\\u{:04x}", c as u32);
            } else {
                out.push(c);
            }
            out
        }))
}

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
        job.id,
        job.state,
        shown(&job.app),
        shown(&job.app_version)
    );
    let _ = writeln!(
        s,
        "  chunks:  {} done, {} running, {} failed, {} failed attempts retried",
        chunk_progress(job),
        job.chunks.running,
        job.chunks.failed,
        job.chunks.failed_attempts
    );
    let _ = writeln!(s, "  checks:  {}", shown(&job.verification.summary));
    if job.chunks.checking > 0 {
        let _ = writeln!(
            s,
            "  waiting: {} chunks have a result that waits for another party to confirm or redo it",
            job.chunks.checking
        );
    }
    if replicated(job) {
        let _ = writeln!(s, "  {}", replication_summary(job));
    }
    if let Some(input) = &job.input {
        let _ = writeln!(
            s,
            "  input:   {} bytes, sha256 {}",
            input.size,
            shown(&input.sha256)
        );
    }
    if let Some(output) = &job.output {
        let _ = writeln!(
            s,
            "  output:  {} bytes, sha256 {}",
            output.size,
            shown(&output.sha256)
        );
    }
    let _ = writeln!(s, "  created: {}", job.created_at);
    if let Some(at) = job.finished_at {
        let _ = writeln!(s, "  ended:   {at}");
    }
    if let Some(cost) = &job.cost {
        let _ = writeln!(s, "  {}", cost_line(cost));
    }
    if let Some(error) = &job.error {
        let _ = writeln!(s, "  error:   {}", shown(error));
    }
    s
}

/// The chunks that wait for a check, and what each waits for (at most `limit` of them).
pub fn checking_chunks(chunks: &[idlegrid_api::jobs::ChunkView], limit: usize) -> String {
    let mut s = String::new();
    for chunk in chunks
        .iter()
        .filter(|c| c.state == idlegrid_api::jobs::ChunkState::Checking)
        .take(limit)
    {
        let _ = writeln!(
            s,
            "    chunk {}: waits for {}",
            chunk.index,
            chunk.waiting_for.as_deref().unwrap_or("a check")
        );
    }
    s
}

/// What a job has cost against its quote.
pub fn cost_line(cost: &JobCost) -> String {
    format!(
        "cost:    {} credits charged of a {} quote of {} credits ({:.1} reference core-seconds)",
        cost.charged,
        cost.tier.as_str(),
        cost.quote,
        cost.work_core_seconds
    )
}

fn eta_text(eta: Option<f64>) -> String {
    match eta {
        Some(secs) if secs < 120.0 => format!("about {secs:.0} s"),
        Some(secs) if secs < 7200.0 => format!("about {:.0} min", secs / 60.0),
        Some(secs) => format!("about {:.1} h", secs / 3600.0),
        None => "unknown (no device online)".into(),
    }
}

/// The price and time of the tier chosen, in one line.
pub fn quote_line(estimate: &Estimate) -> String {
    format!(
        "quote: up to {} credits ({}), done in {}; balance {} credits",
        estimate.quote.price,
        estimate.quote.tier.as_str(),
        eta_text(estimate.quote.eta_secs),
        estimate.balance
    )
}

/// Every tier's price and time.
pub fn estimate_table(estimate: &Estimate) -> String {
    let mut s = format!(
        "{:<9}  {:>14}  {:>7}  {:>12}  {}\n",
        "tier", "price (credits)", "chunks", "core-seconds", "done in"
    );
    for tier in &estimate.tiers {
        let _ = writeln!(
            s,
            "{:<9}  {:>15}  {:>7}  {:>12.1}  {}",
            tier.tier.as_str(),
            tier.price.to_string(),
            tier.chunks,
            tier.work_core_seconds,
            eta_text(tier.eta_secs)
        );
    }
    let _ = writeln!(
        s,
        "balance: {} credits; {} online with {}{}",
        estimate.balance,
        counted(estimate.devices_online, "device", "devices"),
        counted(estimate.slots, "slot", "slots"),
        if estimate.exact {
            ""
        } else {
            " (estimated from a description of the input)"
        }
    );
    if let Some(problem) = &estimate.problem {
        let _ = writeln!(s, "cannot run: {}", shown(problem));
    }
    s
}

/// A balance with its recent entries.
pub fn balance_details(balance: &Balance) -> String {
    let show = |c: idlegrid_domain::Credits| balance.display.show(c.0);
    let mut s = match balance.kind.as_str() {
        "customer" => format!(
            "balance: {} available, {} held for running jobs\n",
            show(balance.balance),
            show(balance.held)
        ),
        "owner" => format!("earned: {}\n", show(balance.balance)),
        "operator" => format!(
            "platform fees: {}; the books {}\n",
            show(balance.balance),
            if balance.books_balance == Some(true) {
                "balance"
            } else {
                "DO NOT balance"
            }
        ),
        _ => format!("earned by this device: {}\n", show(balance.balance)),
    };
    for entry in &balance.entries {
        let _ = writeln!(
            s,
            "  {}  {:>16}  {}",
            entry.at,
            entry.amount.to_string(),
            shown(&entry.txn)
        );
    }
    s
}

/// Jobs as a table.
pub fn job_table(jobs: &[Job]) -> String {
    let mut s = format!(
        "{:>6}  {:<12}  {:<14}  {:>13}  {:<19}  {}\n",
        "ID", "STATE", "APP", "CHUNKS", "CREATED", "NAME"
    );
    for job in jobs {
        let _ = writeln!(
            s,
            "{:>6}  {:<12}  {:<14}  {:>13}  {:<19}  {}",
            job.id,
            job.state.as_str(),
            shown(&job.app),
            chunk_progress(job),
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            shown(job.name.as_deref().unwrap_or(""))
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
            shown(codec),
            facts["width"],
            facts["height"],
            facts["fps"].as_f64().unwrap_or(0.0),
            facts["duration"].as_f64().unwrap_or(0.0),
            facts["audio_streams"],
            shown(facts["container"].as_str().unwrap_or("?"))
        );
        let out = &facts["output"];
        let tracks = out["audio_tracks"]
            .as_array()
            .map_or(usize::from(out["audio"].as_bool() == Some(true)), Vec::len);
        let audio = match (tracks, out["audio_codec"].as_str().unwrap_or("aac")) {
            (0, _) => String::new(),
            (1, "copy") => " + its audio copied".to_string(),
            (n, "copy") => format!(" + its {n} audio tracks copied"),
            (1, codec) => format!(" + {}", shown(codec)),
            (n, codec) => format!(" + {n} {} tracks", shown(codec)),
        };
        let audio = match out["loudness"].as_f64() {
            Some(lufs) if !audio.is_empty() => format!("{audio} at {lufs} LUFS"),
            _ => audio,
        };
        let subtitles = match out["subtitles"].as_array().map_or(0, Vec::len) {
            0 => String::new(),
            n => format!(" + {n} subtitle track(s)"),
        };
        let how = if out["video_copy"] == true {
            "the video copied as it is".to_string()
        } else {
            format!(
                "{} video chunks split at {}",
                facts["video_chunks"],
                shown(facts["split"].as_str().unwrap_or("?"))
            )
        };
        let _ = writeln!(
            s,
            "  output:  {} {}x{}{audio}{subtitles} in {}, {frames} frames verified; {how}",
            shown(out["codec"].as_str().unwrap_or("h264")),
            out["width"],
            out["height"],
            shown(out["container"].as_str().unwrap_or("mp4")),
        );
    }
    let quality = &facts["quality"];
    if let (Some(metric), Some(chunks)) = (quality["metric"].as_str(), quality["chunks"].as_array())
    {
        let values: Vec<f64> = chunks.iter().filter_map(|c| c["value"].as_f64()).collect();
        let (low, high) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let _ = writeln!(
            s,
            "  quality: {} target {}: {} of {} chunks within {} dB (from {low:.3} to {high:.3}, \
             as their devices measured)",
            shown(metric),
            quality["target"],
            quality["within"],
            chunks.len(),
            quality["tolerance_db"],
        );
    }
    for note in facts["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(s, "  note:    {}", shown(note.as_str().unwrap_or_default()));
    }
    s
}

/// Whether a job's results are compared across devices.
pub fn replicated(job: &Job) -> bool {
    job.preferences
        .replication
        .is_some_and(|r| r.is_replicated())
}

/// What replication cost and caught: results per chunk and results rejected.
pub fn replication_summary(job: &Job) -> String {
    let chunks = job.chunks.done.max(1);
    format!(
        "replication ({}): {} results for {} chunks ({:.2} per chunk), {} rejected",
        job.preferences
            .replication
            .and_then(|r| serde_json::to_value(r.mode).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        job.chunks.results,
        job.chunks.done,
        job.chunks.results as f64 / chunks as f64,
        job.chunks.rejected
    )
}

/// `n` and the noun that goes with it: "1 device", "3 devices".
pub fn counted(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A job's logs, a header per log and its lines under it, every text through [`shown`].
pub fn logs(logs: &[idlegrid_api::jobs::LogEntry]) -> String {
    use std::fmt::Write;
    if logs.is_empty() {
        return "no logs at this level\n".to_string();
    }
    let mut s = String::new();
    for log in logs {
        let mut head = format!(
            "== {} {}",
            log.at.strftime("%Y-%m-%d %H:%M:%S"),
            shown(&log.step)
        );
        if let Some(chunk) = log.chunk {
            let _ = write!(head, " chunk {}", chunk + 1);
        }
        if let Some(device) = log.device {
            let _ = write!(head, " on device {device}");
        }
        if let Some(outcome) = &log.outcome {
            let _ = write!(head, " ({})", shown(outcome));
        }
        let _ = writeln!(s, "{head}");
        for line in &log.lines {
            let _ = writeln!(s, "{:<7} {}", line.level.as_str(), shown(&line.text));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(counted(1u64, "device", "devices"), "1 device");
        assert_eq!(counted(0u64, "device", "devices"), "0 devices");
        assert_eq!(counted(3u32, "slot", "slots"), "3 slots");
    }

    #[test]
    fn json_keeps_strings_and_escapes_what_a_terminal_acts_on() {
        let value = serde_json::json!({"error": "a\x1b[2J\u{9b}31m\u{202e}b\x7f\n«ok»"});
        let text = json(&value).unwrap();
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && idlegrid_domain::text::is_hidden(c))
        );
        assert!(
            text.contains(r"a\u001b[2J\u009b31m\u202eb\u007f\n«ok»"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }
}
