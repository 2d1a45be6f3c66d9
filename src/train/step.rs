//! One training iteration as train.py runs it, and the learning-rate scheduler step at an epoch's end.
//!
//! Per iteration `ni` (counted from the start of training): while `ni ≤ nw` the warmup sets accumulation,
//! every group's learning rate and the SGD momentum; then forward, loss, backward (scaled under AMP); and
//! once `ni − last_opt_step ≥ accumulate`: unscale, clip to norm 10, optimizer step (skipped on an AMP
//! overflow), zero the gradients, update the EMA. Every epoch starts with zeroed gradients, so a batch
//! whose gradient was not yet stepped at an epoch's end is dropped, as in train.py.
//!
//! The trainer runs every batch through [`TrainStep::iteration`]; `examples/trajectory.rs` replays batches
//! recorded from YOLOv5's `train.py` through the same function and compares the losses step by step.

use super::ModelEma;
use super::schedule::{
    accumulate, lr_factor, scaled_weight_decay, warmup_accumulate, warmup_iters, warmup_lr, warmup_momentum,
};
use crate::hyp::Hyp;
use crate::loss::{ComputeLoss, LossOutput};
use crate::model::Yolo;
use crate::optim::{MAX_GRAD_NORM, Optimizer, OptimizerKind, clip_grad_norm};
use tch::Tensor;

/// Sharpness-aware minimisation neighbourhood radius (Foret et al. 2021 default).
pub const SAM_RHO: f64 = 0.05;
/// Initial loss scale of the AMP gradient scaler (PyTorch's GradScaler default 2**16).
const AMP_INIT_SCALE: f64 = 65536.0;
/// Steps without overflow before the scale doubles (GradScaler growth_interval).
const AMP_GROWTH_INTERVAL: u32 = 2000;

/// PyTorch's `GradScaler`: a dynamic loss scale for mixed precision, halved on overflow, doubled after
/// 2000 clean steps (`growth_interval`). Disabled, it scales by 1 and never skips a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradScaler {
    /// Whether AMP is on.
    pub enabled: bool,
    /// Current scale.
    pub scale: f64,
    clean_steps: u32,
}

impl GradScaler {
    /// A scaler at PyTorch's initial scale, or a disabled one.
    pub fn new(enabled: bool) -> Self {
        GradScaler { enabled, scale: AMP_INIT_SCALE, clean_steps: 0 }
    }

    /// The factor the loss is multiplied by before backward.
    pub fn factor(&self) -> f64 {
        if self.enabled { self.scale } else { 1.0 }
    }

    /// After a step: an overflow halves the scale, a run of clean steps doubles it.
    fn update(&mut self, overflow: bool) {
        if !self.enabled {
            return;
        }
        if overflow {
            self.scale *= 0.5;
            self.clean_steps = 0;
        } else {
            self.clean_steps += 1;
            if self.clean_steps >= AMP_GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
        }
    }
}

/// The schedule settings a training step follows.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSchedule {
    /// Epochs of the whole run (the LambdaLR's length).
    pub epochs: usize,
    /// Batches per epoch of the full training set (sets the warmup length).
    pub batches_per_epoch: usize,
    /// Batch size (sets the accumulation towards the nominal 64).
    pub batch: usize,
    /// Cosine instead of linear learning-rate decay.
    pub cos_lr: bool,
    /// Sharpness-aware minimisation.
    pub sam: bool,
    /// Mixed precision with a gradient scaler (CUDA).
    pub amp: bool,
    /// Lay the model, its EMA and every batch out channels-last ([`crate::model::channels_last`]): the
    /// trainer does (13% faster per step on two CPU cores); the parity check does not, since YOLOv5 computes
    /// in NCHW and its reference gradients are matched to 1e-4 (the other layout reorders the convolutions'
    /// sums: 6·10⁻⁴ relative in the global gradient norm of the parity batch).
    pub channels_last: bool,
}

/// What one iteration did.
#[derive(Debug)]
pub struct StepReport {
    /// The batch's loss.
    pub loss: LossOutput,
    /// The global gradient norm before clipping, when this iteration stepped the optimizer.
    pub grad_norm: Option<f64>,
}

/// The state that changes from iteration to iteration: model, EMA, optimizer, loss, accumulation.
#[derive(Debug)]
pub struct TrainStep {
    /// The model being trained.
    pub model: Yolo,
    /// Its moving average (validated and saved).
    pub ema: ModelEma,
    /// The optimizer over YOLOv5's three parameter groups.
    pub opt: Optimizer,
    /// The loss.
    pub loss: ComputeLoss,
    /// Iteration of the last optimizer step (−1 before the first).
    pub last_opt_step: i64,
    /// The gradient scaler.
    pub scaler: GradScaler,
    accumulate: usize,
    warmup: usize,
    lrf: f64,
    warmup_bias_lr: f64,
    warmup_momentum: f64,
    momentum: f64,
    schedule: StepSchedule,
}

impl TrainStep {
    /// Optimizer (weight decay scaled to the effective batch), EMA and warmup length for `model`. The model
    /// and its EMA are laid out channels-last when the schedule says so.
    pub fn new(
        mut model: Yolo,
        hyp: &Hyp,
        loss: ComputeLoss,
        kind: OptimizerKind,
        schedule: StepSchedule,
    ) -> crate::Result<Self> {
        let wd = scaled_weight_decay(hyp.weight_decay, schedule.batch);
        let opt = Optimizer::new(kind, &model, hyp.lr0, hyp.momentum, wd);
        let mut ema = ModelEma::new(&model)?;
        if schedule.channels_last {
            model.use_channels_last();
            ema.model.use_channels_last();
        }
        Ok(TrainStep {
            model,
            ema,
            opt,
            loss,
            last_opt_step: -1,
            scaler: GradScaler::new(schedule.amp),
            accumulate: accumulate(schedule.batch),
            warmup: warmup_iters(hyp.warmup_epochs, schedule.batches_per_epoch),
            lrf: hyp.lrf,
            warmup_bias_lr: hyp.warmup_bias_lr,
            warmup_momentum: hyp.warmup_momentum,
            momentum: hyp.momentum,
            schedule,
        })
    }

    /// The LambdaLR factor `lf(epoch)`.
    pub fn lf(&self, epoch: usize) -> f64 {
        lr_factor(epoch as f64, self.schedule.epochs, self.lrf, self.schedule.cos_lr)
    }

    /// Warmup iterations (`nw`).
    pub fn warmup_iterations(&self) -> usize {
        self.warmup
    }

    /// Learning rates for a run starting (or resuming) at `epoch`: what the scheduler step at the end of
    /// epoch − 1 left (`lf(0)` for a new run), times a staged schedule's `scale`.
    pub fn position(&mut self, epoch: usize, scale: f64) {
        let lf = self.lf(epoch.saturating_sub(1));
        for g in &mut self.opt.groups {
            g.lr = g.initial_lr * lf * scale;
        }
    }

    /// Start an epoch: train.py zeroes the gradients before its first batch.
    pub fn start_epoch(&mut self) {
        self.opt.zero_grad();
    }

    /// Iteration `ni` of training, in `epoch`, with `imgs` (float, 0–1) and `targets` (`[n, 6]`). A loss
    /// that is not finite is returned before any backward pass, for the caller to stop on.
    pub fn iteration(&mut self, ni: usize, epoch: usize, lr_scale: f64, imgs: &Tensor, targets: &Tensor) -> StepReport {
        if ni <= self.warmup {
            self.accumulate = warmup_accumulate(ni, self.warmup, self.schedule.batch);
            let lf = self.lf(epoch);
            let sgd = self.opt.kind == OptimizerKind::Sgd;
            for (j, g) in self.opt.groups.iter_mut().enumerate() {
                g.lr = warmup_lr(ni, self.warmup, j, self.warmup_bias_lr, g.initial_lr * lf * lr_scale);
                if sgd {
                    g.momentum = warmup_momentum(ni, self.warmup, self.warmup_momentum, self.momentum);
                }
            }
        }
        let (loss_fn, model, amp) = (&self.loss, &self.model, self.scaler.enabled);
        let forward = || -> LossOutput {
            let run = || loss_fn.forward(&model.forward_t(imgs, true), targets);
            if amp { tch::autocast(true, run) } else { run() }
        };
        let loss = forward();
        if !loss.items.iter().all(|v| v.is_finite()) {
            return StepReport { loss, grad_norm: None };
        }
        let scale = self.scaler.factor();
        if self.schedule.sam {
            sam_backward(&mut self.opt, &loss.total, scale, || forward().total);
        } else {
            (&loss.total * scale).backward();
        }
        let mut grad_norm = None;
        if ni as i64 - self.last_opt_step >= self.accumulate as i64 {
            grad_norm = Some(self.optimizer_step());
            self.last_opt_step = ni as i64;
        }
        StepReport { loss, grad_norm }
    }

    /// The scheduler step at the end of `epoch`: the next epoch trains at `lf(epoch)` (train.py sets
    /// `scheduler.last_epoch = start_epoch − 1`, so each epoch after warmup is one `lf` behind its own
    /// number), times the next stage's `scale` under a staged schedule.
    pub fn end_epoch(&mut self, epoch: usize, scale: f64) {
        let next = self.lf(epoch) * scale;
        for g in &mut self.opt.groups {
            g.lr = g.initial_lr * next;
        }
    }

    /// Unscale (AMP), clip to norm 10, step (skipped on overflow), zero the gradients, update the EMA;
    /// returns the norm before clipping.
    fn optimizer_step(&mut self) -> f64 {
        let params = self.opt.params();
        if self.scaler.enabled {
            let inv = 1.0 / self.scaler.scale;
            tch::no_grad(|| {
                for p in &params {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.g_mul_scalar_(inv);
                    }
                }
            });
        }
        let (total, _) = clip_grad_norm(&params, MAX_GRAD_NORM);
        let overflow = self.scaler.enabled && !total.is_finite();
        if !overflow {
            self.opt.step();
        }
        self.scaler.update(overflow);
        self.opt.zero_grad();
        self.ema.update();
        total
    }
}

/// Sharpness-aware minimisation: the gradient is taken at the worst nearby point `w + ρ·g/‖g‖`, then
/// added to the accumulated gradients of earlier batches.
fn sam_backward(opt: &mut Optimizer, loss: &Tensor, scale: f64, second: impl Fn() -> Tensor) {
    let params: Vec<Tensor> = opt.params().into_iter().filter(|p| p.requires_grad()).collect();
    let stash: Vec<Option<Tensor>> =
        params.iter().map(|p| Some(p.grad()).filter(Tensor::defined).map(|g| g.copy())).collect();
    opt.zero_grad();
    (loss * scale).backward();
    let (norm, _) = clip_grad_norm(&params, f64::INFINITY);
    let k = SAM_RHO / (norm + 1e-12);
    let eps: Vec<Option<Tensor>> = tch::no_grad(|| {
        params
            .iter()
            .map(|p| {
                let g = p.grad();
                g.defined().then(|| {
                    let e = &g * k;
                    let _ = p.shallow_clone().g_add_(&e);
                    e
                })
            })
            .collect()
    });
    opt.zero_grad();
    (second() * scale).backward();
    tch::no_grad(|| {
        for ((p, e), s) in params.iter().zip(&eps).zip(&stash) {
            if let Some(e) = e {
                let _ = p.shallow_clone().g_sub_(e);
            }
            if let Some(s) = s {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_add_(s);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::LossConfig;
    use tch::{Device, Kind};

    fn step() -> TrainStep {
        step_laid_out(true)
    }

    fn step_laid_out(channels_last: bool) -> TrainStep {
        tch::manual_seed(0);
        let model = Yolo::new("yolov5n", Some(1), Device::Cpu).unwrap();
        let hyp = Hyp::load("scratch-low").unwrap();
        let loss = ComputeLoss::new(&model, LossConfig::from_hyp(&hyp, 1, 3, 64, 0.0));
        let schedule = StepSchedule {
            epochs: 10,
            batches_per_epoch: 4,
            batch: 16,
            cos_lr: false,
            sam: false,
            amp: false,
            channels_last,
        };
        TrainStep::new(model, &hyp, loss, OptimizerKind::Sgd, schedule).unwrap()
    }

    fn batch() -> (Tensor, Tensor) {
        let imgs = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        let targets = Tensor::from_slice(&[0.0f32, 0.0, 0.5, 0.5, 0.3, 0.3, 1.0, 0.0, 0.4, 0.6, 0.2, 0.4]).view([2, 6]);
        (imgs, targets)
    }

    fn has_gradient(s: &TrainStep) -> bool {
        s.opt.params().iter().any(|p| {
            let g = p.grad();
            g.defined() && g.abs().sum(Kind::Double).double_value(&[]) > 0.0
        })
    }

    #[test]
    fn both_memory_layouts_train_alike() {
        let (imgs, targets) = batch();
        // one set of weights for both (the global seed is shared with tests running alongside)
        let (mut a, mut b) = (step_laid_out(false), step_laid_out(true));
        b.model.vs.copy(&a.model.vs).unwrap();
        let conv =
            |s: &TrainStep| s.model.vs.variables().into_values().find(|v| v.dim() == 4 && v.size()[2] > 1).unwrap();
        assert!(conv(&a).is_contiguous() && conv(&b).stride()[1] == 1, "weights laid out as asked");
        let (ra, rb) = (a.iteration(0, 0, 1.0, &imgs, &targets), b.iteration(0, 0, 1.0, &imgs, &targets));
        for (x, y) in ra.loss.items.iter().zip(rb.loss.items) {
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(1e-3),
                "loss items {:?} and {:?}",
                ra.loss.items,
                rb.loss.items
            );
        }
        let (na, nb) = (ra.grad_norm.unwrap(), rb.grad_norm.unwrap());
        assert!((na - nb).abs() <= 2e-3 * na, "gradient norms {na} and {nb}");
    }

    #[test]
    fn warmup_steps_every_iteration_at_first_with_the_bias_lr_falling_from_its_warmup_value() {
        let mut s = step();
        let (imgs, targets) = batch();
        assert_eq!(s.warmup_iterations(), 100);
        let r = s.iteration(0, 0, 1.0, &imgs, &targets);
        assert!(r.grad_norm.is_some(), "accumulation is 1 at the start of warmup");
        assert_eq!(s.opt.groups[0].lr, 0.1);
        assert_eq!(s.opt.groups[1].lr, 0.0);
        assert!((s.opt.groups[1].momentum - 0.8).abs() < 1e-12);
        assert_eq!((s.last_opt_step, s.ema.updates, s.opt.steps), (0, 1, 1));
    }

    #[test]
    fn gradients_not_yet_stepped_are_dropped_when_an_epoch_starts() {
        let mut s = step();
        let (imgs, targets) = batch();
        // past warmup the accumulation is 64 / 16 = 4: iterations after a step only accumulate
        s.last_opt_step = 200;
        assert!(s.iteration(201, 50, 1.0, &imgs, &targets).grad_norm.is_none());
        assert!(has_gradient(&s));
        s.start_epoch();
        assert!(!has_gradient(&s), "train.py zeroes the gradients before an epoch's first batch");
        for ni in 202..204 {
            assert!(s.iteration(ni, 51, 1.0, &imgs, &targets).grad_norm.is_none());
        }
        assert!(s.iteration(204, 51, 1.0, &imgs, &targets).grad_norm.is_some());
        assert_eq!((s.last_opt_step, s.ema.updates), (204, 1));
        assert!(!has_gradient(&s), "gradients are zeroed after a step");
    }
}
