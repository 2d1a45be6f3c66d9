//! Setting a run up (`train.py::train` before its epoch loop): settings checks, device, data, model,
//! image size, loaders, AutoAnchor, the training step, resume from a checkpoint, the run folder.

use super::checkpoint::{self, OPTIM_PREFIX, TRAIN_PREFIX};
use super::results::{self, EpochRow};
use super::step::{StepSchedule, TrainStep};
use super::{DataSource, HypSource, Outputs, Trainer};
use crate::data::{Dataset, Loader, LoaderConfig, Samples, Split, Stream, rng_for};
use crate::error::{Error, Result};
use crate::hyp::Hyp;
use crate::loss::{ComputeLoss, LossConfig};
use crate::model::{Checkpoint, ModelConfig, Yolo, is_buffer, is_pt, make_divisible};
use crate::optim::OptimizerKind;
use crate::report::Reporter;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// Largest accepted image size in pixels (YOLOv5 sets none; its largest models train at 1280).
pub const MAX_IMAGE_SIZE: i64 = 8192;

/// Serialises seeding and model construction across threads.
static TORCH_SEED_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Data scanned once and reusable across runs (the evolver trains many generations on the same data).
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// The data set description.
    pub dataset: Dataset,
    /// Verified training images.
    pub train: Samples,
    /// Verified validation images.
    pub val: Samples,
    /// Training loader (with its image cache), built for the first hyperparameters seen.
    train_loader: Option<Loader>,
}

/// `--device`: empty (CUDA if available), `cpu`, or a CUDA index (`0`, `cuda:1`; the first of a list).
pub(crate) fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    match s.as_str() {
        "" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        other => {
            let i: usize = other.trim_start_matches("cuda:").split(',').next().unwrap_or("").parse().map_err(|_| {
                Error::Config {
                    name: "device",
                    message: format!("`{other}` is not cpu, a CUDA index like 0, or empty for automatic"),
                }
            })?;
            if !tch::Cuda::is_available() || i as i64 >= tch::Cuda::device_count() {
                return Err(Error::Config {
                    name: "device",
                    message: format!("CUDA device {i} is not available (run `yolo-lab doctor`)"),
                });
            }
            Ok(Device::Cuda(i))
        }
    }
}

/// `runs/train/exp`, `exp2`, `exp3`, ... (`increment_path`).
pub(crate) fn increment_dir(project: &Path, name: &str, exist_ok: bool) -> PathBuf {
    let base = project.join(name);
    if exist_ok || !base.exists() {
        return base;
    }
    (2..).map(|n| project.join(format!("{name}{n}"))).find(|p| !p.exists()).expect("an unused name exists")
}

impl Trainer {
    /// The model config: [`Trainer::cfg`] when given, else the yaml inside a YOLOv5 `.pt` given as weights,
    /// else the default `yolov5n`.
    pub(crate) fn model_config(&self, nc: Option<i64>, anchors: Option<usize>) -> Result<ModelConfig> {
        if !self.given.contains("cfg")
            && let Some(w) = self.weights.as_deref().filter(|w| is_pt(w))
        {
            // the yaml only: the tensors are read once, when the weights are loaded
            let (yaml, ck_nc) = Checkpoint::model_yaml(w)?;
            let name = w.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            return ModelConfig::parse_scaled(&yaml, w, &name, nc.or(Some(ck_nc)), anchors, self.multiples());
        }
        ModelConfig::load_scaled(&self.cfg, nc, anchors, self.multiples())
    }

    /// The depth and width multiples replacing the model yaml's, where set.
    fn multiples(&self) -> (Option<f64>, Option<f64>) {
        (self.depth_multiple, self.width_multiple)
    }

    /// Check every setting without doing any work.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, message: String| Err(Error::Config { name, message });
        if self.epochs == 0 && self.freeze_schedule.is_none() {
            return bad("epochs", "must be at least 1".into());
        }
        if self.batch == 0 {
            return bad("batch", "must be at least 1".into());
        }
        if self.imgsz < 32 {
            return bad("imgsz", format!("{} is below 32 pixels", self.imgsz));
        }
        if self.imgsz > MAX_IMAGE_SIZE {
            return bad(
                "imgsz",
                format!(
                    "{} pixels is above {MAX_IMAGE_SIZE}: one batch of {} would need {:.0} GB",
                    self.imgsz,
                    self.batch,
                    (self.batch as f64 * 3.0 * (self.imgsz as f64).powi(2) * 4.0) / 1e9
                ),
            );
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label_smoothing", format!("{} is outside [0, 1)", self.label_smoothing));
        }
        if self.log_every == 0 {
            return bad("log_every", "must be at least 1".into());
        }
        if let Some(s) = &self.freeze_schedule {
            if s.stages.is_empty() || s.epochs() == 0 {
                return bad("freeze_schedule", "needs at least one stage with epochs".into());
            }
            if s.stages.iter().any(|st| !(st.data_fraction > 0.0 && st.data_fraction <= 1.0) || st.lr_scale <= 0.0) {
                return bad("freeze_schedule", "data fractions must be in (0, 1] and lr scales positive".into());
            }
        }
        if let Some(w) = &self.weights
            && !w.is_file()
        {
            return Err(Error::io(w, std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found")));
        }
        if self.sam
            && self.optimizer != OptimizerKind::Sgd
            && self.optimizer != OptimizerKind::AdamW
            && self.optimizer != OptimizerKind::Adam
        {
            return bad("sam", "needs a base optimizer".into());
        }
        parse_device(&self.device)?;
        let cfg = self.model_config(None, None)?;
        let layers = cfg.layers.len();
        let stages = self.freeze_schedule.iter().flat_map(|s| s.stages.iter().map(|st| &st.freeze));
        for f in std::iter::once(&self.freeze).chain(stages) {
            let frozen = f.indices();
            if (0..layers).all(|i| frozen.contains(&i)) {
                return bad(
                    "freeze",
                    format!(
                        "`{f}` freezes all {layers} modules of {} (0-{}): nothing would train",
                        cfg.name,
                        layers - 1
                    ),
                );
            }
        }
        self.load_hyp()?;
        Ok(())
    }

    pub(crate) fn load_hyp(&self) -> Result<Hyp> {
        match &self.hyp {
            HypSource::Name(n) => Hyp::load(n),
            HypSource::Hyp(h) => {
                h.validate()?;
                Ok((**h).clone())
            }
        }
    }

    /// Load and verify the data set (both splits).
    pub fn prepare_data(&self) -> Result<PreparedData> {
        let r = self.report();
        let dataset = match &self.data {
            DataSource::Name(n) => Dataset::load_with(n, &r)?,
            DataSource::Dataset(d) => d.clone(),
        };
        let train = dataset.scan_with(Split::Train, &r)?;
        let val = if dataset.val.is_empty() { train.clone() } else { dataset.scan_with(Split::Val, &r)? };
        Ok(PreparedData { dataset, train, val, train_loader: None })
    }
}

/// Everything a run needs once set up.
pub(super) struct Run<'a> {
    pub(super) t: &'a Trainer,
    pub(super) dir: PathBuf,
    pub(super) device: Device,
    pub(super) hyp: Hyp,
    pub(super) step: TrainStep,
    pub(super) train_loader: Loader,
    pub(super) val_loader: Loader,
    /// The fixed validation subset of rung validations (an evolution's cheap validation), if one is set.
    pub(super) rung_val_loader: Option<Loader>,
    pub(super) data: &'a PreparedData,
    pub(super) imgsz: i64,
    pub(super) epochs: usize,
    pub(super) start_epoch: usize,
    pub(super) rows: Vec<EpochRow>,
    pub(super) best_fitness: f64,
    pub(super) best_epoch: usize,
    pub(super) names: Vec<String>,
    pub(super) frozen: i64,
    pub(super) progress: Reporter,
}

impl<'a> Run<'a> {
    pub(super) fn setup(t: &'a Trainer, data: &'a mut PreparedData) -> Result<Run<'a>> {
        let device = parse_device(&t.device)?;
        crate::threads::configure(&t.report()); // once per process: the cores other processes leave free
        // libtorch's generator is process-wide: hold the lock from seeding until the model is initialised so
        // that runs in parallel threads (tests, evolution workers) each get their seed's weights
        let seed_lock = TORCH_SEED_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        tch::manual_seed(t.seed as i64 + 1); // init_seeds(opt.seed + 1 + RANK)
        let progress = t.report();
        let outputs = Outputs::of(t);
        // `fit` resolved the resume: `t` holds the run's own settings and the checkpoint path
        let resume = match &t.resume {
            Some(path) => Some((path.clone(), checkpoint::read_meta(path)?)),
            None => None,
        };
        let names = data.dataset.names.clone();
        let nc = names.len() as i64;
        let (hyp, dir) = match &resume {
            Some((path, meta)) => {
                let hyp = Hyp::from_yaml_str(&meta.hyp, path)?;
                let dir =
                    path.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
                if meta.names.len() != names.len() {
                    return Err(Error::Config {
                        name: "resume",
                        message: format!(
                            "checkpoint has {} classes, data set `{}` has {}",
                            meta.names.len(),
                            data.dataset.name,
                            names.len()
                        ),
                    });
                }
                (hyp, dir)
            }
            None => (t.load_hyp()?, increment_dir(&t.project, &t.name, t.exist_ok || !outputs.files())),
        };
        // model: YOLOv5 rebuilds the anchors from the hyp's count when it has one
        let anchors = hyp.anchors.map(|a| a.round_ties_even().max(1.0) as usize);
        let mut model = Yolo::from_config(t.model_config(Some(nc), anchors)?, device)?;
        if let (Some(w), None) = (&t.weights, &resume) {
            let report = model.load_partial(w)?;
            progress.info(&format!("weights {}: {report}", w.display()));
        }
        drop(seed_lock);
        // image size: a multiple of the largest stride, at least two strides
        let gs = model.max_stride().max(32);
        let imgsz = make_divisible(t.imgsz as f64, gs).max(2 * gs);
        if imgsz != t.imgsz {
            progress
                .warn(&format!("--img-size {} must be a multiple of max stride {gs}, updating to {imgsz}", t.imgsz));
        }
        // loaders
        let lcfg = LoaderConfig {
            img_size: imgsz as u32,
            batch: t.batch,
            augment: true,
            rect: t.rect,
            shuffle: !t.rect,
            workers: t.workers,
            seed: t.seed,
            stride: gs as u32,
            pad: 0.0,
            cache: t.cache,
        };
        let train_loader = match &data.train_loader {
            Some(l) if l.config() == &lcfg => l.with_hyp(&hyp),
            _ => {
                let l = Loader::build(&data.train, &hyp, lcfg, &progress)?;
                data.train_loader = Some(l.clone());
                l
            }
        };
        let val_cfg =
            LoaderConfig { workers: t.workers, stride: gs as u32, ..LoaderConfig::val(imgsz as u32, t.batch * 2) };
        let val_loader = Loader::build(&data.val, &hyp, val_cfg.clone(), &progress)?;
        // rung validations on the first n validation images: the same images every time, for every generation
        let rung_val_loader = match t.rung_val_images {
            Some(n) if n < data.val.items.len() && !t.rung_epochs.is_empty() => {
                let mut subset = data.val.clone();
                subset.items.truncate(n.max(1));
                Some(Loader::build(&subset, &hyp, val_cfg, &progress)?)
            }
            _ => None,
        };
        let data: &'a PreparedData = data;
        // AutoAnchor before the optimizer sees the model
        if !t.noautoanchor && resume.is_none() {
            let mut rng = rng_for(t.seed, Stream::AutoAnchor, &[]);
            progress.info(&super::autoanchor::check_anchors(&model, &data.train.items, hyp.anchor_t, imgsz, &mut rng));
        } else if t.noautoanchor && resume.is_none() && model.config.placeholder_anchors {
            progress.warn(&format!(
                "{}: the anchors are placeholders (`anchors: N` in the model yaml or the hyp) and \
                 noautoanchor skips the AutoAnchor run that replaces them; training on them will learn poorly",
                model.config.source.display()
            ));
        }
        let nl = model.head().m.len();
        let loss = ComputeLoss::new(
            &model,
            LossConfig { varifocal: t.varifocal, ..LossConfig::from_hyp(&hyp, nc, nl, imgsz, t.label_smoothing) },
        );
        let epochs = t.freeze_schedule.as_ref().map(|s| s.epochs()).unwrap_or(t.epochs);
        let schedule = StepSchedule {
            epochs,
            batches_per_epoch: train_loader.len(),
            batch: t.batch,
            cos_lr: t.cos_lr,
            sam: t.sam,
            amp: device.is_cuda(),
            channels_last: true,
        };
        let mut step = TrainStep::new(model, &hyp, loss, t.optimizer, schedule)?;
        let (mut start_epoch, mut rows, mut best_fitness, mut best_epoch) = (0, vec![], 0.0, 0);
        if let Some((path, meta)) = &resume {
            let tensors = checkpoint::read_tensors(path)?;
            tch::no_grad(|| -> Result<()> {
                let (mv, ev) = (step.model.vs.variables(), step.ema.model.vs.variables());
                for (k, v) in &mv {
                    let src = tensors.get(&format!("{TRAIN_PREFIX}{k}")).ok_or_else(|| Error::DataConfig {
                        path: path.clone(),
                        message: format!("missing `{TRAIN_PREFIX}{k}`"),
                    })?;
                    v.shallow_clone().copy_(src);
                }
                for (k, v) in &ev {
                    let src = tensors
                        .get(k)
                        .ok_or_else(|| Error::DataConfig { path: path.clone(), message: format!("missing `{k}`") })?;
                    v.shallow_clone().copy_(src);
                }
                Ok(())
            })?;
            step.ema.updates = meta.ema_updates;
            let state: std::collections::HashMap<String, Tensor> = tensors
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(OPTIM_PREFIX).map(|n| (n.to_string(), v.shallow_clone())))
                .collect();
            step.opt.load_state(&state, meta.optimizer_steps);
            start_epoch = meta.epoch + 1;
            best_fitness = meta.best_fitness;
            best_epoch = meta.best_epoch;
            step.last_opt_step = meta.last_opt_step;
            let csv = dir.join("results.csv");
            rows = if csv.is_file() { results::read(&csv)? } else { vec![] };
            rows.retain(|r| r.epoch <= meta.epoch);
            progress.info(&format!("Resuming training from {} at epoch {start_epoch} of {epochs}", path.display()));
            if start_epoch >= epochs {
                return Err(Error::Config {
                    name: "resume",
                    message: format!("{} already finished {epochs} epochs; nothing to resume", path.display()),
                });
            }
        }
        // scheduler position: what the step at the end of epoch start_epoch - 1 left (lf(0) for a new run)
        step.position(start_epoch, t.freeze_schedule.as_ref().map(|s| s.stage(start_epoch).lr_scale).unwrap_or(1.0));
        // the run folder appears once everything is checked; a resumed run keeps its hyp.yaml and opt.yaml
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        if outputs.files() && resume.is_none() {
            crate::fsutil::write_atomic(&dir.join("hyp.yaml"), hyp.to_yaml_string().as_bytes())?;
            crate::fsutil::write_atomic(&dir.join("opt.yaml"), opt_yaml(t).as_bytes())?;
        }
        let mut run = Run {
            t,
            dir,
            device,
            hyp,
            step,
            train_loader,
            val_loader,
            rung_val_loader,
            data,
            imgsz,
            epochs,
            start_epoch,
            rows,
            best_fitness,
            best_epoch,
            names,
            frozen: 0,
            progress,
        };
        run.apply_freeze(
            &t.freeze_schedule
                .as_ref()
                .map(|s| s.stage(start_epoch).freeze.clone())
                .unwrap_or_else(|| t.freeze.clone()),
        );
        Ok(run)
    }

    /// Set `requires_grad` by YOLOv5's rule and log the counts.
    pub(super) fn apply_freeze(&mut self, freeze: &super::Freeze) {
        let mut frozen = 0;
        for (name, v) in self.step.model.vs.variables() {
            if is_buffer(&name) {
                continue;
            }
            let f = freeze.matches(&name);
            let _ = v.set_requires_grad(!f);
            if f {
                frozen += v.numel() as i64;
            }
        }
        self.frozen = frozen;
        if self.t.freeze_bn {
            self.step.model.set_bn_eval(&freeze.indices());
        }
        let total = self.step.model.parameters();
        self.progress.info(&format!(
            "freeze: {freeze}; {} frozen parameters, {} trainable{}",
            crate::model::thousands(frozen),
            crate::model::thousands(total - frozen),
            if self.t.freeze_bn && frozen > 0 { "; frozen BatchNorms in eval mode" } else { "" }
        ));
    }
}

/// The run's settings as YOLOv5's opt.yaml (with `resume` false, so that a resumed run's checkpoints carry
/// the settings it was started with).
pub(super) fn opt_yaml(t: &Trainer) -> String {
    let mut s = super::settings::RunSettings::of(t);
    s.resume = false;
    s.to_yaml()
}

/// Whether a prepared data set is the one a data source names.
pub(super) fn same_data(src: &DataSource, ds: &Dataset) -> bool {
    match src {
        DataSource::Dataset(d) => d == ds,
        DataSource::Name(n) if Path::new(n).is_file() => {
            Path::new(n).canonicalize().ok().is_some_and(|a| ds.source.canonicalize().ok() == Some(a))
        }
        DataSource::Name(n) => ds.name == *n,
    }
}
