//! The `yolo-lab` binary, run in fresh temporary folders.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn yolo_lab(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yolo-lab")).args(args).current_dir(dir).output().expect("binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn doctor_reports_libtorch_and_nvml() {
    let dir = tempfile::tempdir().unwrap();
    let out = yolo_lab(dir.path(), &["doctor"]);
    let t = text(&out);
    assert!(t.contains("libtorch        2.13.0"), "{t}");
    assert!(t.contains("NVML"), "{t}");
    assert!(t.contains("CUDA"), "{t}");
}

#[test]
fn data_command_summarises_and_saves_previews() {
    let dir = tempfile::tempdir().unwrap();
    common::write_shapes(dir.path(), "train", 4, 64);
    let y = common::write_yaml(
        dir.path(),
        "train: images/train\nval: images/train\nnames: [circle, rectangle, triangle]\n",
    );
    let out = yolo_lab(dir.path(), &["data", "--data", y.to_str().unwrap(), "--img", "64", "--batch-size", "2"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("train: 4 images, 0 backgrounds, 0 corrupt"), "{t}");
    for f in ["train_batch0.png", "val_batch0.png"] {
        let p = dir.path().join("runs/data").join(f);
        let img = image::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(img.width() >= 64);
    }
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "lr0: 0.01\nlrf: oops\n").unwrap();
    let out = yolo_lab(dir.path(), &["data", "--hyp", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(t.contains("bad.yaml") && t.contains("`lrf`") && t.contains("oops"), "{t}");
    let out = yolo_lab(dir.path(), &["data", "--data", "no-such-set"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("unknown data set `no-such-set`"));
}

/// A data yaml over `n` images of its own in `root/ds`.
fn own_data(root: &Path, n: usize) -> String {
    let ds = root.join("ds");
    common::write_shapes(&ds, "train", n, 64);
    common::write_yaml(&ds, "train: images/train\nval: images/train\nnames: [a, b, c]\n").display().to_string()
}

/// A small CPU training on `data` into `root/runs/train/{name}` (not yet started).
fn small_trainer(root: &Path, data: &str, name: &str) -> yolo_lab::prelude::Trainer {
    yolo_lab::prelude::Trainer::new()
        .data(data)
        .imgsz(64)
        .batch(4)
        .workers(1)
        .device("cpu")
        .project(root.join("runs/train"))
        .name(name)
}

/// Issue 10.1: `train --resume DIR` (and bare `--resume`) of a run started with non-default flags continues
/// with those flags; a contradicting flag exits 2 naming it and changes no file.
#[test]
fn train_resume_uses_the_runs_own_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = own_data(dir.path(), 6);
    let run = small_trainer(dir.path(), &data, "t5")
        .epochs(3)
        .progress(yolo_lab::prelude::ProgressMode::Quiet)
        .interrupt_after(1)
        .fit()
        .unwrap();
    let files = |d: &Path| -> Vec<Vec<u8>> {
        ["results.csv", "opt.yaml", "weights/last.safetensors"]
            .iter()
            .map(|f| std::fs::read(d.join(f)).unwrap())
            .collect()
    };
    let before = files(&run.dir);
    let out = yolo_lab(dir.path(), &["train", "--resume", "runs/train/t5", "--img", "640", "--epochs", "100"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("imgsz: run 64, asked 640") && t.contains("epochs: run 3, asked 100"), "{t}");
    assert!(files(&run.dir) == before, "a refused resume wrote to the run");
    // bare --resume finds the latest run under --project and continues it with its own settings
    let out = yolo_lab(dir.path(), &["train", "--resume", "--device", "cpu"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("train: 6 images") && t.contains("at epoch 1 of 3") && t.contains("Image sizes 64"), "{t}");
    assert_eq!(std::fs::read_to_string(run.dir.join("results.csv")).unwrap().lines().count(), 4);
    assert_eq!(std::fs::read(run.dir.join("opt.yaml")).unwrap(), before[1], "opt.yaml kept");
}

/// Issue 10.1: `evolve --resume` alone continues with the evolution's own data set and scenario.
#[test]
fn evolve_resume_uses_the_evolutions_own_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = own_data(dir.path(), 6);
    let scenario = ["--img", "64", "--batch-size", "8", "--epochs", "1", "--workers", "1", "--device", "cpu"];
    let mut args = vec!["evolve", "--data", data.as_str(), "--evolve", "1", "--evolve-seed", "4"];
    args.extend(scenario);
    let out = yolo_lab(dir.path(), &args);
    assert!(out.status.success(), "{}", text(&out));
    let out = yolo_lab(dir.path(), &["evolve", "--resume", "--evolve", "2"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("train: 6 images") && t.contains("evolve: 2/2"), "{t}");
    let gens = std::fs::read_to_string(dir.path().join("runs/evolve/exp/generations.csv")).unwrap();
    assert!(gens.lines().skip(1).all(|l| l.split(',').nth(2) == Some("4")), "the evolution's seed: {gens}");
    let out = yolo_lab(dir.path(), &["evolve", "--resume", "--evolve", "3", "--img", "128"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("imgsz: run 64, asked 128"), "{t}");
}

/// Issue 10.4: four processes sharing one evolution write exactly the requested rows, none repeated.
#[test]
fn evolve_processes_sharing_a_folder_never_repeat_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("runs/evolve/exp");
    std::fs::create_dir_all(&exp).unwrap();
    std::fs::write(exp.join("evolve.csv"), "").unwrap();
    let args = [
        "evolve",
        "--resume",
        "--data",
        "shapes-tiny",
        "--img",
        "64",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--workers",
        "1",
        "--device",
        "cpu",
        "--evolve",
        "8",
    ];
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_yolo-lab"))
                .args(args)
                .current_dir(dir.path())
                .env("OMP_NUM_THREADS", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let t = yolo_lab::evolve::csv::read(&exp.join("evolve.csv")).unwrap();
    assert_eq!(t.rows.len(), 8, "exactly the requested rows");
    let hyps: std::collections::BTreeSet<String> = t.rows.iter().map(|r| format!("{:?}", &r[7..])).collect();
    assert_eq!(hyps.len(), 8, "no hyperparameter set trained twice");
    let gens = std::fs::read_to_string(exp.join("generations.csv")).unwrap();
    let mut labels: Vec<usize> = gens.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    labels.sort();
    assert_eq!(labels, (0..8).collect::<Vec<_>>(), "{gens}");
    assert!(exp.join("evolve.png").is_file(), "the evolve command draws YOLOv5's evolve.png");
}

/// Issue 10.5: the smaller defects seen from the command line.
#[test]
fn messages_name_the_fault_once() {
    let dir = tempfile::tempdir().unwrap();
    // a missing file: its OS error appears once
    let out = yolo_lab(dir.path(), &["data", "--data", "nothere.yaml"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert_eq!(t.matches("No such file or directory").count(), 1, "{t}");
    // unknown data-yaml keys are named, once
    let data = own_data(dir.path(), 2);
    let text_of = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&data, text_of + "trian: images/train\n").unwrap();
    let out = yolo_lab(dir.path(), &["data", "--data", data.as_str(), "--img", "64", "--batch-size", "2"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(t.matches("unknown keys ignored: trian").count(), 1, "{t}");
    // --evolve-workers 0 is named as such
    let out = yolo_lab(dir.path(), &["evolve", "--evolve-workers", "0", "--data", "shapes-tiny", "--img", "64"]);
    assert!(text(&out).contains("`evolve workers`"), "{}", text(&out));
    // a results.csv with a garbage row is refused, naming the line
    let header: Vec<String> = yolo_lab::train::RESULTS_COLUMNS.iter().map(|c| format!("{c:>20}")).collect();
    std::fs::write(dir.path().join("results.csv"), format!("{}\ngarbage,,,\n", header.join(","))).unwrap();
    let out = yolo_lab(dir.path(), &["plot-results", "results.csv"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("results.csv:2: "), "{t}");
}

/// Issue 10.5: `anchors: N` with --noautoanchor trains on placeholder anchors; it says so.
#[test]
fn placeholder_anchors_without_autoanchor_warn() {
    let dir = tempfile::tempdir().unwrap();
    let y = yolo_lab::model::MODEL_CONFIGS[0].1;
    let (start, end) = (y.find("anchors:  #").unwrap(), y.find("\n\n# [from").unwrap());
    std::fs::write(dir.path().join("a3.yaml"), format!("{}anchors: 3{}", &y[..start], &y[end..])).unwrap();
    let out = yolo_lab(
        dir.path(),
        &[
            "train",
            "--cfg",
            "a3.yaml",
            "--noautoanchor",
            "--data",
            "shapes-tiny",
            "--img",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--workers",
            "1",
            "--device",
            "cpu",
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("WARNING") && t.contains("placeholders") && t.contains("a3.yaml"), "{t}");
}

/// Issue 12: `--progress silent` prints nothing at all (every library message goes through the reporter);
/// `quiet` prints the epoch header once and one compact line per epoch.
#[test]
fn silent_training_prints_nothing_and_quiet_one_line_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let run = |mode: &str| {
        let args =
            ["train", "--data", "shapes-tiny", "--img", "64", "--batch-size", "8", "--epochs", "2", "--workers", "1"];
        let out = Command::new(env!("CARGO_BIN_EXE_yolo-lab"))
            .args(args)
            .args(["--device", "cpu", "--progress", mode, "--name", mode])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    let silent = run("silent");
    assert!(silent.stdout.is_empty() && silent.stderr.is_empty(), "silent printed:\n{}", text(&silent));
    assert!(dir.path().join("runs/train/silent/results.csv").is_file());
    let quiet = run("quiet");
    let t = text(&quiet);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.iter().filter(|l| l.trim_start().starts_with("epoch ")).count(), 1, "{t}");
    for e in ["0/1", "1/1"] {
        assert_eq!(lines.iter().filter(|l| l.trim_start().starts_with(e)).count(), 1, "{t}");
    }
    assert!(!t.contains("Class     Images"), "no validation tables in quiet mode:\n{t}");
}

/// Issue 13.4: `val` and `detect` of weights trained here (yolo-lab's safetensors carry their config and
/// classes), `convert` of YOLOv5's own checkpoint, and a `.pt` as training weights.
#[test]
fn val_detect_and_convert_work_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = own_data(dir.path(), 6);
    let run = small_trainer(dir.path(), &data, "t")
        .epochs(1)
        .batch(3)
        .progress(yolo_lab::prelude::ProgressMode::Silent)
        .fit()
        .unwrap();
    let best = run.best_weights.clone().unwrap().display().to_string();
    let out = yolo_lab(
        dir.path(),
        &["val", "--weights", &best, "--data", &data, "--img", "64", "--batch-size", "4", "--save-txt", "--save-json"],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let header = format!(
        "{:>22}{:>11}{:>11}{:>11}{:>11}{:>11}{:>11}",
        "Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"
    );
    assert!(t.contains(&header), "{t}");
    assert!(t.lines().any(|l| l.trim_start().starts_with("all") && l.contains(" 6 ")), "{t}");
    assert!(t.contains("per image at shape (4, 3, 64, 64)"), "{t}");
    let exp = dir.path().join("runs/val/exp");
    for f in ["confusion_matrix.png", "PR_curve.png", "predictions.json"] {
        assert!(exp.join(f).is_file(), "{f} missing: {t}");
    }
    assert_eq!(std::fs::read_dir(exp.join("labels")).unwrap().count(), 6);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exp.join("predictions.json")).unwrap()).unwrap();
    assert!(json.as_array().is_some_and(|a| a.iter().all(|d| d["bbox"].as_array().map(Vec::len) == Some(4))));
    // detect on a glob of the training images: annotated PNGs and labels with confidences
    let glob = dir.path().join("ds/images/train/img*.jpg").display().to_string();
    let out = yolo_lab(
        dir.path(),
        &[
            "detect",
            "--weights",
            &best,
            "--source",
            &glob,
            "--img",
            "64",
            "--conf-thres",
            "0.001",
            "--save-txt",
            "--save-conf",
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let exp = dir.path().join("runs/detect/exp");
    let pngs = std::fs::read_dir(&exp)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png"))
        .count();
    assert_eq!(pngs, 6, "{t}");
    for e in std::fs::read_dir(exp.join("labels")).unwrap() {
        for line in std::fs::read_to_string(e.unwrap().path()).unwrap().lines() {
            assert_eq!(line.split_whitespace().count(), 6, "class, xywh, conf: {line}");
        }
    }
    // a source with nothing in it is an error naming it
    let out = yolo_lab(dir.path(), &["detect", "--weights", &best, "--source", "nowhere"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nowhere"), "{}", text(&out));
    // YOLOv5's own checkpoint: convert, and train from it (the model comes from the checkpoint: nc 3)
    let pt = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/yolov5-checkpoint/yolov5n-shapes-mini-128.pt");
    if !pt.is_file() {
        eprintln!("*** shared/data/yolov5-checkpoint not found: convert and .pt training checks SKIPPED ***");
        return;
    }
    let pt = pt.display().to_string();
    let out = yolo_lab(dir.path(), &["convert", &pt, "conv/v5n.safetensors"]);
    assert!(out.status.success(), "{}", text(&out));
    let yaml = std::fs::read_to_string(dir.path().join("conv/v5n.yaml")).unwrap();
    assert!(yaml.contains("circle") && yaml.contains("nc: 3"), "{yaml}");
    let mut m =
        yolo_lab::model::Yolo::new(dir.path().join("conv/v5n.yaml").to_str().unwrap(), None, tch::Device::Cpu).unwrap();
    assert_eq!(m.load(dir.path().join("conv/v5n.safetensors")).unwrap().loaded, 349);
    let out = yolo_lab(
        dir.path(),
        &[
            "train",
            "--weights",
            &pt,
            "--data",
            &data,
            "--img",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "3",
            "--workers",
            "1",
            "--device",
            "cpu",
            "--name",
            "from-pt",
        ],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("transferred 349 tensors"), "{t}");
}
