//! Pictures of batches with their labelled boxes (`plot_images` in utils/plots.py) and annotated detections.

use super::imageops::{Image, blit, canvas, save_png};
use super::loader::Batch;
use crate::error::Result;
use image::Rgb;
use std::path::Path;

/// A colour per class, cycling through a fixed bright palette.
pub fn class_colour(class: usize) -> Rgb<u8> {
    const PALETTE: [[u8; 3]; 10] = [
        [255, 56, 56],
        [255, 157, 151],
        [255, 112, 31],
        [255, 178, 29],
        [207, 210, 49],
        [72, 249, 10],
        [146, 204, 23],
        [61, 219, 134],
        [26, 147, 52],
        [0, 212, 187],
    ];
    Rgb(PALETTE[class % PALETTE.len()])
}

/// Draw a box outline of `thickness` pixels, clipped to the image.
pub fn draw_box(img: &mut Image, b: [f32; 4], colour: Rgb<u8>, thickness: u32) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let x0 = (b[0].round() as i64).clamp(0, w - 1);
    let y0 = (b[1].round() as i64).clamp(0, h - 1);
    let x1 = (b[2].round() as i64).clamp(0, w - 1);
    let y1 = (b[3].round() as i64).clamp(0, h - 1);
    for t in 0..thickness as i64 {
        for x in x0..=x1 {
            for y in [y0 + t, y1 - t] {
                if (0..h).contains(&y) {
                    img.put_pixel(x as u32, y as u32, colour);
                }
            }
        }
        for y in y0..=y1 {
            for x in [x0 + t, x1 - t] {
                if (0..w).contains(&x) {
                    img.put_pixel(x as u32, y as u32, colour);
                }
            }
        }
    }
}

/// Write `text` in white on a filled `colour` box whose lower-left corner is at (x, y) (above a detection box,
/// as YOLOv5's `Annotator.box_label`), moved inside the image when it would leave it.
pub fn draw_label(img: &mut Image, x: f32, y: f32, text: &str, colour: Rgb<u8>, size: f32) {
    let mut right = 0i32;
    crate::font::rasterise(text, size, |px, _, _| right = right.max(px));
    let (tw, th) = (right + 4, size.ceil() as i32 + 4);
    let (w, h) = (img.width() as i32, img.height() as i32);
    let x0 = (x.round() as i32).clamp(0, (w - tw).max(0));
    let y0 =
        if y.round() as i32 - th >= 0 { y.round() as i32 - th } else { (y.round() as i32).clamp(0, (h - th).max(0)) };
    for yy in y0..(y0 + th).min(h) {
        for xx in x0..(x0 + tw).min(w) {
            img.put_pixel(xx as u32, yy as u32, colour);
        }
    }
    // the rasteriser's origin sits half a size above the baseline
    let (ox, oy) = (x0 + 2, y0 + 2);
    crate::font::rasterise(text, size, |px, py, a| {
        let (xx, yy) = (ox + px, oy + py);
        if (0..w).contains(&xx) && (0..h).contains(&yy) {
            let p = img.get_pixel_mut(xx as u32, yy as u32);
            for c in 0..3 {
                p.0[c] = (p.0[c] as f32 * (1.0 - a) + 255.0 * a).round() as u8;
            }
        }
    });
}

/// A copy of `img` with each detection's box and a `name conf` label (detect.py's annotated image).
pub fn annotate(img: &Image, dets: &[crate::metrics::Detection], names: &[String], show_conf: bool) -> Image {
    let mut out = img.clone();
    let lw = ((img.width() + img.height()) as f32 / 2.0 * 0.003).round().max(2.0) as u32;
    let size = (lw as f32 * 5.0).max(11.0);
    for d in dets {
        let colour = class_colour(d.class);
        draw_box(&mut out, d.xyxy, colour, lw);
    }
    for d in dets {
        let name = names.get(d.class).cloned().unwrap_or_else(|| d.class.to_string());
        let text = if show_conf { format!("{name} {:.2}", d.conf) } else { name };
        draw_label(&mut out, d.xyxy[0], d.xyxy[1], &text, class_colour(d.class), size);
    }
    out
}

/// Columns for `n` tiles: from ceil(√n) up, the fewest that leaves the fewest empty tiles (8 → 4 × 2, 9 → 3 × 3).
pub fn grid_columns(n: usize) -> usize {
    let start = (n.max(1) as f64).sqrt().ceil() as usize;
    (start..=start + 2).min_by_key(|&c| (n.div_ceil(c) * c - n, c)).unwrap_or(start).min(n.max(1))
}

/// Tile a batch into one picture (up to 16 images) with every target box drawn and labelled with its class
/// name (`names`; the class index when a name is missing).
pub fn batch_grid(batch: &Batch, names: &[String]) -> Image {
    let size = batch.images.size();
    let (b, h, w) = (size[0] as usize, size[2] as u32, size[3] as u32);
    let n = b.min(16);
    let cols = grid_columns(n) as u32;
    let rows = (n as u32).div_ceil(cols);
    let mut grid = canvas(cols * w, rows * h, 255);
    let pixels: Vec<u8> = Vec::<u8>::try_from(batch.images.reshape(-1)).unwrap_or_default();
    let targets: Vec<f32> = Vec::<f32>::try_from(batch.targets.reshape(-1)).unwrap_or_default();
    let plane = (h * w) as usize;
    let label_size = (w.min(h) as f32 / 24.0).clamp(9.0, 14.0);
    for i in 0..n {
        let mut img = Image::new(w, h);
        let base = i * 3 * plane;
        for (k, p) in img.pixels_mut().enumerate() {
            p.0 = [pixels[base + k], pixels[base + plane + k], pixels[base + 2 * plane + k]];
        }
        let mine: Vec<&[f32]> = targets.chunks_exact(6).filter(|t| t[0] as usize == i).collect();
        let xyxy = |t: &[f32]| {
            let (cx, cy, bw, bh) = (t[2] * w as f32, t[3] * h as f32, t[4] * w as f32, t[5] * h as f32);
            [cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0]
        };
        for t in &mine {
            draw_box(&mut img, xyxy(t), class_colour(t[1] as usize), 2);
        }
        for t in &mine {
            let c = t[1] as usize;
            let name = names.get(c).cloned().unwrap_or_else(|| c.to_string());
            let b = xyxy(t);
            draw_label(&mut img, b[0], b[1], &name, class_colour(c), label_size);
        }
        let (col, row) = (i as u32 % cols, i as u32 / cols);
        blit(&mut grid, &img, (0, 0), (col * w, row * h), (w, h));
    }
    grid
}

/// Save [`batch_grid`] as a PNG.
pub fn save_batch_png(batch: &Batch, names: &[String], path: &Path) -> Result<()> {
    save_png(&batch_grid(batch, names), path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn grids_leave_as_few_empty_tiles_as_they_can() {
        let cols: Vec<usize> = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16].iter().map(|&n| super::grid_columns(n)).collect();
        assert_eq!(cols, [1, 2, 3, 2, 5, 3, 4, 4, 3, 4, 4]);
    }
}
