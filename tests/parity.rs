//! Parity with YOLOv5 on the reference fixtures of shared/parity/yolov5n-nc3 (computed by
//! ultralytics/yolov5@5081342f; see that folder's README for every file and the tolerance table, mirrored in
//! `yolo_lab::parity::tol`). CI has `../shared` beside the clone; without it these tests say so and skip.

use std::path::PathBuf;
use std::process::Command;

fn fixture() -> Option<PathBuf> {
    let dir = std::env::var_os("YOLO_LAB_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/parity/yolov5n-nc3"));
    if dir.join("manifest.json").is_file() {
        Some(dir)
    } else {
        eprintln!("\n*** PARITY FIXTURES NOT FOUND at {} — parity tests SKIPPED ***\n", dir.display());
        None
    }
}

/// Every stage of the checklist: model load, eval and train forward, calibrated forward, build_targets, loss,
/// NMS (sets and tie invariants), one SGD step taken by the trainer's own step (loss, gradients, clipping,
/// parameters, BN buffers), ap_per_class and fitness.
#[test]
fn every_stage_matches_yolov5() {
    let Some(dir) = fixture() else { return };
    let report = yolo_lab::parity::run(&dir).unwrap();
    println!("{report}");
    assert!(report.skipped.is_empty(), "fixture files missing: {:?}", report.skipped);
    for stage in [
        "model/",
        "forward/eval_raw",
        "forward/train_raw",
        "calibrated/eval_out",
        "build_targets/l2_tbox",
        "loss/loss",
        "nms/cal_",
        "nms/raw_",
        "sgd_step/gradients",
        "sgd_step/parameters",
        "ap_per_class/out_ap",
        "fitness",
    ] {
        assert!(report.checks.iter().any(|c| c.name.starts_with(stage)), "no check for {stage}");
    }
    let failed: Vec<_> = report.checks.iter().filter(|c| !c.pass).collect();
    assert!(failed.is_empty(), "mismatches: {failed:#?}");
    assert_eq!(report.checks.len(), 68);
    assert!(report.defaults.is_empty(), "the fixture's manifest gives every setting: {:?}", report.defaults);
}

/// A manifest that omits an NMS setting and the clipping norm: the checks take the README's values, still pass,
/// and the report names each default.
#[test]
fn omitted_settings_are_reported_defaults() {
    let Some(dir) = fixture() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "manifest.json" {
            std::os::unix::fs::symlink(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let keys = m["nms"]["keys"].as_object_mut().unwrap();
    let first = keys.keys().next().unwrap().clone();
    keys.get_mut(&first).unwrap().as_object_mut().unwrap().remove("agnostic");
    m["optimizer"].as_object_mut().unwrap().remove("gradient_clipping");
    std::fs::write(tmp.path().join("manifest.json"), m.to_string()).unwrap();
    let report = yolo_lab::parity::run(tmp.path()).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(
        report.defaults,
        [format!("nms.keys.{first}.agnostic = false"), "optimizer.gradient_clipping.max_norm = 10".to_string()]
    );
    assert!(report.to_string().contains("(not in the manifest)"));
}

fn yolo_lab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_yolo-lab")).args(args).output().unwrap()
}

#[test]
fn parity_command_passes_and_fails_as_it_should() {
    let Some(dir) = fixture() else { return };
    let out = yolo_lab(&["parity", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("68 checks, 68 passed, 0 failed"), "{text}");

    // the same files with a wrong parameter count in the manifest: a mismatch, exit code 1
    let tmp = tempfile::tempdir().unwrap();
    let sub = tmp.path().join("case");
    std::fs::create_dir(&sub).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "manifest.json" {
            std::os::unix::fs::symlink(&p, sub.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::os::unix::fs::symlink(
        dir.parent().unwrap().join("ap_per_class.safetensors"),
        tmp.path().join("ap_per_class.safetensors"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap().replacen(
        "\"n_parameters\": 1767976",
        "\"n_parameters\": 1767977",
        1,
    );
    std::fs::write(sub.join("manifest.json"), manifest).unwrap();
    let out = yolo_lab(&["parity", sub.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISMATCH"));

    // a manifest without the model section: a clear error, exit code 2
    std::fs::write(sub.join("manifest.json"), "{\"schema\": \"yolov5-parity-fixture/1\"}").unwrap();
    let out = yolo_lab(&["parity", sub.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing key `model`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
