//! Experiments of a database store seen from the command line and the library: a worker that creates or joins
//! one ([`Evolver::run`] with a storage URL), `evolve-export` (an experiment as an
//! evolution folder) and `evolve-import` (an evolution folder, or YOLOv5's evolve.csv, as a new experiment).

use super::mirror;
use super::pg::{DEFAULT_GRACE_S, PgStore, STORAGE_MARKER};
use super::{SETTINGS_FILES, Store};
use crate::error::{Error, Result};
use crate::evolve::{EvolveRun, Evolver, Fitness, Ga};
use crate::report::Reporter;
use std::path::Path;

/// Refuse a folder that holds a file-store evolution, or the mirror of another experiment or database.
fn check_folder(dir: &Path, masked: &str, name: &str, exists: bool) -> Result<()> {
    let marker = dir.join(STORAGE_MARKER);
    let text = std::fs::read_to_string(&marker).ok();
    let refuse = |why: String| Error::Config { name: "storage", message: format!("{}: {why}", dir.display()) };
    match text {
        Some(t) => {
            let mut lines = t.lines();
            let (url, exp) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
            if url != masked || exp != name {
                return Err(refuse(format!(
                    "mirrors experiment `{exp}` of {url}, not `{name}` of {masked}: give another --project or --name"
                )));
            }
            if !exists {
                return Err(refuse(format!(
                    "mirrors experiment `{name}`, which {masked} no longer has (was the database reset?): load the \
                     mirror back with `yolo-lab evolve-import`, or remove the folder to start afresh"
                )));
            }
        }
        None if dir.join("evolve.csv").is_file() || dir.join("opt.yaml").is_file() => {
            return Err(refuse(
                "holds an evolution of its own (file store); give another --project or --name, or load it into the \
                 database with `yolo-lab evolve-import`"
                    .into(),
            ));
        }
        None => {}
    }
    Ok(())
}

/// [`Evolver::run`] with a database: join experiment `evo.name` when it exists
/// (its settings files written into the folder, then run as a resume of them), else create it from `evo`.
pub(in crate::evolve) fn run(evo: &Evolver, url: &str) -> Result<EvolveRun> {
    let dir = evo.project.join(&evo.name);
    let store = PgStore::connect(url, &dir, evo.heartbeat_grace, evo.base.report())?;
    let files = store.settings_files(&evo.name)?;
    check_folder(&dir, store.masked_url(), &evo.name, files.is_some())?;
    store.set_creating(files.is_none());
    let e = match files {
        Some(files) => joined(evo, &store, &dir, &files)?,
        None => evo.clone(),
    };
    e.base.report().info(&format!(
        "evolve: experiment `{}` in {} (mirror: {})",
        evo.name,
        store.masked_url(),
        dir.display()
    ));
    match e.run_in(dir.clone(), &store) {
        // another worker created the experiment at the same moment: join it instead
        Err(_) if store.raced() => {
            for f in SETTINGS_FILES {
                let _ = std::fs::remove_file(dir.join(f));
            }
            let files =
                store.settings_files(&evo.name)?.ok_or_else(|| store.error("the experiment vanished".into()))?;
            let e = joined(evo, &store, &dir, &files)?;
            e.run_in(dir, &store)
        }
        r => r,
    }
}

/// The evolver of a worker joining an existing experiment: its settings files written into `dir`, then read
/// back as a resume reads them (so flags given that contradict them are named errors).
fn joined(evo: &Evolver, store: &PgStore, dir: &Path, files: &[(String, String)]) -> Result<Evolver> {
    write_settings(dir, files)?;
    evo.clone().resume().resolve_resume(dir)?.ok_or_else(|| store.error("the experiment has no opt.yaml".into()))
}

/// Write an experiment's settings files (those of [`SETTINGS_FILES`]) into `dir`.
fn write_settings(dir: &Path, files: &[(String, String)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (name, text) in files.iter().filter(|(n, _)| SETTINGS_FILES.contains(&n.as_str())) {
        crate::fsutil::write_atomic(&dir.join(name), text.as_bytes())?;
    }
    Ok(())
}

/// Write experiment `name` of the database at `url` into `out` as a file store would hold it: evolve.csv,
/// generations.csv, hyp_evolve.yaml and its settings files (opt.yaml, hyp.yaml, ...). Returns the fitness weights
/// hyp_evolve.yaml was chosen by (YOLOv5's where the experiment used a fitness function).
pub fn export(url: &str, name: &str, out: &Path) -> Result<[f64; 4]> {
    let store = PgStore::connect(url, out, DEFAULT_GRACE_S, Reporter::new(crate::report::ProgressMode::Silent))?;
    let files = store.settings_files(name)?.ok_or_else(|| store.error(format!("no experiment named `{name}`")))?;
    let (keys, weights, trials) = store.trials(name)?;
    let weights: [f64; 4] = weights.try_into().unwrap_or(crate::metrics::FITNESS_WEIGHTS);
    let fitness = Fitness::Weights(weights);
    mirror::write(out, &keys, &trials, Some(&|r| fitness.eval(r)))?;
    write_settings(out, &files)?;
    Ok(weights)
}

/// `yolo-lab evolve-import`: load an evolution (a folder with evolve.csv, or an evolve.csv alone, YOLOv5's or
/// ours) into a new experiment `evo.name` of the database at `url`, so that workers continue it. The scenario
/// is the folder's opt.yaml and hyp.yaml when it has them, else `evo`'s. Returns the rows loaded.
pub(in crate::evolve) fn import(evo: &Evolver, url: &str, from: &Path) -> Result<usize> {
    let (src, csv_path) = if from.is_dir() {
        (from.to_path_buf(), from.join("evolve.csv"))
    } else {
        (from.parent().unwrap_or(Path::new(".")).to_path_buf(), from.to_path_buf())
    };
    if !csv_path.is_file() {
        return Err(Error::io(&csv_path, std::io::Error::new(std::io::ErrorKind::NotFound, "no evolve.csv to import")));
    }
    let dir = evo.project.join(&evo.name);
    let store = PgStore::connect(url, &dir, evo.heartbeat_grace, evo.base.report())?;
    if store.settings_files(&evo.name)?.is_some() {
        return Err(store.error(format!("experiment `{}` exists already: import into a new --name", evo.name)));
    }
    let same = |a: &Path, b: &Path| a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b);
    if !same(&src, &dir) {
        check_folder(&dir, store.masked_url(), &evo.name, false)?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let e = if src.join("opt.yaml").is_file() {
        for f in SETTINGS_FILES {
            if src.join(f).is_file() && !same(&src, &dir) {
                std::fs::copy(src.join(f), dir.join(f)).map_err(|e| Error::io(src.join(f), e))?;
            }
        }
        evo.clone().resume().resolve_resume(&dir)?.ok_or_else(|| store.error("no opt.yaml".into()))?
    } else {
        evo.clone()
    };
    let trials = mirror::read_trials(&csv_path, &|r| e.fitness.eval(r))?;
    if e.algorithm != Ga::Classic {
        // its populations are not in the folder's rows: a database could not breed on from them
        return Err(Error::Config {
            name: "storage",
            message: "a population-GA evolution cannot be imported yet (start it in the database instead)".into(),
        });
    }
    let checked = e.check(&dir)?;
    let (_, base, _) = e.setup(&dir, &store, checked)?;
    let keys: Vec<String> = base.pairs().into_iter().map(|(k, _)| k).collect();
    let n = store.load(&trials, &keys)?;
    // the pruner's measurements come along, so that new trials are judged against the imported ones too
    let rungs_csv = src.join(crate::evolve::prune::RUNGS_FILE);
    if let Ok(text) = std::fs::read_to_string(&rungs_csv) {
        let rungs = store.rungs();
        for line in text.lines().skip(1) {
            if let [label, epoch, f] = line.split(',').collect::<Vec<_>>()[..]
                && let (Ok(epoch), Ok(f)) = (epoch.parse(), f.parse())
            {
                rungs.record(label, epoch, f)?;
            }
        }
    }
    let fit = |r: &[f64; 7]| e.fitness.eval(r);
    mirror::write(&dir, &keys, &store.finished_trials(&keys)?, Some(&fit))?;
    Ok(n)
}
