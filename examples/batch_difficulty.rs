//! How hard are the training batches? (issue 19) The same model, frozen, scores the batches YOLOv5's loader
//! produced (recorded by `scripts/trajectory_yolov5.py`) and batches of yolo-lab's loader for the same epochs:
//! mean loss items in training mode, with standard errors over batches. Equal training steps on batches of
//! equal difficulty learn alike; a loader whose batches score differently for the same model is where a
//! learning gap comes from.
//!
//! ```sh
//! cargo run --release --example batch_difficulty -- TRAJ_DIR DATA_YAML [IMGSZ] [HYP] [SEEDS]
//! ```
//! The model is `TRAJ_DIR/init.safetensors` (YOLOv5's state at the recording's first iteration). A
//! benchmark, not a test: it prints a table and asserts nothing.

use std::collections::HashMap;
use tch::{Device, Kind, Tensor};
use yolo_lab::data::{Dataset, Loader, LoaderConfig, Split};
use yolo_lab::hyp::Hyp;
use yolo_lab::loss::{ComputeLoss, LossConfig};
use yolo_lab::model::Yolo;

/// Mean and standard error of each column.
fn summary(rows: &[[f64; 4]]) -> Vec<(f64, f64)> {
    let n = rows.len().max(1) as f64;
    (0..4)
        .map(|c| {
            let m = rows.iter().map(|r| r[c]).sum::<f64>() / n;
            let var = rows.iter().map(|r| (r[c] - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            (m, (var / n).sqrt())
        })
        .collect()
}

fn print(label: &str, rows: &[[f64; 4]]) {
    let s = summary(rows);
    println!(
        "{label:<28} {:>5} {:>9.5}±{:.5} {:>9.5}±{:.5} {:>9.5}±{:.5} {:>7.2}±{:.2}",
        rows.len(),
        s[0].0,
        s[0].1,
        s[1].0,
        s[1].1,
        s[2].0,
        s[2].1,
        s[3].0,
        s[3].1
    );
}

fn main() -> yolo_lab::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: batch_difficulty TRAJ_DIR DATA_YAML ..."));
    let data = args.get(2).expect("usage: batch_difficulty TRAJ_DIR DATA_YAML ...");
    let imgsz: i64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(160);
    let hyp = Hyp::load(args.get(4).map(String::as_str).unwrap_or("scratch-low"))?;
    let seeds: u64 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(3);
    let init: HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("init.safetensors")).expect("init.safetensors").into_iter().collect();
    let recorded: HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("batches.safetensors")).expect("batches.safetensors").into_iter().collect();
    let model = Yolo::new("yolov5n", Some(3), Device::Cpu)?;
    tch::no_grad(|| {
        for (k, v) in model.vs.variables() {
            v.shallow_clone().copy_(&init[&k]);
        }
    });
    let loss = ComputeLoss::new(&model, LossConfig::from_hyp(&hyp, 3, model.head().m.len(), imgsz, 0.0));
    let score = |imgs: &Tensor, targets: &Tensor| -> [f64; 4] {
        let out = tch::no_grad(|| loss.forward(&model.forward_t(&(imgs.to_kind(Kind::Float) / 255.0), true), targets));
        [out.items[0], out.items[1], out.items[2], targets.size()[0] as f64]
    };
    let mut iters: Vec<usize> = recorded.keys().filter_map(|k| k.strip_prefix("images.")?.parse().ok()).collect();
    iters.sort_unstable();
    let (first, last) = (iters[0], *iters.last().expect("batches.safetensors has no batches"));
    let train = Dataset::load(data)?.scan(Split::Train)?;
    let nb = train.len().div_ceil(16);
    let epochs = (first / nb) as u64..(last / nb + 1) as u64;
    println!("model: {} at iteration {first}; batches of epochs {epochs:?}", dir.display());
    println!("{:<28} {:>5} {:>16} {:>16} {:>16} {:>12}", "loader", "n", "box", "obj", "cls", "targets");
    let v5: Vec<[f64; 4]> =
        iters.iter().map(|i| score(&recorded[&format!("images.{i}")], &recorded[&format!("targets.{i}")])).collect();
    print("YOLOv5 (recorded)", &v5);
    let mut all = vec![];
    for seed in 0..seeds {
        let cfg = LoaderConfig { img_size: imgsz as u32, batch: 16, workers: 2, seed, ..Default::default() };
        let loader = Loader::new(&train, &hyp, cfg)?;
        let mut rows = vec![];
        for e in epochs.clone() {
            for b in loader.epoch(e) {
                let b = b?;
                rows.push(score(&b.images, &b.targets));
            }
        }
        print(&format!("yolo-lab seed {seed}"), &rows);
        all.extend(rows);
    }
    print("yolo-lab all seeds", &all);
    Ok(())
}
