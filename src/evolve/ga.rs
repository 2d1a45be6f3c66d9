//! The genetic algorithms of `train.py --evolve`: the classic single-parent multiplicative mutation (YOLOv5
//! v1–v7.0, still in segment/train.py) and the population GA (PR #11348).

use super::csv::EvolveCsv;
use super::meta::{Gene, GeneKind, Space};
use super::structure::{Genome, is_structural, snap};
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

/// Clamp every gene to its limits, round floats to 5 decimals and move integers and choices onto their grid
/// (runs every generation).
pub(crate) fn constrain(g: &mut Genome, space: &Space) {
    for (k, gene) in space.genes() {
        if let Some(v) = g.get(k) {
            let v = match gene.kind {
                GeneKind::Float => round5(v.max(gene.low).min(gene.high)),
                kind => snap(kind, v, gene.low, gene.high),
            };
            let _ = g.set(k, v);
        }
    }
}

/// The classic GA's next genome. `previous` holds earlier generations (by column name) and `scores` their
/// selection scores (the fitness, or the Pareto order of several objectives); `base` gives the key order
/// and values for columns the file lacks. Returns the genome and the factor applied to each mutated key
/// (infinite for a key that moved from 0).
pub(crate) fn classic_next(
    base: &Genome,
    previous: &EvolveCsv,
    scores: &[f64],
    space: &Space,
    parent: Parent,
    evolve_zeros: bool,
    rng: &mut impl Rng,
) -> (Genome, Vec<(String, f64)>) {
    let mut genome = base.clone();
    let mut changes = Vec::new();
    if !previous.rows.is_empty() {
        let top = top_rows(scores, TOP_PARENTS);
        let w = parent_weights(&top.iter().map(|&i| scores[i]).collect::<Vec<_>>());
        let value = |row: usize, key: &str| previous.col(key).map(|c| previous.rows[row][c]).filter(|v| v.is_finite());
        let chosen = top[weighted_choice(&w, rng)];
        let keys = base.keys();
        for k in &keys {
            let d = base.get(k).unwrap_or(0.0);
            let kind = space.gene(k).map_or(GeneKind::Float, |g| g.kind);
            let v = if parent == Parent::Weighted && top.len() > 1 && kind == GeneKind::Float {
                let total: f64 = w.iter().sum();
                top.iter().zip(&w).map(|(&r, wi)| value(r, k).unwrap_or(d) * wi).sum::<f64>() / total
            } else {
                // integers and choices come from one parent even when floats are averaged
                value(chosen, k).unwrap_or(d)
            };
            let _ = genome.set(k, v);
        }
        // mutate until at least one gene changes (YOLOv5: "prevent duplicates")
        let genes: Vec<(&str, Gene)> = keys.iter().filter_map(|k| space.gene(k).map(|g| (k.as_str(), *g))).collect();
        if genes.iter().any(|g| g.1.gain > 0.0) {
            loop {
                let u: f64 = rng.random();
                changes.clear();
                let mut next = genome.clone();
                for &(k, g) in &genes {
                    let hit = if rng.random::<f64>() < MUTATION_PROB { 1.0 } else { 0.0 };
                    let z: f64 = StandardNormal.sample(rng);
                    let step = g.gain * hit * z * u * MUTATION_SIGMA;
                    let v = genome.get(k).unwrap_or(0.0);
                    let moved = match g.kind {
                        // an additive step of gain·hit·z·u of the range (a third of it on average), on the grid
                        GeneKind::Integer { .. } => {
                            snap(g.kind, v + step / MUTATION_SIGMA * (g.high - g.low), g.low, g.high)
                        }
                        GeneKind::Choice => {
                            let options: Vec<f64> = (g.low.ceil() as i64..=g.high.floor() as i64)
                                .map(|c| c as f64)
                                .filter(|&c| c != v)
                                .collect();
                            // a jump with probability hit · u · gain / 2 (about one generation in five)
                            if options.is_empty() || rng.random::<f64>() >= hit * u * g.gain.min(2.0) / 2.0 {
                                v
                            } else {
                                options[rng.random_range(0..options.len())]
                            }
                        }
                        // a structural multiple moves additively across its range, as integers do: YOLOv5's
                        // few-percent factors would leave a model's width where it started
                        GeneKind::Float if is_structural(k) => {
                            (v + step / MUTATION_SIGMA * (g.high - g.low)).clamp(g.low, g.high)
                        }
                        GeneKind::Float if evolve_zeros && v == 0.0 && g.gain > 0.0 => {
                            // multiplication cannot move a zero: step additively by a fraction of the range
                            (step.abs() * (g.high - g.low)).clamp(g.low, g.high)
                        }
                        GeneKind::Float => {
                            let factor = (step + 1.0).clamp(FACTOR_CLIP.0, FACTOR_CLIP.1);
                            if factor != 1.0 {
                                changes.push((k.to_string(), factor));
                            }
                            // out-of-range values are constrained below; set() checks the training range
                            let _ = next.set(k, v * factor).or_else(|_| next.set(k, (v * factor).clamp(g.low, g.high)));
                            continue;
                        }
                    };
                    if moved != v {
                        changes.push((k.to_string(), if v == 0.0 { f64::INFINITY } else { moved / v }));
                        let _ = next.set(k, moved);
                    }
                }
                if !changes.is_empty() {
                    genome = next;
                    break;
                }
            }
        }
    }
    constrain(&mut genome, space);
    (genome, changes)
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
/// additive uniform mutation clipped to the limits: ±0.1 for floats as YOLOv5, ±10% of the range for
/// integers, any choice for choices). `generation` of `gens` sets the rates.
#[allow(clippy::too_many_arguments)]
pub(crate) fn population_next(
    pop: &[Vec<f64>],
    scores: &[f64],
    ranges: &[(f64, f64)],
    kinds: &[GeneKind],
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
            for ((v, &(lo, hi)), &kind) in child.iter_mut().zip(ranges).zip(kinds) {
                if rng.random::<f64>() < mutation {
                    *v = match kind {
                        GeneKind::Float => (*v + rng.random_range(-0.1..0.1)).clamp(lo, hi),
                        GeneKind::Integer { .. } => snap(kind, *v + rng.random_range(-0.1..0.1) * (hi - lo), lo, hi),
                        GeneKind::Choice => snap(kind, rng.random_range(lo..=hi), lo, hi),
                    };
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
    use crate::hyp::Hyp;
    use rand::SeedableRng;

    fn yolov5_fitness(t: &EvolveCsv) -> Vec<f64> {
        (0..t.rows.len()).map(|i| crate::metrics::fitness(&t.results(i)[..4])).collect()
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
        let mut hyp = Hyp::default();
        hyp.set("anchors", 3.0).unwrap();
        let base = Genome { hyp, structure: vec![] };
        let space = Space::default().bounds("lr0", 0.005, 0.012);
        let prev = table(6);
        for seed in 0..300 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (g, changes) =
                classic_next(&base, &prev, &yolov5_fitness(&prev), &space, Parent::Single, false, &mut rng);
            let h = g.hyp;
            assert!(!changes.is_empty(), "mutates until something changes");
            for (k, f) in &changes {
                assert!((FACTOR_CLIP.0..=FACTOR_CLIP.1).contains(f), "{k} ×{f}");
                let g = space.gene(k).unwrap();
                assert!(g.gain > 0.0, "gain-0 key {k} changed");
            }
            for k in ["iou_t", "fl_gamma", "perspective", "fliplr"] {
                assert_eq!(h.get(k), base.hyp.get(k), "{k} has gain 0");
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
            let (g, _) = classic_next(&base, &prev, &yolov5_fitness(&prev), &space, Parent::Single, true, &mut rng);
            let h = g.hyp;
            h.degrees > 0.0 || h.mixup > 0.0
        });
        assert!(moved);
        // the first generation is the base, constrained
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let (g, changes) = classic_next(&base, &EvolveCsv::default(), &[], &space, Parent::Single, false, &mut rng);
        assert!(changes.is_empty());
        assert_eq!(g.hyp.lr0, 0.01);
        assert_eq!(round5(0.123456789), 0.12346);
    }

    #[test]
    fn a_degenerate_population_never_panics() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let one = population_next(
            &[vec![0.5]],
            &[0.1],
            &[(0.0, 1.0)],
            &[GeneKind::Float],
            0,
            1,
            &Default::default(),
            &mut rng,
        );
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
