//! The built-in `shapes` data set: a deterministic generator of JPEG images with filled circles, rectangles and
//! triangles on varied backgrounds, and pixel-exact YOLO labels. It is the default data of the demo, the
//! notebooks and the tests, because nothing can be downloaded at run time.

use super::imageops::{Image, save_jpeg};
use super::{Dataset, Stream, rng_for};
use crate::error::{IoContext, Result};
use crate::fsutil::{cache_dir, unique_suffix, write_atomic};
use crate::report::Reporter;
use image::Rgb;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use std::path::Path;

/// Class names of the shapes set.
pub const SHAPES_NAMES: [&str; 3] = ["circle", "rectangle", "triangle"];
/// Bump when the generator's output changes, so caches of the old output are not reused.
const GENERATOR_VERSION: u32 = 1;
/// JPEG quality of the generated images.
const JPEG_QUALITY: u8 = 90;

/// Visual style of a generated set: `Alt` has smaller objects, a darker palette and striped/checked
/// backgrounds, for transfer-learning experiments between two different sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ShapesStyle {
    /// Bright shapes, medium sizes, flat/gradient/sinusoidal/noise backgrounds.
    #[default]
    Default,
    /// Smaller shapes, muted palette, stripes and checkerboards.
    Alt,
}

/// Settings of the shapes generator. The same settings always give byte-identical files.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapesConfig {
    /// Random seed.
    pub seed: u64,
    /// Number of training images.
    pub train: usize,
    /// Number of validation images.
    pub val: usize,
    /// Longest image side in pixels.
    pub imgsz: u32,
    /// Visual style.
    pub style: ShapesStyle,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        ShapesConfig { seed: 0, train: 256, val: 64, imgsz: 320, style: ShapesStyle::Default }
    }
}

impl ShapesConfig {
    /// The folder name that identifies these settings.
    pub fn folder_name(&self) -> String {
        let style = match self.style {
            ShapesStyle::Default => "default",
            ShapesStyle::Alt => "alt",
        };
        format!("shapes-{style}-s{}-t{}-v{}-{}px-g{GENERATOR_VERSION}", self.seed, self.train, self.val, self.imgsz)
    }

    /// Generate the set in the cache folder (or reuse it) and describe it.
    pub fn generate(&self) -> Result<Dataset> {
        self.generate_with(&Reporter::default())
    }

    /// [`ShapesConfig::generate`] reporting the generation to `reporter`.
    pub fn generate_with(&self, reporter: &Reporter) -> Result<Dataset> {
        self.generate_to(&cache_dir().join("datasets"), reporter)
    }

    /// Generate the set under `parent` (or reuse it). The set is built in a temporary folder and renamed into
    /// place, so concurrent callers never see half a data set; the loser of a race discards its copy.
    pub fn generate_in(&self, parent: &Path) -> Result<Dataset> {
        self.generate_to(parent, &Reporter::default())
    }

    fn generate_to(&self, parent: &Path, reporter: &Reporter) -> Result<Dataset> {
        let dir = parent.join(self.folder_name());
        if !dir.join("data.yaml").is_file() {
            std::fs::create_dir_all(parent).at(parent)?;
            let tmp = parent.join(format!(".{}.tmp{}", self.folder_name(), unique_suffix()));
            reporter.info(&format!(
                "shapes: generating {} train + {} val images ({} px, seed {}) in {}",
                self.train,
                self.val,
                self.imgsz,
                self.seed,
                dir.display()
            ));
            let built = self.write_all(&tmp, &dir);
            match built.and_then(|()| std::fs::rename(&tmp, &dir).at(&dir)) {
                Ok(()) => {}
                Err(_) if dir.join("data.yaml").is_file() => {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(e);
                }
            }
        }
        Ok(self.describe(&dir))
    }

    fn describe(&self, dir: &Path) -> Dataset {
        Dataset {
            name: "shapes".into(),
            root: dir.into(),
            train: vec![dir.join("images/train")],
            val: vec![dir.join("images/val")],
            test: vec![],
            names: SHAPES_NAMES.iter().map(|s| s.to_string()).collect(),
            source: dir.join("data.yaml"),
        }
    }

    fn write_all(&self, tmp: &Path, final_dir: &Path) -> Result<()> {
        for (split, n, stream) in [("train", self.train, 0u64), ("val", self.val, 1u64)] {
            let (im_dir, lb_dir) = (tmp.join("images").join(split), tmp.join("labels").join(split));
            std::fs::create_dir_all(&im_dir).at(&im_dir)?;
            std::fs::create_dir_all(&lb_dir).at(&lb_dir)?;
            (0..n).into_par_iter().try_for_each(|i| {
                let (img, labels) = self.render(stream, i as u64);
                let stem = format!("{split}_{i:05}");
                save_jpeg(&img, &im_dir.join(format!("{stem}.jpg")), JPEG_QUALITY)?;
                let text: String = labels
                    .iter()
                    .map(|(c, b)| format!("{c} {:.6} {:.6} {:.6} {:.6}\n", b[0], b[1], b[2], b[3]))
                    .collect();
                write_atomic(&lb_dir.join(format!("{stem}.txt")), text.as_bytes())
            })?;
        }
        let names: String = SHAPES_NAMES.iter().enumerate().map(|(i, n)| format!("  {i}: {n}\n")).collect();
        let yaml = format!(
            "# generated by yolo-lab ({:?})\npath: {}\ntrain: images/train\nval: images/val\nnames:\n{names}",
            self,
            final_dir.display()
        );
        write_atomic(&tmp.join("data.yaml"), yaml.as_bytes())
    }

    /// Render one image and its labels `(class, [cx, cy, w, h])` (normalised).
    pub fn render(&self, stream: u64, index: u64) -> (Image, Vec<(usize, [f64; 4])>) {
        let mut rng = rng_for(self.seed, Stream::Shapes(stream), &[index]);
        let s = self.imgsz as f64;
        let (w, h) = if rng.random_bool(0.5) {
            (self.imgsz, self.imgsz)
        } else {
            let short = (s * rng.random_range(0.6..0.95)).round() as u32;
            if rng.random_bool(0.5) { (self.imgsz, short) } else { (short, self.imgsz) }
        };
        let mut img = self.background(&mut rng, w, h);
        let (lo, hi) = match self.style {
            ShapesStyle::Default => (0.10, 0.40),
            ShapesStyle::Alt => (0.06, 0.22),
        };
        let n = rng.random_range(1..=6);
        let mut boxes: Vec<(usize, [f64; 4])> = Vec::new(); // pixel xyxy
        for _ in 0..n {
            for _attempt in 0..20 {
                let class = rng.random_range(0..3usize);
                let size = s * rng.random_range(lo..hi);
                let shape = Shape::random(&mut rng, class, size, w as f64, h as f64);
                let bb = shape.bounds();
                if boxes.iter().any(|(_, b)| iou(b, &bb) > 0.2) {
                    continue;
                }
                let colour = self.colour(&mut rng, &img, &bb);
                if let Some(painted) = shape.paint(&mut img, colour) {
                    boxes.push((class, painted));
                }
                break;
            }
        }
        if rng.random_bool(0.3) {
            let sigma = rng.random_range(2.0..8.0);
            add_noise(&mut img, &mut rng, sigma);
        }
        let labels = boxes
            .into_iter()
            .map(|(c, b)| {
                (
                    c,
                    [
                        (b[0] + b[2]) / 2.0 / w as f64,
                        (b[1] + b[3]) / 2.0 / h as f64,
                        (b[2] - b[0]) / w as f64,
                        (b[3] - b[1]) / h as f64,
                    ],
                )
            })
            .collect();
        (img, labels)
    }

    fn background(&self, rng: &mut impl Rng, w: u32, h: u32) -> Image {
        let rand_colour = |rng: &mut dyn rand::RngCore, muted: bool| -> [f64; 3] {
            let (a, b) = if muted { (20.0, 140.0) } else { (0.0, 255.0) };
            [rng.random_range(a..b), rng.random_range(a..b), rng.random_range(a..b)]
        };
        let muted = self.style == ShapesStyle::Alt;
        let c1 = rand_colour(rng, muted);
        let c2 = rand_colour(rng, muted);
        let kind = rng.random_range(0..4u32);
        let (fx, fy, phase) =
            (rng.random_range(0.5..4.0), rng.random_range(0.5..4.0), rng.random_range(0.0..std::f64::consts::TAU));
        let angle: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        let cell = rng.random_range(8..40u32);
        let mut img = Image::new(w, h);
        for (x, y, p) in img.enumerate_pixels_mut() {
            let (u, v) = (x as f64 / w as f64, y as f64 / h as f64);
            let t = match (self.style, kind) {
                (_, 0) => 0.0,
                (ShapesStyle::Default, 1) | (ShapesStyle::Alt, 1) => {
                    (u * angle.cos() + v * angle.sin()).rem_euclid(1.0)
                }
                (ShapesStyle::Default, 2) => {
                    0.5 + 0.5
                        * (std::f64::consts::TAU * (fx * u + phase)).sin()
                        * (std::f64::consts::TAU * fy * v).cos()
                }
                (ShapesStyle::Alt, 2) => ((x / cell + y / cell) % 2) as f64,
                (ShapesStyle::Default, _) => 0.5,
                (ShapesStyle::Alt, _) => {
                    (((u * angle.cos() + v * angle.sin()) * fx * 4.0).floor() as i64).rem_euclid(2) as f64
                }
            };
            *p = Rgb(std::array::from_fn(|c| (c1[c] * (1.0 - t) + c2[c] * t).round() as u8));
        }
        if kind == 3 && self.style == ShapesStyle::Default {
            let sigma = rng.random_range(15.0..40.0);
            add_noise(&mut img, rng, sigma);
        }
        img
    }

    /// A fill colour that stands out from the background under the shape.
    fn colour(&self, rng: &mut impl Rng, img: &Image, bb: &[f64; 4]) -> Rgb<u8> {
        let cx = ((bb[0] + bb[2]) / 2.0).clamp(0.0, img.width() as f64 - 1.0) as u32;
        let cy = ((bb[1] + bb[3]) / 2.0).clamp(0.0, img.height() as f64 - 1.0) as u32;
        let bg = img.get_pixel(cx, cy).0;
        let (lo, hi) = if self.style == ShapesStyle::Alt { (60, 230) } else { (0, 256) };
        let mut best = Rgb([0, 0, 0]);
        let mut best_d = -1i32;
        for _ in 0..8 {
            let c: [u8; 3] = std::array::from_fn(|_| rng.random_range(lo..hi) as u8);
            let d: i32 = (0..3).map(|i| (c[i] as i32 - bg[i] as i32).abs()).sum();
            if d > best_d {
                (best, best_d) = (Rgb(c), d);
            }
            if d > 180 {
                break;
            }
        }
        best
    }
}

fn add_noise(img: &mut Image, rng: &mut impl Rng, sigma: f64) {
    let normal = Normal::new(0.0, sigma).expect("sigma is positive");
    for v in img.iter_mut() {
        *v = (*v as f64 + normal.sample(rng)).round().clamp(0.0, 255.0) as u8;
    }
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter + 1e-9)
}

enum Shape {
    Circle { cx: f64, cy: f64, r: f64 },
    Rect { x0: f64, y0: f64, x1: f64, y1: f64 },
    Triangle { p: [[f64; 2]; 3] },
}

impl Shape {
    fn random(rng: &mut impl Rng, class: usize, size: f64, w: f64, h: f64) -> Shape {
        let size = size.min(w.min(h) * 0.9);
        let cx = rng.random_range(size / 2.0..(w - size / 2.0).max(size / 2.0 + 1.0));
        let cy = rng.random_range(size / 2.0..(h - size / 2.0).max(size / 2.0 + 1.0));
        match class {
            0 => Shape::Circle { cx, cy, r: size / 2.0 },
            1 => {
                let aspect: f64 = rng.random_range(0.4..1.0);
                let (rw, rh) = if rng.random_bool(0.5) { (size, size * aspect) } else { (size * aspect, size) };
                Shape::Rect { x0: cx - rw / 2.0, y0: cy - rh / 2.0, x1: cx + rw / 2.0, y1: cy + rh / 2.0 }
            }
            _ => loop {
                let p: [[f64; 2]; 3] = std::array::from_fn(|_| {
                    [cx + rng.random_range(-0.5..0.5) * size, cy + rng.random_range(-0.5..0.5) * size]
                });
                let area =
                    ((p[1][0] - p[0][0]) * (p[2][1] - p[0][1]) - (p[2][0] - p[0][0]) * (p[1][1] - p[0][1])).abs() / 2.0;
                if area > 0.15 * size * size {
                    break Shape::Triangle { p };
                }
            },
        }
    }

    fn bounds(&self) -> [f64; 4] {
        match self {
            Shape::Circle { cx, cy, r } => [cx - r, cy - r, cx + r, cy + r],
            Shape::Rect { x0, y0, x1, y1 } => [*x0, *y0, *x1, *y1],
            Shape::Triangle { p } => {
                let xs = p.map(|q| q[0]);
                let ys = p.map(|q| q[1]);
                [
                    xs.iter().cloned().fold(f64::MAX, f64::min),
                    ys.iter().cloned().fold(f64::MAX, f64::min),
                    xs.iter().cloned().fold(f64::MIN, f64::max),
                    ys.iter().cloned().fold(f64::MIN, f64::max),
                ]
            }
        }
    }

    fn contains(&self, x: f64, y: f64) -> bool {
        match self {
            Shape::Circle { cx, cy, r } => (x - cx).powi(2) + (y - cy).powi(2) <= r * r,
            Shape::Rect { x0, y0, x1, y1 } => x >= *x0 && x <= *x1 && y >= *y0 && y <= *y1,
            Shape::Triangle { p } => {
                let edge = |a: [f64; 2], b: [f64; 2]| (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]);
                let (d0, d1, d2) = (edge(p[0], p[1]), edge(p[1], p[2]), edge(p[2], p[0]));
                (d0 >= 0.0 && d1 >= 0.0 && d2 >= 0.0) || (d0 <= 0.0 && d1 <= 0.0 && d2 <= 0.0)
            }
        }
    }

    /// Fill the pixels whose centres lie inside; return the pixel-exact box (xyxy, pixel edges), or `None`
    /// when fewer than 4 pixels were painted.
    fn paint(&self, img: &mut Image, colour: Rgb<u8>) -> Option<[f64; 4]> {
        let b = self.bounds();
        let (w, h) = (img.width() as i64, img.height() as i64);
        let (x0, y0) = ((b[0].floor() as i64).max(0), (b[1].floor() as i64).max(0));
        let (x1, y1) = ((b[2].ceil() as i64).min(w - 1), (b[3].ceil() as i64).min(h - 1));
        let (mut lo_x, mut lo_y, mut hi_x, mut hi_y, mut n) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN, 0);
        for y in y0..=y1 {
            for x in x0..=x1 {
                if self.contains(x as f64 + 0.5, y as f64 + 0.5) {
                    img.put_pixel(x as u32, y as u32, colour);
                    (lo_x, lo_y, hi_x, hi_y) = (lo_x.min(x), lo_y.min(y), hi_x.max(x), hi_y.max(y));
                    n += 1;
                }
            }
        }
        (n >= 4).then(|| [lo_x as f64, lo_y as f64, (hi_x + 1) as f64, (hi_y + 1) as f64])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_deterministic_and_labels_are_valid() {
        let cfg = ShapesConfig { imgsz: 96, ..Default::default() };
        for i in 0..20 {
            let (a, la) = cfg.render(0, i);
            let (b, lb) = cfg.render(0, i);
            assert_eq!(a, b);
            assert_eq!(la, lb);
            assert!((1..=6).contains(&la.len()), "{} objects", la.len());
            for (c, bx) in la {
                assert!(c < 3);
                assert!(bx.iter().all(|v| (0.0..=1.0).contains(v)), "{bx:?}");
                assert!(bx[0] - bx[2] / 2.0 >= -1e-9 && bx[0] + bx[2] / 2.0 <= 1.0 + 1e-9);
            }
        }
        assert_ne!(cfg.render(0, 0).0, cfg.render(0, 1).0);
    }

    #[test]
    fn painted_box_is_pixel_exact() {
        let mut img = Image::new(20, 20);
        let r = Shape::Rect { x0: 2.0, y0: 3.0, x1: 7.0, y1: 9.0 };
        let b = r.paint(&mut img, Rgb([255, 0, 0])).unwrap();
        assert_eq!(b, [2.0, 3.0, 7.0, 9.0]);
        assert_eq!(img.get_pixel(2, 3), &Rgb([255, 0, 0]));
        assert_eq!(img.get_pixel(7, 3), &Rgb([0, 0, 0]));
    }
}
