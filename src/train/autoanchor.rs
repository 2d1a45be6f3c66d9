//! AutoAnchor (`utils/autoanchor.py`): check how well the anchors fit the labels (best possible recall) and,
//! below 0.98, evolve new ones with k-means and a genetic algorithm.

use crate::data::Sample;
use crate::model::Yolo;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Kind, Tensor};

/// Below this best possible recall the anchors are recomputed (`bpr > 0.98` keeps them).
pub const BPR_THRESHOLD: f64 = 0.98;
/// Generations of the anchor GA.
pub const ANCHOR_GENERATIONS: usize = 1000;
/// Mutation probability and sigma of the anchor GA.
pub const ANCHOR_MP: f64 = 0.9;
/// See [`ANCHOR_MP`].
pub const ANCHOR_SIGMA: f64 = 0.1;
/// k-means restarts (scipy's `kmeans(iter=30)`).
pub const KMEANS_RESTARTS: usize = 30;

/// Label sizes in pixels at training scale, each image scaled by a random U(0.9, 1.1) as YOLOv5 does.
pub fn label_wh(samples: &[Sample], imgsz: f64, rng: &mut impl Rng) -> Vec<[f64; 2]> {
    let mut out = Vec::new();
    for s in samples {
        let m = s.width.max(s.height) as f64;
        let (sw, sh) = (imgsz * s.width as f64 / m, imgsz * s.height as f64 / m);
        let k: f64 = rng.random_range(0.9..1.1);
        out.extend(s.labels.iter().map(|l| [l.w as f64 * sw * k, l.h as f64 * sh * k]));
    }
    out
}

/// Per label, the best anchor ratio `max_k min(r, 1/r)` (the worse of w and h).
fn best_ratios(anchors: &[[f64; 2]], wh: &[[f64; 2]]) -> Vec<(f64, Vec<f64>)> {
    wh.iter()
        .map(|w| {
            let x: Vec<f64> = anchors
                .iter()
                .map(|a| {
                    let (rw, rh) = (w[0] / a[0], w[1] / a[1]);
                    rw.min(1.0 / rw).min(rh.min(1.0 / rh))
                })
                .collect();
            (x.iter().cloned().fold(f64::MIN, f64::max), x)
        })
        .collect()
}

/// Best possible recall and anchors above threshold per label, for `anchor_t` (YOLOv5's `metric`).
pub fn bpr(anchors: &[[f64; 2]], wh: &[[f64; 2]], anchor_t: f64) -> (f64, f64) {
    let thr = 1.0 / anchor_t;
    let r = best_ratios(anchors, wh);
    let n = r.len().max(1) as f64;
    let bpr = r.iter().filter(|(b, _)| *b > thr).count() as f64 / n;
    let aat = r.iter().map(|(_, x)| x.iter().filter(|v| **v > thr).count() as f64).sum::<f64>() / n;
    (bpr, aat)
}

fn fitness(anchors: &[[f64; 2]], wh: &[[f64; 2]], thr: f64) -> f64 {
    let r = best_ratios(anchors, wh);
    r.iter().map(|(b, _)| if *b > thr { *b } else { 0.0 }).sum::<f64>() / r.len().max(1) as f64
}

fn kmeans(points: &[[f64; 2]], k: usize, rng: &mut impl Rng) -> Vec<[f64; 2]> {
    let dist2 = |a: &[f64; 2], b: &[f64; 2]| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
    let mut best = (f64::MAX, vec![]);
    for _ in 0..KMEANS_RESTARTS {
        let mut c: Vec<[f64; 2]> = (0..k).map(|_| points[rng.random_range(0..points.len())]).collect();
        let mut last = f64::MAX;
        for _ in 0..100 {
            let mut sums = vec![[0.0, 0.0, 0.0]; k];
            let mut distortion = 0.0;
            for p in points {
                let (j, d) = c
                    .iter()
                    .enumerate()
                    .map(|(j, q)| (j, dist2(p, q)))
                    .fold((0, f64::MAX), |m, x| if x.1 < m.1 { x } else { m });
                distortion += d.sqrt();
                sums[j] = [sums[j][0] + p[0], sums[j][1] + p[1], sums[j][2] + 1.0];
            }
            for (q, s) in c.iter_mut().zip(&sums) {
                if s[2] > 0.0 {
                    *q = [s[0] / s[2], s[1] / s[2]];
                }
            }
            let distortion = distortion / points.len() as f64;
            if (last - distortion).abs() < 1e-5 {
                break;
            }
            last = distortion;
        }
        if last < best.0 {
            best = (last, c);
        }
    }
    best.1
}

/// New anchors (pixels, sorted by area): k-means on whitened label sizes, then a mutation GA on the
/// anchor fitness (`kmean_anchors`).
pub fn kmean_anchors(
    wh0: &[[f64; 2]],
    n: usize,
    anchor_t: f64,
    generations: usize,
    rng: &mut impl Rng,
) -> Vec<[f64; 2]> {
    let thr = 1.0 / anchor_t;
    let wh: Vec<[f64; 2]> = wh0.iter().copied().filter(|w| w[0] >= 2.0 || w[1] >= 2.0).collect();
    if wh.len() < n {
        let mut k: Vec<[f64; 2]> = (0..n).map(|i| [8.0 * (i + 1) as f64, 8.0 * (i + 1) as f64]).collect();
        k.sort_by(|a, b| (a[0] * a[1]).total_cmp(&(b[0] * b[1])));
        return k;
    }
    let std = |j: usize| {
        let m = wh.iter().map(|w| w[j]).sum::<f64>() / wh.len() as f64;
        (wh.iter().map(|w| (w[j] - m).powi(2)).sum::<f64>() / wh.len() as f64).sqrt().max(1e-9)
    };
    let s = [std(0), std(1)];
    let white: Vec<[f64; 2]> = wh.iter().map(|w| [w[0] / s[0], w[1] / s[1]]).collect();
    let mut k: Vec<[f64; 2]> = kmeans(&white, n, rng).iter().map(|c| [c[0] * s[0], c[1] * s[1]]).collect();
    let mut f = fitness(&k, &wh, thr);
    for _ in 0..generations {
        let mut v = vec![[1.0; 2]; n];
        while v.iter().flatten().all(|x| *x == 1.0) {
            let u: f64 = rng.random();
            for x in v.iter_mut().flatten() {
                let m = if rng.random::<f64>() < ANCHOR_MP { 1.0 } else { 0.0 };
                let z: f64 = StandardNormal.sample(rng);
                *x = (m * u * z * ANCHOR_SIGMA + 1.0).clamp(0.3, 3.0);
            }
        }
        let kg: Vec<[f64; 2]> =
            k.iter().zip(&v).map(|(a, m)| [(a[0] * m[0]).max(2.0), (a[1] * m[1]).max(2.0)]).collect();
        let fg = fitness(&kg, &wh, thr);
        if fg > f {
            (f, k) = (fg, kg);
        }
    }
    k.sort_by(|a, b| (a[0] * a[1]).total_cmp(&(b[0] * b[1])));
    k
}

/// The model's anchors in pixels, level by level.
pub fn model_anchors(model: &Yolo) -> Vec<[f64; 2]> {
    let d = model.head();
    let grid: Vec<f32> = Vec::try_from(d.anchors.to_device(tch::Device::Cpu).reshape(-1)).unwrap_or_default();
    let na = d.na as usize;
    grid.chunks(2).enumerate().map(|(i, a)| [a[0] as f64 * d.stride[i / na], a[1] as f64 * d.stride[i / na]]).collect()
}

/// How well the model's anchors fit the labels at `imgsz` for an `anchor_t` (what AutoAnchor prints): the best
/// possible recall (share of labels within a factor `anchor_t` of some anchor in width and height) and the
/// anchors per label within it. Labels are scaled as AutoAnchor scales them, with the training seed's stream.
pub fn anchor_fit(model: &Yolo, samples: &[Sample], anchor_t: f64, imgsz: i64, seed: u64) -> (f64, f64) {
    let mut rng = crate::data::rng_for(seed, crate::data::Stream::AutoAnchor, &[]);
    bpr(&model_anchors(model), &label_wh(samples, imgsz as f64, &mut rng), anchor_t)
}

/// Check the model's anchors against the labels and replace them when k-means finds better ones. Returns a
/// one-line report.
pub fn check_anchors(model: &Yolo, samples: &[Sample], anchor_t: f64, imgsz: i64, rng: &mut impl Rng) -> String {
    let d = model.head();
    let stride = d.stride.clone();
    let na = d.na as usize;
    let current = model_anchors(model);
    let wh = label_wh(samples, imgsz as f64, rng);
    if wh.is_empty() {
        return "AutoAnchor: no labels, anchors kept".into();
    }
    let (b, aat) = bpr(&current, &wh, anchor_t);
    let head = format!("AutoAnchor: {aat:.2} anchors/target, {b:.3} Best Possible Recall (BPR)");
    if b > BPR_THRESHOLD {
        return format!("{head}. Current anchors are a good fit to dataset");
    }
    let new = kmean_anchors(&wh, current.len(), anchor_t, ANCHOR_GENERATIONS, rng);
    let (nb, _) = bpr(&new, &wh, anchor_t);
    if nb <= b {
        return format!("{head}. k-means anchors (BPR {nb:.3}) are no better: original anchors kept");
    }
    let flat: Vec<f32> = new
        .iter()
        .enumerate()
        .flat_map(|(i, a)| [(a[0] / stride[i / na]) as f32, (a[1] / stride[i / na]) as f32])
        .collect();
    tch::no_grad(|| {
        let t = Tensor::from_slice(&flat)
            .view([stride.len() as i64, na as i64, 2])
            .to_kind(Kind::Float)
            .to_device(d.anchors.device());
        d.anchors.shallow_clone().copy_(&t);
    });
    format!(
        "{head}. New anchors (BPR {nb:.3}) saved to the model: {:?}",
        new.iter().map(|a| [a[0].round(), a[1].round()]).collect::<Vec<_>>()
    )
}
