//! Evaluating trained weights on a data set, as YOLOv5's `val.py`: the model from a `.pt` or safetensors
//! file ([`crate::pretrained`]), rectangular batches padded by half a stride, NMS at conf 0.001 and IoU 0.6
//! (multi-label), AP at ten IoU thresholds, the table of the `all` row and one row per class, the speed line,
//! and on request labels as text (`--save-txt`), COCO JSON (`--save-json`), the confusion matrix and PR curve.
//!
//! ```no_run
//! use yolo_lab::val::Validator;
//! let report = Validator::new("runs/train/exp/weights/best.safetensors").data("shapes").imgsz(320).run()?;
//! println!("{report}");   // val.py's table and speed line
//! # Ok::<(), yolo_lab::Error>(())
//! ```

use crate::data::{Dataset, ImageInfo, Loader, LoaderConfig, Split};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::fmt_g_width;
use crate::hyp::Hyp;
use crate::metrics::{Detection, NmsConfig};
use crate::pretrained::Pretrained;
use crate::report::Reporter;
use crate::train::{DataSource, ValResult, parse_device, validate_each};
use std::fmt;
use std::path::PathBuf;

/// The `val` builder: which weights, on which data, how; [`Validator::run`] does the work.
#[derive(Debug, Clone)]
pub struct Validator {
    /// The weights (`.pt` or safetensors).
    pub weights: PathBuf,
    /// Data set. Default `shapes`.
    pub data: DataSource,
    /// Model config, for weights that do not carry one (a bare safetensors state_dict).
    pub cfg: Option<String>,
    /// Image size. Default 640, as val.py.
    pub imgsz: u32,
    /// Batch size. Default 32, as val.py.
    pub batch: usize,
    /// Confidence threshold. Default 0.001.
    pub conf_thres: f32,
    /// NMS IoU threshold. Default 0.6.
    pub iou_thres: f32,
    /// Detections kept per image. Default 300.
    pub max_det: usize,
    /// Split: `Val` (default) or `Test`.
    pub task: Split,
    /// Device: empty for automatic, `cpu`, or a CUDA index.
    pub device: String,
    /// Write `labels/{stem}.txt` (class, normalised xywh, confidence).
    pub save_txt: bool,
    /// Write `predictions.json` (COCO detections: image_id, category_id, bbox xywh in pixels, score).
    pub save_json: bool,
    /// Draw `confusion_matrix.png` and `PR_curve.png`.
    pub plots: bool,
    /// Parent of the output folder. Default `runs/val`.
    pub project: PathBuf,
    /// Output folder name. Default `exp` (`exp2`, ... when taken).
    pub name: String,
    /// Reuse an existing output folder.
    pub exist_ok: bool,
    /// Where output goes.
    pub reporter: Reporter,
}

crate::setters! { Validator;
    /// Data set: registry name or data yaml path.
    data: impl Into<DataSource> => |v| v.into();
    /// Model config for weights that do not carry one.
    cfg: impl Into<String> => |v| Some(v.into());
    /// Image size.
    imgsz: u32 => |v| v;
    /// Batch size.
    batch: usize => |v| v;
    /// Confidence threshold.
    conf_thres: f32 => |v| v;
    /// NMS IoU threshold.
    iou_thres: f32 => |v| v;
    /// Detections kept per image.
    max_det: usize => |v| v;
    /// Split to evaluate.
    task: Split => |v| v;
    /// Device.
    device: impl Into<String> => |v| v.into();
    /// Write labels as text.
    save_txt: bool => |v| v;
    /// Write COCO JSON predictions.
    save_json: bool => |v| v;
    /// Draw the confusion matrix and PR curve.
    plots: bool => |v| v;
    /// Parent of the output folder.
    project: impl Into<PathBuf> => |v| v.into();
    /// Output folder name.
    name: impl Into<String> => |v| v.into();
    /// Reuse an existing output folder.
    exist_ok: bool => |v| v;
    /// Where output goes.
    reporter: Reporter => |v| v;
}

impl Validator {
    /// Validate `weights` with val.py's defaults.
    pub fn new(weights: impl Into<PathBuf>) -> Self {
        Validator {
            weights: weights.into(),
            data: DataSource::Name("shapes".into()),
            cfg: None,
            imgsz: 640,
            batch: 32,
            conf_thres: 0.001,
            iou_thres: 0.6,
            max_det: 300,
            task: Split::Val,
            device: String::new(),
            save_txt: false,
            save_json: false,
            plots: true,
            project: PathBuf::from("runs/val"),
            name: "exp".into(),
            exist_ok: false,
            reporter: Reporter::default(),
        }
    }

    /// Load the model and the data, validate, write what was asked for, and return the numbers.
    pub fn run(&self) -> Result<ValReport> {
        if self.batch == 0 {
            return Err(Error::Config { name: "batch", message: "must be at least 1".into() });
        }
        crate::detect::check_thresholds(self.conf_thres, self.iou_thres)?;
        let r = &self.reporter;
        let device = parse_device(&self.device)?;
        let dataset = match &self.data {
            DataSource::Name(n) => Dataset::load_with(n, r)?,
            DataSource::Dataset(d) => d.clone(),
        };
        let pre = Pretrained::load(&self.weights, self.cfg.as_deref(), Some(dataset.nc() as i64), device)?;
        if pre.names.len() != dataset.nc() {
            return Err(Error::Config {
                name: "weights",
                message: format!(
                    "{} was trained on {} classes, data set `{}` has {}; pass weights trained on this data",
                    self.weights.display(),
                    pre.names.len(),
                    dataset.name,
                    dataset.nc()
                ),
            });
        }
        r.info(&format!("{}: {} ({} parameters)", pre.path.display(), pre.origin, pre.model.parameters()));
        let gs = pre.model.max_stride().max(32);
        let imgsz = crate::model::make_divisible(self.imgsz as f64, gs) as u32;
        if imgsz != self.imgsz {
            r.warn(&format!("--img-size {} must be a multiple of max stride {gs}, updating to {imgsz}", self.imgsz));
        }
        let sources = if dataset.sources(self.task).is_empty() { Split::Val } else { self.task };
        let samples = dataset.scan_with(sources, r)?;
        let hyp = Hyp::load("scratch-low")?; // no augmentation: the values are not read
        let cfg = LoaderConfig { stride: gs as u32, ..LoaderConfig::val(imgsz, self.batch) };
        let loader = Loader::new(&samples, &hyp, cfg)?;
        let nms = NmsConfig {
            conf_thres: self.conf_thres,
            iou_thres: self.iou_thres,
            max_det: self.max_det,
            multi_label: true,
            agnostic: false,
            classes: None,
        };
        let writes = self.save_txt || self.save_json || self.plots;
        let dir = writes.then(|| crate::train::increment_dir(&self.project, &self.name, self.exist_ok));
        if let Some(d) = &dir {
            let made = if self.save_txt { d.join("labels") } else { d.clone() };
            std::fs::create_dir_all(&made).at(&made)?;
        }
        let mut json = Vec::new();
        let result = validate_each(&pre.model, &loader, None, &nms, &mut |info: &ImageInfo, dets: &[Detection]| {
            if let (Some(d), true) = (&dir, self.save_txt) {
                write_txt(&d.join("labels"), info, dets)?;
            }
            if self.save_json {
                json.extend(coco_rows(info, dets));
            }
            Ok(())
        })?;
        if let Some(d) = &dir {
            if self.save_json {
                let p = d.join("predictions.json");
                let text = serde_json::to_string(&json).unwrap_or_else(|_| "[]".into());
                crate::fsutil::write_atomic(&p, text.as_bytes())?;
            }
            if self.plots {
                crate::plots::plot_confusion_matrix(&result.confusion, &pre.names)?
                    .save(d.join("confusion_matrix.png"))?;
                crate::plots::plot_pr_curve(&result.per_class, &pre.names)?.save(d.join("PR_curve.png"))?;
            }
        }
        let report = ValReport {
            result,
            names: pre.names,
            batch_shape: [self.batch as i64, 3, imgsz as i64, imgsz as i64],
            dir,
        };
        r.summary(&report.to_string());
        if let Some(d) = &report.dir {
            r.summary(&format!("Results saved to {}", d.display()));
        }
        Ok(report)
    }
}

/// `labels/{stem}.txt`: one `class cx cy w h conf` line per detection, normalised by the image's size.
fn write_txt(dir: &std::path::Path, info: &ImageInfo, dets: &[Detection]) -> Result<()> {
    let (h, w) = (info.orig.0 as f32, info.orig.1 as f32);
    let mut text = String::new();
    for d in dets {
        let [x1, y1, x2, y2] = d.xyxy;
        let (cx, cy, bw, bh) = ((x1 + x2) / 2.0 / w, (y1 + y2) / 2.0 / h, (x2 - x1) / w, (y2 - y1) / h);
        text.push_str(&format!("{} {cx} {cy} {bw} {bh} {}\n", d.class, d.conf));
    }
    let stem = info.path.file_stem().unwrap_or_default().to_string_lossy();
    crate::fsutil::write_atomic(&dir.join(format!("{stem}.txt")), text.as_bytes())
}

/// COCO detection rows of one image (`save_one_json`): numeric stems become integer ids.
fn coco_rows(info: &ImageInfo, dets: &[Detection]) -> Vec<serde_json::Value> {
    let stem = info.path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let id = stem.parse::<i64>().map(serde_json::Value::from).unwrap_or_else(|_| stem.into());
    let round3 = |x: f32| ((x as f64) * 1e3).round() / 1e3;
    dets.iter()
        .map(|d| {
            let [x1, y1, x2, y2] = d.xyxy;
            serde_json::json!({
                "image_id": id,
                "category_id": d.class,
                "bbox": [round3(x1), round3(y1), round3(x2 - x1), round3(y2 - y1)],
                "score": ((d.conf as f64) * 1e5).round() / 1e5,
            })
        })
        .collect()
}

/// What [`Validator::run`] measured.
#[derive(Debug, Clone)]
pub struct ValReport {
    /// The numbers.
    pub result: ValResult,
    /// Class names.
    pub names: Vec<String>,
    /// `(batch, 3, imgsz, imgsz)`, for the speed line.
    pub batch_shape: [i64; 4],
    /// The output folder, when anything was written.
    pub dir: Option<PathBuf>,
}

impl ValReport {
    /// P, R, mAP@0.5, mAP@0.5:0.95 of the `all` row.
    pub fn metrics(&self) -> [f64; 4] {
        self.result.metrics
    }
}

impl fmt::Display for ValReport {
    /// val.py's table (`%22s%11i%11i%11.3g%11.3g%11.3g%11.3g`), one row per class with labels when there are
    /// several classes, and the speed line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.result;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, n: usize, m: [f64; 4]| {
            writeln!(
                f,
                "{name:>22}{:>11}{n:>11}{}{}{}{}",
                v.images,
                fmt_g_width(m[0], 11, 3),
                fmt_g_width(m[1], 11, 3),
                fmt_g_width(m[2], 11, 3),
                fmt_g_width(m[3], 11, 3)
            )
        };
        writeln!(
            f,
            "{:>22}{:>11}{:>11}{:>11}{:>11}{:>11}{:>11}",
            "Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"
        )?;
        row(f, "all", v.instances, v.metrics)?;
        if self.names.len() > 1 {
            let pc = &v.per_class;
            let (ap50, ap) = (pc.ap50(), pc.ap50_95());
            for (i, &c) in pc.classes.iter().enumerate() {
                let name = self.names.get(c).map(String::as_str).unwrap_or("?");
                let n = v.class_instances.get(c).copied().unwrap_or(0);
                row(f, name, n, [pc.p[i], pc.r[i], ap50[i], ap[i]])?;
            }
        }
        let [a, b, c] = v.speed_ms;
        write!(
            f,
            "Speed: {a:.1}ms pre-process, {b:.1}ms inference, {c:.1}ms NMS per image at shape {}",
            shape_tuple(&self.batch_shape)
        )
    }
}

/// `(8, 3, 128, 128)`, as Python prints a tuple.
fn shape_tuple(s: &[i64]) -> String {
    format!("({})", s.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))
}
