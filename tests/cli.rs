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
