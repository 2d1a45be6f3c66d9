//! Validation as train.py runs it every epoch (`val.py::run`): EMA model in eval mode, rectangular batches,
//! NMS (conf 0.001, IoU 0.6, multi-label), boxes mapped back to the original images, matching at 10 IoU
//! thresholds, AP per class, and the validation losses.

use crate::data::{ImageInfo, Loader};
use crate::error::Result;
use crate::loss::ComputeLoss;
use crate::metrics::{
    ApPerClass, ConfusionMatrix, Detection, NmsConfig, ap_per_class, match_detections, non_max_suppression, scale_boxes,
};
use crate::model::Yolo;
use std::time::Instant;
use tch::Kind;

/// What one validation pass measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ValResult {
    /// Precision, recall, mAP@0.5, mAP@0.5:0.95.
    pub metrics: [f64; 4],
    /// Mean validation losses (box, obj, cls).
    pub loss: [f64; 3],
    /// Per-class results.
    pub per_class: ApPerClass,
    /// Confusion matrix.
    pub confusion: ConfusionMatrix,
    /// Images seen.
    pub images: usize,
    /// Labelled objects seen.
    pub instances: usize,
    /// Labelled objects per class (index = class).
    pub class_instances: Vec<usize>,
    /// Milliseconds per image: pre-processing (to the device, to float, scaling), inference (forward and
    /// decoding), NMS, as val.py's speed line.
    pub speed_ms: [f64; 3],
    /// Seconds spent.
    pub seconds: f64,
}

/// Validate `model` on every batch of `loader`.
pub fn validate(model: &Yolo, loader: &Loader, loss: Option<&ComputeLoss>, nms: &NmsConfig) -> Result<ValResult> {
    validate_each(model, loader, loss, nms, &mut |_, _| Ok(()))
}

/// [`validate`], handing each image's detections (in the image's pixels) to `on_image` as they are made.
pub fn validate_each(
    model: &Yolo,
    loader: &Loader,
    loss: Option<&ComputeLoss>,
    nms: &NmsConfig,
    on_image: &mut dyn FnMut(&ImageInfo, &[Detection]) -> Result<()>,
) -> Result<ValResult> {
    let start = std::time::Instant::now();
    let nc = model.nc() as usize;
    let dev = model.device();
    let mut nms = nms.clone();
    nms.multi_label &= nc > 1;
    let mut confusion = ConfusionMatrix::new(nc);
    let (mut tp, mut conf, mut pred_cls, mut target_cls) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut loss_sum = [0.0; 3];
    let (mut images, mut batches) = (0, 0);
    let mut phase_s = [0.0; 3];
    for batch in loader.epoch(0) {
        let batch = batch?;
        batches += 1;
        let t0 = Instant::now();
        let x = batch.images.to_device(dev).to_kind(Kind::Float) / 255.0;
        let (h, w) = (x.size()[2] as f32, x.size()[3] as f32);
        let t1 = Instant::now();
        let (decoded, raw) = tch::no_grad(|| {
            let raw = model.forward_t(&x, false);
            (model.head().decode(&raw), raw)
        });
        let t2 = Instant::now();
        if let Some(l) = loss {
            let items = tch::no_grad(|| l.forward(&raw, &batch.targets.to_device(dev)).items);
            for k in 0..3 {
                loss_sum[k] += items[k];
            }
        }
        let dets = non_max_suppression(&decoded, &nms);
        for (k, d) in phase_s.iter_mut().zip([t1 - t0, t2 - t1, t2.elapsed()]) {
            *k += d.as_secs_f64();
        }
        let rows: Vec<f32> = Vec::try_from(batch.targets.reshape(-1)).unwrap_or_default();
        for (j, (mut d, info)) in dets.into_iter().zip(&batch.info).enumerate() {
            images += 1;
            scale_boxes(&mut d, info.ratio, info.pad, info.orig);
            on_image(info, &d)?;
            let mut labels: Vec<([f32; 4], usize)> = rows
                .chunks_exact(6)
                .filter(|r| r[0] as usize == j)
                .map(|r| {
                    let (cx, cy, bw, bh) = (r[2] * w, r[3] * h, r[4] * w, r[5] * h);
                    ([cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0], r[1] as usize)
                })
                .collect();
            let mut as_dets: Vec<crate::metrics::Detection> =
                labels.iter().map(|(b, c)| crate::metrics::Detection { xyxy: *b, conf: 1.0, class: *c }).collect();
            scale_boxes(&mut as_dets, info.ratio, info.pad, info.orig);
            for (l, s) in labels.iter_mut().zip(&as_dets) {
                l.0 = s.xyxy;
            }
            target_cls.extend(labels.iter().map(|l| l.1));
            let pairs: Vec<([f32; 4], usize)> = d.iter().map(|x| (x.xyxy, x.class)).collect();
            tp.extend(match_detections(&pairs, &labels));
            conf.extend(d.iter().map(|x| x.conf as f64));
            pred_cls.extend(d.iter().map(|x| x.class));
            let cm: Vec<([f32; 4], f32, usize)> = d.iter().map(|x| (x.xyxy, x.conf, x.class)).collect();
            confusion.process(&cm, &labels);
        }
    }
    let per_class = ap_per_class(&tp, &conf, &pred_cls, &target_cls);
    let metrics = per_class.means();
    let nb = batches.max(1) as f64;
    let mut class_instances = vec![0; nc];
    for &c in &target_cls {
        if c < nc {
            class_instances[c] += 1;
        }
    }
    let per_image = 1e3 / images.max(1) as f64;
    Ok(ValResult {
        metrics,
        loss: loss_sum.map(|v| v / nb),
        per_class,
        confusion,
        images,
        instances: target_cls.len(),
        class_instances,
        speed_ms: phase_s.map(|s| s * per_image),
        seconds: start.elapsed().as_secs_f64(),
    })
}
