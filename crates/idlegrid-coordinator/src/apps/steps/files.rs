//! The `files` partitioner: the job's input is an archive (zip, tar or gzip-compressed tar) and
//! every regular file in it is an item; each chunk is a tar of `chunk_items` of them (or of as
//! many as the tier and the grid's capacity call for), in the archive's order, under their
//! names in the archive. Directories are skipped.
//!
//! The archive is a customer's and untrusted, and the coordinator reads it:
//! - names must be plain relative paths (no `..`, no leading `/`, no control characters), each
//!   once; links and devices are refused, so no chunk can point a script anywhere else;
//! - sizes are read from the archive's directory first and bounded ([`MAX_FILES`],
//!   [`MAX_TOTAL_BYTES`], [`MAX_FILE_BYTES`]) before anything is unpacked, and every file is
//!   read with a limit of the size it declared: a file that inflates past it (a zip bomb) is
//!   refused, never unpacked;
//! - chunk tars are written with fixed owners, modes and times, so the same archive always gives
//!   the same chunks (replicas compare outputs of identical inputs).
//!
//! Cost model: like `lines`, by volume ([`super::lines::MS_PER_MIB`] per MiB unpacked), plus
//! [`MS_PER_FILE`] a file and the chunk's start-up.

use super::lines::{MS_PER_CHUNK, work_of};
use crate::apps::plugin::{
    InputSize, PartitionError, Partitioner, Plan, Split, Workload, count_option,
    refuse_other_options,
};
use async_trait::async_trait;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{JobRecord, NewTask};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Most files an archive may hold.
pub const MAX_FILES: u64 = 100_000;
/// Most bytes its files may hold together, unpacked.
pub const MAX_TOTAL_BYTES: u64 = 16 << 30;
/// Largest file, unpacked (also the most a chunk of one file holds).
pub const MAX_FILE_BYTES: u64 = 128 << 20;
/// Largest chunk of several files.
pub const MAX_CHUNK_BYTES: u64 = 256 << 20;
/// Longest file name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Work of a file beyond its bytes (reference core-ms).
pub const MS_PER_FILE: i64 = 20;

/// The archive partitioner.
pub struct Files;

/// What kind of archive a file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A zip archive.
    Zip,
    /// A tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGz,
}

impl Kind {
    /// The kind `head` (the file's first 512 bytes or all of a shorter file) starts.
    pub fn of(head: &[u8]) -> Option<Kind> {
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Some(Kind::Zip)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(Kind::TarGz)
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Some(Kind::Tar)
        } else {
            None
        }
    }
}

/// A file of the archive: its name and its size, unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name in the archive (checked by [`clean_name`]).
    pub name: String,
    /// Its size, as the archive declares it.
    pub size: u64,
}

/// `name` as kept in a chunk: a plain relative path (see
/// [`idlegrid_domain::text::relative_path`]); the error names the problem.
pub fn clean_name(name: &[u8]) -> Result<String, String> {
    idlegrid_domain::text::relative_path(name, "the archive's file name", MAX_NAME_BYTES)
}

/// Calls `each` for every file of the archive at `path`, in its order, with a reader of the
/// file's bytes (which may be longer than declared: the caller limits it). Directories are
/// skipped; links and devices are refused.
pub(crate) fn walk(
    path: &Path,
    kind: Kind,
    mut each: impl FnMut(Entry, &mut dyn Read) -> Result<(), String>,
) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the archive: {e}"))?;
    let broken = |e: &dyn std::fmt::Display| format!("the archive is damaged: {e}");
    match kind {
        Kind::Zip => {
            let mut zip =
                zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| broken(&e))?;
            for i in 0..zip.len() {
                let mut member = zip.by_index(i).map_err(|e| match e {
                    zip::result::ZipError::UnsupportedArchive(what) => {
                        format!("the archive uses what the grid cannot unpack: {what}")
                    }
                    other => broken(&other),
                })?;
                // Folders are only where files go: skipped, whatever their names.
                if member.is_dir() {
                    continue;
                }
                let name = clean_name(member.name_raw())?;
                if member.is_symlink() {
                    return Err(format!(
                        "the archive's {name:?} is a link: it may hold only files and folders"
                    ));
                }
                let entry = Entry {
                    name,
                    size: member.size(),
                };
                each(entry, &mut member)?;
            }
            Ok(())
        }
        Kind::Tar | Kind::TarGz => {
            let reader: Box<dyn Read> = if kind == Kind::TarGz {
                Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
            } else {
                Box::new(std::io::BufReader::new(file))
            };
            let mut tar = tar::Archive::new(reader);
            for member in tar.entries().map_err(|e| broken(&e))? {
                let mut member = member.map_err(|e| broken(&e))?;
                let kind = member.header().entry_type();
                if kind.is_dir() {
                    continue;
                }
                let name = clean_name(&member.path_bytes())?;
                if !(kind.is_file() || kind.is_contiguous()) {
                    return Err(format!(
                        "the archive's {name:?} is not a plain file (a link or a device): it may \
                         hold only files and folders"
                    ));
                }
                let size = member.size();
                each(Entry { name, size }, &mut member)?;
            }
            Ok(())
        }
    }
}

/// The files of the archive at `path`, checked against the limits before anything is unpacked.
pub fn list(path: &Path) -> Result<(Kind, Vec<Entry>), String> {
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .map_err(|e| format!("cannot read the archive: {e}"))?;
    let kind = Kind::of(&head)
        .ok_or("the input must be an archive: zip, tar or gzip-compressed tar".to_string())?;
    let mut entries = Vec::new();
    let mut names = HashSet::new();
    let mut total = 0u64;
    walk(path, kind, |entry, _| {
        if entries.len() as u64 >= MAX_FILES {
            return Err(format!("the archive holds more than {MAX_FILES} files"));
        }
        if entry.size > MAX_FILE_BYTES {
            return Err(format!(
                "the archive's {:?} is {} bytes unpacked; a file may have at most {MAX_FILE_BYTES}",
                entry.name, entry.size
            ));
        }
        total = total.saturating_add(entry.size);
        if total > MAX_TOTAL_BYTES {
            return Err(format!(
                "the archive's files hold more than {MAX_TOTAL_BYTES} bytes unpacked"
            ));
        }
        if !names.insert(entry.name.clone()) {
            return Err(format!("the archive holds {:?} twice", entry.name));
        }
        entries.push(entry);
        Ok(())
    })?;
    Ok((kind, entries))
}

/// Work of a chunk of `files` files holding `bytes`.
fn chunk_work(bytes: u64, files: u64) -> i64 {
    work_of(bytes) + MS_PER_FILE * files as i64
}

/// How many files each chunk takes, in order: `per_chunk` each, or as many as reach the work
/// `plan` aims a chunk at; never over [`MAX_CHUNK_BYTES`] unless one file alone is.
pub fn groups(sizes: &[u64], per_chunk: Option<u64>, plan: &Plan) -> Vec<usize> {
    let total: u64 = sizes.iter().sum();
    let target = plan.chunk_work_ms(chunk_work(total, sizes.len() as u64) - MS_PER_CHUNK);
    let mut groups = Vec::new();
    let (mut files, mut bytes) = (0usize, 0u64);
    for &size in sizes {
        if files > 0 && bytes + size > MAX_CHUNK_BYTES {
            groups.push(files);
            (files, bytes) = (0, 0);
        }
        files += 1;
        bytes += size;
        let full = match per_chunk {
            Some(n) => files as u64 >= n,
            None => chunk_work(bytes, files as u64) >= target,
        };
        if full {
            groups.push(files);
            (files, bytes) = (0, 0);
        }
    }
    if files > 0 {
        groups.push(files);
    }
    groups
}

fn workload(sizes: &[u64], per_chunk: Option<u64>, plan: &Plan) -> Workload {
    let mut at = 0;
    let (mut work_ms, mut largest) = (0i64, 0i64);
    let groups = groups(sizes, per_chunk, plan);
    for &n in &groups {
        let work = chunk_work(sizes[at..at + n].iter().sum(), n as u64);
        work_ms += work;
        largest = largest.max(work);
        at += n;
    }
    Workload {
        work_ms,
        chunks: groups.len() as u64,
        largest_chunk_ms: largest,
    }
}

/// Files per chunk the customer chose, if any.
fn chunk_items(options: &serde_json::Value) -> Result<Option<u64>, String> {
    count_option(options, "items", "chunk_items", MAX_FILES)
}

/// Writes the archive's files as chunk tars in `dir`, `groups` files each, sending each chunk's
/// path, file count and bytes as it is closed.
fn write_chunks(
    path: &Path,
    kind: Kind,
    entries: &[Entry],
    groups: &[usize],
    dir: &Path,
    done: mpsc::Sender<(PathBuf, u64, u64)>,
) -> Result<(), String> {
    let mut next = 0usize;
    let mut group = 0usize;
    let mut in_chunk = 0usize;
    let mut bytes = 0u64;
    let mut builder: Option<tar::Builder<std::fs::File>> = None;
    let chunk_path = |group: usize| dir.join(format!("{group:06}.tar"));
    walk(path, kind, |entry, reader| {
        // The second reading must find what the first listed.
        let listed = entries
            .get(next)
            .filter(|e| **e == entry)
            .ok_or_else(|| "the archive changed while it was read".to_string())?;
        let mut data = Vec::with_capacity(listed.size.min(1 << 20) as usize);
        reader
            .take(listed.size + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("the archive's {:?} does not unpack: {e}", listed.name))?;
        if data.len() as u64 != listed.size {
            return Err(format!(
                "the archive's {:?} unpacks to other than the {} bytes it declares",
                listed.name, listed.size
            ));
        }
        if builder.is_none() {
            let file = std::fs::File::create(chunk_path(group))
                .map_err(|e| format!("cannot write a chunk: {e}"))?;
            builder = Some(tar::Builder::new(file));
        }
        let mut header = tar::Header::new_ustar();
        header.set_size(listed.size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        if let Some(tar) = builder.as_mut() {
            tar.append_data(&mut header, &listed.name, data.as_slice())
                .map_err(|e| format!("cannot write a chunk: {e}"))?;
        }
        next += 1;
        in_chunk += 1;
        bytes += listed.size;
        if in_chunk == groups[group] {
            if let Some(tar) = builder.take() {
                tar.into_inner()
                    .map_err(|e| format!("cannot write a chunk: {e}"))?;
            }
            done.blocking_send((chunk_path(group), in_chunk as u64, bytes))
                .map_err(|_| "partitioning stopped".to_string())?;
            group += 1;
            (in_chunk, bytes) = (0, 0);
        }
        Ok(())
    })?;
    if next != entries.len() {
        return Err("the archive changed while it was read".into());
    }
    Ok(())
}

async fn local_input(
    job: &JobRecord,
    blobs: &dyn BlobStore,
    dir: &Path,
) -> Result<PathBuf, PartitionError> {
    let input = job
        .input
        .as_ref()
        .ok_or_else(|| PartitionError::Rejected("the job has no input".into()))?;
    Ok(crate::apps::readable(blobs, &input.key, &dir.join("input")).await?)
}

async fn listed(path: PathBuf) -> Result<(Kind, Vec<Entry>), PartitionError> {
    tokio::task::spawn_blocking(move || list(&path))
        .await
        .map_err(|_| PartitionError::Stopped)?
        .map_err(PartitionError::Rejected)
}

#[async_trait]
impl Partitioner for Files {
    fn check_job(
        &self,
        _params: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<(), String> {
        refuse_other_options(options, &["items"], "an archive: it is cut by chunk_items")?;
        chunk_items(options).map(|_| ())
    }

    fn workload(
        &self,
        _params: &serde_json::Value,
        options: &serde_json::Value,
        size: &InputSize,
        plan: &Plan,
    ) -> Result<Workload, String> {
        let per_chunk = chunk_items(options)?;
        match size {
            // Files of equal size: the figure for the count and the bytes.
            InputSize::Items { bytes, items } if *items > 0 => {
                let each = bytes / items;
                let mut sizes = vec![each; *items as usize];
                sizes[0] += bytes % items;
                Ok(workload(&sizes, per_chunk, plan))
            }
            InputSize::Items { .. } => Ok(workload(&[], per_chunk, plan)),
            _ => Err(
                "an archive is priced by its files: give the job's id with its input uploaded"
                    .into(),
            ),
        }
    }

    async fn measure(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
    ) -> Result<InputSize, PartitionError> {
        let dir = crate::scratch::dir("files")?;
        let path = local_input(job, blobs, dir.path()).await?;
        let (_, entries) = listed(path).await?;
        Ok(InputSize::Items {
            bytes: entries.iter().map(|e| e.size).sum(),
            items: entries.len() as u64,
        })
    }

    async fn split(
        &self,
        job: &JobRecord,
        blobs: &dyn BlobStore,
        plan: &Plan,
        out: mpsc::Sender<Split>,
    ) -> Result<Option<serde_json::Value>, PartitionError> {
        let per_chunk =
            chunk_items(&job.spec.partition_options).map_err(PartitionError::Rejected)?;
        let dir = crate::scratch::dir("files")?;
        let path = local_input(job, blobs, dir.path()).await?;
        let (kind, entries) = listed(path.clone()).await?;
        let sizes: Vec<u64> = entries.iter().map(|e| e.size).collect();
        let groups = groups(&sizes, per_chunk, plan);
        out.send(Split::Workload(workload(&sizes, per_chunk, plan)))
            .await
            .map_err(|_| PartitionError::Stopped)?;
        let (done, mut closed) = mpsc::channel(2);
        let chunks = dir.path().to_path_buf();
        let writer = {
            let (entries, groups) = (entries.clone(), groups.clone());
            tokio::task::spawn_blocking(move || {
                write_chunks(&path, kind, &entries, &groups, &chunks, done)
            })
        };
        let mut index = 0u64;
        while let Some((file, files, bytes)) = closed.recv().await {
            let key = crate::blob_keys::chunk(job.id, &format!("{index:06}.tar"));
            let stored = blobs.put_file(&key, &file).await?;
            let _ = tokio::fs::remove_file(&file).await;
            out.send(Split::Tasks(vec![NewTask {
                index,
                input_key: Some(key),
                offset: 0,
                len: stored.size,
                meta: None,
                work_ms: chunk_work(bytes, files),
            }]))
            .await
            .map_err(|_| PartitionError::Stopped)?;
            index += 1;
        }
        writer
            .await
            .map_err(|_| PartitionError::Stopped)?
            .map_err(PartitionError::Rejected)?;
        Ok(Some(serde_json::json!({
            "files": entries.len(),
            "bytes": sizes.iter().sum::<u64>(),
            "chunks": index,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_plain_relative_paths() {
        assert_eq!(clean_name(b"a/b.txt").unwrap(), "a/b.txt");
        assert_eq!(clean_name(b"./a.txt").unwrap(), "a.txt");
        for bad in [
            &b"/etc/passwd"[..],
            b"../x",
            b"a/../../x",
            b"a//b",
            b"a\\b",
            b"",
            b"a/./b",
            b"x\ny",
            b"\xff\xfe",
        ] {
            assert!(
                clean_name(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(clean_name("x".repeat(256).as_bytes()).is_err());
    }

    fn plan(slots: u64) -> Plan {
        Plan {
            tier: idlegrid_domain::Tier::Standard,
            capacity: idlegrid_domain::schedule::Capacity {
                slots,
                speed: slots as f64,
            },
            timeout_secs: 600,
        }
    }

    #[test]
    fn chunks_take_the_files_asked_for_or_the_grids_share() {
        assert_eq!(groups(&[10; 7], Some(3), &plan(4)), vec![3, 3, 1]);
        assert_eq!(groups(&[], Some(3), &plan(4)), Vec::<usize>::new());
        // Big files are never packed past the chunk limit, whatever was asked.
        let big = MAX_CHUNK_BYTES / 2 + 1;
        assert_eq!(groups(&[big, big, 1], Some(3), &plan(4)), vec![1, 2]);
        // By the grid's capacity: every file in some chunk, in order.
        let sizes = vec![1 << 20; 100];
        let cut = groups(&sizes, None, &plan(10));
        assert_eq!(cut.iter().sum::<usize>(), 100);
        assert!(cut.len() > 1, "{cut:?}");
        let w = workload(&sizes, None, &plan(10));
        assert_eq!(w.chunks, cut.len() as u64);
    }

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in files {
            if name.ends_with('/') {
                zip.add_directory(*name, stored).unwrap();
            } else {
                zip.start_file(*name, stored).unwrap();
                std::io::Write::write_all(&mut zip, data).unwrap();
            }
        }
        zip.finish().unwrap().into_inner()
    }

    /// A tar whose entries are written as given, names unchecked (as a hostile customer's).
    fn tar_of(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_size(data.len() as u64);
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("/etc/passwd").unwrap();
            }
            header.set_cksum();
            tar.append(&header, *data).unwrap();
        }
        tar.into_inner().unwrap()
    }

    fn saved(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    /// A chunk's files: (name, content).
    type Chunk = Vec<(String, Vec<u8>)>;

    /// Lists and cuts `bytes` into chunks of `per` files.
    fn cut(bytes: &[u8], per: usize) -> Result<Vec<Chunk>, String> {
        let (dir, path) = saved(bytes);
        let (kind, entries) = list(&path)?;
        let groups: Vec<usize> = entries.chunks(per).map(<[Entry]>::len).collect();
        let (tx, mut rx) = mpsc::channel(groups.len().max(1));
        write_chunks(&path, kind, &entries, &groups, dir.path(), tx)?;
        let mut chunks = Vec::new();
        while let Ok((file, _, _)) = rx.try_recv() {
            let mut tar = tar::Archive::new(std::fs::File::open(file).unwrap());
            let files = tar
                .entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let name = e.path().unwrap().to_string_lossy().into_owned();
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    assert_eq!(e.header().mtime().unwrap(), 0);
                    (name, data)
                })
                .collect();
            chunks.push(files);
        }
        Ok(chunks)
    }

    #[test]
    fn zips_tars_and_gzipped_tars_are_cut_into_tars_of_their_files() {
        let files: [(&str, &[u8]); 4] = [
            ("docs/", b""),
            ("docs/a.txt", b"alpha"),
            ("docs/b.txt", b"beta"),
            ("c.txt", b"gamma"),
        ];
        let want = vec![
            vec![
                ("docs/a.txt".to_string(), b"alpha".to_vec()),
                ("docs/b.txt".to_string(), b"beta".to_vec()),
            ],
            vec![("c.txt".to_string(), b"gamma".to_vec())],
        ];
        assert_eq!(cut(&zip_of(&files), 2).unwrap(), want);
        let regular = tar::EntryType::Regular;
        let tar = tar_of(&[
            (b"docs/a.txt", regular, b"alpha"),
            (b"docs/b.txt", regular, b"beta"),
            (b"./c.txt", regular, b"gamma"),
        ]);
        assert_eq!(cut(&tar, 2).unwrap(), want);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        assert_eq!(cut(&gz.finish().unwrap(), 2).unwrap(), want);
    }

    #[test]
    fn hostile_archives_are_refused_with_the_reason() {
        let regular = tar::EntryType::Regular;
        for (bytes, says) in [
            (
                tar_of(&[(b"../../etc/cron.d/x", regular, b"x")]),
                ".. parts",
            ),
            (tar_of(&[(b"/etc/passwd", regular, b"x")]), "relative path"),
            (
                tar_of(&[(b"link", tar::EntryType::Symlink, b"")]),
                "not a plain file",
            ),
            (
                tar_of(&[(b"a", regular, b"1"), (b"a", regular, b"2")]),
                "\"a\" twice",
            ),
            (zip_of(&[("../up.txt", b"x")]), ".. parts"),
            (
                b"just some text, not an archive".to_vec(),
                "must be an archive",
            ),
            (b"PK\x03\x04 truncated".to_vec(), "damaged"),
        ] {
            let err = cut(&bytes, 1).unwrap_err();
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    /// Sets the unpacked size the zip's central directory declares for its first file.
    fn declare_size(zip: &mut [u8], size: u32) {
        let at = zip
            .windows(4)
            .position(|w| w == b"PK\x01\x02")
            .expect("a central directory");
        zip[at + 24..at + 28].copy_from_slice(&size.to_le_bytes());
    }

    #[test]
    fn a_file_that_unpacks_past_its_declared_size_is_never_unpacked() {
        // A zip bomb's trick: declare little, inflate to much. The file is read with a limit of
        // its declared size and refused.
        let mut zip = zip_of(&[("bomb.txt", &[b'x'; 4096])]);
        declare_size(&mut zip, 10);
        let err = cut(&zip, 1).unwrap_err();
        assert!(err.contains("\"bomb.txt\""), "{err}");
        assert!(
            err.contains("other than the 10 bytes") || err.contains("larger than its declared"),
            "{err}"
        );
        // A declared size over the limit is refused before anything is unpacked.
        let mut zip = zip_of(&[("huge.bin", b"x")]);
        declare_size(&mut zip, (MAX_FILE_BYTES + 1) as u32);
        let err = cut(&zip, 1).unwrap_err();
        assert!(err.contains("a file may have at most"), "{err}");
    }
}
