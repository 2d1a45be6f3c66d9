//! Training (`train.py::train` of ultralytics/yolov5@5081342f): the [`Trainer`] builder, the loop in
//! [`Trainer::fit`], freezing, checkpoints, results.csv, progress and telemetry.
//!
//! ```no_run
//! use yolo_lab::prelude::*;
//! let run = Trainer::new().data("shapes").cfg("yolov5n").freeze(10).hyp("scratch-low").epochs(30).fit()?;
//! println!("{}", run);
//! # Ok::<(), yolo_lab::Error>(())
//! ```

pub mod autoanchor;
pub mod checkpoint;
mod ema;
mod fit;
mod freeze;
pub mod results;
mod run;
pub mod schedule;
pub mod settings;
mod setup;
pub mod step;
mod validate;

pub use crate::report::ProgressMode;
pub use ema::ModelEma;
pub use freeze::{Freeze, FreezeSchedule, FreezeStage};
pub use results::{EpochRow, RESULTS_COLUMNS};
pub use run::TrainRun;
pub use setup::PreparedData;
pub(crate) use setup::{MAX_IMAGE_SIZE, increment_dir, parse_device};

pub use validate::{ValResult, validate, validate_each};

use crate::data::{Cache, Dataset};
use crate::hyp::Hyp;
use crate::optim::OptimizerKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where the training data comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// A registry name (`shapes`) or a data yaml path.
    Name(String),
    /// A data set already described.
    Dataset(Dataset),
}

impl From<&str> for DataSource {
    fn from(s: &str) -> Self {
        DataSource::Name(s.into())
    }
}
impl From<String> for DataSource {
    fn from(s: String) -> Self {
        DataSource::Name(s)
    }
}
impl From<Dataset> for DataSource {
    fn from(d: Dataset) -> Self {
        DataSource::Dataset(d)
    }
}
impl From<&Dataset> for DataSource {
    fn from(d: &Dataset) -> Self {
        DataSource::Dataset(d.clone())
    }
}

/// Where the hyperparameters come from.
#[derive(Debug, Clone, PartialEq)]
pub enum HypSource {
    /// A preset name (`scratch-low`) or a yaml path.
    Name(String),
    /// Values.
    Hyp(Box<Hyp>),
}

impl From<&str> for HypSource {
    fn from(s: &str) -> Self {
        HypSource::Name(s.into())
    }
}
impl From<String> for HypSource {
    fn from(s: String) -> Self {
        HypSource::Name(s)
    }
}
impl From<Hyp> for HypSource {
    fn from(h: Hyp) -> Self {
        HypSource::Hyp(Box::new(h))
    }
}
impl From<&Hyp> for HypSource {
    fn from(h: &Hyp) -> Self {
        HypSource::Hyp(Box::new(h.clone()))
    }
}

/// Stops a running `fit` from another thread or notebook cell after the current iteration; the epoch's
/// results and `last` checkpoint are still written.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Ask the run to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a rung validation decides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Control {
    /// Train on.
    Continue,
    /// Stop here: the generation is pruned (its last validation stands).
    Prune,
    /// Stop with an error (an injected failure in tests).
    Abort(String),
}

/// (epoch, its validation) → what to do.
pub(crate) type RungFn = dyn Fn(usize, &ValResult) -> Control + Send + Sync;

/// The callback of rung validations.
#[derive(Clone)]
pub(crate) struct EpochHook(pub(crate) std::sync::Arc<RungFn>);

impl std::fmt::Debug for EpochHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EpochHook(..)")
    }
}

/// What a run validates and writes, from YOLOv5's `--noval` and `--nosave` and from evolution mode (a
/// generation of `train.py --evolve` validates only its final epoch and writes nothing but its row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outputs {
    /// Validate every epoch, not only the final one.
    every_epoch_validated: bool,
    /// Write the run folder (hyp.yaml, opt.yaml, results.csv, gpu.csv, checkpoints).
    files: bool,
    /// Save a checkpoint every epoch, not only the final one.
    every_checkpoint: bool,
}

impl Outputs {
    /// The policy of a trainer.
    pub(crate) fn of(t: &Trainer) -> Self {
        if t.evolve_mode {
            Outputs { every_epoch_validated: false, files: false, every_checkpoint: false }
        } else {
            Outputs { every_epoch_validated: !t.noval, files: true, every_checkpoint: !t.nosave }
        }
    }

    /// Whether an epoch is validated.
    pub(crate) fn validates(&self, final_epoch: bool) -> bool {
        self.every_epoch_validated || final_epoch
    }

    /// Whether the run writes its folder.
    pub(crate) fn files(&self) -> bool {
        self.files
    }

    /// Whether an epoch saves checkpoints.
    pub(crate) fn checkpoints(&self, final_epoch: bool) -> bool {
        self.files && (self.every_checkpoint || final_epoch)
    }
}

/// The training run builder: what is trained (data, cfg, weights, hyp) and how (epochs, batch, device, run
/// folder...). Setters never fail; [`Trainer::fit`] validates everything before any work.
#[derive(Debug, Clone)]
pub struct Trainer {
    /// Data set. Default `shapes`.
    pub data: DataSource,
    /// Model config (name or yaml). Default `yolov5n`, or the model of a YOLOv5 `.pt` given to
    /// [`Trainer::weights`] (as YOLOv5 builds from `ckpt['model'].yaml` when `--cfg` is empty).
    pub cfg: String,
    /// Initial weights (a YOLOv5 `.pt` checkpoint or safetensors); None trains from scratch.
    pub weights: Option<PathBuf>,
    /// Hyperparameters. Default `scratch-low`.
    pub hyp: HypSource,
    /// Epochs. Default 100.
    pub epochs: usize,
    /// Batch size. Default 16.
    pub batch: usize,
    /// Image size (pixels, rounded up to a multiple of the max stride). Default 640.
    pub imgsz: i64,
    /// Device: `"cpu"`, `"0"` (CUDA 0), or `""` (CUDA if available). Default `""`.
    pub device: String,
    /// Loader worker threads. Default 2.
    pub workers: usize,
    /// Image cache. Default none.
    pub cache: Cache,
    /// Seed. Default 0.
    pub seed: u64,
    /// Optimizer. Default SGD.
    pub optimizer: OptimizerKind,
    /// Sharpness-aware minimisation around the optimizer (seed 003). Default off.
    pub sam: bool,
    /// Keep frozen layers' BatchNorm in eval mode: their running statistics stay fixed (YOLOv5 lets them
    /// drift, the default). Default off.
    pub freeze_bn: bool,
    /// Cosine learning-rate schedule instead of linear. Default off.
    pub cos_lr: bool,
    /// Depth multiple replacing the model yaml's (repeats of its blocks). Default the yaml's.
    pub depth_multiple: Option<f64>,
    /// Width multiple replacing the model yaml's (channels of its layers). Default the yaml's.
    pub width_multiple: Option<f64>,
    /// Label smoothing epsilon. Default 0.
    pub label_smoothing: f64,
    /// Varifocal objectness loss (seed 003). Default off.
    pub varifocal: bool,
    /// Epochs without improvement before stopping. Default 100.
    pub patience: usize,
    /// Rectangular training batches. Default off.
    pub rect: bool,
    /// Image size varied ±50% per batch. Default off.
    pub multi_scale: bool,
    /// Validate only the final epoch. Default off.
    pub noval: bool,
    /// Save only the final checkpoint. Default off.
    pub nosave: bool,
    /// Skip the AutoAnchor check. Default off.
    pub noautoanchor: bool,
    /// Frozen modules. Default none.
    pub freeze: Freeze,
    /// Staged freezing (overrides `freeze` and `epochs`). Default none.
    pub freeze_schedule: Option<FreezeSchedule>,
    /// Parent of the run folder. Default `runs/train`.
    pub project: PathBuf,
    /// Run folder name; `exp`, `exp2`, ... unless `exist_ok`. Default `exp`.
    pub name: String,
    /// Reuse an existing run folder. Default off.
    pub exist_ok: bool,
    /// Resume from a `last.safetensors` (or the run folder holding it).
    pub resume: Option<PathBuf>,
    /// Progress output. Default auto (bar on a terminal, lines otherwise).
    pub progress: ProgressMode,
    /// Where output goes; when none is given, a console reporter in the `progress` mode.
    pub reporter: Option<crate::report::Reporter>,
    /// Iterations between progress lines. Default 10.
    pub log_every: usize,
    /// Stop handle shared with clones.
    pub stop_handle: StopHandle,
    /// Stop after this many epochs as if interrupted (checkpoints stay resumable). Default none.
    #[doc(hidden)]
    pub interrupt_after: Option<usize>,
    /// Evolution mode: only the final epoch is validated, nothing is saved but results.csv (train.py --evolve).
    pub(crate) evolve_mode: bool,
    /// Epochs validated besides those the run validates anyway, each handed to `epoch_hook` (an evolution's
    /// pruning rungs).
    pub(crate) rung_epochs: Vec<usize>,
    /// Called with each rung epoch's validation; decides whether training goes on.
    pub(crate) epoch_hook: Option<EpochHook>,
    /// Rung validations use only the first n validation images (all when None).
    pub(crate) rung_val_images: Option<usize>,
    /// The settings given by a setter (not left at their defaults): what a resume checks against the run.
    pub(crate) given: std::collections::BTreeSet<&'static str>,
}

impl Default for Trainer {
    fn default() -> Self {
        Trainer {
            data: DataSource::Name("shapes".into()),
            cfg: "yolov5n".into(),
            weights: None,
            hyp: HypSource::Name("scratch-low".into()),
            epochs: 100,
            batch: 16,
            imgsz: 640,
            device: String::new(),
            workers: 2,
            cache: Cache::None,
            seed: 0,
            optimizer: OptimizerKind::Sgd,
            sam: false,
            freeze_bn: false,
            depth_multiple: None,
            width_multiple: None,
            cos_lr: false,
            label_smoothing: 0.0,
            varifocal: false,
            patience: 100,
            rect: false,
            multi_scale: false,
            noval: false,
            nosave: false,
            noautoanchor: false,
            freeze: Freeze::None,
            freeze_schedule: None,
            project: PathBuf::from("runs/train"),
            name: "exp".into(),
            exist_ok: false,
            resume: None,
            progress: ProgressMode::Auto,
            reporter: None,
            log_every: 10,
            stop_handle: StopHandle::default(),
            interrupt_after: None,
            evolve_mode: false,
            rung_epochs: vec![],
            epoch_hook: None,
            rung_val_images: None,
            given: Default::default(),
        }
    }
}

crate::setters! { Trainer, given;
    /// Data set: registry name, data yaml path or [`Dataset`].
    data: impl Into<DataSource> => |v| v.into();
    /// Model config name or yaml path.
    cfg: impl Into<String> => |v| v.into();
    /// Hyperparameters: preset name, yaml path or [`Hyp`].
    hyp: impl Into<HypSource> => |v| v.into();
    /// Epochs.
    epochs: usize => |v| v;
    /// Batch size.
    batch: usize => |v| v;
    /// Image size.
    imgsz: i64 => |v| v;
    /// Device (`"cpu"`, `"0"`, `""` for auto).
    device: impl Into<String> => |v| v.into();
    /// Loader workers.
    workers: usize => |v| v;
    /// Image cache.
    cache: Cache => |v| v;
    /// Seed.
    seed: u64 => |v| v;
    /// Optimizer.
    optimizer: OptimizerKind => |v| v;
    /// Sharpness-aware minimisation.
    sam: bool => |v| v;
    /// Frozen layers' BatchNorm in eval mode.
    freeze_bn: bool => |v| v;
    /// Cosine schedule.
    cos_lr: bool => |v| v;
    /// Depth multiple replacing the model yaml's.
    depth_multiple: f64 => |v| Some(v);
    /// Width multiple replacing the model yaml's.
    width_multiple: f64 => |v| Some(v);
    /// Label smoothing.
    label_smoothing: f64 => |v| v;
    /// Varifocal objectness loss.
    varifocal: bool => |v| v;
    /// Early-stopping patience.
    patience: usize => |v| v;
    /// Rectangular training.
    rect: bool => |v| v;
    /// Multi-scale training.
    multi_scale: bool => |v| v;
    /// Validate only the final epoch.
    noval: bool => |v| v;
    /// Save only the final checkpoint.
    nosave: bool => |v| v;
    /// Skip AutoAnchor.
    noautoanchor: bool => |v| v;
    /// Freeze modules: `10`, `Freeze::Backbone`, `vec![0, 1, 2]`.
    freeze: impl Into<Freeze> => |v| v.into();
    /// Run folder parent.
    project: impl Into<PathBuf> => |v| v.into();
    /// Run folder name.
    name: impl Into<String> => |v| v.into();
    /// Reuse an existing run folder.
    exist_ok: bool => |v| v;
    /// Progress output.
    progress: ProgressMode => |v| v;
    /// Iterations between progress lines.
    log_every: usize => |v| v;
}

impl Trainer {
    /// Defaults: shapes, yolov5n, scratch-low, 100 epochs, batch 16, 640 px.
    pub fn new() -> Self {
        Self::default()
    }

    /// Send output to `reporter` (shared with the loaders and scans of this run) instead of a console
    /// reporter in the `progress` mode. A runtime setting: a resume may change it.
    pub fn reporter(mut self, reporter: crate::report::Reporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// The reporter this trainer's work reports through.
    pub fn report(&self) -> crate::report::Reporter {
        self.reporter.clone().unwrap_or_else(|| crate::report::Reporter::new(self.progress).every(self.log_every))
    }

    /// Initial weights (safetensors).
    pub fn weights(mut self, path: impl Into<PathBuf>) -> Self {
        self.weights = Some(path.into());
        self.given.insert("weights");
        self
    }

    /// Freeze an explicit list of modules.
    pub fn freeze_layers(mut self, layers: impl IntoIterator<Item = usize>) -> Self {
        self.freeze = Freeze::Layers(layers.into_iter().collect());
        self.given.insert("freeze");
        self
    }

    /// Staged freezing.
    pub fn freeze_schedule(mut self, s: FreezeSchedule) -> Self {
        self.freeze_schedule = Some(s);
        self.given.insert("freeze_schedule");
        self
    }

    /// Resume from a run folder or its `weights/last.safetensors`.
    pub fn resume(mut self, path: impl Into<PathBuf>) -> Self {
        self.resume = Some(path.into());
        self.given.insert("resume");
        self
    }

    /// Stop after `n` epochs of this call as if the process had been interrupted: the run stays resumable.
    #[doc(hidden)]
    pub fn interrupt_after(mut self, n: usize) -> Self {
        self.interrupt_after = Some(n);
        self
    }

    /// Forget that the settings failing `keep` were set (the command line sets every flag, typed or not;
    /// only the typed ones are checked against a resumed run's settings).
    #[doc(hidden)]
    pub fn given_only(mut self, keep: impl Fn(&str) -> bool) -> Self {
        self.given.retain(|s| keep(s));
        self
    }

    /// A handle that stops this run (and its clones) from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop_handle.clone()
    }
}
