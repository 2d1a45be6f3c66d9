//! # yolo-lab
//!
//! Train YOLOv5 object detectors, freeze layers for transfer learning and evolve training hyperparameters
//! with a genetic algorithm, from Rust and from Jupyter notebooks (evcxr kernel). Numbers, formats and
//! defaults follow ultralytics/yolov5 (commit `5081342f`).
//!
//! ## Map
//! | module | concept |
//! |---|---|
//! | [`hyp`] | hyperparameters (`hyps/hyp.*.yaml`) |
//! | [`data`] | data sets, scanning, the `shapes` generator, VOC conversion, augmentation, the loader |
//! | [`model`] | YOLOv5 models from yamls, weights as safetensors, summaries |
//! | [`loss`] | YOLOv5's ComputeLoss (CIoU, objectness, classes) |
//! | [`metrics`] | NMS, AP per class, mAP, confusion matrix, fitness |
//! | [`detect`] | inference on images: letterbox, forward, NMS, boxes in the image's pixels |
//! | [`optim`] | YOLOv5's parameter groups, SGD, gradient clipping |
//! | [`parity`] | comparison with reference tensors computed by YOLOv5 (`yolo-lab parity DIR`) |
//! | [`display`] | HTML tables and images for evcxr notebooks |
//! | [`train`] | the Trainer: setup, the epoch loop, freezing, checkpoints, results.csv; [`train::step`] is one iteration |
//! | [`evolve`] | the Evolver: YOLOv5's genetic algorithms over training runs, evolve.csv |
//! | [`results`] | evolve.csv as a polars DataFrame: best, top, summary, importance |
//! | [`plots`] | PNG figures (plotters): plot_evolve, histories, results.csv panels |
//! | [`study`] | FreezeStudy: the freezing variants compared |
//! | [`gpu`] | libtorch/CUDA/NVML environment report (`yolo-lab doctor`) |
//! | [`fsutil`] | atomic writes, the cache folder, Python-compatible float formatting |
//! | [`report`] | the one output channel: progress, setup lines, warnings (lines, bar, notebook, quiet, silent, capture) |
//!
//! ## Data flow
//! ```text
//! datasets.toml / data yaml ─► data::Dataset ─scan─► Samples ─► data::Loader (augment, mosaic, cache) ─► Batch
//!                                                                                                   │
//!  model yaml ─► model::Yolo ─────────────────────────────────────────────► train::step::TrainStep ◄─┘
//!                                                    (forward, loss::ComputeLoss, backward, optim, EMA)
//!                                                                     │ each epoch
//!                                          train::validate (metrics: NMS, AP) ─► results.csv, checkpoints
//!  evolve::Evolver ── a Trainer per generation ─► evolve.csv ─► results::EvolveResults ─► plots
//!  study::FreezeStudy ── a Trainer per freezing variant ─► StudyResult (tables, figures)
//!  every message ─► report::Reporter
//! ```
//! Where a change goes: a loss term → `loss`; an augmentation → `data/augment.rs`; what happens in one
//! iteration (accumulation, clipping, AMP, SAM) → `train/step.rs`; the epoch loop, validation cadence,
//! checkpoints → `train/fit.rs`; resume rules → `train/settings.rs`; a GA → `evolve/ga.rs`; a figure → `plots`;
//! an output line → the caller's [`report::Reporter`] call.
//!
//! ## Quick start
//! ```no_run
//! use yolo_lab::prelude::*;
//! let ds = Dataset::named("shapes")?;                 // generated on first use
//! let train = ds.scan(Split::Train)?;                  // verified images and labels
//! let hyp = Hyp::load("scratch-low")?;
//! let loader = Loader::new(&train, &hyp, LoaderConfig { img_size: 320, ..Default::default() })?;
//! for batch in loader.epoch(0).take(1) {
//!     let batch = batch?;
//!     println!("{:?} {:?}", batch.images.size(), batch.targets.size());
//! }
//! # Ok::<(), yolo_lab::Error>(())
//! ```

/// By-value, never-failing builder setters: `setters! { Type, given; /// doc\n field: ArgType => |v| expr; ... }`.
/// Each setter also records its field's name in the set `self.given`, so that a resume can tell the settings a
/// caller asked for from the defaults.
macro_rules! setters {
    ($ty:ty; $($(#[$doc:meta])* $name:ident: $t:ty => |$v:ident| $e:expr;)*) => {
        impl $ty {
            $($(#[$doc])* pub fn $name(mut self, $v: $t) -> Self {
                self.$name = $e;
                self
            })*
        }
    };
    ($ty:ty, $given:ident; $($(#[$doc:meta])* $name:ident: $t:ty => |$v:ident| $e:expr;)*) => {
        impl $ty {
            $($(#[$doc])* pub fn $name(mut self, $v: $t) -> Self {
                self.$name = $e;
                self.$given.insert(stringify!($name));
                self
            })*
        }
    };
}
pub(crate) use setters;

pub mod compare;
pub mod data;
pub mod detect;
pub mod display;
pub mod error;
pub mod evolve;
pub mod fidelity;
mod font;
pub mod fsutil;
pub mod gpu;
pub mod hyp;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod parity;
pub mod plots;
pub mod pretrained;
pub mod report;
pub mod results;
pub mod study;
pub mod threads;
pub mod train;
pub mod val;

pub use error::{Error, Result};
pub use polars;
pub use tch;

/// What a notebook needs: `use yolo_lab::prelude::*;`.
pub mod prelude {
    pub use crate::compare::{Comparison, SeedComparison};
    pub use crate::data::{Batch, Cache, Dataset, Loader, LoaderConfig, Samples, ShapesConfig, ShapesStyle, Split};
    pub use crate::display::Table;
    pub use crate::error::{Error, Result};
    pub use crate::evolve::{EvolveRun, Evolver, Ga, Objective, Parent, PopulationSettings, Pruner, Space};
    pub use crate::gpu::EnvReport;
    pub use crate::hyp::Hyp;
    pub use crate::model::{ModelSummary, Yolo};
    pub use crate::optim::OptimizerKind;
    pub use crate::plots::Figure;
    pub use crate::report::Reporter;
    pub use crate::results::EvolveResults;
    pub use crate::study::{FreezeStudy, StudyResult, Variant};
    pub use crate::train::{Freeze, FreezeSchedule, ProgressMode, StopHandle, TrainRun, Trainer};
}
