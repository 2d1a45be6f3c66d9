//! Helpers shared by the integration tests: small data sets written into temporary folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use yolo_lab::data::{ShapesConfig, ShapesStyle};

/// Write `n` rendered shapes images with labels into `root/images/<split>` and `root/labels/<split>`.
pub fn write_shapes(root: &Path, split: &str, n: usize, imgsz: u32) -> Vec<PathBuf> {
    let cfg = ShapesConfig { seed: 7, train: n, val: 0, imgsz, style: ShapesStyle::Default };
    let (im, lb) = (root.join("images").join(split), root.join("labels").join(split));
    std::fs::create_dir_all(&im).unwrap();
    std::fs::create_dir_all(&lb).unwrap();
    (0..n)
        .map(|i| {
            let (img, labels) = cfg.render(0, i as u64);
            let p = im.join(format!("img{i:03}.jpg"));
            img.save(&p).unwrap();
            let text: String =
                labels.iter().map(|(c, b)| format!("{c} {} {} {} {}\n", b[0], b[1], b[2], b[3])).collect();
            std::fs::write(lb.join(format!("img{i:03}.txt")), text).unwrap();
            p
        })
        .collect()
}

/// A data yaml with the three shapes classes.
pub fn write_yaml(root: &Path, body: &str) -> PathBuf {
    let p = root.join("data.yaml");
    std::fs::write(&p, format!("path: {}\n{body}", root.display())).unwrap();
    p
}

/// generations.csv of an evolution folder, one map of column → cell per line.
pub fn generations(dir: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("generations.csv")).unwrap();
    let mut lines = text.lines();
    let head = yolo_lab::evolve::csv::split_line(lines.next().unwrap());
    lines.map(|l| head.iter().cloned().zip(yolo_lab::evolve::csv::split_line(l)).collect()).collect()
}
