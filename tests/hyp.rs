//! Hyperparameter files: presets, round trip, and every kind of bad input naming file, key and value.

use std::path::Path;
use yolo_lab::Error;
use yolo_lab::hyp::{Hyp, PRESETS, REQUIRED_KEYS};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn presets_have_yolov5_values_and_order() {
    let low = Hyp::load("scratch-low").unwrap();
    assert_eq!((low.lr0, low.lrf, low.momentum, low.mosaic, low.fliplr), (0.01, 0.01, 0.937, 1.0, 0.5));
    let keys: Vec<_> = low.keys().collect();
    let expected = [
        "lr0",
        "lrf",
        "momentum",
        "weight_decay",
        "warmup_epochs",
        "warmup_momentum",
        "warmup_bias_lr",
        "box",
        "cls",
        "cls_pw",
        "obj",
        "obj_pw",
        "iou_t",
        "anchor_t",
        "fl_gamma",
        "hsv_h",
        "hsv_s",
        "hsv_v",
        "degrees",
        "translate",
        "scale",
        "shear",
        "perspective",
        "flipud",
        "fliplr",
        "mosaic",
        "mixup",
        "copy_paste",
    ];
    assert_eq!(keys, expected);
    assert_eq!(REQUIRED_KEYS.len(), 28);
    let high = Hyp::load("hyp.scratch-high.yaml").unwrap();
    assert_eq!((high.scale, high.mixup, high.copy_paste, high.lrf), (0.9, 0.1, 0.1, 0.1));
    let noaug = Hyp::load("no-augmentation").unwrap();
    assert_eq!((noaug.mosaic, noaug.hsv_h, noaug.fliplr), (0.0, 0.0, 0.0));
    assert_eq!(PRESETS.len(), 6);
}

#[test]
fn save_load_round_trip_keeps_order_and_values() {
    let dir = tempfile::tempdir().unwrap();
    for (name, _) in PRESETS {
        let h = Hyp::load(name).unwrap();
        let p = dir.path().join(format!("{name}.yaml"));
        h.save(&p).unwrap();
        let back = Hyp::from_file(&p).unwrap();
        assert_eq!(back, h, "{name}");
        assert_eq!(back.keys().collect::<Vec<_>>(), h.keys().collect::<Vec<_>>());
    }
}

#[test]
fn get_set_iterate() {
    let mut h = Hyp::default();
    assert_eq!(h.get("box"), Some(0.05));
    assert_eq!(h.get("anchors"), None);
    h.set("lr0", 0.02).unwrap();
    assert_eq!(h.lr0, 0.02);
    h.set("anchors", 3.0).unwrap();
    assert_eq!(h.iter().last(), Some(("anchors", 3.0)), "a new anchors key is appended last, as YOLOv5 does");
    assert!(matches!(h.set("lr00", 1.0), Err(Error::UnknownHypKey { .. })));
    assert!(matches!(h.set("fliplr", 1.5), Err(Error::HypOutOfRange { .. })));
    assert!(matches!(h.set("lr0", f64::NAN), Err(Error::HypOutOfRange { .. })));
    assert_eq!(h.iter().count(), 29);
}

#[test]
fn unknown_key_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = Hyp::default().to_yaml_string() + "lrf0: 0.1\n";
    let p = write(dir.path(), "bad.yaml", &text);
    let e = Hyp::from_file(&p).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::UnknownHypKey { ref key, .. } if key == "lrf0"), "{msg}");
    assert!(msg.contains("bad.yaml") && msg.contains("lrf0") && msg.contains("expected one of"), "{msg}");
}

#[test]
fn missing_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = Hyp::default()
        .to_yaml_string()
        .lines()
        .filter(|l| !l.starts_with("mosaic:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = write(dir.path(), "short.yaml", &text);
    let msg = Hyp::from_file(&p).unwrap_err().to_string();
    assert!(msg.contains("short.yaml") && msg.contains("missing hyperparameter `mosaic`"), "{msg}");
}

#[test]
fn non_numeric_value_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = Hyp::default().to_yaml_string().replace("lr0: 0.01", "lr0: fast");
    let p = write(dir.path(), "word.yaml", &text);
    let msg = Hyp::from_file(&p).unwrap_err().to_string();
    assert!(msg.contains("word.yaml") && msg.contains("`lr0`") && msg.contains("`fast`"), "{msg}");
}

#[test]
fn out_of_range_value_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = Hyp::default().to_yaml_string().replace("mosaic: 1.0", "mosaic: 2.5");
    let p = write(dir.path(), "range.yaml", &text);
    let msg = Hyp::from_file(&p).unwrap_err().to_string();
    assert!(msg.contains("range.yaml") && msg.contains("`mosaic` = 2.5") && msg.contains("[0, 1]"), "{msg}");
    let neg = Hyp::default().to_yaml_string().replace("lr0: 0.01", "lr0: -0.01");
    let p = write(dir.path(), "neg.yaml", &neg);
    assert!(matches!(Hyp::from_file(&p), Err(Error::HypOutOfRange { .. })));
}

#[test]
fn malformed_yaml_and_unknown_preset() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "broken.yaml", "lr0: [0.01\n");
    let msg = Hyp::from_file(&p).unwrap_err().to_string();
    assert!(msg.contains("broken.yaml"), "{msg}");
    let p = write(dir.path(), "list.yaml", "- 1\n- 2\n");
    assert!(Hyp::from_file(&p).unwrap_err().to_string().contains("mapping"));
    let e = Hyp::load("scratch-huge").unwrap_err().to_string();
    assert!(e.contains("scratch-huge") && e.contains("scratch-low"), "{e}");
    assert!(matches!(Hyp::load("nope/hyp.yaml"), Err(Error::Io { .. })));
}

#[test]
fn anchors_are_optional_and_kept_where_written() {
    let voc = Hyp::load("VOC").unwrap();
    assert_eq!(voc.anchors, Some(3.412));
    let mut no = voc.clone();
    no.remove_anchors();
    assert_eq!(no.len(), 28);
    assert!(no.to_yaml_string().lines().all(|l| !l.starts_with("anchors")));
}

#[test]
fn yaml_floats_are_written_like_pyyaml() {
    let mut h = Hyp::default();
    h.set("weight_decay", 0.00001).unwrap();
    let text = h.to_yaml_string();
    assert!(text.contains("weight_decay: 1.0e-05\n"), "{text}");
    assert!(text.contains("warmup_epochs: 3.0\n"), "{text}");
    assert!(text.starts_with("lr0: 0.01\nlrf: 0.01\nmomentum: 0.937\n"), "{text}");
}
