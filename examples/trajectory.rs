//! Trajectory parity (issue 19): replay the batches YOLOv5's `train.py` trained on, from its own initial
//! weights, through yolo-lab's training step ([`TrainStep::iteration`], the code the trainer runs), and
//! compare every iteration's loss, learning rates and gradient norm, and the weights at the end.
//!
//! ```sh
//! cd $REF_ROOT/yolov5 && unshare -n -- $REF_PY .../scripts/trajectory_yolov5.py /tmp/traj 160 [START] -- \
//!     --img 160 --batch 16 --epochs 100 --data DATA --cfg models/yolov5n.yaml --weights '' \
//!     --hyp data/hyps/hyp.scratch-low.yaml --seed 0 --device cpu --workers 2 --noval --noplots
//! cargo run --release --example trajectory -- /tmp/traj [HYP] [IMGSZ] [EPOCHS] [BATCH] [NB] [PERTURB] [SEED]
//! ```
//! With START > 0 the replay begins at iteration START from the model, EMA and momentum buffers YOLOv5's
//! run had there (`init.safetensors`, `start.json`). NB is the batches per epoch of the recorded run (16 for 256 images at batch 16). PERTURB (default 0)
//! multiplies every initial weight by `1 + PERTURB·N(0,1)`: with the same batches, it shows how far two
//! trainings that differ only by rounding drift apart, the noise floor the comparison is read against.
//!
//! Environment: `TRAJ_INIT=own` starts from yolo-lab's own initialisation for SEED instead of YOLOv5's
//! recorded one (same batches, so a long replay separates the initialisation from the data);
//! `TRAJ_VAL_DATA=DATA_YAML` validates the EMA at the end as the trainer does (mAP@0.5:0.95 comparable
//! with the recorded run's results.csv).
//!
//! A benchmark, not a test: it prints a table and asserts nothing.

use std::collections::HashMap;
use tch::{Device, Kind, Tensor};
use yolo_lab::hyp::Hyp;
use yolo_lab::loss::{ComputeLoss, LossConfig};
use yolo_lab::model::Yolo;
use yolo_lab::optim::OptimizerKind;
use yolo_lab::train::step::{StepSchedule, TrainStep};

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn read(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_iter().collect()
}

/// Largest relative difference `‖a − b‖ / ‖b‖` over the floating-point tensors both have, and its name.
fn worst(model: &Yolo, want: &HashMap<String, Tensor>, prefix: &str) -> (f64, String, f64) {
    let (mut w, mut name, mut sum) = (0.0f64, String::new(), 0.0);
    let vars = model.vs.variables();
    let mut n = 0;
    for (k, v) in &vars {
        let Some(r) = want.get(&format!("{prefix}{k}")) else { continue };
        if !v.is_floating_point() {
            continue;
        }
        let d = (v - r).to_kind(Kind::Double).norm().double_value(&[]);
        let rel = d / (r.to_kind(Kind::Double).norm().double_value(&[]) + 1e-12);
        sum += rel;
        n += 1;
        if rel > w {
            (w, name) = (rel, k.clone());
        }
    }
    (w, name, sum / n.max(1) as f64)
}

/// Replace the model's values with yolo-lab's own initialisation for `seed` (the trainer seeds libtorch
/// with seed + 1 before building the model).
fn reinit_as_yolo_lab(model: &Yolo, seed: i64) {
    tch::manual_seed(seed + 1);
    let own = Yolo::new("yolov5n", Some(model.nc()), Device::Cpu).expect("yolov5n builds");
    tch::no_grad(|| {
        let src = own.vs.variables();
        for (k, v) in model.vs.variables() {
            v.shallow_clone().copy_(&src[&k]);
        }
    });
}

/// Copy every tensor `{prefix}{name}` of `from` into the model's variable `name` (all must be there).
fn copy_into(model: &Yolo, from: &HashMap<String, Tensor>, prefix: &str) {
    tch::no_grad(|| {
        for (k, v) in model.vs.variables() {
            let src = from.get(&format!("{prefix}{k}")).unwrap_or_else(|| panic!("init.safetensors: no {prefix}{k}"));
            v.shallow_clone().copy_(src);
        }
    });
}

fn main() -> yolo_lab::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: trajectory DIR [HYP] ..."));
    let hyp = Hyp::load(arg(2, "scratch-low".to_string()))?;
    let imgsz: i64 = arg(3, 160);
    let epochs: usize = arg(4, 100);
    let batch: usize = arg(5, 16);
    let nb: usize = arg(6, 16);
    let perturb: f64 = arg(7, 0.0);
    let steps: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("steps.json")).expect("steps.json"))
            .expect("steps.json: JSON");
    let steps = steps["steps"].as_array().expect("steps.json: steps").clone();
    let batches = read(&dir.join("batches.safetensors"));
    let nc = 3;
    let init = read(&dir.join("init.safetensors"));
    let start: serde_json::Value = std::fs::read_to_string(dir.join("start.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let first = start["start"].as_u64().unwrap_or(0) as usize;
    let model = Yolo::new("yolov5n", Some(nc), Device::Cpu)?;
    if first == 0 {
        // the trainer seeds libtorch with seed + 1 (init_seeds(opt.seed + 1)) before building the model
        let seed: i64 = arg(8, 0);
        tch::manual_seed(seed + 1);
        let own = Yolo::new("yolov5n", Some(nc), Device::Cpu)?;
        let (w, name, mean) = worst(&own, &init, "");
        println!(
            "yolo-lab's own initialisation (seed {seed}) vs YOLOv5's: mean relative difference {mean:.3e}, worst {w:.3e} ({name})"
        );
        let mut ratios: Vec<(f64, String)> = vec![];
        for (k, v) in own.vs.variables() {
            if let Some(r) = init.get(&k).filter(|r| r.numel() > 1 && v.is_floating_point()) {
                let sd = |t: &Tensor| t.to_kind(Kind::Double).std(true).double_value(&[]);
                if sd(r) > 0.0 {
                    ratios.push((sd(&v) / sd(r), k));
                }
            }
        }
        ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mean_ratio = ratios.iter().map(|r| r.0).sum::<f64>() / ratios.len().max(1) as f64;
        if let (Some(lo), Some(hi)) = (ratios.first(), ratios.last()) {
            println!(
                "  standard deviation own / YOLOv5 over {} tensors: mean {mean_ratio:.3}, lowest {:.3} ({}), highest {:.3} ({})",
                ratios.len(),
                lo.0,
                lo.1,
                hi.0,
                hi.1
            );
        }
    }
    let own_init = std::env::var("TRAJ_INIT").is_ok_and(|v| v == "own");
    if own_init {
        reinit_as_yolo_lab(&model, arg(8, 0));
    } else {
        copy_into(&model, &init, "");
    }
    if perturb > 0.0 {
        tch::manual_seed(1);
        tch::no_grad(|| {
            for (k, v) in model.vs.variables() {
                if v.is_floating_point() && !k.contains("running") && !k.ends_with("anchors") {
                    let noise = v.randn_like() * perturb + 1.0;
                    let _ = v.shallow_clone().g_mul_(&noise);
                }
            }
        });
    }
    let nl = model.head().m.len();
    let loss = ComputeLoss::new(&model, LossConfig::from_hyp(&hyp, nc, nl, imgsz, 0.0));
    let schedule = StepSchedule {
        epochs,
        batches_per_epoch: nb,
        batch,
        cos_lr: false,
        sam: false,
        amp: false,
        // YOLOv5's NCHW layout unless TRAJ_CHANNELS_LAST is set (the trainer's layout)
        channels_last: std::env::var("TRAJ_CHANNELS_LAST").is_ok(),
    };
    let mut step = TrainStep::new(model, &hyp, loss, OptimizerKind::Sgd, schedule)?;
    step.position(first / nb, 1.0);
    if first > 0 {
        copy_into(&step.ema.model, &init, "ema.");
        step.ema.updates = start["ema_updates"].as_u64().expect("start.json: ema_updates");
        step.last_opt_step = start["last_opt_step"].as_i64().expect("start.json: last_opt_step");
        for g in &mut step.opt.groups {
            for (name, _) in &g.params {
                if let Some(b) = init.get(&format!("opt.{name}")) {
                    step.opt.state.insert(name.clone(), vec![b.copy()]);
                }
            }
        }
        for (j, g) in step.opt.groups.iter_mut().enumerate() {
            g.lr = start["lr"][j].as_f64().expect("start.json: lr");
            g.momentum = start["momentum"][j].as_f64().expect("start.json: momentum");
        }
        println!(
            "replay from iteration {first}: {} momentum buffers, EMA updates {}",
            step.opt.state.len(),
            step.ema.updates
        );
    }
    println!(
        "{:>5} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "iter", "epoch", "box", "box v5", "obj", "obj v5", "cls", "cls v5", "Δtot %", "lr0 Δ", "norm", "norm v5"
    );
    let mut sums = [0.0f64; 2];
    for (ni, want) in steps.iter().enumerate().skip(first) {
        let epoch = ni / nb;
        if ni % nb == 0 || ni == first {
            if ni > first {
                step.end_epoch(epoch - 1, 1.0);
            }
            step.start_epoch();
        }
        let imgs = batches[&format!("images.{ni}")].to_kind(Kind::Float) / 255.0;
        let targets = &batches[&format!("targets.{ni}")];
        let report = step.iteration(ni, epoch, 1.0, &imgs, targets);
        let items = report.loss.items;
        let w: Vec<f64> = want["items"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let (tot, tot_w) = (items.iter().sum::<f64>(), w.iter().sum::<f64>());
        let dtot = 100.0 * (tot - tot_w) / tot_w;
        sums[0] += tot;
        sums[1] += tot_w;
        let lr_w = want["lr"][0].as_f64().unwrap();
        let dlr = step.opt.groups[0].lr - lr_w;
        let norm = report.grad_norm.map(|n| format!("{n:.4}")).unwrap_or_default();
        let norm_w = want["grad_norm"].as_f64().map(|n| format!("{n:.4}")).unwrap_or_default();
        println!(
            "{ni:>5} {epoch:>5} {:>9.5} {:>9.5} {:>9.5} {:>9.5} {:>9.5} {:>9.5} {dtot:>8.3} {dlr:>8.1e} {norm:>9} {norm_w:>9}",
            items[0], w[0], items[1], w[1], items[2], w[2]
        );
    }
    let n = (steps.len() - first) as f64;
    println!("mean loss over {n} iterations: yolo-lab {:.6}, YOLOv5 {:.6}", sums[0] / n, sums[1] / n);
    let (w, name, mean) = worst(&step.model, &read(&dir.join("final.safetensors")), "");
    println!("weights after the last iteration: mean relative difference {mean:.3e}, worst {w:.3e} ({name})");
    let (w, name, mean) = worst(&step.ema.model, &read(&dir.join("final_ema.safetensors")), "ema.");
    println!("EMA: mean relative difference {mean:.3e}, worst {w:.3e} ({name}); updates {}", step.ema.updates);
    if let Ok(data) = std::env::var("TRAJ_VAL_DATA") {
        let val = yolo_lab::data::Dataset::load(&data)?.scan(yolo_lab::data::Split::Val)?;
        let cfg =
            yolo_lab::data::LoaderConfig { workers: 2, ..yolo_lab::data::LoaderConfig::val(imgsz as u32, batch * 2) };
        let loader = yolo_lab::data::Loader::new(&val, &hyp, cfg)?;
        let v = yolo_lab::train::validate(&step.ema.model, &loader, None, &yolo_lab::metrics::NmsConfig::default())?;
        let [p, r, m50, m] = v.metrics;
        println!(
            "EMA validated ({} initialisation): P {p:.4} R {r:.4} mAP@0.5 {m50:.4} mAP@0.5:0.95 {m:.4}",
            if own_init { "yolo-lab's own" } else { "YOLOv5's" }
        );
    }
    Ok(())
}
