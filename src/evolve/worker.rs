//! The worker side of an evolution: the shared state of one run, the pool of worker threads both GAs use,
//! one generation's training, and the record it leaves (an evolve.csv row, a generations.csv line, the
//! summary line). The classic GA's loop lives here; the population GA's in [`super::population`].

use super::generation::Trained;
use super::meta::Space;
use super::objective::{self, Measured};
use super::store::{Snapshot, Store, Trial};
use super::structure::Genome;
use super::{Evolver, Ga, classic_next, csv, top_rows};
use crate::data::{Stream, rng_for};
use crate::error::{Error, Result, panic_message};
use crate::train::PreparedData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Shared state of one evolution.
pub(super) struct Ctx<'a> {
    pub(super) evo: &'a Evolver,
    pub(super) dir: PathBuf,
    /// Where the rows live.
    pub(super) store: &'a dyn Store,
    /// The base genome: the starting hyperparameters and the base trainer's structural genes.
    pub(super) base: Genome,
    pub(super) space: Space,
    pub(super) data: PreparedData,
    pub(super) best: Arc<Mutex<Option<(usize, f64)>>>,
    /// Failures to inject still (tests), shared by every worker.
    pub(super) injections: Arc<std::sync::atomic::AtomicUsize>,
    /// Generations of this call that failed after their retry.
    pub(super) failures: std::sync::atomic::AtomicUsize,
}

/// One training to run and record ([`Ctx::run_job`]).
pub(super) struct Job<'a> {
    /// When its claim began (wall_s counts from here).
    pub(super) start: Instant,
    pub(super) label: String,
    pub(super) claim: Option<usize>,
    pub(super) genome: &'a Genome,
    /// Added to the training seed (re-evaluations).
    pub(super) seed_offset: u64,
    pub(super) changes: &'a [(String, f64)],
    pub(super) repeat_of: Option<usize>,
}

impl Ctx<'_> {
    /// Train a job on `device` and record it: the training's outcome and the record's.
    pub(super) fn run_job(
        &self,
        job: Job<'_>,
        worker: usize,
        device: &str,
        data: &mut PreparedData,
    ) -> (Trained, Result<(Option<usize>, Snapshot)>) {
        if let Some(c) = job.claim
            && let Err(e) = self.store.started(c, &job.genome.pairs())
        {
            // only a description of the running trial: the training goes on
            self.evo.base.report().warn(&format!("evolve: {e}"));
        }
        let out = self.train(&job.label, job.genome, device, data, job.seed_offset);
        let wall_s = job.start.elapsed().as_secs_f64();
        let res = self.record(&job, worker, device, &out, wall_s);
        (out, res)
    }

    pub(super) fn device(&self, worker: usize) -> String {
        if self.evo.devices.is_empty() {
            self.evo.base.device.clone()
        } else {
            self.evo.devices[worker % self.evo.devices.len()].clone()
        }
    }

    /// Record a trained job (its evolve.csv row and generations.csv line, hyp_evolve.yaml rewritten), print the
    /// summary line. Returns the row, `None` when the store refused it (its claim was taken over).
    fn record(
        &self,
        job: &Job<'_>,
        worker: usize,
        device: &str,
        out: &Trained,
        wall_s: f64,
    ) -> Result<(Option<usize>, Snapshot)> {
        let Job { label: gen_label, claim, genome, changes, repeat_of, .. } = job;
        let (claim, repeat_of) = (*claim, *repeat_of);
        let fit = self.evo.fitness_closure();
        let f = fit(&out.results);
        let trial = Trial {
            claim,
            label: gen_label.to_string(),
            seed: self.evo.seed,
            worker: self.store.worker_name(worker),
            device: device.to_string(),
            fitness: f,
            wall_s,
            train_s: out.train_s,
            epochs: out.epochs,
            pruned_at: out.pruned_at,
            repeat_of,
            measured: out.measured,
            note: out.note.clone(),
            results: out.results,
            genes: genome.pairs(),
            failed: out.failed,
        };
        let recorded = self.store.record(&trial, &fit)?;
        for w in &recorded.warnings {
            self.evo.base.report().warn(w);
        }
        let table = &recorded.snapshot.table;
        let rows = table.rows.len();
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
            let Some(&i) = top_rows(&fits, 1).first() else { return Ok((recorded.row, recorded.snapshot)) };
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
        Ok((recorded.row, recorded.snapshot))
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

    /// Selection scores of parent rows (`rows`: their evolve.csv rows): the fitness, or with several
    /// objectives the Pareto order of the rows' measurements.
    pub(super) fn scores(&self, parents: &csv::EvolveCsv, rows: &[usize], all: &Snapshot) -> Vec<f64> {
        let fit = self.evo.fitness_closure();
        let fitness: Vec<f64> = (0..parents.rows.len()).map(|i| fit(&parents.results(i))).collect();
        if !objective::is_multi(&self.evo.objectives) {
            return fitness;
        }
        let measured: Vec<Measured> = rows.iter().map(|r| all.measured.get(r).copied().unwrap_or_default()).collect();
        objective::selection_scores(&fitness, &measured, &self.evo.objectives)
    }

    pub(super) fn classic(&self) -> Result<()> {
        self.pool(|w, device, data| -> Result<()> {
            loop {
                let start = Instant::now();
                let Some((generation, snapshot)) = self.store.claim(w, self.evo.generations)? else {
                    return Ok(());
                };
                // while the first generation trains, later claims mutate the base hyperparameters
                let (parents, scores) = if snapshot.table.rows.is_empty() && generation > 0 {
                    (base_table(&self.base), vec![0.0])
                } else {
                    let (p, rows) = parents_of(snapshot.table.clone(), &snapshot.pruned, &snapshot.repeats);
                    let scores = self.scores(&p, &rows, &snapshot);
                    (p, scores)
                };
                let mut rng = rng_for(self.evo.seed, Stream::Mutation, &[generation as u64]);
                let (genome, changes) = classic_next(
                    &self.base,
                    &parents,
                    &scores,
                    &self.space,
                    self.evo.parent,
                    self.evo.evolve_zeros,
                    &mut rng,
                );
                let job = Job {
                    start,
                    label: generation.to_string(),
                    claim: Some(generation),
                    genome: &genome,
                    seed_offset: 0,
                    changes: &changes,
                    repeat_of: None,
                };
                let (_, res) = self.run_job(job, w, device, data);
                if res.is_err() {
                    let _ = self.store.release(generation);
                }
                if let (Some(row), snapshot) = res? {
                    self.reevaluate(row, generation, &snapshot, &genome, w, device, data)?;
                }
            }
        })
    }

    /// Re-train a candidate with other seeds ([`Evolver::reevaluate`]) when it is the base hyperparameters
    /// (generation 0: the run-to-run noise) or the best candidate so far by mean fitness; each repeat takes a
    /// generation number of its own and is a row of evolve.csv linked by generations.csv's `repeat_of`.
    #[allow(clippy::too_many_arguments)]
    fn reevaluate(
        &self,
        row: usize,
        generation: usize,
        snapshot: &Snapshot,
        genome: &Genome,
        w: usize,
        device: &str,
        data: &mut PreparedData,
    ) -> Result<()> {
        if self.evo.reevaluate == 0 {
            return Ok(());
        }
        let fit = self.evo.fitness_closure();
        if generation > 0 {
            let repeats = &snapshot.repeats;
            let (parents, _) = parents_of(snapshot.table.clone(), &Default::default(), repeats);
            // parents_of keeps candidates in row order without repeat rows: find this row's place among them
            let place = (0..row).filter(|r| !repeats.contains_key(r)).count();
            let mine = fit(&parents.results(place));
            let best_other = (0..parents.rows.len())
                .filter(|&i| i != place)
                .map(|i| fit(&parents.results(i)))
                .fold(f64::MIN, f64::max);
            // only a new best (a NaN never is) is re-evaluated
            if mine.partial_cmp(&best_other) != Some(std::cmp::Ordering::Greater) {
                return Ok(());
            }
        }
        for j in 1..=self.evo.reevaluate {
            let start = Instant::now();
            let Some((g, _)) = self.store.claim(w, self.evo.generations)? else { return Ok(()) };
            let job = Job {
                start,
                label: g.to_string(),
                claim: Some(g),
                genome,
                seed_offset: j as u64,
                changes: &[],
                repeat_of: Some(row),
            };
            self.run_job(job, w, device, data).1?;
        }
        Ok(())
    }
}

/// Rows that parents are chosen from: one per candidate (a row and its re-evaluations, averaged), and only
/// the generations that trained to the end unless fewer than [`MIN_COMPLETE_PARENTS`] did (then every row,
/// pruned ones with their last metrics). Also returns the evolve.csv row of each.
pub(super) fn parents_of(
    table: csv::EvolveCsv,
    pruned: &std::collections::BTreeSet<usize>,
    repeats: &std::collections::BTreeMap<usize, usize>,
) -> (csv::EvolveCsv, Vec<usize>) {
    let n = table.rows.len();
    let complete = (0..n).filter(|r| !pruned.contains(r) && !repeats.contains_key(r)).count();
    let drop_pruned = !pruned.is_empty() && complete >= MIN_COMPLETE_PARENTS;
    let (mut rows, mut index) = (Vec::new(), Vec::new());
    for (i, row) in table.rows.iter().enumerate() {
        if repeats.contains_key(&i) || (drop_pruned && pruned.contains(&i)) {
            continue;
        }
        index.push(i);
        let group: Vec<&Vec<f64>> = std::iter::once(row)
            .chain(repeats.iter().filter(|&(r, c)| *c == i && *r < n).map(|(r, _)| &table.rows[*r]))
            .collect();
        let mut mean = row.clone();
        for (k, m) in mean.iter_mut().enumerate().take(csv::METRIC_KEYS.len()) {
            *m = group.iter().map(|g| g[k]).sum::<f64>() / group.len() as f64;
        }
        rows.push(mean);
    }
    (csv::EvolveCsv { columns: table.columns, rows }, index)
}

/// Complete rows needed before pruned ones stop being parents (YOLOv5 picks among the best 5).
pub const MIN_COMPLETE_PARENTS: usize = 5;

/// A one-row table holding the base genome, as the parent of generations claimed before any row is
/// recorded.
pub(super) fn base_table(base: &Genome) -> csv::EvolveCsv {
    let pairs = base.pairs();
    let columns = csv::METRIC_KEYS.iter().map(|s| s.to_string()).chain(pairs.iter().map(|(k, _)| k.clone())).collect();
    let row = [0.0; 7].into_iter().chain(pairs.iter().map(|(_, v)| *v)).collect();
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
        let none = Default::default();
        // 6 rows, 4 complete: too few, every row stays
        assert_eq!(parents_of(table(6), &pruned, &none).0.rows.len(), 6);
        // 7 rows, 5 complete: the pruned ones leave
        let (kept, rows) = parents_of(table(7), &pruned, &none);
        assert_eq!(kept.rows.iter().map(|r| r[0]).collect::<Vec<f64>>(), [0.0, 2.0, 4.0, 5.0, 6.0]);
        assert_eq!(rows, [0, 2, 4, 5, 6]);
        assert_eq!(parents_of(table(7), &Default::default(), &none).0.rows.len(), 7);
    }

    #[test]
    fn re_evaluated_candidates_are_one_parent_with_their_mean() {
        let table = csv::EvolveCsv {
            columns: vec![
                "a".into(),
                "b".into(),
                "c".into(),
                "d".into(),
                "e".into(),
                "f".into(),
                "g".into(),
                "lr0".into(),
            ],
            rows: vec![
                vec![0.4, 0., 0., 0., 0., 0., 0., 0.01],
                vec![0.2, 0., 0., 0., 0., 0., 0., 0.01],
                vec![0.9, 0., 0., 0., 0., 0., 0., 0.02],
            ],
        };
        let repeats = [(1, 0)].into();
        let (p, _) = parents_of(table, &Default::default(), &repeats);
        assert_eq!(p.rows.len(), 2);
        assert!((p.rows[0][0] - 0.3).abs() < 1e-12, "mean of the candidate and its repeat");
        assert_eq!(p.rows[1][0], 0.9);
    }
}
