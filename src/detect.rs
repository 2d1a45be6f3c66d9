//! Inference on images, as YOLOv5's `detect.py`: letterbox to the input size, forward in eval mode, NMS, and
//! the boxes mapped back to the image's own pixels ([`Yolo::detect`]); and the job around it
//! ([`Detector`]): weights of any origin, a source that is a file, a folder or a glob, annotated images,
//! `labels/*.txt`, in `runs/detect/exp`. Figures draw what this returns ([`crate::plots::plot_detections`]).
//!
//! ```no_run
//! use yolo_lab::detect::Detector;
//! let run = Detector::new("yolov5s.pt").source("data/images").conf_thres(0.25).run()?;
//! for image in &run.images {
//!     println!("{}: {} objects", image.path.display(), image.detections.len());
//! }
//! # Ok::<(), yolo_lab::Error>(())
//! ```

use crate::data::{Image, annotate, imageops_decode, letterbox, save_png};
use crate::error::{Error, IoContext, Result};
use crate::metrics::{Detection, NmsConfig, non_max_suppression, scale_boxes};
use crate::model::Yolo;
use crate::pretrained::Pretrained;
use crate::report::Reporter;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Image file extensions a source folder or glob is searched for (YOLOv5's `IMG_FORMATS`, those decoded here).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "webp", "tif"];

/// NMS settings for showing detections: `conf` and above, IoU 0.45 (detect.py's), at most 100 per image.
pub fn display_nms(conf: f32) -> NmsConfig {
    NmsConfig { conf_thres: conf, iou_thres: 0.45, max_det: 100, multi_label: false, agnostic: false, classes: None }
}

impl Yolo {
    /// The detections on one image letterboxed to `imgsz` × `imgsz` (a multiple of the largest stride), in
    /// the image's pixels.
    pub fn detect(&self, img: &Image, imgsz: u32, nms: &NmsConfig) -> Vec<Detection> {
        let (lb_img, lb) = letterbox(img, (imgsz, imgsz), false);
        let raw = lb_img.as_raw();
        let chw: Vec<u8> = (0..3).flat_map(|c| raw.iter().skip(c).step_by(3).copied()).collect();
        let x = Tensor::from_slice(&chw)
            .view([1, 3, imgsz as i64, imgsz as i64])
            .to_kind(Kind::Float)
            .to_device(self.device())
            / 255.0;
        let (pred, _) = self.predict(&x);
        let mut dets = non_max_suppression(&pred, nms).remove(0);
        scale_boxes(&mut dets, lb.ratio, lb.pad, (img.height(), img.width()));
        dets
    }
}

/// One image and what was found on it.
#[derive(Debug, Clone)]
pub struct ImageDetections {
    /// The image file.
    pub path: PathBuf,
    /// The image as read.
    pub image: Image,
    /// Detections in the image's pixels, most confident first.
    pub detections: Vec<Detection>,
    /// Class names.
    pub names: Vec<String>,
}

impl ImageDetections {
    /// The image with boxes and `name conf` labels.
    pub fn annotated(&self) -> Image {
        annotate(&self.image, &self.detections, &self.names, true)
    }

    /// `class cx cy w h [conf]` lines, normalised by the image size (detect.py's `--save-txt`).
    pub fn to_txt(&self, with_conf: bool) -> String {
        let (w, h) = (self.image.width() as f32, self.image.height() as f32);
        let mut s = String::new();
        for d in &self.detections {
            let [x1, y1, x2, y2] = d.xyxy;
            let xywh = [(x1 + x2) / 2.0 / w, (y1 + y2) / 2.0 / h, (x2 - x1) / w, (y2 - y1) / h];
            s.push_str(&format!("{} {} {} {} {}", d.class, xywh[0], xywh[1], xywh[2], xywh[3]));
            if with_conf {
                s.push_str(&format!(" {}", d.conf));
            }
            s.push('\n');
        }
        s
    }

    /// A one-line summary as detect.py prints it (`2 circles, 1 triangle`).
    pub fn summary(&self) -> String {
        if self.detections.is_empty() {
            return "(no detections)".into();
        }
        let mut counts =
            vec![0usize; self.names.len().max(1 + self.detections.iter().map(|d| d.class).max().unwrap_or(0))];
        for d in &self.detections {
            counts[d.class] += 1;
        }
        let parts: Vec<String> = counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| {
                let name = self.names.get(c).cloned().unwrap_or_else(|| c.to_string());
                format!("{n} {name}{}", if *n > 1 { "s" } else { "" })
            })
            .collect();
        parts.join(", ")
    }

    /// evcxr: the annotated image above a table of its detections.
    pub fn evcxr_display(&self) {
        let png = crate::display::base64(&crate::data::png_bytes(&self.annotated()));
        let rows: Vec<Vec<String>> = self
            .detections
            .iter()
            .map(|d| {
                vec![
                    self.names.get(d.class).cloned().unwrap_or_else(|| d.class.to_string()),
                    format!("{:.3}", d.conf),
                    format!("{:.0}, {:.0}, {:.0}, {:.0}", d.xyxy[0], d.xyxy[1], d.xyxy[2], d.xyxy[3]),
                ]
            })
            .collect();
        let caption = format!("{}: {}", self.path.display(), self.summary());
        let html = format!(
            "<img src=\"data:image/png;base64,{png}\" style=\"max-width:100%\"/>{}",
            crate::display::html_table(&caption, &["class", "conf", "x1, y1, x2, y2"], &rows)
        );
        crate::display::emit(&[("text/plain", &caption), ("text/html", &html)]);
    }
}

/// The detections of `model` on image files (in order), for figures and notebooks.
pub fn detect_files(
    model: &Yolo,
    paths: &[PathBuf],
    names: &[String],
    imgsz: u32,
    nms: &NmsConfig,
) -> Result<Vec<ImageDetections>> {
    paths
        .iter()
        .map(|p| {
            let image = imageops_decode(p)?;
            let detections = model.detect(&image, imgsz, nms);
            Ok(ImageDetections { path: p.clone(), image, detections, names: names.to_vec() })
        })
        .collect()
}

/// The image files of a source: one file, every image of a folder (sorted), or a glob's matches (`*` and
/// `?` in the file name part).
pub fn image_sources(source: &Path) -> Result<Vec<PathBuf>> {
    let is_image = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
    };
    let text = source.to_string_lossy();
    let mut found: Vec<PathBuf> = if text.contains('*') || text.contains('?') {
        let dir = source.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let pattern = source.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        std::fs::read_dir(dir)
            .at(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().is_some_and(|f| glob_match(&pattern, &f.to_string_lossy())))
            .filter(|p| p.is_file() && is_image(p))
            .collect()
    } else if source.is_dir() {
        std::fs::read_dir(source)
            .at(source)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image(p))
            .collect()
    } else if source.is_file() {
        vec![source.to_path_buf()]
    } else {
        return Err(Error::io(
            source,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such image, folder or glob"),
        ));
    };
    found.sort();
    if found.is_empty() {
        return Err(Error::NoImages {
            path: source.into(),
            message: format!("no {} files", IMAGE_EXTENSIONS.join("/")),
        });
    }
    Ok(found)
}

/// `*` (any run) and `?` (any one character) matching of a file name.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// The `detect` job builder; [`Detector::run`] does the work.
#[derive(Debug, Clone)]
pub struct Detector {
    /// The weights (`.pt` or safetensors).
    pub weights: PathBuf,
    /// Model config, for weights that do not carry one.
    pub cfg: Option<String>,
    /// An image, a folder or a glob. Default `data/images`.
    pub source: PathBuf,
    /// Inference size. Default 640.
    pub imgsz: u32,
    /// Confidence threshold. Default 0.25.
    pub conf_thres: f32,
    /// NMS IoU threshold. Default 0.45.
    pub iou_thres: f32,
    /// Detections kept per image. Default 1000.
    pub max_det: usize,
    /// Keep only these classes (all when None).
    pub classes: Option<Vec<usize>>,
    /// Class-agnostic NMS.
    pub agnostic_nms: bool,
    /// Device: empty for automatic, `cpu`, or a CUDA index.
    pub device: String,
    /// Write `labels/{stem}.txt`.
    pub save_txt: bool,
    /// Add the confidence to each txt line.
    pub save_conf: bool,
    /// Write the annotated images. Default true.
    pub save_img: bool,
    /// Parent of the output folder. Default `runs/detect`.
    pub project: PathBuf,
    /// Output folder name. Default `exp`.
    pub name: String,
    /// Reuse an existing output folder.
    pub exist_ok: bool,
    /// Where output goes.
    pub reporter: Reporter,
}

/// What [`Detector::run`] found and wrote.
#[derive(Debug, Clone)]
pub struct DetectRun {
    /// The output folder.
    pub dir: PathBuf,
    /// Every image in source order.
    pub images: Vec<ImageDetections>,
}

crate::setters! { Detector;
    /// An image, a folder or a glob.
    source: impl Into<PathBuf> => |v| v.into();
    /// Model config for weights that do not carry one.
    cfg: impl Into<String> => |v| Some(v.into());
    /// Inference size.
    imgsz: u32 => |v| v;
    /// Confidence threshold.
    conf_thres: f32 => |v| v;
    /// NMS IoU threshold.
    iou_thres: f32 => |v| v;
    /// Detections kept per image.
    max_det: usize => |v| v;
    /// Keep only these classes.
    classes: Vec<usize> => |v| Some(v);
    /// Class-agnostic NMS.
    agnostic_nms: bool => |v| v;
    /// Device.
    device: impl Into<String> => |v| v.into();
    /// Write labels as text.
    save_txt: bool => |v| v;
    /// Confidences in the text labels.
    save_conf: bool => |v| v;
    /// Write annotated images.
    save_img: bool => |v| v;
    /// Parent of the output folder.
    project: impl Into<PathBuf> => |v| v.into();
    /// Output folder name.
    name: impl Into<String> => |v| v.into();
    /// Reuse an existing output folder.
    exist_ok: bool => |v| v;
    /// Where output goes.
    reporter: Reporter => |v| v;
}

impl Detector {
    /// The NMS settings: one class per box, as detect.py.
    pub fn nms(&self) -> NmsConfig {
        NmsConfig {
            conf_thres: self.conf_thres,
            iou_thres: self.iou_thres,
            max_det: self.max_det,
            multi_label: false,
            agnostic: self.agnostic_nms,
            classes: self.classes.clone(),
        }
    }

    /// Detect with `weights` and detect.py's defaults.
    pub fn new(weights: impl Into<PathBuf>) -> Self {
        Detector {
            weights: weights.into(),
            cfg: None,
            source: PathBuf::from("data/images"),
            imgsz: 640,
            conf_thres: 0.25,
            iou_thres: 0.45,
            max_det: 1000,
            classes: None,
            agnostic_nms: false,
            device: String::new(),
            save_txt: false,
            save_conf: false,
            save_img: true,
            project: PathBuf::from("runs/detect"),
            name: "exp".into(),
            exist_ok: false,
            reporter: Reporter::default(),
        }
    }

    /// Load the model, detect on every source image, write what was asked for.
    pub fn run(&self) -> Result<DetectRun> {
        check_thresholds(self.conf_thres, self.iou_thres)?;
        let nms = self.nms();
        let r = &self.reporter;
        let device = crate::train::parse_device(&self.device)?;
        let paths = image_sources(&self.source)?;
        let pre = Pretrained::load(&self.weights, self.cfg.as_deref(), None, device)?;
        r.info(&format!("{}: {} ({} parameters)", pre.path.display(), pre.origin, pre.model.parameters()));
        let gs = pre.model.max_stride().max(32);
        let imgsz = crate::model::make_divisible(self.imgsz as f64, gs) as u32;
        if imgsz != self.imgsz {
            r.warn(&format!("--img-size {} must be a multiple of max stride {gs}, updating to {imgsz}", self.imgsz));
        }
        let dir = crate::train::increment_dir(&self.project, &self.name, self.exist_ok);
        let labels = dir.join("labels");
        std::fs::create_dir_all(if self.save_txt { &labels } else { &dir }).at(&dir)?;
        let mut images = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            let start = std::time::Instant::now();
            let image = match imageops_decode(p) {
                Ok(im) => im,
                Err(e) => {
                    r.warn(&format!("skipped {e}"));
                    continue;
                }
            };
            let detections = pre.model.detect(&image, imgsz, &nms);
            let found = ImageDetections { path: p.clone(), image, detections, names: pre.names.clone() };
            let file = p.file_name().map(PathBuf::from).unwrap_or_default();
            if self.save_img {
                save_png(&found.annotated(), &dir.join(&file).with_extension("png"))?;
            }
            if self.save_txt {
                let txt = labels.join(file.with_extension("txt"));
                crate::fsutil::write_atomic(&txt, found.to_txt(self.save_conf).as_bytes())?;
            }
            r.info(&format!(
                "image {}/{} {}: {}, {:.1}ms",
                i + 1,
                paths.len(),
                p.display(),
                found.summary(),
                start.elapsed().as_secs_f64() * 1e3
            ));
            images.push(found);
        }
        r.summary(&format!("Results saved to {}", dir.display()));
        Ok(DetectRun { dir, images })
    }
}

/// Confidence and IoU thresholds must lie in [0, 1].
pub(crate) fn check_thresholds(conf: f32, iou: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&conf) || !(0.0..=1.0).contains(&iou) {
        return Err(Error::Config {
            name: "thresholds",
            message: format!("conf {conf} and IoU {iou} must lie in [0, 1]"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_file_names() {
        assert!(glob_match("*.jpg", "a.jpg"));
        assert!(glob_match("val_0000?.jpg", "val_00003.jpg"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a*b*c", "aXXbYc"));
        assert!(!glob_match("*.jpg", "a.png"));
        assert!(!glob_match("val_?.jpg", "val_10.jpg"));
    }
}
