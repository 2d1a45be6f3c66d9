//! Validate a weights file the way the trainer validates its EMA each epoch (issue 19): rectangular batches
//! padded by half a stride, conf 0.001, IoU 0.6, at most 300 detections. Given the weights YOLOv5 saved
//! (converted to safetensors), it shows whether yolo-lab measures a model as YOLOv5's val.py does.
//!
//! ```sh
//! cargo run --release --example val_weights -- WEIGHTS.safetensors DATA_YAML [IMGSZ] [BATCH] [CFG]
//! ```
//! A benchmark, not a test: it prints the metrics and asserts nothing.

use tch::Device;
use yolo_lab::data::{Dataset, Loader, LoaderConfig, Split};
use yolo_lab::hyp::Hyp;
use yolo_lab::metrics::NmsConfig;
use yolo_lab::model::Yolo;
use yolo_lab::train::validate;

fn main() -> yolo_lab::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let weights = args.get(1).expect("usage: val_weights WEIGHTS DATA_YAML [IMGSZ] [BATCH] [CFG]");
    let data = Dataset::load(args.get(2).expect("usage: val_weights WEIGHTS DATA_YAML ..."))?;
    let imgsz: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(160);
    let batch: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(32);
    let cfg = args.get(5).map(String::as_str).unwrap_or("yolov5n");
    let mut model = Yolo::new(cfg, Some(data.nc() as i64), Device::Cpu)?;
    model.load(weights)?;
    let val = data.scan(Split::Val)?;
    let loader =
        Loader::new(&val, &Hyp::load("scratch-low")?, LoaderConfig { workers: 2, ..LoaderConfig::val(imgsz, batch) })?;
    let v = validate(&model, &loader, None, &NmsConfig::default())?;
    let [p, r, m50, m] = v.metrics;
    println!("{} images, {} instances: P {p:.4} R {r:.4} mAP@0.5 {m50:.4} mAP@0.5:0.95 {m:.4}", v.images, v.instances);
    Ok(())
}
