//! Detection metrics: NMS, IoU, matching, AP per class, mAP, confusion matrix and fitness
//! (`utils/metrics.py`, `utils/general.py::non_max_suppression`, `val.py` of ultralytics/yolov5@5081342f).

mod ap;
mod nms;

pub use ap::{
    AP_POINTS, ApPerClass, CURVE_POINTS, ConfusionMatrix, FITNESS_WEIGHTS, ap_per_class, box_iou, compute_ap, fitness,
    fitness_with, iou_thresholds, match_detections,
};
pub use nms::{Detection, MAX_NMS, MAX_WH, NmsConfig, iou_xyxy, nms_image, non_max_suppression, scale_boxes};
