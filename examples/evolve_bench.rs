//! Evolution overhead: the per-generation overhead (a generation's wall time minus its training and
//! validation time) for a 1-epoch base scenario on shapes, and the time yolo-lab saves by keeping the data set,
//! its label cache and its RAM image cache in memory across generations instead of rebuilding them every
//! generation as YOLOv5 does. A benchmark: prints figures, asserts nothing.
//!
//! `cargo run --release --example evolve_bench [-- GENERATIONS]`

use std::time::Instant;
use yolo_lab::data::{Cache, Loader, LoaderConfig};
use yolo_lab::prelude::*;

fn main() -> yolo_lab::Result<()> {
    let generations: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let dir = std::env::temp_dir().join(format!("yolo-lab-evolve-bench-{}", std::process::id()));
    let base =
        Trainer::new().data("shapes").cfg("yolov5n").imgsz(128).batch(16).epochs(1).cache(Cache::Ram).device("cpu");
    println!("base: yolov5n, shapes (256 + 64 images), 128 px, 1 epoch, RAM cache; {generations} generations");
    let evo = Evolver::new(base.clone()).generations(generations).project(&dir).run()?;
    let text = std::fs::read_to_string(evo.dir.join("generations.csv")).map_err(|e| yolo_lab::Error::io(&dir, e))?;
    let (mut wall, mut train) = (vec![], vec![]);
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        wall.push(f[6].parse::<f64>().unwrap_or(0.0));
        train.push(f[7].parse::<f64>().unwrap_or(0.0));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let overhead: Vec<f64> = wall.iter().zip(&train).map(|(w, t)| w - t).collect();
    println!("generation wall time      mean {:.2} s", mean(&wall));
    println!("training + validation     mean {:.2} s", mean(&train));
    println!(
        "per-generation overhead   mean {:.2} s (first {:.2} s, later {:.2} s)",
        mean(&overhead),
        overhead[0],
        mean(&overhead[1..])
    );
    // what rebuilding the data costs each generation: scan (label cache hit) and the RAM image cache
    let t = Instant::now();
    let data = base.prepare_data()?;
    let scan = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let _loader = Loader::new(
        &data.train,
        &Hyp::default(),
        LoaderConfig { img_size: 128, batch: 16, cache: Cache::Ram, ..Default::default() },
    )?;
    let cache = t.elapsed().as_secs_f64();
    println!(
        "rebuilding the data set   {scan:.2} s scan + {cache:.2} s RAM cache = {:.2} s per generation saved",
        scan + cache
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
