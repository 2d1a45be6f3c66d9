//! evolve.csv as a table (polars DataFrame) with the analyses users ask for: best and top rows, per-key
//! summaries, importance of each hyperparameter, the best hyp exported. Reads files written by yolo-lab and by
//! YOLOv5 (both pad every cell to 20 characters; columns are matched by name).

use crate::error::{Error, Result};
use crate::evolve::Fitness;
use crate::evolve::csv::{EvolveCsv, METRIC_KEYS};
use crate::hyp::Hyp;
use polars::prelude::*;
use std::path::{Path, PathBuf};

mod pareto;
pub use pareto::Trial;

/// The spread of one candidate's fitness over its trainings with different seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// Trainings.
    pub n: usize,
    /// Mean fitness.
    pub mean: f64,
    /// Standard deviation of one training's fitness (the run-to-run noise).
    pub sd: f64,
    /// Standard error of the mean.
    pub se: f64,
}

impl Noise {
    /// Mean, sample standard deviation (n − 1) and standard error of some fitnesses; sd and se are NaN for one.
    pub fn of(fitness: &[f64]) -> Self {
        let n = fitness.len() as f64;
        let mean = fitness.iter().sum::<f64>() / n;
        let sd = (fitness.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        Noise { n: fitness.len(), mean, sd, se: sd / n.sqrt() }
    }
}

impl std::fmt::Display for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fitness {:.5} ± {:.5} (sd of one training {:.5}, {} trainings)", self.mean, self.se, self.sd, self.n)
    }
}

/// An evolution's results.
#[derive(Debug, Clone)]
pub struct EvolveResults {
    /// The evolve.csv read.
    pub path: PathBuf,
    table: EvolveCsv,
    fitness: Vec<f64>,
    scorer: Fitness,
    /// Re-evaluations: row → the row it repeats (generations.csv beside evolve.csv; empty without it).
    repeats: std::collections::BTreeMap<usize, usize>,
    /// Measured objectives per row (generations.csv; empty without it).
    measured: std::collections::BTreeMap<usize, crate::evolve::Measured>,
    /// The generation of each row (generations.csv's labels, or [`EvolveResults::with_population`]).
    generations: std::collections::BTreeMap<usize, String>,
}

fn polars_err(e: PolarsError) -> Error {
    Error::Table(e.to_string())
}

/// Average ranks (ties share their mean rank), 0-based.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va <= 0.0 || vb <= 0.0 { 0.0 } else { cov / (va * vb).sqrt() }
}

/// Spearman's rank correlation.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// Bins of the rank-based correlation ratio.
pub const ETA_BINS: usize = 5;

/// Correlation ratio η² of fitness ranks explained by quantile bins of `x`: the share of the variance of the
/// fitness ranks that lies between bins of the hyperparameter. Unlike a rank correlation it also sees
/// peaked (non-monotone) effects — an optimum in the middle of the range — which evolution tends to find;
/// ranks make it insensitive to outlier fitness values and to how the hyperparameter is scaled.
pub fn rank_eta_squared(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    if n < 2 {
        return 0.0;
    }
    let ry = ranks(y);
    let rx = ranks(x);
    let distinct = {
        let mut v = x.to_vec();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v.len()
    };
    if distinct < 2 {
        return 0.0;
    }
    let bins = ETA_BINS.min(distinct);
    let bin_of = |r: f64| ((r / n as f64 * bins as f64) as usize).min(bins - 1);
    let mean = ry.iter().sum::<f64>() / n as f64;
    let total: f64 = ry.iter().map(|v| (v - mean).powi(2)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let mut sums = vec![(0.0, 0usize); bins];
    for (r, v) in rx.iter().zip(&ry) {
        let b = bin_of(*r);
        sums[b].0 += v;
        sums[b].1 += 1;
    }
    let between: f64 =
        sums.iter().filter(|(_, c)| *c > 0).map(|(s, c)| *c as f64 * (s / *c as f64 - mean).powi(2)).sum();
    between / total
}

impl crate::evolve::EvolveRun {
    /// evolve.csv as a polars-backed table (same as `EvolveResults::load`), under this evolution's fitness.
    /// The evolver draws nothing; `run.results()?.plot_evolve()` draws YOLOv5's evolve.png.
    pub fn results(&self) -> Result<EvolveResults> {
        EvolveResults::load_with(self.dir.join("evolve.csv"), &self.fitness)
    }
}

impl EvolveResults {
    /// Load with YOLOv5's fitness (0.1·mAP@0.5 + 0.9·mAP@0.5:0.95).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(path, &Fitness::Weights(crate::metrics::FITNESS_WEIGHTS))
    }

    /// An experiment of a PostgreSQL store (the same table as its `evolve-export`'s evolve.csv), with the
    /// experiment's fitness weights. The files are written to `<temp dir>/yolo-lab-export/<name>/` first.
    pub fn from_storage(url: &str, name: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join("yolo-lab-export").join(name);
        let weights = crate::evolve::store::join::export(url, name, &dir)?;
        Self::load_with(dir.join("evolve.csv"), &Fitness::Weights(weights))
    }

    /// Load with another fitness.
    pub fn load_with(path: impl AsRef<Path>, fitness: &Fitness) -> Result<Self> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no evolve.csv")));
        }
        let table = crate::evolve::csv::read(path)?;
        if table.columns.is_empty() {
            return Err(Error::DataConfig { path: path.into(), message: "empty evolve.csv".into() });
        }
        for k in METRIC_KEYS {
            if table.col(k).is_none() {
                return Err(Error::DataConfig { path: path.into(), message: format!("column `{k}` missing") });
            }
        }
        let mut r = Self::from_csv(&table, path, fitness);
        if let Some(dir) = path.parent() {
            r.repeats = crate::evolve::csv::repeats(dir)?;
            r.measured = crate::evolve::csv::measured(dir)?;
            r.generations = crate::evolve::csv::rows_with(dir, "generation")?.into_iter().collect();
        }
        Ok(r)
    }

    /// From a parsed table.
    pub fn from_csv(table: &EvolveCsv, path: impl Into<PathBuf>, fitness: &Fitness) -> Self {
        let f = (0..table.rows.len()).map(|i| fitness.eval(&table.results(i))).collect();
        EvolveResults {
            path: path.into(),
            table: table.clone(),
            fitness: f,
            scorer: fitness.clone(),
            repeats: Default::default(),
            measured: Default::default(),
            generations: Default::default(),
        }
    }

    /// Every candidate (a row that is not a re-evaluation) with its trainings: `row`, `n` (trainings), `mean`
    /// fitness and its standard error `se` (NaN with one training).
    pub fn candidates(&self) -> Result<DataFrame> {
        let (mut rows, mut ns, mut means, mut ses) = (vec![], vec![], vec![], vec![]);
        for (row, n, mean, se) in self.groups() {
            rows.push(row as u32);
            ns.push(n as u32);
            means.push(mean);
            ses.push(se);
        }
        DataFrame::new_infer_height(vec![
            Column::new("row".into(), rows),
            Column::new("n".into(), ns),
            Column::new("mean".into(), means),
            Column::new("se".into(), ses),
        ])
        .map_err(polars_err)
    }

    /// (row, trainings, mean fitness, standard error) per candidate, in row order.
    fn groups(&self) -> Vec<(usize, usize, f64, f64)> {
        (0..self.len())
            .filter(|r| !self.repeats.contains_key(r))
            .map(|r| {
                let f: Vec<f64> = std::iter::once(r)
                    .chain(self.repeats.iter().filter(|&(_, c)| *c == r).map(|(x, _)| *x))
                    .filter(|&x| x < self.len())
                    .map(|x| self.fitness[x])
                    .collect();
                let n = Noise::of(&f);
                (r, n.n, n.mean, n.se)
            })
            .collect()
    }

    /// What pruning did (generations.csv beside evolve.csv): per row its fitness, the epochs it trained and the
    /// epoch it was pruned at (null when it trained to the end).
    pub fn pruning(&self) -> Result<DataFrame> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let epochs: std::collections::BTreeMap<usize, u32> = crate::evolve::csv::rows_with(dir, "epochs")?
            .into_iter()
            .filter_map(|(r, v)| Some((r, v.parse().ok()?)))
            .collect();
        let pruned: std::collections::BTreeMap<usize, u32> = crate::evolve::csv::rows_with(dir, "pruned_at_epoch")?
            .into_iter()
            .filter_map(|(r, v)| Some((r, v.parse().ok()?)))
            .collect();
        let rows: Vec<usize> = (0..self.len()).collect();
        DataFrame::new_infer_height(vec![
            Column::new("row".into(), rows.iter().map(|&r| r as u32).collect::<Vec<_>>()),
            Column::new("fitness".into(), self.fitness.clone()),
            Column::new("epochs".into(), rows.iter().map(|r| epochs.get(r).copied()).collect::<Vec<_>>()),
            Column::new("pruned_at_epoch".into(), rows.iter().map(|r| pruned.get(r).copied()).collect::<Vec<_>>()),
        ])
        .map_err(polars_err)
    }

    /// Run-to-run noise of the base hyperparameters: row 0 and its re-evaluations (`Evolver::reevaluate`);
    /// None when the base was trained once.
    pub fn noise(&self) -> Option<Noise> {
        let (_, n, mean, se) = self.groups().into_iter().find(|g| g.0 == 0)?;
        (n > 1).then(|| Noise { n, mean, sd: se * (n as f64).sqrt(), se })
    }

    /// The fitness the rows are scored with.
    pub fn scorer(&self) -> &Fitness {
        &self.scorer
    }

    /// Rows (trainings).
    pub fn len(&self) -> usize {
        self.table.rows.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.table.rows.is_empty()
    }

    /// Fitness of every row.
    pub fn fitness(&self) -> &[f64] {
        &self.fitness
    }

    /// Hyperparameter column names in file order.
    pub fn keys(&self) -> Vec<String> {
        self.table.hyp_columns().into_iter().map(String::from).collect()
    }

    /// Values of a column by name.
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let c = self.table.col(name)?;
        Some(self.table.rows.iter().map(|r| r[c]).collect())
    }

    /// Label the rows of a population-GA file without generations.csv (YOLOv5's own files): row `r` is of
    /// generation `r / size` (YOLOv5 calls the row index a "generation"; its population GA trains `size`
    /// individuals per generation, 50 in YOLOv5).
    pub fn with_population(mut self, size: usize) -> Self {
        self.generations = (0..self.len()).map(|r| (r, (r / size.max(1)).to_string())).collect();
        self
    }

    /// The whole table: `row` (the row index, which YOLOv5 calls the generation), `generation` when it is
    /// known (generations.csv beside the file: `3`, or `2.17` for individual 17 of population generation 2;
    /// or [`EvolveResults::with_population`]), `fitness`, the 7 results and the genes, all Float64 except `row`
    /// and `generation`, with clean (trimmed) names.
    pub fn df(&self) -> Result<DataFrame> {
        let mut cols = vec![Column::new("row".into(), (0..self.len() as i64).collect::<Vec<i64>>())];
        if !self.generations.is_empty() {
            let labels: Vec<Option<String>> = (0..self.len()).map(|r| self.generations.get(&r).cloned()).collect();
            cols.push(Column::new("generation".into(), labels));
        }
        cols.push(Column::new("fitness".into(), self.fitness.clone()));
        for (j, name) in self.table.columns.iter().enumerate() {
            cols.push(Column::new(name.as_str().into(), self.table.rows.iter().map(|r| r[j]).collect::<Vec<f64>>()));
        }
        DataFrame::new_infer_height(cols).map_err(polars_err)
    }

    /// An error naming the file when there is no row to draw or rank.
    pub(crate) fn require_rows(&self) -> Result<()> {
        if self.is_empty() {
            return Err(Error::DataConfig { path: self.path.clone(), message: "no complete rows yet".into() });
        }
        Ok(())
    }

    /// Row with the highest fitness (the first of equals; rows whose fitness is not a number never win).
    pub fn best_row(&self) -> usize {
        crate::evolve::top_rows(&self.fitness, 1).first().copied().unwrap_or(0)
    }

    /// The best row as a one-row DataFrame.
    pub fn best(&self) -> Result<DataFrame> {
        self.top(1)
    }

    /// The `k` best rows, best first.
    pub fn top(&self, k: usize) -> Result<DataFrame> {
        let df = self.df()?;
        let idx = crate::evolve::top_rows(&self.fitness, k);
        let take = IdxCa::from_vec("idx".into(), idx.iter().map(|&i| i as IdxSize).collect());
        df.take(&take).map_err(polars_err)
    }

    /// The hyperparameters of a row.
    pub fn hyp(&self, row: usize) -> Result<Hyp> {
        let r = self.table.rows.get(row).ok_or_else(|| Error::Config {
            name: "row",
            message: format!("{row} is beyond the {} rows", self.len()),
        })?;
        let mut h = Hyp::default();
        for k in self.table.hyp_columns().into_iter().filter(|k| !crate::evolve::structure::is_structural(k)) {
            let v = r[self.table.col(k).expect("listed")];
            h.set(k, v)
                .map_err(|e| Error::DataConfig { path: self.path.clone(), message: format!("row {row}: {e}") })?;
        }
        Ok(h)
    }

    /// The structural genes of a row (empty when the evolution had none), as (key, value).
    pub fn structure(&self, row: usize) -> Result<Vec<(String, f64)>> {
        self.hyp(row)?; // names a row beyond the table
        let r = &self.table.rows[row];
        Ok(self
            .table
            .hyp_columns()
            .into_iter()
            .filter(|k| crate::evolve::structure::is_structural(k))
            .map(|k| (k.to_string(), r[self.table.col(k).expect("listed")]))
            .collect())
    }

    /// The trainer that trains a row again: `base` with the row's hyperparameters and structural genes.
    pub fn trainer(&self, row: usize, base: crate::train::Trainer) -> Result<crate::train::Trainer> {
        let hyp = self.hyp(row)?;
        Ok(crate::evolve::structure::apply(base, &self.structure(row)?).hyp(hyp))
    }

    /// Per hyperparameter: value in the best row, mean, std, min, max, and whether it ever changed.
    pub fn summary(&self) -> Result<DataFrame> {
        let best = self.best_row();
        let keys = self.keys();
        let (mut b, mut mean, mut std, mut min, mut max, mut changed) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for k in &keys {
            let v = self.column(k).unwrap_or_default();
            let n = v.len().max(1) as f64;
            let m = v.iter().sum::<f64>() / n;
            let sd = if v.len() > 1 {
                (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
            } else {
                0.0
            };
            let (lo, hi) = (v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(f64::MIN, f64::max));
            b.push(v.get(best).copied().unwrap_or(f64::NAN));
            mean.push(m);
            std.push(sd);
            min.push(lo);
            max.push(hi);
            changed.push(hi > lo);
        }
        DataFrame::new_infer_height(vec![
            Column::new("key".into(), keys),
            Column::new("best".into(), b),
            Column::new("mean".into(), mean),
            Column::new("std".into(), std),
            Column::new("min".into(), min),
            Column::new("max".into(), max),
            Column::new("changed".into(), changed),
        ])
        .map_err(polars_err)
    }

    /// Importance of each hyperparameter for fitness: Spearman's rank correlation (direction and strength of
    /// a monotone effect) and the rank correlation ratio η² (any effect, including an optimum inside the
    /// range; see [`rank_eta_squared`]). Sorted by η², largest first; keys that never changed score 0.
    pub fn importance(&self) -> Result<DataFrame> {
        let mut rows: Vec<(String, f64, f64)> = self
            .keys()
            .into_iter()
            .map(|k| {
                let v = self.column(&k).unwrap_or_default();
                (k, spearman(&v, &self.fitness), rank_eta_squared(&v, &self.fitness))
            })
            .collect();
        rows.sort_by(|a, b| b.2.total_cmp(&a.2));
        DataFrame::new_infer_height(vec![
            Column::new("key".into(), rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>()),
            Column::new("spearman".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            Column::new("eta2_rank".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        ])
        .map_err(polars_err)
    }

    /// Write the best row as a hyp_evolve.yaml (YOLOv5's header, then the hyperparameters).
    pub fn save_best_yaml(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_row_yaml(self.best_row(), path)
    }

    /// Write any row as a hyp_evolve.yaml (e.g. the knee of a Pareto front).
    pub fn save_row_yaml(&self, row: usize, path: impl AsRef<Path>) -> Result<()> {
        self.hyp(row)?; // names a row beyond the table
        let text = crate::evolve::csv::hyp_evolve_yaml_row(&self.table, row).unwrap_or_default();
        crate::fsutil::write_atomic(path.as_ref(), text.as_bytes())
    }
}
