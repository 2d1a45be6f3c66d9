//! Does the evolution's budget rank hyperparameters the way the full schedule would? An evolution usually
//! trains each generation for a few epochs (YOLOv5's users ask how many: ultralytics/yolov5 #13083, #9537;
//! "good in the first 10 epochs ≠ good in full training", #6345). [`EvolveResults::fidelity`] retrains the
//! `k` best rows and `k` other rows drawn at random with the full schedule and reports Spearman's ρ between
//! the fitness each row reached in the evolution and the fitness it reaches in full: near 1, the short budget
//! ranks correctly; near 0 or below, the evolution is ranking noise.

use crate::data::{Stream, rng_for};
use crate::error::Result;
use crate::results::{EvolveResults, spearman};
use crate::train::Trainer;
use rand::seq::SliceRandom;
use std::fmt;

/// One retrained row.
#[derive(Debug, Clone, PartialEq)]
pub struct FidelityRow {
    /// Row of evolve.csv.
    pub row: usize,
    /// Why it was chosen: `"top"` or `"random"`.
    pub chosen: &'static str,
    /// Its fitness in the evolution (the short budget).
    pub short: f64,
    /// Its fitness after the full schedule.
    pub full: f64,
}

/// What [`EvolveResults::fidelity`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Fidelity {
    /// The retrained rows, top ones first.
    pub rows: Vec<FidelityRow>,
    /// Spearman's ρ between short and full fitness over all of them.
    pub rho: f64,
    /// Epochs of the full schedule.
    pub full_epochs: usize,
}

impl fmt::Display for Fidelity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>6} {:>7} {:>10} {:>10}", "row", "chosen", "short", "full")?;
        for r in &self.rows {
            writeln!(f, "{:>6} {:>7} {:>10.5} {:>10.5}", r.row, r.chosen, r.short, r.full)?;
        }
        write!(f, "Spearman's rho {:.3} over {} rows ({} epochs in full)", self.rho, self.rows.len(), self.full_epochs)
    }
}

impl Fidelity {
    /// The rows as a DataFrame (`row`, `chosen`, `short`, `full`), for notebooks.
    pub fn df(&self) -> Result<polars::prelude::DataFrame> {
        use polars::prelude::*;
        let col = |name: &str, v: Vec<f64>| Column::new(name.into(), v);
        DataFrame::new_infer_height(vec![
            Column::new("row".into(), self.rows.iter().map(|r| r.row as u32).collect::<Vec<_>>()),
            Column::new("chosen".into(), self.rows.iter().map(|r| r.chosen).collect::<Vec<_>>()),
            col("short", self.rows.iter().map(|r| r.short).collect()),
            col("full", self.rows.iter().map(|r| r.full).collect()),
        ])
        .map_err(|e| crate::Error::Table(e.to_string()))
    }
}

impl EvolveResults {
    /// Retrain the `k` fittest rows and `k` others drawn at random (seeded by `seed`) with `full`, the full
    /// schedule (typically the evolution's base trainer with more epochs), and compare the rankings. Each
    /// retraining runs `full` with the row's hyperparameters; `full`'s own outputs (run folders) are kept.
    pub fn fidelity(&self, full: &Trainer, k: usize, seed: u64) -> Result<Fidelity> {
        let top = crate::evolve::top_rows(self.fitness(), k.min(self.len()));
        let mut rest: Vec<usize> = (0..self.len()).filter(|r| !top.contains(r)).collect();
        rest.shuffle(&mut rng_for(seed, Stream::Fidelity, &[]));
        rest.truncate(k);
        let mut rows = Vec::with_capacity(top.len() + rest.len());
        let chosen = top.iter().map(|&r| (r, "top")).chain(rest.iter().map(|&r| (r, "random")));
        let report = full.report();
        for (i, (row, why)) in chosen.enumerate() {
            // one line per retrained row (below) instead of each training's epoch lines
            let t = self.trainer(row, full.clone())?.name(format!("fidelity-row{row}"));
            let run = t.progress(crate::train::ProgressMode::Silent).fit()?;
            let r = run
                .final_val
                .as_ref()
                .map(|v| [v.metrics[0], v.metrics[1], v.metrics[2], v.metrics[3], v.loss[0], v.loss[1], v.loss[2]]);
            let score = r.map(|r| self.scorer().eval(&r)).unwrap_or(0.0);
            report.summary(&format!(
                "fidelity: {}/{} row {row} ({why}): {:.5} in the evolution, {score:.5} in full",
                i + 1,
                top.len() + rest.len(),
                self.fitness()[row]
            ));
            rows.push(FidelityRow { row, chosen: why, short: self.fitness()[row], full: score });
        }
        let (s, f): (Vec<f64>, Vec<f64>) = rows.iter().map(|r| (r.short, r.full)).unzip();
        Ok(Fidelity { rho: spearman(&s, &f), rows, full_epochs: full.epochs })
    }
}
