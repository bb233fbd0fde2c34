//! Stills: a poster and thumbnails every N seconds of the output, with sprite sheets and a
//! WebVTT index for scrubbing.
//!
//! The devices make them, not the coordinator: each video task of the first rendition is told
//! which of its frames to picture (by their number among its own, so no clock is involved), and
//! writes each as a JPEG attached to its Matroska chunk. The validator pictures the same source
//! frame through the same filters and compares (luma PSNR at least [`MIN_STILL_PSNR`]: another
//! frame or a blank picture scores far under it); the attachments must be exactly the stills
//! asked. The assembler takes them out of the accepted chunks, tiles the thumbnails into sprite
//! sheets and times the index by the output's own frames.

use super::container::{Attachment, FrameTable, attachments};
use super::params::{Stills, still_size, upright};
use super::quality::{self, Plane};
use super::validate::{Window, decode_args, side_args};
use super::{last_lines, tool};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The poster's name in the output archive.
pub const POSTER: &str = "poster.jpg";
/// The folder of thumbnails, sprite sheets and their index in the output archive.
pub const THUMBNAILS: &str = "thumbnails";
/// The WebVTT index of the sprite sheets, in [`THUMBNAILS`].
pub const INDEX: &str = "thumbnails.vtt";
/// Media type a task gives the stills it attaches: not an image type, which FFmpeg would show
/// as another video stream of the chunk.
pub const STILL_MIME: &str = "application/octet-stream";
/// Lowest luma PSNR of a still against the frame it pictures, in dB. The task's JPEGs score
/// about 45 dB; the frame five frames away about 23 dB on moving test video.
pub const MIN_STILL_PSNR: f64 = 30.0;
/// Thumbnails across and down a sprite sheet, at most.
const SPRITE_SIDE: usize = 10;

/// One still a video task makes: the frame (numbered among the task's own, from 0), the file
/// it attaches, and its size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Still {
    pub frame: u64,
    pub name: String,
    pub width: u32,
    pub height: u32,
}

/// Which output frames the stills picture, for one job.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Frames a second of output, nominal.
    fps: f64,
    /// Seconds between thumbnails, and their size.
    thumbnails: Option<(f64, (u32, u32))>,
    /// The poster's frame (over the whole output) and size.
    poster: Option<(u64, (u32, u32))>,
    /// The filter turning frames upright, for a source shown rotated.
    pub upright: Option<&'static str>,
}

impl Plan {
    /// The plan for a job whose output runs `duration` seconds at `fps` in `frames` frames
    /// (expected), coded at `coded` (width, height) and shown turned by `rotation`; `None` when
    /// no still is asked for. A poster past the end is an error naming both times.
    pub fn new(
        stills: &Stills,
        fps: f64,
        duration: f64,
        frames: u64,
        coded: (u32, u32),
        rotation: i32,
    ) -> Result<Option<Plan>, String> {
        if !stills.any() {
            return Ok(None);
        }
        let turn = upright(rotation);
        let shown = if rotation.rem_euclid(180) == 90 {
            (coded.1, coded.0)
        } else {
            coded
        };
        let poster = match stills.poster {
            None => None,
            Some(at) if at > duration => {
                return Err(format!(
                    "the poster's time ({at} s) is past the video's end ({duration:.3} s)"
                ));
            }
            Some(at) => Some((
                ((at * fps).round() as u64).min(frames.saturating_sub(1)),
                shown,
            )),
        };
        Ok(Some(Plan {
            fps,
            thumbnails: stills
                .thumbnails
                .map(|t| (t.every, still_size(t.width, shown))),
            poster,
            upright: turn,
        }))
    }

    /// The output frame thumbnail `k` pictures.
    fn thumbnail_frame(&self, every: f64, k: u64) -> u64 {
        (k as f64 * every * self.fps).round() as u64
    }

    /// Thumbnails `k` whose frames are below `end`, each with its frame: one per frame (at
    /// fewer frames a second than thumbnails, the later of two on one frame is left out).
    fn thumbnails_before(&self, end: u64) -> Vec<(u64, u64)> {
        let Some((every, _)) = self.thumbnails else {
            return Vec::new();
        };
        let mut list: Vec<(u64, u64)> = Vec::new();
        for k in 0.. {
            let frame = self.thumbnail_frame(every, k);
            if frame >= end {
                break;
            }
            if list.last().is_none_or(|&(_, f)| f != frame) {
                list.push((k, frame));
            }
        }
        list
    }

    /// The stills of the task whose frames are `first..first + frames` of the output.
    pub fn for_chunk(&self, first: u64, frames: u64) -> Vec<Still> {
        let end = first + frames;
        let mut stills: Vec<Still> = match self.thumbnails {
            None => Vec::new(),
            Some((_, (width, height))) => self
                .thumbnails_before(end)
                .into_iter()
                .filter(|&(_, frame)| frame >= first)
                .map(|(k, frame)| Still {
                    frame: frame - first,
                    name: thumbnail_name(k),
                    width,
                    height,
                })
                .collect(),
        };
        if let Some((frame, (width, height))) = self.poster
            && (first..end).contains(&frame)
        {
            stills.push(Still {
                frame: frame - first,
                name: POSTER.into(),
                width,
                height,
            });
        }
        stills
    }

    /// What the job's facts keep, once its `frames` are counted: the thumbnails made (their
    /// interval, size and number) and the poster.
    pub fn facts(&self, frames: u64) -> serde_json::Value {
        let mut facts = serde_json::json!({});
        if let Some((every, (width, height))) = self.thumbnails {
            facts["thumbnails"] = serde_json::json!({
                "every": every, "width": width, "height": height,
                "count": self.thumbnails_before(frames).len(),
            });
        }
        if let Some((frame, (width, height))) = self.poster {
            facts["poster"] = serde_json::json!({
                "frame": frame, "width": width, "height": height,
            });
        }
        facts
    }
}

fn thumbnail_name(k: u64) -> String {
    format!("thumbnail-{k:05}.jpg")
}

/// A JPEG's width and height, from its frame header; `None` when it is not a JPEG.
fn jpeg_size(data: &[u8]) -> Option<(u32, u32)> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2;
    while at + 4 <= data.len() {
        if data[at] != 0xFF {
            return None;
        }
        let marker = data[at + 1];
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        // Start of frame (baseline, progressive...; not DHT, JPG or DAC).
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let header = data.get(at + 5..at + 9)?;
            let height = u16::from_be_bytes([header[0], header[1]]);
            let width = u16::from_be_bytes([header[2], header[3]]);
            return Some((u32::from(width), u32::from(height)));
        }
        if len < 2 {
            return None;
        }
        at += 2 + len;
    }
    None
}

/// Checks the stills a video result carries against the source chunk: `Ok(Some(reason))`
/// rejects the result, `Err` is the coordinator's trouble. `pictured` is the source chunk's
/// frame each of the task's frames pictures, `shape` the filters that made the result's frames
/// from the source's.
pub async fn check(
    result: &Path,
    source: &Path,
    source_table: &FrameTable,
    pictured: &[usize],
    meta: &serde_json::Value,
    shape: Option<&str>,
) -> Result<Option<String>, String> {
    let asked: Vec<Still> = serde_json::from_value(meta["stills"].clone()).unwrap_or_default();
    let path = result.to_path_buf();
    let found = match tokio::task::spawn_blocking(move || attachments(&path))
        .await
        .map_err(|e| format!("reading the chunk's attachments failed: {e}"))?
    {
        Ok(found) => found,
        Err(why) => {
            return Ok(Some(format!(
                "the chunk's attachments are unreadable: {why}"
            )));
        }
    };
    if let Some(extra) = found
        .iter()
        .find(|a| !asked.iter().any(|s| s.name == a.name))
    {
        return Ok(Some(format!(
            "the chunk carries a file nobody asked for: {:?}",
            extra.name
        )));
    }
    if asked.is_empty() {
        return Ok(None);
    }
    let dir = super::scratch().map_err(|e| e.to_string())?;
    for still in &asked {
        let mut copies = found.iter().filter(|a| a.name == still.name);
        let (Some(file), None) = (copies.next(), copies.next()) else {
            return Ok(Some(format!(
                "the chunk does not carry the still {:?} exactly once",
                still.name
            )));
        };
        if let Some(why) = check_one(
            file,
            still,
            source,
            source_table,
            pictured,
            meta,
            shape,
            dir.path(),
        )
        .await?
        {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// Checks one still against the source frame it pictures.
#[allow(clippy::too_many_arguments)]
async fn check_one(
    file: &Attachment,
    still: &Still,
    source: &Path,
    source_table: &FrameTable,
    pictured: &[usize],
    meta: &serde_json::Value,
    shape: Option<&str>,
    dir: &Path,
) -> Result<Option<String>, String> {
    let name = &still.name;
    if file.mime != STILL_MIME {
        return Ok(Some(format!("the still {name:?} is typed {:?}", file.mime)));
    }
    match jpeg_size(&file.data) {
        None => return Ok(Some(format!("the still {name:?} is not a JPEG"))),
        Some(size) if size != (still.width, still.height) => {
            return Ok(Some(format!(
                "the still {name:?} is {}x{}, not {}x{}",
                size.0, size.1, still.width, still.height
            )));
        }
        Some(_) => {}
    }
    let Some(&frame) = pictured
        .get(still.frame as usize)
        .filter(|&&f| f < source_table.times.len())
    else {
        return Err(format!(
            "the source chunk has no frame for {name:?} (the task's frame {})",
            still.frame
        ));
    };
    let jpeg = dir.join("still.jpg");
    std::fs::write(&jpeg, &file.data).map_err(|e| format!("writing a still: {e}"))?;
    let mut filters: Vec<String> = shape.map(String::from).into_iter().collect();
    if let Some(turn) = meta["upright"].as_str() {
        filters.push(turn.to_string());
    }
    filters.push(format!(
        "scale={}:{}:flags=bicubic",
        still.width, still.height
    ));
    let window = Window {
        from: frame,
        to: frame,
    };
    let source_side = side_args(source, source_table, &window, Some(&filters.join(",")));
    let still_side = (
        ["-f", "jpeg_pipe", "-i"]
            .into_iter()
            .map(String::from)
            .chain([jpeg.to_string_lossy().into_owned()])
            .collect(),
        "format=yuv420p,extractplanes=y".to_string(),
    );
    let (want, got) = (dir.join("source.y"), dir.join("still.y"));
    for old in [&want, &got] {
        // The previous still's.
        let _ = std::fs::remove_file(old);
    }
    let args = decode_args(&[
        (source_side.clone(), &want.to_string_lossy(), 1),
        (still_side, &got.to_string_lossy(), 1),
    ]);
    let size = still.width as usize * still.height as usize;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let both = tool("ffmpeg", &args).await;
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    let (want, got) = (read(&want), read(&got));
    if both.is_err() || want.len() != size || got.len() != size {
        // Whose fault: the source's side alone says.
        let alone = decode_args(&[(source_side, "pipe:1", 1)]);
        let alone: Vec<&str> = alone.iter().map(String::as_str).collect();
        return match crate::tools::run("ffmpeg", &alone).await {
            Ok((status, out, _)) if status.success() && out.len() == size => Ok(Some(format!(
                "the still {name:?} does not decode{}",
                both.err()
                    .map(|e| format!(": {}", last_lines(&e, 1)))
                    .unwrap_or_default()
            ))),
            _ => Err(format!(
                "the source chunk does not decode frame {frame} for {name:?}"
            )),
        };
    }
    let plane = |pixels| Plane {
        width: still.width as usize,
        pixels,
    };
    let psnr = quality::psnr(&plane(&want), &plane(&got), 1);
    if psnr < MIN_STILL_PSNR {
        return Ok(Some(format!(
            "the still {name:?} does not picture its frame ({psnr:.1} dB against it, at least \
             {MIN_STILL_PSNR} dB expected)"
        )));
    }
    // Close as a whole, but with something drawn over a corner of it.
    let block = quality::worst_block_psnr(&plane(&want), &plane(&got), 8);
    Ok(quality::drawn_over(psnr, block).then(|| {
        format!(
            "the still {name:?} has a patch unlike its frame (an 8x8 block at {block:.1} dB, the \
             picture at {psnr:.1} dB)"
        )
    }))
}

/// The stills of a job's accepted chunks (the first rendition's, in order), written into
/// `into` as the output archive holds them: the poster, each thumbnail, sprite sheets of at
/// most 10 × 10 thumbnails and their WebVTT index, timed by `times` (each output frame's
/// time, in order) and ending at `end` seconds.
pub async fn package(
    chunks: &[PathBuf],
    facts: &serde_json::Value,
    times: &[f64],
    end: f64,
    into: &Path,
) -> Result<(), String> {
    let stills = &facts["stills"];
    let folder = into.join(THUMBNAILS);
    let mut thumbnails: Vec<(u64, PathBuf)> = Vec::new();
    let mut poster = false;
    for chunk in chunks {
        let path = chunk.clone();
        let found = tokio::task::spawn_blocking(move || attachments(&path))
            .await
            .map_err(|e| e.to_string())??;
        for file in found {
            let path = if file.name == POSTER {
                poster = true;
                into.join(POSTER)
            } else {
                let k = file
                    .name
                    .strip_prefix("thumbnail-")
                    .and_then(|n| n.strip_suffix(".jpg"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| format!("an accepted chunk carries {:?}", file.name))?;
                std::fs::create_dir_all(&folder).map_err(|e| e.to_string())?;
                let path = folder.join(thumbnail_name(k));
                thumbnails.push((k, path.clone()));
                path
            };
            std::fs::write(&path, &file.data).map_err(|e| e.to_string())?;
        }
    }
    if stills["poster"].is_object() && !poster {
        return Err("no accepted chunk carries the poster".into());
    }
    let Some(every) = stills["thumbnails"]["every"].as_f64() else {
        return Ok(());
    };
    let expected = stills["thumbnails"]["count"].as_u64().unwrap_or(0) as usize;
    thumbnails.sort();
    if thumbnails.len() != expected {
        return Err(format!(
            "{} of the {expected} thumbnails are in the accepted chunks",
            thumbnails.len()
        ));
    }
    let width = stills["thumbnails"]["width"].as_u64().unwrap_or(0) as usize;
    let height = stills["thumbnails"]["height"].as_u64().unwrap_or(0) as usize;
    let fps = facts["fps"].as_f64().unwrap_or(25.0);
    // Each thumbnail's time: its frame's in the output.
    let time_of = |k: u64| {
        let frame = (k as f64 * every * fps).round() as usize;
        times.get(frame).copied().unwrap_or(end)
    };
    let mut index = String::from("WEBVTT\n");
    for (sheet, group) in thumbnails.chunks(SPRITE_SIDE * SPRITE_SIDE).enumerate() {
        let columns = group.len().min(SPRITE_SIDE);
        let rows = group.len().div_ceil(columns);
        let name = format!("sprite-{:03}.jpg", sheet + 1);
        let list = folder.join(format!("sprite-{}.txt", sheet + 1));
        let mut lines = String::new();
        for (_, path) in group {
            let _ = writeln!(lines, "file '{}'", path.display());
        }
        std::fs::write(&list, lines).map_err(|e| e.to_string())?;
        let tile = format!("tile={columns}x{rows}");
        let out = folder.join(&name);
        let list_arg = list.to_string_lossy().into_owned();
        let out_arg = out.to_string_lossy().into_owned();
        tool(
            "ffmpeg",
            &[
                "-nostdin",
                "-v",
                "error",
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                &list_arg,
                "-vf",
                &tile,
                "-frames:v",
                "1",
                "-c:v",
                "mjpeg",
                "-q:v",
                "3",
                "-pix_fmt",
                "yuvj420p",
                "-f",
                "image2",
                "-update",
                "1",
                &out_arg,
            ],
        )
        .await
        .map_err(|e| format!("tiling the thumbnails failed: {e}"))?;
        std::fs::remove_file(&list).map_err(|e| e.to_string())?;
        for (i, &(k, _)) in group.iter().enumerate() {
            let next = thumbnails
                .get(sheet * SPRITE_SIDE * SPRITE_SIDE + i + 1)
                .map_or(end, |&(k, _)| time_of(k));
            let (x, y) = ((i % columns) * width, (i / columns) * height);
            let _ = write!(
                index,
                "\n{} --> {}\n{name}#xywh={x},{y},{width},{height}\n",
                cue_time(time_of(k)),
                cue_time(next.max(time_of(k)))
            );
        }
    }
    std::fs::write(folder.join(INDEX), index).map_err(|e| e.to_string())
}

/// A WebVTT cue time: `HH:MM:SS.mmm`.
fn cue_time(seconds: f64) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::video::params::Thumbnails;

    fn plan(every: f64, poster: Option<f64>) -> Plan {
        let stills = Stills {
            thumbnails: Some(Thumbnails { every, width: 160 }),
            poster,
        };
        Plan::new(&stills, 25.0, 30.0, 750, (1280, 720), 0)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn each_chunk_pictures_its_own_frames() {
        let p = plan(10.0, Some(12.0));
        // Thumbnails at frames 0, 250, 500; the poster at frame 300.
        let first = p.for_chunk(0, 100);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].frame, first[0].name.as_str()),
            (0, "thumbnail-00000.jpg")
        );
        assert_eq!((first[0].width, first[0].height), (160, 90));
        let middle = p.for_chunk(200, 150);
        let names: Vec<_> = middle.iter().map(|s| (s.frame, s.name.as_str())).collect();
        assert_eq!(names, [(50, "thumbnail-00001.jpg"), (100, "poster.jpg")]);
        assert_eq!((middle[1].width, middle[1].height), (1280, 720));
        assert!(p.for_chunk(501, 249).is_empty());
        assert_eq!(p.facts(750)["thumbnails"]["count"], 3);
        // Every frame pictured once over any split.
        let split: usize = [(0, 333), (333, 1), (334, 416)]
            .iter()
            .map(|&(a, n)| p.for_chunk(a, n).len())
            .sum();
        assert_eq!(split, 4);
    }

    #[test]
    fn posters_stay_within_the_video_and_turn_upright() {
        let stills = Stills {
            thumbnails: None,
            poster: Some(31.0),
        };
        let late = Plan::new(&stills, 25.0, 30.0, 750, (1280, 720), 0).unwrap_err();
        assert!(late.contains("past the video's end"), "{late}");
        let end = Stills {
            poster: Some(30.0),
            ..stills
        };
        let p = Plan::new(&end, 25.0, 30.0, 750, (1280, 720), -90)
            .unwrap()
            .unwrap();
        assert_eq!(p.facts(750)["poster"]["frame"], 749);
        assert_eq!(p.facts(750)["poster"]["width"], 720);
        assert_eq!(p.upright, Some("transpose=clock"));
        assert!(
            Plan::new(&Stills::default(), 25.0, 30.0, 750, (1280, 720), 0)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn slow_videos_picture_a_frame_once() {
        let stills = Stills {
            thumbnails: Some(Thumbnails {
                every: 1.0,
                width: 160,
            }),
            poster: None,
        };
        let p = Plan::new(&stills, 0.5, 20.0, 10, (640, 360), 0)
            .unwrap()
            .unwrap();
        let frames: Vec<u64> = p.thumbnails_before(10).iter().map(|&(_, f)| f).collect();
        assert_eq!(frames, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn jpeg_sizes_and_cue_times_read_right() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=96x54",
                "-frames:v",
                "1",
            ])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(jpeg_size(&std::fs::read(&path).unwrap()), Some((96, 54)));
        assert_eq!(jpeg_size(b"\x89PNG...."), None);
        assert_eq!(jpeg_size(&[0xFF, 0xD8, 0xFF]), None);
        assert_eq!(cue_time(3725.5), "01:02:05.500");
        assert_eq!(cue_time(0.0), "00:00:00.000");
    }
}
