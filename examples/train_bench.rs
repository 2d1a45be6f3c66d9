//! Training throughput of yolov5n at 320 px, batch 16, on the CPU with 1 and 2 libtorch threads, and the
//! ratio of a full training iteration (loader, loss, optimizer, EMA, bookkeeping, measured through
//! `Trainer::fit` minus validation) to a bare forward + backward + step on one preloaded batch. Target: ≤ 1.10,
//! the data pipeline hidden behind the compute. A benchmark: prints figures, asserts nothing.
//!
//! `cargo run --release --example train_bench [-- EPOCHS]`

use std::time::Instant;
use tch::{Device, Kind};
use yolo_lab::data::{Loader, LoaderConfig};
use yolo_lab::loss::{ComputeLoss, LossConfig};
use yolo_lab::optim::{Optimizer, OptimizerKind, clip_grad_norm};
use yolo_lab::prelude::*;

fn main() -> yolo_lab::Result<()> {
    let epochs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let dir = std::env::temp_dir().join(format!("yolo-lab-train-bench-{}", std::process::id()));
    println!("yolov5n, shapes (256 train images), 320 px, batch 16, {epochs} epoch(s) per measurement");
    println!("{:>8} {:>16} {:>16} {:>10}", "threads", "fit images/s", "bare images/s", "ratio");
    for threads in [1, 2] {
        tch::set_num_threads(threads);
        let base = Trainer::new()
            .data("shapes")
            .cfg("yolov5n")
            .imgsz(320)
            .batch(16)
            .device("cpu")
            .noval(true)
            .nosave(true)
            .noautoanchor(true);
        let run = base.clone().epochs(epochs).project(&dir).progress(ProgressMode::Quiet).fit()?;
        let fit_rate = run.images_per_second;
        // bare: the same model size, one preloaded batch, forward + backward + clip + step
        let data = base.prepare_data()?;
        let hyp = Hyp::default();
        let loader = Loader::new(
            &data.train,
            &hyp,
            LoaderConfig { img_size: 320, batch: 16, workers: 0, ..Default::default() },
        )?;
        let batch = loader.batch(0, 0)?;
        let model = Yolo::new("yolov5n", Some(3), Device::Cpu)?;
        let loss = ComputeLoss::new(&model, LossConfig::from_hyp(&hyp, 3, 3, 320, 0.0));
        let mut opt = Optimizer::new(OptimizerKind::Sgd, &model, 0.01, 0.937, 5e-4);
        let x = batch.images.to_kind(Kind::Float) / 255.0;
        let iters = 8;
        let t = Instant::now();
        for _ in 0..iters {
            let out = loss.forward(&model.forward_t(&x, true), &batch.targets);
            out.total.backward();
            clip_grad_norm(&opt.params(), 10.0);
            opt.step();
            opt.zero_grad();
        }
        let bare_rate = (iters * 16) as f64 / t.elapsed().as_secs_f64();
        println!("{threads:>8} {fit_rate:>16.2} {bare_rate:>16.2} {:>10.3}", bare_rate / fit_rate);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
