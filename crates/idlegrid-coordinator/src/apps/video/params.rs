//! The video app's parameters, in the terms transcoding customers know, checked when the job
//! is created and turned into encoder settings for the task script.
//!
//! ```json
//! {"preset": "720p", "crf": 23, "fps": 25, "x264_preset": "medium", "profile": "high", "level": "4.1",
//!  "bitrate": "3M", "maxrate": "4M", "bufsize": "8M",
//!  "video_codec": "h264", "speed": "medium", "container": "mp4",
//!  "audio_codec": "aac", "audio_tracks": "all", "subtitles": true,
//!  "audio_bitrate": "128k", "audio_channels": 2, "audio_sample_rate": 48000}
//! ```
//! `video_codec` is `h264` (x264), `hevc` (x265), `av1` (SVT-AV1), `vp9` (libvpx) or `copy`
//! (the video is carried over as it is: transmuxing). `speed` is the codec's own preset: x264's
//! and x265's names, SVT-AV1's 0 (slowest) to 13, libvpx's `cpu-used` 0 to 8. `container` is
//! `mp4`, `mov`, `mkv` or `webm`, with the codecs each can carry ([`check_combination`]).
//! `audio_codec` is `aac`, `opus` or `copy`; `audio_tracks` is `all`, `first` or a list of
//! languages (`["eng", "fra"]`).
//! `preset` (or `resolution`) is one of `1080p`, `720p`, `480p`, `360p`, `source` or `WxH`;
//! outputs are never upscaled and never larger than 1920×1080's pixel count.
//! `"target_quality": {"metric": "psnr", "value": 40}` (or `"psnr:40"`, `"ssim:0.97"`) has each
//! chunk search for the rate factor reaching that quality ([`QualityTarget`]) instead of `crf`.
//! `"loudness": -23` normalises every audio track to that integrated loudness (EBU R128, LUFS).
//! `"thumbnails": {"every": 10, "width": 160}` adds a thumbnail every 10 s of the output (and a
//! sprite sheet with a WebVTT index for scrubbing); `"poster": 5` a full-size picture of the
//! frame at 5 s ([`Stills`]). With either, the output is an archive of the video and them.
//! `"hls": true` asks for HLS instead of one MP4: a rendition ladder (`"ladder": ["720p",
//! "480p"]`, by default every standard height up to the output's) with a master playlist.

use serde::{Deserialize, Serialize};

/// Video codecs the grid encodes to, and `Copy` (the source's video carried over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 with x264.
    H264,
    /// HEVC with x265.
    Hevc,
    /// AV1 with SVT-AV1.
    Av1,
    /// VP9 with libvpx.
    Vp9,
    /// No encoding: the source's video stream is copied (transmuxing).
    Copy,
}

impl VideoCodec {
    /// The name customers use and the task script and the records see.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::Copy => "copy",
        }
    }

    /// FFmpeg's encoder for it.
    pub fn encoder(self) -> Option<&'static str> {
        match self {
            VideoCodec::H264 => Some("libx264"),
            VideoCodec::Hevc => Some("libx265"),
            VideoCodec::Av1 => Some("libsvtav1"),
            VideoCodec::Vp9 => Some("libvpx-vp9"),
            VideoCodec::Copy => None,
        }
    }

    /// The constant rate factors the encoder takes, and its default (about the same quality
    /// as x264's 23 on ordinary footage).
    fn crf_range(self) -> (u8, u8, u8) {
        match self {
            VideoCodec::H264 | VideoCodec::Copy => (0, 51, 23),
            VideoCodec::Hevc => (0, 51, 25),
            VideoCodec::Av1 => (1, 63, 35),
            VideoCodec::Vp9 => (0, 63, 35),
        }
    }

    /// The speed presets the encoder takes, slowest last for names, and its default.
    fn speeds(self) -> (&'static [&'static str], &'static str) {
        const SVT: [&str; 14] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13",
        ];
        const VPX: [&str; 9] = ["0", "1", "2", "3", "4", "5", "6", "7", "8"];
        match self {
            VideoCodec::H264 | VideoCodec::Hevc | VideoCodec::Copy => (&X264_PRESETS, "medium"),
            VideoCodec::Av1 => (&SVT, "8"),
            VideoCodec::Vp9 => (&VPX, "4"),
        }
    }
}

/// Output containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// MPEG-4 Part 14, with `+faststart`.
    Mp4,
    /// QuickTime.
    Mov,
    /// Matroska.
    Mkv,
    /// WebM (Matroska for VP9/AV1 with Opus).
    Webm,
}

impl Container {
    /// The name customers use, and the output's file extension.
    pub fn name(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mov => "mov",
            Container::Mkv => "mkv",
            Container::Webm => "webm",
        }
    }

    /// FFmpeg's muxer for it.
    pub fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mov => "mov",
            Container::Mkv => "matroska",
            Container::Webm => "webm",
        }
    }

    /// The container named `name` (as in the records' facts).
    pub fn from_name(name: &str) -> Option<Container> {
        [
            Container::Mp4,
            Container::Mov,
            Container::Mkv,
            Container::Webm,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    /// Whether it carries video coded with `codec` (FFmpeg's codec name, the source's when
    /// copying).
    pub fn carries_video(self, codec: &str) -> bool {
        match self {
            Container::Mkv => true,
            Container::Webm => matches!(codec, "vp9" | "av1" | "vp8"),
            Container::Mp4 => matches!(codec, "h264" | "hevc" | "av1" | "vp9" | "mpeg4"),
            Container::Mov => matches!(codec, "h264" | "hevc" | "mpeg4" | "prores" | "mjpeg"),
        }
    }

    /// Whether it carries audio coded with `codec` (FFmpeg's codec name).
    pub fn carries_audio(self, codec: &str) -> bool {
        match self {
            Container::Mkv => true,
            Container::Webm => matches!(codec, "opus" | "vorbis"),
            Container::Mp4 => matches!(codec, "aac" | "opus" | "mp3" | "ac3" | "eac3" | "alac"),
            Container::Mov => {
                matches!(codec, "aac" | "mp3" | "ac3" | "alac") || codec.starts_with("pcm_")
            }
        }
    }

    /// FFmpeg's codec for the subtitles it carries: text ones as mov_text or WebVTT, every
    /// kind as it is in Matroska.
    pub fn subtitle_codec(self) -> &'static str {
        match self {
            Container::Mp4 | Container::Mov => "mov_text",
            Container::Mkv => "copy",
            Container::Webm => "webvtt",
        }
    }
}

/// Audio codecs of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC-LC with FFmpeg's encoder.
    Aac,
    /// Opus with libopus.
    Opus,
    /// The source's audio carried over as it is.
    Copy,
}

impl AudioCodec {
    /// The name customers use, and FFmpeg's codec name.
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Opus => "opus",
            AudioCodec::Copy => "copy",
        }
    }

    /// FFmpeg's encoder for it.
    pub fn encoder(self) -> Option<&'static str> {
        match self {
            AudioCodec::Aac => Some("aac"),
            AudioCodec::Opus => Some("libopus"),
            AudioCodec::Copy => None,
        }
    }
}

/// Which of the source's audio tracks the output keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTracks {
    /// Every one, in order.
    All,
    /// The first only.
    First,
    /// Those in these languages (ISO 639-2 codes as the source tags them), in source order.
    Languages(Vec<String>),
}

impl AudioTracks {
    /// Whether the track tagged `language` (or untagged) at `position` is kept.
    pub fn keeps(&self, position: usize, language: Option<&str>) -> bool {
        match self {
            AudioTracks::All => true,
            AudioTracks::First => position == 0,
            AudioTracks::Languages(wanted) => {
                language.is_some_and(|l| wanted.iter().any(|w| w.eq_ignore_ascii_case(l)))
            }
        }
    }
}

/// Checks that `container` carries the codecs asked; the error names the valid choices.
pub fn check_combination(
    video: VideoCodec,
    audio: AudioCodec,
    container: Container,
) -> Result<(), String> {
    if video != VideoCodec::Copy && !container.carries_video(video.name()) {
        let fitting: Vec<&str> = [
            VideoCodec::H264,
            VideoCodec::Hevc,
            VideoCodec::Av1,
            VideoCodec::Vp9,
        ]
        .iter()
        .filter(|c| container.carries_video(c.name()))
        .map(|c| c.name())
        .collect();
        return Err(format!(
            "a {} file cannot carry {} video: choose {} (or another container)",
            container.name(),
            video.name(),
            fitting.join(", ")
        ));
    }
    if audio != AudioCodec::Copy && !container.carries_audio(audio.name()) {
        return Err(format!(
            "a {} file cannot carry {} audio: choose {}",
            container.name(),
            audio.name(),
            if container.carries_audio("aac") {
                "aac"
            } else {
                "opus"
            }
        ));
    }
    Ok(())
}

/// What the customer asked for, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoParams {
    /// Target frame size.
    pub resolution: Resolution,
    /// Encoder settings for every chunk.
    pub encoder: Encoder,
    /// Rendition heights of an HLS ladder, highest first; `None` for one MP4.
    pub hls_ladder: Option<Vec<u32>>,
    /// Output frame rate; `None` keeps the source's.
    pub fps: Option<f64>,
    /// The video codec.
    pub video_codec: VideoCodec,
    /// The output container (MP4 for HLS renditions).
    pub container: Container,
    /// The audio codec.
    pub audio_codec: AudioCodec,
    /// The audio tracks kept.
    pub audio_tracks: AudioTracks,
    /// Whether the source's subtitles are carried over (where the container takes them).
    pub subtitles: bool,
    /// An aspect ratio the picture is cropped or padded to, before it is scaled.
    pub framing: Option<Framing>,
    /// Whether the source is shown turned a quarter (its rotation metadata): an aspect ratio
    /// is the picture's as shown, so its coded frames take the inverse. Set once the source is
    /// probed.
    pub quarter_turn: bool,
    /// Thumbnails and a poster made beside the video.
    pub stills: Stills,
    /// A picture laid over every frame.
    pub watermark: Option<Watermark>,
}

/// How the picture reaches an aspect ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Cut to it, centred: part of the picture is lost.
    Crop,
    /// Black bars added, centred: all of the picture is kept.
    Pad,
}

/// An aspect ratio the output is made to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Width and height of the ratio as shown, e.g. 16 and 9.
    pub aspect: (u32, u32),
    /// Cropped or padded.
    pub fit: Fit,
}

/// The frame a source of `width`×`height` becomes before scaling (the crop, or the padded
/// canvas), both sides even: the ratio `aspect` (of coded frames) or as close as even sides
/// allow.
fn framed_size((width, height): (u32, u32), (a, b): (u32, u32), fit: Fit) -> (u32, u32) {
    let even = |x: f64| ((x / 2.0).round() as u32 * 2).max(2);
    let (w, h) = (f64::from(width), f64::from(height));
    let ratio = f64::from(a) / f64::from(b);
    let wider = w / h > ratio;
    match (fit, wider) {
        (Fit::Crop, true) => (even(h * ratio).min(width & !1), height & !1),
        (Fit::Crop, false) => (width & !1, even(w / ratio).min(height & !1)),
        (Fit::Pad, true) => (width & !1, even(w / ratio).max(height & !1)),
        (Fit::Pad, false) => (even(h * ratio).max(width & !1), height & !1),
    }
}

/// Heights of the default HLS ladder.
const LADDER: [u32; 4] = [1080, 720, 480, 360];
/// Seconds between keyframes (and so the HLS segment length) of HLS renditions.
pub const HLS_SEGMENT_SECONDS: f64 = 6.0;

/// Target frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The source's size (made even).
    Source,
    /// This height, width from the aspect ratio.
    Height(u32),
    /// Exactly this size (fitted, aspect kept, within the source).
    Exact(u32, u32),
}

/// Encoder settings the task script applies, sent to it in each chunk's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    /// Video codec (`h264`, `hevc`, `av1`, `vp9`); missing in tasks made before there was a
    /// choice, which were H.264.
    #[serde(default = "h264")]
    pub codec: String,
    /// The codec's speed preset (x264's and x265's names, SVT-AV1's and libvpx's numbers).
    pub preset: String,
    /// Constant rate factor, when not encoding to a bitrate (with `target`, where its search
    /// starts).
    pub crf: Option<u8>,
    /// A quality each chunk's rate factor is searched to reach, instead of `crf` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<QualityTarget>,
    /// Average bitrate, e.g. `3M`.
    pub bitrate: Option<String>,
    /// Peak bitrate with `bitrate`.
    pub maxrate: Option<String>,
    /// VBV buffer with `bitrate`.
    pub bufsize: Option<String>,
    /// H.264 profile.
    pub profile: Option<String>,
    /// H.264 level.
    pub level: Option<String>,
    /// Encoder threads: fixed, so the same chunk always gives the same bytes.
    pub threads: u32,
    /// Force a keyframe every this many seconds of each chunk (HLS renditions, so segments
    /// line up across the ladder).
    pub keyframe_seconds: Option<f64>,
    /// Audio codec (`aac`, `opus`); missing in tasks made before there was a choice (AAC).
    #[serde(default = "aac")]
    pub audio_codec: String,
    /// Audio bitrate, in bits per second.
    pub audio_bitrate: String,
    /// Audio channels.
    pub audio_channels: u32,
    /// Audio sample rate.
    pub audio_sample_rate: u32,
    /// Integrated loudness every audio track is normalised to (EBU R128, LUFS), in two passes
    /// in its task: measured, then brought there with one gain where the true peak allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness: Option<f64>,
    /// With `loudness`, the highest true peak (dBTP) the track may reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness_true_peak: Option<f64>,
}

/// Loudness targets a job may ask for, LUFS: EBU R128's broadcast level is -23, streaming
/// services use -14 to -16.
pub const LOUDNESS_TARGETS: (f64, f64) = (-36.0, -8.0);
/// The highest true peak a normalised track may reach, dBTP (EBU R128's limit).
pub const LOUDNESS_TRUE_PEAK: f64 = -1.0;

fn h264() -> String {
    "h264".into()
}

/// A quality a chunk's encode is searched to reach: the task encodes at a rate factor,
/// measures the chunk against its source, and tries another rate factor until the measure is
/// within [`TARGET_TOLERANCE`] of the target or [`TARGET_MAX_ENCODES`] encodes are spent,
/// keeping the encode nearest the target. Every step is deterministic, so replicas of a chunk
/// make the same choice and the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityTarget {
    /// `psnr`: the luma PSNR in dB (peak 255) of the chunk's frames together (from their mean
    /// squared error), as FFmpeg's `psnr` filter gives it; `ssim`: the mean luma SSIM of its
    /// frames, as FFmpeg's `ssim` filter gives it.
    pub metric: String,
    /// The target: dB for `psnr`, 0–1 for `ssim`.
    pub value: f64,
    /// Lowest rate factor the search may use (best quality).
    pub crf_low: u8,
    /// Highest rate factor the search may use.
    pub crf_high: u8,
    /// The steps the search's rate factors take: a quarter for x264 and x265, which take
    /// fractional rate factors (one whole step is up to a dB on noisy footage), one for
    /// SVT-AV1 and libvpx, which do not.
    pub crf_step: f64,
    /// Encodes a chunk may take at most.
    pub max_encodes: u8,
    /// The search stops at an encode this near the target (dB; SSIM as decibels).
    pub stop_within_db: f64,
    /// The search's first guess at how much the measure drops per rate factor step, in dB
    /// (SSIM is searched as `-10·log10(1 − SSIM)`).
    pub slope_db: f64,
}

/// How near the target (dB; SSIM as `-10·log10(1 − SSIM)`) a chunk's search stops.
pub const TARGET_TOLERANCE: f64 = 0.25;
/// Encodes a chunk's search takes at most.
pub const TARGET_MAX_ENCODES: u8 = 4;
/// PSNR targets a job may ask for, dB: below 25 no picture is worth keeping, above 55 an
/// encoder spends nearly lossless rates.
pub const PSNR_TARGETS: (f64, f64) = (25.0, 55.0);
/// SSIM targets a job may ask for.
pub const SSIM_TARGETS: (f64, f64) = (0.8, 0.995);

/// SSIM as decibels, the scale the search and the tolerance use for it.
pub fn ssim_db(ssim: f64) -> f64 {
    -10.0 * (1.0 - ssim).max(1e-10).log10()
}

/// The quality target from `target_quality`: `{"metric": "psnr", "value": 40}` or the short
/// form `"psnr:40"` (`"ssim:0.97"`).
fn quality_target(value: &serde_json::Value, codec: VideoCodec) -> Result<QualityTarget, String> {
    let wrong = || {
        "target_quality must be {\"metric\": \"psnr\" or \"ssim\", \"value\": N} or \
         \"psnr:40\" / \"ssim:0.97\""
            .to_string()
    };
    let (metric, target) = match value {
        serde_json::Value::String(s) => {
            let (m, v) = s.split_once(':').ok_or_else(wrong)?;
            (
                m.trim().to_string(),
                v.trim().parse::<f64>().map_err(|_| wrong())?,
            )
        }
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k != "metric" && k != "value") || map.len() != 2 {
                return Err(wrong());
            }
            (
                map["metric"].as_str().ok_or_else(wrong)?.to_string(),
                map["value"].as_f64().ok_or_else(wrong)?,
            )
        }
        _ => return Err(wrong()),
    };
    let (low, high, unit) = match metric.as_str() {
        "psnr" => (PSNR_TARGETS.0, PSNR_TARGETS.1, " dB"),
        "ssim" => (SSIM_TARGETS.0, SSIM_TARGETS.1, ""),
        other => {
            return Err(format!(
                "target_quality's metric must be psnr or ssim, got {other:?} (VMAF needs an \
                 FFmpeg built with libvmaf, which this grid's devices do not have)"
            ));
        }
    };
    if !(low..=high).contains(&target) {
        return Err(format!(
            "a {metric} target must be from {low}{unit} to {high}{unit}, got {target}"
        ));
    }
    let (crf_low, crf_high, crf_step, slope_db) = match codec {
        VideoCodec::Av1 | VideoCodec::Vp9 => (10, 60, 1.0, 0.25),
        _ => (10, 45, 0.25, 0.45),
    };
    Ok(QualityTarget {
        metric,
        value: target,
        crf_low,
        crf_high,
        crf_step,
        max_encodes: TARGET_MAX_ENCODES,
        stop_within_db: TARGET_TOLERANCE,
        slope_db,
    })
}

/// The watermark asked for, checked: a PNG of at most [`MAX_WATERMARK_BYTES`] in base64, and
/// its placement within bounds.
fn watermark(raw: RawWatermark) -> Result<Watermark, String> {
    use base64::Engine;
    let image = base64::engine::general_purpose::STANDARD
        .decode(raw.image.trim())
        .map_err(|e| format!("watermark's image must be a PNG in base64: {e}"))?;
    if !image.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err("watermark's image must be a PNG (in base64)".into());
    }
    if image.len() > MAX_WATERMARK_BYTES {
        return Err(format!(
            "watermark's image is {} bytes; at most {MAX_WATERMARK_BYTES} are taken (it goes \
             with every chunk)",
            image.len()
        ));
    }
    let share = |name: &str, value: Option<f64>, default: f64, (low, high): (f64, f64)| {
        let value = value.unwrap_or(default);
        if (low..=high).contains(&value) {
            Ok(value)
        } else {
            Err(format!(
                "watermark's {name} must be from {low} to {high}, got {value}"
            ))
        }
    };
    Ok(Watermark {
        image,
        position: choice(
            "watermark's position",
            raw.position.as_deref().unwrap_or("bottom-right"),
            &[
                ("top-left", Position::TopLeft),
                ("top-right", Position::TopRight),
                ("bottom-left", Position::BottomLeft),
                ("bottom-right", Position::BottomRight),
                ("center", Position::Center),
            ],
        )?,
        width: share("width", raw.width, 0.15, (0.02, 0.5))?,
        margin: share("margin", raw.margin, 0.03, (0.0, 0.2))?,
        opacity: share("opacity", raw.opacity, 0.8, (0.05, 1.0))?,
    })
}

fn aac() -> String {
    "aac".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    video_codec: Option<String>,
    container: Option<String>,
    speed: Option<serde_json::Value>,
    audio_codec: Option<String>,
    audio_tracks: Option<serde_json::Value>,
    subtitles: Option<bool>,
    preset: Option<String>,
    resolution: Option<String>,
    crf: Option<u8>,
    bitrate: Option<String>,
    maxrate: Option<String>,
    bufsize: Option<String>,
    x264_preset: Option<String>,
    profile: Option<String>,
    level: Option<String>,
    audio_bitrate: Option<String>,
    audio_channels: Option<u32>,
    audio_sample_rate: Option<u32>,
    hls: Option<bool>,
    ladder: Option<Vec<String>>,
    fps: Option<f64>,
    target_quality: Option<serde_json::Value>,
    loudness: Option<f64>,
    aspect: Option<String>,
    fit: Option<String>,
    thumbnails: Option<RawThumbnails>,
    poster: Option<f64>,
    watermark: Option<RawWatermark>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatermark {
    image: String,
    position: Option<String>,
    width: Option<f64>,
    margin: Option<f64>,
    opacity: Option<f64>,
}

/// A picture laid over every frame (a logo): a PNG, where it goes and how large, as shares of
/// the output's width so every rendition of a ladder shows it alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    /// The PNG's bytes.
    pub image: Vec<u8>,
    /// Where it goes.
    pub position: Position,
    /// Its width, as a share of the output's width.
    pub width: f64,
    /// Its distance from the edges, as a share of the output's width.
    pub margin: f64,
    /// 1 for opaque.
    pub opacity: f64,
}

/// Where a watermark goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
    Center,
}

/// Largest watermark image, in bytes: it travels with every task.
pub const MAX_WATERMARK_BYTES: usize = 32 * 1024;
/// The watermark's file name where a task (and the validator) reads it.
pub const WATERMARK_FILE: &str = "watermark.png";

impl Watermark {
    /// FFmpeg's filters laying the watermark, whose image is `image` (width, height) pixels,
    /// over a frame of `(w, h)`, after the filters before them (labelled `[main]`): scaled to
    /// its share of the width (within the frame, both sides even), at its position.
    pub fn filter(&self, image: (u32, u32), out: (u32, u32)) -> String {
        let (x, y, ow, oh) = self.place(image, out);
        format!(
            "[main];movie={WATERMARK_FILE},scale={ow}:{oh}:flags=bicubic,format=rgba,\
             colorchannelmixer=aa={:.3}[mark];[main][mark]overlay={x}:{y}",
            self.opacity
        )
    }

    /// Where the watermark, whose image is `image` pixels, lies in a frame of `(w, h)`: x, y,
    /// width and height.
    pub fn place(&self, image: (u32, u32), (w, h): (u32, u32)) -> (u32, u32, u32, u32) {
        let even = |x: f64| ((x / 2.0).round() as u32 * 2).max(2);
        let (iw, ih) = (f64::from(image.0.max(1)), f64::from(image.1.max(1)));
        let mut ow = even(f64::from(w) * self.width).min(w & !1);
        let mut oh = even(f64::from(ow) * ih / iw);
        if oh > (h & !1) {
            oh = h & !1;
            ow = even(f64::from(oh) * iw / ih).min(w & !1);
        }
        let m = (f64::from(w) * self.margin).round() as u32;
        let (left, right) = (m.min(w - ow), w.saturating_sub(ow + m));
        let (top, bottom) = (m.min(h - oh), h.saturating_sub(oh + m));
        let (x, y) = match self.position {
            Position::TopLeft => (left, top),
            Position::TopRight => (right, top),
            Position::BottomLeft => (left, bottom),
            Position::BottomRight => (right, bottom),
            Position::Center => ((w - ow) / 2, (h - oh) / 2),
        };
        (x, y, ow, oh)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThumbnails {
    every: f64,
    width: Option<u32>,
}

/// Pictures made from the output's frames beside the video, by the devices that encode them
/// (each chunk's task makes those of its frames) and checked like the video.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stills {
    /// A thumbnail every so many seconds, so wide.
    pub thumbnails: Option<Thumbnails>,
    /// The time of the frame shown as the poster, in seconds of the output.
    pub poster: Option<f64>,
}

/// Thumbnails for scrubbing: one every `every` seconds, `width` pixels wide (the height keeps
/// the picture's shape).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thumbnails {
    pub every: f64,
    pub width: u32,
}

/// Shortest and longest thumbnail interval (seconds), and narrowest and widest thumbnail.
pub const THUMBNAIL_EVERY: (f64, f64) = (1.0, 3600.0);
pub const THUMBNAIL_WIDTH: (u32, u32) = (32, 640);
/// Thumbnail width when none is given.
pub const DEFAULT_THUMBNAIL_WIDTH: u32 = 160;

impl Stills {
    /// Whether any still is asked for.
    pub fn any(&self) -> bool {
        self.thumbnails.is_some() || self.poster.is_some()
    }
}

/// The size of a still `width` wide of a picture shown at `shown` (width, height): the height
/// keeps its shape, both sides even.
pub fn still_size(width: u32, (w, h): (u32, u32)) -> (u32, u32) {
    let height = (f64::from(width) * f64::from(h) / f64::from(w.max(1)) / 2.0).round() as u32 * 2;
    (width, height.max(2))
}

/// FFmpeg's filter turning a coded frame upright for a still, from the source's display
/// rotation as FFprobe gives it (degrees; -90 is shown turned clockwise): the video keeps its
/// rotation as metadata, a picture has none.
pub fn upright(rotation: i32) -> Option<&'static str> {
    match (-rotation).rem_euclid(360) {
        90 => Some("transpose=clock"),
        180 => Some("hflip,vflip"),
        270 => Some("transpose=cclock"),
        _ => None,
    }
}

const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];
const PROFILES: [&str; 3] = ["baseline", "main", "high"];
const LEVELS: [&str; 16] = [
    "1", "1.1", "1.2", "1.3", "2", "2.1", "2.2", "3", "3.1", "3.2", "4", "4.1", "4.2", "5", "5.1",
    "5.2",
];
const SAMPLE_RATES: [u32; 6] = [22050, 24000, 32000, 44100, 48000, 96000];

/// Largest output frame, in pixels (1920×1080).
pub const MAX_PIXELS: u64 = 1920 * 1080;

/// Lowest and highest video bitrate a job may ask for, in bits per second: below the lowest no
/// picture survives at any size; above the highest is past what H.264's levels allow.
pub const VIDEO_BITRATE: (u64, u64) = (50_000, 100_000_000);
/// Lowest video bitrate per pixel and frame (bits): below it x264 gives blocks, not pictures,
/// and honest encodes would fail the validator's quality floor. Checked when the job is
/// created (for a resolution it names, at 24 fps) and again when the source's size and frame
/// rate are known.
pub const MIN_BITS_PER_PIXEL: f64 = 0.005;
/// AAC-LC bitrate per audio channel, bits per second: below the lowest the encoder gives
/// noise; above the highest (or past 6144 bits per channel per 1024-sample frame) it clamps.
pub const AUDIO_BITRATE_PER_CHANNEL: (u64, u64) = (16_000, 256_000);

/// Bits per second in a rate such as `800k`, `3M`, `2.5M` or `3000000`; `None` unless it is
/// written so and finite.
pub fn bits_per_second(value: &str) -> Option<f64> {
    let value = value.trim();
    let (digits, scale) = match value.as_bytes().last()? {
        b'k' | b'K' => (&value[..value.len() - 1], 1e3),
        b'm' | b'M' => (&value[..value.len() - 1], 1e6),
        _ => (value, 1.0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let bits = digits.parse::<f64>().ok()? * scale;
    bits.is_finite().then_some(bits)
}

/// The AAC-LC bitrates `channels` at `sample_rate` allow, bits per second.
fn aac_range(channels: u32, sample_rate: u32) -> (u64, u64) {
    let (low, high) = AUDIO_BITRATE_PER_CHANNEL;
    let frame_cap = 6144 * u64::from(sample_rate) / 1024;
    let channels = u64::from(channels);
    (low * channels, high.min(frame_cap) * channels)
}

/// Opus bitrates per channel, bits per second: libopus takes 6k to 256k a channel.
pub const OPUS_BITRATE_PER_CHANNEL: (u64, u64) = (6_000, 256_000);
/// Sample rates Opus encodes at (it decodes to 48 kHz whatever it was given).
const OPUS_SAMPLE_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];

/// A codec's name from the parameter `name`, one of `choices`.
fn choice<T: Copy>(name: &str, value: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            format!("{name} must be one of {}, got {value:?}", names.join(", "))
        })
}

/// The audio tracks asked for: `all`, `first` or a list of 2- or 3-letter language codes.
fn audio_tracks(value: Option<&serde_json::Value>) -> Result<AudioTracks, String> {
    let wrong = || {
        "audio_tracks must be \"all\", \"first\" or a list of language codes such as \
         [\"eng\", \"fra\"]"
            .to_string()
    };
    match value {
        None => Ok(AudioTracks::All),
        Some(serde_json::Value::String(s)) if s == "all" => Ok(AudioTracks::All),
        Some(serde_json::Value::String(s)) if s == "first" => Ok(AudioTracks::First),
        Some(serde_json::Value::Array(list)) if !list.is_empty() && list.len() <= 32 => {
            let mut languages = Vec::new();
            for item in list {
                match item.as_str() {
                    Some(l)
                        if (2..=3).contains(&l.len())
                            && l.bytes().all(|b| b.is_ascii_alphabetic()) =>
                    {
                        languages.push(l.to_ascii_lowercase());
                    }
                    _ => return Err(wrong()),
                }
            }
            Ok(AudioTracks::Languages(languages))
        }
        Some(_) => Err(wrong()),
    }
}

/// Human form of a bitrate, as customers write it.
fn human_rate(bits: u64) -> String {
    if bits >= 1_000_000 && bits.is_multiple_of(100_000) {
        format!("{}M", bits as f64 / 1e6)
    } else {
        format!("{}k", bits.div_ceil(1000))
    }
}

/// Checks a rate parameter against `range` (bits per second) and returns it in plain bits per
/// second, the form FFmpeg is given.
fn rate(name: &str, value: &str, (low, high): (u64, u64)) -> Result<u64, String> {
    let bits = bits_per_second(value)
        .ok_or_else(|| format!("{name} must look like 800k or 3M, got {value:?}"))?;
    if !(low as f64..=high as f64).contains(&bits) {
        return Err(format!(
            "{name} must be from {} to {}, got {value:?}",
            human_rate(low),
            human_rate(high)
        ));
    }
    Ok(bits.round() as u64)
}

/// The lowest video bitrate that gives pictures at `width`×`height` and `fps`.
pub fn min_video_bitrate(width: u32, height: u32, fps: f64) -> u64 {
    let floor = f64::from(width) * f64::from(height) * fps * MIN_BITS_PER_PIXEL;
    (floor.ceil() as u64).max(VIDEO_BITRATE.0)
}

fn resolution(value: &str) -> Result<Resolution, String> {
    let height = |h: u32| Ok(Resolution::Height(h));
    match value {
        "source" => Ok(Resolution::Source),
        "1080p" => height(1080),
        "720p" => height(720),
        "480p" => height(480),
        "360p" => height(360),
        other => {
            let parsed = other
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)));
            match parsed {
                Some((w, h)) if (16..=1920).contains(&w) && (16..=1920).contains(&h) => {
                    Ok(Resolution::Exact(w, h))
                }
                _ => Err(format!(
                    "resolution must be 1080p, 720p, 480p, 360p, source or WxH (16..1920 each), got {other:?}"
                )),
            }
        }
    }
}

impl VideoParams {
    /// Checks the customer's parameters; the error names the offending one.
    pub fn parse(params: &serde_json::Value) -> Result<VideoParams, String> {
        let raw: Raw =
            serde_json::from_value(params.clone()).map_err(|e| format!("video parameters: {e}"))?;
        if raw.preset.is_some() && raw.resolution.is_some() {
            return Err("give either preset or resolution, not both".into());
        }
        let resolution = resolution(
            raw.preset
                .as_deref()
                .or(raw.resolution.as_deref())
                .unwrap_or("source"),
        )?;
        let video_codec = choice(
            "video_codec",
            raw.video_codec.as_deref().unwrap_or("h264"),
            &[
                ("h264", VideoCodec::H264),
                ("hevc", VideoCodec::Hevc),
                ("av1", VideoCodec::Av1),
                ("vp9", VideoCodec::Vp9),
                ("copy", VideoCodec::Copy),
            ],
        )?;
        let hls = raw.hls.unwrap_or(false);
        if hls && raw.container.is_some() {
            return Err(
                "container does not go with \"hls\": true (HLS is a tar of playlists and \
                 segments)"
                    .into(),
            );
        }
        let container = choice(
            "container",
            raw.container.as_deref().unwrap_or("mp4"),
            &[
                ("mp4", Container::Mp4),
                ("mov", Container::Mov),
                ("mkv", Container::Mkv),
                ("webm", Container::Webm),
            ],
        )?;
        let audio_codec = choice(
            "audio_codec",
            raw.audio_codec.as_deref().unwrap_or(
                // The codec the container takes when none is named.
                if container == Container::Webm {
                    "opus"
                } else {
                    "aac"
                },
            ),
            &[
                ("aac", AudioCodec::Aac),
                ("opus", AudioCodec::Opus),
                ("copy", AudioCodec::Copy),
            ],
        )?;
        check_combination(video_codec, audio_codec, container)?;
        let audio_tracks = audio_tracks(raw.audio_tracks.as_ref())?;
        if video_codec == VideoCodec::Copy {
            let set: Vec<&str> = [
                ("preset", raw.preset.is_some()),
                ("resolution", raw.resolution.is_some()),
                ("crf", raw.crf.is_some()),
                ("bitrate", raw.bitrate.is_some()),
                ("speed", raw.speed.is_some()),
                ("x264_preset", raw.x264_preset.is_some()),
                ("profile", raw.profile.is_some()),
                ("level", raw.level.is_some()),
                ("fps", raw.fps.is_some()),
                ("target_quality", raw.target_quality.is_some()),
                ("aspect", raw.aspect.is_some()),
                ("thumbnails", raw.thumbnails.is_some()),
                ("poster", raw.poster.is_some()),
                ("watermark", raw.watermark.is_some()),
                ("hls", hls),
            ]
            .iter()
            .filter(|(_, given)| *given)
            .map(|(name, _)| *name)
            .collect();
            if !set.is_empty() {
                return Err(format!(
                    "video_codec copy carries the video over as it is: {} cannot apply",
                    set.join(", ")
                ));
            }
        }
        let (crf_low, crf_high, crf_default) = video_codec.crf_range();
        if let Some(crf) = raw.crf
            && !(crf_low..=crf_high).contains(&crf)
        {
            return Err(format!(
                "crf must be from {crf_low} to {crf_high} for {}, got {crf}",
                video_codec.name()
            ));
        }
        let bitrate = raw
            .bitrate
            .as_deref()
            .map(|b| rate("bitrate", b, VIDEO_BITRATE))
            .transpose()?;
        if bitrate.is_some() && raw.crf.is_some() {
            return Err("give either crf or bitrate, not both".into());
        }
        let target = match &raw.target_quality {
            None => None,
            Some(_) if raw.crf.is_some() || bitrate.is_some() => {
                return Err(
                    "target_quality picks each chunk's rate factor: give it without crf or \
                     bitrate"
                        .into(),
                );
            }
            Some(value) => Some(quality_target(value, video_codec)?),
        };
        if bitrate.is_none() && (raw.maxrate.is_some() || raw.bufsize.is_some()) {
            return Err("maxrate and bufsize go with bitrate".into());
        }
        let maxrate = match (bitrate, raw.maxrate.as_deref()) {
            (Some(b), Some(m)) => {
                let max = rate("maxrate", m, VIDEO_BITRATE)?;
                if max < b {
                    return Err(format!(
                        "maxrate ({m}) must be at least the bitrate ({})",
                        human_rate(b)
                    ));
                }
                Some(max)
            }
            (Some(b), None) => Some(b),
            _ => None,
        };
        let bufsize = match (bitrate, raw.bufsize.as_deref()) {
            // A buffer of a tenth of a second to a minute of the peak rate.
            (Some(_), Some(s)) => Some(rate(
                "bufsize",
                s,
                (VIDEO_BITRATE.0 / 10, 60 * VIDEO_BITRATE.1),
            )?),
            (Some(_), None) => maxrate,
            _ => None,
        };
        if let (Some(b), Resolution::Height(h)) = (bitrate, resolution) {
            // The smallest frame a height can give (4:3), at a film's frame rate.
            let floor = min_video_bitrate(h * 4 / 3, h, 24.0);
            if b < floor {
                return Err(format!(
                    "bitrate {} is too low for {h}p: at least {} is needed for a picture",
                    human_rate(b),
                    human_rate(floor)
                ));
            }
        }
        if raw.x264_preset.is_some() && video_codec != VideoCodec::H264 {
            return Err(format!(
                "x264_preset is for h264; give {} its speed as speed",
                video_codec.name()
            ));
        }
        if raw.x264_preset.is_some() && raw.speed.is_some() {
            return Err("give either speed or x264_preset, not both".into());
        }
        let (speeds, default_speed) = video_codec.speeds();
        let (speed_name, speed) = match (&raw.x264_preset, &raw.speed) {
            (Some(p), _) => ("x264_preset", p.clone()),
            (None, Some(serde_json::Value::String(s))) => ("speed", s.clone()),
            (None, Some(serde_json::Value::Number(n))) => ("speed", n.to_string()),
            (None, Some(other)) => ("speed", other.to_string()),
            (None, None) => ("speed", default_speed.to_string()),
        };
        if !speeds.contains(&speed.as_str()) {
            return Err(format!(
                "{speed_name} for {} must be one of {}, got {speed:?}",
                video_codec.name(),
                speeds.join(", ")
            ));
        }
        if video_codec != VideoCodec::H264 && (raw.profile.is_some() || raw.level.is_some()) {
            return Err(format!(
                "profile and level are H.264's; {} uses the encoder's own",
                video_codec.name()
            ));
        }
        if let Some(p) = &raw.profile
            && !PROFILES.contains(&p.as_str())
        {
            return Err(format!("profile must be baseline, main or high, got {p:?}"));
        }
        if let Some(l) = &raw.level
            && !LEVELS.contains(&l.as_str())
        {
            return Err(format!(
                "level must be an H.264 level such as 4.1, got {l:?}"
            ));
        }
        let audio_channels = raw.audio_channels.unwrap_or(2);
        if !(1..=8).contains(&audio_channels) {
            return Err(format!(
                "audio_channels must be from 1 to 8, got {audio_channels}"
            ));
        }
        let audio_sample_rate = raw.audio_sample_rate.unwrap_or(48_000);
        let rates: &[u32] = if audio_codec == AudioCodec::Opus {
            &OPUS_SAMPLE_RATES
        } else {
            &SAMPLE_RATES
        };
        if !rates.contains(&audio_sample_rate) {
            return Err(format!(
                "audio_sample_rate must be one of {rates:?}{}, got {audio_sample_rate}",
                if audio_codec == AudioCodec::Opus {
                    " for opus"
                } else {
                    ""
                }
            ));
        }
        if audio_codec == AudioCodec::Copy
            && (raw.audio_bitrate.is_some()
                || raw.audio_channels.is_some()
                || raw.audio_sample_rate.is_some())
        {
            return Err(
                "audio_codec copy carries the sound over as it is: audio_bitrate, \
                 audio_channels and audio_sample_rate cannot apply"
                    .into(),
            );
        }
        if let Some(lufs) = raw.loudness {
            if audio_codec == AudioCodec::Copy {
                return Err(
                    "loudness normalisation re-encodes the sound: it cannot go with audio_codec \
                     copy"
                        .into(),
                );
            }
            let (low, high) = LOUDNESS_TARGETS;
            if !(low..=high).contains(&lufs) {
                return Err(format!(
                    "loudness must be from {low} to {high} LUFS (EBU R128 broadcast: -23, \
                     streaming: -14 to -16), got {lufs}"
                ));
            }
        }
        let (audio_range, audio_format) = match audio_codec {
            AudioCodec::Opus => {
                let (low, high) = OPUS_BITRATE_PER_CHANNEL;
                let channels = u64::from(audio_channels);
                ((low * channels, high * channels), "Opus")
            }
            _ => (aac_range(audio_channels, audio_sample_rate), "AAC-LC"),
        };
        let audio_bitrate = match raw.audio_bitrate.as_deref() {
            None => 128_000.min(audio_range.1),
            Some(b) => rate("audio_bitrate", b, audio_range).map_err(|e| {
                format!(
                    "{e} ({audio_format} for {audio_channels} channel(s) at {audio_sample_rate} Hz)"
                )
            })?,
        };
        let hls_ladder = match (hls, raw.ladder) {
            (false, None) => None,
            (false, Some(_)) => return Err("ladder goes with \"hls\": true".into()),
            (true, None) => Some(LADDER.to_vec()),
            (true, Some(names)) => {
                let mut heights = Vec::new();
                for name in &names {
                    match self::resolution(name)? {
                        Resolution::Height(h) => heights.push(h),
                        _ => {
                            return Err(format!(
                                "ladder entries must be 1080p, 720p, 480p or 360p, got {name:?}"
                            ));
                        }
                    }
                }
                heights.sort_unstable_by(|a, b| b.cmp(a));
                heights.dedup();
                if heights.is_empty() {
                    return Err("the ladder is empty".into());
                }
                Some(heights)
            }
        };
        if let Some(fps) = raw.fps
            && !(1.0..=120.0).contains(&fps)
        {
            return Err(format!("fps must be from 1 to 120, got {fps}"));
        }
        let framing = match (raw.aspect.as_deref(), raw.fit.as_deref()) {
            (None, None) => None,
            (None, Some(_)) => return Err("fit goes with aspect".into()),
            (Some(aspect), fit) => {
                let wrong = || {
                    format!(
                        "aspect must be W:H such as 16:9, 1:1 or 9:16 (each 1 to 100, at most 4 \
                         times wider or taller), got {aspect:?}"
                    )
                };
                let (a, b) = aspect
                    .split_once(':')
                    .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                    .ok_or_else(wrong)?;
                if !(1..=100).contains(&a) || !(1..=100).contains(&b) || a > 4 * b || b > 4 * a {
                    return Err(wrong());
                }
                let fit = choice(
                    "fit",
                    fit.unwrap_or("pad"),
                    &[("crop", Fit::Crop), ("pad", Fit::Pad)],
                )?;
                Some(Framing {
                    aspect: (a, b),
                    fit,
                })
            }
        };
        let thumbnails = match raw.thumbnails {
            None => None,
            Some(RawThumbnails { every, width }) => {
                let (low, high) = THUMBNAIL_EVERY;
                if !(low..=high).contains(&every) {
                    return Err(format!(
                        "thumbnails' every must be from {low} to {high} seconds, got {every}"
                    ));
                }
                let width = width.unwrap_or(DEFAULT_THUMBNAIL_WIDTH);
                let (narrow, wide) = THUMBNAIL_WIDTH;
                if !(narrow..=wide).contains(&width) || width % 2 == 1 {
                    return Err(format!(
                        "thumbnails' width must be an even number of pixels from {narrow} to \
                         {wide}, got {width}"
                    ));
                }
                Some(Thumbnails { every, width })
            }
        };
        if let Some(at) = raw.poster
            && !(at >= 0.0 && at.is_finite())
        {
            return Err(format!(
                "poster is the time of its frame in seconds (0 or more), got {at}"
            ));
        }
        let watermark = raw.watermark.map(watermark).transpose()?;
        Ok(VideoParams {
            watermark,
            stills: Stills {
                thumbnails,
                poster: raw.poster,
            },
            framing,
            quarter_turn: false,
            fps: raw.fps,
            hls_ladder: hls_ladder.clone(),
            resolution,
            video_codec,
            container,
            audio_codec,
            audio_tracks,
            subtitles: raw.subtitles.unwrap_or(true),
            encoder: Encoder {
                codec: video_codec.name().into(),
                preset: speed,
                crf: if bitrate.is_none() {
                    Some(raw.crf.unwrap_or(crf_default))
                } else {
                    None
                },
                target,
                bitrate: bitrate.map(|b| b.to_string()),
                maxrate: maxrate.map(|b| b.to_string()),
                bufsize: bufsize.map(|b| b.to_string()),
                profile: raw.profile,
                level: raw.level,
                threads: 2,
                keyframe_seconds: hls_ladder.map(|_| HLS_SEGMENT_SECONDS),
                audio_codec: audio_codec.name().into(),
                audio_bitrate: audio_bitrate.to_string(),
                audio_channels,
                audio_sample_rate,
                loudness: raw.loudness,
                loudness_true_peak: raw.loudness.map(|_| LOUDNESS_TRUE_PEAK),
            },
        })
    }

    /// FFmpeg encoders the job's tasks use: a device is offered its chunks only with all.
    pub fn encoders(&self) -> Vec<String> {
        [self.video_codec.encoder(), self.audio_codec.encoder()]
            .into_iter()
            .flatten()
            .map(String::from)
            .collect()
    }

    /// Checks what depends on the source: a bitrate too low for the output's largest frame at
    /// the output's frame rate (`fps` is the source's, unless the job sets one).
    pub fn check_for_source(&self, width: u32, height: u32, fps: f64) -> Result<(), String> {
        if self.video_codec == VideoCodec::Av1 {
            let (w, h) = self.target_size(width, height);
            if w < 64 || h < 64 {
                return Err(format!(
                    "SVT-AV1 encodes frames of at least 64x64; this output would be {w}x{h}: \
                     choose a larger resolution or another codec"
                ));
            }
        }
        let Some(bits) = self.encoder.bitrate.as_deref().and_then(bits_per_second) else {
            return Ok(());
        };
        let (w, h) = self.target_size(width, height);
        let fps = self.fps.unwrap_or(fps);
        let floor = min_video_bitrate(w, h, fps);
        if (bits as u64) < floor {
            return Err(format!(
                "bitrate {} is too low for {w}x{h} at {fps:.3} fps: at least {} is needed for a \
                 picture; ask for a higher bitrate or a lower resolution",
                human_rate(bits as u64),
                human_rate(floor)
            ));
        }
        Ok(())
    }

    /// The frame a source of `width`×`height` (coded) becomes before scaling: itself, or cropped
    /// or padded to the aspect ratio asked.
    pub fn framed(&self, width: u32, height: u32) -> (u32, u32) {
        match self.framing {
            None => (width, height),
            Some(Framing {
                aspect: (a, b),
                fit,
            }) => {
                let aspect = if self.quarter_turn { (b, a) } else { (a, b) };
                framed_size((width, height), aspect, fit)
            }
        }
    }

    /// [`VideoParams::geometry`], then the watermark laid over the frame, when one is asked for
    /// (its image `mark` pixels): the frame is scaled to `out` first even when it is that size.
    pub fn shape(
        &self,
        source: (u32, u32),
        out: (u32, u32),
        mark: Option<(u32, u32)>,
    ) -> Option<String> {
        let framed = self.geometry(source, out);
        match (&self.watermark, mark) {
            (Some(watermark), Some(image)) => Some(format!(
                "{}{}",
                framed.unwrap_or_else(|| format!("scale={}:{}:flags=bicubic", out.0, out.1)),
                watermark.filter(image, out)
            )),
            _ => framed,
        }
    }

    /// FFmpeg's filters making an output frame of `out` from a source frame of `width`×
    /// `height`, when the picture is framed to an aspect ratio (the crop then the scale, or the
    /// scale then the padding, centred on even pixels); `None` when it is only scaled. The task
    /// script encodes what they make and the validator compares with what they make.
    pub fn geometry(&self, (width, height): (u32, u32), (w, h): (u32, u32)) -> Option<String> {
        let framing = self.framing?;
        let (fw, fh) = self.framed(width, height);
        let half_even = |x: u32| x / 4 * 2;
        Some(match framing.fit {
            Fit::Crop => format!(
                "crop={fw}:{fh}:{}:{},scale={w}:{h}:flags=bicubic",
                half_even(width - fw),
                half_even(height - fh)
            ),
            Fit::Pad => {
                // The picture's share of the canvas, at the output's scale.
                let even = |x: f64| ((x / 2.0).round() as u32 * 2).max(2);
                let iw = even(f64::from(width) * f64::from(w) / f64::from(fw)).min(w);
                let ih = even(f64::from(height) * f64::from(h) / f64::from(fh)).min(h);
                format!(
                    "scale={iw}:{ih}:flags=bicubic,pad={w}:{h}:{}:{}:black",
                    half_even(w - iw),
                    half_even(h - ih)
                )
            }
        })
    }

    /// Output frame sizes: one for an MP4, the ladder's (distinct, highest first) for HLS.
    pub fn output_sizes(&self, width: u32, height: u32) -> Vec<(u32, u32)> {
        let top = self.target_size(width, height);
        let Some(ladder) = &self.hls_ladder else {
            return vec![top];
        };
        let mut sizes: Vec<(u32, u32)> = ladder
            .iter()
            .map(|&h| {
                let rung = VideoParams {
                    resolution: Resolution::Height(h),
                    ..self.clone()
                };
                let size = rung.target_size(width, height);
                if size.1 > top.1 { top } else { size }
            })
            .collect();
        sizes.dedup();
        sizes
    }

    /// The output frame size for a source of `width`×`height` (as displayed): never upscaled,
    /// at most 1080p's pixel count, aspect ratio kept, both sides even (H.264 4:2:0).
    pub fn target_size(&self, width: u32, height: u32) -> (u32, u32) {
        let (width, height) = self.framed(width, height);
        let (w, h) = (f64::from(width), f64::from(height));
        let mut scale: f64 = match self.resolution {
            Resolution::Source => 1.0,
            Resolution::Height(target) => f64::from(target) / h,
            Resolution::Exact(tw, th) => (f64::from(tw) / w).min(f64::from(th) / h),
        };
        scale = scale.min(1.0).min((MAX_PIXELS as f64 / (w * h)).sqrt());
        let even = |x: f64| ((x / 2.0).floor() as u32 * 2).max(2);
        (even(w * scale), even(h * scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn watermarks_are_checked_and_placed() {
        use base64::Engine;
        let p = |v: serde_json::Value| VideoParams::parse(&v);
        let png = |bytes: &[u8]| {
            let mut image = b"\x89PNG\r\n\x1a\n".to_vec();
            image.extend(bytes);
            base64::engine::general_purpose::STANDARD.encode(image)
        };
        let ok = p(
            json!({"watermark": {"image": png(b"x"), "position": "top-right",
                                        "width": 0.25, "opacity": 1}}),
        )
        .unwrap();
        let mark = ok.watermark.clone().unwrap();
        assert_eq!(
            (mark.position, mark.width, mark.margin),
            (Position::TopRight, 0.25, 0.03)
        );
        // 80x40 from a 40x20 picture on 320x240, 10 pixels in from the top and right.
        assert_eq!(
            ok.shape((320, 240), (320, 240), Some((40, 20))).unwrap(),
            "scale=320:240:flags=bicubic[main];movie=watermark.png,scale=80:40:flags=bicubic,\
             format=rgba,colorchannelmixer=aa=1.000[mark];[main][mark]overlay=230:10"
        );
        // A tall picture is kept within the frame; centred.
        let tall = p(
            json!({"watermark": {"image": png(b"x"), "position": "center",
                                          "width": 0.5}}),
        )
        .unwrap();
        let shape = tall.shape((640, 360), (640, 360), Some((10, 100))).unwrap();
        assert!(shape.ends_with("scale=36:360:flags=bicubic,format=rgba,colorchannelmixer=aa=0.800[mark];[main][mark]overlay=302:0"), "{shape}");
        // Framed pictures are framed first.
        let framed = p(json!({"aspect": "16:9", "fit": "crop",
                              "watermark": {"image": png(b"x")}}))
        .unwrap();
        assert!(
            framed
                .shape((320, 240), (320, 180), Some((40, 20)))
                .unwrap()
                .starts_with("crop=320:180:0:30,scale=320:180:flags=bicubic[main];")
        );
        assert_eq!(
            p(json!({})).unwrap().shape((320, 240), (320, 240), None),
            None
        );
        for (params, says) in [
            (
                json!({"watermark": {"image": "not base64!"}}),
                "PNG in base64",
            ),
            (
                json!({"watermark": {"image": base64::engine::general_purpose::STANDARD.encode(b"GIF89a")}}),
                "must be a PNG",
            ),
            (
                json!({"watermark": {"image": png(&vec![0u8; MAX_WATERMARK_BYTES])}}),
                "at most 32768",
            ),
            (
                json!({"watermark": {"image": png(b"x"), "width": 0.9}}),
                "width must be from 0.02 to 0.5",
            ),
            (
                json!({"watermark": {"image": png(b"x"), "opacity": 0}}),
                "opacity must be from",
            ),
            (
                json!({"watermark": {"image": png(b"x"), "position": "left"}}),
                "position",
            ),
            (
                json!({"video_codec": "copy", "watermark": {"image": png(b"x")}}),
                "watermark cannot apply",
            ),
        ] {
            let err = p(params.clone()).unwrap_err();
            assert!(err.contains(says), "{params}: {err}");
        }
    }

    #[test]
    fn thumbnails_and_posters_are_checked() {
        let p = |v: serde_json::Value| VideoParams::parse(&v);
        let ok = p(json!({"thumbnails": {"every": 10}, "poster": 2.5})).unwrap();
        assert_eq!(
            ok.stills,
            Stills {
                thumbnails: Some(Thumbnails {
                    every: 10.0,
                    width: DEFAULT_THUMBNAIL_WIDTH
                }),
                poster: Some(2.5)
            }
        );
        assert!(!p(json!({})).unwrap().stills.any());
        for (params, says) in [
            (
                json!({"thumbnails": {"every": 0.5}}),
                "from 1 to 3600 seconds",
            ),
            (
                json!({"thumbnails": {"every": 10, "width": 161}}),
                "even number",
            ),
            (
                json!({"thumbnails": {"every": 10, "width": 2000}}),
                "from 32 to 640",
            ),
            (
                json!({"thumbnails": {"every": 10, "height": 90}}),
                "video parameters",
            ),
            (json!({"thumbnails": 10}), "video parameters"),
            (json!({"poster": -1}), "0 or more"),
            (
                json!({"video_codec": "copy", "poster": 1}),
                "poster cannot apply",
            ),
        ] {
            let err = p(params.clone()).unwrap_err();
            assert!(err.contains(says), "{params}: {err}");
        }
        assert_eq!(still_size(160, (1280, 720)), (160, 90));
        assert_eq!(still_size(160, (720, 1280)), (160, 284));
        assert_eq!(still_size(32, (1920, 20)), (32, 2));
        assert_eq!(upright(-90), Some("transpose=clock"));
        assert_eq!(upright(90), Some("transpose=cclock"));
        assert_eq!(upright(180), Some("hflip,vflip"));
        assert_eq!(upright(0), None);
    }

    #[test]
    fn defaults_and_presets() {
        let p = VideoParams::parse(&json!({})).unwrap();
        assert_eq!(p.resolution, Resolution::Source);
        assert_eq!(p.encoder.crf, Some(23));
        assert_eq!(p.encoder.audio_bitrate, "128000");
        let p = VideoParams::parse(&json!({"preset": "720p", "crf": 20})).unwrap();
        assert_eq!(p.resolution, Resolution::Height(720));
        assert_eq!(p.encoder.crf, Some(20));
        let p = VideoParams::parse(&json!({"bitrate": "3M"})).unwrap();
        assert_eq!(
            (p.encoder.crf, p.encoder.maxrate.as_deref()),
            (None, Some("3000000"))
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        for (params, needle) in [
            (json!({"crf": 60}), "crf"),
            (json!({"preset": "4k"}), "resolution"),
            (json!({"bitrate": "fast"}), "bitrate"),
            (json!({"crf": 20, "bitrate": "3M"}), "either crf or bitrate"),
            (json!({"x264_preset": "warp"}), "x264_preset"),
            (json!({"level": "9"}), "level"),
            (json!({"audio_sample_rate": 1}), "audio_sample_rate"),
            (json!({"colour": "red"}), "unknown field"),
            (json!({"fps": 500}), "fps"),
            // Rates the encoder cannot give pictures or sound at.
            (
                json!({"bitrate": "10k"}),
                "bitrate must be from 50k to 100M",
            ),
            (
                json!({"bitrate": "99999999999999999999M"}),
                "bitrate must be from",
            ),
            (json!({"bitrate": "1e9"}), "look like 800k"),
            (json!({"bitrate": "-3M"}), "look like 800k"),
            (json!({"bitrate": "3M", "maxrate": "1M"}), "maxrate"),
            (
                json!({"preset": "1080p", "bitrate": "100k"}),
                "too low for 1080p",
            ),
            (
                json!({"audio_bitrate": "100000k"}),
                "audio_bitrate must be from 32k to 512k",
            ),
            (json!({"audio_bitrate": "8k"}), "audio_bitrate"),
            (
                json!({"audio_bitrate": "512k", "audio_sample_rate": 22050}),
                "at 22050 Hz",
            ),
        ] {
            let err = VideoParams::parse(&params).unwrap_err();
            assert!(err.contains(needle), "{params}: {err}");
        }
    }

    #[test]
    fn codecs_and_containers_go_together_or_are_named() {
        let p = |v: serde_json::Value| VideoParams::parse(&v);
        let ok = p(json!({"video_codec": "av1", "container": "webm"})).unwrap();
        assert_eq!(
            ok.audio_codec,
            AudioCodec::Opus,
            "webm takes opus unless told"
        );
        assert_eq!(
            (ok.encoder.crf, ok.encoder.preset.as_str()),
            (Some(35), "8")
        );
        assert_eq!(ok.encoders(), ["libsvtav1", "libopus"]);
        let hevc = p(json!({"video_codec": "hevc", "speed": "slow", "container": "mov"})).unwrap();
        assert_eq!(hevc.encoders(), ["libx265", "aac"]);
        assert_eq!(hevc.encoder.codec, "hevc");
        // CMAF carries every codec the grid encodes: a ladder of any of them.
        for codec in ["hevc", "av1", "vp9"] {
            assert!(
                p(json!({"video_codec": codec, "hls": true})).is_ok(),
                "{codec}"
            );
        }
        let vp9 = p(json!({"video_codec": "vp9", "speed": 2, "crf": 40})).unwrap();
        assert_eq!(
            (vp9.encoder.preset.as_str(), vp9.encoder.crf),
            ("2", Some(40))
        );
        assert_eq!(vp9.container, Container::Mp4);
        let copy =
            p(json!({"video_codec": "copy", "container": "mkv", "audio_codec": "copy"})).unwrap();
        assert!(copy.encoders().is_empty());
        assert_eq!(
            p(json!({"audio_tracks": ["eng", "FRA"]}))
                .unwrap()
                .audio_tracks,
            AudioTracks::Languages(vec!["eng".into(), "fra".into()])
        );
        for (params, needle) in [
            (
                json!({"video_codec": "h264", "container": "webm"}),
                "a webm file cannot carry h264 video: choose av1, vp9",
            ),
            (
                json!({"video_codec": "av1", "container": "mov"}),
                "a mov file cannot carry av1",
            ),
            (
                json!({"container": "webm", "video_codec": "vp9", "audio_codec": "aac"}),
                "cannot carry aac audio: choose opus",
            ),
            (
                json!({"container": "mov", "audio_codec": "opus"}),
                "a mov file cannot carry opus",
            ),
            (
                json!({"video_codec": "theora"}),
                "video_codec must be one of",
            ),
            (json!({"container": "avi"}), "container must be one of"),
            (
                json!({"video_codec": "av1", "crf": 0}),
                "crf must be from 1 to 63 for av1",
            ),
            (
                json!({"video_codec": "hevc", "crf": 52}),
                "from 0 to 51 for hevc",
            ),
            (
                json!({"video_codec": "av1", "speed": "medium"}),
                "speed for av1 must be one of 0, 1",
            ),
            (json!({"video_codec": "vp9", "speed": 9}), "speed for vp9"),
            (
                json!({"video_codec": "hevc", "x264_preset": "fast"}),
                "x264_preset is for h264",
            ),
            (
                json!({"speed": "fast", "x264_preset": "fast"}),
                "either speed or x264_preset",
            ),
            (
                json!({"video_codec": "av1", "profile": "high"}),
                "profile and level are H.264's",
            ),
            (
                json!({"video_codec": "copy", "hls": true}),
                "hls cannot apply",
            ),
            (
                json!({"hls": true, "container": "mkv"}),
                "container does not go with",
            ),
            (
                json!({"video_codec": "copy", "preset": "720p", "crf": 20}),
                "preset, crf cannot apply",
            ),
            (
                json!({"audio_codec": "copy", "audio_bitrate": "96k"}),
                "audio_codec copy",
            ),
            (
                json!({"audio_codec": "opus", "audio_sample_rate": 44100}),
                "for opus",
            ),
            (
                json!({"audio_codec": "opus", "audio_bitrate": "4k"}),
                "Opus for 2 channel(s)",
            ),
            (json!({"audio_tracks": "some"}), "audio_tracks must be"),
            (json!({"audio_tracks": ["english"]}), "audio_tracks must be"),
            (json!({"audio_tracks": []}), "audio_tracks must be"),
        ] {
            let err = p(params.clone()).unwrap_err();
            assert!(err.contains(needle), "{params}: {err}");
        }
    }

    #[test]
    fn rates_are_read_as_customers_write_them() {
        assert_eq!(bits_per_second("800k"), Some(800_000.0));
        assert_eq!(bits_per_second("2.5M"), Some(2_500_000.0));
        assert_eq!(bits_per_second("3000000"), Some(3_000_000.0));
        assert_eq!(bits_per_second("M"), None);
        assert_eq!(bits_per_second("3G"), None);
        let p = VideoParams::parse(&json!({"bitrate": "2.5M", "bufsize": "5M"})).unwrap();
        assert_eq!(p.encoder.bitrate.as_deref(), Some("2500000"));
        assert_eq!(p.encoder.maxrate.as_deref(), Some("2500000"));
        assert_eq!(p.encoder.bufsize.as_deref(), Some("5000000"));
    }

    #[test]
    fn a_bitrate_too_low_for_the_source_is_named_once_the_source_is_known() {
        let p = VideoParams::parse(&json!({"bitrate": "200k"})).unwrap();
        assert!(p.check_for_source(640, 360, 30.0).is_ok());
        let err = p.check_for_source(1920, 1080, 30.0).unwrap_err();
        assert!(err.contains("too low for 1920x1080 at 30.000 fps"), "{err}");
        let small = VideoParams::parse(&json!({"bitrate": "200k", "preset": "360p"})).unwrap();
        assert!(small.check_for_source(1920, 1080, 30.0).is_ok());
        assert!(
            VideoParams::parse(&json!({}))
                .unwrap()
                .check_for_source(7680, 4320, 120.0)
                .is_ok()
        );
    }

    #[test]
    fn target_sizes_never_upscale_and_stay_even() {
        let p = |v: serde_json::Value| VideoParams::parse(&v).unwrap();
        assert_eq!(
            p(json!({"preset": "720p"})).target_size(1920, 1080),
            (1280, 720)
        );
        assert_eq!(
            p(json!({"preset": "1080p"})).target_size(1280, 720),
            (1280, 720)
        );
        assert_eq!(p(json!({})).target_size(641, 361), (640, 360));
        assert_eq!(p(json!({})).target_size(3840, 2160), (1920, 1080));
        assert_eq!(
            p(json!({"resolution": "640x640"})).target_size(1280, 720),
            (640, 360)
        );
        assert_eq!(
            p(json!({"preset": "480p"})).target_size(1080, 1920),
            (270, 480)
        );
    }

    #[test]
    fn hls_ladders_stop_at_the_source() {
        let p = VideoParams::parse(&json!({"hls": true})).unwrap();
        assert_eq!(p.encoder.keyframe_seconds, Some(HLS_SEGMENT_SECONDS));
        assert_eq!(
            p.output_sizes(1280, 720),
            [(1280, 720), (852, 480), (640, 360)]
        );
        let p =
            VideoParams::parse(&json!({"hls": true, "ladder": ["360p", "720p", "360p"]})).unwrap();
        assert_eq!(p.hls_ladder, Some(vec![720, 360]));
        assert_eq!(p.output_sizes(640, 360), [(640, 360)]);
        assert!(VideoParams::parse(&json!({"ladder": ["720p"]})).is_err());
        assert!(VideoParams::parse(&json!({"hls": true, "ladder": ["source"]})).is_err());
        assert_eq!(
            VideoParams::parse(&json!({}))
                .unwrap()
                .output_sizes(640, 360),
            [(640, 360)]
        );
    }

    #[test]
    fn quality_targets_are_read_in_either_form_and_checked() {
        let p = |v| VideoParams::parse(&v);
        let long = p(json!({"target_quality": {"metric": "psnr", "value": 40}})).unwrap();
        let short = p(json!({"target_quality": "psnr:40"})).unwrap();
        assert_eq!(long.encoder.target, short.encoder.target);
        let target = long.encoder.target.unwrap();
        assert_eq!((target.metric.as_str(), target.value), ("psnr", 40.0));
        assert_eq!((target.crf_low, target.crf_high), (10, 45));
        assert_eq!(
            long.encoder.crf,
            Some(23),
            "the search starts at the default"
        );
        let av1 = p(json!({"video_codec": "av1", "target_quality": "ssim:0.97"})).unwrap();
        let target = av1.encoder.target.unwrap();
        assert_eq!((target.crf_low, target.crf_high), (10, 60));
        assert!((ssim_db(0.97) - 15.2288).abs() < 1e-3);
        for (params, needle) in [
            (
                json!({"target_quality": "psnr:40", "crf": 20}),
                "without crf or bitrate",
            ),
            (
                json!({"target_quality": "psnr:40", "bitrate": "2M"}),
                "without crf or bitrate",
            ),
            (json!({"target_quality": "vmaf:95"}), "libvmaf"),
            (json!({"target_quality": "psnr:70"}), "from 25 dB to 55 dB"),
            (json!({"target_quality": "ssim:1.5"}), "from 0.8 to 0.995"),
            (json!({"target_quality": "psnr"}), "target_quality must be"),
            (
                json!({"target_quality": {"metric": "psnr", "value": 40, "x": 1}}),
                "target_quality must be",
            ),
            (json!({"target_quality": 40}), "target_quality must be"),
            (
                json!({"video_codec": "copy", "target_quality": "psnr:40"}),
                "target_quality cannot apply",
            ),
        ] {
            let err = p(params.clone()).unwrap_err();
            assert!(err.contains(needle), "{params}: {err}");
        }
    }

    #[test]
    fn loudness_is_a_target_in_lufs_with_re_encoded_sound() {
        let p = |v| VideoParams::parse(&v);
        let ok = p(json!({"loudness": -23})).unwrap();
        assert_eq!(
            (ok.encoder.loudness, ok.encoder.loudness_true_peak),
            (Some(-23.0), Some(LOUDNESS_TRUE_PEAK))
        );
        assert_eq!(p(json!({})).unwrap().encoder.loudness, None);
        for (params, needle) in [
            (json!({"loudness": -40}), "from -36 to -8 LUFS"),
            (json!({"loudness": 0}), "from -36 to -8 LUFS"),
            (
                json!({"loudness": -16, "audio_codec": "copy"}),
                "audio_codec copy",
            ),
            (json!({"loudness": "loud"}), "video parameters"),
        ] {
            let err = p(params.clone()).unwrap_err();
            assert!(err.contains(needle), "{params}: {err}");
        }
    }

    #[test]
    fn pictures_are_cropped_or_padded_to_an_aspect_ratio() {
        let p = |v| VideoParams::parse(&v).unwrap();
        // 4:3 to 16:9, at the source's size: a crop keeps the width, a pad the height.
        let crop = p(json!({"aspect": "16:9", "fit": "crop"}));
        assert_eq!(crop.target_size(320, 240), (320, 180));
        assert_eq!(
            crop.geometry((320, 240), (320, 180)).unwrap(),
            "crop=320:180:0:30,scale=320:180:flags=bicubic"
        );
        let pad = p(json!({"aspect": "16:9"}));
        assert_eq!(pad.target_size(320, 240), (426, 240));
        assert_eq!(
            pad.geometry((320, 240), (426, 240)).unwrap(),
            "scale=320:240:flags=bicubic,pad=426:240:52:0:black"
        );
        // A ladder's smaller rung: the same framing, scaled.
        let rung = p(json!({"aspect": "1:1", "fit": "crop", "preset": "360p"}));
        assert_eq!(rung.target_size(1920, 1080), (360, 360));
        assert_eq!(
            rung.geometry((1920, 1080), (360, 360)).unwrap(),
            "crop=1080:1080:420:0,scale=360:360:flags=bicubic"
        );
        // A phone's portrait video is stored landscape and turned a quarter when shown: 9:16
        // as shown is 16:9 of its coded frames.
        let mut portrait = p(json!({"aspect": "9:16", "fit": "crop"}));
        portrait.quarter_turn = true;
        assert_eq!(portrait.target_size(1280, 960), (1280, 720));
        assert_eq!(p(json!({})).geometry((320, 240), (320, 240)), None);
        for (params, needle) in [
            (json!({"aspect": "16/9"}), "aspect must be W:H"),
            (json!({"aspect": "0:9"}), "aspect must be W:H"),
            (json!({"aspect": "9:50"}), "aspect must be W:H"),
            (
                json!({"aspect": "16:9", "fit": "stretch"}),
                "fit must be one of crop, pad",
            ),
            (json!({"fit": "crop"}), "fit goes with aspect"),
            (
                json!({"video_codec": "copy", "aspect": "1:1"}),
                "aspect cannot apply",
            ),
        ] {
            let err = VideoParams::parse(&params).unwrap_err();
            assert!(err.contains(needle), "{params}: {err}");
        }
    }
}
