//! Every model yaml YOLOv5 ships (our own copies in models/ and models/hub/) builds with the parameter
//! count, GFLOPs, layer count, state_dict size and strides YOLOv5 computes for it (issue 13.2). The
//! reference numbers in tests/data/yolov5_zoo.json were recorded by scripts/yolov5_zoo.py in a YOLOv5
//! 5081342f environment.

use std::path::Path;
use tch::Device;
use yolo_lab::model::Yolo;

fn reference() -> serde_json::Map<String, serde_json::Value> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/yolov5_zoo.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_shipped_yaml_builds_as_yolov5_builds_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let refs = reference();
    let mut mismatches = Vec::new();
    for (name, want) in &refs {
        let path = root.join(name);
        let m = match Yolo::new(path.to_str().unwrap(), Some(80), Device::Cpu) {
            Ok(m) => m,
            Err(e) => {
                mismatches.push(format!("{name}: {e}"));
                continue;
            }
        };
        let s = m.summary(640);
        let got_stride: Vec<i64> = m.stride().iter().map(|&x| x as i64).collect();
        let want_stride: Vec<i64> = want["stride"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        let checks = [
            ("parameters", s.parameters as f64, want["parameters"].as_f64().unwrap()),
            ("layers", s.layers as f64, want["layers"].as_f64().unwrap()),
            ("state_dict", m.vs.variables().len() as f64, want["state_dict"].as_f64().unwrap()),
        ];
        for (what, got, exp) in checks {
            if got != exp {
                mismatches.push(format!("{name}: {what} {got} vs YOLOv5 {exp}"));
            }
        }
        if got_stride != want_stride {
            mismatches.push(format!("{name}: strides {got_stride:?} vs {want_stride:?}"));
        }
        let g = want["gflops"].as_f64().unwrap();
        if g > 0.0 && (s.gflops - g).abs() > 0.0005 * g + 1e-4 {
            mismatches.push(format!("{name}: GFLOPs {:.4} vs YOLOv5 {g}", s.gflops));
        }
        eprintln!("{name}: {} parameters, {} layers, {:.4} GFLOPs (YOLOv5 {g})", s.parameters, s.layers, s.gflops);
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The yaml with its depth and width scaled down (every module and head kept) so that each trains in a
/// second on two cores.
fn small_copy(src: &Path, dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(src).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["depth_multiple"] = 0.33.into();
    doc["width_multiple"] = 0.125.into();
    let out = dir.join(src.file_name().unwrap());
    std::fs::write(&out, serde_yaml::to_string(&doc).unwrap()).unwrap();
    out
}

#[test]
fn every_shipped_layout_trains_an_epoch_and_round_trips_its_weights() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let tmp = tempfile::tempdir().unwrap();
    for name in reference().keys() {
        let cfg = small_copy(&root.join(name), tmp.path());
        let stem = cfg.file_stem().unwrap().to_string_lossy().into_owned();
        let run = yolo_lab::prelude::Trainer::new()
            .data("shapes-tiny")
            .cfg(cfg.to_str().unwrap())
            .imgsz(64)
            .epochs(1)
            .batch(4)
            .workers(1)
            .device("cpu")
            .project(tmp.path().join("runs"))
            .name(stem.as_str())
            .progress(yolo_lab::prelude::ProgressMode::Silent)
            .fit()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(run.final_val.is_some(), "{name}: validated");
        let best = run.best_weights.clone().unwrap();
        let mut a = Yolo::new(cfg.to_str().unwrap(), Some(3), Device::Cpu).unwrap();
        let report = a.load(&best).unwrap();
        assert_eq!(report.loaded, a.vs.variables().len(), "{name}: {report}");
        let again = tmp.path().join(format!("{stem}-again.safetensors"));
        a.save(&again).unwrap();
        let mut b = Yolo::new(cfg.to_str().unwrap(), Some(3), Device::Cpu).unwrap();
        b.load(&again).unwrap();
        let side = 2 * a.max_stride();
        let x = tch::Tensor::rand([1, 3, side, side], (tch::Kind::Float, Device::Cpu));
        let (pa, _) = a.predict(&x);
        let (pb, _) = b.predict(&x);
        assert!(pa.equal(&pb), "{name}: outputs differ after a save and load");
    }
}

#[test]
fn yamls_yolo_lab_cannot_build_are_errors_naming_the_layer() {
    let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/yolov5n.yaml")).unwrap();
    let cases = [
        // an unknown module
        (
            base.replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 1, SPPCSPC, [1024]]"),
            "layer 9: module `SPPCSPC` is not supported",
        ),
        // a transformer whose channels 4 heads cannot share (40 · 0.25 rounded to a multiple of 2 is 10: 5 each)
        (
            format!("channel_multiple: 2\n{}", base.replace("[-1, 3, C3, [1024]]", "[-1, 3, C3TR, [40]]")),
            "4 attention heads",
        ),
        // a stride-1 ghost bottleneck that changes the channels has no identity shortcut
        (base.replace("[-1, 3, C3, [1024]]", "[-1, 1, GhostBottleneck, [512, 3, 1]]"), "identity shortcut"),
        // a repeated Conv whose copies cannot chain (6 · depth 0.33 = 2 copies)
        (base.replace("[-1, 1, Conv, [128, 3, 2]]", "[-1, 6, Conv, [128, 3, 2]]"), "is repeated 2 times"),
        // an even SPP kernel
        (base.replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 1, SPP, [1024, [5, 8]]]"), "pool kernel is 8"),
        // an activation that is not a torch.nn class yolo-lab knows
        (format!("activation: nn.Mish()\n{base}"), "activation"),
        // a max-pool padded more than half its kernel
        (base.replace("[-1, 1, Conv, [128, 3, 2]]", "[-1, 1, nn.MaxPool2d, [2, 2, 3]]"), "padding is 3"),
    ];
    for (text, want) in cases {
        let e = match yolo_lab::model::ModelConfig::parse(&text, Path::new("bad.yaml"), "bad", None, None)
            .and_then(|c| Yolo::from_config(c, Device::Cpu))
        {
            Ok(_) => panic!("built a model that should say {want:?}"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("bad.yaml") && e.contains(want), "{e:?} should say {want:?}");
    }
}
