//! The genetic algorithms of `train.py --evolve`: the classic single-parent multiplicative mutation (YOLOv5
//! v1–v7.0, still in segment/train.py) and the population GA (PR #11348).

use super::csv::EvolveCsv;
use super::meta::Space;
use crate::hyp::Hyp;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Parents considered by the classic GA (`n = min(5, len(x))`).
pub const TOP_PARENTS: usize = 5;
/// Per-gene mutation probability (`mp = 0.8`).
pub const MUTATION_PROB: f64 = 0.8;
/// Mutation sigma (`s = 0.2`).
pub const MUTATION_SIGMA: f64 = 0.2;
/// Bounds of one generation's multiplicative factor (`clip(0.3, 3.0)`).
pub const FACTOR_CLIP: (f64, f64) = (0.3, 3.0);
/// Decimals kept after constraining (`round(hyp[k], 5)`).
pub const DECIMALS: i32 = 5;

/// How the classic GA combines the top rows into a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parent {
    /// One row drawn with probability proportional to its weight (YOLOv5's `'single'`).
    #[default]
    Single,
    /// The weighted mean of the top rows (`'weighted'`).
    Weighted,
}

/// Parent selection weights of the top rows: `fitness - min + 1e-6`.
pub(crate) fn parent_weights(fitness: &[f64]) -> Vec<f64> {
    let min = fitness.iter().cloned().fold(f64::MAX, f64::min);
    fitness.iter().map(|f| f - min + 1e-6).collect()
}

/// Indices of the top `n` rows by fitness, best first (stable: the first of equals first). A fitness that is
/// not a number ranks below every number. This is the one definition of "best row" everywhere.
pub(crate) fn top_rows(fitness: &[f64], n: usize) -> Vec<usize> {
    let key = |i: usize| if fitness[i].is_nan() { f64::NEG_INFINITY } else { fitness[i] };
    let mut idx: Vec<usize> = (0..fitness.len()).collect();
    idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
    idx.truncate(n);
    idx
}

/// Draw an index with probability proportional to `w` (Python's `random.choices`).
pub(crate) fn weighted_choice(w: &[f64], rng: &mut impl Rng) -> usize {
    let total: f64 = w.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, v) in w.iter().enumerate() {
        if x < *v {
            return i;
        }
        x -= v;
    }
    w.len() - 1
}

/// Round to `DECIMALS` decimals as Python's `round(x, 5)` does (correctly rounded, half to even).
pub(crate) fn round5(x: f64) -> f64 {
    format!("{:.*}", DECIMALS as usize, x).parse().unwrap_or(x)
}

/// Clamp every gene of `hyp` to its limits and round to 5 decimals (runs every generation).
pub(crate) fn constrain(hyp: &mut Hyp, space: &Space) {
    for (k, g) in space.genes() {
        if let Some(v) = hyp.get(k) {
            let _ = hyp.set(k, round5(v.max(g.low).min(g.high)));
        }
    }
}

/// The classic GA's next hyperparameters. `previous` holds earlier generations (by column name);
/// `base` gives the key order and values for columns the file lacks. Returns the hyp and the factor applied
/// to each mutated key.
pub(crate) fn classic_next(
    base: &Hyp,
    previous: &EvolveCsv,
    fitness: &dyn Fn(&[f64; 7]) -> f64,
    space: &Space,
    parent: Parent,
    evolve_zeros: bool,
    rng: &mut impl Rng,
) -> (Hyp, Vec<(String, f64)>) {
    let mut hyp = base.clone();
    let mut changes = Vec::new();
    if !previous.rows.is_empty() {
        let fit: Vec<f64> = (0..previous.rows.len()).map(|i| fitness(&previous.results(i))).collect();
        let top = top_rows(&fit, TOP_PARENTS);
        let w = parent_weights(&top.iter().map(|&i| fit[i]).collect::<Vec<_>>());
        let value = |row: usize, key: &str| previous.col(key).map(|c| previous.rows[row][c]).filter(|v| v.is_finite());
        let parent_of = |key: &str, default: f64| -> f64 {
            match parent {
                Parent::Weighted if top.len() > 1 => {
                    let total: f64 = w.iter().sum();
                    top.iter().zip(&w).map(|(&r, wi)| value(r, key).unwrap_or(default) * wi).sum::<f64>() / total
                }
                _ => default,
            }
        };
        let chosen = top[weighted_choice(&w, rng)];
        let keys: Vec<&'static str> = base.keys().collect();
        for k in &keys {
            let d = base.get(k).unwrap_or(0.0);
            let v = if parent == Parent::Weighted && top.len() > 1 {
                parent_of(k, d)
            } else {
                value(chosen, k).unwrap_or(d)
            };
            let _ = hyp.set(k, v);
        }
        // mutate until at least one factor differs from 1 (YOLOv5: "prevent duplicates")
        let genes: Vec<(&str, f64, f64, f64)> =
            keys.iter().filter_map(|k| space.gene(k).map(|g| (*k, g.gain, g.low, g.high))).collect();
        if genes.iter().any(|g| g.1 > 0.0) {
            loop {
                let u: f64 = rng.random();
                let mut any = false;
                changes.clear();
                let mut next = hyp.clone();
                for &(k, gain, low, high) in &genes {
                    let hit = if rng.random::<f64>() < MUTATION_PROB { 1.0 } else { 0.0 };
                    let z: f64 = StandardNormal.sample(rng);
                    let step = gain * hit * z * u * MUTATION_SIGMA;
                    let v = hyp.get(k).unwrap_or(0.0);
                    if evolve_zeros && v == 0.0 && gain > 0.0 {
                        // multiplication cannot move a zero: step additively by a fraction of the range
                        let nv = (step.abs() * (high - low)).clamp(low, high);
                        if nv != 0.0 {
                            any = true;
                            changes.push((k.to_string(), f64::INFINITY));
                            let _ = next.set(k, nv.min(high));
                        }
                        continue;
                    }
                    let factor = (step + 1.0).clamp(FACTOR_CLIP.0, FACTOR_CLIP.1);
                    if factor != 1.0 {
                        any = true;
                        changes.push((k.to_string(), factor));
                    }
                    // out-of-range values are constrained below; set() checks the training range, so clamp here
                    let _ = next.set(k, v * factor).or_else(|_| next.set(k, (v * factor).clamp(low, high)));
                }
                if any {
                    hyp = next;
                    break;
                }
            }
        }
    }
    constrain(&mut hyp, space);
    (hyp, changes)
}

/// Settings of the population GA (PR #11348; constants as in YOLOv5).
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationSettings {
    /// Individuals per generation. Default 50.
    pub size: usize,
    /// Mutation rate range (falls over the run). Default 0.01–0.5.
    pub mutation: (f64, f64),
    /// Crossover rate range (falls over the run). Default 0.5–1.
    pub crossover: (f64, f64),
    /// Elite size range. Default 2–5.
    pub elite: (usize, usize),
    /// Tournament size range. Default 2–10.
    pub tournament: (usize, usize),
}

impl Default for PopulationSettings {
    fn default() -> Self {
        PopulationSettings {
            size: 50,
            mutation: (0.01, 0.5),
            crossover: (0.5, 1.0),
            elite: (2, 5),
            tournament: (2, 10),
        }
    }
}

/// The next population from scored individuals (tournament selection, elitism, single-point crossover,
/// additive uniform mutation clipped to the limits). `generation` of `gens` sets the rates.
pub(crate) fn population_next(
    pop: &[Vec<f64>],
    scores: &[f64],
    ranges: &[(f64, f64)],
    generation: usize,
    gens: usize,
    s: &PopulationSettings,
    rng: &mut impl Rng,
) -> Vec<Vec<f64>> {
    let n = pop.len();
    let frac = generation as f64 / gens.max(1) as f64;
    let elite = (s.elite.0 + (3.0 * frac) as usize).min(s.elite.1);
    let tsize = ((s.tournament.1.min(n) as f64 - generation as f64 / (gens.max(1) as f64 / 10.0)) as usize)
        .max(s.tournament.0)
        .min(n);
    if n == 0 {
        return vec![];
    }
    let mut selected: Vec<usize> = (0..n.saturating_sub(elite))
        .map(|_| {
            let mut idx: Vec<usize> = (0..n).collect();
            rand::seq::SliceRandom::shuffle(idx.as_mut_slice(), rng);
            idx.truncate(tsize.max(1));
            *idx.iter().max_by(|&&a, &&b| scores[a].total_cmp(&scores[b])).expect("non-empty")
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    if let Some(&cut) = order.get(elite.saturating_sub(1)) {
        let thr = scores[cut];
        selected.extend((0..n).filter(|&i| scores[i] >= thr));
    }
    if selected.is_empty() {
        selected = (0..n).collect();
    }
    let crossover = s.crossover.0.max(s.crossover.1.min(1.0 - frac));
    let mutation = s.mutation.0.max(s.mutation.1.min(0.5 - frac));
    let ng = ranges.len();
    (0..n)
        .map(|_| {
            let p1 = &pop[selected[rng.random_range(0..selected.len())]];
            let p2 = &pop[selected[rng.random_range(0..selected.len())]];
            let mut child = if ng > 1 && rng.random::<f64>() < crossover {
                let cp = rng.random_range(1..ng);
                p1[..cp].iter().chain(&p2[cp..]).copied().collect()
            } else {
                p1.clone()
            };
            for (v, &(lo, hi)) in child.iter_mut().zip(ranges) {
                if rng.random::<f64>() < mutation {
                    *v = (*v + rng.random_range(-0.1..0.1)).clamp(lo, hi);
                }
            }
            child
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::csv::METRIC_KEYS;
    use super::*;
    use rand::SeedableRng;

    fn yolov5_fitness(r: &[f64; 7]) -> f64 {
        crate::metrics::fitness(&r[..4])
    }

    #[test]
    fn parent_selection_follows_the_weights() {
        let w = [0.5, 0.3, 0.15, 0.05];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        let mut counts = [0usize; 4];
        let n = 100_000;
        for _ in 0..n {
            counts[weighted_choice(&w, &mut rng)] += 1;
        }
        for (c, wi) in counts.iter().zip(w) {
            assert!((*c as f64 / n as f64 - wi).abs() < 0.01, "{counts:?}");
        }
    }

    /// A table of previous generations around the default hyperparameters.
    fn table(rows: usize) -> EvolveCsv {
        let mut h = Hyp::default();
        h.set("anchors", 3.0).unwrap();
        let mut columns: Vec<String> = METRIC_KEYS.iter().map(|s| s.to_string()).collect();
        columns.extend(h.keys().map(String::from));
        let rows = (0..rows)
            .map(|i| {
                let mut r = vec![0.5, 0.5, 0.1 * i as f64, 0.05 * i as f64, 0.1, 0.1, 0.1];
                r.extend(h.iter().map(|(_, v)| v));
                r
            })
            .collect();
        EvolveCsv { columns, rows }
    }

    #[test]
    fn mutation_respects_factors_gains_limits_and_rounding() {
        let mut base = Hyp::default();
        base.set("anchors", 3.0).unwrap();
        let space = Space::default().bounds("lr0", 0.005, 0.012);
        let prev = table(6);
        for seed in 0..300 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (h, changes) = classic_next(&base, &prev, &yolov5_fitness, &space, Parent::Single, false, &mut rng);
            assert!(!changes.is_empty(), "mutates until something changes");
            for (k, f) in &changes {
                assert!((FACTOR_CLIP.0..=FACTOR_CLIP.1).contains(f), "{k} ×{f}");
                let g = space.gene(k).unwrap();
                assert!(g.gain > 0.0, "gain-0 key {k} changed");
            }
            for k in ["iou_t", "fl_gamma", "perspective", "fliplr"] {
                assert_eq!(h.get(k), base.get(k), "{k} has gain 0");
            }
            for (k, g) in space.genes() {
                let v = h.get(k).unwrap();
                assert!(v >= g.low && v <= g.high, "{k} = {v} outside [{}, {}]", g.low, g.high);
                assert_eq!(v, round5(v), "{k} = {v} not rounded to 5 decimals");
            }
            // multiplicative mutation never moves a zero
            assert_eq!((h.degrees, h.shear, h.mixup), (0.0, 0.0, 0.0));
        }
        // with evolve_zeros, zeros can move
        let moved = (0..100).any(|seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (h, _) = classic_next(&base, &prev, &yolov5_fitness, &space, Parent::Single, true, &mut rng);
            h.degrees > 0.0 || h.mixup > 0.0
        });
        assert!(moved);
        // the first generation is the base, constrained
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let (h, changes) =
            classic_next(&base, &EvolveCsv::default(), &yolov5_fitness, &space, Parent::Single, false, &mut rng);
        assert!(changes.is_empty());
        assert_eq!(h.lr0, 0.01);
        assert_eq!(round5(0.123456789), 0.12346);
    }

    #[test]
    fn a_degenerate_population_never_panics() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let one = population_next(&[vec![0.5]], &[0.1], &[(0.0, 1.0)], 0, 1, &Default::default(), &mut rng);
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn rounding_and_weights() {
        assert_eq!(round5(0.0123456), 0.01235);
        assert_eq!(round5(3.0), 3.0);
        let w = parent_weights(&[0.5, 0.3, 0.3]);
        assert!((w[0] - 0.200001).abs() < 1e-12 && (w[2] - 1e-6).abs() < 1e-15);
        assert_eq!(top_rows(&[0.1, 0.9, 0.5], 2), vec![1, 2]);
    }
}
