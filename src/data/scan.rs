//! Listing, verifying and labelling images, with a label cache (`verify_image_label` and
//! `LoadImagesAndLabels.cache_labels` in utils/dataloaders.py).

use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::report::Reporter;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Image file extensions YOLOv5 accepts (`IMG_FORMATS`). Those the decoder cannot read are reported corrupt.
pub const IMG_FORMATS: [&str; 10] = ["bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm"];
/// Smallest accepted image side in pixels (`verify_image_label`: `shape[0] > 9 & shape[1] > 9`).
pub const MIN_IMAGE_SIDE: u32 = 10;
/// Label cache format version; bump when [`CacheFile`] changes.
const CACHE_VERSION: u32 = 2;

/// One object: class index and a normalised centre-size box.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// Class index.
    pub class: usize,
    /// Box centre x, in [0, 1] of the image width.
    pub cx: f32,
    /// Box centre y, in [0, 1] of the image height.
    pub cy: f32,
    /// Box width, in [0, 1].
    pub w: f32,
    /// Box height, in [0, 1].
    pub h: f32,
}

/// A verified image and its labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The image file.
    pub image: PathBuf,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Objects (empty for a background image).
    pub labels: Vec<Label>,
}

/// What happened to a file during the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IssueKind {
    /// The image was skipped.
    Skipped,
    /// The file was repaired or a row dropped; the image is used.
    Fixed,
}

/// A problem found in one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// The image or label file at fault.
    pub path: PathBuf,
    /// 1-based line in a label file, when one line is at fault.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// Skipped or fixed.
    pub kind: IssueKind,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            IssueKind::Skipped => "ignoring corrupt image/label",
            IssueKind::Fixed => "fixed",
        };
        match self.line {
            Some(l) => write!(f, "WARNING {}:{l}: {what}: {}", self.path.display(), self.message),
            None => write!(f, "WARNING {}: {what}: {}", self.path.display(), self.message),
        }
    }
}

/// Counts and issues of one scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    /// Split or source name used in messages.
    pub prefix: String,
    /// Images listed.
    pub listed: usize,
    /// Usable images with at least one label.
    pub labelled: usize,
    /// Usable images without a label file.
    pub missing: usize,
    /// Usable images with an empty label file.
    pub empty: usize,
    /// Images skipped as corrupt.
    pub corrupt: usize,
    /// Total objects.
    pub instances: usize,
    /// Every problem, in file order.
    pub issues: Vec<Issue>,
    /// The label cache file, if one was read or written.
    pub cache_file: Option<PathBuf>,
    /// Whether the result came from the cache.
    pub from_cache: bool,
}

impl ScanReport {
    /// Images with no objects (no label file, or an empty one).
    pub fn backgrounds(&self) -> usize {
        self.missing + self.empty
    }
}

impl fmt::Display for ScanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} images, {} backgrounds, {} corrupt ({} instances{})",
            self.prefix,
            self.labelled + self.backgrounds(),
            self.backgrounds(),
            self.corrupt,
            self.instances,
            if self.from_cache { ", from label cache" } else { "" }
        )
    }
}

/// The usable images of a split with their labels, and the scan report.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// Usable images, sorted by path.
    pub items: Vec<Sample>,
    /// Class names.
    pub names: Vec<String>,
    /// What the scan found.
    pub report: ScanReport,
}

impl Samples {
    /// Number of usable images.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are no usable images.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The label file of an image: the last `/images/` of the path becomes `/labels/`, the extension `.txt`.
pub fn label_path_for(image: &Path) -> PathBuf {
    let s = image.to_string_lossy();
    let sep = std::path::MAIN_SEPARATOR;
    let (from, to) = (format!("{sep}images{sep}"), format!("{sep}labels{sep}"));
    let swapped = match s.rfind(&from) {
        Some(i) => format!("{}{to}{}", &s[..i], &s[i + from.len()..]),
        None => s.into_owned(),
    };
    PathBuf::from(swapped).with_extension("txt")
}

fn is_image(p: &Path) -> bool {
    p.extension().is_some_and(|e| IMG_FORMATS.contains(&e.to_string_lossy().to_lowercase().as_str()))
}

/// Expand sources (folders, `.txt` lists, image files) into a sorted list of image paths.
pub(crate) fn list_images(sources: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for src in sources {
        if src.is_dir() {
            walk(src, &mut out)?;
        } else if src.extension().is_some_and(|e| e == "txt") {
            let text = std::fs::read_to_string(src).at(src)?;
            let parent = src.parent().unwrap_or(Path::new("."));
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let p = Path::new(line.strip_prefix("./").unwrap_or(line));
                let p = if p.is_absolute() { p.to_path_buf() } else { parent.join(p) };
                if is_image(&p) {
                    out.push(p);
                }
            }
        } else if src.is_file() && is_image(src) {
            out.push(src.clone());
        } else {
            return Err(Error::io(
                src,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder, list or image"),
            ));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).at(dir)? {
        let p = entry.at(dir)?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Outcome of verifying one image and its label file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Verified {
    sample: Option<Sample>,
    label_state: LabelState,
    issues: Vec<Issue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum LabelState {
    Labelled,
    Missing,
    Empty,
    Corrupt,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    hash: u64,
    names: usize,
    entries: Vec<Verified>,
}

/// FNV-1a, stable across Rust versions (std's hasher is not), for the cache key.
fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}

/// Hash of every image path with its size and modification time, and of every label file's contents (an
/// edit that keeps a label's size and time still invalidates the cache; label files are small).
fn files_hash(images: &[PathBuf]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for im in images {
        fnv1a(&mut h, im.to_string_lossy().as_bytes());
        if let Ok(m) = std::fs::metadata(im) {
            fnv1a(&mut h, &m.len().to_le_bytes());
            let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            fnv1a(&mut h, &t.map(|d| d.as_nanos()).unwrap_or(0).to_le_bytes());
        }
        let label = label_path_for(im);
        fnv1a(&mut h, label.to_string_lossy().as_bytes());
        match std::fs::metadata(&label) {
            Ok(m) if m.is_file() => fnv1a(&mut h, &std::fs::read(&label).unwrap_or_default()),
            Ok(_) => fnv1a(&mut h, b"not a regular file"),
            Err(_) => fnv1a(&mut h, b"missing"),
        }
        fnv1a(&mut h, &[0xFF]);
    }
    h
}

/// The cache file of a list of images: beside the first image's label folder, as YOLOv5 does.
fn cache_path(images: &[PathBuf]) -> Option<PathBuf> {
    let dir = label_path_for(images.first()?).parent()?.to_path_buf();
    // not YOLOv5's `train.cache` (a numpy pickle): both tools can share a data set without rebuilding each other's
    Some(dir.with_extension("yolo-lab.cache"))
}

/// Scan sources: list, verify (in parallel), apply the label cache, print issues and the summary line.
pub(crate) fn scan(sources: &[PathBuf], names: &[String], prefix: &str, reporter: &Reporter) -> Result<Samples> {
    let images = list_images(sources)?;
    let place = sources.first().cloned().unwrap_or_default();
    if images.is_empty() {
        return Err(Error::NoImages { path: place, message: "no image files found".into() });
    }
    let hash = files_hash(&images);
    let cache = cache_path(&images);
    let cached =
        cache.as_ref().and_then(|c| std::fs::read(c).ok()).and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok());
    let (entries, from_cache) = match cached {
        Some(c) if c.version == CACHE_VERSION && c.hash == hash && c.names == names.len() => (c.entries, true),
        _ => {
            let entries: Vec<Verified> = images.par_iter().map(|im| verify(im, names.len())).collect();
            if let Some(c) = &cache {
                // Repairs (re-saved JPEGs) change file times: hash again so the next load hits the cache.
                let file = CacheFile {
                    version: CACHE_VERSION,
                    hash: files_hash(&images),
                    names: names.len(),
                    entries: entries.clone(),
                };
                let bytes = serde_json::to_vec(&file).expect("cache entries serialise");
                if let Err(e) = write_atomic(c, &bytes) {
                    reporter.warn(&format!("label cache not saved ({e}); the next load scans again"));
                }
            }
            (entries, false)
        }
    };
    let mut report =
        ScanReport { prefix: prefix.into(), listed: images.len(), cache_file: cache, from_cache, ..Default::default() };
    let mut items = Vec::with_capacity(entries.len());
    for v in entries {
        match v.label_state {
            LabelState::Labelled => report.labelled += 1,
            LabelState::Missing => report.missing += 1,
            LabelState::Empty => report.empty += 1,
            LabelState::Corrupt => report.corrupt += 1,
        }
        report.issues.extend(v.issues);
        if let Some(s) = v.sample {
            report.instances += s.labels.len();
            items.push(s);
        }
    }
    for issue in &report.issues {
        reporter.warn(issue.to_string().trim_start_matches("WARNING "));
    }
    reporter.info(&report.to_string());
    if items.is_empty() {
        return Err(Error::NoImages { path: place, message: report.to_string() });
    }
    Ok(Samples { items, names: names.to_vec(), report })
}

/// Verify one image and its labels (`verify_image_label`).
fn verify(image: &Path, nc: usize) -> Verified {
    let corrupt = |path: &Path, line: Option<usize>, message: String| Verified {
        sample: None,
        label_state: LabelState::Corrupt,
        issues: vec![Issue { path: path.into(), line, message, kind: IssueKind::Skipped }],
    };
    let mut issues = Vec::new();
    let (width, height) = match check_image(image, &mut issues) {
        Ok(wh) => wh,
        Err(msg) => return corrupt(image, None, msg),
    };
    let label_file = label_path_for(image);
    if std::fs::metadata(&label_file).is_ok_and(|m| !m.is_file()) {
        return corrupt(&label_file, None, "the label is not a regular file".into());
    }
    let text = match std::fs::read(&label_file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let sample = Sample { image: image.into(), width, height, labels: vec![] };
            return Verified { sample: Some(sample), label_state: LabelState::Missing, issues };
        }
        Err(e) => return corrupt(&label_file, None, e.to_string()),
    };
    let text = match String::from_utf8(text) {
        Ok(t) => t,
        Err(_) => return corrupt(&label_file, None, "label file is not UTF-8 text".into()),
    };
    let labels = match parse_labels(&text, nc) {
        Ok(l) => l,
        Err((line, msg)) => return corrupt(&label_file, Some(line), msg),
    };
    let (labels, dropped) = dedup(labels);
    if dropped > 0 {
        issues.push(Issue {
            path: label_file,
            line: None,
            message: format!("{dropped} duplicate labels removed"),
            kind: IssueKind::Fixed,
        });
    }
    let state = if labels.is_empty() { LabelState::Empty } else { LabelState::Labelled };
    Verified { sample: Some(Sample { image: image.into(), width, height, labels }), label_state: state, issues }
}

/// Decode the image fully (a header check misses truncated data). A JPEG without its end marker is never
/// re-saved (YOLOv5 overwrites it in place; yolo-lab leaves the user's files alone): when it decodes to the
/// last row it is used as decoded, and when its bottom is missing it is skipped, the message says which.
fn check_image(path: &Path, issues: &mut Vec<Issue>) -> std::result::Result<(u32, u32), String> {
    // a FIFO or device named like an image would block the read forever
    if !std::fs::metadata(path).map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let img = image::load_from_memory(&bytes).map_err(|e| format!("cannot decode image: {e}"))?;
    let (w, h) = (img.width(), img.height());
    if w < MIN_IMAGE_SIDE || h < MIN_IMAGE_SIDE {
        return Err(format!("image size {w}x{h} <10 pixels"));
    }
    let is_jpeg = matches!(image::guess_format(&bytes), Ok(image::ImageFormat::Jpeg));
    if is_jpeg && !bytes.ends_with(&[0xFF, 0xD9]) {
        let missing = missing_rows(&img.to_rgb8());
        if missing as f64 >= TRUNCATED_SKIP_FRACTION * h as f64 {
            return Err(format!(
                "truncated JPEG: its bottom {missing} of {h} rows ({:.0}%) are missing, so labels there would point \
                 at nothing; skipped (the file is left unchanged)",
                100.0 * missing as f64 / h as f64
            ));
        }
        issues.push(Issue {
            path: path.into(),
            line: None,
            message: "JPEG without its end marker decodes completely; used as decoded (the file is left unchanged)"
                .into(),
            kind: IssueKind::Fixed,
        });
    }
    Ok((w, h))
}

/// A truncated JPEG whose missing bottom band covers at least this fraction of its height is skipped.
pub const TRUNCATED_SKIP_FRACTION: f64 = 0.01;

/// Rows at the bottom of a decoded image that are one flat colour, the same in each: what a JPEG decoder
/// fills in for data that is not in the file.
fn missing_rows(img: &image::RgbImage) -> u32 {
    let (w, h) = img.dimensions();
    let fill = *img.get_pixel(0, h - 1);
    (0..h).rev().take_while(|&y| (0..w).all(|x| *img.get_pixel(x, y) == fill)).count() as u32
}

/// Parse label text. Rows with more than 6 values are polygons, converted to their bounding box.
/// Errors carry the 1-based line.
fn parse_labels(text: &str, nc: usize) -> std::result::Result<Vec<Label>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let mut values = Vec::with_capacity(fields.len());
        for f in &fields {
            let v: f32 = f.parse().map_err(|_| (line_no, format!("`{f}` is not a number")))?;
            if !v.is_finite() {
                return Err((line_no, format!("`{f}` is not a finite number")));
            }
            values.push(v);
        }
        let (cls, coords) = (values[0], &values[1..]);
        let [cx, cy, w, h] = if values.len() > 6 {
            if coords.len() % 2 != 0 {
                return Err((line_no, format!("polygon label has an odd number of coordinates ({})", coords.len())));
            }
            polygon_box(coords)
        } else if values.len() == 5 {
            [coords[0], coords[1], coords[2], coords[3]]
        } else {
            return Err((line_no, format!("labels require 5 columns, {} columns detected", values.len())));
        };
        if values.iter().any(|v| *v < 0.0) {
            return Err((line_no, "negative label values".into()));
        }
        if [cx, cy, w, h].iter().any(|v| *v > 1.0) {
            return Err((line_no, format!("non-normalized or out of bounds coordinates {:?}", [cx, cy, w, h])));
        }
        if cls.fract() != 0.0 {
            return Err((line_no, format!("class `{}` is not a whole number", fields[0])));
        }
        if cls as usize >= nc {
            return Err((
                line_no,
                format!("class {} exceeds the {nc} class names (0..{})", cls as usize, nc.saturating_sub(1)),
            ));
        }
        out.push(Label { class: cls as usize, cx, cy, w, h });
    }
    Ok(out)
}

/// Bounding box (cx, cy, w, h) of a polygon given as x1 y1 x2 y2 ... (`segments2boxes`).
fn polygon_box(xy: &[f32]) -> [f32; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in xy.chunks_exact(2) {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    [(x0 + x1) / 2.0, (y0 + y1) / 2.0, x1 - x0, y1 - y0]
}

/// Remove exact duplicate rows, keeping the first occurrence. Returns the labels and how many were dropped.
fn dedup(labels: Vec<Label>) -> (Vec<Label>, usize) {
    let n = labels.len();
    let mut out: Vec<Label> = Vec::with_capacity(n);
    for l in labels {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    let dropped = n - out.len();
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_path_swaps_last_images_folder() {
        assert_eq!(
            label_path_for(Path::new("/d/images/x/images/train/a.jpg")),
            PathBuf::from("/d/images/x/labels/train/a.txt")
        );
        assert_eq!(label_path_for(Path::new("/d/imgs/a.png")), PathBuf::from("/d/imgs/a.txt"));
    }

    #[test]
    fn parse_rules() {
        assert_eq!(parse_labels("0 0.5 0.5 0.2 0.2\n\n", 3).unwrap().len(), 1);
        assert_eq!(parse_labels("0 0.5 0.5 0.2", 3).unwrap_err().0, 1);
        let e = parse_labels("0 0.5 0.5 0.2 0.2\n1 1.5 0.5 0.2 0.2", 3).unwrap_err();
        assert_eq!(e.0, 2);
        assert!(e.1.contains("out of bounds"));
        assert!(parse_labels("0 -0.1 0.5 0.2 0.2", 3).unwrap_err().1.contains("negative"));
        assert!(parse_labels("3 0.5 0.5 0.2 0.2", 3).unwrap_err().1.contains("exceeds"));
        assert!(parse_labels("a 0.5 0.5 0.2 0.2", 3).unwrap_err().1.contains("not a number"));
        let poly = parse_labels("2 0.1 0.1 0.3 0.1 0.3 0.5", 3).unwrap();
        let l = poly[0];
        assert!(
            (l.cx - 0.2).abs() < 1e-6
                && (l.cy - 0.3).abs() < 1e-6
                && (l.w - 0.2).abs() < 1e-6
                && (l.h - 0.4).abs() < 1e-6
        );
        let (d, n) = dedup(parse_labels("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2", 3).unwrap());
        assert_eq!((d.len(), n), (1, 1));
    }
}
