//! The HSV colour augmentation (`augment_hsv`) as OpenCV 5 computes it: `cvtColor(BGR2HSV)` on 8-bit pixels
//! with its integer division tables (hue in 0..180), a lookup table per channel, and `cvtColor(HSV2BGR)` in
//! single precision (`v·(1 − s·f)` with a fused multiply-add), truncated to 8 bits. Both directions give
//! OpenCV 5.0's pixels for every input (checked against `cv2` on all 2²⁴ colours and all 180·256² HSV
//! triples), except in the last (width mod vector width) pixels of a row, where OpenCV's scalar remainder
//! rounds instead of truncating. Everything per pixel is a handful of integer and float operations
//! and five table reads; the tables are built once per image (the gains) or once per process.

use std::sync::OnceLock;

/// Fixed-point bits of OpenCV's division tables (`hsv_shift`).
const SHIFT: i32 = 12;

/// Process-wide tables: `sdiv[v] = round(255·2¹²/v)`, `hdiv[d] = round(180·2¹²/(6d))`, and per hue (0..180) its
/// sector and the fraction within it as `cvtColor(HSV2BGR)` computes them.
struct Tables {
    sdiv: [i32; 256],
    hdiv: [i32; 256],
    sector: [u8; 256],
    frac: [f32; 256],
    /// Per hue: the factor of the middle channel (`h` or `1 - h` within the sector) and which output channel
    /// (0 r, 1 g, 2 b) is the largest, the middle and the smallest.
    mid: [f32; 256],
    order: [[u8; 3]; 256],
    /// `p = v·(1 - s)`, truncated, for every (s, v), index `s * 256 + v`.
    low: Vec<u8>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Tables {
            sdiv: [0; 256],
            hdiv: [0; 256],
            sector: [0; 256],
            frac: [0.0; 256],
            mid: [0.0; 256],
            order: [[0; 3]; 256],
            low: vec![0; 256 * 256],
        };
        for i in 1..256 {
            t.sdiv[i] = ((255 << SHIFT) as f64 / i as f64).round_ties_even() as i32;
            t.hdiv[i] = ((180 << SHIFT) as f64 / (6.0 * i as f64)).round_ties_even() as i32;
        }
        for h in 0..256 {
            let mut hf = h as f32 * (6.0f32 / 180.0);
            while hf >= 6.0 {
                hf -= 6.0;
            }
            let sector = hf.floor();
            t.sector[h] = sector as u8;
            t.frac[h] = hf - sector;
            // OpenCV's sector_data lists the tab index (0 v, 1 p, 2 q, 3 t) of b, g, r
            let [b, g, r] = SECTORS[sector as usize];
            let of = |k: usize| [r, g, b].iter().position(|&x| x == k);
            let mid = of(2).or(of(3)).expect("each sector has q or t");
            t.mid[h] = if of(2).is_some() { t.frac[h] } else { 1.0 - t.frac[h] };
            t.order[h] = [of(0), Some(mid), of(1)].map(|c| c.expect("v and p in every sector") as u8);
        }
        for s in 0..256 {
            for v in 0..256 {
                let (vf, sf) = (v as f32 * (1.0 / 255.0), s as f32 * (1.0 / 255.0));
                t.low[s * 256 + v] = level(vf * (1.0 - sf) * 255.0);
            }
        }
        t
    })
}

/// RGB to OpenCV's 8-bit HSV (H in 0..180, S and V in 0..256), with its integer arithmetic.
#[cfg(test)]
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    hsv_of(tables(), r, g, b)
}

#[inline(always)]
fn hsv_of(t: &Tables, r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    let v = r.max(g).max(b);
    let diff = v - r.min(g).min(b);
    let s = (diff * t.sdiv[v as usize] + (1 << (SHIFT - 1))) >> SHIFT;
    let h = if v == r {
        g - b
    } else if v == g {
        b - r + 2 * diff
    } else {
        r - g + 4 * diff
    };
    let h = (h * t.hdiv[diff as usize] + (1 << (SHIFT - 1))) >> SHIFT;
    let h = if h < 0 { h + 180 } else { h };
    (h as u8, s as u8, v as u8)
}

/// OpenCV's 8-bit HSV back to RGB (single precision, truncated).
#[cfg(test)]
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    rgb_of(tables(), h, s, v)
}

#[cfg(test)]
fn rgb_of(t: &Tables, h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    if s == 0 {
        return (v, v, v);
    }
    let (vf, sf) = (v as f32 * (1.0 / 255.0), s as f32 * (1.0 / 255.0));
    let f = t.frac[h as usize];
    let q = |x: f32| level(x * 255.0);
    let tab = [v, q(vf * (1.0 - sf)), q(vf * (-sf).mul_add(f, 1.0)), q(vf * (-sf).mul_add(1.0 - f, 1.0))];
    let [bi, gi, ri] = SECTORS[t.sector[h as usize] as usize];
    (tab[ri], tab[gi], tab[bi])
}

/// Which of (v, p, q, t) each of (b, g, r) is, per sector (OpenCV's `sector_data`).
const SECTORS: [[usize; 3]; 6] = [[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]];

/// A level of `cvtColor(HSV2BGR)`: the float value truncated (and clamped) to 0..=255.
#[inline(always)]
fn level(x: f32) -> u8 {
    x as u8
}

/// The per-channel lookup tables of one draw of gains (`augment_hsv`: `lut_hue = (x·r₀) mod 180`,
/// `lut_sat = clip(x·r₁, 0, 255)`, `lut_val = clip(x·r₂, 0, 255)`, truncated to 8 bits).
pub fn gain_tables(gains: [f64; 3]) -> [[u8; 256]; 3] {
    tables_of(|k, x| x as f64 * gains[k])
}

/// The three tables from `product(channel, x)` = x·gain in some precision.
fn tables_of(product: impl Fn(usize, usize) -> f64) -> [[u8; 256]; 3] {
    let entry = |k: usize, x: usize| {
        let v = product(k, x);
        if k == 0 { (v as i64).rem_euclid(180) as u8 } else { v.clamp(0.0, 255.0) as u8 }
    };
    std::array::from_fn(|k| std::array::from_fn(|x| entry(k, x)))
}

/// Apply hue, saturation and value gains to interleaved RGB pixels in place (YOLOv5's `augment_hsv` with the
/// gains `r` it draws: `lut = x·r` per channel, hue mod 180, saturation and value clipped to 255): eight
/// pixels at a time with AVX2 where the processor has it, the same arithmetic one pixel at a time otherwise
/// (and for the tail, and for gains outside 0..3).
pub fn apply(pixels: &mut [u8], gains: [f64; 3]) {
    let lut = gain_tables(gains);
    #[cfg(target_arch = "x86_64")]
    if gains.iter().all(|g| (0.0..3.0).contains(g))
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        let single = single_precision_suffices(gains, &lut);
        // SAFETY: the processor supports AVX2 and FMA (checked above)
        let done =
            unsafe { if single { avx2::apply::<true>(pixels, gains) } else { avx2::apply::<false>(pixels, gains) } };
        return apply_scalar(&mut pixels[done..], &lut);
    }
    apply_scalar(pixels, &lut)
}

/// Whether the gain tables computed in single precision equal `lut` (most draws: then the vector pass uses
/// eight f32 lanes instead of twice four f64 lanes).
fn single_precision_suffices(gains: [f64; 3], lut: &[[u8; 256]; 3]) -> bool {
    let g = gains.map(|g| g as f32);
    tables_of(|k, x| (x as f32 * g[k]) as f64) == *lut
}

/// [`apply`] one pixel at a time.
fn apply_scalar(pixels: &mut [u8], lut: &[[u8; 256]; 3]) {
    let t = tables();
    for p in pixels.chunks_exact_mut(3) {
        let (h, s, v) = hsv_of(t, p[0], p[1], p[2]);
        let (h, s, v) = (lut[0][h as usize] as usize, lut[1][s as usize] as usize, lut[2][v as usize]);
        // rgb_of with its tables: the largest channel is v, the smallest p, the middle one v·(1 - s·f)
        let low = t.low[s * 256 + v as usize];
        let mid = if s == 0 {
            v
        } else {
            let (vf, sf) = (v as f32 * (1.0 / 255.0), s as f32 * (1.0 / 255.0));
            level(vf * (-sf).mul_add(t.mid[h], 1.0) * 255.0)
        };
        let [a, b, c] = t.order[h];
        p[a as usize] = v;
        p[b as usize] = mid;
        p[c as usize] = low;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! [`super::apply_scalar`] on eight pixels per step. The table reads of the scalar code become arithmetic:
    //! divisions for `sdiv` and `hdiv` (`f32` division rounds to the same integers for every 1..=255), the
    //! gain tables' own f64 products (or f32 products where they give the same 256 entries, checked per image),
    //! and per-sector selects; the float operations are the same ones in the
    //! same order, so the results are identical (the test checks all 2²⁴ colours).
    use std::arch::x86_64::*;

    /// Process whole groups of eight pixels while 32 bytes remain readable; returns the bytes done.
    ///
    /// # Safety
    /// The processor must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn apply<const SINGLE: bool>(px: &mut [u8], gains: [f64; 3]) -> usize {
        let mut off = 0;
        let gains = Gains { double: gains.map(|g| _mm256_set1_pd(g)), single: gains.map(|g| _mm256_set1_ps(g as f32)) };
        let spread = _mm256_setr_epi8(
            0, 1, 2, -128, 3, 4, 5, -128, 6, 7, 8, -128, 9, 10, 11, -128, 0, 1, 2, -128, 3, 4, 5, -128, 6, 7, 8, -128,
            9, 10, 11, -128,
        );
        let gather = _mm256_setr_epi8(
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -128, -128, -128, -128, 0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14,
            -128, -128, -128, -128,
        );
        let (to_lanes, from_lanes) =
            (_mm256_setr_epi32(0, 1, 2, 0, 3, 4, 5, 0), _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7));
        let byte = _mm256_set1_epi32(0xFF);
        while off + 32 <= px.len() {
            // SAFETY: 32 bytes from `off` are inside `px`; the store writes the first 24 of them
            unsafe {
                let ptr = px.as_mut_ptr().add(off);
                let raw = _mm256_loadu_si256(ptr as *const __m256i);
                let p = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(raw, to_lanes), spread);
                let (r, g, b) = (
                    _mm256_and_si256(p, byte),
                    _mm256_and_si256(_mm256_srli_epi32(p, 8), byte),
                    _mm256_srli_epi32(p, 16),
                );
                let out = pixel8::<SINGLE>(r, g, b, &gains);
                let packed = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(out, gather), from_lanes);
                // 16 + 8 bytes (a masked store is microcoded on some processors)
                _mm_storeu_si128(ptr as *mut __m128i, _mm256_castsi256_si128(packed));
                _mm_storel_epi64(ptr.add(16) as *mut __m128i, _mm256_extracti128_si256::<1>(packed));
            }
            off += 24;
        }
        off
    }

    /// The gains broadcast, in both precisions.
    struct Gains {
        double: [__m256d; 3],
        single: [__m256; 3],
    }

    /// Eight pixels (channels in the low byte of each 32-bit lane) through HSV, the tables and back; returns
    /// `r | g << 8 | b << 16` per lane.
    #[target_feature(enable = "avx2,fma")]
    fn pixel8<const SINGLE: bool>(r: __m256i, g: __m256i, b: __m256i, gains: &Gains) -> __m256i {
        let round = _mm256_set1_epi32(1 << 11);
        let v = _mm256_max_epi32(_mm256_max_epi32(r, g), b);
        let diff = _mm256_sub_epi32(v, _mm256_min_epi32(_mm256_min_epi32(r, g), b));
        // v = 0 or diff = 0 divide by zero; the quotient is then multiplied by diff = 0
        let sdiv = _mm256_cvtps_epi32(_mm256_div_ps(_mm256_set1_ps(1_044_480.0), _mm256_cvtepi32_ps(v)));
        let s = _mm256_srai_epi32(_mm256_add_epi32(_mm256_mullo_epi32(diff, sdiv), round), 12);
        let (vr, vg) = (_mm256_cmpeq_epi32(v, r), _mm256_cmpeq_epi32(v, g));
        let d2 = _mm256_add_epi32(diff, diff);
        let h_r = _mm256_sub_epi32(g, b);
        let h_g = _mm256_add_epi32(_mm256_sub_epi32(b, r), d2);
        let h_b = _mm256_add_epi32(_mm256_sub_epi32(r, g), _mm256_add_epi32(d2, d2));
        let hn = _mm256_blendv_epi8(_mm256_blendv_epi8(h_b, h_g, vg), h_r, vr);
        let hdiv = _mm256_cvtps_epi32(_mm256_div_ps(_mm256_set1_ps(122_880.0), _mm256_cvtepi32_ps(diff)));
        let h = _mm256_srai_epi32(_mm256_add_epi32(_mm256_mullo_epi32(hn, hdiv), round), 12);
        let h = _mm256_add_epi32(
            h,
            _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), h), _mm256_set1_epi32(180)),
        );
        // the gain tables as arithmetic (gathers are slow on many processors): x·gain in f64, truncated, as
        // `gain_tables` computes them
        let lut_of = |x: __m256i, k: usize| {
            if SINGLE {
                let v = _mm256_mul_ps(_mm256_cvtepi32_ps(x), gains.single[k]);
                _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(255.0)))
            } else {
                let lo = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(x)), gains.double[k]);
                let hi = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256::<1>(x)), gains.double[k]);
                let clamp = |v: __m256d| {
                    _mm256_cvttpd_epi32(_mm256_min_pd(_mm256_max_pd(v, _mm256_setzero_pd()), _mm256_set1_pd(255.0)))
                };
                _mm256_set_m128i(clamp(hi), clamp(lo))
            }
        };
        let (h2, s2, v2) = (lut_of(h, 0), lut_of(s, 1), lut_of(v, 2));
        // hue: x·gain < 540 for a gain below 3 (the caller checks), so two subtractions make it mod 180
        let k180 = _mm256_set1_epi32(180);
        let wrap = |x: __m256i| _mm256_sub_epi32(x, _mm256_andnot_si256(_mm256_cmpgt_epi32(k180, x), k180));
        let h2 = wrap(wrap(h2));
        let inv255 = _mm256_set1_ps(1.0 / 255.0);
        let (vf, sf) = (_mm256_mul_ps(_mm256_cvtepi32_ps(v2), inv255), _mm256_mul_ps(_mm256_cvtepi32_ps(s2), inv255));
        let hh = _mm256_mul_ps(_mm256_cvtepi32_ps(h2), _mm256_set1_ps(6.0f32 / 180.0));
        let sector = _mm256_cvttps_epi32(hh);
        let frac = _mm256_sub_ps(hh, _mm256_cvtepi32_ps(sector));
        let (one, k255) = (_mm256_set1_ps(1.0), _mm256_set1_ps(255.0));
        let level = |x: __m256| _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_mul_ps(vf, x), k255));
        let p = level(_mm256_sub_ps(one, sf));
        let q = level(_mm256_fnmadd_ps(sf, frac, one));
        let t = level(_mm256_fnmadd_ps(sf, _mm256_sub_ps(one, frac), one));
        let m = |k: i32| _mm256_cmpeq_epi32(sector, _mm256_set1_epi32(k));
        let or = _mm256_or_si256;
        let pick = _mm256_blendv_epi8;
        let rr = pick(pick(pick(v2, q, m(1)), p, or(m(2), m(3))), t, m(4));
        let gg = pick(pick(pick(p, t, m(0)), v2, or(m(1), m(2))), q, m(3));
        let bb = pick(pick(pick(v2, p, or(m(0), m(1))), t, m(2)), q, m(5));
        or(or(rr, _mm256_slli_epi32(gg, 8)), _mm256_slli_epi32(bb, 16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_colours_convert_as_opencv_does() {
        // cv2.cvtColor(np.uint8([[[b, g, r]]]), cv2.COLOR_BGR2HSV)
        assert_eq!(rgb_to_hsv(255, 0, 0), (0, 255, 255));
        assert_eq!(rgb_to_hsv(0, 255, 0), (60, 255, 255));
        assert_eq!(rgb_to_hsv(0, 0, 255), (120, 255, 255));
        assert_eq!(rgb_to_hsv(128, 128, 128), (0, 0, 128));
        assert_eq!(rgb_to_hsv(10, 200, 30), (63, 242, 200));
        assert_eq!(hsv_to_rgb(0, 255, 255), (255, 0, 0));
        assert_eq!(hsv_to_rgb(60, 255, 255), (0, 255, 0));
        // cv2.cvtColor(HSV2BGR) of OpenCV 5.0 on a 64x64 image of the colour (its vector path truncates; the
        // scalar remainder of a row, width mod the vector width, rounds instead)
        assert_eq!(hsv_to_rgb(90, 128, 200), (99, 199, 200));
        assert_eq!(hsv_to_rgb(0, 1, 1), (1, 0, 0));
        assert_eq!(hsv_to_rgb(1, 90, 85), (85, 56, 55));
    }

    #[test]
    fn round_trip_is_close_for_every_grey_and_a_colour_grid() {
        // truncation loses up to 6 levels, as in OpenCV 5 ((5, 60, 255) comes back as (4, 54, 255) there too)
        assert_eq!(hsv_to_rgb(rgb_to_hsv(5, 60, 255).0, rgb_to_hsv(5, 60, 255).1, 255), (4, 54, 255));
        for r in (0..=255).step_by(5) {
            for g in (0..=255).step_by(15) {
                for b in (0..=255).step_by(15) {
                    let (h, s, v) = rgb_to_hsv(r, g, b);
                    let (r2, g2, b2) = hsv_to_rgb(h, s, v);
                    for (a, z) in [(r, r2), (g, g2), (b, b2)] {
                        assert!((a as i32 - z as i32).abs() <= 7, "{:?} -> {:?}", (r, g, b), (r2, g2, b2));
                    }
                }
            }
        }
    }

    #[test]
    fn the_table_driven_pass_equals_the_per_pixel_conversion() {
        let t = tables();
        let gains = [1.013, 0.61, 1.37];
        let lut = gain_tables(gains);
        let mut px: Vec<u8> = (0..3 * 4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let want: Vec<u8> = px
            .chunks_exact(3)
            .flat_map(|p| {
                let (h, s, v) = hsv_of(t, p[0], p[1], p[2]);
                let (r, g, b) = rgb_of(t, lut[0][h as usize], lut[1][s as usize], lut[2][v as usize]);
                [r, g, b]
            })
            .collect();
        apply_scalar(&mut px, &lut);
        assert_eq!(px, want);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn every_colour_gives_the_same_pixel_in_the_vector_and_the_scalar_pass() {
        if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")) {
            eprintln!("SKIPPED: no AVX2 and FMA on this processor, the vector pass is not used here");
            return;
        }
        let all: Vec<u8> = (0..1u32 << 24).flat_map(|c| [(c >> 16) as u8, (c >> 8) as u8, c as u8]).collect();
        let mut singles = 0;
        for gains in [[1.0, 1.0, 1.0], [1.013, 0.61, 1.37], [0.985, 1.7, 0.4], [2.9, 0.0, 2.2], [1.0, 1.1, 0.3]] {
            let lut = gain_tables(gains);
            let mut slow = all.clone();
            apply_scalar(&mut slow, &lut);
            let single = single_precision_suffices(gains, &lut);
            singles += single as usize;
            for precision in [false, true].into_iter().filter(|&p| !p || single) {
                let mut fast = all.clone();
                // SAFETY: AVX2 and FMA are present (checked above)
                let done = unsafe {
                    if precision {
                        avx2::apply::<true>(&mut fast, gains)
                    } else {
                        avx2::apply::<false>(&mut fast, gains)
                    }
                };
                apply_scalar(&mut fast[done..], &lut);
                if let Some(i) = (0..fast.len()).find(|&i| fast[i] != slow[i]) {
                    let c = i / 3 * 3;
                    panic!(
                        "gains {gains:?} (f32 {precision}): colour {:?} gives {:?} and {:?}",
                        &all[c..c + 3],
                        &fast[c..c + 3],
                        &slow[c..c + 3]
                    );
                }
            }
        }
        assert!(singles >= 2, "the single-precision pass was checked {singles} times");
    }

    #[test]
    fn unit_gains_change_pixels_by_the_round_trip_only() {
        let mut px = vec![114, 114, 114, 250, 10, 10, 3, 77, 200];
        apply(&mut px, [1.0, 1.0, 1.0]);
        assert_eq!(&px[..3], &[114, 114, 114]);
        assert!(
            px.iter().zip([114u8, 114, 114, 250, 10, 10, 3, 77, 200]).all(|(a, b)| (*a as i32 - b as i32).abs() <= 3)
        );
        let mut grey = vec![200u8; 3];
        apply(&mut grey, [1.0, 1.0, 0.5]);
        assert_eq!(grey, [100, 100, 100]);
    }
}
