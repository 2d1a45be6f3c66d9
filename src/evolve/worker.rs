//! The worker side of an evolution: the shared state of one run, the pool of worker threads both GAs use,
//! one generation's training, and the record it leaves (an evolve.csv row, a generations.csv line, the
//! summary line). The classic GA's loop lives here; the population GA's in [`super::population`].

use super::generation::Trained;
use super::meta::Space;
use super::{Evolver, Ga, claims, classic_next, csv, top_rows};
use crate::data::{Stream, rng_for};
use crate::error::{Error, Result, panic_message};
use crate::hyp::Hyp;
use crate::train::PreparedData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Shared state of one evolution.
pub(super) struct Ctx<'a> {
    pub(super) evo: &'a Evolver,
    pub(super) dir: PathBuf,
    pub(super) hyp: Hyp,
    pub(super) space: Space,
    pub(super) data: PreparedData,
    pub(super) best: Arc<Mutex<Option<(usize, f64)>>>,
    /// Failures to inject still (tests), shared by every worker.
    pub(super) injections: Arc<std::sync::atomic::AtomicUsize>,
    /// Generations of this call that failed after their retry.
    pub(super) failures: std::sync::atomic::AtomicUsize,
}

/// What [`Ctx::record`] writes for one generation.
pub(super) struct Generation<'a> {
    pub(super) label: &'a str,
    /// The claim this row settles (classic GA).
    pub(super) claim: Option<usize>,
    pub(super) worker: usize,
    pub(super) device: &'a str,
    pub(super) hyp: &'a Hyp,
    pub(super) out: &'a Trained,
    pub(super) wall_s: f64,
    pub(super) changes: &'a [(String, f64)],
}

impl Ctx<'_> {
    pub(super) fn device(&self, worker: usize) -> String {
        if self.evo.devices.is_empty() {
            self.evo.base.device.clone()
        } else {
            self.evo.devices[worker % self.evo.devices.len()].clone()
        }
    }

    /// Append a generation's row and side-file line, rewrite hyp_evolve.yaml, print the summary line.
    pub(super) fn record(&self, g: Generation<'_>) -> Result<usize> {
        let Generation { label: gen_label, claim, worker, device, hyp, out, wall_s, changes } = g;
        let fit = self.evo.fitness_closure();
        let lock = csv::lock(&self.dir)?;
        let pairs: Vec<(String, f64)> = hyp.iter().map(|(k, v)| (k.to_string(), v)).collect();
        let torn = csv::repair_torn_line(&self.dir.join("evolve.csv"), &lock)?;
        let rows = csv::append(&self.dir.join("evolve.csv"), &lock, &out.results, &pairs)?;
        let mut note = out.note.clone();
        if torn {
            let t = "replaces a torn last row of evolve.csv (written when a worker was killed), which was dropped";
            self.evo.base.report().warn(&format!("evolve: {}: {t}", self.dir.join("evolve.csv").display()));
            note = if note.is_empty() { t.to_string() } else { format!("{note}; {t}") };
        }
        if let Some(c) = claim {
            claims::release(&self.dir, &lock, c)?;
        }
        let table = csv::read(&self.dir.join("evolve.csv"))?;
        csv::write_hyp_evolve(&self.dir, &table, &fit)?;
        let f = fit(&out.results);
        let fields = [
            (rows - 1).to_string(),
            gen_label.to_string(),
            self.evo.seed.to_string(),
            worker.to_string(),
            if device.is_empty() { "auto".into() } else { device.to_string() },
            format!("{f:.6}"),
            format!("{wall_s:.2}"),
            format!("{:.2}", out.train_s),
            out.epochs.to_string(),
            out.pruned_at.map(|e| e.to_string()).unwrap_or_default(),
            note,
        ];
        csv::append_generation(&self.dir, &lock, &fields)?;
        drop(lock);
        if out.failed {
            let n = self.failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if let Some(max) = self.evo.max_failures
                && n > max
            {
                return Err(Error::Config {
                    name: "max_failures",
                    message: format!(
                        "{n} generations failed (more than the {max} allowed); the evolution stops with every row \
                         recorded (resume it once the cause is fixed). The last: {}",
                        out.note
                    ),
                });
            }
        }
        let best = {
            let mut b = self.best.lock().unwrap_or_else(|p| p.into_inner());
            let fits: Vec<f64> = (0..table.rows.len()).map(|i| fit(&table.results(i))).collect();
            let i = top_rows(&fits, 1)[0];
            *b = Some((i, fits[i]));
            (i, fits[i])
        };
        let mut ch: Vec<&(String, f64)> = changes.iter().collect();
        ch.sort_by(|a, b| b.1.ln().abs().total_cmp(&a.1.ln().abs()));
        let changed: Vec<String> = ch
            .iter()
            .take(3)
            .map(|(k, x)| if x.is_finite() { format!("{k} ×{x:.2}") } else { format!("{k} from 0") })
            .collect();
        let note = if out.note.is_empty() { String::new() } else { format!(" [{}]", out.note) };
        self.evo.base.report().summary(&format!(
            "evolve: {rows}/{} fitness {f:.5} (best {:.5} at row {}) {}{}",
            self.target_rows(),
            best.1,
            best.0,
            if changed.is_empty() {
                "base hyperparameters".to_string()
            } else {
                format!("changed: {}", changed.join(", "))
            },
            note
        ));
        Ok(rows)
    }

    pub(super) fn target_rows(&self) -> usize {
        match &self.evo.algorithm {
            Ga::Classic => self.evo.generations,
            Ga::Population(s) => self.evo.generations * s.size,
        }
    }

    /// Run `work` on every worker thread, each with its own copy of the prepared data and its device, and
    /// wait for all of them; a worker's error, or its panic, is the pool's.
    pub(super) fn pool(&self, work: impl Fn(usize, &str, &mut PreparedData) -> Result<()> + Sync) -> Result<()> {
        std::thread::scope(|scope| -> Result<()> {
            let work = &work;
            let handles: Vec<_> = (0..self.evo.workers)
                .map(|w| {
                    scope.spawn(move || {
                        let mut data = self.data.clone();
                        work(w, &self.device(w), &mut data)
                    })
                })
                .collect();
            for h in handles {
                h.join().map_err(|p| Error::Worker { what: "evolution", message: panic_message(&*p) })??;
            }
            Ok(())
        })
    }

    pub(super) fn classic(&self) -> Result<()> {
        let fit = self.evo.fitness_closure();
        self.pool(|w, device, data| -> Result<()> {
            loop {
                let start = Instant::now();
                let (generation, hyp, changes) = {
                    let lock = csv::lock(&self.dir)?;
                    let table = csv::read(&self.dir.join("evolve.csv"))?;
                    // a generation number no other worker (thread or process) holds or held
                    let Some(generation) = claims::claim(&self.dir, &lock, table.rows.len(), self.evo.generations)?
                    else {
                        return Ok(());
                    };
                    // while the first generation trains, later claims mutate the base hyperparameters
                    let parents = if table.rows.is_empty() && generation > 0 {
                        base_table(&self.hyp)
                    } else {
                        selectable(table, &csv::pruned_rows(&self.dir)?)
                    };
                    let mut rng = rng_for(self.evo.seed, Stream::Mutation, &[generation as u64]);
                    let (hyp, changes) = classic_next(
                        &self.hyp,
                        &parents,
                        &fit,
                        &self.space,
                        self.evo.parent,
                        self.evo.evolve_zeros,
                        &mut rng,
                    );
                    drop(lock);
                    (generation, hyp, changes)
                };
                let label = generation.to_string();
                let out = self.train(&label, &hyp, device, data);
                let wall_s = start.elapsed().as_secs_f64();
                let res = self.record(Generation {
                    label: &label,
                    claim: Some(generation),
                    worker: w,
                    device,
                    hyp: &hyp,
                    out: &out,
                    wall_s,
                    changes: &changes,
                });
                if res.is_err()
                    && let Ok(lock) = csv::lock(&self.dir)
                {
                    let _ = claims::release(&self.dir, &lock, generation);
                }
                res?;
            }
        })
    }
}

/// Rows that parents are chosen from: the generations that trained to the end, unless fewer than
/// [`MIN_COMPLETE_PARENTS`] did (then every row, pruned ones with their last metrics).
pub(super) fn selectable(table: csv::EvolveCsv, pruned: &std::collections::BTreeSet<usize>) -> csv::EvolveCsv {
    let complete = table.rows.len() - pruned.iter().filter(|&&r| r < table.rows.len()).count();
    if pruned.is_empty() || complete < MIN_COMPLETE_PARENTS {
        return table;
    }
    let rows = table.rows.into_iter().enumerate().filter(|(i, _)| !pruned.contains(i)).map(|(_, r)| r).collect();
    csv::EvolveCsv { columns: table.columns, rows }
}

/// Complete rows needed before pruned ones stop being parents (YOLOv5 picks among the best 5).
pub const MIN_COMPLETE_PARENTS: usize = 5;

/// A one-row table holding the base hyperparameters, as the parent of generations claimed before any row
/// is recorded.
pub(super) fn base_table(hyp: &Hyp) -> csv::EvolveCsv {
    let keys: Vec<&str> = hyp.keys().collect();
    let columns = csv::METRIC_KEYS.iter().copied().chain(keys.iter().copied()).map(String::from).collect();
    let row = [0.0; 7].into_iter().chain(keys.iter().map(|k| hyp.get(k).unwrap_or(0.0))).collect();
    csv::EvolveCsv { columns, rows: vec![row] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruned_rows_are_parents_only_while_too_few_rows_are_complete() {
        let table =
            |n: usize| csv::EvolveCsv { columns: vec!["x".into()], rows: (0..n).map(|i| vec![i as f64]).collect() };
        let pruned: std::collections::BTreeSet<usize> = [1, 3].into();
        // 6 rows, 4 complete: too few, every row stays
        assert_eq!(selectable(table(6), &pruned).rows.len(), 6);
        // 7 rows, 5 complete: the pruned ones leave
        let kept: Vec<f64> = selectable(table(7), &pruned).rows.iter().map(|r| r[0]).collect();
        assert_eq!(kept, [0.0, 2.0, 4.0, 5.0, 6.0]);
        assert_eq!(selectable(table(7), &Default::default()).rows.len(), 7);
    }
}
