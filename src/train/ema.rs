//! Exponential moving average of the weights (`ModelEMA` in utils/torch_utils.py), used for validation and
//! checkpoints.

use super::schedule::ema_decay;
use crate::model::Yolo;
use tch::Tensor;

/// The EMA copy of a model.
#[derive(Debug)]
pub struct ModelEma {
    /// The averaged model.
    pub model: Yolo,
    /// Updates so far.
    pub updates: u64,
    pairs: Vec<(Tensor, Tensor)>,
}

impl ModelEma {
    /// Start from a copy of `model` (a fresh model of the same config with the same values).
    pub fn new(model: &Yolo) -> crate::Result<Self> {
        let mut copy = Yolo::from_config(model.config.clone(), model.device())?;
        copy.vs.copy(&model.vs)?;
        copy.vs.freeze();
        let mut ema = ModelEma { model: copy, updates: 0, pairs: vec![] };
        ema.pair(model);
        Ok(ema)
    }

    fn pair(&mut self, model: &Yolo) {
        let src = model.vs.variables();
        let dst = self.model.vs.variables();
        let mut names: Vec<&String> = dst.keys().filter(|k| dst[*k].is_floating_point()).collect();
        names.sort();
        self.pairs = names.into_iter().map(|k| (dst[k].shallow_clone(), src[k].shallow_clone())).collect();
    }

    /// `ema = d·ema + (1 − d)·model` for every floating-point tensor (parameters and BatchNorm statistics).
    pub fn update(&mut self) {
        self.updates += 1;
        let d = ema_decay(self.updates);
        tch::no_grad(|| {
            for (e, m) in &self.pairs {
                let mut e = e.shallow_clone();
                let _ = e.g_mul_scalar_(d);
                let _ = e.g_add_(&(m.detach() * (1.0 - d)));
            }
        });
    }
}
