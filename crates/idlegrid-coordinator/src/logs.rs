//! Jobs' logs, for their customers to debug their apps: what each task's script wrote to stderr
//! on its device (the end of it, sent with the task's report) and what the grid's own steps said
//! of the job (how the partitioner cut it, why the assembler stopped). Each log is a small blob
//! under `logs/<job>/`, named by when it was written, so a listing is in time order and paging
//! needs no records.
//!
//! A task's log comes from a device: it is the customer's script's text, or whatever the device
//! chose to send. It is kept as text, at most [`MAX_LOG_BYTES`], and shown as data, never as
//! markup or terminal control; its levels are read from the lines when it is shown.

use crate::grid::Grid;
use idlegrid_api::jobs::{JobLogs, LogEntry, LogLevel, LogLine};
use idlegrid_domain::{JobId, LeaseId, TaskId, WorkerId};
use idlegrid_storage::StorageError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Most bytes of one log kept (its end).
pub const MAX_LOG_BYTES: usize = 16 << 10;
/// Most logs read for one page.
pub const MAX_PAGE: usize = 200;

/// A log as kept.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    at_ms: i64,
    step: String,
    #[serde(default)]
    task: Option<TaskId>,
    #[serde(default)]
    device: Option<WorkerId>,
    #[serde(default)]
    outcome: Option<String>,
    text: String,
}

/// The end of `text`, at most [`MAX_LOG_BYTES`], cut at a character boundary.
fn bounded(text: &str) -> &str {
    if text.len() <= MAX_LOG_BYTES {
        return text;
    }
    let mut start = text.len() - MAX_LOG_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

async fn put(grid: &Grid, job: JobId, name: &str, log: Stored) -> Result<(), StorageError> {
    let micros = jiff::Timestamp::now().as_microsecond();
    let key = format!("{}/{micros:017}-{name}", crate::blob_keys::logs(job));
    let bytes = serde_json::to_vec(&log).map_err(|e| StorageError::Backend(e.to_string()))?;
    grid.blobs.put_bytes(&key, bytes.into()).await?;
    Ok(())
}

/// Keeps the log a device sent with its report of `lease` (`outcome`: `completed` or `failed`).
pub async fn task(
    grid: &Grid,
    (job, task, lease): (JobId, TaskId, LeaseId),
    device: WorkerId,
    outcome: &str,
    text: &str,
) -> Result<(), StorageError> {
    let text = bounded(text);
    if text.trim().is_empty() {
        return Ok(());
    }
    let log = Stored {
        at_ms: jiff::Timestamp::now().as_millisecond(),
        step: "task".into(),
        task: Some(task),
        device: Some(device),
        outcome: Some(outcome.into()),
        text: text.into(),
    };
    put(grid, job, &format!("task-{lease}"), log).await
}

/// Keeps what the grid's `step` (`partition`, `assemble`) says of the job; a failure to keep it
/// is only logged here.
pub async fn step(grid: &Grid, job: JobId, step: &str, text: &str) {
    let log = Stored {
        at_ms: jiff::Timestamp::now().as_millisecond(),
        step: step.into(),
        task: None,
        device: None,
        outcome: None,
        text: bounded(text).into(),
    };
    if let Err(e) = put(grid, job, step, log).await {
        tracing::warn!(%job, step, error = %e, "could not keep the step's log");
    }
}

/// The level a line says it is of, if it starts with one.
fn said_level(line: &str) -> Option<LogLevel> {
    let word: String = line
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    let after = line.trim_start()[word.len()..].chars().next();
    if !matches!(after, Some(':') | Some(' ')) {
        return None;
    }
    match word.as_str() {
        "DEBUG" => Some(LogLevel::Debug),
        "INFO" => Some(LogLevel::Info),
        "WARNING" | "WARN" => Some(LogLevel::Warning),
        "ERROR" | "CRITICAL" | "FATAL" => Some(LogLevel::Error),
        _ => None,
    }
}

/// The lines of `text` at or above `least`, each with its level: the one it says, else that of
/// the line it continues (a line starting with a space), else `info`; a traceback and the lines
/// after it are errors.
pub fn lines(text: &str, least: LogLevel) -> Vec<LogLine> {
    let mut level = LogLevel::Info;
    let mut in_traceback = false;
    let mut kept = Vec::new();
    for line in text.lines() {
        if line.starts_with("Traceback (most recent call last)") {
            in_traceback = true;
        }
        level = match said_level(line) {
            Some(said) => said,
            None if in_traceback => LogLevel::Error,
            None if line.starts_with([' ', '\t']) => level,
            None => LogLevel::Info,
        };
        if level >= least && !line.trim().is_empty() {
            kept.push(LogLine {
                level,
                text: line.to_string(),
            });
        }
    }
    kept
}

/// A page of `job`'s logs after the one named `after`, with their lines at or above `least`
/// (logs with none left are skipped but count towards the page).
pub async fn page(
    grid: &Grid,
    job: JobId,
    after: Option<&str>,
    limit: usize,
    least: LogLevel,
) -> Result<JobLogs, StorageError> {
    let prefix = crate::blob_keys::logs(job);
    let listed = grid.blobs.list(&prefix).await?;
    let names: Vec<&str> = listed
        .iter()
        .filter_map(|l| l.key.strip_prefix(&prefix)?.strip_prefix('/'))
        .filter(|name| after.is_none_or(|after| *name > after))
        .take(limit)
        .collect();
    let mut stored = Vec::with_capacity(names.len());
    for name in &names {
        let bytes = grid
            .blobs
            .get_bytes(&format!("{prefix}/{name}"), None)
            .await?;
        if let Ok(log) = serde_json::from_slice::<Stored>(&bytes) {
            stored.push((name.to_string(), log));
        }
    }
    let tasks: Vec<TaskId> = stored.iter().filter_map(|(_, l)| l.task).collect();
    // A chunk's task by its index; a step's task by the step it runs.
    let chunks: HashMap<TaskId, (Option<u64>, Option<String>)> = grid
        .store
        .tasks(&tasks)
        .await?
        .into_iter()
        .map(|t| {
            let step = crate::apps::steps::script::step_of(t.chunk.meta.as_ref());
            let index = step.is_none().then_some(t.chunk.index);
            (t.id, (index, step.map(str::to_string)))
        })
        .collect();
    let logs = stored
        .into_iter()
        .filter_map(|(id, log)| {
            let lines = lines(&log.text, least);
            (!lines.is_empty()).then(|| LogEntry {
                id,
                at: jiff::Timestamp::from_millisecond(log.at_ms).unwrap_or_default(),
                chunk: log.task.and_then(|t| chunks.get(&t)).and_then(|c| c.0),
                step: log
                    .task
                    .and_then(|t| chunks.get(&t))
                    .and_then(|c| c.1.clone())
                    .unwrap_or(log.step),
                device: log.device,
                outcome: log.outcome,
                lines,
            })
        })
        .collect();
    let next_after = (names.len() == limit)
        .then(|| names.last().map(|n| n.to_string()))
        .flatten();
    Ok(JobLogs { logs, next_after })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_read_from_the_lines() {
        let text = "starting\nDEBUG:root:details\n  more details\nWARNING:root:odd row 7\n\
                    Traceback (most recent call last):\n  File \"task.py\", line 3\n\
                    ValueError: bad\n";
        let all = lines(text, LogLevel::Debug);
        let levels: Vec<&str> = all.iter().map(|l| l.level.as_str()).collect();
        assert_eq!(
            levels,
            [
                "info", "debug", "debug", "warning", "error", "error", "error"
            ]
        );
        let warnings = lines(text, LogLevel::Warning);
        assert_eq!(warnings[0].text, "WARNING:root:odd row 7");
        assert_eq!(warnings.len(), 4);
        // A word that only starts like a level is not one.
        assert_eq!(
            lines("INFORMATION here", LogLevel::Debug)[0].level,
            LogLevel::Info
        );
        assert_eq!(
            lines("ERROR here", LogLevel::Debug)[0].level,
            LogLevel::Error
        );
    }

    #[test]
    fn a_log_keeps_its_end_within_the_limit() {
        let long = format!("{}é{}", "a".repeat(MAX_LOG_BYTES), "z".repeat(10));
        let kept = bounded(&long);
        assert!(kept.len() <= MAX_LOG_BYTES);
        assert!(kept.ends_with("zzzzzzzzzz"));
        assert_eq!(bounded("short"), "short");
    }
}
