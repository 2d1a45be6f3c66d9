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
pub mod meta;

pub use ga::{FACTOR_CLIP, MUTATION_PROB, MUTATION_SIGMA, Parent, PopulationSettings};
pub(crate) use ga::{classic_next, population_next, top_rows};
pub use meta::{Gene, META, Space};

use crate::data::{Stream, rng_for};
use crate::error::{Error, Result, panic_message};
use crate::hyp::Hyp;
use crate::report::Reporter;
use crate::train::settings::RunSettings;
use crate::train::{HypSource, ProgressMode, Trainer};
use rand::Rng;
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
        let dir = self.dir();
        match self.resolve_resume(&dir)? {
            Some(e) => e.run_in(dir),
            None => self.run_in(dir),
        }
    }

    fn run_in(&self, dir: PathBuf) -> Result<EvolveRun> {
        if self.generations == 0 {
            return Err(Error::Config { name: "generations", message: "must be at least 1".into() });
        }
        if self.workers == 0 {
            return Err(Error::Config { name: "evolve workers", message: "must be at least 1".into() });
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
        if self.resume && !dir.join("evolve.csv").is_file() {
            return Err(Error::Config {
                name: "resume",
                message: format!("{} has no evolve.csv to resume", dir.display()),
            });
        }
        let data = self.base.prepare_data()?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        self.save_settings(&dir, &base_hyp)?;
        let ctx = Ctx { evo: self, dir: dir.clone(), hyp, space, data, best: Arc::new(Mutex::new(None)) };
        let t0 = Instant::now();
        match &self.algorithm {
            Ga::Classic => ctx.classic()?,
            Ga::Population(s) => ctx.population(s)?,
        }
        let table = csv::read(&dir.join("evolve.csv"))?;
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

/// Shared state of one evolution.
struct Ctx<'a> {
    evo: &'a Evolver,
    dir: PathBuf,
    hyp: Hyp,
    space: Space,
    data: crate::train::PreparedData,
    best: Arc<Mutex<Option<(usize, f64)>>>,
}

/// What [`Ctx::record`] writes for one generation.
struct Generation<'a> {
    label: &'a str,
    /// The claim this row settles (classic GA).
    claim: Option<usize>,
    worker: usize,
    device: &'a str,
    hyp: &'a Hyp,
    out: &'a Trained,
    wall_s: f64,
    changes: &'a [(String, f64)],
}

/// Outcome of one generation's training.
struct Trained {
    results: [f64; 7],
    note: String,
    train_s: f64,
}

impl Ctx<'_> {
    fn device(&self, worker: usize) -> String {
        if self.evo.devices.is_empty() {
            self.evo.base.device.clone()
        } else {
            self.evo.devices[worker % self.evo.devices.len()].clone()
        }
    }

    /// Train one generation; failures and non-finite results become zeros with a note.
    fn train(&self, hyp: &Hyp, device: &str, data: &mut crate::train::PreparedData) -> Trained {
        let mut t = self
            .evo
            .base
            .clone()
            .hyp(hyp.clone())
            .device(device)
            .progress(ProgressMode::Silent)
            .reporter(Reporter::silent());
        t.evolve_mode = true;
        t.project = self.dir.parent().map(|p| p.to_path_buf()).unwrap_or_default();
        t.name = self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        t.resume = None;
        let start = Instant::now();
        let out = t.fit_with(data);
        let failed_s = start.elapsed().as_secs_f64();
        match out {
            Ok(run) => {
                // training and validation only: the rest of the generation's wall time is overhead
                let train_s = run.seconds;
                match run.final_val {
                    Some(v) => {
                        let r =
                            [v.metrics[0], v.metrics[1], v.metrics[2], v.metrics[3], v.loss[0], v.loss[1], v.loss[2]];
                        if r.iter().all(|x| x.is_finite()) {
                            Trained { results: r, note: String::new(), train_s }
                        } else {
                            Trained { results: [0.0; 7], note: "non-finite validation results".into(), train_s }
                        }
                    }
                    None => Trained { results: [0.0; 7], note: "no validation ran".into(), train_s },
                }
            }
            Err(e) => Trained { results: [0.0; 7], note: format!("training failed: {e}"), train_s: failed_s },
        }
    }

    /// Append a generation's row and side-file line, rewrite hyp_evolve.yaml, print the summary line.
    fn record(&self, g: Generation<'_>) -> Result<usize> {
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
            note,
        ];
        csv::append_generation(&self.dir, &lock, &fields)?;
        drop(lock);
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

    fn target_rows(&self) -> usize {
        match &self.evo.algorithm {
            Ga::Classic => self.evo.generations,
            Ga::Population(s) => self.evo.generations * s.size,
        }
    }

    /// Run `work` on every worker thread, each with its own copy of the prepared data and its device, and
    /// wait for all of them; a worker's error, or its panic, is the pool's.
    fn pool(&self, work: impl Fn(usize, &str, &mut crate::train::PreparedData) -> Result<()> + Sync) -> Result<()> {
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

    fn classic(&self) -> Result<()> {
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
                    let parents = if table.rows.is_empty() && generation > 0 { base_table(&self.hyp) } else { table };
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
                let out = self.train(&hyp, device, data);
                let label = generation.to_string();
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

    fn population(&self, s: &PopulationSettings) -> Result<()> {
        let genes: Vec<(String, (f64, f64))> =
            self.space.genes().filter(|(_, g)| g.population).map(|(k, g)| (k.to_string(), (g.low, g.high))).collect();
        if genes.is_empty() {
            return Err(Error::Config { name: "space", message: "no gene is evolved by the population GA".into() });
        }
        let ranges: Vec<(f64, f64)> = genes.iter().map(|g| g.1).collect();
        let pop_file = self.dir.join("evolve_population.yaml");
        let existing = csv::read(&self.dir.join("evolve.csv"))?.rows.len();
        let (mut generation, mut pop) = if self.evo.resume && pop_file.is_file() {
            read_population(&pop_file, &genes)?
        } else {
            // the six presets first, then random individuals
            let mut rng = rng_for(self.evo.seed, Stream::PopulationInit, &[]);
            let mut pop: Vec<Vec<f64>> = crate::hyp::PRESETS
                .iter()
                .filter_map(|(n, _)| Hyp::load(n).ok())
                .map(|h| genes.iter().map(|(k, _)| h.get(k).unwrap_or(0.0)).collect())
                .collect();
            pop.truncate(s.size);
            while pop.len() < s.size {
                pop.push(ranges.iter().map(|&(lo, hi)| if hi > lo { rng.random_range(lo..hi) } else { lo }).collect());
            }
            (0, pop)
        };
        let fit = self.evo.fitness_closure();
        while generation < self.evo.generations {
            write_population(&pop_file, generation, &pop, &genes)?;
            // individuals of this generation already recorded (resume): rows beyond generation * size
            let done = existing.saturating_sub(generation * s.size).min(s.size);
            let table = csv::read(&self.dir.join("evolve.csv"))?;
            let mut scores = vec![0.0; pop.len()];
            for (k, sc) in scores.iter_mut().enumerate().take(done) {
                *sc = fit(&table.results(generation * s.size + k));
            }
            let next = Mutex::new(done);
            let scores_m = Mutex::new(scores);
            self.pool(|w, device, data| -> Result<()> {
                loop {
                    let k = {
                        let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                        if *n >= pop.len() {
                            return Ok(());
                        }
                        *n += 1;
                        *n - 1
                    };
                    let mut hyp = self.hyp.clone();
                    for ((key, _), v) in genes.iter().zip(&pop[k]) {
                        let _ = hyp.set(key, *v);
                    }
                    let start = Instant::now();
                    let out = self.train(&hyp, device, data);
                    let label = format!("{generation}.{k}");
                    let wall_s = start.elapsed().as_secs_f64();
                    self.record(Generation {
                        label: &label,
                        claim: None,
                        worker: w,
                        device,
                        hyp: &hyp,
                        out: &out,
                        wall_s,
                        changes: &[],
                    })?;
                    scores_m.lock().unwrap_or_else(|p| p.into_inner())[k] = fit(&out.results);
                }
            })?;
            let scores = scores_m.into_inner().unwrap_or_else(|p| p.into_inner());
            let mut rng = rng_for(self.evo.seed, Stream::PopulationGeneration, &[generation as u64]);
            pop = population_next(&pop, &scores, &ranges, generation, self.evo.generations, s, &mut rng);
            generation += 1;
        }
        Ok(())
    }
}

/// A one-row table holding the base hyperparameters, as the parent of generations claimed before any row
/// is recorded.
fn base_table(hyp: &Hyp) -> csv::EvolveCsv {
    let keys: Vec<&str> = hyp.keys().collect();
    let columns = csv::METRIC_KEYS.iter().copied().chain(keys.iter().copied()).map(String::from).collect();
    let row = [0.0; 7].into_iter().chain(keys.iter().map(|k| hyp.get(k).unwrap_or(0.0))).collect();
    csv::EvolveCsv { columns, rows: vec![row] }
}

/// `evolve_population.yaml`: `generation{g}number{i}: {gene: value}` for the population about to be evaluated.
fn write_population(
    path: &std::path::Path,
    generation: usize,
    pop: &[Vec<f64>],
    genes: &[(String, (f64, f64))],
) -> Result<()> {
    let mut s = String::new();
    for (i, ind) in pop.iter().enumerate() {
        s.push_str(&format!("generation{generation}number{i}:\n"));
        for ((k, _), v) in genes.iter().zip(ind) {
            s.push_str(&format!("  {k}: {}\n", crate::fsutil::yaml_float(*v)));
        }
    }
    crate::fsutil::write_atomic(path, s.as_bytes())
}

fn read_population(path: &std::path::Path, genes: &[(String, (f64, f64))]) -> Result<(usize, Vec<Vec<f64>>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| Error::yaml(path, &e))?;
    let map = v
        .as_mapping()
        .ok_or_else(|| Error::DataConfig { path: path.into(), message: "expected a mapping of individuals".into() })?;
    let mut generation = 0;
    let mut pop = Vec::new();
    for (name, ind) in map {
        let name = name.as_str().unwrap_or_default();
        if let Some(g) =
            name.strip_prefix("generation").and_then(|r| r.split("number").next()).and_then(|g| g.parse().ok())
        {
            generation = g;
        }
        pop.push(
            genes
                .iter()
                .map(|(k, (lo, _))| ind.get(k.as_str()).and_then(serde_yaml::Value::as_f64).unwrap_or(*lo))
                .collect(),
        );
    }
    Ok((generation, pop))
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
