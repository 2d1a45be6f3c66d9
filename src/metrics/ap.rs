//! Average precision and friends (`utils/metrics.py`: `ap_per_class`, `compute_ap`, `fitness`, `ConfusionMatrix`;
//! `val.py::process_batch`), in float64 like the NumPy originals.

/// The 10 IoU thresholds 0.50:0.05:0.95 (`iouv`).
pub fn iou_thresholds() -> [f64; 10] {
    std::array::from_fn(|i| 0.5 + 0.05 * i as f64)
}
/// Points where precision and recall curves are sampled (`px = linspace(0, 1, 1000)`).
pub const CURVE_POINTS: usize = 1000;
/// Recall points of the interpolated AP (`linspace(0, 1, 101)`, COCO's 101-point method).
pub const AP_POINTS: usize = 101;
/// Smoothing fraction of the F1 curve before picking the operating point (`smooth(f1, 0.1)`).
pub const F1_SMOOTH: f64 = 0.1;
/// `eps` of metrics.py.
const EPS: f64 = 1e-16;

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
}

/// `np.interp(x, xp, fp, left, right)` for increasing `xp`.
fn interp(x: f64, xp: &[f64], fp: &[f64], left: f64, right: f64) -> f64 {
    if xp.is_empty() {
        return left;
    }
    if x < xp[0] {
        return left;
    }
    if x > xp[xp.len() - 1] {
        return right;
    }
    // first index with xp[k] > x (numpy's binary search), then interpolate between k-1 and k
    let k = xp.partition_point(|&v| v <= x);
    if k == 0 {
        return fp[0];
    }
    if k >= xp.len() {
        return fp[xp.len() - 1];
    }
    let (x0, x1, y0, y1) = (xp[k - 1], xp[k], fp[k - 1], fp[k]);
    if x1 == x0 { y1 } else { y0 + (x - x0) * (y1 - y0) / (x1 - x0) }
}

/// AP of one recall/precision curve: precision envelope, 101-point interpolation, trapezoidal integration.
pub fn compute_ap(recall: &[f64], precision: &[f64]) -> f64 {
    let (mrec, mpre) = envelope(recall, precision);
    let x = linspace(0.0, 1.0, AP_POINTS);
    let y: Vec<f64> = x.iter().map(|&v| interp(v, &mrec, &mpre, mpre[0], mpre[mpre.len() - 1])).collect();
    x.windows(2).zip(y.windows(2)).map(|(xs, ys)| (xs[1] - xs[0]) * (ys[0] + ys[1]) / 2.0).sum()
}

/// The curve with sentinels (recall 0 and 1, precision 1 and 0) and precision made non-increasing.
fn envelope(recall: &[f64], precision: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut mrec = Vec::with_capacity(recall.len() + 2);
    mrec.push(0.0);
    mrec.extend_from_slice(recall);
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(precision.len() + 2);
    mpre.push(1.0);
    mpre.extend_from_slice(precision);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    (mrec, mpre)
}

/// Box filter of fraction `f` with edges padded by the end values (`smooth`).
fn smooth(y: &[f64], f: f64) -> Vec<f64> {
    let nf = ((y.len() as f64 * f * 2.0).round_ties_even() as usize) / 2 + 1;
    let half = nf / 2;
    let mut yp = vec![y[0]; half];
    yp.extend_from_slice(y);
    yp.extend(std::iter::repeat_n(y[y.len() - 1], half));
    yp.windows(nf).map(|w| w.iter().sum::<f64>() / nf as f64).collect()
}

/// Per-class results of [`ap_per_class`], rows = classes that have labels, ascending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApPerClass {
    /// True positives at the operating point.
    pub tp: Vec<f64>,
    /// False positives at the operating point.
    pub fp: Vec<f64>,
    /// Precision at the operating point.
    pub p: Vec<f64>,
    /// Recall at the operating point.
    pub r: Vec<f64>,
    /// F1 at the operating point.
    pub f1: Vec<f64>,
    /// AP per class and IoU threshold.
    pub ap: Vec<[f64; 10]>,
    /// The classes of the rows.
    pub classes: Vec<usize>,
    /// Precision at IoU 0.5 against recall `linspace(0, 1, 1000)` per class (its envelope: the PR curve
    /// YOLOv5 plots).
    pub pr_curve: Vec<Vec<f64>>,
}

impl ApPerClass {
    /// AP@0.5 per class.
    pub fn ap50(&self) -> Vec<f64> {
        self.ap.iter().map(|a| a[0]).collect()
    }

    /// AP@0.5:0.95 per class.
    pub fn ap50_95(&self) -> Vec<f64> {
        self.ap.iter().map(|a| a.iter().sum::<f64>() / 10.0).collect()
    }

    /// Mean precision, mean recall, mAP@0.5, mAP@0.5:0.95 (0 without classes).
    pub fn means(&self) -> [f64; 4] {
        let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
        [mean(&self.p), mean(&self.r), mean(&self.ap50()), mean(&self.ap50_95())]
    }
}

/// Average precision per class from matched detections: `tp[i][k]` is whether detection i is a true positive at
/// IoU threshold k, `conf[i]` its confidence, `pred_cls[i]` its class; `target_cls` lists the label classes.
pub fn ap_per_class(tp: &[[bool; 10]], conf: &[f64], pred_cls: &[usize], target_cls: &[usize]) -> ApPerClass {
    let mut order: Vec<usize> = (0..conf.len()).collect();
    order.sort_by(|&a, &b| conf[b].total_cmp(&conf[a]));
    let mut classes: Vec<usize> = target_cls.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let nt: Vec<usize> = classes.iter().map(|c| target_cls.iter().filter(|t| *t == c).count()).collect();
    let px = linspace(0.0, 1.0, CURVE_POINTS);
    let nc = classes.len();
    let (mut p, mut r) = (vec![vec![0.0; CURVE_POINTS]; nc], vec![vec![0.0; CURVE_POINTS]; nc]);
    let mut ap = vec![[0.0; 10]; nc];
    let mut pr_curve = vec![vec![0.0; CURVE_POINTS]; nc];
    for (ci, &c) in classes.iter().enumerate() {
        let idx: Vec<usize> = order.iter().copied().filter(|&i| pred_cls[i] == c).collect();
        let n_l = nt[ci] as f64;
        if idx.is_empty() || nt[ci] == 0 {
            continue;
        }
        let mut tpc = vec![[0.0f64; 10]; idx.len()];
        let mut fpc = vec![[0.0f64; 10]; idx.len()];
        for (k, &i) in idx.iter().enumerate() {
            for j in 0..10 {
                let t = f64::from(u8::from(tp[i][j]));
                tpc[k][j] = t + if k > 0 { tpc[k - 1][j] } else { 0.0 };
                fpc[k][j] = (1.0 - t) + if k > 0 { fpc[k - 1][j] } else { 0.0 };
            }
        }
        // confidences decrease along idx, so -conf increases: the xp np.interp needs
        let neg_conf: Vec<f64> = idx.iter().map(|&i| -conf[i]).collect();
        let recall: Vec<[f64; 10]> = tpc.iter().map(|t| t.map(|v| v / (n_l + EPS))).collect();
        let precision: Vec<[f64; 10]> =
            tpc.iter().zip(&fpc).map(|(t, f)| std::array::from_fn(|j| t[j] / (t[j] + f[j]))).collect();
        let rec0: Vec<f64> = recall.iter().map(|v| v[0]).collect();
        let pre0: Vec<f64> = precision.iter().map(|v| v[0]).collect();
        for (k, &x) in px.iter().enumerate() {
            r[ci][k] = interp(-x, &neg_conf, &rec0, 0.0, rec0[rec0.len() - 1]);
            p[ci][k] = interp(-x, &neg_conf, &pre0, 1.0, pre0[pre0.len() - 1]);
        }
        for j in 0..10 {
            let rj: Vec<f64> = recall.iter().map(|v| v[j]).collect();
            let pj: Vec<f64> = precision.iter().map(|v| v[j]).collect();
            ap[ci][j] = compute_ap(&rj, &pj);
            if j == 0 {
                let (mrec, mpre) = envelope(&rj, &pj);
                pr_curve[ci] = px.iter().map(|&x| interp(x, &mrec, &mpre, mpre[0], mpre[mpre.len() - 1])).collect();
            }
        }
    }
    let f1: Vec<Vec<f64>> = p
        .iter()
        .zip(&r)
        .map(|(pc, rc)| pc.iter().zip(rc).map(|(a, b)| 2.0 * a * b / (a + b + EPS)).collect())
        .collect();
    let i = if nc == 0 {
        0
    } else {
        let mean: Vec<f64> = (0..CURVE_POINTS).map(|k| f1.iter().map(|row| row[k]).sum::<f64>() / nc as f64).collect();
        let s = smooth(&mean, F1_SMOOTH);
        // argmax: first maximum
        s.iter().enumerate().fold((0, f64::MIN), |(bi, bv), (k, &v)| if v > bv { (k, v) } else { (bi, bv) }).0
    };
    let pi: Vec<f64> = p.iter().map(|row| row[i]).collect();
    let ri: Vec<f64> = r.iter().map(|row| row[i]).collect();
    let f1i: Vec<f64> = f1.iter().map(|row| row[i]).collect();
    let tp_out: Vec<f64> = ri.iter().zip(&nt).map(|(r, &n)| (r * n as f64).round_ties_even()).collect();
    let fp_out: Vec<f64> = tp_out.iter().zip(&pi).map(|(t, p)| (t / (p + EPS) - t).round_ties_even()).collect();
    ApPerClass { tp: tp_out, fp: fp_out, p: pi, r: ri, f1: f1i, ap, classes, pr_curve }
}

/// Weights of (P, R, mAP@0.5, mAP@0.5:0.95) in the fitness YOLOv5 maximises.
pub const FITNESS_WEIGHTS: [f64; 4] = [0.0, 0.0, 0.1, 0.9];

/// Fitness of a metrics row `(P, R, mAP@0.5, mAP@0.5:0.95, ...)` with the given weights.
pub fn fitness_with(row: &[f64], weights: &[f64; 4]) -> f64 {
    row.iter().zip(weights).map(|(x, w)| x * w).sum()
}

/// YOLOv5's fitness: 0.1·mAP@0.5 + 0.9·mAP@0.5:0.95.
pub fn fitness(row: &[f64]) -> f64 {
    fitness_with(row, &FITNESS_WEIGHTS)
}

/// IoU matrix of corner boxes `a[i]` × `b[j]` (`box_iou`, eps 1e-7).
pub fn box_iou(a: &[[f32; 4]], b: &[[f32; 4]]) -> Vec<Vec<f64>> {
    a.iter()
        .map(|p| {
            b.iter()
                .map(|q| {
                    let w = (p[2].min(q[2]) - p[0].max(q[0])).max(0.0) as f64;
                    let h = (p[3].min(q[3]) - p[1].max(q[1])).max(0.0) as f64;
                    let inter = w * h;
                    let area = |r: &[f32; 4]| ((r[2] - r[0]) * (r[3] - r[1])) as f64;
                    inter / (area(p) + area(q) - inter + 1e-7)
                })
                .collect()
        })
        .collect()
}

/// For detections (corners, class) and labels (corners, class) of one image, whether each detection is a
/// true positive at each of the 10 IoU thresholds (`process_batch` in val.py, including its tie rules: per
/// detection the best-IoU label, then per label the lowest-indexed detection).
pub fn match_detections(dets: &[([f32; 4], usize)], labels: &[([f32; 4], usize)]) -> Vec<[bool; 10]> {
    let mut correct = vec![[false; 10]; dets.len()];
    if dets.is_empty() || labels.is_empty() {
        return correct;
    }
    let lb: Vec<[f32; 4]> = labels.iter().map(|l| l.0).collect();
    let db: Vec<[f32; 4]> = dets.iter().map(|d| d.0).collect();
    let iou = box_iou(&lb, &db);
    for (k, thr) in iou_thresholds().iter().enumerate() {
        let mut m: Vec<(usize, usize, f64)> = Vec::new();
        for (li, row) in iou.iter().enumerate() {
            for (di, &v) in row.iter().enumerate() {
                if v >= *thr && labels[li].1 == dets[di].1 {
                    m.push((li, di, v));
                }
            }
        }
        if m.len() > 1 {
            m.sort_by(|a, b| b.2.total_cmp(&a.2));
            m = unique_first(m, |x| x.1);
            m = unique_first(m, |x| x.0);
        }
        for (_, di, _) in m {
            correct[di][k] = true;
        }
    }
    correct
}

/// `a[np.unique(key(a), return_index=True)[1]]`: the first row of each key, ordered by key.
fn unique_first<T: Copy>(rows: Vec<T>, key: impl Fn(&T) -> usize) -> Vec<T> {
    let mut seen = std::collections::BTreeMap::new();
    for r in rows {
        seen.entry(key(&r)).or_insert(r);
    }
    seen.into_values().collect()
}

/// Confusion matrix `(nc + 1) × (nc + 1)`, rows = predicted class (last = background), columns = true class
/// (last = background) (`ConfusionMatrix`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionMatrix {
    /// Counts.
    pub matrix: Vec<Vec<u64>>,
    /// Classes.
    pub nc: usize,
    /// Minimum detection confidence. Default 0.25.
    pub conf: f32,
    /// IoU for a match. Default 0.45.
    pub iou_thres: f64,
}

impl ConfusionMatrix {
    /// Empty matrix with YOLOv5's thresholds.
    pub fn new(nc: usize) -> Self {
        ConfusionMatrix { matrix: vec![vec![0; nc + 1]; nc + 1], nc, conf: 0.25, iou_thres: 0.45 }
    }

    /// Add one image: detections (corners, conf, class) and labels (corners, class).
    pub fn process(&mut self, dets: &[([f32; 4], f32, usize)], labels: &[([f32; 4], usize)]) {
        let dets: Vec<&([f32; 4], f32, usize)> = dets.iter().filter(|d| d.1 > self.conf).collect();
        let lb: Vec<[f32; 4]> = labels.iter().map(|l| l.0).collect();
        let db: Vec<[f32; 4]> = dets.iter().map(|d| d.0).collect();
        let iou = box_iou(&lb, &db);
        let mut m: Vec<(usize, usize, f64)> = Vec::new();
        for (li, row) in iou.iter().enumerate() {
            for (di, &v) in row.iter().enumerate() {
                if v > self.iou_thres {
                    m.push((li, di, v));
                }
            }
        }
        if m.len() > 1 {
            m.sort_by(|a, b| b.2.total_cmp(&a.2));
            m = unique_first(m, |x| x.1);
            m.sort_by(|a, b| b.2.total_cmp(&a.2));
            m = unique_first(m, |x| x.0);
        }
        let bg = self.nc;
        for (li, l) in labels.iter().enumerate() {
            let hits: Vec<&(usize, usize, f64)> = m.iter().filter(|x| x.0 == li).collect();
            if hits.len() == 1 {
                self.matrix[dets[hits[0].1].2][l.1] += 1;
            } else {
                self.matrix[bg][l.1] += 1;
            }
        }
        if !m.is_empty() {
            for (di, d) in dets.iter().enumerate() {
                if !m.iter().any(|x| x.1 == di) {
                    self.matrix[d.2][bg] += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interp_matches_numpy() {
        let xp = [0.0, 1.0, 2.0];
        let fp = [0.0, 10.0, 20.0];
        assert_eq!(interp(0.5, &xp, &fp, -1.0, 99.0), 5.0);
        assert_eq!(interp(-1.0, &xp, &fp, -1.0, 99.0), -1.0);
        assert_eq!(interp(3.0, &xp, &fp, -1.0, 99.0), 99.0);
        assert_eq!(interp(2.0, &xp, &fp, -1.0, 99.0), 20.0);
    }

    #[test]
    fn perfect_detector_scores_like_yolov5() {
        // YOLOv5's AP of a perfect detector is 0.995: the appended (recall 1, precision 0) point makes the last
        // of the 100 trapezoids half as high.
        let tp = vec![[true; 10]; 5];
        let conf = [0.9, 0.8, 0.7, 0.6, 0.5];
        let r = ap_per_class(&tp, &conf, &[0; 5], &[0; 5]);
        assert!((r.ap[0][0] - 0.995).abs() < 1e-9, "{:?}", r.ap[0]);
        assert_eq!((r.p[0], r.r[0]), (1.0, 1.0));
        assert_eq!(fitness(&[0.0, 0.0, 1.0, 1.0]), 1.0);
    }

    #[test]
    fn matching_prefers_best_iou_then_lowest_detection() {
        let labels = [([0.0, 0.0, 10.0, 10.0], 0)];
        let dets = [([0.0, 0.0, 10.0, 9.0], 0), ([0.0, 0.0, 10.0, 10.0], 0), ([0.0, 0.0, 10.0, 10.0], 1)];
        let c = match_detections(&dets, &labels);
        // at IoU 0.5 both boxes of class 0 qualify and the lower-indexed detection takes the label (val.py's
        // unique() order); at 0.95 only the exact box does; the class-1 box never matches
        assert!(c[0][0] && !c[1][0], "{c:?}");
        assert!(c[1][9] && !c[0][9]);
        assert!(c[2].iter().all(|x| !x));
    }
}
