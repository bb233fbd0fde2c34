//! The validators that check an output's shape (after its integrity): JSON lines, a JSON object
//! of numbers, or a tar of plain files. They make sure a fan-in that reads inside the outputs
//! can: an output of the wrong shape is its device's fault and is refused as it arrives.
//! A shape says nothing about whether the content is right: that is what replication checks.

use super::Shape;
use super::files::{MAX_FILES, clean_name};
use super::integrity::Integrity;
use crate::apps::plugin::{Judgment, Validator};
use async_trait::async_trait;
use futures::StreamExt;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, OutputRef, ResultRecord};
use std::collections::HashSet;
use std::path::Path;

/// Largest output read whole as one JSON document.
pub const MAX_JSON_BYTES: u64 = 64 << 20;
/// Most numbers one JSON output may hold.
pub const MAX_NUMBERS: usize = 1_000_000;
/// Deepest nesting of objects in one.
pub const MAX_DEPTH: usize = 16;
/// Longest line of a JSON-lines output.
const MAX_LINE_BYTES: usize = 16 << 20;

/// A validator that checks integrity, then [`Shape`].
pub struct Shaped(pub Shape);

#[async_trait]
impl Validator for Shaped {
    async fn validate(
        &self,
        job: &JobRecord,
        result: &ResultRecord,
        blobs: &dyn BlobStore,
    ) -> idlegrid_storage::Result<Judgment> {
        let whole = Integrity.validate(job, result, blobs).await?;
        if whole != Judgment::Accept {
            return Ok(whole);
        }
        let verdict = match self.0 {
            Shape::Any => Ok(()),
            Shape::JsonLines => json_lines(&result.output, blobs).await?,
            Shape::Numbers => {
                if result.size > MAX_JSON_BYTES {
                    Err(format!(
                        "the output is {} bytes; a JSON object of numbers may have at most \
                         {MAX_JSON_BYTES}",
                        result.size
                    ))
                } else {
                    let bytes = match &result.output {
                        OutputRef::Inline(bytes) => bytes::Bytes::copy_from_slice(bytes),
                        OutputRef::Blob(key) => blobs.get_bytes(key, None).await?,
                    };
                    numbers(&bytes).map(|_| ())
                }
            }
            Shape::Tar => {
                let dir = crate::scratch::dir("shape")?;
                let path =
                    crate::apps::readable_output(blobs, &result.output, &dir.path().join("out"))
                        .await?;
                tokio::task::spawn_blocking(move || tar_files(&path).map(|_| ()))
                    .await
                    .unwrap_or_else(|_| Err("the check stopped".into()))
            }
        };
        Ok(match verdict {
            Ok(()) => Judgment::Accept,
            Err(reason) => Judgment::Reject(reason),
        })
    }
}

/// Checks every line of an output is one JSON value, the last one ended.
async fn json_lines(
    output: &OutputRef,
    blobs: &dyn BlobStore,
) -> idlegrid_storage::Result<Result<(), String>> {
    let mut stream = match output {
        OutputRef::Inline(bytes) => {
            futures::stream::iter([Ok(bytes::Bytes::copy_from_slice(bytes))]).boxed()
        }
        OutputRef::Blob(key) => blobs.get(key, None).await?,
    };
    let mut line = Vec::new();
    let mut number = 0u64;
    while let Some(part) = stream.next().await {
        for piece in part?.split_inclusive(|b| *b == b'\n') {
            line.extend_from_slice(piece);
            if line.len() > MAX_LINE_BYTES {
                return Ok(Err(format!(
                    "line {} of the output is longer than {MAX_LINE_BYTES} bytes",
                    number + 1
                )));
            }
            if line.ends_with(b"\n") {
                number += 1;
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&line) {
                    return Ok(Err(format!(
                        "line {number} of the output is not one JSON value: {e}"
                    )));
                }
                line.clear();
            }
        }
    }
    Ok(if line.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the output's last line (line {}) has no line end",
            number + 1
        ))
    })
}

/// The JSON object of numbers `bytes` holds, checked: objects whose values are numbers or
/// objects of the same kind, at most [`MAX_DEPTH`] deep and [`MAX_NUMBERS`] numbers.
pub fn numbers(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the output is not a JSON document: {e}"))?;
    let serde_json::Value::Object(object) = value else {
        return Err("the output must be a JSON object".into());
    };
    let mut count = 0usize;
    check_numbers(&object, "", 1, &mut count)?;
    Ok(object)
}

fn check_numbers(
    object: &serde_json::Map<String, serde_json::Value>,
    at: &str,
    depth: usize,
    count: &mut usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "the output nests objects more than {MAX_DEPTH} deep"
        ));
    }
    for (key, value) in object {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        match value {
            serde_json::Value::Number(_) => {
                *count += 1;
                if *count > MAX_NUMBERS {
                    return Err(format!("the output holds more than {MAX_NUMBERS} numbers"));
                }
            }
            serde_json::Value::Object(inner) => check_numbers(inner, &path, depth + 1, count)?,
            other => {
                let shown: String = other.to_string().chars().take(40).collect();
                return Err(format!(
                    "the output's {path:?} is {shown}: every value must be a number or an object \
                     of numbers"
                ));
            }
        }
    }
    Ok(())
}

/// The names of the files of the tar at `path`, checked: plain files with plain relative names,
/// each once, none the `archive` fan-in's own index, at most [`MAX_FILES`].
pub fn tar_files(path: &Path) -> Result<Vec<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the output: {e}"))?;
    let mut tar = tar::Archive::new(std::io::BufReader::new(file));
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    let broken = |e: std::io::Error| format!("the output is not a tar archive: {e}");
    for entry in tar.entries().map_err(broken)? {
        let entry = entry.map_err(broken)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        let name = clean_name(&entry.path_bytes()).map_err(|e| format!("in the output: {e}"))?;
        if !(kind.is_file() || kind.is_contiguous()) {
            return Err(format!(
                "the output's {name:?} is not a plain file: an archive output holds only files"
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(format!("the output holds {name:?} twice"));
        }
        if name == super::archive::INDEX {
            return Err(format!(
                "the output holds {name:?}, the name of the joined archive's own index"
            ));
        }
        if names.len() as u64 >= MAX_FILES {
            return Err(format!("the output holds more than {MAX_FILES} files"));
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_objects_of_numbers() {
        assert!(numbers(br#"{"a": 1, "b": {"c": 2.5}}"#).is_ok());
        assert!(numbers(br#"{}"#).is_ok());
        for (bad, says) in [
            (&br#"[1]"#[..], "JSON object"),
            (br#"{"a": "x"}"#, "\"a\""),
            (br#"{"a": {"b": null}}"#, "\"a.b\""),
            (br#"{"a": [1]}"#, "number"),
            (br#"{"a": 1"#, "not a JSON"),
        ] {
            let err = numbers(bad).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
        let deep = format!("{}1{}", r#"{"a":"#.repeat(17), "}".repeat(17));
        assert!(numbers(deep.as_bytes()).unwrap_err().contains("deep"));
    }

    /// A tar whose entries are written as given, names unchecked (as a hostile device's).
    fn tar_of(entries: &[(&[u8], tar::EntryType)]) -> tempfile::NamedTempFile {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, kind) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_size(1);
            header.set_entry_type(*kind);
            if *kind == tar::EntryType::Symlink {
                header.set_size(0);
                header.set_link_name("/etc/shadow").unwrap();
            }
            header.set_cksum();
            let data: &[u8] = if *kind == tar::EntryType::Symlink {
                b""
            } else {
                b"x"
            };
            tar.append(&header, data).unwrap();
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), tar.into_inner().unwrap()).unwrap();
        file
    }

    #[test]
    fn a_tar_output_holds_only_plain_files_with_plain_names() {
        let regular = tar::EntryType::Regular;
        let good = tar_of(&[(b"a.txt", regular), (b"d/b.txt", regular)]);
        assert_eq!(tar_files(good.path()).unwrap(), ["a.txt", "d/b.txt"]);
        for (entries, says) in [
            (vec![(&b"../../x"[..], regular)], ".. parts"),
            (vec![(&b"/abs"[..], regular)], "relative path"),
            (
                vec![(&b"l"[..], tar::EntryType::Symlink)],
                "not a plain file",
            ),
            (vec![(&b"a"[..], regular), (&b"a"[..], regular)], "twice"),
            (vec![(&b"index.json"[..], regular)], "own index"),
        ] {
            let err = tar_files(tar_of(&entries).path()).unwrap_err();
            assert!(err.contains(says), "{says}: {err}");
        }
        let junk = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(junk.path(), [7u8; 700]).unwrap();
        assert!(tar_files(junk.path()).unwrap_err().contains("not a tar"));
    }
}
