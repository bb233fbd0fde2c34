//! How a result's pictures compare with its source's, and what that says about the result.
//!
//! The validator decodes a window of frames, chosen at random after the result arrived, from
//! both the result and the source chunk (scaled to the result's size) and measures each pair
//! here, on the luma plane at full resolution:
//!
//! - **PSNR** against the source. No honest encode at settings a job may have is below
//!   [`HARD_FLOOR_DB`] (noisy footage at CRF 51 or at the lowest bitrate allowed scores about
//!   19 dB): a frame below it is another picture (a solid colour, another clip), and the result
//!   is rejected.
//! - **Detail**: the result's mean luma gradient over the source's. x264 keeps texture at
//!   sensible quality (0.8–1.0 at CRF ≤ 26 on smooth, busy and noisy test footage); a picture
//!   encoded small and scaled back up loses it (0.01–0.25 from 96×54, 0.1–0.6 from half the
//!   size).
//! - **Repeats**: a result frame equal to the one before while the source moved is a frame
//!   copied instead of encoded.
//!
//! Below what the job's settings give ([`Expectation`]), a result is *suspect*, not rejected:
//! the content decides how good an honest encode looks (noise at CRF 30 looks like a scaled-up
//! picture), so a suspect result is re-run on an independent device and believed only if the
//! bytes agree. The thresholds were measured on FFmpeg's `testsrc2`, `mandelbrot` and
//! `testsrc2` with strong temporal noise, encoded with x264 `medium` (see docs/BENCHMARKS.md).

/// Lowest PSNR (dB) of any compared frame before a result is rejected outright.
pub const HARD_FLOOR_DB: f64 = 15.0;
/// A source frame whose mean gradient is below this (of the 219 steps from black to white) is
/// too flat for its detail to tell anything.
const MIN_SOURCE_DETAIL: f64 = 1.7;
/// Luma steps from black (16) to white (235): planes are compared as coded, in video range.
const PEAK: f64 = 219.0;
/// A result frame this close to the one before (dB) is a repeat...
const REPEAT_DB: f64 = 55.0;
/// ...when the source's frames differ more than this (dB).
const MOVING_DB: f64 = 30.0;

/// The quality an honest result of these settings reaches on any footage: below it a result is
/// suspect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// Lowest PSNR (dB) of a compared frame.
    pub psnr_db: f64,
    /// Lowest detail ratio of a compared frame (0: not checked).
    pub detail: f64,
}

impl Expectation {
    /// For a constant rate factor `crf`, or `None` for an average bitrate (whose quality the
    /// footage decides entirely: only gross differences count then).
    pub fn for_crf(crf: Option<u8>) -> Expectation {
        let Some(crf) = crf else {
            return Expectation {
                psnr_db: HARD_FLOOR_DB,
                detail: 0.0,
            };
        };
        let above = f64::from(crf.saturating_sub(23));
        Expectation {
            psnr_db: (26.0 - 1.2 * above).max(HARD_FLOOR_DB),
            detail: match crf {
                0..=26 => 0.7,
                27..=28 => 0.6,
                29..=30 => 0.5,
                _ => 0.0,
            },
        }
    }
}

/// The x264 rate factor that gives about the quality `crf` gives with `codec`'s encoder, on
/// the footage the thresholds were measured on (the lowest PSNR of a frame over `testsrc2`,
/// `mandelbrot` and noisy `testsrc2`, see docs/BENCHMARKS.md): x265's scale is x264's; SVT-AV1's
/// and libvpx's 0–63 scales meet x264's at 25 ↔ 18, 35 ↔ 23, 45 ↔ 30 (VP9: 28) and 55 ↔ 33.
/// Rounded towards the worse quality, so an honest encode is never expected to do better.
pub fn x264_equivalent(codec: &str, crf: u8) -> u8 {
    let points: &[(f64, f64)] = match codec {
        "av1" => &[
            (0.0, 5.0),
            (25.0, 18.0),
            (35.0, 23.0),
            (45.0, 30.0),
            (55.0, 33.0),
            (63.0, 36.0),
        ],
        "vp9" => &[
            (0.0, 5.0),
            (25.0, 18.0),
            (35.0, 23.0),
            (45.0, 28.0),
            (55.0, 33.0),
            (63.0, 36.0),
        ],
        _ => return crf,
    };
    let c = f64::from(crf);
    let equivalent =
        points
            .windows(2)
            .find(|w| c <= w[1].0)
            .map_or(points[points.len() - 1].1, |w| {
                let ((c0, e0), (c1, e1)) = (w[0], w[1]);
                e0 + (c - c0) * (e1 - e0) / (c1 - c0)
            });
    equivalent.ceil().clamp(0.0, 51.0) as u8
}

/// One luma plane as coded (video range, black at 16 and white at 235), row after row.
pub struct Plane<'a> {
    /// Width in pixels.
    pub width: usize,
    /// The pixels.
    pub pixels: &'a [u8],
}

/// PSNR of `b` against `a` (same size) over every `step`-th row, against the range from black
/// to white (what it would be on full-range grey); 100 for identical planes.
pub fn psnr(a: &Plane, b: &Plane, step: usize) -> f64 {
    let mut sum: u64 = 0;
    let mut count: u64 = 0;
    for (ra, rb) in a
        .pixels
        .chunks_exact(a.width)
        .zip(b.pixels.chunks_exact(b.width))
        .step_by(step.max(1))
    {
        // Per row in 32 bits (at most 255² × 65535 fits), which the compiler vectorises.
        sum += u64::from(
            ra.iter()
                .zip(rb)
                .map(|(&x, &y)| {
                    let d = u32::from(x.abs_diff(y));
                    d * d
                })
                .sum::<u32>(),
        );
        count += ra.len() as u64;
    }
    if sum == 0 || count == 0 {
        return 100.0;
    }
    let mse = sum as f64 / count as f64;
    10.0 * (PEAK * PEAK / mse).log10()
}

/// Mean absolute luma gradient (right and down neighbours), over every other row and column.
pub fn detail(p: &Plane) -> f64 {
    let rows: Vec<&[u8]> = p.pixels.chunks_exact(p.width).collect();
    let mut sum: u64 = 0;
    let mut count: u64 = 0;
    for y in (0..rows.len().saturating_sub(1)).step_by(2) {
        let (row, below) = (rows[y], rows[y + 1]);
        for x in (0..p.width.saturating_sub(1)).step_by(2) {
            sum += u64::from(row[x].abs_diff(row[x + 1])) + u64::from(row[x].abs_diff(below[x]));
            count += 1;
        }
    }
    if count == 0 {
        0.0
    } else {
        sum as f64 / count as f64
    }
}

/// FFmpeg's `psnr` filter's peak: its luma PSNR is against 255, not the video range's 219.
const FFMPEG_PEAK: f64 = 255.0;

/// The PSNR of `frames` together as FFmpeg's `psnr` filter sums frames up (from their mean
/// squared error, against a peak of 255): what a quality target's `psnr` measures.
pub fn pooled_psnr(frames: &[FrameMeasure]) -> f64 {
    if frames.is_empty() {
        return 100.0;
    }
    let mse = frames
        .iter()
        .map(|f| PEAK * PEAK / 10f64.powf(f.psnr_db / 10.0))
        .sum::<f64>()
        / frames.len() as f64;
    10.0 * (FFMPEG_PEAK * FFMPEG_PEAK / mse.max(1e-12)).log10()
}

/// The highest PSNR (as [`pooled_psnr`]) a chunk of `total` frames can have when `frames` of
/// it measure as they do: were its other frames perfect, their errors would still count.
pub fn psnr_ceiling(frames: &[FrameMeasure], total: usize) -> f64 {
    let share = frames.len().max(1) as f64 / total.max(1) as f64;
    pooled_psnr(frames) - 10.0 * share.min(1.0).log10()
}

/// What was measured of one compared frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameMeasure {
    /// Its index in the chunk.
    pub index: u64,
    /// PSNR against the source frame.
    pub psnr_db: f64,
    /// Detail ratio, where the source frame has detail enough to tell and it was measured.
    pub detail: Option<f64>,
    /// Whether it repeats the frame before while the source moved.
    pub repeats: bool,
    /// SSIM against the source frame, where it was measured.
    pub ssim: Option<f64>,
    /// PSNR of the watermark's area against the source frame's under the watermark, where
    /// one is laid over.
    pub mark_psnr: Option<f64>,
    /// PSNR of its worst 16×16 block against the source's.
    pub worst_block_db: f64,
}

/// Side of the blocks whose worst is measured, in pixels.
pub const BLOCK: usize = 16;

/// PSNR of the worst `block`×`block` square of `b` against `a` (same size; whole squares only).
pub fn worst_block_psnr(a: &Plane, b: &Plane, block: usize) -> f64 {
    let width = a.width;
    let rows = a.pixels.len() / width.max(1);
    let mut worst: u64 = 0;
    for by in (0..rows.saturating_sub(block - 1)).step_by(block) {
        for bx in (0..width.saturating_sub(block - 1)).step_by(block) {
            let mut sum: u64 = 0;
            for row in by..by + block {
                let at = row * width + bx;
                sum += u64::from(
                    a.pixels[at..at + block]
                        .iter()
                        .zip(&b.pixels[at..at + block])
                        .map(|(&x, &y)| {
                            let d = u32::from(x.abs_diff(y));
                            d * d
                        })
                        .sum::<u32>(),
                );
            }
            worst = worst.max(sum);
        }
    }
    if worst == 0 {
        return 100.0;
    }
    let mse = worst as f64 / (block * block) as f64;
    10.0 * (PEAK * PEAK / mse).log10()
}

/// Whether a picture whose PSNR is `frame_db` has a block (`block_db`) too far from the
/// source's for an encoder: something drawn over part of it. Honest x264 encodes of 720p test
/// footage keep their worst 16×16 block 17–19 dB under the frame (42.2 → 25.2 at rate factor
/// 23, 29.5 → 12.5 at 51); a 24×12 white box drawn over it leaves the frame at 38.1 dB and its
/// worst block at 5.5 (at 320x240 the same box leaves the frame at 29.7). A block under 12 dB
/// and 15 dB under its frame is asked for, so sharp text on a flat picture (a perfect frame,
/// one block at 25 dB) is not taken for a patch; at the lowest quality allowed an honest block
/// may come near (12.5 dB at rate factor 51): a re-run settles it.
pub fn drawn_over(frame_db: f64, block_db: f64) -> bool {
    block_db < 12.0 && block_db < frame_db - 15.0
}

/// Where a watermark lies in a frame: x, y, width and height in pixels.
pub type Area = (usize, usize, usize, usize);

/// PSNR of `b` against `a` over `area` only (clipped to the frame).
pub fn area_psnr(a: &Plane, b: &Plane, (x, y, w, h): Area) -> f64 {
    let width = a.width;
    let rows = a.pixels.len() / width.max(1);
    let (x, y) = (x.min(width), y.min(rows));
    let (w, h) = (w.min(width - x), h.min(rows - y));
    let cut = |p: &Plane| -> Vec<u8> {
        (y..y + h)
            .flat_map(|row| {
                p.pixels[row * width + x..row * width + x + w]
                    .iter()
                    .copied()
            })
            .collect()
    };
    if w == 0 || h == 0 {
        return 100.0;
    }
    let (ca, cb) = (cut(a), cut(b));
    psnr(
        &Plane {
            width: w,
            pixels: &ca,
        },
        &Plane {
            width: w,
            pixels: &cb,
        },
        1,
    )
}

/// Lowest PSNR of a watermark's area before its chunk is held for a re-run (at rate factors
/// up to 23; lower with the quality the settings promise): honest encodes of a small opaque
/// logo at x264's rate factor 40 stay above it, rate factor 51 gives 15-19 dB; an opaque logo
/// left out is far under it (the forgery tests).
pub const MARK_FLOOR_DB: f64 = 22.0;

/// SSIM of `b` against `a` (same size, luma as coded), as FFmpeg's `ssim` filter computes it
/// for 8-bit planes: over 8×8 windows every 4 pixels, from the windows' sums, averaged.
pub fn ssim(a: &Plane, b: &Plane) -> f64 {
    const C1: f64 = 0.01 * 0.01 * 255.0 * 255.0 * 64.0 * 64.0;
    const C2: f64 = 0.03 * 0.03 * 255.0 * 255.0 * 64.0 * 63.0;
    let width = a.width;
    let height = a.pixels.len() / width.max(1);
    let (mut total, mut count) = (0.0, 0u64);
    for y in (0..height.saturating_sub(7)).step_by(4) {
        for x in (0..width.saturating_sub(7)).step_by(4) {
            let (mut s1, mut s2, mut ss, mut s12) = (0u64, 0u64, 0u64, 0u64);
            for row in y..y + 8 {
                let at = row * width + x;
                for (&p, &q) in a.pixels[at..at + 8].iter().zip(&b.pixels[at..at + 8]) {
                    let (p, q) = (u64::from(p), u64::from(q));
                    s1 += p;
                    s2 += q;
                    ss += p * p + q * q;
                    s12 += p * q;
                }
            }
            let (s1, s2, ss, s12) = (s1 as f64, s2 as f64, ss as f64, s12 as f64);
            let vars = ss * 64.0 - s1 * s1 - s2 * s2;
            let covar = s12 * 64.0 - s1 * s2;
            total += (2.0 * s1 * s2 + C1) * (2.0 * covar + C2)
                / ((s1 * s1 + s2 * s2 + C1) * (vars + C2));
            count += 1;
        }
    }
    if count == 0 {
        1.0
    } else {
        total / count as f64
    }
}

/// Measures result frame `index` against its source frame, with the frames before them (in
/// the same window) for the repeat check; `with_detail` also measures detail, `with_ssim`
/// SSIM.
pub fn measure(
    index: u64,
    source: &Plane,
    result: &Plane,
    before: Option<(&Plane, &Plane)>,
    with_detail: bool,
    with_ssim: bool,
    mark: Option<Area>,
) -> FrameMeasure {
    let detail = with_detail
        .then(|| {
            let s = self::detail(source);
            (s >= MIN_SOURCE_DETAIL).then(|| self::detail(result) / s)
        })
        .flatten();
    let repeats = before.is_some_and(|(source_before, result_before)| {
        psnr(result_before, result, 4) >= REPEAT_DB && psnr(source_before, source, 4) < MOVING_DB
    });
    FrameMeasure {
        index,
        psnr_db: psnr(source, result, 1),
        detail,
        repeats,
        ssim: with_ssim.then(|| ssim(source, result)),
        mark_psnr: mark.map(|area| area_psnr(source, result, area)),
        worst_block_db: worst_block_psnr(source, result, BLOCK),
    }
}

/// A result's pictures as the validator sees them.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgment {
    /// Like the source as the settings promise.
    Good,
    /// Worse than the settings give on any footage tried: believe it only if an independent
    /// device returns the same bytes.
    Suspect(String),
    /// Not the source's pictures.
    Bad(String),
}

/// Judges the measured frames of a result against what its settings promise.
pub fn judge(frames: &[FrameMeasure], expect: Expectation) -> Judgment {
    if let Some(worst) = frames.iter().min_by(|a, b| a.psnr_db.total_cmp(&b.psnr_db)) {
        if worst.psnr_db < HARD_FLOOR_DB {
            return Judgment::Bad(format!(
                "frame {} is not the source's picture (PSNR {:.1} dB; every honest encode is \
                 above {HARD_FLOOR_DB} dB)",
                worst.index, worst.psnr_db
            ));
        }
        if worst.psnr_db < expect.psnr_db {
            return Judgment::Suspect(format!(
                "frame {} is further from the source than the settings give (PSNR {:.1} dB, \
                 expected at least {:.1} dB)",
                worst.index, worst.psnr_db, expect.psnr_db
            ));
        }
    }
    // Below what the settings promise of any frame, less a margin for the logo's sharp
    // edges: a low-quality encode blurs them as much as it blurs everything.
    let mark_floor = MARK_FLOOR_DB.min(expect.psnr_db - 4.0);
    if let Some(worst) = frames
        .iter()
        .filter(|f| f.mark_psnr.is_some_and(|db| db < mark_floor))
        .min_by(|a, b| {
            let db = |f: &FrameMeasure| f.mark_psnr.unwrap_or_default();
            db(a).total_cmp(&db(b))
        })
    {
        return Judgment::Suspect(format!(
            "frame {}'s watermark area is not the source's under the watermark asked (PSNR \
             {:.1} dB there, at least {mark_floor:.1} dB expected)",
            worst.index,
            worst.mark_psnr.unwrap_or_default()
        ));
    }
    if let Some(patched) = frames
        .iter()
        .find(|f| drawn_over(f.psnr_db, f.worst_block_db))
    {
        return Judgment::Suspect(format!(
            "frame {} has a patch unlike the source's picture (its worst {BLOCK}x{BLOCK} block \
             at {:.1} dB, the frame at {:.1} dB): drawn over?",
            patched.index, patched.worst_block_db, patched.psnr_db
        ));
    }
    if let Some(repeat) = frames.iter().find(|f| f.repeats) {
        return Judgment::Suspect(format!(
            "frame {} repeats the frame before it where the source moves",
            repeat.index
        ));
    }
    if expect.detail > 0.0
        && let Some((index, ratio)) = frames
            .iter()
            .filter_map(|f| Some((f.index, f.detail?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
        && ratio < expect.detail
    {
        return Judgment::Suspect(format!(
            "frame {index} has {:.0}% of the source's detail (at least {:.0}% expected at these \
             settings): encoded smaller and scaled up?",
            ratio * 100.0,
            expect.detail * 100.0
        ));
    }
    Judgment::Good
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_codecs_rate_factors_map_to_x264_ones() {
        assert_eq!(x264_equivalent("h264", 23), 23);
        assert_eq!(x264_equivalent("hevc", 28), 28);
        assert_eq!(x264_equivalent("av1", 35), 23);
        assert_eq!(x264_equivalent("av1", 40), 27);
        assert_eq!(x264_equivalent("vp9", 45), 28);
        assert_eq!(x264_equivalent("vp9", 63), 36);
        assert_eq!(x264_equivalent("av1", 1), 6);
    }

    #[test]
    fn a_patch_drawn_over_a_good_frame_is_suspect() {
        // 320x240 frames with detail; the result differs by one level everywhere, then a white
        // 6x6 patch drawn over it.
        let side = 320;
        let source: Vec<u8> = (0..side * 240).map(|i| ((i * 7) % 200) as u8).collect();
        let mut result: Vec<u8> = source.iter().map(|&v| v + 1).collect();
        let look = |result: &[u8]| {
            measure(
                0,
                &plane(side, &source),
                &plane(side, result),
                None,
                false,
                false,
                None,
            )
        };
        let honest = look(&result);
        assert!(
            !drawn_over(honest.psnr_db, honest.worst_block_db),
            "{honest:?}"
        );
        for y in 18..24 {
            for x in 18..24 {
                result[y * side + x] = 255;
            }
        }
        let patched = look(&result);
        assert!(patched.psnr_db > 26.0, "{patched:?}");
        assert!(
            matches!(judge(&[patched], Expectation::for_crf(Some(23))), Judgment::Suspect(ref why) if why.contains("drawn over")),
            "{patched:?}"
        );
        // Honest encodes as measured: rate factor 23 and 51.
        assert!(!drawn_over(42.2, 25.2) && !drawn_over(29.5, 12.5) && drawn_over(38.1, 5.5));
        assert!(!drawn_over(50.0, 25.0), "sharp text on a flat picture");
    }

    #[test]
    fn a_watermark_area_left_out_is_suspect_at_good_settings() {
        // 32x32 frames; the source has a white 2x2 mark at (4, 2), the result none: the
        // frame as a whole is still near the source (28 dB).
        let mut source = vec![100u8; 32 * 32];
        for (x, y) in [(4, 2), (5, 2), (4, 3), (5, 3)] {
            source[y * 32 + x] = 255;
        }
        let result = vec![100u8; 32 * 32];
        let (s, r) = (plane(32, &source), plane(32, &result));
        assert!(psnr(&s, &r, 1) > 26.0);
        assert!(area_psnr(&s, &r, (4, 2, 2, 2)) < 5.0);
        assert_eq!(area_psnr(&s, &r, (0, 0, 2, 2)), 100.0);
        assert_eq!(
            area_psnr(&s, &r, (31, 31, 5, 5)),
            100.0,
            "clipped to the frame"
        );
        let measured = measure(0, &s, &r, None, false, false, Some((4, 2, 2, 2)));
        assert!(
            matches!(judge(&[measured], Expectation::for_crf(Some(23))), Judgment::Suspect(ref why) if why.contains("watermark")),
            "{measured:?}"
        );
        // At the lowest quality allowed the floor is the settings' own.
        let blurred = FrameMeasure {
            mark_psnr: Some(15.0),
            ..frame(0, 40.0, None, false)
        };
        assert_eq!(
            judge(&[blurred], Expectation::for_crf(Some(51))),
            Judgment::Good
        );
    }

    fn plane(width: usize, pixels: &[u8]) -> Plane<'_> {
        Plane { width, pixels }
    }

    /// A 64×64 test picture with detail: a diagonal pattern shifted by `phase`.
    fn pattern(phase: usize) -> Vec<u8> {
        (0..64 * 64)
            .map(|i| (((i % 64 + i / 64 + phase) * 37) % 251) as u8)
            .collect()
    }

    #[test]
    fn psnr_and_detail_measure_what_they_say() {
        let a = pattern(0);
        let flat = vec![128u8; 64 * 64];
        assert_eq!(psnr(&plane(64, &a), &plane(64, &a), 1), 100.0);
        assert!(psnr(&plane(64, &a), &plane(64, &flat), 1) < 12.0);
        let mut close = a.clone();
        close[0] ^= 4;
        assert!(psnr(&plane(64, &a), &plane(64, &close), 1) > 50.0);
        assert_eq!(detail(&plane(64, &flat)), 0.0);
        assert!(detail(&plane(64, &a)) > 20.0);
    }

    #[test]
    fn expectations_loosen_with_the_rate_factor_and_vanish_for_bitrates() {
        let crf23 = Expectation::for_crf(Some(23));
        assert_eq!((crf23.psnr_db, crf23.detail), (26.0, 0.7));
        assert_eq!(Expectation::for_crf(Some(18)), crf23);
        let crf30 = Expectation::for_crf(Some(30));
        assert!(crf30.psnr_db < crf23.psnr_db && crf30.detail == 0.5);
        assert_eq!(Expectation::for_crf(Some(51)).psnr_db, HARD_FLOOR_DB);
        assert_eq!(Expectation::for_crf(Some(51)).detail, 0.0);
        assert_eq!(Expectation::for_crf(None).psnr_db, HARD_FLOOR_DB);
    }

    fn frame(index: u64, psnr_db: f64, detail: Option<f64>, repeats: bool) -> FrameMeasure {
        FrameMeasure {
            index,
            psnr_db,
            detail,
            repeats,
            ssim: None,
            mark_psnr: None,
            worst_block_db: 100.0,
        }
    }

    #[test]
    fn another_picture_is_bad_and_a_worse_one_suspect() {
        let expect = Expectation::for_crf(Some(23));
        assert_eq!(
            judge(&[frame(0, 44.0, Some(0.95), false)], expect),
            Judgment::Good
        );
        let Judgment::Bad(why) = judge(
            &[
                frame(3, 44.0, Some(0.95), false),
                frame(4, 9.8, None, false),
            ],
            expect,
        ) else {
            panic!("a solid frame must be bad");
        };
        assert!(why.contains("frame 4"), "{why}");
        // Encoded at 96×54 and scaled up: still the source's picture, but blurred.
        assert!(matches!(
            judge(&[frame(7, 23.0, Some(0.2), false)], expect),
            Judgment::Suspect(_)
        ));
        // Half the size scaled up: fine PSNR, little detail.
        let Judgment::Suspect(why) = judge(&[frame(7, 34.0, Some(0.55), false)], expect) else {
            panic!("lost detail must be suspect");
        };
        assert!(why.contains("55%"), "{why}");
        // A repeated frame.
        assert!(matches!(
            judge(&[frame(8, 40.0, Some(0.9), true)], expect),
            Judgment::Suspect(_)
        ));
        // At a bitrate, only another picture counts.
        assert_eq!(
            judge(
                &[frame(9, 19.5, Some(0.03), false)],
                Expectation::for_crf(None)
            ),
            Judgment::Good
        );
    }

    #[test]
    fn repeats_count_only_where_the_source_moves() {
        let a = pattern(0);
        let b = pattern(9);
        let (pa, pb) = (plane(64, &a), plane(64, &b));
        // Source moves a → b; result shows a twice.
        let copied = measure(1, &pb, &pa, Some((&pa, &pa)), true, false, None);
        assert!(copied.repeats);
        // Source still: a repeated result frame is what an encoder gives.
        let still = measure(1, &pa, &pa, Some((&pa, &pa)), true, false, None);
        assert!(!still.repeats);
        assert_eq!(still.detail, Some(1.0));
    }

    /// One 320×240 frame's luma as FFmpeg makes it from `filter`, and FFmpeg's SSIM (Y) of the
    /// noisy frame against the clean one.
    fn ffmpeg_planes() -> (Vec<u8>, Vec<u8>, f64) {
        let dir = tempfile::tempdir().unwrap();
        let plane = |extra: &str, name: &str| {
            let path = dir.path().join(name);
            let status = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-f", "lavfi", "-i"])
                .arg(format!(
                    "testsrc2=size=320x240:rate=1,format=yuv420p{extra}"
                ))
                .args(["-frames:v", "1", "-vf", "extractplanes=y", "-f", "rawvideo"])
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success());
            std::fs::read(&path).unwrap()
        };
        let (clean, noisy) = (plane("", "clean"), plane(",noise=alls=20", "noisy"));
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "info", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=320x240:rate=1,format=yuv420p,noise=alls=20")
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=1,format=yuv420p",
            ])
            .args([
                "-frames:v",
                "1",
                "-lavfi",
                "[0:v][1:v]ssim",
                "-f",
                "null",
                "-",
            ])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        let y = log
            .split_whitespace()
            .find_map(|w| w.strip_prefix("Y:"))
            .unwrap()
            .parse()
            .unwrap();
        (clean, noisy, y)
    }

    #[test]
    fn ssim_is_ffmpegs() {
        let (clean, noisy, expected) = ffmpeg_planes();
        let plane = |pixels| Plane { width: 320, pixels };
        assert_eq!(ssim(&plane(&clean), &plane(&clean)), 1.0);
        let ours = ssim(&plane(&clean), &plane(&noisy));
        assert!(ours < 0.95, "{ours}");
        assert!(
            (ours - expected).abs() < 0.0005,
            "ours {ours}, FFmpeg's {expected}"
        );
    }
}
