//! Where an evolution's rows live. The workers of both GAs talk to a [`Store`]: claim a generation number,
//! read the finished rows to choose parents from, record a finished training, release a claim. Two stores:
//!
//! - [`FileStore`], the default: evolve.csv, generations.csv and the claims file of the evolution folder under
//!   its lock, shared by the threads and processes that see one file system;
//! - [`pg::PgStore`] (experiments created, joined, exported and imported in [`join`]; rows in the file store's
//!   formats in [`mirror`]): an experiment in a PostgreSQL database, shared by workers on any number of machines, with
//!   the evolution folder kept as a mirror (evolve.csv, generations.csv, hyp_evolve.yaml rewritten from the
//!   database after each claim and record), so every reader of an evolution folder reads it unchanged.
//!
//! Both number rows alike: a row is its place in evolve.csv (the order trainings finished), generations.csv's
//! `generation` the claim that trained it.

pub mod join;
pub mod mirror;
pub mod pg;

use super::claims;
use super::csv::{self, EvolveCsv};
use super::objective::Measured;
use crate::error::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A database connection string whose `Debug` and `Display` mask the password.
#[derive(Clone, PartialEq)]
pub struct StorageUrl(String);

impl StorageUrl {
    /// The connection string (`postgres://user:password@host:port/db`).
    pub fn new(url: impl Into<String>) -> Self {
        StorageUrl(url.into())
    }
    /// The full string, password included.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StorageUrl({})", pg::mask(&self.0))
    }
}

impl std::fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&pg::mask(&self.0))
    }
}

/// The finished rows of an evolution, as parents are chosen from them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// evolve.csv.
    pub table: EvolveCsv,
    /// Rows whose training the pruner stopped.
    pub pruned: BTreeSet<usize>,
    /// Re-evaluations: row → the row it repeats.
    pub repeats: BTreeMap<usize, usize>,
    /// Measured objectives of the rows that have them.
    pub measured: BTreeMap<usize, Measured>,
}

impl Snapshot {
    /// The rows of an evolution folder (the caller holds its lock, or the folder is not written to).
    pub fn read(dir: &Path) -> Result<Snapshot> {
        Ok(Snapshot {
            table: csv::read(&dir.join("evolve.csv"))?,
            pruned: csv::pruned_rows(dir)?,
            repeats: csv::repeats(dir)?,
            measured: csv::measured(dir)?,
        })
    }
}

/// One finished training, as a store records it: an evolve.csv row and a generations.csv line.
#[derive(Debug, Clone)]
pub struct Trial {
    /// The claim this row settles (classic GA), released by the record.
    pub claim: Option<usize>,
    /// generations.csv's `generation`: the claim (`7`) or the population GA's `generation.individual`.
    pub label: String,
    /// The evolution's mutation seed.
    pub seed: u64,
    /// The worker that trained it (a thread index; `host:pid/thread` in a database).
    pub worker: String,
    /// Its device (`auto` when the trainer chose).
    pub device: String,
    /// Fitness of `results`.
    pub fitness: f64,
    /// Seconds from claim to record, and of training with validation.
    pub wall_s: f64,
    /// Seconds of training with validation.
    pub train_s: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// The epoch at which the pruner stopped it.
    pub pruned_at: Option<usize>,
    /// The row it re-evaluates with another seed.
    pub repeat_of: Option<usize>,
    /// Speed, size, memory, latency.
    pub measured: Measured,
    /// What happened besides a plain training.
    pub note: String,
    /// P, R, mAP@0.5, mAP@0.5:0.95, validation box, obj, cls losses.
    pub results: [f64; 7],
    /// The genes it trained with, in YOLOv5's column order.
    pub genes: Vec<(String, f64)>,
    /// Whether every attempt failed.
    pub failed: bool,
}

impl Trial {
    /// generations.csv's cells for this trial as row `row` ([`csv::GENERATION_COLUMNS`]).
    pub fn generation_cells(&self, row: usize) -> Vec<String> {
        [
            row.to_string(),
            self.label.clone(),
            self.seed.to_string(),
            self.worker.clone(),
            if self.device.is_empty() { "auto".into() } else { self.device.clone() },
            format!("{:.6}", self.fitness),
            format!("{:.2}", self.wall_s),
            format!("{:.2}", self.train_s),
            self.epochs.to_string(),
            self.pruned_at.map(|e| e.to_string()).unwrap_or_default(),
            self.repeat_of.map(|r| r.to_string()).unwrap_or_default(),
        ]
        .into_iter()
        .chain(self.measured.cells())
        .chain([self.note.clone()])
        .collect()
    }
}

/// What a record left.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The trial's row, or `None` when the store refused it (its claim was taken over meanwhile).
    pub row: Option<usize>,
    /// Every finished row, the new one included.
    pub snapshot: Snapshot,
    /// What the caller should warn about.
    pub warnings: Vec<String>,
}

/// What an experiment is, for a store that keeps it ([`Store::attach`]).
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Its name (the evolution folder's name).
    pub name: String,
    /// Individuals per generation of the population GA; `None` for the classic GA.
    pub population: Option<usize>,
    /// Generations (the classic GA's rows).
    pub generations: usize,
    /// Fitness weights of (P, R, mAP@0.5, mAP@0.5:0.95), empty for a fitness function.
    pub fitness: Vec<f64>,
    /// The objectives' column names.
    pub objectives: Vec<String>,
    /// The genes' evolve.csv columns.
    pub hyp_keys: Vec<String>,
    /// The evolution folder, whose settings files (opt.yaml, hyp.yaml, ...) describe the experiment.
    pub dir: PathBuf,
}

/// The settings files of an evolution folder that define its experiment: what a worker joining it on another
/// machine writes into its own folder before it starts.
pub const SETTINGS_FILES: [&str; 5] = ["opt.yaml", "hyp.yaml", "pruner.txt", "objectives.txt", "genes.txt"];

/// What a population-GA claim found ([`Store::claim_individual`]).
#[derive(Debug, Clone)]
pub enum Individual {
    /// Individual `k` of the generation, trial row `row`, is this worker's to train.
    Train {
        /// The individual.
        k: usize,
        /// Its row number (`generation · size + k`).
        row: usize,
    },
    /// Every individual is recorded: their results and measurements, by individual.
    Complete(Vec<([f64; 7], Measured)>),
}

/// Where a pruner's rung measurements go: `record` stores generation `label`'s fitness at `epoch` and returns
/// what the other generations measured at that epoch. Owned by the training's epoch callback.
pub trait Rungs: Send + Sync {
    /// Record a measurement; the others' at the same epoch.
    fn record(&self, label: &str, epoch: usize, fitness: f64) -> Result<Vec<f64>>;
}

/// The file store's rungs: rungs.csv of the evolution folder, under its lock.
struct FileRungs(PathBuf);

impl Rungs for FileRungs {
    fn record(&self, label: &str, epoch: usize, fitness: f64) -> Result<Vec<f64>> {
        let lock = csv::lock(&self.0)?;
        super::prune::record_rung(&self.0, &lock, label, epoch, fitness)
    }
}

/// A fitness of the 7 results, borrowed.
pub type FitnessOf<'a> = &'a dyn Fn(&[f64; 7]) -> f64;

/// The rows of one evolution, shared by its workers.
pub trait Store: Send + Sync {
    /// Settle what the experiment is, once its folder's settings files are written (a database records them
    /// or checks them against its own).
    fn attach(&self, experiment: &Experiment) -> Result<()>;
    /// Claim the next generation number for worker thread `thread` while the evolution should reach `target`
    /// rows, with the finished rows
    /// to choose its parents from; `None` when the target is reached (or, in a file store, when the claims of
    /// other workers will reach it).
    fn claim(&self, thread: usize, target: usize) -> Result<Option<(usize, Snapshot)>>;
    /// The finished rows now.
    fn snapshot(&self) -> Result<Snapshot>;
    /// Record a finished training (releasing its claim) and rewrite hyp_evolve.yaml by `fitness`.
    fn record(&self, trial: &Trial, fitness: FitnessOf<'_>) -> Result<Recorded>;
    /// Say what a claimed generation trains (a database shows it on the running trial). Default: nothing.
    fn started(&self, _generation: usize, _genes: &[(String, f64)]) -> Result<()> {
        Ok(())
    }
    /// Give a claim back untrained (its worker failed).
    fn release(&self, generation: usize) -> Result<()>;
    /// Where the pruner's rung measurements go.
    fn rungs(&self) -> std::sync::Arc<dyn Rungs>;
    /// Whether the population GA's generations live in the store, shared with workers of other processes
    /// ([`Store::claim_individual`]), rather than in one process's worker pool and `evolve_population.yaml`.
    fn shares_population(&self) -> bool {
        false
    }
    /// The latest generation whose population is stored, and its individuals' gene values.
    fn current_population(&self) -> Result<Option<(usize, Vec<Vec<f64>>)>> {
        Ok(None)
    }
    /// Store generation `generation`'s population (values of `genes` per individual) unless one is stored.
    fn put_population(&self, _generation: usize, _genes: &[String], _pop: &[Vec<f64>]) -> Result<()> {
        Ok(())
    }
    /// Claim an individual of `generation` (of `size`) for worker `thread`, waiting while the unclaimed ones
    /// are gone but some still train; the finished generation once every individual is recorded.
    fn claim_individual(&self, _thread: usize, _generation: usize, _size: usize) -> Result<Individual> {
        Err(crate::error::Error::Config {
            name: "storage",
            message: "this store keeps the population GA in one process's worker pool".into(),
        })
    }
    /// generations.csv's `worker` for a worker thread of this process.
    fn worker_name(&self, thread: usize) -> String {
        thread.to_string()
    }
}

/// The file store: an evolution folder's evolve.csv, generations.csv and `.evolve.claims`, under its lock.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// The store of the evolution folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }
}

impl Store for FileStore {
    fn attach(&self, _experiment: &Experiment) -> Result<()> {
        Ok(())
    }

    fn claim(&self, _thread: usize, target: usize) -> Result<Option<(usize, Snapshot)>> {
        let lock = csv::lock(&self.dir)?;
        let snapshot = Snapshot::read(&self.dir)?;
        // a generation number no other worker (thread or process) holds or held
        Ok(claims::claim(&self.dir, &lock, snapshot.table.rows.len(), target)?.map(|g| (g, snapshot)))
    }

    fn snapshot(&self) -> Result<Snapshot> {
        let _lock = csv::lock(&self.dir)?;
        Snapshot::read(&self.dir)
    }

    fn record(&self, trial: &Trial, fitness: FitnessOf<'_>) -> Result<Recorded> {
        let lock = csv::lock(&self.dir)?;
        let path = self.dir.join("evolve.csv");
        let torn = csv::repair_torn_line(&path, &lock)?;
        // the side-file line goes first: a worker killed between the two appends leaves a line for a row that
        // does not exist, which the next record drops, rather than a row without its line
        let row = csv::read(&path)?.rows.len();
        csv::drop_generations_from(&self.dir, &lock, row)?;
        let mut trial = trial.clone();
        let mut warnings = vec![];
        if torn {
            let t = "replaces a torn last row of evolve.csv (written when a worker was killed), which was dropped";
            warnings.push(format!("evolve: {}: {t}", path.display()));
            trial.note = if trial.note.is_empty() { t.to_string() } else { format!("{}; {t}", trial.note) };
        }
        csv::append_generation(&self.dir, &lock, &trial.generation_cells(row))?;
        csv::append(&path, &lock, &trial.results, &trial.genes)?;
        if let Some(c) = trial.claim {
            claims::release(&self.dir, &lock, c)?;
        }
        let snapshot = Snapshot::read(&self.dir)?;
        csv::write_hyp_evolve(&self.dir, &snapshot.table, fitness)?;
        Ok(Recorded { row: Some(row), snapshot, warnings })
    }

    fn release(&self, generation: usize) -> Result<()> {
        let lock = csv::lock(&self.dir)?;
        claims::release(&self.dir, &lock, generation)
    }

    fn rungs(&self) -> std::sync::Arc<dyn Rungs> {
        std::sync::Arc::new(FileRungs(self.dir.clone()))
    }
}
