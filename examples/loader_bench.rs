//! Loader throughput: augmented images per second (mosaic on) at 320 and 640 px with 1 and 2 workers,
//! next to a plain decode-and-resize of the same files. Run with `make bench` (release build).
//!
//! A benchmark, not a test: it prints figures and asserts nothing.

use std::time::Instant;
use yolo_lab::data::{Loader, LoaderConfig, ShapesConfig, Split};
use yolo_lab::hyp::Hyp;

fn main() -> yolo_lab::Result<()> {
    let images = 64;
    let ds = ShapesConfig { seed: 11, train: images, val: 1, imgsz: 640, ..Default::default() }.generate()?;
    let samples = ds.scan(Split::Train)?;
    let hyp = Hyp::load("scratch-low")?;
    println!("{} images of up to 640 px, hyp scratch-low (mosaic 1.0), batch 16", samples.len());
    println!("{:>6} {:>8} {:>12} {:>10}", "size", "workers", "pipeline", "images/s");
    for size in [320u32, 640] {
        let t = Instant::now();
        for s in &samples.items {
            let img = image::open(&s.image).expect("generated image decodes").to_rgb8();
            let r = size as f32 / s.width.max(s.height) as f32;
            let _ = image::imageops::resize(
                &img,
                (s.width as f32 * r) as u32,
                (s.height as f32 * r) as u32,
                image::imageops::FilterType::Triangle,
            );
        }
        let plain = samples.len() as f64 / t.elapsed().as_secs_f64();
        println!("{size:>6} {:>8} {:>12} {plain:>10.1}", 1, "decode+resize");
        for workers in [1usize, 2] {
            let cfg = LoaderConfig { img_size: size, batch: 16, workers, ..Default::default() };
            let loader = Loader::new(&samples, &hyp, cfg)?;
            let t = Instant::now();
            let mut n = 0;
            for epoch in 0..2 {
                for b in loader.epoch(epoch) {
                    n += b?.images.size()[0];
                }
            }
            let rate = n as f64 / t.elapsed().as_secs_f64();
            println!("{size:>6} {workers:>8} {:>12} {rate:>10.1}", "mosaic");
        }
    }
    Ok(())
}
