//! Hyperparameter evolution (`train.py --evolve` of ultralytics/yolov5@5081342f): the classic GA by default,
//! the population GA as an option, with evolve.csv as the whole state — resumable, shareable between worker
//! threads and processes, and readable with [`crate::results::EvolveResults`].
//!
//! ```no_run
//! use yolo_lab::prelude::*;
//! let base = Trainer::new().data("shapes").cfg("yolov5n").imgsz(320).epochs(10);
//! let evo = Evolver::new(base).generations(30).space(|s| s.fix("fliplr").bounds("lr0", 1e-4, 0.05)).run()?;
//! println!("{evo}");
//! # Ok::<(), yolo_lab::Error>(())
//! ```

pub mod claims;
pub mod csv;
mod ga;
mod generation;
pub mod meta;
pub mod objective;
pub mod pareto;
mod population;
pub mod prune;
pub mod store;
pub mod structure;
mod worker;

pub use ga::{FACTOR_CLIP, MUTATION_PROB, MUTATION_SIGMA, Parent, PopulationSettings};
pub(crate) use ga::{classic_next, population_next, top_rows};
pub use meta::{Gene, GeneKind, META, Space};
pub use objective::{Measured, Objective};
pub use prune::Pruner;

use crate::error::{Error, Result};
use crate::hyp::Hyp;
use crate::train::settings::RunSettings;
use crate::train::{HypSource, Trainer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Which genetic algorithm.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Ga {
    /// YOLOv5's classic GA: one parent from the top 5, multiplicative Gaussian mutation (mp 0.8, sigma 0.2).
    /// `generations` = rows evolve.csv should reach.
    #[default]
    Classic,
    /// The population GA: tournament selection, elitism, crossover, additive mutation. `generations` =
    /// generations of `size` individuals each.
    Population(PopulationSettings),
}

/// A fitness function of the 7 results.
pub type FitnessFn = Arc<dyn Fn(&[f64; 7]) -> f64 + Send + Sync>;

/// What the evolution maximises.
#[derive(Clone)]
pub enum Fitness {
    /// Weights of (P, R, mAP@0.5, mAP@0.5:0.95). YOLOv5: [0, 0, 0.1, 0.9].
    Weights([f64; 4]),
    /// Any function of the 7 results (P, R, mAP@0.5, mAP@0.5:0.95, val box, obj, cls losses).
    Function(FitnessFn),
}

impl fmt::Debug for Fitness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fitness::Weights(w) => write!(f, "Weights({w:?})"),
            Fitness::Function(_) => write!(f, "Function(..)"),
        }
    }
}

impl Fitness {
    /// Evaluate on a results row.
    pub fn eval(&self, r: &[f64; 7]) -> f64 {
        match self {
            Fitness::Weights(w) => crate::metrics::fitness_with(&r[..4], w),
            Fitness::Function(f) => f(r),
        }
    }
}

/// The evolution builder. [`Evolver::run`] validates and runs.
#[derive(Debug, Clone)]
pub struct Evolver {
    /// The training scenario every generation runs (its hyp is the starting point).
    pub base: Trainer,
    /// Generations (classic: total rows of evolve.csv to reach; population: generations of the population).
    /// Default 300.
    pub generations: usize,
    /// Algorithm. Default classic.
    pub algorithm: Ga,
    /// Parent combination of the classic GA. Default single.
    pub parent: Parent,
    /// Search space. Default YOLOv5's meta table.
    pub space: Space,
    /// Fitness. Default 0.1·mAP@0.5 + 0.9·mAP@0.5:0.95.
    pub fitness: Fitness,
    /// Seed of the mutations (trainings use the base trainer's seed, as YOLOv5).
    pub seed: u64,
    /// Generations trained at once (threads sharing evolve.csv). Default 1.
    pub workers: usize,
    /// Devices given to workers in turn (`"0"`, `"1"`, `"cpu"`); empty = the base trainer's.
    pub devices: Vec<String>,
    /// Parent folder. Default `runs/evolve`.
    pub project: PathBuf,
    /// Folder name (`exp`, `exp2`, ... unless resuming). Default `exp`.
    pub name: String,
    /// Continue the evolution already in `project/name`.
    pub resume: bool,
    /// Let hyperparameters whose value is 0 move (additive step), which YOLOv5's multiplicative mutation
    /// never does. Default off.
    pub evolve_zeros: bool,
    /// When generations stop early ([`Pruner`]). Default none; a resume keeps the evolution's own.
    pub prune: Pruner,
    /// Failed generations (after their retry) this call tolerates before it stops. Default none (no limit).
    pub max_failures: Option<usize>,
    /// Re-train the base hyperparameters and each new best candidate this many more times with other seeds
    /// (classic GA); parents are chosen by mean fitness. Default 0 (YOLOv5: every fitness is believed).
    pub reevaluate: usize,
    /// Rung validations (pruning) use only the first n validation images, the same for every generation; the
    /// final validation always uses all. Default none (all images).
    pub rung_val_images: Option<usize>,
    /// What the evolution optimises: [`Objective::Fitness`] alone (YOLOv5), or fitness with speed, size,
    /// memory or latency, whose Pareto order then chooses the parents (NSGA-II). Every generation's
    /// measurements are recorded in generations.csv either way; a resume keeps the evolution's own.
    pub objectives: Vec<Objective>,
    /// Keep the evolution in a PostgreSQL database instead of the folder's evolve.csv: workers on any machine
    /// given the same URL and `name` join one experiment ([`store::pg`]); the folder `project/name` mirrors it.
    /// Default none (the file store).
    pub storage: Option<store::StorageUrl>,
    /// Seconds without a heartbeat after which a database trial's worker counts as dead and its row is taken
    /// over. Default 300.
    pub heartbeat_grace: f64,
    /// Failures to inject at rung validations (tests of the recovery path): how many, and the message.
    #[doc(hidden)]
    pub inject_failures: Option<(usize, String)>,
    /// The settings given by a setter (what a resume checks against the evolution's opt.yaml).
    pub(crate) given: std::collections::BTreeSet<&'static str>,
}

crate::setters! { Evolver, given;
    /// Generations (see the field).
    generations: usize => |v| v;
    /// Algorithm.
    algorithm: Ga => |v| v;
    /// Parent combination (classic GA).
    parent: Parent => |v| v;
    /// Mutation seed.
    seed: u64 => |v| v;
    /// Worker threads.
    workers: usize => |v| v;
    /// Parent folder.
    project: impl Into<PathBuf> => |v| v.into();
    /// Folder name.
    name: impl Into<String> => |v| v.into();
    /// Let zero-valued hyperparameters move.
    evolve_zeros: bool => |v| v;
    /// Pruning of generations that fall behind.
    prune: Pruner => |v| v;
    /// Failed generations tolerated before the run stops.
    max_failures: usize => |v| Some(v);
    /// Validation images of rung validations.
    rung_val_images: usize => |v| Some(v);
    /// Re-evaluations of the base and of each new best candidate.
    reevaluate: usize => |v| v;
    /// Heartbeat grace period of database trials, in seconds.
    heartbeat_grace: f64 => |v| v;
}

impl Evolver {
    /// Evolve the hyperparameters of `base`.
    pub fn new(base: Trainer) -> Self {
        Evolver {
            base,
            generations: 300,
            algorithm: Ga::Classic,
            parent: Parent::Single,
            space: Space::default(),
            fitness: Fitness::Weights(crate::metrics::FITNESS_WEIGHTS),
            seed: 0,
            workers: 1,
            devices: vec![],
            project: PathBuf::from("runs/evolve"),
            name: "exp".into(),
            resume: false,
            evolve_zeros: false,
            prune: Pruner::None,
            max_failures: None,
            rung_val_images: None,
            reevaluate: 0,
            objectives: vec![Objective::Fitness],
            storage: None,
            heartbeat_grace: store::pg::DEFAULT_GRACE_S,
            inject_failures: None,
            given: Default::default(),
        }
    }

    /// Change the search space: `.space(|s| s.fix("fliplr").bounds("lr0", 1e-4, 0.05).gain("momentum", 0.3))`.
    pub fn space(mut self, f: impl FnOnce(Space) -> Space) -> Self {
        self.space = f(self.space);
        self
    }
    /// Fitness weights of (P, R, mAP@0.5, mAP@0.5:0.95).
    pub fn fitness(mut self, w: [f64; 4]) -> Self {
        self.fitness = Fitness::Weights(w);
        self
    }
    /// Fitness as any function of the 7 results.
    pub fn fitness_fn(mut self, f: impl Fn(&[f64; 7]) -> f64 + Send + Sync + 'static) -> Self {
        self.fitness = Fitness::Function(Arc::new(f));
        self
    }
    /// What the evolution optimises (see the field): `.objectives([Objective::Fitness, Objective::Latency])`.
    pub fn objectives(mut self, o: impl IntoIterator<Item = Objective>) -> Self {
        self.objectives = o.into_iter().collect();
        self.given.insert("objectives");
        self
    }
    /// Devices for the workers.
    pub fn devices<S: Into<String>>(mut self, d: impl IntoIterator<Item = S>) -> Self {
        self.devices = d.into_iter().map(Into::into).collect();
        self
    }
    /// Forget that the settings failing `keep` were set (see [`Trainer::given_only`]).
    #[doc(hidden)]
    pub fn given_only(mut self, keep: impl Fn(&str) -> bool) -> Self {
        self.given.retain(|s| keep(s));
        self
    }

    /// Make the next `n` training attempts fail at their first rung validation with `message` (tests of the
    /// retry and failure paths; "CUDA out of memory" exercises the batch halving).
    #[doc(hidden)]
    pub fn inject_failures(mut self, n: usize, message: &str) -> Self {
        self.inject_failures = Some((n, message.into()));
        self
    }

    /// Keep the evolution in a PostgreSQL database (`postgres://user:password@host:port/db`); `name` names the
    /// experiment, which every worker given the same URL and name joins.
    pub fn storage(mut self, url: impl Into<String>) -> Self {
        self.storage = Some(store::StorageUrl::new(url));
        self
    }

    /// Load an evolution (a folder holding evolve.csv, or an evolve.csv alone: yolo-lab's or YOLOv5's) into a
    /// new experiment `name` of the database of [`Evolver::storage`], for workers to continue. The scenario is
    /// the folder's opt.yaml and hyp.yaml when it has them, else this evolver's. Returns the rows loaded.
    pub fn import(&self, from: impl AsRef<Path>) -> Result<usize> {
        let url = self.storage.as_ref().ok_or_else(|| Error::Config {
            name: "storage",
            message: "import needs a database: Evolver::storage(\"postgres://...\")".into(),
        })?;
        store::join::import(self, url.expose(), from.as_ref())
    }

    /// Continue the evolution in `project/name`.
    pub fn resume(mut self) -> Self {
        self.resume = true;
        self
    }

    /// The evolver a resume runs: the base trainer and mutation seed of the evolution's `opt.yaml` and
    /// `hyp.yaml`, with this evolver's runtime settings. Errors when this evolver asks for other settings.
    fn resolve_resume(&self, dir: &Path) -> Result<Option<Evolver>> {
        let opt = dir.join("opt.yaml");
        if !self.resume || !opt.is_file() {
            return Ok(None);
        }
        let settings = RunSettings::read(&opt)?;
        let hyp_file = dir.join("hyp.yaml");
        let hyp = if hyp_file.is_file() { Hyp::load(&hyp_file)? } else { Hyp::load(&settings.hyp)? };
        let mut clash = crate::train::settings::conflicts(&self.base, &settings, &hyp)?;
        let stored_seed = settings.evolve_seed.unwrap_or(0);
        if self.given.contains("seed") && self.seed != stored_seed {
            clash.push(format!("evolve seed: evolution {stored_seed}, asked {}", self.seed));
        }
        let size = self.population_size();
        if self.given.contains("algorithm") && size != settings.population {
            let show = |s: Option<usize>| s.map(|n| format!("population of {n}")).unwrap_or("classic".into());
            clash.push(format!("algorithm: evolution {}, asked {}", show(settings.population), show(size)));
        }
        if !clash.is_empty() {
            let own = "the evolution's own settings (opt.yaml, hyp.yaml)";
            return Err(crate::train::settings::refused(dir, own, &clash, "start a new evolution"));
        }
        let mut base = settings.trainer(hyp, &opt)?;
        base.take_runtime(&self.base);
        let mut e = self.clone();
        e.base = base;
        e.seed = if self.given.contains("seed") { self.seed } else { stored_seed };
        // `--resume` alone continues to the evolution's own target
        if !self.given.contains("generations")
            && let Some(n) = settings.evolve
        {
            e.generations = n;
        }
        if !self.given.contains("algorithm")
            && let Some(n) = settings.population
        {
            e.algorithm = Ga::Population(PopulationSettings { size: n, ..Default::default() });
        }
        Ok(Some(e))
    }

    /// Individuals per generation of the population GA; `None` for the classic GA (opt.yaml's `population`).
    fn population_size(&self) -> Option<usize> {
        match &self.algorithm {
            Ga::Classic => None,
            Ga::Population(p) => Some(p.size),
        }
    }

    /// Record the evolution's settings (`opt.yaml`, with `evolve` = generations) and base hyperparameters
    /// (`hyp.yaml`) in its folder, unless a resume already has them.
    fn save_settings(&self, dir: &Path, hyp: &Hyp) -> Result<()> {
        let _lock = csv::lock(dir)?;
        let opt = dir.join("opt.yaml");
        if !opt.is_file() {
            let mut s = RunSettings::of(&self.base);
            s.evolve = Some(self.generations);
            s.evolve_seed = Some(self.seed);
            s.population = self.population_size();
            crate::fsutil::write_atomic(&opt, s.to_yaml().as_bytes())?;
        }
        let h = dir.join("hyp.yaml");
        if !h.is_file() {
            crate::fsutil::write_atomic(&h, hyp.to_yaml_string().as_bytes())?;
        }
        Ok(())
    }

    /// The folder this evolution writes to.
    pub fn dir(&self) -> PathBuf {
        if self.resume {
            self.project.join(&self.name)
        } else {
            crate::train::increment_dir(&self.project, &self.name, false)
        }
    }

    fn fitness_closure(&self) -> impl Fn(&[f64; 7]) -> f64 + '_ {
        move |r| self.fitness.eval(r)
    }

    /// Run the evolution (validates everything first). A resume continues with the evolution's own base
    /// trainer and seed (its `opt.yaml` and `hyp.yaml`).
    pub fn run(&self) -> Result<EvolveRun> {
        if let Some(url) = &self.storage {
            return store::join::run(self, url.expose());
        }
        let dir = self.dir();
        let store = store::FileStore::new(&dir);
        match self.resolve_resume(&dir)? {
            Some(e) => e.run_in(dir, &store),
            None => self.run_in(dir, &store),
        }
    }

    /// Validate the settings. Returns the base genome's hyperparameters (with YOLOv5's `anchors` gene), the
    /// base hyperparameters as given, and the search space.
    fn check(&self, dir: &Path) -> Result<(Hyp, Hyp, Space)> {
        if self.generations == 0 {
            return Err(Error::Config { name: "generations", message: "must be at least 1".into() });
        }
        if self.workers == 0 {
            return Err(Error::Config { name: "evolve workers", message: "must be at least 1".into() });
        }
        if self.objectives.is_empty() {
            return Err(Error::Config { name: "objectives", message: "give at least one (Objective::Fitness)".into() });
        }
        if let Ga::Population(p) = &self.algorithm
            && p.size < 2
        {
            return Err(Error::Config {
                name: "population",
                message: format!("{} individuals cannot breed; give at least 2", p.size),
            });
        }
        self.base.validate()?;
        for d in &self.devices {
            self.base.clone().device(d.as_str()).validate()?;
        }
        let mut space = self.space.clone();
        space.validate()?;
        if space.genes().all(|(_, g)| g.gain == 0.0) && self.algorithm == Ga::Classic {
            return Err(Error::Config {
                name: "space",
                message: "every gain is 0: the classic GA could never mutate".into(),
            });
        }
        let mut hyp = match &self.base.hyp {
            HypSource::Name(n) => Hyp::load(n)?,
            HypSource::Hyp(h) => (**h).clone(),
        };
        let base_hyp = hyp.clone();
        if self.base.noautoanchor {
            hyp.remove_anchors();
            space = space.remove("anchors");
        } else if hyp.anchors.is_none() {
            hyp.set("anchors", 3.0)?; // YOLOv5 appends anchors: 3 (PR #3887)
        }
        if self.resume && self.storage.is_none() && !dir.join("evolve.csv").is_file() {
            return Err(Error::Config {
                name: "resume",
                message: format!("{} has no evolve.csv to resume", dir.display()),
            });
        }
        Ok((hyp, base_hyp, space))
    }

    /// Write the evolution's settings into `dir` (a resume keeps those it has) and attach the store. Returns
    /// the evolver with the folder's pruner and objectives, the base genome and the space to evolve.
    fn setup(
        &self,
        dir: &Path,
        store: &dyn store::Store,
        checked: (Hyp, Hyp, Space),
    ) -> Result<(Evolver, structure::Genome, Space)> {
        let (hyp, base_hyp, space) = checked;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        self.save_settings(dir, &base_hyp)?;
        // a resume keeps the pruner the evolution started with unless another is asked for
        let mut evo = self.clone();
        match prune::stored(dir)? {
            Some(p) if !self.given.contains("prune") => evo.prune = p,
            _ => {}
        }
        prune::store(dir, evo.prune)?;
        match objective::stored(dir)? {
            Some(o) if !self.given.contains("objectives") => evo.objectives = o,
            _ => objective::store(dir, &evo.objectives)?,
        }
        let space = structure::restore(dir, space)?;
        let structure = structure::base_values(&self.base, &space)?;
        let base = structure::Genome { hyp, structure };
        store.attach(&store::Experiment {
            name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            population: self.population_size(),
            generations: self.generations,
            fitness: match &self.fitness {
                Fitness::Weights(w) => w.to_vec(),
                Fitness::Function(_) => vec![],
            },
            objectives: evo.objectives.iter().map(|o| o.column().to_string()).collect(),
            hyp_keys: base.pairs().into_iter().map(|(k, _)| k).collect(),
            dir: dir.to_path_buf(),
        })?;
        Ok((evo, base, space))
    }

    fn run_in(&self, dir: PathBuf, store: &dyn store::Store) -> Result<EvolveRun> {
        let checked = self.check(&dir)?;
        let data = self.base.prepare_data()?;
        let (evo, base, space) = self.setup(&dir, store, checked)?;
        let injections =
            Arc::new(std::sync::atomic::AtomicUsize::new(self.inject_failures.as_ref().map_or(0, |i| i.0)));
        let ctx = worker::Ctx {
            evo: &evo,
            dir: dir.clone(),
            store,
            base,
            space,
            data,
            best: Arc::new(Mutex::new(None)),
            injections,
            failures: Default::default(),
        };
        let t0 = Instant::now();
        match &self.algorithm {
            Ga::Classic => ctx.classic()?,
            Ga::Population(s) => ctx.population(s)?,
        }
        let table = store.snapshot()?.table;
        let fit = self.fitness_closure();
        csv::write_hyp_evolve(&dir, &table, &fit)?;
        let fits: Vec<f64> = (0..table.rows.len()).map(|i| fit(&table.results(i))).collect();
        let best_row = top_rows(&fits, 1).first().copied();
        let run = EvolveRun {
            dir: dir.clone(),
            rows: table.rows.len(),
            best_row,
            best_fitness: best_row.map(|i| fits[i]).unwrap_or(0.0),
            seconds: t0.elapsed().as_secs_f64(),
            fitness: self.fitness.clone(),
        };
        self.base.report().summary(&format!(
            "evolve: {} generations finished in {:.1} s. Results saved to {}\nUsage example: yolo-lab train --hyp {}",
            run.rows,
            run.seconds,
            dir.display(),
            dir.join("hyp_evolve.yaml").display()
        ));
        Ok(run)
    }
}

/// The outcome of [`Evolver::run`].
#[derive(Debug, Clone)]
pub struct EvolveRun {
    /// The evolution folder.
    pub dir: PathBuf,
    /// Rows of evolve.csv.
    pub rows: usize,
    /// Row with the best fitness.
    pub best_row: Option<usize>,
    /// Its fitness.
    pub best_fitness: f64,
    /// Seconds of this call.
    pub seconds: f64,
    pub(crate) fitness: Fitness,
}

impl EvolveRun {
    /// The best hyperparameters.
    pub fn best_hyp(&self) -> Result<Hyp> {
        let r = self.results()?;
        r.hyp(r.best_row())
    }
}

impl fmt::Display for EvolveRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "evolution {}: {} rows, best fitness {:.5}", self.dir.display(), self.rows, self.best_fitness)?;
        if let Some(b) = self.best_row {
            write!(f, " at row {b}")?;
        }
        Ok(())
    }
}
