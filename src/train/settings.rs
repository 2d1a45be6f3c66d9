//! A run's settings as YOLOv5's `opt.yaml` (`train.py` saves `vars(opt)`), and resuming with them.
//!
//! `train.py --resume` replaces every option by the run's own opt.yaml; yolo-lab does the same, and refuses a
//! resume that asks for a setting the run was not started with, before it reads data or writes a byte. Only
//! settings that do not change what is computed may differ: device, loader workers, image cache, progress
//! output and the run-folder lookup (`project`, `name`, `exist_ok`).

use super::{DataSource, Freeze, FreezeSchedule, HypSource, Trainer};
use crate::data::{Cache, Dataset};
use crate::error::{Error, Result};
use crate::hyp::Hyp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Trainer settings that may differ between a run and its resume: they change speed or output, not results.
pub const RUNTIME_SETTINGS: [&str; 9] =
    ["device", "workers", "cache", "progress", "log_every", "project", "name", "exist_ok", "resume"];

/// The settings of a run, under YOLOv5's opt.yaml keys (plus yolo-lab's own at the end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSettings {
    /// Initial weights ('' = from scratch).
    pub weights: String,
    /// Model config name or yaml path.
    pub cfg: String,
    /// Data set: registry name or data yaml path (absolute).
    pub data: String,
    /// Hyperparameters: preset name, yaml path, or `(values)` when given as values (see hyp.yaml).
    pub hyp: String,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Image size.
    pub imgsz: i64,
    /// Rectangular training.
    pub rect: bool,
    /// Whether this run was resumed.
    pub resume: bool,
    /// Save only the final checkpoint.
    pub nosave: bool,
    /// Validate only the final epoch.
    pub noval: bool,
    /// Skip AutoAnchor.
    pub noautoanchor: bool,
    /// Generations of an evolution (null for a training; `false`, as older files wrote it, reads as null).
    #[serde(deserialize_with = "count_or_null")]
    pub evolve: Option<usize>,
    /// Image cache (null, ram, ram-encoded, disk).
    pub cache: Option<String>,
    /// Device.
    pub device: String,
    /// Multi-scale training.
    pub multi_scale: bool,
    /// Optimizer (SGD, Adam, AdamW).
    pub optimizer: String,
    /// Sharpness-aware minimisation.
    pub sam: bool,
    /// Frozen layers' BatchNorm in eval mode.
    #[serde(default)]
    pub freeze_bn: bool,
    /// Depth multiple replacing the model yaml's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth_multiple: Option<f64>,
    /// Width multiple replacing the model yaml's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width_multiple: Option<f64>,
    /// Loader workers.
    pub workers: usize,
    /// Run folder parent.
    pub project: PathBuf,
    /// Run folder name.
    pub name: String,
    /// Reuse an existing run folder.
    pub exist_ok: bool,
    /// Cosine schedule.
    pub cos_lr: bool,
    /// Label smoothing.
    pub label_smoothing: f64,
    /// Varifocal objectness loss.
    pub varifocal: bool,
    /// Early-stopping patience.
    pub patience: usize,
    /// Frozen module indices.
    pub freeze: Vec<usize>,
    /// Seed.
    pub seed: u64,
    /// Staged freezing (yolo-lab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_schedule: Option<FreezeSchedule>,
    /// The data set itself when it was given as a value rather than a name (yolo-lab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<Dataset>,
    /// Mutation seed of an evolution (yolo-lab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evolve_seed: Option<u64>,
    /// Population size of a population-GA evolution (yolo-lab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub population: Option<usize>,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings::of(&Trainer::default())
    }
}

fn count_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<usize>, D::Error> {
    use serde::de::Error as _;
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::Null | serde_yaml::Value::Bool(false) => Ok(None),
        serde_yaml::Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64().map(|n| n as usize)),
        other => Err(D::Error::custom(format!("`evolve` must be a generation count or null, got {other:?}"))),
    }
}

/// An existing file as an absolute path (so a resume from another folder finds it); other names unchanged.
fn absolute_if_file(s: &str) -> String {
    let p = Path::new(s);
    if p.is_file() { p.canonicalize().map(|c| c.display().to_string()).unwrap_or_else(|_| s.into()) } else { s.into() }
}

fn cache_name(c: Cache) -> Option<String> {
    match c {
        Cache::None => None,
        Cache::Ram => Some("ram".into()),
        Cache::RamEncoded => Some("ram-encoded".into()),
        Cache::Disk => Some("disk".into()),
    }
}

impl RunSettings {
    /// The settings of a trainer.
    pub fn of(t: &Trainer) -> Self {
        let (data, dataset) = match &t.data {
            DataSource::Name(n) => (absolute_if_file(n), None),
            DataSource::Dataset(d) => (d.name.clone(), Some(d.clone())),
        };
        RunSettings {
            weights: t.weights.as_ref().map(|w| absolute_if_file(&w.display().to_string())).unwrap_or_default(),
            cfg: absolute_if_file(&t.cfg),
            data,
            hyp: match &t.hyp {
                HypSource::Name(n) => absolute_if_file(n),
                HypSource::Hyp(_) => "(values)".into(),
            },
            epochs: t.epochs,
            batch_size: t.batch,
            imgsz: t.imgsz,
            rect: t.rect,
            resume: t.resume.is_some(),
            nosave: t.nosave,
            noval: t.noval,
            noautoanchor: t.noautoanchor,
            evolve: None,
            cache: cache_name(t.cache),
            device: t.device.clone(),
            multi_scale: t.multi_scale,
            optimizer: format!("{:?}", t.optimizer).replace("Sgd", "SGD"),
            sam: t.sam,
            freeze_bn: t.freeze_bn,
            depth_multiple: t.depth_multiple,
            width_multiple: t.width_multiple,
            workers: t.workers,
            project: t.project.clone(),
            name: t.name.clone(),
            exist_ok: t.exist_ok,
            cos_lr: t.cos_lr,
            label_smoothing: t.label_smoothing,
            varifocal: t.varifocal,
            patience: t.patience,
            freeze: t.freeze.indices(),
            seed: t.seed,
            freeze_schedule: t.freeze_schedule.clone(),
            dataset,
            evolve_seed: None,
            population: None,
        }
    }

    /// As opt.yaml text.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("settings serialise")
    }

    /// Parse opt.yaml text; `path` names the file (or checkpoint) in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self> {
        serde_yaml::from_str(text).map_err(|e| Error::yaml(path, &e))
    }

    /// Read an opt.yaml file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_yaml(&text, path)
    }

    /// A trainer with these settings and hyperparameter values. `path` names the settings' file in errors.
    pub fn trainer(&self, hyp: Hyp, path: &Path) -> Result<Trainer> {
        let bad = |key: &str, e: Error| Error::DataConfig { path: path.into(), message: format!("`{key}`: {e}") };
        let mut t = Trainer {
            data: match &self.dataset {
                Some(d) => DataSource::Dataset(d.clone()),
                None => DataSource::Name(self.data.clone()),
            },
            cfg: self.cfg.clone(),
            weights: Some(PathBuf::from(&self.weights)).filter(|w| !w.as_os_str().is_empty()),
            hyp: HypSource::Hyp(Box::new(hyp)),
            epochs: self.epochs,
            batch: self.batch_size,
            imgsz: self.imgsz,
            device: self.device.clone(),
            workers: self.workers,
            cache: self.cache.as_deref().unwrap_or("none").parse().map_err(|e| bad("cache", e))?,
            seed: self.seed,
            optimizer: self.optimizer.parse().map_err(|e| bad("optimizer", e))?,
            sam: self.sam,
            freeze_bn: self.freeze_bn,
            depth_multiple: self.depth_multiple,
            width_multiple: self.width_multiple,
            cos_lr: self.cos_lr,
            label_smoothing: self.label_smoothing,
            varifocal: self.varifocal,
            patience: self.patience,
            rect: self.rect,
            multi_scale: self.multi_scale,
            noval: self.noval,
            nosave: self.nosave,
            noautoanchor: self.noautoanchor,
            freeze: if self.freeze.is_empty() { Freeze::None } else { Freeze::Layers(self.freeze.clone()) },
            freeze_schedule: self.freeze_schedule.clone(),
            project: self.project.clone(),
            name: self.name.clone(),
            exist_ok: self.exist_ok,
            ..Trainer::default()
        };
        t.given.clear();
        Ok(t)
    }
}

/// opt.yaml's key for a trainer setting.
fn key_of(setting: &str) -> &str {
    match setting {
        "batch" => "batch_size",
        other => other,
    }
}

/// The settings `asked` sets explicitly that contradict `run`'s (hyperparameters compared by value), as
/// `key: run X, asked Y` lines. Empty when they agree.
pub fn conflicts(asked: &Trainer, run: &RunSettings, run_hyp: &Hyp) -> Result<Vec<String>> {
    let mine = serde_yaml::to_value(RunSettings::of(asked)).expect("settings serialise");
    let theirs = serde_yaml::to_value(run).expect("settings serialise");
    let show = |v: Option<&serde_yaml::Value>| match v {
        None | Some(serde_yaml::Value::Null) => "none".to_string(),
        Some(v) => serde_yaml::to_string(v).unwrap_or_default().trim().replace('\n', " "),
    };
    let mut out = Vec::new();
    for setting in &asked.given {
        if RUNTIME_SETTINGS.contains(setting) {
            continue;
        }
        if *setting == "hyp" {
            let h = asked.load_hyp()?;
            let differ: Vec<String> = h
                .iter()
                .filter(|(k, v)| run_hyp.get(k).is_none_or(|r| r != *v))
                .map(|(k, v)| {
                    format!("{k} run {} asked {v}", run_hyp.get(k).map(|r| r.to_string()).unwrap_or("-".into()))
                })
                .collect();
            if !differ.is_empty() {
                out.push(format!("hyp: {}", differ.join(", ")));
            }
            continue;
        }
        let keys: &[&str] = if *setting == "data" { &["data", "dataset"] } else { &[key_of(setting)] };
        for k in keys {
            let (a, b) = (mine.get(k), theirs.get(k));
            if a != b {
                out.push(format!("{k}: run {}, asked {}", show(b), show(a)));
            }
        }
    }
    Ok(out)
}

/// The checkpoint a resume path names: a run folder (its `weights/last.safetensors`) or a checkpoint file.
pub fn checkpoint_of(path: &Path) -> PathBuf {
    if path.is_dir() { path.join("weights/last.safetensors") } else { path.to_path_buf() }
}

/// The error of a resume whose request contradicts the settings stored at `at` (`own` names them).
pub(crate) fn refused(at: &Path, own: &str, clash: &[String], instead: &str) -> Error {
    Error::Config {
        name: "resume",
        message: format!(
            "{} continues with {own}, and this request contradicts them ({}); drop these settings, or {instead}",
            at.display(),
            clash.join("; ")
        ),
    }
}

impl Trainer {
    /// Take `other`'s runtime settings, those a resume may change: device, workers and image cache where
    /// `other` set them; progress output, stop handle and interruption always.
    pub(crate) fn take_runtime(&mut self, other: &Trainer) {
        self.progress = other.progress;
        self.reporter = other.reporter.clone();
        self.log_every = other.log_every;
        self.stop_handle = other.stop_handle.clone();
        self.interrupt_after = other.interrupt_after;
        if other.given.contains("device") {
            self.device = other.device.clone();
        }
        if other.given.contains("workers") {
            self.workers = other.workers;
        }
        if other.given.contains("cache") {
            self.cache = other.cache;
        }
    }

    /// The trainer a resume actually runs: the run's own settings (from its checkpoint), with this trainer's
    /// runtime settings where they were set. Errors when this trainer sets anything else differently.
    pub(crate) fn resolve_resume(&self) -> Result<Option<Trainer>> {
        let Some(p) = &self.resume else { return Ok(None) };
        let path = checkpoint_of(p);
        let meta = super::checkpoint::read_meta(&path)?;
        if !meta.resumable {
            return Err(Error::DataConfig {
                path,
                message: "this checkpoint holds weights only (best); resume from last.safetensors".into(),
            });
        }
        let settings = RunSettings::from_yaml(&meta.opt, &path)?;
        let hyp = Hyp::from_yaml_str(&meta.hyp, &path)?;
        let clash = conflicts(self, &settings, &hyp)?;
        if !clash.is_empty() {
            let instead = "start a new run from its weights (`weights`) to change them";
            return Err(refused(&path, "the run's own settings", &clash, instead));
        }
        let mut t = settings.trainer(hyp, &path)?;
        t.take_runtime(self);
        t.resume = Some(path);
        Ok(Some(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_read_older_files() {
        let t = Trainer::new().data("shapes-tiny").imgsz(96).epochs(7).cos_lr(true).freeze(3);
        let s = RunSettings::of(&t);
        let back = RunSettings::from_yaml(&s.to_yaml(), Path::new("opt.yaml")).unwrap();
        assert_eq!(back, s);
        let t2 = back.trainer(Hyp::default(), Path::new("opt.yaml")).unwrap();
        assert_eq!((t2.imgsz, t2.epochs, t2.cos_lr, t2.freeze.indices()), (96, 7, true, vec![0, 1, 2]));
        // the format written before settings were read back: Debug names, `evolve: false`
        let old = "weights: ''\ncfg: yolov5n\ndata: shapes\nhyp: scratch-low\nepochs: 5\nbatch_size: 4\nimgsz: 64\n\
                   evolve: false\ncache: None\noptimizer: Sgd\nfreeze: []\n";
        let s = RunSettings::from_yaml(old, Path::new("opt.yaml")).unwrap();
        let t = s.trainer(Hyp::default(), Path::new("opt.yaml")).unwrap();
        assert_eq!((t.epochs, t.batch, t.cache, t.optimizer), (5, 4, Cache::None, crate::optim::OptimizerKind::Sgd));
        let e = RunSettings::from_yaml("evolve: lots\n", Path::new("x/opt.yaml")).unwrap_err().to_string();
        assert!(e.contains("x/opt.yaml") && e.contains("evolve"), "{e}");
    }
}
