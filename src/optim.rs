//! Optimizers with YOLOv5's three parameter groups (`smart_optimizer` in utils/torch_utils.py): biases (group
//! 0, no decay), conv weights (group 1, weight decay), BatchNorm weights (group 2, no decay).
//!
//! Written here rather than taken from tch so that the state (momentum buffers, Adam moments) can be saved
//! in checkpoints and resumed, and per-group momentum works for every kind. The update rules are PyTorch's
//! (`torch.optim.SGD`, `Adam`, `AdamW`), checked against YOLOv5's SGD step by the parity fixtures.

use crate::model::{GROUP_BIAS, GROUP_NORM, GROUP_WEIGHT, Yolo, is_buffer};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// Gradient clipping threshold of train.py (`clip_grad_norm_(..., max_norm=10.0)`).
pub const MAX_GRAD_NORM: f64 = 10.0;
/// Adam's second-moment decay (`betas=(momentum, 0.999)` in smart_optimizer).
pub const ADAM_BETA2: f64 = 0.999;
/// Adam's epsilon (PyTorch default).
pub const ADAM_EPS: f64 = 1e-8;

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptimizerKind {
    /// SGD with Nesterov momentum (YOLOv5's default).
    #[default]
    Sgd,
    /// Adam with L2 weight decay on conv weights; beta1 = momentum.
    Adam,
    /// AdamW with decoupled weight decay on conv weights; beta1 = momentum.
    AdamW,
}

impl std::str::FromStr for OptimizerKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            other => Err(crate::Error::Config {
                name: "optimizer",
                message: format!("`{other}` is not one of SGD, Adam, AdamW"),
            }),
        }
    }
}

/// One parameter group.
#[derive(Debug)]
pub struct Group {
    /// (name, variable) pairs.
    pub params: Vec<(String, Tensor)>,
    /// Learning rate.
    pub lr: f64,
    /// Starting learning rate of the schedule (`initial_lr`).
    pub initial_lr: f64,
    /// Momentum (SGD) or beta1 (Adam).
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
}

/// An optimizer over a model's variables in YOLOv5's groups.
#[derive(Debug)]
pub struct Optimizer {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Groups 0 (biases), 1 (decayed weights), 2 (norm weights).
    pub groups: Vec<Group>,
    /// Per-parameter state: SGD `[momentum_buffer]`, Adam `[exp_avg, exp_avg_sq]`, keyed by name.
    pub state: BTreeMap<String, Vec<Tensor>>,
    /// Steps taken (Adam's bias correction).
    pub steps: i64,
}

/// The group of a parameter name: `bias` → 0, BatchNorm `bn.weight` → 2, any other weight → 1.
pub fn group_of(name: &str) -> usize {
    if name.ends_with(".bias") {
        GROUP_BIAS
    } else if name.ends_with("bn.weight") {
        GROUP_NORM
    } else {
        GROUP_WEIGHT
    }
}

impl Optimizer {
    /// Build for `model` with learning rate, momentum and the weight decay of group 1.
    pub fn new(kind: OptimizerKind, model: &Yolo, lr: f64, momentum: f64, weight_decay: f64) -> Self {
        let mut groups: Vec<Group> = (0..3)
            .map(|g| Group {
                params: vec![],
                lr,
                initial_lr: lr,
                momentum,
                weight_decay: if g == GROUP_WEIGHT { weight_decay } else { 0.0 },
            })
            .collect();
        let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().filter(|(k, _)| !is_buffer(k)).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in vars {
            groups[group_of(&name)].params.push((name, t));
        }
        Optimizer { kind, groups, state: BTreeMap::new(), steps: 0 }
    }

    /// Every parameter.
    pub fn params(&self) -> Vec<Tensor> {
        self.groups.iter().flat_map(|g| g.params.iter().map(|(_, t)| t.shallow_clone())).collect()
    }

    /// Clear every gradient.
    pub fn zero_grad(&mut self) {
        for g in &self.groups {
            for (_, t) in &g.params {
                let mut grad = t.grad();
                if grad.defined() {
                    let _ = grad.detach_();
                    let _ = grad.zero_();
                }
            }
        }
    }

    /// One update of every parameter that has a gradient (frozen ones have none and are skipped, as PyTorch
    /// skips parameters whose grad is None).
    pub fn step(&mut self) {
        self.steps += 1;
        let t = self.steps as f64;
        tch::no_grad(|| {
            for g in &self.groups {
                for (name, p) in &g.params {
                    let grad = p.grad();
                    if !grad.defined() || !p.requires_grad() {
                        continue;
                    }
                    let mut p = p.shallow_clone();
                    match self.kind {
                        OptimizerKind::Sgd => {
                            let d =
                                if g.weight_decay != 0.0 { &grad + &p * g.weight_decay } else { grad.shallow_clone() };
                            let buf = match self.state.get_mut(name) {
                                Some(s) => {
                                    let _ = s[0].g_mul_scalar_(g.momentum).g_add_(&d);
                                    s[0].shallow_clone()
                                }
                                None => {
                                    let b = d.copy();
                                    self.state.insert(name.clone(), vec![b.shallow_clone()]);
                                    b
                                }
                            };
                            let update = &d + &buf * g.momentum; // nesterov
                            let _ = p.g_sub_(&(update * g.lr));
                        }
                        OptimizerKind::Adam | OptimizerKind::AdamW => {
                            let decoupled = self.kind == OptimizerKind::AdamW;
                            if decoupled && g.weight_decay != 0.0 {
                                let _ = p.g_mul_scalar_(1.0 - g.lr * g.weight_decay);
                            }
                            let d = if !decoupled && g.weight_decay != 0.0 {
                                &grad + &p * g.weight_decay
                            } else {
                                grad.shallow_clone()
                            };
                            let s =
                                self.state.entry(name.clone()).or_insert_with(|| vec![p.zeros_like(), p.zeros_like()]);
                            let (b1, b2) = (g.momentum, ADAM_BETA2);
                            let _ = s[0].g_mul_scalar_(b1).g_add_(&(&d * (1.0 - b1)));
                            let _ = s[1].g_mul_scalar_(b2).g_add_(&(&d * &d * (1.0 - b2)));
                            let (bc1, bc2) = (1.0 - b1.powf(t), 1.0 - b2.powf(t));
                            let denom = s[1].sqrt() / bc2.sqrt() + ADAM_EPS;
                            let _ = p.g_sub_(&(&s[0] / denom * (g.lr / bc1)));
                        }
                    }
                }
            }
        });
    }

    /// State tensors for a checkpoint: `{name}.{k}` → tensor.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.state
            .iter()
            .flat_map(|(n, v)| v.iter().enumerate().map(move |(k, t)| (format!("{n}.{k}"), t.shallow_clone())))
            .collect()
    }

    /// Restore state saved by [`Optimizer::state_tensors`].
    pub fn load_state(&mut self, tensors: &std::collections::HashMap<String, Tensor>, steps: i64) {
        self.state.clear();
        let per = if self.kind == OptimizerKind::Sgd { 1 } else { 2 };
        for g in &self.groups {
            for (name, p) in &g.params {
                let v: Option<Vec<Tensor>> = (0..per)
                    .map(|k| tensors.get(&format!("{name}.{k}")).map(|t| t.to_device(p.device()).to_kind(p.kind())))
                    .collect();
                if let Some(v) = v {
                    self.state.insert(name.clone(), v);
                }
            }
        }
        self.steps = steps;
    }
}

/// Clip the gradients of `params` to a total L2 norm of `max_norm` (`torch.nn.utils.clip_grad_norm_`):
/// `coef = min(1, max_norm / (total + 1e-6))`. Parameters without a gradient are skipped. Returns the total
/// norm before clipping and the coefficient applied.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> (f64, f64) {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params.iter().map(Tensor::grad).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return (0.0, 1.0);
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.to_kind(Kind::Float).norm()).collect();
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        let coef = (max_norm / (total + 1e-6)).min(1.0);
        if coef < 1.0 {
            for g in &grads {
                let mut g = g.shallow_clone();
                let _ = g.g_mul_scalar_(coef);
            }
        }
        (total, coef)
    })
}
