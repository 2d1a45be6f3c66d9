//! Augmentations (`utils/augmentations.py`, `LoadImagesAndLabels.load_mosaic` of ultralytics/yolov5@5081342f).
//!
//! Boxes travel through the geometric steps as pixel corners `[class, x1, y1, x2, y2]` and are turned into
//! normalised centre-size labels at the end, as YOLOv5 does.

use super::hsv;
use super::imageops::{Image, PAD_VALUE, blit, canvas, invert3, matmul3, resize};
pub use super::imageops::{flip_lr, flip_ud};
use super::warp::warp;
use crate::hyp::Hyp;
use rand::Rng;
use rand_distr::{Beta, Distribution};

/// A box in pixel corners with its class: `[class, x1, y1, x2, y2]`.
pub type PixelBox = [f32; 5];

/// Minimum box side in pixels kept after a geometric augmentation (`box_candidates` wh_thr).
pub const MIN_BOX_SIDE: f32 = 2.0;
/// Minimum area kept, as a fraction of the box's area before the warp (`box_candidates` area_thr).
pub const MIN_AREA_RATIO: f32 = 0.10;
/// Maximum aspect ratio of a kept box (`box_candidates` ar_thr).
pub const MAX_ASPECT: f32 = 100.0;
/// Beta(32, 32) parameter of the MixUp ratio (`mixup`).
pub const MIXUP_BETA: f64 = 32.0;

/// Geometry of a letterbox: `x_new = x_old * ratio.0 + pad.0`, `y_new = y_old * ratio.1 + pad.1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Scale factors (width, height).
    pub ratio: (f32, f32),
    /// Padding added on the left and top, in pixels (half the total, possibly fractional).
    pub pad: (f32, f32),
}

impl Letterbox {
    /// Map a pixel box of the original image into the letterboxed image.
    pub fn forward(&self, b: [f32; 4]) -> [f32; 4] {
        [
            b[0] * self.ratio.0 + self.pad.0,
            b[1] * self.ratio.1 + self.pad.1,
            b[2] * self.ratio.0 + self.pad.0,
            b[3] * self.ratio.1 + self.pad.1,
        ]
    }

    /// Map a pixel box of the letterboxed image back to the original image (`scale_boxes`).
    pub fn inverse(&self, b: [f32; 4]) -> [f32; 4] {
        [
            (b[0] - self.pad.0) / self.ratio.0,
            (b[1] - self.pad.1) / self.ratio.1,
            (b[2] - self.pad.0) / self.ratio.0,
            (b[3] - self.pad.1) / self.ratio.1,
        ]
    }
}

/// Resize keeping the aspect ratio and pad with grey to `new_shape` = (height, width) (`letterbox`, auto=False).
/// With `scaleup` false an image is only ever shrunk.
pub fn letterbox(img: &Image, new_shape: (u32, u32), scaleup: bool) -> (Image, Letterbox) {
    let (h, w) = (img.height() as f32, img.width() as f32);
    let (nh, nw) = (new_shape.0 as f32, new_shape.1 as f32);
    let mut r = (nh / h).min(nw / w);
    if !scaleup {
        r = r.min(1.0);
    }
    let (uw, uh) = ((w * r).round() as u32, (h * r).round() as u32);
    let (dw, dh) = ((nw - uw as f32) / 2.0, (nh - uh as f32) / 2.0);
    let resized = resize(img, uw, uh, super::Interp::Linear); // letterbox: cv2.INTER_LINEAR
    let (top, left) = ((dh - 0.1).round().max(0.0) as u32, (dw - 0.1).round().max(0.0) as u32);
    let mut out = canvas(new_shape.1, new_shape.0, PAD_VALUE);
    let (cw, ch) = (uw.min(new_shape.1 - left), uh.min(new_shape.0 - top));
    blit(&mut out, &resized, (0, 0), (left, top), (cw, ch));
    (out, Letterbox { ratio: (r, r), pad: (dw, dh) })
}

/// Magnitudes of the random perspective transform, taken from a [`Hyp`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perspective {
    /// Rotation range, degrees.
    pub degrees: f64,
    /// Translation range, fraction of the output size.
    pub translate: f64,
    /// Scale range (gain in 1 ± scale).
    pub scale: f64,
    /// Shear range, degrees.
    pub shear: f64,
    /// Perspective range.
    pub perspective: f64,
}

impl From<&Hyp> for Perspective {
    fn from(h: &Hyp) -> Self {
        Perspective {
            degrees: h.degrees,
            translate: h.translate,
            scale: h.scale,
            shear: h.shear,
            perspective: h.perspective,
        }
    }
}

/// One draw of [`random_perspective`]: the matrix from source to output pixels, its scale factor (the box
/// filter compares areas against it) and the output size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Drawn {
    m: [[f64; 3]; 3],
    scale: f64,
    size: (u32, u32),
    perspective: bool,
}

impl Drawn {
    /// Draw a transform for a `src` = (width, height) image (the random draws of `random_perspective`, in its
    /// order). `border` = (rows, cols) added on each side.
    pub(crate) fn new(src: (u32, u32), p: Perspective, border: (i32, i32), rng: &mut impl Rng) -> Drawn {
        let height = (src.1 as i32 + border.0 * 2).max(1) as u32;
        let width = (src.0 as i32 + border.1 * 2).max(1) as u32;
        let uni = |rng: &mut dyn rand::RngCore, a: f64| {
            if a > 0.0 { rng.random_range(-a..a) } else { 0.0 }
        };
        let c = [[1.0, 0.0, -(src.0 as f64) / 2.0], [0.0, 1.0, -(src.1 as f64) / 2.0], [0.0, 0.0, 1.0]];
        let pm = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [uni(rng, p.perspective), uni(rng, p.perspective), 1.0]];
        let a = uni(rng, p.degrees).to_radians();
        let s = if p.scale > 0.0 { rng.random_range(1.0 - p.scale..1.0 + p.scale) } else { 1.0 };
        // OpenCV getRotationMatrix2D about the origin: positive angles turn counter-clockwise on screen.
        let r = [[s * a.cos(), s * a.sin(), 0.0], [-s * a.sin(), s * a.cos(), 0.0], [0.0, 0.0, 1.0]];
        let sh = [
            [1.0, uni(rng, p.shear).to_radians().tan(), 0.0],
            [uni(rng, p.shear).to_radians().tan(), 1.0, 0.0],
            [0.0, 0.0, 1.0],
        ];
        let tr = |rng: &mut dyn rand::RngCore, size: u32| {
            let t = p.translate;
            (if t > 0.0 { rng.random_range(0.5 - t..0.5 + t) } else { 0.5 }) * size as f64
        };
        let t = [[1.0, 0.0, tr(rng, width)], [0.0, 1.0, tr(rng, height)], [0.0, 0.0, 1.0]];
        let m = matmul3(&t, &matmul3(&sh, &matmul3(&r, &matmul3(&pm, &c))));
        Drawn { m, scale: s, size: (width, height), perspective: p.perspective != 0.0 }
    }

    fn identity(&self) -> bool {
        self.m == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    }

    /// The part of a `src`-sized source the warp reads, `[x0, y0, x1, y1)`: the bounding box of the output's
    /// corners mapped back, two pixels wider on each side (whole source under perspective).
    fn source_region(&self, src: (u32, u32)) -> [u32; 4] {
        if self.perspective {
            return [0, 0, src.0, src.1];
        }
        let inv = invert3(&self.m);
        let (w, h) = ((self.size.0 as f64 - 1.0).max(0.0), (self.size.1 as f64 - 1.0).max(0.0));
        let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
        for (x, y) in [(0.0, 0.0), (w, 0.0), (0.0, h), (w, h)] {
            let p = [inv[0][0] * x + inv[0][1] * y + inv[0][2], inv[1][0] * x + inv[1][1] * y + inv[1][2]];
            for k in 0..2 {
                (lo[k], hi[k]) = (lo[k].min(p[k]), hi[k].max(p[k]));
            }
        }
        let clamp = |v: f64, n: u32| v.clamp(0.0, n as f64) as u32;
        [
            clamp(lo[0].floor() - 2.0, src.0),
            clamp(lo[1].floor() - 2.0, src.1),
            clamp(hi[0].ceil() + 3.0, src.0),
            clamp(hi[1].ceil() + 3.0, src.1),
        ]
    }

    /// Transform boxes by their corners, clip them to the output, and drop those too small, too thin or mostly
    /// cut away.
    fn boxes(&self, boxes: &[PixelBox]) -> Vec<PixelBox> {
        let (m, s) = (&self.m, self.scale as f32);
        let (width, height) = (self.size.0 as f32, self.size.1 as f32);
        let mut kept = Vec::with_capacity(boxes.len());
        for b in boxes {
            let corners = [(b[1], b[2]), (b[3], b[4]), (b[1], b[4]), (b[3], b[2])];
            let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
            for (x, y) in corners {
                let (x, y) = (x as f64, y as f64);
                let z = m[2][0] * x + m[2][1] * y + m[2][2];
                let z = if self.perspective { z } else { 1.0 };
                let nx = ((m[0][0] * x + m[0][1] * y + m[0][2]) / z) as f32;
                let ny = ((m[1][0] * x + m[1][1] * y + m[1][2]) / z) as f32;
                (x0, y0, x1, y1) = (x0.min(nx), y0.min(ny), x1.max(nx), y1.max(ny));
            }
            let nb = [x0.clamp(0.0, width), y0.clamp(0.0, height), x1.clamp(0.0, width), y1.clamp(0.0, height)];
            let old = [b[1] * s, b[2] * s, b[3] * s, b[4] * s];
            if box_candidate(old, nb) {
                kept.push([b[0], nb[0], nb[1], nb[2], nb[3]]);
            }
        }
        kept
    }
}

/// Random rotation, scale, shear, translation and perspective (`random_perspective`). `border` = (rows,
/// cols) added on each side (negative crops: the mosaic passes -s/2 to return an s×s image). Boxes are
/// transformed by their corners, clipped, and dropped when too small, too thin or mostly cut away.
pub fn random_perspective(
    img: &Image,
    boxes: &[PixelBox],
    p: Perspective,
    border: (i32, i32),
    rng: &mut impl Rng,
) -> (Image, Vec<PixelBox>) {
    let d = Drawn::new(img.dimensions(), p, border, rng);
    let out = if border != (0, 0) || !d.identity() { warp(img, &d.m, d.size.0, d.size.1) } else { img.clone() };
    (out, d.boxes(boxes))
}

/// Whether a box survives an augmentation (`box_candidates`): both sides above 2 px, at least 10% of its
/// scaled original area, aspect ratio below 100.
fn box_candidate(before: [f32; 4], after: [f32; 4]) -> bool {
    let eps = 1e-16;
    let (w1, h1) = (before[2] - before[0], before[3] - before[1]);
    let (w2, h2) = (after[2] - after[0], after[3] - after[1]);
    let ar = (w2 / (h2 + eps)).max(h2 / (w2 + eps));
    w2 > MIN_BOX_SIDE && h2 > MIN_BOX_SIDE && w2 * h2 / (w1 * h1 + eps) > MIN_AREA_RATIO && ar < MAX_ASPECT
}

/// Random hue, saturation and value gains in OpenCV's 8-bit HSV space (`augment_hsv`).
pub fn augment_hsv(img: &mut Image, hgain: f64, sgain: f64, vgain: f64, rng: &mut impl Rng) {
    if hgain == 0.0 && sgain == 0.0 && vgain == 0.0 {
        return;
    }
    let r: [f64; 3] = [hgain, sgain, vgain].map(|g| rng.random_range(-1.0..1.0) * g + 1.0);
    hsv::apply(img, r);
}

/// Blend two images with a Beta(32, 32) ratio (`mixup`); boxes are concatenated.
pub fn mixup(
    a: Image,
    boxes_a: Vec<PixelBox>,
    b: &Image,
    boxes_b: &[PixelBox],
    rng: &mut impl Rng,
) -> (Image, Vec<PixelBox>) {
    let r = Beta::new(MIXUP_BETA, MIXUP_BETA).expect("valid beta").sample(rng) as f32;
    let mut out = a;
    for (x, y) in out.iter_mut().zip(b.iter()) {
        *x = (*x as f32 * r + *y as f32 * (1.0 - r)) as u8;
    }
    let mut boxes = boxes_a;
    boxes.extend_from_slice(boxes_b);
    (out, boxes)
}

/// One image placed in a 2s×2s mosaic canvas around (xc, yc): returns (destination x1, y1, x2, y2, source
/// x1, y1). `slot` 0..4 = top-left, top-right, bottom-left, bottom-right.
pub(crate) fn mosaic_placement(slot: usize, (xc, yc): (i64, i64), (w, h): (i64, i64), s: i64) -> ([i64; 4], [i64; 2]) {
    let s2 = 2 * s;
    match slot {
        0 => {
            let a = [(xc - w).max(0), (yc - h).max(0), xc, yc];
            (a, [w - (a[2] - a[0]), h - (a[3] - a[1])])
        }
        1 => {
            let a = [xc, (yc - h).max(0), (xc + w).min(s2), yc];
            (a, [0, h - (a[3] - a[1])])
        }
        2 => {
            let a = [(xc - w).max(0), yc, xc, s2.min(yc + h)];
            (a, [w - (a[2] - a[0]), 0])
        }
        _ => {
            let a = [xc, yc, (xc + w).min(s2), s2.min(yc + h)];
            (a, [0, 0])
        }
    }
}

/// The mosaic (`load_mosaic`): four loaded images (already resized so the long side is s) placed around a
/// random centre of a 2s×2s canvas, boxes shifted and clipped to it, then [`random_perspective`] with border
/// (-s/2, -s/2) back to s×s. Only the part of the canvas the warp reads is filled; `buffer` holds the canvas
/// (its other bytes are never read) and is handed back for the next mosaic.
pub(crate) fn mosaic(
    parts: &[(&Image, &[PixelBox])],
    s: u32,
    p: Perspective,
    rng: &mut impl Rng,
    mut buffer: Vec<u8>,
) -> (Image, Vec<PixelBox>, Vec<u8>) {
    let (s, side) = (s as i64, 2 * s);
    let xc = rng.random_range(s / 2..=(3 * s / 2)).min(2 * s);
    let yc = rng.random_range(s / 2..=(3 * s / 2)).min(2 * s);
    let mut boxes = Vec::new();
    let mut placed = Vec::with_capacity(parts.len());
    for (slot, &(img, bx)) in parts.iter().enumerate() {
        let (a, b) = mosaic_placement(slot, (xc, yc), (img.width() as i64, img.height() as i64), s);
        placed.push((img, a, b));
        let (padw, padh) = ((a[0] - b[0]) as f32, (a[1] - b[1]) as f32);
        let lim = 2.0 * s as f32;
        for q in bx.iter() {
            boxes.push([
                q[0],
                (q[1] + padw).clamp(0.0, lim),
                (q[2] + padh).clamp(0.0, lim),
                (q[3] + padw).clamp(0.0, lim),
                (q[4] + padh).clamp(0.0, lim),
            ]);
        }
    }
    let border = -(s as i32) / 2;
    let d = Drawn::new((side, side), p, (border, border), rng);
    let [rx0, ry0, rx1, ry1] = d.source_region((side, side));
    buffer.resize((side * side * 3) as usize, PAD_VALUE);
    let mut img4 = Image::from_raw(side, side, buffer).expect("buffer has 2s*2s*3 bytes");
    let stride = side as usize * 3;
    let px: &mut [u8] = &mut img4;
    for y in ry0..ry1 {
        let row = y as usize * stride;
        px[row + rx0 as usize * 3..row + rx1 as usize * 3].fill(PAD_VALUE);
    }
    for (img, a, b) in placed {
        let (x0, y0) = (a[0].max(rx0 as i64), a[1].max(ry0 as i64));
        let (x1, y1) = (a[2].min(rx1 as i64), a[3].min(ry1 as i64));
        if x1 > x0 && y1 > y0 {
            let from = ((b[0] + x0 - a[0]) as u32, (b[1] + y0 - a[1]) as u32);
            blit(&mut img4, img, from, (x0 as u32, y0 as u32), ((x1 - x0) as u32, (y1 - y0) as u32));
        }
    }
    let out = warp(&img4, &d.m, d.size.0, d.size.1);
    (out, d.boxes(&boxes), img4.into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn letterbox_maps_boxes_both_ways() {
        let img = canvas(200, 100, 7);
        let (out, lb) = letterbox(&img, (160, 160), true);
        assert_eq!((out.width(), out.height()), (160, 160));
        assert_eq!(lb.ratio, (0.8, 0.8));
        assert_eq!(lb.pad, (0.0, 40.0));
        let b = [10.0, 20.0, 110.0, 90.0];
        let f = lb.forward(b);
        assert_eq!(f, [8.0, 56.0, 88.0, 112.0]);
        let back = lb.inverse(f);
        for (x, y) in back.iter().zip(b) {
            assert!((x - y).abs() < 1e-4);
        }
        // image content sits between the grey bands
        assert_eq!(out.get_pixel(80, 10).0, [PAD_VALUE; 3]);
        assert_eq!(out.get_pixel(80, 80).0, [7; 3]);
    }

    #[test]
    fn perspective_keeps_boxes_inside() {
        let img = canvas(64, 64, 50);
        let boxes = vec![[0.0, 5.0, 5.0, 30.0, 40.0], [1.0, 40.0, 40.0, 63.0, 63.0]];
        let p = Perspective { degrees: 30.0, translate: 0.2, scale: 0.5, shear: 10.0, perspective: 0.0005 };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let (out, kept) = random_perspective(&img, &boxes, p, (0, 0), &mut rng);
            assert_eq!((out.width(), out.height()), (64, 64));
            for b in kept {
                assert!(
                    b[1] >= 0.0 && b[2] >= 0.0 && b[3] <= 64.0 && b[4] <= 64.0 && b[1] < b[3] && b[2] < b[4],
                    "{b:?}"
                );
            }
        }
    }

    #[test]
    fn a_mosaic_never_reads_the_canvas_outside_the_region_it_fills() {
        let imgs: Vec<Image> =
            (0..4u8).map(|k| Image::from_fn(40, 30, |x, y| image::Rgb([k * 60, x as u8 * 5, y as u8 * 7]))).collect();
        let boxes: Vec<PixelBox> = vec![[0.0, 5.0, 5.0, 30.0, 25.0]];
        let parts: Vec<(&Image, &[PixelBox])> = imgs.iter().map(|i| (i, boxes.as_slice())).collect();
        let hyps = [
            Perspective { degrees: 0.0, translate: 0.1, scale: 0.5, shear: 0.0, perspective: 0.0 },
            Perspective { degrees: 30.0, translate: 0.2, scale: 0.9, shear: 8.0, perspective: 0.0 },
            Perspective { degrees: 5.0, translate: 0.1, scale: 0.5, shear: 0.0, perspective: 0.001 },
        ];
        for (k, p) in hyps.into_iter().enumerate() {
            for seed in 0..20 {
                let run = |buffer: Vec<u8>| {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                    mosaic(&parts, 40, p, &mut rng, buffer)
                };
                let (clean, clean_boxes, _) = run(Vec::new());
                let (stale, stale_boxes, _) = run(vec![7u8; 80 * 80 * 3]);
                assert_eq!(clean, stale, "hyp {k} seed {seed}: stale canvas bytes reached the output");
                assert_eq!(clean_boxes, stale_boxes);
            }
        }
    }

    #[test]
    fn mosaic_slots_tile_the_centre() {
        // four 10x10 images around the centre (15, 15) of a 20x20 canvas (s = 10)
        let (a0, b0) = mosaic_placement(0, (15, 15), (10, 10), 10);
        assert_eq!((a0, b0), ([5, 5, 15, 15], [0, 0]));
        let (a3, b3) = mosaic_placement(3, (15, 15), (10, 10), 10);
        assert_eq!((a3, b3), ([15, 15, 20, 20], [0, 0]));
        let (a1, b1) = mosaic_placement(1, (15, 15), (10, 10), 10);
        assert_eq!((a1, b1), ([15, 5, 20, 15], [0, 0]));
    }
}
