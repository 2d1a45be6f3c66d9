//! What a training returns: [`TrainRun`], its metrics as a DataFrame and its one-paragraph summary.

use super::results::{EpochRow, RESULTS_COLUMNS};
use super::validate::ValResult;
use crate::gpu::TelemetryLog;
use crate::hyp::Hyp;
use std::fmt;
use std::path::PathBuf;

/// The outcome of [`Trainer::fit`](super::Trainer::fit).
#[derive(Debug, Clone)]
pub struct TrainRun {
    /// The run folder.
    pub dir: PathBuf,
    /// One row per epoch (as in results.csv).
    pub rows: Vec<EpochRow>,
    /// The final validation, if any.
    pub final_val: Option<ValResult>,
    /// Best fitness.
    pub best_fitness: f64,
    /// Epoch of the best fitness.
    pub best_epoch: usize,
    /// Hyperparameters used (unscaled).
    pub hyp: Hyp,
    /// Seconds of the whole run.
    pub seconds: f64,
    /// Seconds spent training (without validation).
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// Parameters in total, and frozen.
    pub parameters: (i64, i64),
    /// Why the run ended early, if it did.
    pub stopped: Option<String>,
    /// The epoch at which an evolution's pruner stopped this run (its last validation is that epoch's).
    pub pruned_at: Option<usize>,
    /// Telemetry samples.
    pub telemetry: TelemetryLog,
    /// `weights/best.safetensors`, when written.
    pub best_weights: Option<PathBuf>,
    /// `weights/last.safetensors`, when written.
    pub last_weights: Option<PathBuf>,
}

impl TrainRun {
    /// The final metrics row.
    pub fn last(&self) -> Option<&EpochRow> {
        self.rows.last()
    }

    /// Per-epoch metrics as a polars DataFrame with results.csv's 14 columns.
    pub fn metrics_df(&self) -> polars::prelude::PolarsResult<polars::prelude::DataFrame> {
        use polars::prelude::*;
        let cols: Vec<Column> = RESULTS_COLUMNS
            .iter()
            .enumerate()
            .map(|(k, name)| Column::new((*name).into(), self.rows.iter().map(|r| r.values()[k]).collect::<Vec<f64>>()))
            .collect();
        DataFrame::new_infer_height(cols)
    }

    /// The results.csv path.
    pub fn results_csv(&self) -> PathBuf {
        self.dir.join("results.csv")
    }
}

impl fmt::Display for TrainRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "run {} ({} epochs, {:.1} s, {:.1} images/s)",
            self.dir.display(),
            self.rows.len(),
            self.seconds,
            self.images_per_second
        )?;
        if let Some(r) = self.rows.last() {
            let [p, rc, m50, m] = r.metrics;
            writeln!(f, "final: P {p:.4}  R {rc:.4}  mAP@0.5 {m50:.4}  mAP@0.5:0.95 {m:.4}")?;
        }
        write!(f, "best fitness {:.4} at epoch {}", self.best_fitness, self.best_epoch)?;
        if let Some(s) = &self.stopped {
            write!(f, "; stopped: {s}")?;
        }
        Ok(())
    }
}
