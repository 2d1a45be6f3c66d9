//! Optimizer helpers shared by training and the parity check: YOLOv5's three parameter groups and
//! gradient-norm clipping (`smart_optimizer`, `clip_grad_norm_`).

use crate::model::{GROUP_BIAS, GROUP_NORM, GROUP_WEIGHT, Yolo};
use tch::nn::{Optimizer, OptimizerConfig, Sgd};
use tch::{Kind, Tensor};

/// Gradient clipping threshold of train.py (`clip_grad_norm_(..., max_norm=10.0)`).
pub const MAX_GRAD_NORM: f64 = 10.0;

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

/// SGD with Nesterov momentum over YOLOv5's three groups: biases (no decay), conv weights (`weight_decay`),
/// BatchNorm weights (no decay).
pub fn sgd(model: &Yolo, lr: f64, momentum: f64, weight_decay: f64) -> Result<Optimizer, tch::TchError> {
    let mut opt = Sgd { momentum, dampening: 0.0, wd: 0.0, nesterov: true }.build(&model.vs, lr)?;
    for g in [GROUP_BIAS, GROUP_NORM] {
        opt.set_weight_decay_group(g, 0.0);
    }
    opt.set_weight_decay_group(GROUP_WEIGHT, weight_decay);
    Ok(opt)
}
