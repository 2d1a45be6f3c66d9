//! Resampling as OpenCV's `cv2.resize` does it for YOLOv5 (`load_image` and `letterbox` in
//! utils/dataloaders.py, utils/augmentations.py): bilinear without antialiasing (`INTER_LINEAR`, used while
//! augmenting, when enlarging, and by letterbox) and pixel-area averaging (`INTER_AREA`, used to shrink
//! images that are not augmented). Both are separable; pixel centres sit at half-integer coordinates.

use super::imageops::Image;

/// The interpolation of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interp {
    /// `cv2.INTER_LINEAR`: two taps per axis, no antialiasing.
    Linear,
    /// `cv2.INTER_AREA`: the average over each destination pixel's footprint (for shrinking; enlarging falls
    /// back to linear, as OpenCV's does in effect).
    Area,
}

/// Per destination index along one axis: the source indices and their weights.
fn taps(src: u32, dst: u32, interp: Interp) -> Vec<Vec<(usize, f32)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            if interp == Interp::Area && scale > 1.0 {
                let (lo, hi) = (d as f64 * scale, (d as f64 + 1.0) * scale);
                let mut out = Vec::new();
                let mut j = lo.floor() as usize;
                while (j as f64) < hi && j < src as usize {
                    let overlap = (hi.min(j as f64 + 1.0) - lo.max(j as f64)).max(0.0);
                    if overlap > 0.0 {
                        out.push((j, (overlap / scale) as f32));
                    }
                    j += 1;
                }
                out
            } else {
                let f = (d as f64 + 0.5) * scale - 0.5;
                let (s, t) = (f.floor(), f - f.floor());
                let last = src as i64 - 1;
                if s < 0.0 {
                    vec![(0, 1.0)]
                } else if s as i64 >= last {
                    vec![(last as usize, 1.0)]
                } else {
                    vec![(s as usize, (1.0 - t) as f32), (s as usize + 1, t as f32)]
                }
            }
        })
        .collect()
}

/// Resize an RGB image to exactly `w` × `h`.
pub fn resize(img: &Image, w: u32, h: u32, interp: Interp) -> Image {
    let (sw, sh) = img.dimensions();
    let (w, h) = (w.max(1), h.max(1));
    if (sw, sh) == (w, h) {
        return img.clone();
    }
    let (xt, yt) = (taps(sw, w, interp), taps(sh, h, interp));
    let src = img.as_raw();
    // horizontal pass: sh rows of w pixels, in f32
    let mut rows = vec![0f32; sh as usize * w as usize * 3];
    for y in 0..sh as usize {
        let row = &src[y * sw as usize * 3..(y + 1) * sw as usize * 3];
        let out = &mut rows[y * w as usize * 3..(y + 1) * w as usize * 3];
        for (x, t) in xt.iter().enumerate() {
            for &(j, a) in t {
                for c in 0..3 {
                    out[x * 3 + c] += a * row[j * 3 + c] as f32;
                }
            }
        }
    }
    // vertical pass
    let mut dst = vec![0u8; h as usize * w as usize * 3];
    let stride = w as usize * 3;
    for (y, t) in yt.iter().enumerate() {
        let out = &mut dst[y * stride..(y + 1) * stride];
        for (i, o) in out.iter_mut().enumerate() {
            let v: f32 = t.iter().map(|&(j, b)| b * rows[j * stride + i]).sum();
            *o = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Image::from_raw(w, h, dst).expect("the buffer has w * h * 3 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> Image {
        Image::from_fn(w, h, |x, y| image::Rgb([(x * 255 / (w - 1)) as u8, (y * 255 / (h - 1)) as u8, 7]))
    }

    #[test]
    fn halving_averages_pixel_pairs_in_both_modes() {
        let img = Image::from_fn(4, 2, |x, y| image::Rgb([(x * 10 + y * 100) as u8, 0, 255]));
        for interp in [Interp::Linear, Interp::Area] {
            let out = resize(&img, 2, 1, interp);
            // 2x2 blocks: (0, 10, 100, 110) -> 55, (20, 30, 120, 130) -> 75
            assert_eq!(out.get_pixel(0, 0).0, [55, 0, 255], "{interp:?}");
            assert_eq!(out.get_pixel(1, 0).0, [75, 0, 255], "{interp:?}");
        }
    }

    #[test]
    fn linear_enlarging_follows_half_pixel_centres_and_clamps_edges() {
        let img = Image::from_fn(2, 1, |x, _| image::Rgb([if x == 0 { 0 } else { 200 }, 0, 0]));
        let out = resize(&img, 4, 1, Interp::Linear);
        // cv2.resize([[0, 200]], (4, 1), INTER_LINEAR) = [0, 50, 150, 200]
        let got: Vec<u8> = (0..4).map(|x| out.get_pixel(x, 0)[0]).collect();
        assert_eq!(got, [0, 50, 150, 200]);
    }

    #[test]
    fn no_antialiasing_when_linear_shrinks_by_more_than_two() {
        // columns white where x % 4 is 1 or 2, shrunk 4x: linear reads the two middle columns of each block
        // (white), area averages all four (grey)
        let img = Image::from_fn(8, 8, |x, _| image::Rgb([if x % 4 == 1 || x % 4 == 2 { 255 } else { 0 }; 3]));
        let area = resize(&img, 2, 2, Interp::Area);
        assert!(area.pixels().all(|p| p[0] == 128), "{area:?}");
        let linear = resize(&img, 2, 2, Interp::Linear);
        assert!(linear.pixels().all(|p| p[0] == 255), "{linear:?}");
        assert_eq!(resize(&gradient(5, 3), 5, 3, Interp::Linear), gradient(5, 3));
    }
}
