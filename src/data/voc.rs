//! Pascal VOC to YOLO conversion (the download script inside YOLOv5's `data/VOC.yaml`).

use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::report::Reporter;
use std::path::Path;

/// The 20 VOC class names in YOLOv5's order.
pub const VOC_NAMES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// The (year, image set) pairs YOLOv5 converts; the output folders are `{set}{year}`.
const SETS: [(&str, &str); 5] =
    [("2012", "train"), ("2012", "val"), ("2007", "train"), ("2007", "val"), ("2007", "test")];

/// Convert a VOCdevkit tree (`VOC2007/`, `VOC2012/`, each with `Annotations/`, `ImageSets/Main/` and
/// `JPEGImages/`) into `out/images/{set}{year}` and `out/labels/{set}{year}`. Years or sets that are absent
/// are skipped. Objects marked `difficult` and unknown classes are left out. Returns the number of images
/// written; a line per set goes to `reporter`. Use with the `VOC` entry of datasets.toml (train = 2007+2012 trainval, val = 2007 test).
pub fn convert_voc(devkit: &Path, out: &Path, reporter: &Reporter) -> Result<usize> {
    let mut total = 0;
    for (year, set) in SETS {
        let base = devkit.join(format!("VOC{year}"));
        let list = base.join("ImageSets/Main").join(format!("{set}.txt"));
        if !list.is_file() {
            continue;
        }
        let ids = std::fs::read_to_string(&list).at(&list)?;
        let (im_dir, lb_dir) =
            (out.join("images").join(format!("{set}{year}")), out.join("labels").join(format!("{set}{year}")));
        std::fs::create_dir_all(&im_dir).at(&im_dir)?;
        std::fs::create_dir_all(&lb_dir).at(&lb_dir)?;
        let mut n = 0;
        for id in ids.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let xml = base.join("Annotations").join(format!("{id}.xml"));
            let text = std::fs::read_to_string(&xml).at(&xml)?;
            let labels = convert_annotation(&text, &xml)?;
            write_atomic(&lb_dir.join(format!("{id}.txt")), labels.as_bytes())?;
            let src = base.join("JPEGImages").join(format!("{id}.jpg"));
            let dst = im_dir.join(format!("{id}.jpg"));
            std::fs::copy(&src, &dst).at(&src)?;
            n += 1;
        }
        reporter.info(&format!("VOC{year} {set}: {n} images -> {}", im_dir.display()));
        total += n;
    }
    if total == 0 {
        return Err(Error::NoImages {
            path: devkit.into(),
            message: "no VOC2007/ or VOC2012/ folder with ImageSets/Main/{train,val,test}.txt".into(),
        });
    }
    Ok(total)
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(name))
}

/// YOLO label lines for one VOC annotation.
fn convert_annotation(text: &str, path: &Path) -> Result<String> {
    let xml_err = |message: String| Error::Xml { path: path.into(), message };
    let doc = roxmltree::Document::parse(text).map_err(|e| xml_err(e.to_string()))?;
    let root = doc.root_element();
    let num = |n: roxmltree::Node<'_, '_>, name: &str| -> Result<f64> {
        let t = child(n, name).and_then(|c| c.text()).ok_or_else(|| xml_err(format!("missing <{name}>")))?;
        t.trim().parse().map_err(|_| xml_err(format!("<{name}> is not a number: `{t}`")))
    };
    let size = child(root, "size").ok_or_else(|| xml_err("missing <size>".into()))?;
    let (w, h) = (num(size, "width")?, num(size, "height")?);
    if w <= 0.0 || h <= 0.0 {
        return Err(xml_err(format!("image size {w}x{h} is not positive")));
    }
    let mut out = String::new();
    for obj in root.children().filter(|c| c.has_tag_name("object")) {
        let name = child(obj, "name").and_then(|c| c.text()).unwrap_or("").trim();
        let difficult = child(obj, "difficult").and_then(|c| c.text()).is_some_and(|t| t.trim() == "1");
        let Some(class) = VOC_NAMES.iter().position(|n| *n == name) else {
            continue;
        };
        if difficult {
            continue;
        }
        let bb = child(obj, "bndbox").ok_or_else(|| xml_err(format!("object `{name}` has no <bndbox>")))?;
        let (x0, x1, y0, y1) = (num(bb, "xmin")?, num(bb, "xmax")?, num(bb, "ymin")?, num(bb, "ymax")?);
        // VOC boxes are 1-based pixel indices: YOLOv5's convert_box subtracts 1 from the centre.
        let (cx, cy, bw, bh) = ((x0 + x1) / 2.0 - 1.0, (y0 + y1) / 2.0 - 1.0, x1 - x0, y1 - y0);
        out.push_str(&format!("{class} {:.6} {:.6} {:.6} {:.6}\n", cx / w, cy / h, bw / w, bh / h));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_conversion() {
        let xml = r#"<annotation><size><width>200</width><height>100</height><depth>3</depth></size>
            <object><name>dog</name><difficult>0</difficult><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>51</xmax><ymax>61</ymax></bndbox></object>
            <object><name>cat</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>
            <object><name>unicorn</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>
            </annotation>"#;
        let out = convert_annotation(xml, Path::new("a.xml")).unwrap();
        assert_eq!(out, "11 0.150000 0.400000 0.200000 0.400000\n");
        assert!(convert_annotation("<annotation>", Path::new("b.xml")).is_err());
    }
}
