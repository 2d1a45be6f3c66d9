//! The building blocks of models/common.py (ultralytics/yolov5@5081342f): Conv, Bottleneck, C3, SPPF, with a
//! hand-built BatchNorm. Variable names are PyTorch's `state_dict` names, and each variable joins one of
//! YOLOv5's three optimizer groups (`smart_optimizer`) when it is created.

use tch::nn::{Init, ModuleT, Path};
use tch::{Kind, Tensor};

/// Optimizer group of biases (no weight decay). YOLOv5's group 0.
pub const GROUP_BIAS: usize = 0;
/// Optimizer group of conv weights (weight decay). YOLOv5's group 1.
pub const GROUP_WEIGHT: usize = 1;
/// Optimizer group of normalisation weights (no weight decay). YOLOv5's group 2.
pub const GROUP_NORM: usize = 2;
/// BatchNorm epsilon set by `initialize_weights`.
pub const BN_EPS: f64 = 1e-3;
/// BatchNorm momentum set by `initialize_weights` (PyTorch convention: weight of the new batch statistic).
pub const BN_MOMENTUM: f64 = 0.03;
/// PyTorch's default BatchNorm momentum, in force during the stride probe at construction.
pub const BN_MOMENTUM_DEFAULT: f64 = 0.1;

/// PyTorch's default Conv2d initialisation (kaiming_uniform with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
/// for the weight and the bias alike.
pub fn conv_init(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}

/// BatchNorm2d with YOLOv5's eps and momentum, weight 1 and bias 0, and a `num_batches_tracked` counter, so
/// the variables are exactly PyTorch's (`weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`).
#[derive(Debug)]
pub struct BatchNorm {
    /// Scale (group 2).
    pub weight: Tensor,
    /// Shift (group 0).
    pub bias: Tensor,
    /// Running mean.
    pub running_mean: Tensor,
    /// Running (unbiased) variance.
    pub running_var: Tensor,
    /// Batches seen in training mode (int64 scalar).
    pub num_batches_tracked: Tensor,
    /// Momentum of the running statistics.
    pub momentum: f64,
}

impl BatchNorm {
    /// Create the variables under `p`.
    pub fn new(p: &Path, c: i64) -> Self {
        let num_batches_tracked = p.add("num_batches_tracked", Tensor::zeros([], (Kind::Int64, p.device())), false);
        BatchNorm {
            weight: p.set_group(GROUP_NORM).var("weight", &[c], Init::Const(1.0)),
            bias: p.set_group(GROUP_BIAS).var("bias", &[c], Init::Const(0.0)),
            running_mean: p.zeros_no_train("running_mean", &[c]),
            running_var: p.ones_no_train("running_var", &[c]),
            num_batches_tracked,
            momentum: BN_MOMENTUM,
        }
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if train {
            tch::no_grad(|| {
                let mut n = self.num_batches_tracked.shallow_clone();
                let _ = n.g_add_scalar_(1);
            });
        }
        Tensor::batch_norm(
            xs,
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            self.momentum,
            BN_EPS,
            true,
        )
    }
}

/// Conv2d without bias, BatchNorm, SiLU (`Conv`).
#[derive(Debug)]
pub struct Conv {
    /// Kernel `[c2, c1, k, k]` (group 1).
    pub weight: Tensor,
    /// The normalisation.
    pub bn: BatchNorm,
    stride: i64,
    padding: i64,
}

impl Conv {
    /// `Conv(c1, c2, k, s, p)` under `p` (`{p}.conv.weight`, `{p}.bn.*`).
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64, s: i64, pad: i64) -> Self {
        let weight = (p / "conv").set_group(GROUP_WEIGHT).var("weight", &[c2, c1, k, k], conv_init(c1 * k * k));
        Conv { weight, bn: BatchNorm::new(&(p / "bn"), c2), stride: s, padding: pad }
    }

    /// Multiply-accumulates for an output of `out_hw` pixels, plus the BatchNorm as thop counts it.
    pub fn macs(&self, out_hw: i64) -> f64 {
        let s = self.weight.size();
        let conv = out_hw * s[0] * s[1] * s[2] * s[3];
        let bn = 4 * out_hw * s[0]; // thop: 2 per element, doubled for an affine norm
        (conv + bn) as f64
    }

    /// Output spatial size for an input size.
    pub fn out_size(&self, n: i64) -> i64 {
        let k = self.weight.size()[2];
        (n + 2 * self.padding - k) / self.stride + 1
    }
}

impl ModuleT for Conv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = xs.conv2d(&self.weight, None::<Tensor>, [self.stride], [self.padding], [1], 1);
        self.bn.forward_t(&y, train).silu()
    }
}

/// Standard bottleneck: 1x1 conv, 3x3 conv, optional residual (`Bottleneck`).
#[derive(Debug)]
pub struct Bottleneck {
    /// 1x1 reduction.
    pub cv1: Conv,
    /// 3x3 conv.
    pub cv2: Conv,
    add: bool,
}

impl Bottleneck {
    /// `Bottleneck(c1, c2, shortcut, e)`; hidden channels `int(c2 * e)`.
    pub fn new(p: &Path, c1: i64, c2: i64, shortcut: bool, e: f64) -> Self {
        let c_ = (c2 as f64 * e) as i64;
        Bottleneck {
            cv1: Conv::new(&(p / "cv1"), c1, c_, 1, 1, 0),
            cv2: Conv::new(&(p / "cv2"), c_, c2, 3, 1, 1),
            add: shortcut && c1 == c2,
        }
    }

    /// The convolutions.
    pub fn convs(&self) -> Vec<&Conv> {
        vec![&self.cv1, &self.cv2]
    }
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = self.cv2.forward_t(&self.cv1.forward_t(xs, train), train);
        if self.add { xs + y } else { y }
    }
}

/// CSP bottleneck with three convolutions (`C3`): `cv3(cat(m(cv1(x)), cv2(x)))`.
#[derive(Debug)]
pub struct C3 {
    /// Bottleneck branch entry.
    pub cv1: Conv,
    /// Shortcut branch.
    pub cv2: Conv,
    /// Fusion.
    pub cv3: Conv,
    /// Bottlenecks.
    pub m: Vec<Bottleneck>,
}

impl C3 {
    /// `C3(c1, c2, n, shortcut)` with e = 0.5; inner bottlenecks use e = 1.0.
    pub fn new(p: &Path, c1: i64, c2: i64, n: usize, shortcut: bool) -> Self {
        let c_ = c2 / 2;
        C3 {
            cv1: Conv::new(&(p / "cv1"), c1, c_, 1, 1, 0),
            cv2: Conv::new(&(p / "cv2"), c1, c_, 1, 1, 0),
            cv3: Conv::new(&(p / "cv3"), 2 * c_, c2, 1, 1, 0),
            m: (0..n).map(|i| Bottleneck::new(&(p / "m" / i), c_, c_, shortcut, 1.0)).collect(),
        }
    }

    /// Every convolution, in module order.
    pub fn convs(&self) -> Vec<&Conv> {
        let mut v = vec![&self.cv1, &self.cv2, &self.cv3];
        v.extend(self.m.iter().flat_map(Bottleneck::convs));
        v
    }
}

impl ModuleT for C3 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut a = self.cv1.forward_t(xs, train);
        for b in &self.m {
            a = b.forward_t(&a, train);
        }
        let b = self.cv2.forward_t(xs, train);
        self.cv3.forward_t(&Tensor::cat(&[a, b], 1), train)
    }
}

/// Spatial pyramid pooling, fast (`SPPF`): three chained max-pools of size k, concatenated with the input.
#[derive(Debug)]
pub struct Sppf {
    /// Reduction.
    pub cv1: Conv,
    /// Fusion.
    pub cv2: Conv,
    k: i64,
}

impl Sppf {
    /// `SPPF(c1, c2, k)`.
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64) -> Self {
        let c_ = c1 / 2;
        Sppf { cv1: Conv::new(&(p / "cv1"), c1, c_, 1, 1, 0), cv2: Conv::new(&(p / "cv2"), c_ * 4, c2, 1, 1, 0), k }
    }
}

impl ModuleT for Sppf {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let x = self.cv1.forward_t(xs, train);
        let pool = |t: &Tensor| t.max_pool2d([self.k], [1], [self.k / 2], [1], false);
        let y1 = pool(&x);
        let y2 = pool(&y1);
        let y3 = pool(&y2);
        self.cv2.forward_t(&Tensor::cat(&[x, y1, y2, y3], 1), train)
    }
}
