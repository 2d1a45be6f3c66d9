//! The multi-objective view of an evolution: every candidate's measurements (generations.csv), the Pareto
//! front of any objectives, its knee, and helpers that pick one candidate ("fastest within 95% of the best
//! fitness").

use super::{EvolveResults, polars_err};
use crate::error::{Error, Result};
use crate::evolve::objective::{self, Measured, Objective};
use crate::evolve::pareto::fronts;
use polars::prelude::*;

/// One candidate of an evolution: its row, mean fitness over its trainings and measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    /// Its evolve.csv row.
    pub row: usize,
    /// Mean fitness (over re-evaluations, when there are any).
    pub fitness: f64,
    /// Speed, size, memory, latency (NaN where not measured).
    pub measured: Measured,
}

impl Trial {
    /// The value of an objective.
    pub fn value(&self, o: Objective) -> f64 {
        self.measured.value(o, self.fitness)
    }
}

impl EvolveResults {
    /// The objectives the evolution optimised (objectives.txt beside evolve.csv); with fitness alone, or
    /// none recorded, fitness and training speed (always measured), the front of which is still worth a look.
    pub fn objectives(&self) -> Vec<Objective> {
        let dir = self.path.parent().unwrap_or(std::path::Path::new("."));
        match objective::stored(dir) {
            Ok(Some(o)) if objective::is_multi(&o) => o,
            _ => vec![Objective::Fitness, Objective::ImagesPerSecond],
        }
    }

    /// Every candidate (re-evaluation rows folded into the row they repeat).
    pub fn trials(&self) -> Vec<Trial> {
        self.groups()
            .into_iter()
            .map(|(row, _, fitness, _)| Trial {
                row,
                fitness,
                measured: self.measured.get(&row).copied().unwrap_or_default(),
            })
            .collect()
    }

    /// The candidates of the Pareto front of `objectives`, in the order of the first objective (best first).
    pub fn front(&self, objectives: &[Objective]) -> Vec<Trial> {
        let trials = self.trials();
        let points: Vec<Vec<f64>> =
            trials.iter().map(|t| objectives.iter().map(|&o| o.signed(t.value(o))).collect()).collect();
        let rank = fronts(&points);
        let mut front: Vec<Trial> = trials.into_iter().zip(rank).filter(|(_, r)| *r == 0).map(|(t, _)| t).collect();
        if let Some(&o) = objectives.first() {
            front.sort_by(|a, b| o.signed(b.value(o)).total_cmp(&o.signed(a.value(o))));
        }
        front
    }

    /// The knee of the front of `objectives`: the candidate closest to the ideal point (the best value of
    /// every objective) once each objective is scaled to 0..1 over the front. None without a front.
    pub fn knee(&self, objectives: &[Objective]) -> Option<Trial> {
        let front = self.front(objectives);
        let scaled: Vec<Vec<f64>> = objectives
            .iter()
            .map(|&o| {
                let v: Vec<f64> = front.iter().map(|t| o.signed(t.value(o))).collect();
                let (lo, hi) =
                    v.iter().filter(|x| x.is_finite()).fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
                v.iter().map(|x| if hi > lo { (x - lo) / (hi - lo) } else { 1.0 }).collect()
            })
            .collect();
        let gap = |i: usize| -> f64 { scaled.iter().map(|s| (1.0 - s[i]).powi(2)).sum::<f64>().sqrt() };
        (0..front.len()).filter(|&i| gap(i).is_finite()).min_by(|&a, &b| gap(a).total_cmp(&gap(b))).map(|i| front[i])
    }

    /// The Pareto front of the evolution's objectives ([`EvolveResults::objectives`]) as a DataFrame.
    pub fn pareto(&self) -> Result<DataFrame> {
        self.pareto_of(&self.objectives())
    }

    /// The Pareto front of `objectives`: `row`, `knee` (the knee's row is true), each objective's column, then
    /// the hyperparameters; in the order of the first objective.
    pub fn pareto_of(&self, objectives: &[Objective]) -> Result<DataFrame> {
        self.require_rows()?;
        if objectives.is_empty() {
            return Err(Error::Config { name: "objectives", message: "give at least one".into() });
        }
        let front = self.front(objectives);
        let knee = self.knee(objectives).map(|t| t.row);
        let mut cols = vec![
            Column::new("row".into(), front.iter().map(|t| t.row as u32).collect::<Vec<_>>()),
            Column::new("knee".into(), front.iter().map(|t| Some(t.row) == knee).collect::<Vec<_>>()),
        ];
        for &o in objectives {
            cols.push(Column::new(o.column().into(), front.iter().map(|t| t.value(o)).collect::<Vec<f64>>()));
        }
        for k in self.keys() {
            let c = self.table.col(&k).expect("a listed key");
            cols.push(Column::new(
                k.as_str().into(),
                front.iter().map(|t| self.table.rows[t.row][c]).collect::<Vec<f64>>(),
            ));
        }
        DataFrame::new_infer_height(cols).map_err(polars_err)
    }

    /// The candidate that is best by `by` among those `keep` accepts (None when it accepts none or `by`
    /// was not measured for them): `evo.pick(|t| t.measured.params < 2e6, Objective::Fitness)`.
    pub fn pick(&self, keep: impl Fn(&Trial) -> bool, by: Objective) -> Option<Trial> {
        self.trials()
            .into_iter()
            .filter(|t| keep(t) && t.value(by).is_finite())
            .max_by(|a, b| by.signed(a.value(by)).total_cmp(&by.signed(b.value(by))))
    }

    /// The fastest candidate whose fitness is at least `fraction` of the best (e.g. 0.95): lowest latency
    /// when latency was measured, else highest training speed.
    pub fn fastest_within(&self, fraction: f64) -> Option<Trial> {
        let trials = self.trials();
        let best = trials.iter().map(|t| t.fitness).filter(|f| f.is_finite()).fold(f64::MIN, f64::max);
        let by = if trials.iter().any(|t| t.measured.latency_ms.is_finite()) {
            Objective::Latency
        } else {
            Objective::ImagesPerSecond
        };
        self.pick(|t| t.fitness >= fraction * best, by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolve::csv::{EvolveCsv, METRIC_KEYS};

    /// Four candidates of (mAP@0.5:0.95, latency): the front is rows 0, 1, 2; row 3 is dominated by row 1.
    fn results() -> EvolveResults {
        let mut columns: Vec<String> = METRIC_KEYS.iter().map(|s| s.to_string()).collect();
        columns.push("lr0".into());
        let row = |m: f64| vec![0.0, 0.0, 0.0, m, 0.0, 0.0, 0.0, 0.01];
        let table = EvolveCsv { columns, rows: vec![row(0.5), row(0.45), row(0.2), row(0.3)] };
        let mut r = EvolveResults::from_csv(&table, "evolve.csv", &crate::evolve::Fitness::Weights([0., 0., 0., 1.]));
        for (i, ms) in [10.0, 5.0, 1.0, 6.0].into_iter().enumerate() {
            r.measured.insert(i, Measured { latency_ms: ms, images_per_s: 100.0 / ms, ..Default::default() });
        }
        r
    }

    #[test]
    fn the_front_its_knee_and_the_picks_of_a_hand_made_table() {
        let r = results();
        let o = [Objective::Fitness, Objective::Latency];
        let rows: Vec<usize> = r.front(&o).iter().map(|t| t.row).collect();
        assert_eq!(rows, [0, 1, 2], "front by fitness, best first");
        // scaled to the front: row 0 (1, 0), row 1 (0.833, 0.556), row 2 (0, 1); row 1 is closest to (1, 1)
        assert_eq!(r.knee(&o).unwrap().row, 1);
        let df = r.pareto_of(&o).unwrap();
        assert_eq!(df.height(), 3);
        let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["row", "knee", "fitness", "latency_ms", "lr0"]);
        // fastest within 90% of the best (0.45 >= 0.45): row 1; within 50%: row 2 is too weak (0.2 < 0.25)
        assert_eq!(r.fastest_within(0.9).unwrap().row, 1);
        assert_eq!(r.fastest_within(0.5).unwrap().row, 1);
        assert_eq!(r.fastest_within(0.3).unwrap().row, 2);
        assert_eq!(r.pick(|t| t.value(Objective::Latency) > 5.5, Objective::Fitness).unwrap().row, 0);
        assert!(r.pick(|_| false, Objective::Fitness).is_none());
    }
}
