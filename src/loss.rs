//! The YOLOv5 loss (`utils/loss.py::ComputeLoss` of ultralytics/yolov5@5081342f, with `bbox_iou` (CIoU) from
//! the ultralytics package): target assignment by anchor ratio with neighbour cells, CIoU box loss,
//! IoU-valued objectness, BCE classification, optional focal or varifocal weighting.

use crate::hyp::Hyp;
use crate::model::Yolo;
use tch::{Kind, Reduction, Tensor};

/// Objectness balance of the three levels P3, P4, P5 (`self.balance`).
pub const BALANCE_3: [f64; 3] = [4.0, 1.0, 0.4];
/// Objectness balance for five levels (P3–P7).
pub const BALANCE_5: [f64; 5] = [4.0, 1.0, 0.25, 0.06, 0.02];
/// Neighbour-cell offset (`g = 0.5`).
pub const NEIGHBOUR_OFFSET: f32 = 0.5;
/// Epsilon of the CIoU (`bbox_iou` eps).
pub const CIOU_EPS: f64 = 1e-7;
/// Focal loss alpha (`FocalLoss` default).
pub const FOCAL_ALPHA: f64 = 0.25;
/// Varifocal loss alpha and gamma (VarifocalNet defaults).
pub const VARIFOCAL_ALPHA: f64 = 0.75;
/// Varifocal loss gamma.
pub const VARIFOCAL_GAMMA: f64 = 2.0;
/// Image size the objectness gain refers to (`obj *= (imgsz / 640) ** 2`).
pub const OBJ_REFERENCE_SIZE: f64 = 640.0;
/// Classes the class gain refers to (`cls *= nc / 80`).
pub const CLS_REFERENCE_NC: f64 = 80.0;

/// Loss settings: gains after train.py's rescaling, and the weighting options.
#[derive(Debug, Clone, PartialEq)]
pub struct LossConfig {
    /// Box gain.
    pub box_gain: f64,
    /// Objectness gain.
    pub obj_gain: f64,
    /// Class gain.
    pub cls_gain: f64,
    /// Class BCE positive weight.
    pub cls_pw: f64,
    /// Objectness BCE positive weight.
    pub obj_pw: f64,
    /// Anchor ratio threshold.
    pub anchor_t: f64,
    /// Focal loss gamma (0 = off).
    pub fl_gamma: f64,
    /// Label smoothing epsilon.
    pub label_smoothing: f64,
    /// Use varifocal loss for objectness (off in YOLOv5).
    pub varifocal: bool,
}

impl LossConfig {
    /// Gains as train.py rescales them: box × 3/nl, cls × nc/80 × 3/nl, obj × (imgsz/640)² × 3/nl.
    pub fn from_hyp(hyp: &Hyp, nc: i64, nl: usize, imgsz: i64, label_smoothing: f64) -> Self {
        let layers = 3.0 / nl as f64;
        LossConfig {
            box_gain: hyp.box_ * layers,
            obj_gain: hyp.obj * (imgsz as f64 / OBJ_REFERENCE_SIZE).powi(2) * layers,
            cls_gain: hyp.cls * nc as f64 / CLS_REFERENCE_NC * layers,
            cls_pw: hyp.cls_pw,
            obj_pw: hyp.obj_pw,
            anchor_t: hyp.anchor_t,
            fl_gamma: hyp.fl_gamma,
            label_smoothing,
            varifocal: false,
        }
    }
}

/// Target assignment of one level, in YOLOv5's match order (offset, then anchor, then target).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LevelTargets {
    /// Image index.
    pub b: Vec<i64>,
    /// Anchor index.
    pub a: Vec<i64>,
    /// Grid row.
    pub gj: Vec<i64>,
    /// Grid column.
    pub gi: Vec<i64>,
    /// Class.
    pub tcls: Vec<i64>,
    /// Box in grid units relative to the cell: (cx - gi, cy - gj, w, h).
    pub tbox: Vec<[f32; 4]>,
    /// Anchor (w, h) in grid units.
    pub anch: Vec<[f32; 2]>,
}

impl LevelTargets {
    /// Number of matches.
    pub fn len(&self) -> usize {
        self.b.len()
    }

    /// True without matches.
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
}

/// Loss value and its logged parts.
#[derive(Debug)]
pub struct LossOutput {
    /// `(lbox + lobj + lcls) · batch size`, differentiable.
    pub total: Tensor,
    /// `[lbox, lobj, lcls]` after the gains (what results.csv logs).
    pub items: [f64; 3],
}

/// The loss of a model.
#[derive(Debug, Clone)]
pub struct ComputeLoss {
    /// Settings.
    pub config: LossConfig,
    /// Anchors per level in grid units.
    anchors: Vec<Vec<[f32; 2]>>,
    nc: i64,
    balance: Vec<f64>,
}

impl ComputeLoss {
    /// For `model` with these settings.
    pub fn new(model: &Yolo, config: LossConfig) -> Self {
        let d = model.head();
        let flat: Vec<f32> = Vec::try_from(d.anchors.to_device(tch::Device::Cpu).reshape(-1)).unwrap_or_default();
        let na = d.na as usize;
        let anchors = flat.chunks(na * 2).map(|l| l.chunks(2).map(|c| [c[0], c[1]]).collect()).collect();
        let nl = d.m.len();
        let balance = if nl == 3 { BALANCE_3.to_vec() } else { BALANCE_5.iter().take(nl).cloned().collect() };
        ComputeLoss { config, anchors, nc: d.nc, balance }
    }

    /// Assign targets `[image, class, cx, cy, w, h]` (normalised) to anchors and cells of every level of
    /// grids `(ny, nx)`, in float32 arithmetic as YOLOv5 does (edge cases depend on it).
    pub fn build_targets(&self, grids: &[(i64, i64)], targets: &[[f32; 6]]) -> Vec<LevelTargets> {
        let anchor_t = self.config.anchor_t as f32;
        let g = NEIGHBOUR_OFFSET;
        let offsets: [[f32; 2]; 5] = [[0.0, 0.0], [g, 0.0], [0.0, g], [-g, 0.0], [0.0, -g]];
        grids
            .iter()
            .zip(&self.anchors)
            .map(|(&(ny, nx), anchors)| {
                let (fx, fy) = (nx as f32, ny as f32);
                // (anchor, target) pairs passing the ratio test, anchor-major as YOLOv5 orders them
                let mut pairs = Vec::new();
                for (a, anc) in anchors.iter().enumerate() {
                    for t in targets {
                        let (rw, rh) = (t[4] * fx / anc[0], t[5] * fy / anc[1]);
                        if rw.max(1.0 / rw).max(rh.max(1.0 / rh)) < anchor_t {
                            pairs.push((a, t));
                        }
                    }
                }
                let mut out = LevelTargets::default();
                for (o, off) in offsets.iter().enumerate() {
                    for &(a, t) in &pairs {
                        let (gx, gy) = (t[2] * fx, t[3] * fy);
                        let (ix, iy) = (fx - gx, fy - gy);
                        let take = match o {
                            0 => true,
                            1 => gx - gx.floor() < g && gx > 1.0,
                            2 => gy - gy.floor() < g && gy > 1.0,
                            3 => ix - ix.floor() < g && ix > 1.0,
                            _ => iy - iy.floor() < g && iy > 1.0,
                        };
                        if !take {
                            continue;
                        }
                        let gi = ((gx - off[0]) as i64).clamp(0, nx - 1);
                        let gj = ((gy - off[1]) as i64).clamp(0, ny - 1);
                        out.b.push(t[0] as i64);
                        out.a.push(a as i64);
                        out.gj.push(gj);
                        out.gi.push(gi);
                        out.tcls.push(t[1] as i64);
                        out.tbox.push([gx - gi as f32, gy - gj as f32, t[4] * fx, t[5] * fy]);
                        out.anch.push(anchors[a]);
                    }
                }
                out
            })
            .collect()
    }

    /// The loss of raw predictions `[B, na, ny, nx, no]` per level against targets `[N, 6]`.
    pub fn forward(&self, preds: &[Tensor], targets: &Tensor) -> LossOutput {
        let dev = preds[0].device();
        let rows: Vec<f32> =
            Vec::try_from(targets.to_device(tch::Device::Cpu).to_kind(Kind::Float).reshape(-1)).unwrap_or_default();
        let targets: Vec<[f32; 6]> = rows.chunks_exact(6).map(|r| [r[0], r[1], r[2], r[3], r[4], r[5]]).collect();
        let grids: Vec<(i64, i64)> = preds.iter().map(|p| (p.size()[2], p.size()[3])).collect();
        let assigned = self.build_targets(&grids, &targets);
        let c = &self.config;
        let (cp, cn) = (1.0 - 0.5 * c.label_smoothing, 0.5 * c.label_smoothing);
        let opts = (Kind::Float, dev);
        let (mut lbox, mut lobj, mut lcls) =
            (Tensor::zeros([1], opts), Tensor::zeros([1], opts), Tensor::zeros([1], opts));
        let obj_pw = Tensor::from_slice(&[c.obj_pw as f32]).to_device(dev);
        let cls_pw = Tensor::from_slice(&[c.cls_pw as f32]).to_device(dev);
        for (i, (pi, t)) in preds.iter().zip(&assigned).enumerate() {
            let s = pi.size();
            let mut tobj = Tensor::zeros([s[0], s[1], s[2], s[3]], (pi.kind(), dev));
            let n = t.len() as i64;
            if n > 0 {
                let idx = |v: &Vec<i64>| Some(Tensor::from_slice(v).to_device(dev));
                let ps = pi.index(&[idx(&t.b), idx(&t.a), idx(&t.gj), idx(&t.gi)]);
                let pxy = ps.narrow(1, 0, 2).sigmoid() * 2.0 - 0.5;
                let anch = Tensor::from_slice(&t.anch.concat()).view([n, 2]).to_device(dev);
                let pwh = (ps.narrow(1, 2, 2).sigmoid() * 2.0).pow_tensor_scalar(2) * anch;
                let pbox = Tensor::cat(&[pxy, pwh], 1);
                let tbox = Tensor::from_slice(&t.tbox.concat()).view([n, 4]).to_device(dev);
                let iou = bbox_ciou(&pbox, &tbox);
                lbox += (-&iou + 1.0).mean(Kind::Float);
                // objectness target = IoU; a later match into the same cell overwrites an earlier one
                let ious: Vec<f32> =
                    Vec::try_from(iou.detach().clamp_min(0.0).to_kind(Kind::Float).to_device(tch::Device::Cpu))
                        .unwrap_or_default();
                let mut last = std::collections::HashMap::new();
                for k in 0..t.len() {
                    last.insert((t.b[k], t.a[k], t.gj[k], t.gi[k]), k);
                }
                let mut keep: Vec<usize> = last.into_values().collect();
                keep.sort_unstable();
                let pick = |v: &Vec<i64>| {
                    Some(Tensor::from_slice(&keep.iter().map(|&k| v[k]).collect::<Vec<_>>()).to_device(dev))
                };
                let vals = Tensor::from_slice(&keep.iter().map(|&k| ious[k]).collect::<Vec<_>>())
                    .to_device(dev)
                    .to_kind(pi.kind());
                let _ = tobj.index_put_(&[pick(&t.b), pick(&t.a), pick(&t.gj), pick(&t.gi)], &vals, false);
                if self.nc > 1 {
                    let pcls = ps.narrow(1, 5, self.nc);
                    let tcls = Tensor::from_slice(&t.tcls).to_device(dev);
                    let target =
                        Tensor::full([n, self.nc], cn, (pcls.kind(), dev)).scatter_value(1, &tcls.view([n, 1]), cp);
                    lcls += self.bce(&pcls, &target, &cls_pw);
                }
            }
            let pobj = pi.select(4, 4);
            let obji = if c.varifocal { varifocal(&pobj, &tobj, &obj_pw) } else { self.bce(&pobj, &tobj, &obj_pw) };
            lobj += obji * self.balance[i];
        }
        let lbox = lbox * c.box_gain;
        let lobj = lobj * c.obj_gain;
        let lcls = lcls * c.cls_gain;
        let bs = preds[0].size()[0] as f64;
        let items = [lbox.double_value(&[0]), lobj.double_value(&[0]), lcls.double_value(&[0])];
        LossOutput { total: (lbox + lobj + lcls) * bs, items }
    }

    /// Mean BCE with logits and a positive weight, focal-weighted when `fl_gamma > 0`.
    fn bce(&self, logits: &Tensor, target: &Tensor, pos_weight: &Tensor) -> Tensor {
        let gamma = self.config.fl_gamma;
        if gamma <= 0.0 {
            return logits.binary_cross_entropy_with_logits(target, None::<&Tensor>, Some(pos_weight), Reduction::Mean);
        }
        let loss = logits.binary_cross_entropy_with_logits(target, None::<&Tensor>, Some(pos_weight), Reduction::None);
        let p = logits.sigmoid();
        let p_t: Tensor = target * &p + (1.0 - target) * (1.0 - &p);
        let alpha: Tensor = target * FOCAL_ALPHA + (1.0 - target) * (1.0 - FOCAL_ALPHA);
        let modulating: Tensor = (-p_t + 1.0).pow_tensor_scalar(gamma);
        (loss * alpha * modulating).mean(Kind::Float)
    }
}

/// Varifocal loss (Zhang et al. 2021) on objectness: positives weighted by their IoU target, negatives by
/// `alpha · p^gamma`, so easy negatives fade and high-IoU positives dominate.
fn varifocal(logits: &Tensor, target: &Tensor, pos_weight: &Tensor) -> Tensor {
    let p = logits.sigmoid().detach();
    let pos = target.gt(0.0).to_kind(logits.kind());
    let weight = target * &pos + (1.0 - &pos) * p.pow_tensor_scalar(VARIFOCAL_GAMMA) * VARIFOCAL_ALPHA;
    let loss = logits.binary_cross_entropy_with_logits(target, None::<&Tensor>, Some(pos_weight), Reduction::None);
    let weighted: Tensor = loss * weight;
    weighted.mean(Kind::Float)
}

/// Complete IoU of boxes given as (cx, cy, w, h), elementwise (`bbox_iou(..., CIoU=True)`).
///
/// # Shapes
/// `a`, `b`: `[N, 4]` → `[N]`.
pub fn bbox_ciou(a: &Tensor, b: &Tensor) -> Tensor {
    let col = |t: &Tensor, k: i64| t.select(1, k);
    let (x1, y1, w1, h1) = (col(a, 0), col(a, 1), col(a, 2), col(a, 3));
    let (x2, y2, w2, h2) = (col(b, 0), col(b, 1), col(b, 2), col(b, 3));
    let (w1_, h1_, w2_, h2_) = (&w1 / 2.0, &h1 / 2.0, &w2 / 2.0, &h2 / 2.0);
    let (b1x1, b1x2, b1y1, b1y2) = (&x1 - &w1_, &x1 + &w1_, &y1 - &h1_, &y1 + &h1_);
    let (b2x1, b2x2, b2y1, b2y2) = (&x2 - &w2_, &x2 + &w2_, &y2 - &h2_, &y2 + &h2_);
    let inter = (b1x2.minimum(&b2x2) - b1x1.maximum(&b2x1)).clamp_min(0.0)
        * (b1y2.minimum(&b2y2) - b1y1.maximum(&b2y1)).clamp_min(0.0);
    let union = &w1 * &h1 + &w2 * &h2 - &inter + CIOU_EPS;
    let iou = &inter / union;
    let cw = b1x2.maximum(&b2x2) - b1x1.minimum(&b2x1);
    let ch = b1y2.maximum(&b2y2) - b1y1.minimum(&b2y1);
    let c2 = cw.pow_tensor_scalar(2) + ch.pow_tensor_scalar(2) + CIOU_EPS;
    let rho2 = ((&b2x1 + &b2x2 - &b1x1 - &b1x2).pow_tensor_scalar(2)
        + (&b2y1 + &b2y2 - &b1y1 - &b1y2).pow_tensor_scalar(2))
        / 4.0;
    let v = ((&w2 / &h2).atan() - (&w1 / &h1).atan()).pow_tensor_scalar(2) * (4.0 / std::f64::consts::PI.powi(2));
    let alpha = tch::no_grad(|| &v / (&v - &iou + (1.0 + CIOU_EPS)));
    iou - (rho2 / c2 + v * alpha)
}
