//! A Matroska file's video track read in-process, without decoding: its format and its frames'
//! times in display order with the keyframes among them. Chunks and results are Matroska (the
//! partitioner cuts chunks to it and the task script writes it), and reading them here costs a
//! few milliseconds where starting FFprobe costs tens: the validator reads two tables for every
//! result it checks.
//!
//! The file is untrusted: the demuxer bounds every size it reads by the file's own, and the
//! only things parsed beyond the container are what says the pixel format: the H.264 sequence
//! parameter set, the HEVC and AV1 configuration records, and a VP9 frame's profile bits.

use matroska_demuxer::{Frame, MatroskaFile, TrackType};
use std::path::Path;

/// A video file's first video track as the validator reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameTable {
    /// Codec name (`h264`, `hevc`, `av1`, `vp9`, or the container's codec id for anything
    /// else).
    pub codec: String,
    /// Width in pixels, as the container says.
    pub width: u32,
    /// Height in pixels, as the container says.
    pub height: u32,
    /// Pixel format, as FFmpeg names it (`yuv420p`, `yuv444p10`...), from the H.264 sequence
    /// parameter set, the HEVC and AV1 configuration records or a VP9 frame; `unknown` for
    /// other codecs.
    pub pix_fmt: String,
    /// Whether frames are shown in another order than they are stored (B-frames).
    pub reordered: bool,
    /// Each frame's presentation time in seconds, in display order.
    pub times: Vec<f64>,
    /// Display indices of the keyframes, ascending.
    pub keys: Vec<usize>,
    /// The video track's name, when it has one.
    pub name: Option<String>,
}

impl FrameTable {
    /// The most frames from a keyframe to the next (or to the end).
    pub fn longest_gop(&self) -> usize {
        self.keys
            .iter()
            .zip(self.keys.iter().skip(1).chain([&self.times.len()]))
            .map(|(a, b)| b.saturating_sub(*a))
            .max()
            .unwrap_or(self.times.len())
    }

    /// The last keyframe at or before display index `frame`.
    pub fn key_before(&self, frame: usize) -> Option<usize> {
        let at = self.keys.partition_point(|&k| k <= frame);
        at.checked_sub(1).map(|i| self.keys[i])
    }
}

/// The name of `path`'s video track (its header only is read), `None` when it has none or the
/// file is not Matroska.
pub fn video_track_name(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mkv = MatroskaFile::open(std::io::BufReader::new(file)).ok()?;
    mkv.tracks()
        .iter()
        .find(|t| t.track_type() == TrackType::Video)?
        .name()
        .map(String::from)
}

/// Reads a file's [`FrameTable`] on a blocking thread; the error says what makes it unreadable
/// as video: not Matroska, no video track, two frames at one time.
pub async fn frame_table(path: &Path) -> Result<FrameTable, String> {
    table_of(path, false).await
}

/// A source chunk's [`FrameTable`]: a chunk cut from the keyframe before its frames may begin
/// with undecodable leading frames FFmpeg gave one time twice; the later of two frames at one
/// time is left out (the caller checks its own frames are all there).
pub async fn source_frame_table(path: &Path) -> Result<FrameTable, String> {
    table_of(path, true).await
}

async fn table_of(path: &Path, lenient: bool) -> Result<FrameTable, String> {
    let path = path.to_path_buf();
    let stage = crate::tools::current_stage();
    tokio::task::spawn_blocking(move || crate::tools::counted(stage, || read_table(&path, lenient)))
        .await
        .map_err(|e| format!("reading the file failed: {e}"))?
}

#[cfg(test)]
fn read(path: &Path) -> Result<FrameTable, String> {
    read_table(path, false)
}

fn read_table(path: &Path, lenient: bool) -> Result<FrameTable, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut mkv = MatroskaFile::open(std::io::BufReader::with_capacity(1 << 16, file))
        .map_err(|e| format!("it is not a Matroska file ({e})"))?;
    let track = mkv
        .tracks()
        .iter()
        .find(|t| t.track_type() == TrackType::Video)
        .ok_or("there is no video track")?;
    let number = track.track_number().get();
    let name = track.name().map(String::from);
    let (width, height) = track.video().map_or((0, 0), |v| {
        (
            u32::try_from(v.pixel_width().get()).unwrap_or(u32::MAX),
            u32::try_from(v.pixel_height().get()).unwrap_or(u32::MAX),
        )
    });
    let private = track.codec_private();
    let (codec, mut pix_fmt) = match track.codec_id() {
        "V_MPEG4/ISO/AVC" => ("h264", private.and_then(avc_pixel_format)),
        "V_MPEGH/ISO/HEVC" => ("hevc", private.and_then(hevc_pixel_format)),
        "V_AV1" => ("av1", private.and_then(av1_pixel_format)),
        "V_VP9" => ("vp9", None),
        other => (other, None),
    };
    let codec = codec.to_string();
    let scale = mkv.info().timestamp_scale().get() as f64 / 1e9;
    let mut frames: Vec<(u64, bool)> = Vec::new();
    let mut frame = Frame::default();
    let (mut reordered, mut latest) = (false, None);
    while mkv
        .next_frame(&mut frame)
        .map_err(|e| format!("its frames cannot be read ({e})"))?
    {
        if frame.track != number {
            continue;
        }
        if frames.is_empty() && codec == "vp9" {
            pix_fmt = vp9_pixel_format(&frame.data);
        }
        reordered |= latest.is_some_and(|t| frame.timestamp < t);
        latest = latest.max(Some(frame.timestamp));
        frames.push((frame.timestamp, frame.is_keyframe == Some(true)));
    }
    frames.sort_by_key(|&(time, _)| time);
    if lenient {
        frames.dedup_by_key(|&mut (time, _)| time);
    }
    if frames.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("two frames are shown at the same time".into());
    }
    Ok(FrameTable {
        codec,
        width,
        height,
        pix_fmt: pix_fmt.unwrap_or_else(|| "unknown".into()),
        reordered,
        name,
        keys: frames
            .iter()
            .enumerate()
            .filter(|(_, (_, key))| *key)
            .map(|(i, _)| i)
            .collect(),
        times: frames
            .into_iter()
            .map(|(time, _)| time as f64 * scale)
            .collect(),
    })
}

/// The pixel format an H.264 stream decodes to, from the first sequence parameter set of its
/// `avcC` record (ISO/IEC 14496-15): chroma format and bit depth, named as FFmpeg does.
fn avc_pixel_format(avcc: &[u8]) -> Option<String> {
    // version, profile, compatibility, level, length size, then the count of SPS units.
    if avcc.len() < 8 || avcc[0] != 1 || avcc[5] & 0x1f == 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([avcc[6], avcc[7]]));
    let nal = avcc.get(8..8 + len)?;
    // The NAL header must say "sequence parameter set" (type 7).
    if nal.first()? & 0x1f != 7 {
        return None;
    }
    // The payload without its emulation-prevention bytes (00 00 03 → 00 00).
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in &nal[1..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut bits = Bits { data: &rbsp, at: 0 };
    let profile = bits.take(8)?;
    bits.take(16)?; // constraint flags, level
    bits.golomb()?; // seq_parameter_set_id
    let (chroma, depth) = if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        let chroma = bits.golomb()?;
        if chroma == 3 {
            bits.take(1)?; // separate_colour_plane_flag
        }
        (chroma, 8 + bits.golomb()?)
    } else {
        (1, 8)
    };
    pixel_format(chroma, depth)
}

/// FFmpeg's name of a pixel format from its chroma format (0 grey, 1 4:2:0, 2 4:2:2,
/// 3 4:4:4) and bit depth.
fn pixel_format(chroma: u32, depth: u32) -> Option<String> {
    let base = match chroma {
        0 => "gray",
        1 => "yuv420p",
        2 => "yuv422p",
        3 => "yuv444p",
        _ => return None,
    };
    Some(if depth == 8 {
        base.to_string()
    } else {
        format!("{base}{depth}")
    })
}

/// The pixel format of an HEVC stream, from its `hvcC` record (ISO/IEC 14496-15): the chroma
/// format in byte 16 and the luma bit depth in byte 17.
fn hevc_pixel_format(hvcc: &[u8]) -> Option<String> {
    if hvcc.len() < 23 || hvcc[0] != 1 {
        return None;
    }
    pixel_format(u32::from(hvcc[16] & 3), 8 + u32::from(hvcc[17] & 7))
}

/// The pixel format of an AV1 stream, from its `av1C` record: bit depth, monochrome and chroma
/// subsampling in byte 2.
fn av1_pixel_format(av1c: &[u8]) -> Option<String> {
    if av1c.len() < 4 || av1c[0] != 0x81 {
        return None;
    }
    let flags = av1c[2];
    let depth = match (flags & 0x40 != 0, flags & 0x20 != 0) {
        (false, _) => 8,
        (true, false) => 10,
        (true, true) => 12,
    };
    let chroma = match (flags & 0x10 != 0, flags & 0x08 != 0, flags & 0x04 != 0) {
        (true, _, _) => 0,
        (false, true, true) => 1,
        (false, true, false) => 2,
        (false, false, _) => 3,
    };
    pixel_format(chroma, depth)
}

/// The pixel format of a VP9 stream from its first frame's profile: profile 0 is 8-bit
/// 4:2:0; the others (4:2:2 and 4:4:4, or 10 and 12 bits) are named by profile only.
fn vp9_pixel_format(frame: &[u8]) -> Option<String> {
    let first = *frame.first()?;
    if first >> 6 != 0b10 {
        return None;
    }
    let profile = ((first >> 4) & 1) << 1 | ((first >> 5) & 1);
    Some(match profile {
        0 => "yuv420p".to_string(),
        other => format!("vp9 profile {other}"),
    })
}

/// A big-endian bit reader over an RBSP.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn take(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.at / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        Some(v)
    }

    /// An unsigned Exp-Golomb number.
    fn golomb(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.take(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.take(zeros)?)
    }
}

/// A Matroska file's first video track's packets in the order they are stored (decode
/// order), each with its presentation time and keyframe flag, read in-process on a blocking
/// thread: the partitioner reads every chunk it cuts, and FFprobe would cost tens of
/// milliseconds each.
pub async fn packets(path: &Path) -> Result<Vec<super::probe::Packet>, String> {
    let path = path.to_path_buf();
    let stage = crate::tools::current_stage();
    tokio::task::spawn_blocking(move || crate::tools::counted(stage, || read_packets(&path)))
        .await
        .map_err(|e| format!("reading the file failed: {e}"))?
}

fn read_packets(path: &Path) -> Result<Vec<super::probe::Packet>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut mkv = MatroskaFile::open(std::io::BufReader::with_capacity(1 << 16, file))
        .map_err(|e| format!("it is not a Matroska file ({e})"))?;
    let number = mkv
        .tracks()
        .iter()
        .find(|t| t.track_type() == TrackType::Video)
        .ok_or("there is no video track")?
        .track_number()
        .get();
    let scale = mkv.info().timestamp_scale().get() as f64 / 1e9;
    let mut packets = Vec::new();
    let mut frame = Frame::default();
    while mkv
        .next_frame(&mut frame)
        .map_err(|e| format!("its frames cannot be read ({e})"))?
    {
        if frame.track == number {
            packets.push(super::probe::Packet {
                pts: Some(frame.timestamp as f64 * scale),
                key: frame.is_keyframe == Some(true),
            });
        }
    }
    Ok(packets)
}

/// A file attached to a Matroska file (where a video chunk carries its stills).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Its name, as the file says.
    pub name: String,
    /// Its media type, as the file says.
    pub mime: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// Most attachments read from one file, and most bytes each: a chunk carries a few stills.
pub const MAX_ATTACHMENTS: usize = 64;
pub const MAX_ATTACHMENT_BYTES: u64 = 2 << 20;

/// Matroska element ids (with their length markers, as EBML writes them).
const SEGMENT: u32 = 0x1853_8067;
const ATTACHMENTS: u32 = 0x1941_A469;
const ATTACHED_FILE: u32 = 0x61A7;
const FILE_NAME: u32 = 0x466E;
const FILE_MIME: u32 = 0x4660;
const FILE_DATA: u32 = 0x465C;

/// Reads an EBML variable-length integer: an element id (`keep_marker`) or a size. `None` at
/// the end of the input; a size of all ones (unknown) is `u64::MAX`.
fn vint(r: &mut impl std::io::Read, keep_marker: bool) -> Result<Option<u64>, String> {
    let mut first = [0u8; 1];
    match r.read(&mut first) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(format!("reading it failed: {e}")),
    }
    let len = first[0].leading_zeros() as usize + 1;
    if len > 8 || (keep_marker && len > 4) {
        return Err("it holds a malformed element".into());
    }
    // The bits after the length marker (none left when it is the first byte's last).
    let low = (0xFFu32 >> len) as u8;
    let mut value = u64::from(if keep_marker {
        first[0]
    } else {
        first[0] & low
    });
    let mut all_ones = first[0] & low == low;
    let mut rest = [0u8; 8];
    r.read_exact(&mut rest[..len - 1])
        .map_err(|_| "it ends inside an element".to_string())?;
    for &b in &rest[..len - 1] {
        all_ones &= b == 0xFF;
        value = (value << 8) | u64::from(b);
    }
    Ok(Some(if !keep_marker && all_ones {
        u64::MAX
    } else {
        value
    }))
}

/// The files attached to a Matroska file, in their order. The file is untrusted: at most
/// [`MAX_ATTACHMENTS`] of at most [`MAX_ATTACHMENT_BYTES`] each, every size bounded by the
/// file's own; the segment's other elements are skipped by their sizes (a segment whose
/// clusters have no size is read up to them).
pub fn attachments(path: &Path) -> Result<Vec<Attachment>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let total = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    let mut r = std::io::BufReader::new(file);
    let mut found = Vec::new();
    let skip = |r: &mut std::io::BufReader<std::fs::File>, size: u64| -> Result<(), String> {
        let at = r.stream_position().map_err(|e| e.to_string())?;
        if size > total.saturating_sub(at) {
            return Err("an element runs past the end of the file".into());
        }
        r.seek(SeekFrom::Current(size as i64))
            .map(drop)
            .map_err(|e| e.to_string())
    };
    // The top level: the EBML header, then the segment.
    while let Some(id) = vint(&mut r, true)? {
        let size = vint(&mut r, false)?.ok_or("it ends inside an element")?;
        if id as u32 != SEGMENT {
            if size == u64::MAX {
                return Err("an element outside the segment has no size".into());
            }
            skip(&mut r, size)?;
            continue;
        }
        let end = match size {
            u64::MAX => total,
            size => r.stream_position().map_err(|e| e.to_string())? + size,
        };
        while r.stream_position().map_err(|e| e.to_string())? < end.min(total) {
            let Some(id) = vint(&mut r, true)? else { break };
            let size = vint(&mut r, false)?.ok_or("it ends inside an element")?;
            if size == u64::MAX {
                // A cluster written live: what follows cannot be skipped to.
                break;
            }
            if id as u32 != ATTACHMENTS {
                skip(&mut r, size)?;
                continue;
            }
            let list_end = r.stream_position().map_err(|e| e.to_string())? + size;
            while r.stream_position().map_err(|e| e.to_string())? < list_end {
                let id = vint(&mut r, true)?.ok_or("it ends inside its attachments")?;
                let size = vint(&mut r, false)?.ok_or("it ends inside its attachments")?;
                if id as u32 != ATTACHED_FILE {
                    skip(&mut r, size)?;
                    continue;
                }
                if found.len() == MAX_ATTACHMENTS {
                    return Err(format!("it has more than {MAX_ATTACHMENTS} attachments"));
                }
                if size > MAX_ATTACHMENT_BYTES + 4096 || size == u64::MAX {
                    return Err("one of its attachments is too large".into());
                }
                let mut body = vec![0u8; size as usize];
                r.read_exact(&mut body)
                    .map_err(|_| "it ends inside an attachment".to_string())?;
                found.push(attached_file(&body)?);
            }
        }
        break;
    }
    Ok(found)
}

/// One `AttachedFile` element's name, type and bytes.
fn attached_file(mut body: &[u8]) -> Result<Attachment, String> {
    let mut file = Attachment {
        name: String::new(),
        mime: String::new(),
        data: Vec::new(),
    };
    while !body.is_empty() {
        let id = vint(&mut body, true)?.ok_or("an attachment ends early")?;
        let size = vint(&mut body, false)?.ok_or("an attachment ends early")?;
        if size > body.len() as u64 {
            return Err("an attachment's element runs past it".into());
        }
        let (value, rest) = body.split_at(size as usize);
        let text =
            || String::from_utf8(value.to_vec()).map_err(|_| "an attachment's name is not text");
        match id as u32 {
            FILE_NAME => file.name = text()?,
            FILE_MIME => file.mime = text()?,
            FILE_DATA => {
                if size > MAX_ATTACHMENT_BYTES {
                    return Err("one of its attachments is too large".into());
                }
                file.data = value.to_vec();
            }
            _ => {}
        }
        body = rest;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_and_gops_are_counted_in_display_order() {
        let table = FrameTable {
            codec: "h264".into(),
            width: 64,
            height: 48,
            pix_fmt: "yuv420p".into(),
            reordered: true,
            times: vec![0.0, 0.033, 0.067, 0.1, 0.133],
            keys: vec![0, 4],
            name: None,
        };
        assert_eq!(table.key_before(3), Some(0));
        assert_eq!(table.key_before(4), Some(4));
        assert_eq!(table.longest_gop(), 4);
    }

    /// Encodes 12 frames of 64×48 test video with `codec_args` into a file in `dir`.
    fn encode(dir: &Path, name: &str, codec_args: &[&str]) -> std::path::PathBuf {
        let path = dir.join(name);
        let status = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=64x48:rate=25:duration=0.48")
            .args(codec_args)
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        path
    }

    #[tokio::test]
    async fn packets_read_as_ffprobe_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let h264 = ["-c:v", "libx264", "-g", "5", "-bf", "2"];
        let path = encode(dir.path(), "p.mkv", &h264);
        let ours = packets(&path).await.unwrap();
        let theirs = crate::apps::video::probe::packets(&path).await.unwrap();
        assert_eq!(ours.len(), 12);
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a.key, b.key);
            assert!(
                (a.pts.unwrap() - b.pts.unwrap()).abs() < 1e-9,
                "{a:?} {b:?}"
            );
        }
        assert!(packets(&dir.path().join("missing.mkv")).await.is_err());
    }

    #[test]
    fn attachments_read_as_ffmpeg_wrote_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jpg"), b"\xff\xd8\xffpicture").unwrap();
        std::fs::write(dir.path().join("b.bin"), vec![7u8; 70_000]).unwrap();
        let (a, b) = (dir.path().join("a.jpg"), dir.path().join("b.bin"));
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        let with = encode(
            dir.path(),
            "with.mkv",
            &[
                "-c:v",
                "libx264",
                "-attach",
                a,
                "-metadata:s:t:0",
                "mimetype=application/octet-stream",
                "-attach",
                b,
                "-metadata:s:t:1",
                "mimetype=application/x-test",
            ],
        );
        let found = attachments(&with).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].name.as_str(), found[0].mime.as_str()),
            ("a.jpg", "application/octet-stream")
        );
        assert_eq!(found[0].data, b"\xff\xd8\xffpicture");
        assert_eq!(
            (found[1].name.as_str(), found[1].data.len()),
            ("b.bin", 70_000)
        );
        let without = encode(dir.path(), "without.mkv", &["-c:v", "libx264"]);
        assert!(attachments(&without).unwrap().is_empty());
        // Cut short inside the attachments, or not Matroska at all: refused, never a panic.
        let bytes = std::fs::read(&with).unwrap();
        let at = bytes
            .windows(4)
            .position(|w| w == [0x19, 0x41, 0xA4, 0x69])
            .unwrap();
        std::fs::write(dir.path().join("cut.mkv"), &bytes[..at + 40]).unwrap();
        assert!(attachments(&dir.path().join("cut.mkv")).is_err());
        std::fs::write(dir.path().join("junk"), [0xFFu8; 64]).unwrap();
        assert!(attachments(&dir.path().join("junk")).is_err());
    }

    #[test]
    fn a_real_file_reads_as_ffmpeg_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let h264 = [
            "-c:v", "libx264", "-g", "5", "-bf", "2", "-pix_fmt", "yuv420p",
        ];
        let table = read(&encode(dir.path(), "a.mkv", &h264)).unwrap();
        assert_eq!(
            (table.codec.as_str(), table.width, table.height),
            ("h264", 64, 48)
        );
        assert_eq!(table.pix_fmt, "yuv420p");
        assert!(table.reordered, "B-frames are stored out of display order");
        assert_eq!(table.times.len(), 12);
        assert!((table.times[11] - 0.44).abs() < 1e-9, "{:?}", table.times);
        assert_eq!(table.keys, [0, 5, 10]);
        assert_eq!(table.longest_gop(), 5);

        let wide = ["-c:v", "libx264", "-pix_fmt", "yuv444p"];
        let table = read(&encode(dir.path(), "b.mkv", &wide)).unwrap();
        assert_eq!(table.pix_fmt, "yuv444p");
        for (name, args, codec) in [
            (
                "h.mkv",
                &["-c:v", "libx265", "-x265-params", "log-level=error"][..],
                "hevc",
            ),
            // SVT-AV1 takes nothing smaller than 64×64.
            (
                "av1.mkv",
                &["-c:v", "libsvtav1", "-vf", "scale=64:64"][..],
                "av1",
            ),
            (
                "v.mkv",
                &["-c:v", "libvpx-vp9", "-cpu-used", "8"][..],
                "vp9",
            ),
        ] {
            let mut args = args.to_vec();
            args.extend(["-pix_fmt", "yuv420p"]);
            let table = read(&encode(dir.path(), name, &args)).unwrap();
            assert_eq!(
                (table.codec.as_str(), table.pix_fmt.as_str()),
                (codec, "yuv420p")
            );
            assert_eq!(table.times.len(), 12, "{codec}");
            assert_eq!(table.keys.first(), Some(&0), "{codec}");
        }
        for (name, args, codec, format) in [
            (
                "h10.mkv",
                &[
                    "-c:v",
                    "libx265",
                    "-x265-params",
                    "log-level=error",
                    "-pix_fmt",
                    "yuv420p10le",
                ][..],
                "hevc",
                "yuv420p10",
            ),
            (
                "a10.mkv",
                &[
                    "-c:v",
                    "libsvtav1",
                    "-vf",
                    "scale=64:64",
                    "-pix_fmt",
                    "yuv420p10le",
                ][..],
                "av1",
                "yuv420p10",
            ),
            (
                "v444.mkv",
                &[
                    "-c:v",
                    "libvpx-vp9",
                    "-cpu-used",
                    "8",
                    "-pix_fmt",
                    "yuv444p",
                ][..],
                "vp9",
                "vp9 profile 1",
            ),
        ] {
            let table = read(&encode(dir.path(), name, args)).unwrap();
            assert_eq!(
                (table.codec.as_str(), table.pix_fmt.as_str()),
                (codec, format)
            );
        }
        let other = ["-c:v", "mpeg4"];
        let table = read(&encode(dir.path(), "c.mkv", &other)).unwrap();
        assert_eq!(table.codec, "V_MPEG4/ISO/ASP");
        assert!(!table.reordered);

        let mp4 = read(&encode(dir.path(), "d.mp4", &h264)).unwrap_err();
        assert!(mp4.contains("not a Matroska file"), "{mp4}");
        let audio_only = dir.path().join("e.mka");
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=0.2",
            ])
            .arg(&audio_only)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(read(&audio_only).unwrap_err(), "there is no video track");
    }

    /// An `avcC` record around one SPS NAL unit.
    fn avcc(sps: &[u8]) -> Vec<u8> {
        let mut out = vec![1, 100, 0, 40, 0xff, 0xe1];
        out.extend((sps.len() as u16).to_be_bytes());
        out.extend(sps);
        out
    }

    #[test]
    fn the_pixel_format_comes_from_the_sequence_parameter_set() {
        // High profile (100): sps id 0 (1), chroma 1 (010), luma depth +0 (1), ...
        assert_eq!(
            avc_pixel_format(&avcc(&[0x67, 100, 0, 40, 0b1010_1000])).as_deref(),
            Some("yuv420p")
        );
        // High 4:4:4 (244): chroma 3 (00100), separate planes 0, luma depth +2 (011).
        assert_eq!(
            avc_pixel_format(&avcc(&[0x67, 244, 0, 40, 0b1001_0000, 0b1100_0000])).as_deref(),
            Some("yuv444p10")
        );
        // Main profile (77): 4:2:0 at 8 bits, nothing more to read.
        assert_eq!(
            avc_pixel_format(&avcc(&[0x67, 77, 0, 30, 0x80])).as_deref(),
            Some("yuv420p")
        );
        // Not an SPS, or cut short.
        assert_eq!(avc_pixel_format(&avcc(&[0x68, 100, 0, 40, 0x80])), None);
        assert_eq!(avc_pixel_format(&avcc(&[0x67, 100, 0])), None);
        assert_eq!(avc_pixel_format(&[1, 100]), None);
    }

    #[test]
    fn emulation_prevention_bytes_are_skipped() {
        // profile 100, constraint 0, level 0 → "00 00 03" inside; then sps id 0, chroma 2,
        // luma depth +0.
        let sps = [0x67, 100, 0, 0, 3, 0b1011_1000];
        assert_eq!(avc_pixel_format(&avcc(&sps)).as_deref(), Some("yuv422p"));
    }
}
