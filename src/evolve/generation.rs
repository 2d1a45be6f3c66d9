//! One generation's training: the base trainer with the generation's hyperparameters, validated at the
//! pruner's rungs (each measurement recorded in `rungs.csv` and judged against the others'), retried once with
//! another seed when it fails (with half the batch after a CUDA out-of-memory error), and, when it fails
//! again, recorded with the metrics of its last completed validation rather than zeros.

use super::Fitness;
use super::objective::{Measured, Objective, latency_ms};
use super::prune::Pruner;
use super::store::Rungs;
use super::structure::Genome;
use super::worker::Ctx;
use crate::report::Reporter;
use crate::train::{Control, EpochHook, PreparedData, ProgressMode, ValResult};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Attempts per generation: the first and one retry.
pub const ATTEMPTS: usize = 2;
/// A retry trains with the base seed plus this.
pub const RETRY_SEED_STEP: u64 = 1000;
/// The batch is never halved below this.
pub const MIN_BATCH: usize = 2;

/// Outcome of one generation's training.
pub(crate) struct Trained {
    /// P, R, mAP@0.5, mAP@0.5:0.95 and the validation losses of its last validation (zeros if none).
    pub(crate) results: [f64; 7],
    /// What happened besides a plain training (retries, pruning, partial metrics).
    pub(crate) note: String,
    /// Seconds of training and validation.
    pub(crate) train_s: f64,
    /// Epochs trained.
    pub(crate) epochs: usize,
    /// The epoch at which the pruner stopped it.
    pub(crate) pruned_at: Option<usize>,
    /// Whether every attempt failed.
    pub(crate) failed: bool,
    /// Speed, size, memory and (when an objective asks for it) latency.
    pub(crate) measured: Measured,
}

/// The seven results of a validation.
fn results_of(v: &ValResult) -> [f64; 7] {
    [v.metrics[0], v.metrics[1], v.metrics[2], v.metrics[3], v.loss[0], v.loss[1], v.loss[2]]
}

/// What the rung callback shares with the generation: the last validation it saw.
type Last = Arc<Mutex<Option<(usize, [f64; 7])>>>;

/// The rung callback: remember the validation, inject a failure if one is due, else record the fitness in
/// rungs.csv and let the pruner judge it.
fn hook(
    rungs: Arc<dyn Rungs>,
    label: String,
    pruner: Pruner,
    fitness: Fitness,
    last: Last,
    inject: Injection,
) -> EpochHook {
    EpochHook(Arc::new(move |epoch, v| {
        let r = results_of(v);
        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some((epoch, r));
        if let Some(message) = inject.take() {
            return Control::Abort(message);
        }
        if pruner == Pruner::None {
            return Control::Continue;
        }
        let f = fitness.eval(&r);
        // a rung that cannot be recorded is not judged: the generation trains on
        match rungs.record(&label, epoch, f) {
            Ok(others) if pruner.prunes(epoch, f, &others) => Control::Prune,
            _ => Control::Continue,
        }
    }))
}

/// Failures still to inject (tests), shared by every worker.
#[derive(Clone)]
struct Injection(Arc<AtomicUsize>, String);

impl Injection {
    fn take(&self) -> Option<String> {
        self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).ok().map(|_| self.1.clone())
    }
}

impl Ctx<'_> {
    /// Train generation `label` with the base seed plus `seed_offset` (re-evaluations train with other seeds);
    /// see the module docs for pruning, retries and failures.
    pub(super) fn train(
        &self,
        label: &str,
        genome: &Genome,
        device: &str,
        data: &mut PreparedData,
        seed_offset: u64,
    ) -> Trained {
        let evo = self.evo;
        let mut notes: Vec<String> = Vec::new();
        let mut batch = evo.base.batch;
        let mut last_seen = None;
        let mut spent = 0.0;
        let inject = Injection(
            self.injections.clone(),
            evo.inject_failures.as_ref().map(|(_, m)| m.clone()).unwrap_or_default(),
        );
        for attempt in 0..ATTEMPTS {
            let seed = evo.base.seed + seed_offset + attempt as u64 * RETRY_SEED_STEP;
            let mut t = super::structure::apply(evo.base.clone(), &genome.structure)
                .hyp(genome.hyp.clone())
                .device(device)
                .seed(seed)
                .batch(batch)
                .progress(ProgressMode::Silent)
                .reporter(Reporter::silent());
            t.evolve_mode = true;
            t.project = self.dir.parent().map(|p| p.to_path_buf()).unwrap_or_default();
            t.name = self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            t.resume = None;
            // a re-evaluation (another seed) measures noise and trains to the end: it is never pruned
            t.rung_epochs = if seed_offset == 0 { evo.prune.rungs(t.epochs) } else { vec![] };
            t.rung_val_images = evo.rung_val_images;
            if evo.inject_failures.is_some() && t.rung_epochs.is_empty() && t.epochs > 1 {
                t.rung_epochs = vec![0]; // an injected failure needs a validation to happen at
            }
            let last: Last = Arc::new(Mutex::new(None));
            t.epoch_hook = Some(hook(
                self.store.rungs(),
                label.to_string(),
                evo.prune,
                evo.fitness.clone(),
                last.clone(),
                inject.clone(),
            ));
            let start = Instant::now();
            let out = t.fit_with(data);
            spent += start.elapsed().as_secs_f64();
            let seen = *last.lock().unwrap_or_else(|p| p.into_inner());
            last_seen = seen.or(last_seen);
            let error = match out {
                Ok(run) => match run.final_val.as_ref().map(results_of) {
                    Some(r) if r.iter().all(|x| x.is_finite()) => {
                        if attempt > 0 {
                            notes.push(format!("retried with seed {seed}"));
                        }
                        if let Some(e) = run.pruned_at {
                            notes.push(format!("pruned at epoch {e}"));
                        }
                        let mut measured = Measured::of_run(&run);
                        if evo.objectives.contains(&Objective::Latency) {
                            match latency_ms(&t, data) {
                                Ok(ms) => measured.latency_ms = ms,
                                Err(e) => notes.push(format!("latency not measured: {e}")),
                            }
                        }
                        return Trained {
                            results: r,
                            note: notes.join("; "),
                            train_s: run.seconds,
                            epochs: run.rows.len(),
                            pruned_at: run.pruned_at,
                            failed: false,
                            measured,
                        };
                    }
                    Some(_) => "non-finite validation results".to_string(),
                    None => "no validation ran".to_string(),
                },
                Err(e) => e.to_string(),
            };
            notes.push(format!("attempt {} (seed {seed}) failed: {error}", attempt + 1));
            if error.contains("out of memory") && batch > MIN_BATCH {
                batch = (batch / 2).max(MIN_BATCH);
                notes.push(format!("batch halved to {batch}"));
            }
        }
        let (results, epochs) = match last_seen {
            Some((epoch, r)) if r.iter().all(|x| x.is_finite()) => {
                notes.push(format!("metrics of the last completed validation (epoch {epoch}) kept"));
                (r, epoch + 1)
            }
            _ => ([0.0; 7], 0),
        };
        Trained {
            results,
            note: notes.join("; "),
            train_s: spent,
            epochs,
            pruned_at: None,
            failed: true,
            measured: Measured::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Trainer;

    #[test]
    fn rung_validations_use_the_fixed_subset_and_the_final_one_every_image() {
        let seen: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
        let s = seen.clone();
        let mut t = Trainer::new()
            .data("shapes-tiny")
            .imgsz(64)
            .batch(8)
            .epochs(3)
            .workers(1)
            .device("cpu")
            .progress(ProgressMode::Silent)
            .reporter(Reporter::silent());
        t.evolve_mode = true;
        t.rung_epochs = vec![0, 1];
        t.rung_val_images = Some(3);
        t.epoch_hook = Some(EpochHook(Arc::new(move |epoch, v| {
            s.lock().unwrap().push((epoch, v.images));
            Control::Continue
        })));
        let run = t.fit().unwrap();
        assert_eq!(*seen.lock().unwrap(), [(0, 3), (1, 3)]);
        assert_eq!(run.final_val.unwrap().images, 8);
    }
}
