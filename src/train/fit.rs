//! The epoch loop (`train.py::train`): batches through the training step, staged freezing, validation,
//! early stopping, results.csv and checkpoints.

use super::checkpoint::{self, CheckpointMeta, OPTIM_PREFIX, TRAIN_PREFIX};
use super::results::{self, EpochRow};
use super::setup::{PreparedData, Run, opt_yaml, same_data};
use super::{Control, Outputs, TrainRun, Trainer, validate};
use crate::data::{Loader, Stream, rng_for};
use crate::error::{Error, Result};
use crate::gpu::Telemetry;
use crate::metrics::NmsConfig;
use rand::Rng;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Telemetry sampling period.
const TELEMETRY_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

impl Trainer {
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

impl Run<'_> {
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

    pub(super) fn train(mut self) -> Result<TrainRun> {
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
        let mut pruned_at = None;
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
            let rung = !final_epoch && t.rung_epochs.contains(&epoch);
            let validated = outputs.validates(final_epoch) || rung;
            let (metrics, val_loss) = if validated {
                let nms = NmsConfig::default();
                let loader =
                    if rung { self.rung_val_loader.as_ref().unwrap_or(&self.val_loader) } else { &self.val_loader };
                let v = validate(&self.step.ema.model, loader, Some(&self.step.loss), &nms)?;
                self.progress.detail(&val_table(&v));
                let r = (v.metrics, v.loss);
                if rung && let Some(hook) = &t.epoch_hook {
                    match (hook.0)(epoch, &v) {
                        Control::Continue => {}
                        Control::Prune => {
                            pruned_at = Some(epoch);
                            stopped = Some(format!("pruned at epoch {epoch}"));
                        }
                        Control::Abort(reason) => {
                            let _ = telemetry.finish();
                            return Err(Error::Aborted { epoch, reason });
                        }
                    }
                }
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
            pruned_at,
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

/// Images a schedule stage trains on: `fraction` of `n`, at least one.
fn stage_images(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).max(1)
}
