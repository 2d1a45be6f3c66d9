//! The trainer on the tiny shapes set at 64 px: results.csv layout, checkpoints, resume, freezing, learning
//! rates, NaN handling. Each run takes about a second on a CPU.

mod common;

use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Tensor};
use yolo_lab::prelude::*;
use yolo_lab::train::{RESULTS_COLUMNS, checkpoint, results, schedule};

/// Trainings in this file run one at a time: the bit-exact resume checks compare float results, and two
/// trainings sharing the two cores can change libtorch's (MKL's) thread split and with it the rounding.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn tiny(dir: &Path) -> Trainer {
    Trainer::new()
        .data("shapes-tiny")
        .cfg("yolov5n")
        .imgsz(64)
        .batch(4)
        .epochs(2)
        .workers(1)
        .device("cpu")
        .project(dir)
        .progress(ProgressMode::Quiet)
}

fn tensors(p: &Path) -> HashMap<String, Tensor> {
    checkpoint::read_tensors(p).unwrap()
}

#[test]
fn results_csv_has_yolov5_layout() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = tiny(dir.path()).epochs(2).fit().unwrap();
    assert_eq!(run.dir, dir.path().join("exp"));
    let text = std::fs::read_to_string(run.results_csv()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    let expected_header = [
        "epoch",
        "train/box_loss",
        "train/obj_loss",
        "train/cls_loss",
        "metrics/precision",
        "metrics/recall",
        "metrics/mAP_0.5",
        "metrics/mAP_0.5:0.95",
        "val/box_loss",
        "val/obj_loss",
        "val/cls_loss",
        "x/lr0",
        "x/lr1",
        "x/lr2",
    ];
    assert_eq!(RESULTS_COLUMNS, expected_header);
    let want: String = expected_header.iter().map(|c| format!("{c:>20}")).collect::<Vec<_>>().join(",");
    assert_eq!(lines[0], want);
    for l in &lines[1..] {
        let cells: Vec<&str> = l.split(',').collect();
        assert_eq!(cells.len(), 14);
        assert!(cells.iter().all(|c| c.len() == 20), "{l}");
        assert!(cells.iter().all(|c| c.trim().parse::<f64>().is_ok()));
    }
    assert_eq!(lines[1][..20].trim(), "0");
    let rows = results::read(&run.results_csv()).unwrap();
    assert_eq!(rows.len(), 2);
    // warmup: nb = 2 batches, nw = 100 iterations; the row holds the lr of the epoch's last iteration
    let nw = schedule::warmup_iters(3.0, 2) as f64;
    assert!((rows[0].lr[0] - (0.1 + (0.01 - 0.1) * 1.0 / nw)).abs() < 1e-9, "{:?}", rows[0].lr);
    assert!((rows[0].lr[1] - 0.01 * 1.0 / nw).abs() < 1e-9);
    let lf1 = schedule::lr_factor(1.0, 2, 0.01, false);
    assert!((rows[1].lr[1] - 0.01 * lf1 * 3.0 / nw).abs() < 1e-9, "{:?}", rows[1].lr);
    // other files of the run folder
    for f in ["hyp.yaml", "opt.yaml", "gpu.csv", "weights/last.safetensors", "weights/best.safetensors"] {
        assert!(run.dir.join(f).is_file(), "{f}");
    }
    assert_eq!(Hyp::from_file(run.dir.join("hyp.yaml")).unwrap(), Hyp::default());
    assert!(
        std::fs::read_to_string(run.dir.join("gpu.csv")).unwrap().starts_with("# source: process RSS and CPU only")
    );
    // the polars view
    let df = run.metrics_df().unwrap();
    assert_eq!(df.shape(), (2, 14));
    // YOLOv5's sample parses with the same reader
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/yolov5-results-sample/results.csv");
    if sample.is_file() {
        let rows = results::read(&sample).unwrap();
        assert_eq!(rows.len(), 30);
        let again = results::to_csv(&rows);
        assert_eq!(again, std::fs::read_to_string(&sample).unwrap(), "our writer reproduces YOLOv5's bytes");
    }
    // a second run gets the next folder
    let run2 = tiny(dir.path()).epochs(1).fit().unwrap();
    assert_eq!(run2.dir, dir.path().join("exp2"));
}

#[test]
fn checkpoints_round_trip() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = tiny(dir.path()).epochs(1).fit().unwrap();
    let last = run.last_weights.clone().unwrap();
    let best = run.best_weights.clone().unwrap();
    let meta = checkpoint::read_meta(&last).unwrap();
    assert!(meta.resumable && meta.epoch == 0 && meta.names == ["circle", "rectangle", "triangle"]);
    assert!(!checkpoint::read_meta(&best).unwrap().resumable);
    // best holds the EMA weights under the model's names: a plain model loads them
    let mut m = Yolo::new("yolov5n", Some(3), Device::Cpu).unwrap();
    let report = m.load(&best).unwrap();
    assert_eq!(report.loaded, 349);
    let t = tensors(&last);
    assert!(t.keys().any(|k| k.starts_with("train.model.24.m.0.weight")));
    assert!(t.keys().any(|k| k.starts_with("optim.model.0.conv.weight.0")));
    for (k, v) in m.vs.variables() {
        assert!(v.equal(&t[&k]), "{k}");
    }
    // a results-only file is not a checkpoint
    let e = checkpoint::read_meta(&run.results_csv()).unwrap_err().to_string();
    assert!(e.contains("results.csv"), "{e}");
}

/// Training 3 epochs straight and training 2, "crashing", and resuming give the same weights, optimizer
/// state and results rows.
#[test]
fn resume_continues_exactly() {
    let _serial = serial();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let straight = tiny(a.path()).epochs(3).fit().unwrap();
    let first = tiny(b.path()).epochs(3).interrupt_after(2).fit().unwrap();
    assert_eq!(first.rows.len(), 2);
    let last = first.dir.join("weights/last.safetensors");
    assert_eq!(checkpoint::read_meta(&last).unwrap().epoch, 1);
    let resumed = tiny(b.path()).epochs(3).resume(&first.dir).fit().unwrap();
    assert_eq!(resumed.dir, first.dir);
    assert_eq!(resumed.rows.len(), 3);
    let csv = |d: &Path| std::fs::read_to_string(d.join("results.csv")).unwrap();
    assert_eq!(csv(&resumed.dir), csv(&straight.dir), "same results.csv bytes, earlier rows kept");
    let (x, y) = (tensors(&straight.dir.join("weights/last.safetensors")), tensors(&last));
    assert_eq!(x.len(), y.len());
    for (k, v) in &x {
        assert!(v.equal(&y[k]), "{k} differs after resume");
    }
    assert_eq!(resumed.rows[2], straight.rows[2]);
    // resuming a finished run is an error, not a silent no-op
    assert!(tiny(b.path()).epochs(3).resume(&first.dir).fit().is_err());
}

#[test]
fn freezing_keeps_frozen_tensors_bit_identical() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("init.safetensors");
    let m = Yolo::new("yolov5n", Some(3), Device::Cpu).unwrap();
    m.save(&init).unwrap();
    // warmup starts weight learning rates at 0: a large lr0 makes the few tiny steps visible in float32
    let mut hyp = Hyp::default();
    hyp.set("lr0", 1.0).unwrap();
    let run = tiny(dir.path()).weights(&init).hyp(hyp).freeze(10).epochs(2).noautoanchor(true).fit().unwrap();
    assert_eq!(run.parameters.1, (0..10).map(|i| m.summary(64).rows[i].params).sum::<i64>());
    let before = tensors(&init);
    let after = tensors(&run.dir.join("weights/last.safetensors"));
    let (mut frozen, mut trained) = (0, 0);
    for (k, v) in &before {
        if yolo_lab::model::is_buffer(k) {
            continue;
        }
        let now = &after[&format!("train.{k}")];
        let idx: usize = k.split('.').nth(1).unwrap().parse().unwrap();
        if idx < 10 {
            assert!(now.equal(v), "{k} is frozen but changed");
            frozen += 1;
        } else {
            assert!(!now.equal(v), "{k} is trainable but did not change");
            trained += 1;
        }
    }
    assert!(frozen > 50 && trained > 50, "{frozen} {trained}");
    // YOLOv5 keeps BatchNorm statistics of frozen layers updating
    assert!(!after["train.model.0.bn.running_mean"].equal(&before["model.0.bn.running_mean"]));
    assert_eq!(yolo_lab::train::Freeze::from_cli(&[0, 1, 2]).indices(), vec![0, 1, 2]);
    assert!(Freeze::Backbone.matches("model.9.cv1.conv.weight") && !Freeze::Backbone.matches("model.10.conv.weight"));
}

#[test]
fn staged_schedule_trains_in_every_stage_and_resumes_exactly() {
    let _serial = serial();
    // seed 003's schedule: all layers, then the backbone frozen on half the images, then frozen at lr x 0.1;
    // the half-data stage has fewer batches per epoch, which must not stall the optimizer's step counter
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut hyp = Hyp::default();
    hyp.set("lr0", 1.0).unwrap();
    let staged = |d: &Path| {
        tiny(d).hyp(hyp.clone()).noautoanchor(true).freeze_schedule(FreezeSchedule::seed003(1, 1, 1, Freeze::Backbone))
    };
    let straight = staged(a.path()).fit().unwrap();
    assert_eq!(straight.rows.len(), 3);
    let mut snapshots = Vec::new();
    let mut dir = None;
    for _ in 0..3 {
        let t = staged(b.path()).interrupt_after(1);
        let run = match &dir {
            None => t.fit().unwrap(),
            Some(d) => t.resume(d).fit().unwrap(),
        };
        snapshots.push(tensors(&run.dir.join("weights/last.safetensors")));
        dir = Some(run.dir);
    }
    let (head, backbone) = ("train.model.24.m.0.weight", "train.model.0.conv.weight");
    for w in snapshots.windows(2) {
        assert!(!w[0][head].equal(&w[1][head]), "the Detect head did not train in a stage");
        assert!(w[0][backbone].equal(&w[1][backbone]), "the backbone changed while frozen");
    }
    let csv = |d: &Path| std::fs::read_to_string(d.join("results.csv")).unwrap();
    assert_eq!(csv(dir.as_ref().unwrap()), csv(&straight.dir), "resumed schedule = uninterrupted schedule");
}

#[test]
fn nan_loss_stops_with_a_clear_error_and_keeps_files() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let first = tiny(dir.path()).epochs(3).interrupt_after(1).fit().unwrap();
    let last = first.dir.join("weights/last.safetensors");
    // poison the training weights of the checkpoint, keep its metadata
    let meta = checkpoint::read_meta(&last).unwrap();
    let mut t: Vec<(String, Tensor)> = tensors(&last).into_iter().collect();
    for (k, v) in t.iter_mut() {
        if k == "train.model.24.m.0.bias" {
            *v = v.fill(f64::NAN);
        }
    }
    checkpoint::write(&last, &t, &meta).unwrap();
    let csv_before = std::fs::read_to_string(first.dir.join("results.csv")).unwrap();
    let err = tiny(dir.path()).epochs(3).resume(&first.dir).fit().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, yolo_lab::Error::NonFiniteLoss { epoch: 1, .. }), "{msg}");
    assert!(msg.contains("non-finite loss") && msg.contains("epoch 1"), "{msg}");
    assert_eq!(std::fs::read_to_string(first.dir.join("results.csv")).unwrap(), csv_before);
    assert_eq!(checkpoint::read_meta(&last).unwrap().epoch, 0);
}

#[test]
fn settings_are_checked_before_any_work() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Trainer, &str)> = vec![
        (tiny(dir.path()).epochs(0), "epochs"),
        (tiny(dir.path()).batch(0), "batch"),
        (tiny(dir.path()).imgsz(16), "imgsz"),
        (tiny(dir.path()).device("7"), "device"),
        (tiny(dir.path()).cfg("yolov9"), "yolov9"),
        (tiny(dir.path()).hyp("scratch-huge"), "scratch-huge"),
        (tiny(dir.path()).weights(dir.path().join("none.safetensors")), "none.safetensors"),
        (tiny(dir.path()).label_smoothing(1.5), "label_smoothing"),
        // issue 10.3: these used to panic in libtorch ("does not require grad") or abort on a 2 TB allocation
        (tiny(dir.path()).freeze(25), "nothing would train"),
        (tiny(dir.path()).freeze_schedule(FreezeSchedule::seed003(1, 1, 1, 30)), "nothing would train"),
        (tiny(dir.path()).imgsz(1_000_000), "above 8192"),
    ];
    for (t, needle) in cases {
        let e = t.fit().unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    assert!(!dir.path().join("exp").exists(), "nothing was created");
}

/// Every file of a folder tree with its bytes.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// A run with settings far from the defaults (own data yaml, 64 px, batch 4, 3 epochs, seed 5, cosine
/// schedule, patience, varifocal) on a folder of its own.
fn unusual(data: &Path, project: &Path) -> Trainer {
    Trainer::new()
        .data(data.display().to_string())
        .imgsz(64)
        .batch(4)
        .epochs(3)
        .seed(5)
        .cos_lr(true)
        .patience(50)
        .varifocal(true)
        .workers(1)
        .device("cpu")
        .project(project)
        .progress(ProgressMode::Quiet)
}

/// Issue 10.1: `.resume(dir)` with nothing else continues with the run's own data, size, batch, epochs, seed
/// and options, and writes the same results.csv as the run without interruption.
#[test]
fn resume_keeps_the_runs_own_settings() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    common::write_shapes(data.path(), "train", 8, 96);
    let yaml = common::write_yaml(data.path(), "train: images/train\nval: images/train\nnames: [a, b, c]\n");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let straight = unusual(&yaml, a.path()).fit().unwrap();
    let first = unusual(&yaml, b.path()).interrupt_after(1).fit().unwrap();
    let opt = std::fs::read_to_string(first.dir.join("opt.yaml")).unwrap();
    // resumed with the defaults everywhere else (shapes, 640 px, 100 epochs, batch 16, seed 0, ...)
    let resumed = Trainer::new().resume(&first.dir).progress(ProgressMode::Quiet).fit().unwrap();
    assert_eq!(resumed.dir, first.dir);
    assert_eq!(resumed.rows.len(), 3, "the run's 3 epochs, not the default 100");
    let csv = |d: &Path| std::fs::read_to_string(d.join("results.csv")).unwrap();
    assert_eq!(csv(&resumed.dir), csv(&straight.dir), "same results.csv as without the interruption");
    assert_eq!(std::fs::read_to_string(first.dir.join("opt.yaml")).unwrap(), opt, "opt.yaml is the run's");
    assert!(opt.contains("imgsz: 64") && opt.contains("batch_size: 4") && opt.contains("cos_lr: true"), "{opt}");
    // also through the checkpoint path
    let meta = checkpoint::read_meta(&resumed.dir.join("weights/last.safetensors")).unwrap();
    assert_eq!(meta.epoch, 2);
}

/// Issue 10.1: a resume that asks for other settings is refused, naming them, before any byte is written;
/// runtime settings (device, workers, cache, progress) may differ.
#[test]
fn resume_refuses_contradicting_settings_and_writes_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let first = tiny(dir.path()).epochs(3).interrupt_after(1).fit().unwrap();
    let before = snapshot(dir.path());
    let cases: Vec<(Trainer, &[&str])> = vec![
        (Trainer::new().resume(&first.dir).imgsz(640), &["imgsz", "run 64", "asked 640"]),
        (Trainer::new().resume(&first.dir).data("shapes").epochs(10), &["data", "shapes-tiny", "epochs"]),
        (Trainer::new().resume(&first.dir).hyp("scratch-high"), &["hyp", "lrf run 0.01 asked 0.1"]),
        (Trainer::new().resume(&first.dir).freeze(10), &["freeze"]),
    ];
    for (t, needles) in cases {
        let e = t.progress(ProgressMode::Quiet).fit().unwrap_err().to_string();
        for n in needles {
            assert!(e.contains(n), "`{n}` not in: {e}");
        }
        assert!(e.contains("resume"), "{e}");
    }
    assert!(snapshot(dir.path()) == before, "a refused resume changed a file");
    // the same settings again, or only runtime ones changed, are accepted
    let run = tiny(dir.path()).epochs(3).workers(2).cache(Cache::Ram).resume(&first.dir).fit().unwrap();
    assert_eq!(run.rows.len(), 3);
}

/// Issue 19: after warmup, epoch e trains at lr0 · lf(e − 1), as train.py's LambdaLR with
/// `last_epoch = start_epoch − 1` does (yolo-lab trained at lf(e): its whole schedule ran one epoch ahead).
/// Oracle: YOLOv5's own results.csv of the same recipe shows x/lr0 = 0.009406 = 0.01 · lf(6) at epochs 6
/// and 7 of 100 (warmup ends inside epoch 6) and 0.000298 = 0.01 · lf(98) at epoch 99.
#[test]
fn lr_schedule_after_warmup_is_one_epoch_behind_like_train_py() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // batch 1 on 8 images: 8 iterations per epoch, warmup (100 iterations) ends inside epoch 12
    let run = tiny(dir.path()).batch(1).epochs(15).noval(true).noautoanchor(true).fit().unwrap();
    let hyp = Hyp::default();
    let lf = |e: usize| schedule::lr_factor(e as f64, 15, hyp.lrf, false);
    assert!((run.rows[12].lr[1] - hyp.lr0 * lf(12)).abs() < 1e-12, "warmup ends inside epoch 12 at lf(12)");
    assert_eq!((schedule::lr_epoch(12, 100, 8), schedule::lr_epoch(13, 100, 8)), (12, 12));
    for e in 13..15 {
        for g in 0..3 {
            let want = hyp.lr0 * lf(e - 1);
            assert!((run.rows[e].lr[g] - want).abs() < 1e-12, "epoch {e} group {g}: {} vs {want}", run.rows[e].lr[g]);
        }
    }
}

/// The BatchNorm buffers of layers 0–9 (running statistics and counters) after a `freeze(10)` training from
/// `init`, against `init`'s: (identical, changed).
fn frozen_bn_buffers(dir: &Path, freeze_bn: bool) -> (usize, usize) {
    let init = dir.join("init.safetensors");
    Yolo::new("yolov5n", Some(3), Device::Cpu).unwrap().save(&init).unwrap();
    let run = tiny(dir).weights(&init).freeze(10).freeze_bn(freeze_bn).epochs(1).noautoanchor(true).fit().unwrap();
    let (before, after) = (tensors(&init), tensors(&run.dir.join("weights/last.safetensors")));
    let (mut same, mut changed) = (0, 0);
    for (k, v) in &before {
        let idx: usize = k.split('.').nth(1).unwrap().parse().unwrap();
        if idx < 10 && ["running_mean", "running_var", "num_batches_tracked"].iter().any(|b| k.ends_with(b)) {
            if after[&format!("train.{k}")].equal(v) { same += 1 } else { changed += 1 }
        }
    }
    (same, changed)
}

/// Issue 15.3: with `freeze_bn(true)` every frozen BatchNorm buffer is bit-identical after training; without
/// it (YOLOv5's behaviour) they drift.
#[test]
fn freeze_bn_keeps_frozen_batchnorm_statistics() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (same, changed) = frozen_bn_buffers(&dir.path().join("eval"), true);
    assert!(same > 0 && changed == 0, "{same} identical, {changed} changed");
    let (same, changed) = frozen_bn_buffers(&dir.path().join("drift"), false);
    assert!(changed > 0 && same == 0, "{same} identical, {changed} changed");
}

/// Issue 15.3: an unfreeze schedule leaves the frozen parameters alone before its epoch and trains them after.
#[test]
fn unfreezing_trains_formerly_frozen_layers_after_its_epoch_only() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("init.safetensors");
    Yolo::new("yolov5n", Some(3), Device::Cpu).unwrap().save(&init).unwrap();
    let mut hyp = Hyp::default();
    hyp.set("lr0", 1.0).unwrap();
    let schedule = FreezeSchedule::unfreeze_at(10usize, 1, 1);
    let t = tiny(dir.path()).weights(&init).hyp(hyp).freeze_schedule(schedule).noautoanchor(true).name("u");
    let first = t.clone().interrupt_after(1).fit().unwrap();
    let key = "model.0.conv.weight";
    let start = &tensors(&init)[key];
    assert!(
        tensors(&first.dir.join("weights/last.safetensors"))[&format!("train.{key}")].equal(start),
        "trained while frozen"
    );
    let done = t.resume(first.dir.join("weights/last.safetensors")).fit().unwrap();
    assert_eq!(done.rows.len(), 2);
    assert!(
        !tensors(&done.dir.join("weights/last.safetensors"))[&format!("train.{key}")].equal(start),
        "not trained after unfreezing"
    );
    // gradual unfreezing: 24 → 16 → 8 → 0 frozen modules
    let g = FreezeSchedule::gradual(24, 8, 2, 3);
    let frozen: Vec<Vec<usize>> = g.stages.iter().map(|s| s.freeze.indices()).collect();
    assert_eq!(frozen.iter().map(Vec::len).collect::<Vec<_>>(), [24, 16, 8, 0]);
    assert_eq!(g.epochs(), 9);
}
