//! The training loop (`train.py::train`): setup, epochs of warmup/accumulate/clip/step/EMA, validation,
//! early stopping, results.csv and checkpoints.

use super::checkpoint::{self, CheckpointMeta, OPTIM_PREFIX, TRAIN_PREFIX};
use super::results::{self, EpochRow};
use super::step::{StepSchedule, TrainStep};
use super::{DataSource, HypSource, Outputs, TrainRun, Trainer, validate};
use crate::data::{Dataset, Loader, LoaderConfig, Samples, Split, Stream, rng_for};
use crate::error::{Error, Result};
use crate::gpu::Telemetry;
use crate::hyp::Hyp;
use crate::loss::{ComputeLoss, LossConfig};
use crate::metrics::NmsConfig;
use crate::model::{ModelConfig, Yolo, is_buffer, make_divisible};
use crate::optim::OptimizerKind;
use crate::report::Reporter;
use rand::Rng;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Largest accepted image size in pixels (YOLOv5 sets none; its largest models train at 1280).
pub const MAX_IMAGE_SIZE: i64 = 8192;
/// Telemetry sampling period.
const TELEMETRY_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

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

fn parse_device(s: &str) -> Result<Device> {
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
        let cfg = ModelConfig::load(&self.cfg, None, None)?;
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

    /// Train. Validates the settings first; returns the run's metrics, timings and telemetry. A resume
    /// continues with the run's own settings (see [`super::settings`]).
    pub fn fit(&self) -> Result<TrainRun> {
        let resolved = self.resolve_resume()?;
        let t = resolved.as_ref().unwrap_or(self);
        t.validate()?;
        let mut data = t.prepare_data()?;
        Run::setup(t, &mut data)?.train()
    }

    /// Train on data prepared by [`Trainer::prepare_data`]; the data set, label cache and image cache are
    /// reused (the image cache is built on the first call).
    pub fn fit_with(&self, data: &mut PreparedData) -> Result<TrainRun> {
        let resolved = self.resolve_resume()?;
        let t = resolved.as_ref().unwrap_or(self);
        t.validate()?;
        if !same_data(&t.data, &data.dataset) {
            return Err(Error::Config {
                name: "data",
                message: format!(
                    "the prepared data set `{}` ({}) is not the one this run trains on",
                    data.dataset.name,
                    data.dataset.source.display()
                ),
            });
        }
        Run::setup(t, data)?.train()
    }
}

/// Everything a run needs once set up.
struct Run<'a> {
    t: &'a Trainer,
    dir: PathBuf,
    device: Device,
    hyp: Hyp,
    step: TrainStep,
    train_loader: Loader,
    val_loader: Loader,
    data: &'a PreparedData,
    imgsz: i64,
    epochs: usize,
    start_epoch: usize,
    rows: Vec<EpochRow>,
    best_fitness: f64,
    best_epoch: usize,
    names: Vec<String>,
    frozen: i64,
    progress: Reporter,
}

impl<'a> Run<'a> {
    fn setup(t: &'a Trainer, data: &'a mut PreparedData) -> Result<Run<'a>> {
        let device = parse_device(&t.device)?;
        // libtorch's generator is process-wide: hold the lock from seeding until the model is initialised so
        // that runs in parallel threads (tests, evolution workers) each get their seed's weights
        let seed_lock = TORCH_SEED_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        tch::manual_seed(t.seed as i64 + 1); // init_seeds(opt.seed + 1 + RANK)
        let progress = t.report();
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
            None => (t.load_hyp()?, increment_dir(&t.project, &t.name, t.exist_ok || !Outputs::of(t).files())),
        };
        // model: YOLOv5 rebuilds the anchors from the hyp's count when it has one
        let anchors = hyp.anchors.map(|a| a.round_ties_even().max(1.0) as usize);
        let mut model = Yolo::from_config(ModelConfig::load(&t.cfg, Some(nc), anchors)?, device)?;
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
        let val_loader = Loader::build(
            &data.val,
            &hyp,
            LoaderConfig { workers: t.workers, stride: gs as u32, ..LoaderConfig::val(imgsz as u32, t.batch * 2) },
            &progress,
        )?;
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
        let nl = model.detect().m.len();
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
        if Outputs::of(t).files() && resume.is_none() {
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
    fn apply_freeze(&mut self, freeze: &super::Freeze) {
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
        let total = self.step.model.parameters();
        self.progress.info(&format!(
            "freeze: {freeze}; {} frozen parameters, {} trainable",
            crate::model::thousands(frozen),
            crate::model::thousands(total - frozen)
        ));
    }

    /// Batches in an epoch: the whole training set, or the stage's subset under a freeze schedule.
    fn batches_in(&self, epoch: usize) -> usize {
        let batch = self.train_loader.config().batch;
        match &self.t.freeze_schedule {
            Some(s) if s.stage(epoch).data_fraction < 1.0 => {
                stage_images(self.data.train.items.len(), s.stage(epoch).data_fraction).div_ceil(batch)
            }
            _ => self.train_loader.len(),
        }
    }

    fn train(mut self) -> Result<TrainRun> {
        let t0 = Instant::now();
        let t = self.t;
        let outputs = Outputs::of(t);
        let telemetry = Telemetry::start(
            match self.device {
                Device::Cuda(i) => Some(i as u32),
                _ => None,
            },
            TELEMETRY_PERIOD,
        );
        self.progress.info(&format!("telemetry: {}", telemetry.source()));
        let mut loader = self.train_loader.clone();
        let mut stage_key = None;
        let (mut train_seconds, mut images_seen) = (0.0, 0usize);
        let mut stopped = None;
        let mut final_val = None;
        self.progress.info(&format!(
            "Image sizes {} train, {} val; {} workers; {} epochs on {:?}; results in {}",
            self.imgsz,
            self.imgsz,
            t.workers,
            self.epochs,
            self.device,
            self.dir.display()
        ));
        // global iteration counter (YOLOv5's ni); epochs of a staged schedule can have fewer batches, so it is
        // summed rather than computed as epoch × batches
        let mut ni_base: usize = (0..self.start_epoch).map(|e| self.batches_in(e)).sum();
        for epoch in self.start_epoch..self.epochs {
            // staged freezing: switch freeze set, data subset and lr scale at stage boundaries
            let mut lr_scale = 1.0;
            if let Some(s) = &t.freeze_schedule {
                let st = s.stage(epoch).clone();
                lr_scale = st.lr_scale;
                let key = (st.freeze.clone(), (st.data_fraction * 1e6) as u64);
                if stage_key.as_ref() != Some(&key) {
                    self.apply_freeze(&st.freeze);
                    loader = if st.data_fraction < 1.0 {
                        let mut rng = rng_for(t.seed, Stream::StageSubset, &[epoch as u64]);
                        let mut items = self.data.train.clone();
                        let keep = stage_images(items.items.len(), st.data_fraction);
                        let mut idx: Vec<usize> = (0..items.items.len()).collect();
                        rand::seq::SliceRandom::shuffle(idx.as_mut_slice(), &mut rng);
                        idx.truncate(keep);
                        idx.sort_unstable();
                        items.items = idx.iter().map(|&i| items.items[i].clone()).collect();
                        Loader::build(&items, &self.hyp, self.train_loader.config().clone(), &self.progress)?
                    } else {
                        self.train_loader.clone()
                    };
                    self.progress.info(&format!(
                        "stage: freeze {}, {} images, lr × {}",
                        st.freeze,
                        loader.images(),
                        st.lr_scale
                    ));
                    stage_key = Some(key);
                }
            }
            let nb = loader.len();
            let mut mloss = [0.0f64; 3];
            let epoch_start = Instant::now();
            self.progress.start_epoch(nb);
            let mut ms_rng = rng_for(t.seed, Stream::MultiScale, &[epoch as u64]);
            self.step.start_epoch();
            for (i, batch) in loader.epoch(epoch as u64).enumerate() {
                let batch = batch?;
                let ni = ni_base + i;
                let mut imgs = batch.images.to_device(self.device).to_kind(Kind::Float) / 255.0;
                let targets = batch.targets.to_device(self.device);
                if t.multi_scale {
                    imgs = multi_scale(&imgs, self.imgsz, self.step.model.max_stride(), &mut ms_rng);
                }
                let out = self.step.iteration(ni, epoch, lr_scale, &imgs, &targets).loss;
                if !out.items.iter().all(|v| v.is_finite()) {
                    let _ = telemetry.finish();
                    return Err(Error::NonFiniteLoss { epoch, iteration: i, items: out.items, dir: self.dir.clone() });
                }
                for (m, x) in mloss.iter_mut().zip(out.items) {
                    *m = (*m * i as f64 + x) / (i + 1) as f64;
                }
                images_seen += batch.info.len();
                let el = epoch_start.elapsed().as_secs_f64();
                let rate = (i + 1) as f64 / el.max(1e-9);
                let eta = (nb - i - 1) as f64 / rate.max(1e-9);
                let text = format!(
                    "{:>10} {:>9} {:>10.4} {:>10.4} {:>10.4} {:>10} {:>10}  {:>4}/{:<4} {:.2} it/s ETA {:.0}s",
                    format!("{epoch}/{}", self.epochs - 1),
                    memory_string(self.device),
                    mloss[0],
                    mloss[1],
                    mloss[2],
                    targets.size()[0],
                    imgs.size()[3],
                    i + 1,
                    nb,
                    rate,
                    eta
                );
                if i == 0 && epoch == self.start_epoch {
                    self.progress.detail(&format!(
                        "{:>10} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
                        "Epoch", "mem", "box_loss", "obj_loss", "cls_loss", "Instances", "Size"
                    ));
                }
                self.progress.iteration(i, nb, &text);
                if t.stop_handle.is_stopped() {
                    stopped = Some("stop requested".to_string());
                    break;
                }
            }
            ni_base += nb;
            train_seconds += epoch_start.elapsed().as_secs_f64();
            let lr: [f64; 3] = std::array::from_fn(|j| self.step.opt.groups[j].lr);
            self.step.end_epoch(epoch, t.freeze_schedule.as_ref().map(|s| s.stage(epoch + 1).lr_scale).unwrap_or(1.0));
            let possible_stop = epoch.saturating_sub(self.best_epoch) + 1 >= t.patience;
            let final_epoch = epoch + 1 == self.epochs || possible_stop || stopped.is_some();
            let validated = outputs.validates(final_epoch);
            let (metrics, val_loss) = if validated {
                let nms = NmsConfig::default();
                let v = validate(&self.step.ema.model, &self.val_loader, Some(&self.step.loss), &nms)?;
                self.progress.detail(&val_table(&v));
                let r = (v.metrics, v.loss);
                final_val = Some(v);
                r
            } else {
                ([0.0; 4], [0.0; 3])
            };
            let row = EpochRow { epoch, train_loss: mloss, metrics, val_loss, lr };
            let (header, line) = epoch_line(&row, self.epochs, validated, epoch_start.elapsed().as_secs_f64());
            self.progress.epoch(&header, &line);
            let fi = row.fitness();
            if fi >= self.best_fitness {
                // v7.0 EarlyStopping: >= with best starting at 0
                self.best_fitness = fi;
                self.best_epoch = epoch;
            }
            self.rows.push(row);
            if outputs.files() {
                results::write(&self.dir.join("results.csv"), &self.rows)?;
            }
            if outputs.checkpoints(final_epoch) {
                self.save(epoch, true)?;
                if self.best_epoch == epoch {
                    self.save(epoch, false)?;
                }
            }
            if epoch - self.best_epoch >= t.patience {
                stopped =
                    Some(format!("no improvement in the last {} epochs; best epoch {}", t.patience, self.best_epoch));
            }
            if t.interrupt_after.is_some_and(|n| epoch + 1 - self.start_epoch >= n)
                && stopped.is_none()
                && epoch + 1 < self.epochs
            {
                stopped = Some(format!("interrupted after epoch {epoch}"));
            }
            if stopped.is_some() {
                break;
            }
        }
        let log = telemetry.finish();
        if outputs.files() {
            crate::fsutil::write_atomic(&self.dir.join("gpu.csv"), log.to_csv().as_bytes())?;
        }
        let weights = self.dir.join("weights");
        let saved = |n: &str| Some(weights.join(n)).filter(|p| p.is_file() && outputs.files());
        let run = TrainRun {
            dir: self.dir.clone(),
            rows: self.rows.clone(),
            final_val,
            best_fitness: self.best_fitness,
            best_epoch: self.best_epoch,
            hyp: self.hyp.clone(),
            seconds: t0.elapsed().as_secs_f64(),
            train_seconds,
            images_per_second: images_seen as f64 / train_seconds.max(1e-9),
            parameters: (self.step.model.parameters(), self.frozen),
            stopped,
            telemetry: log,
            best_weights: saved("best.safetensors"),
            last_weights: saved("last.safetensors"),
        };
        self.progress.summary(&run.to_string());
        Ok(run)
    }

    /// Save `last` (full training state) or `best` (EMA weights only), atomically.
    fn save(&self, epoch: usize, last: bool) -> Result<()> {
        let step = &self.step;
        let mut tensors: Vec<(String, Tensor)> = step.ema.model.vs.variables().into_iter().collect();
        if last {
            tensors.extend(step.model.vs.variables().into_iter().map(|(k, v)| (format!("{TRAIN_PREFIX}{k}"), v)));
            tensors.extend(step.opt.state_tensors().into_iter().map(|(k, v)| (format!("{OPTIM_PREFIX}{k}"), v)));
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let meta = CheckpointMeta {
            epoch,
            best_fitness: self.best_fitness,
            best_epoch: self.best_epoch,
            ema_updates: step.ema.updates,
            optimizer_steps: step.opt.steps,
            last_opt_step: step.last_opt_step,
            cfg: self.t.cfg.clone(),
            names: self.names.clone(),
            hyp: self.hyp.to_yaml_string(),
            opt: opt_yaml(self.t),
            resumable: last,
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let name = if last { "last.safetensors" } else { "best.safetensors" };
        checkpoint::write(&self.dir.join("weights").join(name), &tensors, &meta)
    }
}

/// Multi-scale training: the batch resized to a random size in [0.5, 1.5]·imgsz, a multiple of the stride.
fn multi_scale(imgs: &Tensor, imgsz: i64, gs: i64, rng: &mut impl Rng) -> Tensor {
    let lo = (imgsz as f64 * 0.5) as i64;
    let hi = (imgsz as f64 * 1.5) as i64 + gs;
    let sz = rng.random_range(lo..hi) / gs * gs;
    let s = imgs.size();
    let sf = sz as f64 / s[2].max(s[3]) as f64;
    if (sf - 1.0).abs() <= 1e-9 {
        return imgs.shallow_clone();
    }
    let ns = [((s[2] as f64 * sf / gs as f64).ceil() as i64) * gs, ((s[3] as f64 * sf / gs as f64).ceil() as i64) * gs];
    imgs.upsample_bilinear2d(ns, false, None, None)
}

fn memory_string(device: Device) -> String {
    match device {
        Device::Cpu => {
            format!("{:.2}G", crate::gpu::process_rss_bytes().unwrap_or(0.0) / 1e9)
        }
        _ => "GPU".into(),
    }
}

/// The compact line of an epoch (notebook and quiet modes) and its header: losses, metrics when the epoch
/// was validated, seconds.
fn epoch_line(row: &EpochRow, epochs: usize, validated: bool, seconds: f64) -> (String, String) {
    let header = format!(
        "{:>9} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>8} {:>7}",
        "epoch", "box", "obj", "cls", "P", "R", "mAP50", "mAP50-95", "time"
    );
    let [l0, l1, l2] = row.train_loss;
    let m: Vec<String> = row.metrics.iter().map(|x| if validated { format!("{x:.3}") } else { "-".into() }).collect();
    let line = format!(
        "{:>9} {l0:>8.4} {l1:>8.4} {l2:>8.4} {:>6} {:>6} {:>6} {:>8} {seconds:>6.1}s",
        format!("{}/{}", row.epoch, epochs - 1),
        m[0],
        m[1],
        m[2],
        m[3]
    );
    (header, line)
}

fn val_table(v: &super::ValResult) -> String {
    let [p, r, m50, m] = v.metrics;
    format!(
        "{:>22}{:>11}{:>11}{:>11}{:>11}{:>11}{:>11}\n{:>22}{:>11}{:>11}{:>11.3}{:>11.3}{:>11.3}{:>11.3}",
        "Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95", "all", v.images, v.instances, p, r, m50, m
    )
}

/// The run's settings as YOLOv5's opt.yaml (with `resume` false, so that a resumed run's checkpoints carry
/// the settings it was started with).
fn opt_yaml(t: &Trainer) -> String {
    let mut s = super::settings::RunSettings::of(t);
    s.resume = false;
    s.to_yaml()
}

/// Whether a prepared data set is the one a data source names.
fn same_data(src: &DataSource, ds: &Dataset) -> bool {
    match src {
        DataSource::Dataset(d) => d == ds,
        DataSource::Name(n) if Path::new(n).is_file() => {
            Path::new(n).canonicalize().ok().is_some_and(|a| ds.source.canonicalize().ok() == Some(a))
        }
        DataSource::Name(n) => ds.name == *n,
    }
}

/// Images a schedule stage trains on: `fraction` of `n`, at least one.
fn stage_images(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).max(1)
}
