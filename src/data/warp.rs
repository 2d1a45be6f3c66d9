//! Geometric warps as OpenCV 5 computes them for YOLOv5's `random_perspective` (`cv2.warpAffine` and
//! `cv2.warpPerspective`, bilinear, constant border 114): source coordinates and bilinear weights in floating
//! point, rounded to the nearest level (half to even). Against OpenCV 5.0 on noise this differs by one level
//! on about one value in 10⁴ (the order of the float operations); on YOLOv5's default hyperparameters (scale
//! and translation only) the warp separates into a blend of two source rows and a resampling of that row,
//! both vectorised.

use super::imageops::{Image, PAD_VALUE, invert3};

/// Warp with the 3x3 matrix `m` that maps source to destination pixels into a `w` x `h` image (OpenCV
/// `warpAffine` when the last row is (0, 0, 1), else `warpPerspective`; bilinear, constant border `PAD_VALUE`).
pub fn warp(img: &Image, m: &[[f64; 3]; 3], w: u32, h: u32) -> Image {
    let mut out = vec![PAD_VALUE; w as usize * h as usize * 3];
    sample_into(img, m, w as usize, h as usize, &mut out);
    Image::from_raw(w, h, out).expect("buffer has w*h*3 bytes")
}

/// The output pixels whose taps touch the image, into `out` (`w * rows * 3` bytes filled with `PAD_VALUE`).
fn sample_into(img: &Image, m: &[[f64; 3]; 3], w: usize, rows: usize, out: &mut [u8]) {
    let inv = invert3(m);
    let src = Source { px: img.as_raw(), w: img.width() as i32, h: img.height() as i32 };
    let affine = m[2] == [0.0, 0.0, 1.0];
    if affine && inv[0][1] == 0.0 && inv[1][0] == 0.0 {
        // scale and translation only: every output column reads the same source columns on every row
        let cols: Vec<f64> = (0..w).map(|x| inv[0][0] * x as f64 + inv[0][2]).collect();
        let ys = (0..rows).map(|y| inv[1][1] * y as f64 + inv[1][2]);
        separable(&src, &cols, ys, w, out);
        return;
    }
    for (y, row) in out.chunks_exact_mut(w * 3).enumerate() {
        let yf = y as f64;
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let xf = x as f64;
            let z = if affine { 1.0 } else { inv[2][0] * xf + inv[2][1] * yf + inv[2][2] };
            let z = if z != 0.0 { 1.0 / z } else { 0.0 };
            let sx = (inv[0][0] * xf + inv[0][1] * yf + inv[0][2]) * z;
            let sy = (inv[1][0] * xf + inv[1][1] * yf + inv[1][2]) * z;
            src.sample(sx, sy, px);
        }
    }
}

/// The axis-aligned warp: `cols` and `ys` are the source positions of every output column and row. The
/// rows are blended first (contiguous, vectorised), then each output pixel from two blended values.
fn separable(src: &Source, cols: &[f64], ys: impl Iterator<Item = f64>, w: usize, out: &mut [u8]) {
    let (sw, sh) = (src.w as usize, src.h);
    let pad_row = vec![PAD_VALUE; sw * 3];
    // blended row with one border pixel on each side: index 3 * (column + 1) + channel (and two spare
    // values, so four can be read from any tap's right neighbour)
    let mut v = vec![PAD_VALUE as f32; (sw + 2) * 3 + 2];
    // the output columns whose taps touch the image are contiguous (the map is linear); per column the
    // blended-row index of its left tap and its weight
    let touches = |sx: &f64| sx.floor() >= -1.0 && sx.floor() < sw as f64;
    let (Some(xa), Some(last)) = (cols.iter().position(touches), cols.iter().rposition(touches)) else { return };
    let taps: Vec<(usize, f32)> = cols[xa..=last]
        .iter()
        .map(|&sx| {
            let ix = sx.floor();
            (3 * (ix.clamp(-1.0, sw as f64 - 1.0) as i64 + 1) as usize, (sx - ix) as f32)
        })
        .collect();
    let (lo, hi) = taps.iter().fold((usize::MAX, 0), |(lo, hi), t| (lo.min(t.0), hi.max(t.0)));
    // the bytes of a source row the taps read (`v` holds byte b at 3 + b)
    let (b0, b1) = (lo.saturating_sub(3), (hi + 3).min(sw * 3));
    #[cfg(target_arch = "x86_64")]
    let (vector, wide) = (std::arch::is_x86_feature_detected!("ssse3"), std::arch::is_x86_feature_detected!("avx2"));
    for (y, sy) in ys.enumerate() {
        let iy = sy.floor();
        if iy < -1.0 || iy >= sh as f64 {
            continue;
        }
        let (iy, fy) = (iy as i32, (sy - iy) as f32);
        let row = |r: i32| {
            if r >= 0 && r < sh { &src.px[r as usize * sw * 3..(r as usize + 1) * sw * 3] } else { &pad_row[..] }
        };
        let (r0, r1) = (row(iy), row(iy + 1));
        let (d, r0, r1) = (&mut v[3 + b0..3 + b1], &r0[b0..b1], &r1[b0..b1]);
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: the processor has AVX2 (checked above)
            unsafe { blend_rows_avx2(d, r0, r1, fy) };
        } else {
            blend_rows(d, r0, r1, fy);
        }
        #[cfg(not(target_arch = "x86_64"))]
        blend_rows(d, r0, r1, fy);
        let dst = &mut out[(y * w + xa) * 3..(y * w + last + 1) * 3];
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if vector {
            // SAFETY: the processor has SSSE3 (checked above)
            done = unsafe { ssse3::resample_row(&v, &taps, dst) };
        }
        resample_row(&v, &taps[done..], &mut dst[3 * done..]);
    }
}

/// Blend two source rows: `a + fy · (b - a)` per byte.
#[inline(always)]
fn blend_rows(d: &mut [f32], r0: &[u8], r1: &[u8], fy: f32) {
    for ((d, &a), &b) in d.iter_mut().zip(r0).zip(r1) {
        let a = a as f32;
        *d = a + fy * (b as f32 - a);
    }
}

/// [`blend_rows`] compiled for AVX2 (eight lanes; the same operations, so the same values).
///
/// # Safety
/// The processor must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blend_rows_avx2(d: &mut [f32], r0: &[u8], r1: &[u8], fy: f32) {
    blend_rows(d, r0, r1, fy)
}

/// Blend each output pixel of a row from the blended source row `v`: `left + f · (right - left)`, rounded.
fn resample_row(v: &[f32], taps: &[(usize, f32)], dst: &mut [u8]) {
    for (px, &(k, f)) in dst.chunks_exact_mut(3).zip(taps) {
        for c in 0..3 {
            let (l, r) = (v[k + c], v[k + 3 + c]);
            px[c] = round_level(l + f * (r - l));
        }
    }
}

/// Round a value in 0..=255 half to even (`saturate_cast<uchar>`), without a library call.
#[inline(always)]
fn round_level(x: f32) -> u8 {
    const MAGIC: f32 = 8_388_608.0; // 2²³: adding it leaves no fraction bits, the FPU rounds half to even
    ((x.clamp(0.0, 255.0) + MAGIC) - MAGIC) as u8
}

#[cfg(target_arch = "x86_64")]
mod ssse3 {
    //! [`super::resample_row`] four pixels per step, with the same float operations: two 4-value reads per
    //! pixel, a blend, a rounding conversion (half to even, as the scalar code), packing and one shuffle.
    use std::arch::x86_64::*;

    /// Resample whole groups of four pixels while the 16-byte store stays inside the pixels still to be
    /// written; returns the pixels done.
    ///
    /// # Safety
    /// The processor must support SSSE3.
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn resample_row(v: &[f32], taps: &[(usize, f32)], dst: &mut [u8]) -> usize {
        let compact = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -128, -128, -128, -128);
        let mut i = 0;
        while i + 6 <= taps.len() && 3 * i + 16 <= dst.len() {
            let px = |j: usize| {
                let (k, f) = taps[i + j];
                assert!(k + 7 <= v.len(), "tap {k} reads past the blended row");
                // SAFETY: k + 7 <= v.len() (asserted)
                let (l, r) = unsafe { (_mm_loadu_ps(v.as_ptr().add(k)), _mm_loadu_ps(v.as_ptr().add(k + 3))) };
                _mm_cvtps_epi32(_mm_add_ps(l, _mm_mul_ps(_mm_set1_ps(f), _mm_sub_ps(r, l))))
            };
            let bytes = _mm_packus_epi16(_mm_packs_epi32(px(0), px(1)), _mm_packs_epi32(px(2), px(3)));
            // SAFETY: 3 * i + 16 <= dst.len(); the 4 bytes past these four pixels are the next pixels', written
            // after this store
            unsafe { _mm_storeu_si128(dst.as_mut_ptr().add(3 * i) as *mut __m128i, _mm_shuffle_epi8(bytes, compact)) };
            i += 4;
        }
        i
    }
}

struct Source<'a> {
    px: &'a [u8],
    w: i32,
    h: i32,
}

impl Source<'_> {
    /// Blend the 2x2 neighbourhood of the source position (`sx`, `sy`) into `out` (taps outside read the
    /// border value); a position whose four taps all fall outside leaves `out` (the border) untouched.
    #[inline(always)]
    fn sample(&self, sx: f64, sy: f64, out: &mut [u8]) {
        let (x0, y0) = (sx.floor(), sy.floor());
        if !(x0 >= -1.0 && y0 >= -1.0 && x0 < self.w as f64 && y0 < self.h as f64) {
            return; // also NaN
        }
        let (ix, iy) = (x0 as i32, y0 as i32);
        let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
        let stride = self.w as usize * 3;
        let tap = |x: i32, y: i32, c: usize| {
            if x < 0 || y < 0 || x >= self.w || y >= self.h {
                PAD_VALUE as f32
            } else {
                self.px[y as usize * stride + x as usize * 3 + c] as f32
            }
        };
        for (c, o) in out.iter_mut().enumerate().take(3) {
            let (p00, p01, p10, p11) = (tap(ix, iy, c), tap(ix + 1, iy, c), tap(ix, iy + 1, c), tap(ix + 1, iy + 1, c));
            let top = p00 + fx * (p01 - p00);
            let bottom = p10 + fx * (p11 - p10);
            *o = round_level(top + fy * (bottom - top));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// Bilinear warp in f64 (another order of operations): the warp may differ from it by one level, rarely.
    fn float_warp(img: &Image, m: &[[f64; 3]; 3], w: u32, h: u32) -> Image {
        let inv = invert3(m);
        let (sw, sh) = (img.width() as i64, img.height() as i64);
        Image::from_fn(w, h, |x, y| {
            let (xf, yf) = (x as f64, y as f64);
            let z = inv[2][0] * xf + inv[2][1] * yf + inv[2][2];
            let sx = (inv[0][0] * xf + inv[0][1] * yf + inv[0][2]) / z;
            let sy = (inv[1][0] * xf + inv[1][1] * yf + inv[1][2]) / z;
            let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
            let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
            let px = |xx: i64, yy: i64, c: usize| -> f64 {
                if xx < 0 || yy < 0 || xx >= sw || yy >= sh {
                    PAD_VALUE as f64
                } else {
                    img.get_pixel(xx as u32, yy as u32)[c] as f64
                }
            };
            Rgb(std::array::from_fn(|c| {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
                let bot = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
                (top * (1.0 - fy) + bot * fy).round() as u8
            }))
        })
    }

    fn noise(w: u32, h: u32) -> Image {
        let mut s = 12345u32;
        Image::from_fn(w, h, |_, _| {
            Rgb(std::array::from_fn(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 24) as u8
            }))
        })
    }

    #[test]
    fn identity_and_whole_pixel_shifts_copy_pixels() {
        let img = noise(9, 7);
        let eye = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert_eq!(warp(&img, &eye, 9, 7), img);
        let shift = [[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]];
        let out = warp(&img, &shift, 9, 7);
        assert_eq!(out.get_pixel(5, 3), img.get_pixel(3, 2));
        assert_eq!(out.get_pixel(0, 0), &Rgb([PAD_VALUE; 3]));
        // the same shift through the perspective path
        let tiny = [[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [1e-12, 0.0, 1.0]];
        assert_eq!(warp(&img, &tiny, 9, 7).get_pixel(5, 3), img.get_pixel(3, 2));
    }

    #[test]
    fn the_separable_path_equals_the_general_one() {
        let img = noise(50, 40);
        // scale and translate, crossing every border; the tiny shear forces the general path (which blends
        // columns first, so a value may differ by one level where a blend lands on a half)
        for (sx, sy, tx, ty) in
            [(1.3, 0.7, -5.3, 3.1), (0.5, 0.5, 10.0, 12.5), (1.0, 1.0, -60.0, 0.0), (2.2, 1.9, 7.7, -20.2)]
        {
            let m = [[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]];
            let general = [[sx, 1e-13, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]];
            let (a, b) = (warp(&img, &m, 61, 47), warp(&img, &general, 61, 47));
            let off: Vec<(i32, i32)> =
                a.iter().zip(b.iter()).map(|(x, y)| (*x as i32, *y as i32)).filter(|(x, y)| x != y).collect();
            assert!(off.iter().all(|(x, y)| (x - y).abs() <= 1) && off.len() * 1000 < a.len(), "{m:?}: {off:?}");
        }
    }

    #[test]
    fn rotations_and_perspective_agree_with_a_float_warp() {
        let img = noise(64, 48);
        let (c, s) = (0.3f64.cos() * 1.3, 0.3f64.sin() * 1.3);
        let affine = [[c, s, -10.0], [-s, c, 20.0], [0.0, 0.0, 1.0]];
        let persp = [[c, s, -10.0], [-s, c, 20.0], [4e-4, -3e-4, 1.0]];
        for m in [affine, persp] {
            let (a, b) = (warp(&img, &m, 80, 60), float_warp(&img, &m, 80, 60));
            let diffs: Vec<i32> = a.iter().zip(b.iter()).map(|(x, y)| (*x as i32 - *y as i32).abs()).collect();
            let off = diffs.iter().filter(|&&d| d > 0).count();
            assert!(diffs.iter().all(|&d| d <= 1), "max {}", diffs.iter().max().unwrap());
            assert!(off * 1000 < diffs.len(), "{off} of {} values differ", diffs.len());
        }
    }
}
