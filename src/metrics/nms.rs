//! Non-maximum suppression (`utils/general.py::non_max_suppression`) and scaling boxes back to images.

use tch::{Device, Kind, Tensor};

/// Class offset that keeps boxes of different classes from suppressing each other (`max_wh`).
pub const MAX_WH: f32 = 7680.0;
/// Candidates kept before NMS (`max_nms`).
pub const MAX_NMS: usize = 30_000;

/// NMS settings. Defaults are YOLOv5's validation settings during training.
#[derive(Debug, Clone, PartialEq)]
pub struct NmsConfig {
    /// Minimum confidence (obj × class probability). Default 0.001 (val.py; detect.py uses 0.25).
    pub conf_thres: f32,
    /// IoU above which a lower-confidence box of the same class is suppressed. Default 0.6.
    pub iou_thres: f32,
    /// Maximum detections per image. Default 300.
    pub max_det: usize,
    /// One candidate per (box, class) above the threshold instead of only the best class. Default true.
    pub multi_label: bool,
    /// Suppress across classes. Default false.
    pub agnostic: bool,
    /// Keep only these classes. Default all.
    pub classes: Option<Vec<usize>>,
}

impl Default for NmsConfig {
    fn default() -> Self {
        NmsConfig { conf_thres: 0.001, iou_thres: 0.6, max_det: 300, multi_label: true, agnostic: false, classes: None }
    }
}

/// A detection in input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Corners x1, y1, x2, y2.
    pub xyxy: [f32; 4],
    /// Confidence.
    pub conf: f32,
    /// Class.
    pub class: usize,
}

/// IoU of two corner boxes (as torchvision's NMS computes it).
pub fn iou_xyxy(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / (area_a + area_b - inter)
}

/// NMS for every image of decoded predictions `[B, N, 5 + nc]` (xywh pixels, obj, class probabilities).
/// Returns per image the kept detections sorted by confidence, descending.
pub fn non_max_suppression(pred: &Tensor, cfg: &NmsConfig) -> Vec<Vec<Detection>> {
    let p = pred.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let (bs, n, no) = (p.size()[0], p.size()[1] as usize, p.size()[2] as usize);
    (0..bs)
        .map(|i| {
            let rows: Vec<f32> = Vec::try_from(p.get(i).reshape(-1)).unwrap_or_default();
            nms_image(&rows, n, no, cfg)
        })
        .collect()
}

/// NMS of one image given as row-major `n × no` values.
pub fn nms_image(rows: &[f32], n: usize, no: usize, cfg: &NmsConfig) -> Vec<Detection> {
    let nc = no - 5;
    let mut cands: Vec<Detection> = Vec::new();
    for r in rows.chunks_exact(no).take(n) {
        let obj = r[4];
        if obj <= cfg.conf_thres {
            continue;
        }
        let (w2, h2) = (r[2] / 2.0, r[3] / 2.0);
        let xyxy = [r[0] - w2, r[1] - h2, r[0] + w2, r[1] + h2];
        let allowed = |c: usize| cfg.classes.as_ref().is_none_or(|cl| cl.contains(&c));
        if cfg.multi_label && nc > 1 {
            for c in 0..nc {
                let conf = r[5 + c] * obj;
                if conf > cfg.conf_thres && allowed(c) {
                    cands.push(Detection { xyxy, conf, class: c });
                }
            }
        } else {
            // best class; ties go to the lowest index, as torch.max does
            let (mut c, mut best) = (0, f32::MIN);
            for k in 0..nc {
                let v = r[5 + k] * obj;
                if v > best {
                    (c, best) = (k, v);
                }
            }
            if best > cfg.conf_thres && allowed(c) {
                cands.push(Detection { xyxy, conf: best, class: c });
            }
        }
    }
    cands.sort_by(|a, b| b.conf.total_cmp(&a.conf));
    cands.truncate(MAX_NMS);
    // greedy NMS on class-offset boxes; the first max_det kept are final, so stop there
    let offset = |d: &Detection| -> [f32; 4] {
        let o = if cfg.agnostic { 0.0 } else { d.class as f32 * MAX_WH };
        [d.xyxy[0] + o, d.xyxy[1] + o, d.xyxy[2] + o, d.xyxy[3] + o]
    };
    let boxes: Vec<[f32; 4]> = cands.iter().map(offset).collect();
    let mut suppressed = vec![false; cands.len()];
    let mut keep = Vec::new();
    for i in 0..cands.len() {
        if suppressed[i] {
            continue;
        }
        keep.push(cands[i]);
        if keep.len() >= cfg.max_det {
            break;
        }
        for j in i + 1..cands.len() {
            if !suppressed[j] && iou_xyxy(&boxes[i], &boxes[j]) > cfg.iou_thres {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// Map boxes from a letterboxed input back to the original image and clip them (`scale_boxes`).
pub fn scale_boxes(dets: &mut [Detection], ratio: (f32, f32), pad: (f32, f32), orig_hw: (u32, u32)) {
    for d in dets {
        let b = &mut d.xyxy;
        b[0] = ((b[0] - pad.0) / ratio.0).clamp(0.0, orig_hw.1 as f32);
        b[2] = ((b[2] - pad.0) / ratio.0).clamp(0.0, orig_hw.1 as f32);
        b[1] = ((b[1] - pad.1) / ratio.1).clamp(0.0, orig_hw.0 as f32);
        b[3] = ((b[3] - pad.1) / ratio.1).clamp(0.0, orig_hw.0 as f32);
    }
}
