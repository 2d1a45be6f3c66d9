//! YOLOv5 `.pt` checkpoints read without Python (issue 13.3), on the checkpoint YOLOv5 itself wrote in
//! shared/data/yolov5-checkpoint. CI has `../shared` beside the clone; without it these tests say so and skip.

use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};
use yolo_lab::model::{Checkpoint, Yolo};

fn fixture() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/yolov5-checkpoint");
    if d.join("yolov5n-shapes-mini-128.pt").is_file() {
        Some(d)
    } else {
        eprintln!("*** shared/data/yolov5-checkpoint not found: .pt checkpoint checks SKIPPED ***");
        None
    }
}

fn expected(d: &Path) -> std::collections::HashMap<String, Tensor> {
    Tensor::read_safetensors(d.join("expected.safetensors")).unwrap().into_iter().collect()
}

#[test]
fn the_fixture_checkpoint_reads_bit_exact() {
    let Some(d) = fixture() else { return };
    let ck = Checkpoint::read(d.join("yolov5n-shapes-mini-128.pt")).unwrap();
    assert_eq!(ck.source, "model", "a stripped checkpoint has ema None");
    assert_eq!(ck.stored_kind, Kind::Half);
    assert_eq!((ck.nc, ck.epoch), (3, Some(-1)));
    assert_eq!(ck.names, ["circle", "rectangle", "triangle"]);
    assert!(!ck.has_optimizer);
    let want = expected(&d);
    let sd = ck.tensors();
    assert_eq!(ck.state_dict.len(), 349);
    for (name, t) in &ck.state_dict {
        let w = want.get(name).unwrap_or_else(|| panic!("{name} is not in expected.safetensors"));
        assert_eq!((t.kind(), t.size()), (w.kind(), w.size()), "{name}");
        assert!(t.equal(w), "{name} differs");
    }
    // info.json's `params` counts the state_dict less BatchNorm statistics (anchors included)
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("info.json")).unwrap()).unwrap();
    let stats = ["running_mean", "running_var", "num_batches_tracked"];
    let counted: i64 = ck
        .state_dict
        .iter()
        .filter(|(n, _)| !stats.iter().any(|s| n.ends_with(s)))
        .map(|(_, t)| t.numel() as i64)
        .sum();
    assert_eq!(Some(counted), info["params"].as_i64());
    assert!(want.keys().filter(|k| !k.starts_with("forward_")).all(|k| sd.contains_key(k)));
}

#[test]
fn a_model_from_the_checkpoint_reproduces_yolov5s_eval_forward() {
    let Some(d) = fixture() else { return };
    let ck = Checkpoint::read(d.join("yolov5n-shapes-mini-128.pt")).unwrap();
    let model = Yolo::from_checkpoint(&ck, Device::Cpu).unwrap();
    assert_eq!(model.nc(), 3);
    assert_eq!(model.parameters(), 1_767_976, "YOLOv5's model_info count (anchors are a buffer)");
    let want = expected(&d);
    let (decoded, _) = model.predict(&want["forward_input"]);
    let diff = (&decoded - &want["forward_eval_out"]).abs().max().double_value(&[]);
    assert_eq!(decoded.size(), [1, 1008, 8]);
    assert!(diff <= yolo_lab::parity::tol::RAW_ABS, "max |Δ| {diff}");
    // the same weights through the safetensors-style entry points
    let mut built = Yolo::new("yolov5n", Some(3), Device::Cpu).unwrap();
    let report = built.load(d.join("yolov5n-shapes-mini-128.pt")).unwrap();
    assert_eq!(report.loaded, 349);
    let (again, _) = built.predict(&want["forward_input"]);
    assert!(again.allclose(&decoded, 0.0, 0.0, false));
}

/// Writes a zip holding the given (name, bytes) entries, stored.
fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (n, b) in entries {
        z.start_file(*n, opts).unwrap();
        std::io::Write::write_all(&mut z, b).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn files_that_are_not_yolov5_checkpoints_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let msg = |path: &Path| Checkpoint::read(path).unwrap_err().to_string();
    std::fs::write(p("text.pt"), "hello").unwrap();
    assert!(msg(&p("text.pt")).contains("not a PyTorch zip archive"), "{}", msg(&p("text.pt")));
    if let Some(d) = fixture() {
        let whole = std::fs::read(d.join("yolov5n-shapes-mini-128.pt")).unwrap();
        std::fs::write(p("cut.pt"), &whole[..whole.len() / 2]).unwrap();
        let m = msg(&p("cut.pt"));
        assert!(m.contains("cut.pt") && m.contains("not a PyTorch zip archive"), "{m}");
    }
    write_zip(&p("ts.pt"), &[("m/data.pkl", b"\x80\x02}."), ("m/constants.pkl", b"\x80\x02)."), ("m/code/m.py", b"")]);
    assert!(msg(&p("ts.pt")).contains("TorchScript"), "{}", msg(&p("ts.pt")));
    // {'w': _rebuild_tensor_v2(...)}: a bare state_dict
    let sd = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00K\x01\x85K\x01\x85\x89)tRs.";
    write_zip(&p("sd.pt"), &[("a/data.pkl", sd), ("a/data/0", &1f32.to_le_bytes())]);
    assert!(msg(&p("sd.pt")).contains("bare state_dict"), "{}", msg(&p("sd.pt")));
    write_zip(&p("nopkl.pt"), &[("a/other", b"x")]);
    assert!(msg(&p("nopkl.pt")).contains("no data.pkl"), "{}", msg(&p("nopkl.pt")));
    write_zip(&p("badpkl.pt"), &[("a/data.pkl", b"\x80\x02}X\x05")]);
    assert!(msg(&p("badpkl.pt")).contains("a/data.pkl: opcode"), "{}", msg(&p("badpkl.pt")));
    // a model yolo-lab's loader is asked to fill from a non-checkpoint: the same error, no panic
    let mut m = Yolo::new("yolov5n", Some(3), Device::Cpu).unwrap();
    assert!(m.load(p("ts.pt")).unwrap_err().to_string().contains("TorchScript"));
}

/// `val` of the fixture checkpoint on its val-data reproduces YOLOv5's val.py (`val_reference.txt`).
#[test]
fn val_of_the_fixture_checkpoint_matches_yolov5s_val_py() {
    let Some(d) = fixture() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // the fixture is read-only and its data.yaml says `path: .`: validate a copy with an absolute path
    let data = tmp.path().join("val-data");
    copy_dir(&d.join("val-data"), &data);
    let yaml = std::fs::read_to_string(data.join("data.yaml")).unwrap();
    std::fs::write(data.join("data.yaml"), yaml.replace("path: .", &format!("path: {}", data.display()))).unwrap();
    let report = yolo_lab::val::Validator::new(d.join("yolov5n-shapes-mini-128.pt"))
        .data(data.join("data.yaml").to_str().unwrap())
        .imgsz(128)
        .batch(8)
        .device("cpu")
        .plots(false)
        .reporter(yolo_lab::report::Reporter::silent())
        .run()
        .unwrap();
    let text = std::fs::read_to_string(d.join("val_reference.txt")).unwrap();
    let all: Vec<f64> = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("all"))
        .unwrap()
        .split_whitespace()
        .skip(3)
        .map(|x| x.parse().unwrap())
        .collect();
    // P 0.98% low, R 0.1%, mAP50 0.2%, mAP50-95 0.2% (every image reaches max_det 300 inside a run of tied
    // confidences, so which boxes are cut is up to the sort: YOLOv5 itself on our CI-like machine gives 0.000985,
    // 0.152, 0.0007, 0.000141 for the same command)
    for (k, (o, y)) in report.metrics().iter().zip(&all).enumerate() {
        assert!((o - y).abs() <= 0.01 * y, "metric {k}: ours {o}, val.py {y}");
    }
    // the same table layout: header, then Class, Images and Instances of every row as val.py prints them
    let ours = report.to_string();
    let theirs: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let mine: Vec<&str> = ours.lines().collect();
    assert_eq!(mine.len(), theirs.len(), "{ours}");
    assert_eq!(mine[0], theirs[0]);
    for (a, b) in mine[1..mine.len() - 1].iter().zip(&theirs[1..theirs.len() - 1]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        assert_eq!(a[..44], b[..44]);
    }
    let speed = mine.last().unwrap();
    assert!(speed.starts_with("Speed: ") && speed.ends_with("per image at shape (8, 3, 128, 128)"), "{speed}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &p);
        } else {
            std::fs::copy(e.path(), &p).unwrap();
        }
    }
}

/// A mid-training checkpoint (model and EMA in float16, optimizer state; written by YOLOv5's own code,
/// scripts/make_unstripped_checkpoint.py): the EMA is read, as YOLOv5's loader prefers it.
#[test]
fn an_unstripped_checkpoint_gives_its_ema() {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let ck = Checkpoint::read(d.join("unstripped-tiny.pt")).unwrap();
    assert_eq!(ck.source, "ema");
    assert_eq!((ck.epoch, ck.updates, ck.has_optimizer, ck.nc), (Some(2), Some(10003), true, 2));
    assert_eq!(ck.best_fitness, Some(0.25));
    let want: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(d.join("unstripped-tiny.safetensors")).unwrap().into_iter().collect();
    assert_eq!(ck.state_dict.len(), want.len());
    for (name, t) in &ck.state_dict {
        assert!(t.equal(&want[name]), "{name}: not the EMA's tensor");
    }
    // its yaml (a dict in the pickle) builds the model the weights fit
    let m = Yolo::from_checkpoint(&ck, Device::Cpu).unwrap();
    assert_eq!((m.nc(), m.stride()), (2, &[8.0][..]));
}

/// Issue 16.1: the committed reference model (float16 copy of a seeded 100-epoch yolov5n training on `shapes`
/// at 320 px, models/reference/README.md) keeps the accuracy its README states.
#[test]
fn the_reference_model_reaches_its_documented_accuracy() {
    let weights = yolo_lab::pretrained::reference_model().unwrap();
    let report = yolo_lab::val::Validator::new(&weights)
        .data("shapes")
        .imgsz(320)
        .batch(16)
        .plots(false)
        .reporter(yolo_lab::report::Reporter::silent())
        .run()
        .unwrap();
    let [_, _, map50, map] = report.metrics();
    assert!(map50 >= 0.85 && map >= 0.55, "mAP@0.5 {map50:.3}, mAP@0.5:0.95 {map:.3}");
}
