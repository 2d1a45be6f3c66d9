//! Writes yolo-lab's warps and HSV gains of a test image for `scripts/opencv_agreement.py`, which computes
//! the same with OpenCV (`cv2.warpAffine`, `cv2.warpPerspective`, YOLOv5's `augment_hsv` steps) and prints
//! how many values differ. Also times both operations on a 320x320 output.
//!
//! `cargo run --release --example opencv_agreement -- DIR && python scripts/opencv_agreement.py DIR`

use std::time::Instant;
use yolo_lab::data::{Image, apply_hsv_gains, warp};

/// The matrices checked: scale and translation (the separable path), rotation with scale, and a perspective.
fn matrices() -> Vec<[[f64; 3]; 3]> {
    let (c, s) = (1.2 * 0.3f64.cos(), 1.2 * 0.3f64.sin());
    vec![
        [[0.73, 0.0, -5.3], [0.0, 1.31, 3.7], [0.0, 0.0, 1.0]],
        [[0.5, 0.0, 20.25], [0.0, 0.5, -3.5], [0.0, 0.0, 1.0]],
        [[c, s, 10.0], [-s, c, -4.0], [0.0, 0.0, 1.0]],
        [[0.9, 0.1, 3.0], [-0.05, 1.1, -2.0], [0.001, -0.0005, 1.0]],
    ]
}

/// The HSV gains checked.
const GAINS: [[f64; 3]; 3] = [[1.013, 0.61, 1.37], [0.99, 1.5, 0.7], [1.0, 1.0, 1.0]];

fn main() -> std::io::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "/tmp/opencv-agreement".into()));
    std::fs::create_dir_all(&dir)?;
    // a smooth gradient left, noise right: 256 x 192
    let mut seed = 12345u32;
    let img = Image::from_fn(256, 192, |x, y| {
        if x < 128 {
            image::Rgb([(x * 2) as u8, (y + x / 2) as u8, (255 - x) as u8])
        } else {
            image::Rgb(std::array::from_fn(|_| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                (seed >> 24) as u8
            }))
        }
    });
    std::fs::write(dir.join("src.rgb"), img.as_raw())?;
    let mut text = String::from("src 256 192\n");
    for (i, m) in matrices().iter().enumerate() {
        std::fs::write(dir.join(format!("warp{i}.rgb")), warp(&img, m, 320, 240).as_raw())?;
        text +=
            &format!("warp{i} 320 240 {}\n", m.iter().flatten().map(|v| v.to_string()).collect::<Vec<_>>().join(" "));
    }
    for (i, g) in GAINS.iter().enumerate() {
        let mut px = img.as_raw().clone();
        apply_hsv_gains(&mut px, *g);
        std::fs::write(dir.join(format!("hsv{i}.rgb")), &px)?;
        text += &format!("hsv{i} {} {} {}\n", g[0], g[1], g[2]);
    }
    std::fs::write(dir.join("cases.txt"), text)?;
    // timing on a 640 x 640 source, 320 x 320 output (the mosaic's sizes)
    let big = Image::from_fn(640, 640, |x, y| image::Rgb([(x * 7 + y) as u8, (x ^ y) as u8, (x * y) as u8]));
    let m = [[0.73, 0.0, -5.3], [0.0, 0.73, 3.7], [0.0, 0.0, 1.0]];
    let (n, t) = (500, Instant::now());
    for _ in 0..n {
        std::hint::black_box(warp(&big, &m, 320, 320));
    }
    let w = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let mut px = big.as_raw()[..320 * 320 * 3].to_vec();
    let t = Instant::now();
    for _ in 0..n {
        apply_hsv_gains(&mut px, GAINS[0]);
    }
    let h = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    println!(
        "wrote {} cases to {}; per 320x320 output: warp {w:.3} ms, hsv {h:.3} ms",
        matrices().len() + GAINS.len(),
        dir.display()
    );
    Ok(())
}
