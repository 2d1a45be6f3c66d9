//! Inference on images, the core of detect.py: letterbox to the input size, forward in eval mode, NMS, and
//! the boxes mapped back to the image's own pixels. Figures draw what this returns ([`crate::plots`]).

use crate::data::{Image, letterbox};
use crate::metrics::{Detection, NmsConfig, non_max_suppression, scale_boxes};
use crate::model::Yolo;
use tch::{Kind, Tensor};

/// NMS settings for showing detections: `conf` and above, IoU 0.45 (detect.py's), at most 100 per image.
pub fn display_nms(conf: f32) -> NmsConfig {
    NmsConfig { conf_thres: conf, iou_thres: 0.45, max_det: 100, multi_label: false, agnostic: false, classes: None }
}

/// The detections of `model` on one image letterboxed to `imgsz` × `imgsz`, in the image's pixels.
pub fn detect(model: &Yolo, img: &Image, imgsz: u32, nms: &NmsConfig) -> Vec<Detection> {
    let (lb_img, lb) = letterbox(img, (imgsz, imgsz), false);
    let raw = lb_img.as_raw();
    let chw: Vec<u8> = (0..3).flat_map(|c| raw.iter().skip(c).step_by(3).copied()).collect();
    let x = Tensor::from_slice(&chw)
        .view([1, 3, imgsz as i64, imgsz as i64])
        .to_kind(Kind::Float)
        .to_device(model.device())
        / 255.0;
    let (pred, _) = model.predict(&x);
    let mut dets = non_max_suppression(&pred, nms).remove(0);
    scale_boxes(&mut dets, lb.ratio, lb.pad, (img.height(), img.width()));
    dets
}
