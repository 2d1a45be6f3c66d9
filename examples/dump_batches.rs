//! Write the training batches yolo-lab's loader produces for a run (issue 19), so that YOLOv5's `train.py`
//! can train on them (`scripts/train_on_batches.py`): the data-swap experiment that tells a data pipeline
//! difference from a training one.
//!
//! ```sh
//! cargo run --release --example dump_batches -- DATA_YAML IMGSZ EPOCHS SEED OUT.safetensors [HYP] [BATCH]
//! ```
//! Batches are numbered across epochs (`images.{i}` uint8 `[b, 3, h, w]`, `targets.{i}` `[n, 6]`), in the
//! order the trainer would see them with 2 loader workers.

use tch::Tensor;
use yolo_lab::data::{Dataset, Loader, LoaderConfig, Split};
use yolo_lab::hyp::Hyp;

fn main() -> yolo_lab::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: dump_batches DATA_YAML IMGSZ EPOCHS SEED OUT [HYP] [BATCH]";
    let data = Dataset::load(args.get(1).expect(usage))?;
    let imgsz: u32 = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
    let epochs: u64 = args.get(3).and_then(|s| s.parse().ok()).expect(usage);
    let seed: u64 = args.get(4).and_then(|s| s.parse().ok()).expect(usage);
    let out = std::path::PathBuf::from(args.get(5).expect(usage));
    let hyp = Hyp::load(args.get(6).map(String::as_str).unwrap_or("scratch-low"))?;
    let batch: usize = args.get(7).and_then(|s| s.parse().ok()).unwrap_or(16);
    let train = data.scan(Split::Train)?;
    let loader =
        Loader::new(&train, &hyp, LoaderConfig { img_size: imgsz, batch, workers: 2, seed, ..Default::default() })?;
    let mut tensors: Vec<(String, Tensor)> = vec![];
    for e in 0..epochs {
        for b in loader.epoch(e) {
            let b = b?;
            let i = tensors.len() / 2;
            tensors.push((format!("images.{i}"), b.images));
            tensors.push((format!("targets.{i}"), b.targets));
        }
    }
    Tensor::write_safetensors(&tensors, &out)?;
    println!("{} batches of {epochs} epochs -> {}", tensors.len() / 2, out.display());
    Ok(())
}
