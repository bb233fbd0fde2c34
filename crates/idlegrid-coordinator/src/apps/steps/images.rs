//! The `images` validator, for apps whose outputs are pictures (thumbnails): the output is a
//! tar as the `tar` validator wants it, and every JPEG or PNG file in it is one: its size is read
//! from its header and must be at most the job's `max_side` parameter on each side, when the
//! job has one; and a few of them, picked at random after the result arrived, are decoded
//! whole by FFmpeg, which must find nothing wrong. A device cannot tell which pictures will be
//! decoded, so a tar of headers with garbage behind them is caught with a probability that
//! grows with the garbage.

use super::integrity::Integrity;
use super::shape::tar_files;
use crate::apps::plugin::{Judgment, Validator};
use async_trait::async_trait;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, ResultRecord};
use rand::Rng;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Pictures decoded whole per result.
pub const DECODED: usize = 3;
/// Largest picture read, in bytes.
const MAX_PICTURE_BYTES: u64 = 64 << 20;

/// The pictures validator.
pub struct Images;

/// A picture's width and height, from the header of a PNG or JPEG; `None` for anything else.
pub fn picture_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        if bytes.get(12..16)? != b"IHDR" {
            return None;
        }
        let width = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
        let height = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
        return Some((width, height));
    }
    if !bytes.starts_with(&[0xff, 0xd8]) {
        return None;
    }
    let mut at = 2;
    loop {
        // Markers start with 0xff (and may be padded with more of them).
        while *bytes.get(at)? != 0xff {
            at += 1;
        }
        while *bytes.get(at)? == 0xff {
            at += 1;
        }
        let marker = *bytes.get(at)?;
        at += 1;
        if matches!(marker, 0xd0..=0xd9 | 0x01) {
            continue;
        }
        let length = usize::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        let start_of_frame = matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
        if start_of_frame {
            let height = u16::from_be_bytes(bytes.get(at + 3..at + 5)?.try_into().ok()?);
            let width = u16::from_be_bytes(bytes.get(at + 5..at + 7)?.try_into().ok()?);
            return Some((u32::from(width), u32::from(height)));
        }
        at += length;
    }
}

/// Whether a file is named as a picture this validator checks.
fn is_picture(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e))
}

/// Checks every picture's header in the tar at `tar` against `max_side`, and writes `DECODED`
/// of them, picked uniformly at random, to `dir` for decoding; their names and paths.
fn check_headers(
    tar: &Path,
    max_side: Option<u64>,
    dir: &Path,
) -> Result<Vec<(String, PathBuf)>, String> {
    let file = std::fs::File::open(tar).map_err(|e| format!("cannot read the output: {e}"))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let broken = |e: std::io::Error| format!("the output is not a tar archive: {e}");
    // The pictures to decode: a uniform sample of DECODED, kept as they are met (reservoir
    // sampling), so no more than DECODED pictures are held at once.
    let mut rng = rand::rng();
    let mut picked: Vec<(String, Vec<u8>)> = Vec::with_capacity(DECODED);
    let mut seen = 0usize;
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !entry.header().entry_type().is_file() || !is_picture(&name) {
            continue;
        }
        if entry.size() > MAX_PICTURE_BYTES {
            return Err(format!(
                "the output's {name:?} is over {MAX_PICTURE_BYTES} bytes"
            ));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(broken)?;
        let (width, height) = picture_size(&bytes).ok_or_else(|| {
            format!("the output's {name:?} is not the JPEG or PNG picture its name says")
        })?;
        if width == 0 || height == 0 {
            return Err(format!("the output's {name:?} is an empty picture"));
        }
        if let Some(most) = max_side
            && (u64::from(width) > most || u64::from(height) > most)
        {
            return Err(format!(
                "the output's {name:?} is {width}×{height}, over the {most} pixels a side the \
                 job asks for"
            ));
        }
        seen += 1;
        if picked.len() < DECODED {
            picked.push((name, bytes));
        } else {
            let slot = rng.random_range(0..seen);
            if slot < DECODED {
                picked[slot] = (name, bytes);
            }
        }
    }
    let mut written = Vec::with_capacity(picked.len());
    for (i, (name, bytes)) in picked.iter().enumerate() {
        let ext = if name.to_ascii_lowercase().ends_with(".png") {
            "png"
        } else {
            "jpg"
        };
        let path = dir.join(format!("picked-{i}.{ext}"));
        std::fs::write(&path, bytes).map_err(|e| format!("cannot check a picture: {e}"))?;
        written.push((name.clone(), path));
    }
    Ok(written)
}

#[async_trait]
impl Validator for Images {
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
        // One copy of the output, read for the tar's shape and then for its pictures.
        let dir = crate::scratch::dir("images")?;
        let tar =
            crate::apps::readable_output(blobs, &result.output, &dir.path().join("out")).await?;
        let max_side = job.spec.params.get("max_side").and_then(|v| v.as_u64());
        let scratch = dir.path().to_path_buf();
        let picked = tokio::task::spawn_blocking(move || {
            tar_files(&tar)?;
            check_headers(&tar, max_side, &scratch)
        })
        .await
        .unwrap_or_else(|_| Err("the check stopped".into()));
        let picked = match picked {
            Ok(picked) => picked,
            Err(reason) => return Ok(Judgment::Reject(reason)),
        };
        for (name, path) in picked {
            let path = path.to_string_lossy().into_owned();
            let decoded = crate::apps::video::tool_with_complaints(
                "ffmpeg",
                &["-nostdin", "-v", "error", "-i", &path, "-f", "null", "-"],
            )
            .await;
            match decoded {
                Ok((_, complaints)) if complaints.is_empty() => {}
                Ok((_, complaints)) | Err(complaints) => {
                    return Ok(Judgment::Reject(format!(
                        "the output's {name:?} does not decode: {complaints}"
                    )));
                }
            }
        }
        Ok(Judgment::Accept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A picture FFmpeg makes of `size`, in `format` (`png` or `mjpeg`).
    fn picture(size: &str, codec: &str, ext: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("p.{ext}"));
        let out = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size={size}"))
            .args(["-frames:v", "1", "-c:v", codec])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(path).unwrap()
    }

    #[test]
    fn sizes_are_read_from_png_and_jpeg_headers() {
        assert_eq!(
            picture_size(&picture("64x48", "png", "png")),
            Some((64, 48))
        );
        assert_eq!(
            picture_size(&picture("320x200", "mjpeg", "jpg")),
            Some((320, 200))
        );
        assert_eq!(picture_size(b"GIF89a"), None);
        assert_eq!(picture_size(&[0xff, 0xd8, 0xff]), None);
        assert_eq!(picture_size(b"\x89PNG\r\n\x1a\n"), None);
    }

    fn tar_of(files: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_cksum();
            tar.append_data(&mut header, name, *data).unwrap();
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), tar.into_inner().unwrap()).unwrap();
        file
    }

    #[test]
    fn pictures_over_the_size_asked_or_not_pictures_are_refused() {
        let small = picture("64x48", "mjpeg", "jpg");
        let big = picture("640x480", "png", "png");
        let dir = tempfile::tempdir().unwrap();
        let good = tar_of(&[("a.jpg", &small), ("index.json", b"{}")]);
        assert_eq!(
            check_headers(good.path(), Some(64), dir.path())
                .unwrap()
                .len(),
            1
        );
        let over = tar_of(&[("a.jpg", &small), ("b.png", &big)]);
        let err = check_headers(over.path(), Some(256), dir.path()).unwrap_err();
        assert!(err.contains("640×480"), "{err}");
        let fake = tar_of(&[("c.png", b"not a picture at all")]);
        let err = check_headers(fake.path(), None, dir.path()).unwrap_err();
        assert!(err.contains("not the JPEG or PNG"), "{err}");
    }
}
