//! The video app's parameters, in the terms transcoding customers know, checked when the job
//! is created and turned into encoder settings for the task script.
//!
//! ```json
//! {"preset": "720p", "crf": 23, "fps": 25, "x264_preset": "medium", "profile": "high", "level": "4.1",
//!  "bitrate": "3M", "maxrate": "4M", "bufsize": "8M",
//!  "audio_bitrate": "128k", "audio_channels": 2, "audio_sample_rate": 48000}
//! ```
//! `preset` (or `resolution`) is one of `1080p`, `720p`, `480p`, `360p`, `source` or `WxH`;
//! outputs are never upscaled and never larger than 1920×1080's pixel count.
//! `"hls": true` asks for HLS instead of one MP4: a rendition ladder (`"ladder": ["720p",
//! "480p"]`, by default every standard height up to the output's) with a master playlist.

use serde::{Deserialize, Serialize};

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
    /// x264 preset.
    pub preset: String,
    /// Constant rate factor, when not encoding to a bitrate.
    pub crf: Option<u8>,
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
    /// AAC bitrate, e.g. `128k`.
    pub audio_bitrate: String,
    /// Audio channels.
    pub audio_channels: u32,
    /// Audio sample rate.
    pub audio_sample_rate: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
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
        if let Some(crf) = raw.crf
            && crf > 51
        {
            return Err(format!("crf must be from 0 to 51, got {crf}"));
        }
        let bitrate = raw
            .bitrate
            .as_deref()
            .map(|b| rate("bitrate", b, VIDEO_BITRATE))
            .transpose()?;
        if bitrate.is_some() && raw.crf.is_some() {
            return Err("give either crf or bitrate, not both".into());
        }
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
        let x264_preset = raw.x264_preset.unwrap_or_else(|| "medium".into());
        if !X264_PRESETS.contains(&x264_preset.as_str()) {
            return Err(format!(
                "x264_preset must be one of {}, got {x264_preset:?}",
                X264_PRESETS.join(", ")
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
        if !SAMPLE_RATES.contains(&audio_sample_rate) {
            return Err(format!(
                "audio_sample_rate must be one of {SAMPLE_RATES:?}, got {audio_sample_rate}"
            ));
        }
        let audio_bitrate = match raw.audio_bitrate.as_deref() {
            None => 128_000.min(aac_range(audio_channels, audio_sample_rate).1),
            Some(b) => rate(
                "audio_bitrate",
                b,
                aac_range(audio_channels, audio_sample_rate),
            )
            .map_err(|e| {
                format!("{e} (AAC-LC for {audio_channels} channel(s) at {audio_sample_rate} Hz)")
            })?,
        };
        let hls_ladder = match (raw.hls.unwrap_or(false), raw.ladder) {
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
        Ok(VideoParams {
            fps: raw.fps,
            hls_ladder: hls_ladder.clone(),
            resolution,
            encoder: Encoder {
                preset: x264_preset,
                crf: if bitrate.is_none() {
                    Some(raw.crf.unwrap_or(23))
                } else {
                    None
                },
                bitrate: bitrate.map(|b| b.to_string()),
                maxrate: maxrate.map(|b| b.to_string()),
                bufsize: bufsize.map(|b| b.to_string()),
                profile: raw.profile,
                level: raw.level,
                threads: 2,
                keyframe_seconds: hls_ladder.map(|_| HLS_SEGMENT_SECONDS),
                audio_bitrate: audio_bitrate.to_string(),
                audio_channels,
                audio_sample_rate,
            },
        })
    }

    /// Checks what depends on the source: a bitrate too low for the output's largest frame at
    /// the output's frame rate (`fps` is the source's, unless the job sets one).
    pub fn check_for_source(&self, width: u32, height: u32, fps: f64) -> Result<(), String> {
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
}
