//! The building blocks of models/common.py (ultralytics/yolov5@5081342f) that most models are made of:
//! Conv, Bottleneck, the C3 family (C3, C3x, C3TR, C3SPP, C3Ghost), SPP and SPPF, with a hand-built
//! BatchNorm; the rarer blocks are in `blocks.rs`. Variable names are PyTorch's `state_dict` names, and each
//! variable joins one of YOLOv5's three optimizer groups (`smart_optimizer`) when it is created.
//!
//! Every block is a [`Module`]: one input, one output, and what the model needs around the forward pass
//! (its BatchNorms, its multiply-accumulates as thop counts them, its leaf modules as PyTorch lists them).

use super::blocks::{GhostBottleneck, TransformerBlock};
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
    /// Normalise with the running statistics and leave them alone even in training mode (a frozen layer
    /// under `Trainer::freeze_bn`, as `module.eval()` in PyTorch).
    pub eval_always: bool,
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
            eval_always: false,
        }
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let train = train && !self.eval_always;
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

/// A block with one input: the forward pass and what the model needs around it.
pub trait Module: std::fmt::Debug + Send {
    /// The output for `xs`; `train` selects batch statistics in BatchNorm.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor;
    /// Every BatchNorm (the model sets their momentum).
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm>;
    /// Multiply-accumulates for a `[1, c, h, w]` input as thop counts them (convolutions, BatchNorm, linear
    /// layers, multi-head attention; pooling, padding and activations count 0), and the output
    /// (channels, height, width).
    fn cost(&self, input: Shape) -> (f64, Shape);
    /// Leaf nn.Modules, as `model.named_modules()` lists them, except the shared default activation (the
    /// model counts it once).
    fn leaves(&self) -> usize;
}

/// (channels, height, width).
pub type Shape = (i64, i64, i64);

/// The activation of a Conv: the model's default (YOLOv5's `Conv.default_act`, set by the yaml's
/// `activation:`), or none (`act=False`, an `nn.Identity`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    /// `nn.SiLU()`, YOLOv5's default.
    Silu,
    /// `nn.LeakyReLU(slope)`.
    LeakyRelu(f64),
    /// `nn.ReLU()`.
    Relu,
    /// `nn.Hardswish()`.
    Hardswish,
    /// `nn.Sigmoid()`.
    Sigmoid,
    /// No activation (`act=False`).
    Identity,
}

impl Act {
    /// The yaml's `activation:` value (`nn.SiLU()`, `nn.LeakyReLU(0.1)`, ...).
    pub fn parse(s: &str) -> Option<Act> {
        let s = s.trim();
        let (name, arg) = match s.split_once('(') {
            Some((n, rest)) => (n.trim(), rest.trim_end_matches(')').trim()),
            None => (s, ""),
        };
        let name = name.trim_start_matches("torch.").trim_start_matches("nn.");
        Some(match name {
            "SiLU" => Act::Silu,
            "LeakyReLU" => {
                let slope = arg.trim_start_matches("negative_slope=").trim();
                Act::LeakyRelu(if slope.is_empty() { 0.01 } else { slope.parse().ok()? })
            }
            "ReLU" => Act::Relu,
            "Hardswish" => Act::Hardswish,
            "Sigmoid" => Act::Sigmoid,
            "Identity" => Act::Identity,
            _ => return None,
        })
    }

    /// Apply it.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        match self {
            Act::Silu => x.silu(),
            // F.leaky_relu: x where positive, slope·x where negative
            Act::LeakyRelu(a) => x.clamp_min(0.0) + x.clamp_max(0.0) * *a,
            Act::Relu => x.relu(),
            Act::Hardswish => x.hardswish(),
            Act::Sigmoid => x.sigmoid(),
            Act::Identity => x.shallow_clone(),
        }
    }
}

/// How a block's convolutions are made: the model's default activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ctx {
    /// `Conv.default_act`.
    pub act: Act,
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx { act: Act::Silu }
    }
}

/// Conv2d without bias, BatchNorm, activation (`Conv(c1, c2, k, s, p, g, d=1, act)`).
#[derive(Debug)]
pub struct Conv {
    /// Kernel `[c2, c1 / g, kh, kw]` (group 1).
    pub weight: Tensor,
    /// The normalisation.
    pub bn: BatchNorm,
    stride: [i64; 2],
    padding: [i64; 2],
    groups: i64,
    act: Act,
    /// Whether `act` is the model's shared default (else its own module, an `nn.Identity` for act=False).
    shared_act: bool,
}

/// A conv's shape: kernel, stride and padding as (height, width), groups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvShape {
    /// Kernel (kh, kw).
    pub k: [i64; 2],
    /// Stride (sh, sw).
    pub s: [i64; 2],
    /// Padding (ph, pw); `autopad` gives `k / 2`.
    pub p: [i64; 2],
    /// Groups.
    pub g: i64,
}

impl ConvShape {
    /// A square kernel with `autopad` padding and one group.
    pub fn square(k: i64, s: i64) -> Self {
        ConvShape { k: [k, k], s: [s, s], p: [k / 2, k / 2], g: 1 }
    }

    /// With padding `p` on both axes.
    pub fn pad(mut self, p: i64) -> Self {
        self.p = [p, p];
        self
    }

    /// With `g` groups.
    pub fn groups(mut self, g: i64) -> Self {
        self.g = g;
        self
    }
}

impl Conv {
    /// `Conv(c1, c2, k, s, p)` with the model's default activation, under `p` (`{p}.conv.weight`, `{p}.bn.*`).
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64, s: i64, pad: i64, ctx: Ctx) -> Self {
        Self::shaped(p, c1, c2, ConvShape::square(k, s).pad(pad), Some(ctx.act))
    }

    /// A conv of any shape; `act` None is `act=False`.
    pub fn shaped(p: &Path, c1: i64, c2: i64, shape: ConvShape, act: Option<Act>) -> Self {
        let ConvShape { k, s, p: pad, g } = shape;
        let fan_in = c1 / g * k[0] * k[1];
        let weight = (p / "conv").set_group(GROUP_WEIGHT).var("weight", &[c2, c1 / g, k[0], k[1]], conv_init(fan_in));
        Conv {
            weight,
            bn: BatchNorm::new(&(p / "bn"), c2),
            stride: s,
            padding: pad,
            groups: g,
            act: act.unwrap_or(Act::Identity),
            shared_act: act.is_some(),
        }
    }

    /// Multiply-accumulates for an output of `out_hw` pixels, plus the BatchNorm as thop counts it.
    pub fn macs(&self, out_hw: i64) -> f64 {
        let s = self.weight.size();
        let conv = out_hw * s[0] * s[1] * s[2] * s[3];
        let bn = 4 * out_hw * s[0]; // thop: 2 per element, doubled for an affine norm
        (conv + bn) as f64
    }

    /// Output spatial size (h, w) for an input size.
    pub fn out_hw(&self, h: i64, w: i64) -> (i64, i64) {
        let k = self.weight.size();
        let side = |n: i64, a: usize| (n + 2 * self.padding[a] - k[2 + a]) / self.stride[a] + 1;
        (side(h, 0), side(w, 1))
    }
}

impl ModuleT for Conv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = xs.conv2d(&self.weight, None::<Tensor>, self.stride, self.padding, [1, 1], self.groups);
        self.act.apply(&self.bn.forward_t(&y, train))
    }
}

impl Module for Conv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        ModuleT::forward_t(self, xs, train)
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        vec![&mut self.bn]
    }
    fn cost(&self, (_, h, w): Shape) -> (f64, Shape) {
        let (oh, ow) = self.out_hw(h, w);
        (self.macs(oh * ow), (self.weight.size()[0], oh, ow))
    }
    fn leaves(&self) -> usize {
        2 + usize::from(!self.shared_act)
    }
}

/// Standard bottleneck: 1x1 conv, 3x3 conv, optional residual (`Bottleneck`; also the shape of `CrossConv`).
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
    pub fn new(p: &Path, c1: i64, c2: i64, shortcut: bool, e: f64, ctx: Ctx) -> Self {
        let c_ = (c2 as f64 * e) as i64;
        Bottleneck {
            cv1: Conv::new(&(p / "cv1"), c1, c_, 1, 1, 0, ctx),
            cv2: Conv::new(&(p / "cv2"), c_, c2, 3, 1, 1, ctx),
            add: shortcut && c1 == c2,
        }
    }
}

impl Module for Bottleneck {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = Module::forward_t(&self.cv2, &Module::forward_t(&self.cv1, xs, train), train);
        if self.add { xs + y } else { y }
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        vec![&mut self.cv1.bn, &mut self.cv2.bn]
    }
    fn cost(&self, x: Shape) -> (f64, Shape) {
        chain_cost(&[&self.cv1, &self.cv2], x)
    }
    fn leaves(&self) -> usize {
        self.cv1.leaves() + self.cv2.leaves()
    }
}

/// The cost of modules applied one after another.
pub(crate) fn chain_cost(ms: &[&dyn Module], x: Shape) -> (f64, Shape) {
    ms.iter().fold((0.0, x), |(total, x), m| {
        let (c, y) = m.cost(x);
        (total + c, y)
    })
}

/// `n` modules in an `nn.Sequential` (`m.0`, `m.1`, ...).
#[derive(Debug)]
pub struct Sequential(pub Vec<Box<dyn Module>>);

impl Module for Sequential {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0.iter().fold(xs.shallow_clone(), |x, m| m.forward_t(&x, train))
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        self.0.iter_mut().flat_map(|m| m.batch_norms_mut()).collect()
    }
    fn cost(&self, x: Shape) -> (f64, Shape) {
        let ms: Vec<&dyn Module> = self.0.iter().map(|m| m.as_ref()).collect();
        chain_cost(&ms, x)
    }
    fn leaves(&self) -> usize {
        self.0.iter().map(|m| m.leaves()).sum()
    }
}

/// What fills the middle of a C3 (`self.m`).
#[derive(Debug, Clone, PartialEq)]
pub enum C3Kind {
    /// `C3`: bottlenecks.
    C3,
    /// `C3x`: cross convolutions.
    C3x,
    /// `C3TR`: a transformer block of `n` layers with 4 heads.
    C3Tr,
    /// `C3SPP`: spatial pyramid pooling with these kernels.
    C3Spp(Vec<i64>),
    /// `C3Ghost`: ghost bottlenecks.
    C3Ghost,
}

impl C3Kind {
    /// YOLOv5's class name.
    pub fn name(&self) -> &'static str {
        match self {
            C3Kind::C3 => "C3",
            C3Kind::C3x => "C3x",
            C3Kind::C3Tr => "C3TR",
            C3Kind::C3Spp(_) => "C3SPP",
            C3Kind::C3Ghost => "C3Ghost",
        }
    }
}

/// CSP bottleneck with three convolutions (`C3` and its variants): `cv3(cat(m(cv1(x)), cv2(x)))`.
#[derive(Debug)]
pub struct C3 {
    /// Bottleneck branch entry.
    pub cv1: Conv,
    /// Shortcut branch.
    pub cv2: Conv,
    /// Fusion.
    pub cv3: Conv,
    /// The middle: bottlenecks, cross convs, ghost bottlenecks (a Sequential), a transformer or an SPP.
    pub m: Box<dyn Module>,
}

impl C3 {
    /// `C3(c1, c2, n, shortcut)` with e = 0.5 (or the variant `kind`); inner bottlenecks use e = 1.0.
    pub fn new(p: &Path, kind: &C3Kind, c1: i64, c2: i64, n: usize, shortcut: bool, ctx: Ctx) -> Self {
        let c_ = c2 / 2;
        let q = p / "m";
        let seq = |f: &dyn Fn(&Path) -> Box<dyn Module>| -> Box<dyn Module> {
            Box::new(Sequential((0..n).map(|i| f(&(&q / i))).collect()))
        };
        let m: Box<dyn Module> = match kind {
            C3Kind::C3 => seq(&|p| Box::new(Bottleneck::new(p, c_, c_, shortcut, 1.0, ctx))),
            C3Kind::C3x => seq(&|p| Box::new(cross_conv(p, c_, c_, 3, 1, shortcut, ctx))),
            C3Kind::C3Ghost => seq(&|p| Box::new(GhostBottleneck::new(p, c_, c_, 3, 1, ctx))),
            C3Kind::C3Tr => Box::new(TransformerBlock::new(&q, c_, c_, 4, n, ctx)),
            C3Kind::C3Spp(k) => Box::new(Spp::new(&q, c_, c_, k, ctx)),
        };
        C3 {
            cv1: Conv::new(&(p / "cv1"), c1, c_, 1, 1, 0, ctx),
            cv2: Conv::new(&(p / "cv2"), c1, c_, 1, 1, 0, ctx),
            cv3: Conv::new(&(p / "cv3"), 2 * c_, c2, 1, 1, 0, ctx),
            m,
        }
    }
}

impl Module for C3 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let a = self.m.forward_t(&Module::forward_t(&self.cv1, xs, train), train);
        let b = Module::forward_t(&self.cv2, xs, train);
        Module::forward_t(&self.cv3, &Tensor::cat(&[a, b], 1), train)
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut v = vec![&mut self.cv1.bn, &mut self.cv2.bn, &mut self.cv3.bn];
        v.extend(self.m.batch_norms_mut());
        v
    }
    fn cost(&self, x: Shape) -> (f64, Shape) {
        let (a, y1) = chain_cost(&[&self.cv1, self.m.as_ref()], x);
        let (b, y2) = self.cv2.cost(x);
        let (c, y) = self.cv3.cost((y1.0 + y2.0, y1.1, y1.2));
        (a + b + c, y)
    }
    fn leaves(&self) -> usize {
        self.cv1.leaves() + self.cv2.leaves() + self.cv3.leaves() + self.m.leaves()
    }
}

/// Cross convolution (`CrossConv(c1, c2, k, s, g=1, e=1.0, shortcut)`): a bottleneck whose two convs are
/// 1×k and k×1 (same variable names, `cv1` and `cv2`).
pub fn cross_conv(p: &Path, c1: i64, c2: i64, k: i64, s: i64, shortcut: bool, ctx: Ctx) -> Bottleneck {
    let a = ConvShape { k: [1, k], s: [1, s], p: [0, k / 2], g: 1 };
    let b = ConvShape { k: [k, 1], s: [s, 1], p: [k / 2, 0], g: 1 };
    Bottleneck {
        cv1: Conv::shaped(&(p / "cv1"), c1, c2, a, Some(ctx.act)),
        cv2: Conv::shaped(&(p / "cv2"), c2, c2, b, Some(ctx.act)),
        add: shortcut && c1 == c2,
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
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64, ctx: Ctx) -> Self {
        let c_ = c1 / 2;
        Sppf {
            cv1: Conv::new(&(p / "cv1"), c1, c_, 1, 1, 0, ctx),
            cv2: Conv::new(&(p / "cv2"), c_ * 4, c2, 1, 1, 0, ctx),
            k,
        }
    }
}

impl Module for Sppf {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let x = Module::forward_t(&self.cv1, xs, train);
        let pool = |t: &Tensor| t.max_pool2d([self.k], [1], [self.k / 2], [1], false);
        let y1 = pool(&x);
        let y2 = pool(&y1);
        let y3 = pool(&y2);
        Module::forward_t(&self.cv2, &Tensor::cat(&[x, y1, y2, y3], 1), train)
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        vec![&mut self.cv1.bn, &mut self.cv2.bn]
    }
    fn cost(&self, x: Shape) -> (f64, Shape) {
        let (a, y) = self.cv1.cost(x);
        let (b, z) = self.cv2.cost((4 * y.0, y.1, y.2));
        (a + b, z)
    }
    fn leaves(&self) -> usize {
        self.cv1.leaves() + self.cv2.leaves() + 1
    }
}

/// Spatial pyramid pooling (`SPP`): parallel max-pools of sizes `k`, concatenated with the input.
#[derive(Debug)]
pub struct Spp {
    /// Reduction.
    pub cv1: Conv,
    /// Fusion.
    pub cv2: Conv,
    k: Vec<i64>,
}

impl Spp {
    /// `SPP(c1, c2, k=(5, 9, 13))`.
    pub fn new(p: &Path, c1: i64, c2: i64, k: &[i64], ctx: Ctx) -> Self {
        let c_ = c1 / 2;
        Spp {
            cv1: Conv::new(&(p / "cv1"), c1, c_, 1, 1, 0, ctx),
            cv2: Conv::new(&(p / "cv2"), c_ * (k.len() as i64 + 1), c2, 1, 1, 0, ctx),
            k: k.to_vec(),
        }
    }
}

impl Module for Spp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let x = Module::forward_t(&self.cv1, xs, train);
        let mut parts = vec![x.shallow_clone()];
        parts.extend(self.k.iter().map(|&k| x.max_pool2d([k], [1], [k / 2], [1], false)));
        Module::forward_t(&self.cv2, &Tensor::cat(&parts, 1), train)
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        vec![&mut self.cv1.bn, &mut self.cv2.bn]
    }
    fn cost(&self, x: Shape) -> (f64, Shape) {
        let (a, y) = self.cv1.cost(x);
        let (b, z) = self.cv2.cost(((self.k.len() as i64 + 1) * y.0, y.1, y.2));
        (a + b, z)
    }
    fn leaves(&self) -> usize {
        self.cv1.leaves() + self.cv2.leaves() + self.k.len()
    }
}
