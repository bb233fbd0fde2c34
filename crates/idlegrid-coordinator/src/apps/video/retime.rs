//! A frame rate asked for, made on the devices: the output's frames are slots `k / rate` on
//! the source's clock, and slot `k` pictures the latest source frame shown by its time (the
//! first frame for the slots before it; the last one for those after it). Each chunk holds
//! the source frames from its first to before the next chunk's; its slots are those from its
//! first frame's to the next chunk's first frame's (or the video's end), so the chunks' slots
//! follow one another with none twice and none left out, whatever the cuts.
//!
//! The rule lives here twice, once for each side, and a test holds them together: as FFmpeg
//! filters the task runs after picking its frames ([`Retime::filters`]), and as the index
//! arithmetic the validator pairs the result's frames with the source's by
//! ([`Retime::pictured`]). Times are counted in whole microseconds and slots in integers on
//! both sides, so no rounding of a float can set them apart.

/// How far past a slot's time a frame may be shown and still picture it, in microseconds: the
/// chunks keep times to the millisecond, so a frame shown at a slot's time (a 30 fps source's
/// frame 2 at 66.67 ms, kept as 67 ms, for 15 fps's slot 1) is up to half of one late.
const LATE_US: i64 = 499;

/// An output frame rate, as the fraction FFmpeg is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retime {
    num: u64,
    den: u64,
}

impl Retime {
    /// The rate `fps` (frames a second, 1 to 120) as a fraction: whole, NTSC's `n × 1000 /
    /// 1001` (29.97 is 30000/1001), else to the thousandth.
    pub fn new(fps: f64) -> Retime {
        let ntsc = (fps * 1.001).round();
        let (num, den) = if (fps - fps.round()).abs() < 1e-6 {
            (fps.round() as u64, 1)
        } else if (fps - ntsc * 1000.0 / 1001.0).abs() < 1e-3 {
            (ntsc as u64 * 1000, 1001)
        } else {
            ((fps * 1000.0).round() as u64, 1000)
        };
        let g = gcd(num.max(1), den);
        Retime {
            num: num.max(1) / g,
            den: den / g,
        }
    }

    /// A fraction as [`Retime::text`] writes it; `None` for anything else.
    pub fn parse(text: &str) -> Option<Retime> {
        let (num, den) = text.split_once('/')?;
        let (num, den) = (num.parse::<u64>().ok()?, den.parse::<u64>().ok()?);
        (num > 0 && den > 0 && num <= 1_000_000 && den <= 1_000_000).then_some(Retime { num, den })
    }

    /// Frames a second.
    pub fn fps(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// The first slot a frame shown at `time` (seconds, on the source's clock) pictures; a
    /// later frame's first slot, when it is the same, takes that slot from it.
    pub fn first_slot(&self, time: f64) -> i64 {
        let us = i128::from((time * 1e6).round() as i64 - LATE_US);
        let (num, den) = (i128::from(self.num), 1_000_000 * i128::from(self.den));
        // Rounded up (toward +∞, also below zero), as FFmpeg's fps filter is told to.
        let slot = -((-us * num).div_euclid(den));
        slot as i64
    }

    /// The slots of a chunk whose frames start at `first` and end where the next chunk's (or
    /// the video's end) is at `next`: how many output frames it makes.
    pub fn slots(&self, first: f64, next: f64) -> u64 {
        (self.first_slot(next) - self.first_slot(first)).max(0) as u64
    }

    /// The FFmpeg filters that make a chunk's `frames` output frames from its source frames
    /// (picked already, on the source's clock, kept to the millisecond): a microsecond clock
    /// taken back by the lateness allowed, FFmpeg's fps filter rounding up to the slots, the
    /// last frame repeated for the slots after it, and the output starting at 0.
    pub fn filters(&self, frames: u64) -> String {
        format!(
            "settb=1/1000000,setpts=PTS-{LATE_US},fps=fps={}/{}:round=up,\
             tpad=stop={frames}:stop_mode=clone,trim=end_frame={frames},setpts=PTS-STARTPTS",
            self.num, self.den
        )
    }

    /// For each of a chunk's `frames` output frames, the index among `times` (its own source
    /// frames' times, ascending, in seconds) of the frame it pictures.
    pub fn pictured(&self, times: &[f64], frames: usize) -> Vec<usize> {
        let Some(&start) = times.first() else {
            return Vec::new();
        };
        let first = self.first_slot(start);
        let mut at = 0;
        (0..frames)
            .map(|j| {
                let slot = first + j as i64;
                while at + 1 < times.len() && self.first_slot(times[at + 1]) <= slot {
                    at += 1;
                }
                at
            })
            .collect()
    }

    /// The fraction, as FFmpeg reads it (`30000/1001`).
    pub fn text(&self) -> String {
        format!("{}/{}", self.num, self.den)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    #[test]
    fn rates_are_read_as_the_fractions_players_know() {
        assert_eq!(Retime::new(30.0).text(), "30/1");
        assert_eq!(Retime::new(29.97).text(), "30000/1001");
        assert_eq!(Retime::new(23.976).text(), "24000/1001");
        assert_eq!(Retime::new(59.94).text(), "60000/1001");
        assert_eq!(Retime::new(12.5).text(), "25/2");
        assert_eq!(Retime::new(1.0).text(), "1/1");
        assert_eq!(Retime::parse("30000/1001"), Some(Retime::new(29.97)));
        for bad in ["30", "0/1", "1/0", "-1/2", "x/y", "1/2/3"] {
            assert_eq!(Retime::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn halving_the_rate_keeps_every_other_frame_despite_millisecond_times() {
        // 30 fps kept to the millisecond: 0, 33, 67, 100, 133, 167, 200...
        let times: Vec<f64> = (0..12)
            .map(|n| (n as f64 * 1000.0 / 30.0).round() / 1000.0)
            .collect();
        let half = Retime::new(15.0);
        assert_eq!(half.pictured(&times, 6), vec![0, 2, 4, 6, 8, 10]);
        assert_eq!(half.slots(times[0], 0.4), 6);
        // Doubling repeats each frame.
        let double = Retime::new(60.0);
        assert_eq!(double.pictured(&times[..3], 6), vec![0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn chunks_slots_follow_one_another() {
        // A variable rate cut anywhere: each chunk's slots start where the one before ended.
        let times: Vec<f64> = (0..200)
            .map(|n| ((n * n % 37) as f64 * 0.7 + n as f64 * 41.0).round() / 1000.0)
            .collect();
        let rate = Retime::new(29.97);
        let end = times[199] + 0.04;
        let whole = rate.slots(times[0], end);
        let cuts = [0, 13, 77, 78, 150, 200];
        let mut total = 0;
        let mut joined = Vec::new();
        for w in cuts.windows(2) {
            let next = times.get(w[1]).copied().unwrap_or(end);
            let n = rate.slots(times[w[0]], next);
            joined.extend(
                rate.pictured(&times[w[0]..w[1]], n as usize)
                    .iter()
                    .map(|i| i + w[0]),
            );
            total += n;
        }
        assert_eq!(total, whole);
        assert_eq!(joined, rate.pictured(&times, whole as usize));
    }

    fn ffmpeg(args: &[&str]) -> std::process::Output {
        let out = Command::new("ffmpeg")
            .args(args)
            .output()
            .expect("ffmpeg runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A Matroska file whose frame `n` is the flat grey `n × 3 + 16`, shown at `times[n]`.
    fn numbered(dir: &Path, times: &[f64]) -> std::path::PathBuf {
        let stamps = dir.join("times.txt");
        let mut text = String::from("# timestamp format v2\n");
        for t in times {
            text.push_str(&format!("{}\n", (t * 1000.0).round()));
        }
        std::fs::write(&stamps, text).unwrap();
        let raw = dir.join("frames.mkv");
        let count = times.len().to_string();
        ffmpeg(&[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=black:size=32x32:rate=25,format=gray,geq=lum='N*3+16'",
            "-frames:v",
            &count,
            "-c:v",
            "ffv1",
            "-y",
            &raw.to_string_lossy(),
        ]);
        let timed = dir.join("timed.mkv");
        // FFmpeg's setpts takes the times from an expression list, in the Matroska input's
        // milliseconds (whole numbers: a time divided by its base would be cut short).
        let expr: String = times
            .iter()
            .enumerate()
            .rev()
            .fold(String::from("0"), |rest, (n, t)| {
                format!("if(eq(N\\,{n})\\,{}\\,{rest})", (t * 1000.0).round())
            });
        ffmpeg(&[
            "-v",
            "error",
            "-i",
            &raw.to_string_lossy(),
            "-vf",
            &format!("setpts='{expr}'"),
            "-fps_mode",
            "passthrough",
            "-enc_time_base:v",
            "-1",
            "-c:v",
            "ffv1",
            "-y",
            &timed.to_string_lossy(),
        ]);
        let shown = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "frame=pts",
                "-of",
                "csv=p=0",
            ])
            .arg(&timed)
            .output()
            .expect("ffprobe runs");
        let shown: Vec<f64> = String::from_utf8_lossy(&shown.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .map(|ms| ms / 1000.0)
            .collect();
        assert_eq!(shown, times, "the numbered frames' times");
        timed
    }

    /// The grey level of every frame the task's filters make of the frames shown from `from`
    /// to before `to`, as frame numbers.
    fn made(file: &Path, (from, to): (f64, f64), rate: Retime, frames: u64) -> Vec<usize> {
        let pick = format!(
            "select='gte(t,{:.4})*lt(t,{:.4})'",
            from - 0.0005,
            to - 0.0005
        );
        let out = ffmpeg(&[
            "-v",
            "error",
            "-copyts",
            "-i",
            &file.to_string_lossy(),
            "-vf",
            &format!("{pick},{},scale=1:1", rate.filters(frames)),
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ]);
        out.stdout
            .iter()
            .map(|&g| ((f64::from(g) - 16.0) / 3.0).round() as usize)
            .collect()
    }

    #[test]
    fn ffmpegs_filters_picture_the_frames_the_validator_expects() {
        let dir = tempfile::tempdir().unwrap();
        // 50 frames: 30 fps, a pause, then 25 fps, starting at 1.234 s.
        let mut times: Vec<f64> = (0..25).map(|n| 1.234 + n as f64 / 30.0).collect();
        times.extend((0..25).map(|n| 2.5 + n as f64 / 25.0));
        let times: Vec<f64> = times
            .iter()
            .map(|t| (t * 1000.0).round() / 1000.0)
            .collect();
        let file = numbered(dir.path(), &times);
        let end = times[49] + 0.04;
        for fps in [15.0, 24.0, 29.97, 50.0, 7.5] {
            let rate = Retime::new(fps);
            // The whole video, and chunks of it (the last to its end).
            for (a, b) in [(0, 50), (0, 13), (13, 31), (31, 50)] {
                let next = times.get(b).copied().unwrap_or(end);
                let frames = rate.slots(times[a], next);
                let want: Vec<usize> = rate
                    .pictured(&times[a..b], frames as usize)
                    .into_iter()
                    .map(|i| i + a)
                    .collect();
                assert_eq!(
                    made(&file, (times[a], next), rate, frames),
                    want,
                    "frames {a}..{b} at {fps} fps"
                );
            }
        }
    }
}
