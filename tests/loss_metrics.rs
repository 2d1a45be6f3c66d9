//! Loss options, NMS options, the confusion matrix, and `parity` on a fixture of another cfg and nc.

use tch::{Device, Kind, Tensor};
use yolo_lab::hyp::Hyp;
use yolo_lab::loss::{ComputeLoss, LossConfig, bbox_ciou};
use yolo_lab::metrics::{ConfusionMatrix, Detection, NmsConfig, nms_image, scale_boxes};
use yolo_lab::model::Yolo;

fn raw_preds(model: &Yolo) -> Vec<Tensor> {
    tch::manual_seed(3);
    let x = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    model.forward_t(&x, true)
}

#[test]
fn loss_options_change_the_loss_and_stay_finite() {
    let model = Yolo::new("yolov5n", Some(3), Device::Cpu).unwrap();
    let preds = raw_preds(&model);
    let targets = Tensor::from_slice(&[0f32, 1.0, 0.5, 0.5, 0.3, 0.4, 1.0, 2.0, 0.25, 0.7, 0.2, 0.1]).view([2, 6]);
    let base = LossConfig::from_hyp(&Hyp::default(), 3, 3, 64, 0.0);
    assert!((base.cls_gain - 0.5 * 3.0 / 80.0).abs() < 1e-12);
    assert!((base.obj_gain - (64.0f64 / 640.0).powi(2)).abs() < 1e-12);
    let value = |cfg: LossConfig| {
        let out = ComputeLoss::new(&model, cfg).forward(&preds, &targets);
        let v = out.total.double_value(&[]);
        assert!(v.is_finite() && v > 0.0);
        (v, out.items)
    };
    let (plain, items) = value(base.clone());
    assert!(items.iter().all(|x| *x > 0.0), "{items:?}");
    let (focal, _) = value(LossConfig { fl_gamma: 1.5, ..base.clone() });
    let (vfl, _) = value(LossConfig { varifocal: true, ..base.clone() });
    let (smooth, smooth_items) = value(LossConfig { label_smoothing: 0.1, ..base.clone() });
    assert!(focal < plain, "focal weighting shrinks the BCE terms");
    assert!((vfl - plain).abs() > 1e-6);
    assert!((smooth_items[2] - items[2]).abs() > 1e-9 && (smooth_items[0] - items[0]).abs() < 1e-12);
    assert!((smooth - plain).abs() > 1e-9);
    // no targets: only objectness remains
    let (_, empty) = value_no_targets(&model, &preds, &base);
    assert_eq!((empty[0], empty[2]), (0.0, 0.0));
    assert!(empty[1] > 0.0);
}

fn value_no_targets(model: &Yolo, preds: &[Tensor], cfg: &LossConfig) -> (f64, [f64; 3]) {
    let out = ComputeLoss::new(model, cfg.clone()).forward(preds, &Tensor::zeros([0, 6], (Kind::Float, Device::Cpu)));
    (out.total.double_value(&[]), out.items)
}

#[test]
fn ciou_of_identical_boxes_is_one() {
    let a = Tensor::from_slice(&[1.0f32, 1.0, 2.0, 3.0, 0.5, 0.5, 1.0, 1.0]).view([2, 4]);
    let v: Vec<f32> = Vec::try_from(bbox_ciou(&a, &a)).unwrap();
    assert!(v.iter().all(|x| (x - 1.0).abs() < 1e-5), "{v:?}");
    let b = Tensor::from_slice(&[3.0f32, 1.0, 2.0, 3.0, 10.0, 10.0, 1.0, 1.0]).view([2, 4]);
    let w: Vec<f32> = Vec::try_from(bbox_ciou(&a, &b)).unwrap();
    assert!(w.iter().all(|x| *x < 0.5));
}

fn row(x: f32, y: f32, w: f32, h: f32, obj: f32, cls: [f32; 2]) -> Vec<f32> {
    vec![x, y, w, h, obj, cls[0], cls[1]]
}

#[test]
fn nms_options() {
    let rows: Vec<f32> = [
        row(50.0, 50.0, 20.0, 20.0, 0.9, [0.9, 0.1]),
        row(52.0, 50.0, 20.0, 20.0, 0.8, [0.1, 0.9]),
        row(51.0, 50.0, 20.0, 20.0, 0.7, [0.9, 0.1]),
        row(150.0, 50.0, 20.0, 20.0, 0.0005, [1.0, 0.0]),
    ]
    .concat();
    let single = NmsConfig { multi_label: false, ..Default::default() };
    let d = nms_image(&rows, 4, 7, &single);
    assert_eq!(d.len(), 2, "{d:?}"); // same-class overlap suppressed, low objectness dropped
    assert_eq!((d[0].class, d[1].class), (0, 1));
    let agn = nms_image(&rows, 4, 7, &NmsConfig { agnostic: true, ..single.clone() });
    assert_eq!(agn.len(), 1);
    let only1 = nms_image(&rows, 4, 7, &NmsConfig { classes: Some(vec![1]), ..single.clone() });
    assert!(only1.iter().all(|x| x.class == 1) && only1.len() == 1, "{only1:?}");
    let multi = nms_image(&rows, 4, 7, &NmsConfig::default());
    assert_eq!(multi.len(), 2, "per class, the best box suppresses its overlapping rivals: {multi:?}");
    let two = row(150.0, 150.0, 20.0, 20.0, 0.9, [0.5, 0.5]);
    assert_eq!(nms_image(&two, 1, 7, &NmsConfig::default()).len(), 2, "multi-label: one row per class");
    assert_eq!(nms_image(&two, 1, 7, &single).len(), 1);
    let capped = nms_image(&rows, 4, 7, &NmsConfig { max_det: 1, ..Default::default() });
    assert_eq!(capped.len(), 1);
    let mut s = vec![Detection { xyxy: [10.0, 30.0, 50.0, 70.0], conf: 1.0, class: 0 }];
    scale_boxes(&mut s, (0.5, 0.5), (10.0, 20.0), (200, 100));
    assert_eq!(s[0].xyxy, [0.0, 20.0, 80.0, 100.0]);
}

#[test]
fn confusion_matrix_counts() {
    let mut cm = ConfusionMatrix::new(2);
    let labels = [([0.0, 0.0, 10.0, 10.0], 0), ([20.0, 20.0, 30.0, 30.0], 1), ([50.0, 50.0, 60.0, 60.0], 1)];
    let dets = [
        ([0.0, 0.0, 10.0, 10.0], 0.9, 0),
        ([20.0, 20.0, 30.0, 31.0], 0.8, 0),
        ([80.0, 80.0, 90.0, 90.0], 0.7, 1),
        ([0.0, 0.0, 9.0, 9.0], 0.1, 1),
    ];
    cm.process(&dets, &labels);
    assert_eq!(cm.matrix[0][0], 1); // correct
    assert_eq!(cm.matrix[0][1], 1); // a class-1 object predicted as class 0
    assert_eq!(cm.matrix[2][1], 1); // missed class-1 object (background row)
    assert_eq!(cm.matrix[1][2], 1); // false positive of class 1 (background column)
    assert_eq!(cm.matrix.iter().flatten().sum::<u64>(), 4, "the 0.1-confidence detection is below conf 0.25");
}

/// `parity` reads cfg and nc from the manifest: a fixture of yolov5s with 5 classes runs its model checks.
#[test]
fn parity_follows_the_manifest_cfg_and_nc() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("yolov5s-nc5");
    std::fs::create_dir(&case).unwrap();
    let m = Yolo::new("yolov5s", Some(5), Device::Cpu).unwrap();
    m.save(case.join("model.safetensors")).unwrap();
    let manifest = format!("{{\"model\": {{\"cfg\": \"yolov5s\", \"nc\": 5, \"n_parameters\": {}}}}}", m.parameters());
    std::fs::write(case.join("manifest.json"), manifest).unwrap();
    let report = yolo_lab::parity::run(&case).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.checks.len(), 2);
    assert!(report.skipped.iter().any(|s| s.contains("forward")));
}
