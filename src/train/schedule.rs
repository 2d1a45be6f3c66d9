//! Learning-rate schedule, warmup, gradient accumulation and EMA decay (train.py, utils/torch_utils.py).

/// Nominal batch size: gradients are accumulated up to it (`nbs = 64`).
pub const NOMINAL_BATCH: f64 = 64.0;
/// Minimum warmup length in iterations (`max(round(warmup_epochs * nb), 100)`).
pub const MIN_WARMUP_ITERS: usize = 100;
/// EMA decay ceiling (`ModelEMA(decay=0.9999)`).
pub const EMA_DECAY: f64 = 0.9999;
/// EMA ramp time constant in updates (`tau=2000`).
pub const EMA_TAU: f64 = 2000.0;

/// The epoch learning-rate factor `lf(epoch)` of LambdaLR: linear from 1 to `lrf`, or a cosine one-cycle.
pub fn lr_factor(epoch: f64, epochs: usize, lrf: f64, cosine: bool) -> f64 {
    let e = epochs.max(1) as f64;
    if cosine {
        ((1.0 - (epoch * std::f64::consts::PI / e).cos()) / 2.0) * (lrf - 1.0) + 1.0
    } else {
        (1.0 - epoch / e) * (1.0 - lrf) + lrf
    }
}

/// `np.interp(x, [x0, x1], [y0, y1])` with clamping at both ends.
pub fn interp(x: f64, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> f64 {
    if x <= x0 {
        y0
    } else if x >= x1 {
        y1
    } else {
        y0 + (x - x0) * (y1 - y0) / (x1 - x0)
    }
}

/// Warmup iterations: `max(round(warmup_epochs · batches_per_epoch), 100)`.
pub fn warmup_iters(warmup_epochs: f64, batches_per_epoch: usize) -> usize {
    ((warmup_epochs * batches_per_epoch as f64).round_ties_even() as usize).max(MIN_WARMUP_ITERS)
}

/// The epoch whose `lf` sets the learning rate in epoch `epoch` once warmup (`nw` iterations of `nb` per
/// epoch) is over: the epoch itself while warmup ends inside it (its last warmup value stays), the previous
/// one afterwards (train.py's LambdaLR steps at each epoch's end with `last_epoch = start_epoch - 1`).
pub fn lr_epoch(epoch: usize, nw: usize, nb: usize) -> usize {
    if epoch * nb <= nw { epoch } else { epoch - 1 }
}

/// Batches accumulated per optimizer step after warmup: `max(round(64 / batch), 1)`.
pub fn accumulate(batch: usize) -> usize {
    ((NOMINAL_BATCH / batch as f64).round_ties_even() as usize).max(1)
}

/// Accumulation during warmup at iteration `ni` of `nw`: rises from 1 to 64/batch.
pub fn warmup_accumulate(ni: usize, nw: usize, batch: usize) -> usize {
    (interp(ni as f64, (0.0, nw as f64), (1.0, NOMINAL_BATCH / batch as f64)).round_ties_even() as usize).max(1)
}

/// Weight decay scaled to the effective batch: `wd · batch · accumulate / 64`.
pub fn scaled_weight_decay(weight_decay: f64, batch: usize) -> f64 {
    weight_decay * batch as f64 * accumulate(batch) as f64 / NOMINAL_BATCH
}

/// Learning rate of group `g` during warmup: the bias group (0) falls from `warmup_bias_lr`, the others rise
/// from 0, towards `initial_lr · lf(epoch)`.
pub fn warmup_lr(ni: usize, nw: usize, group: usize, warmup_bias_lr: f64, target: f64) -> f64 {
    let start = if group == 0 { warmup_bias_lr } else { 0.0 };
    interp(ni as f64, (0.0, nw as f64), (start, target))
}

/// Momentum during warmup: from `warmup_momentum` to `momentum`.
pub fn warmup_momentum(ni: usize, nw: usize, warmup_momentum: f64, momentum: f64) -> f64 {
    interp(ni as f64, (0.0, nw as f64), (warmup_momentum, momentum))
}

/// EMA decay after `updates` updates: `0.9999 · (1 − exp(−updates / 2000))`.
pub fn ema_decay(updates: u64) -> f64 {
    EMA_DECAY * (1.0 - (-(updates as f64) / EMA_TAU).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_at_chosen_points() {
        assert_eq!(lr_factor(0.0, 30, 0.01, false), 1.0);
        assert!((lr_factor(15.0, 30, 0.01, false) - 0.505).abs() < 1e-12);
        assert!((lr_factor(30.0, 30, 0.01, false) - 0.01).abs() < 1e-12);
        assert!((lr_factor(15.0, 30, 0.01, true) - 0.505).abs() < 1e-12);
        assert!((lr_factor(30.0, 30, 0.1, true) - 0.1).abs() < 1e-12);
        assert_eq!(warmup_iters(3.0, 16), 100);
        assert_eq!(warmup_iters(3.0, 100), 300);
        assert_eq!((accumulate(16), accumulate(24), accumulate(128)), (4, 3, 1));
        assert!((scaled_weight_decay(5e-4, 24) - 5e-4 * 1.125).abs() < 1e-15);
        assert_eq!(warmup_accumulate(0, 100, 16), 1);
        assert_eq!(warmup_accumulate(100, 100, 16), 4);
        assert_eq!(warmup_accumulate(50, 100, 16), 2); // round(2.5) = 2, half to even
        assert!((warmup_lr(0, 100, 0, 0.1, 0.01) - 0.1).abs() < 1e-15);
        assert!((warmup_lr(50, 100, 0, 0.1, 0.01) - 0.055).abs() < 1e-15);
        assert!((warmup_lr(50, 100, 1, 0.1, 0.01) - 0.005).abs() < 1e-15);
        assert!((warmup_momentum(25, 100, 0.8, 0.937) - 0.83425).abs() < 1e-12);
        assert_eq!(ema_decay(0), 0.0);
        assert!((ema_decay(2000) - 0.9999 * (1.0 - (-1.0f64).exp())).abs() < 1e-15);
        assert!(ema_decay(1_000_000) > 0.99989);
    }
}
