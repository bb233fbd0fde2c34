//! The `video-transcode` app's coordinator side: the video partitioner, validator and
//! assembler, and what they share — the customer's parameters in the terms transcoding
//! customers know, and running FFmpeg's tools.
//!
//! The coordinator is trusted and has FFmpeg installed: it probes and splits inputs, checks
//! every chunk a worker returns, and joins the parts. Workers only encode (`task.py`).

mod assemble;
mod container;
mod cost;

pub use assemble::{DASH_MANIFEST, MASTER_PLAYLIST, VIDEO_STEM};
pub use stills::{INDEX as THUMBNAIL_INDEX, POSTER, THUMBNAILS};
mod params;
mod partition;
mod probe;
mod quality;
mod retime;
mod stills;
mod validate;

pub use assemble::VideoAssembler;
pub use params::{Encoder, VideoParams};
pub use partition::VideoPartitioner;
pub use validate::VideoValidator;

use idlegrid_storage::StorageError;
use std::path::Path;

/// Whether a job's output (by its facts) is an archive of files rather than one video: a
/// streaming output, or a video with its stills.
pub fn output_is_archive(facts: &serde_json::Value) -> bool {
    facts["hls"].is_object() || facts["output"]["archive"] == true
}

/// Runs an FFmpeg tool and returns its stdout; the error carries the program's stderr.
pub(crate) async fn tool(program: &str, args: &[&str]) -> Result<String, String> {
    tool_with_complaints(program, args)
        .await
        .map(|(out, _)| out)
}

/// Runs an FFmpeg tool and returns its stdout and what it printed on stderr although it
/// succeeded (with `-v error`: errors it got past, such as a file that ends early).
pub(crate) async fn tool_with_complaints(
    program: &str,
    args: &[&str],
) -> Result<(String, String), String> {
    let (status, stdout, stderr) = crate::tools::run(program, args).await?;
    let stderr = without_paths(stderr.trim());
    if !status.success() {
        return Err(if stderr.is_empty() {
            format!("{program} failed ({status})")
        } else {
            last_lines(&stderr, 3)
        });
    }
    Ok((String::from_utf8_lossy(&stdout).into_owned(), stderr))
}

/// A tool's complaint with every file path it quotes cut to the file's name: the paths are
/// the coordinator's (its blob store, its scratch directories), and the complaint may reach a
/// customer as the reason their job failed. A path is a run of characters from a `/` that
/// starts a word up to a space, quote, colon, comma or bracket, holding at least two `/`.
pub(crate) fn without_paths(text: &str) -> String {
    let ends = |c: char| c.is_whitespace() || matches!(c, '\'' | '"' | ':' | ',' | ';' | ')' | ']');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('/') {
        let starts_word = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '(' | '[' | '=' | ':'));
        let len = rest[at..].find(ends).unwrap_or(rest.len() - at);
        let word = &rest[at..at + len];
        out.push_str(&rest[..at]);
        if starts_word && word.matches('/').count() >= 2 {
            out.push_str(word.rsplit('/').next().unwrap_or_default());
        } else {
            out.push_str(word);
        }
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    out
}

/// The damage FFmpeg reported while reading a file it could still read (a file that ends
/// early or breaks off mid-packet), as a reason naming the problem.
pub(crate) fn damage(complaints: &str) -> Option<String> {
    let line = complaints
        .lines()
        .find(|l| l.contains("partial file") || l.contains("ended prematurely"))?
        .trim();
    // "[matroska,webm @ 0x55…] File ended prematurely": the component's address says nothing.
    let line = match line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((_, message)) => message,
        None => line,
    };
    Some(format!("the video is damaged or truncated: {line}"))
}

/// The last frame count in FFmpeg's `-progress` output: frames written to the first output.
pub(crate) fn progress_frames(progress: &str) -> Option<u64> {
    progress
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .next_back()?
        .trim()
        .parse()
        .ok()
}

/// FFprobe's view of one stream: `select` is a stream specifier (`v:0`, `a:0`), `entries` the
/// `stream=` fields; `extra` goes before the file (e.g. `-count_packets`).
pub(crate) async fn probe_stream(
    path: &Path,
    select: &str,
    entries: &str,
    extra: &[&str],
) -> Result<serde_json::Value, String> {
    let entries = format!("stream={entries}");
    let file = path.to_string_lossy();
    let mut args = vec!["-v", "error", "-select_streams", select];
    args.extend(extra);
    args.extend(["-show_entries", &entries, "-of", "json", &file]);
    let json = tool("ffprobe", &args).await?;
    let info: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("ffprobe gave unreadable output: {e}"))?;
    Ok(info["streams"][0].clone())
}

/// The last `n` lines of a tool's complaint, which name the problem.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("; ")
}

pub(crate) use super::{readable, readable_output};

/// A scratch directory for FFmpeg's files (see [`crate::scratch`]).
pub(crate) fn scratch() -> Result<tempfile::TempDir, StorageError> {
    crate::scratch::dir("video-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complaints_name_files_without_the_coordinators_paths() {
        assert_eq!(
            without_paths(
                "/var/lib/idlegrid/blobs/jobs/14/input: Invalid data found when processing input"
            ),
            "input: Invalid data found when processing input"
        );
        assert_eq!(
            without_paths(
                "[concat @ 0x1] Impossible to open '/tmp/idlegrid-coordinator/x/video-y/part3.mp4'; \
                 file:/a/b/c, 1/2 of 3, a/b/c and /root"
            ),
            "[concat @ 0x1] Impossible to open 'part3.mp4'; file:c, 1/2 of 3, a/b/c and /root"
        );
    }

    #[test]
    fn damage_is_named_without_ffmpeg_internals() {
        assert_eq!(
            damage("[matroska,webm @ 0x55be74deda00] File ended prematurely\n").as_deref(),
            Some("the video is damaged or truncated: File ended prematurely")
        );
        assert!(damage("[h264 @ 0x1] some other complaint").is_none());
    }
}
