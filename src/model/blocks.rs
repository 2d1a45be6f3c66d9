//! The rarer blocks of models/common.py: Focus, BottleneckCSP, GhostConv, GhostBottleneck, the transformer
//! block of C3TR, and the parameter-free layers (nn.MaxPool2d, nn.ZeroPad2d, nn.Upsample, Contract, Expand).
//! Names and shapes are PyTorch's, as in `layers.rs`.

use super::layers::{
    Act, BatchNorm, Conv, ConvShape, Ctx, GROUP_BIAS, GROUP_WEIGHT, Module, Sequential, Shape, chain_cost, conv_init,
};
use tch::nn::{Init, ModuleT, Path};
use tch::{Kind, Tensor};

/// Space to depth, then a conv (`Focus(c1, c2, k, s, p)`): the v5.0 stem.
#[derive(Debug)]
pub struct Focus {
    /// The conv on the 4 × c1 stacked pixels.
    pub conv: Conv,
}

impl Focus {
    /// `Focus(c1, c2, k, s, p)`.
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64, s: i64, pad: i64, ctx: Ctx) -> Self {
        Focus { conv: Conv::new(&(p / "conv"), 4 * c1, c2, k, s, pad, ctx) }
    }
}

impl Module for Focus {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let every2 = |t: &Tensor, dim: i64, start: i64| t.slice(dim, start, None, 2);
        let parts = [(0, 0), (1, 0), (0, 1), (1, 1)].map(|(r, c)| every2(&every2(x, 2, r), 3, c));
        Module::forward_t(&self.conv, &Tensor::cat(&parts, 1), train)
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        vec![&mut self.conv.bn]
    }
    fn cost(&self, (c, h, w): Shape) -> (f64, Shape) {
        self.conv.cost((4 * c, (h + 1) / 2, (w + 1) / 2))
    }
    fn leaves(&self) -> usize {
        self.conv.leaves()
    }
}

/// CSP bottleneck (`BottleneckCSP`, the v3.0 block): `cv4(act(bn(cat(cv3(m(cv1(x))), cv2(x)))))` where cv2
/// and cv3 are plain convolutions and `act` is its own SiLU.
#[derive(Debug)]
pub struct BottleneckCsp {
    /// Entry conv.
    pub cv1: Conv,
    /// Plain 1x1 conv of the shortcut branch (`cv2.weight`).
    pub cv2: Tensor,
    /// Plain 1x1 conv after the bottlenecks (`cv3.weight`).
    pub cv3: Tensor,
    /// Fusion conv.
    pub cv4: Conv,
    /// Normalisation of the concatenation.
    pub bn: BatchNorm,
    /// Bottlenecks.
    pub m: Sequential,
}

impl BottleneckCsp {
    /// `BottleneckCSP(c1, c2, n, shortcut)` with e = 0.5.
    pub fn new(p: &Path, c1: i64, c2: i64, n: usize, shortcut: bool, ctx: Ctx) -> Self {
        let c_ = c2 / 2;
        let plain =
            |name: &str, cin: i64| (p / name).set_group(GROUP_WEIGHT).var("weight", &[c_, cin, 1, 1], conv_init(cin));
        BottleneckCsp {
            cv1: Conv::new(&(p / "cv1"), c1, c_, 1, 1, 0, ctx),
            cv2: plain("cv2", c1),
            cv3: plain("cv3", c_),
            cv4: Conv::new(&(p / "cv4"), 2 * c_, c2, 1, 1, 0, ctx),
            bn: BatchNorm::new(&(p / "bn"), 2 * c_),
            m: Sequential(
                (0..n)
                    .map(|i| {
                        Box::new(super::layers::Bottleneck::new(&(p / "m" / i), c_, c_, shortcut, 1.0, ctx))
                            as Box<dyn Module>
                    })
                    .collect(),
            ),
        }
    }
}

impl Module for BottleneckCsp {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let conv1x1 = |t: &Tensor, w: &Tensor| t.conv2d(w, None::<Tensor>, [1], [0], [1], 1);
        let y1 = conv1x1(&self.m.forward_t(&Module::forward_t(&self.cv1, x, train), train), &self.cv3);
        let y2 = conv1x1(x, &self.cv2);
        let z = self.bn.forward_t(&Tensor::cat(&[y1, y2], 1), train).silu();
        Module::forward_t(&self.cv4, &z, train)
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut v = vec![&mut self.cv1.bn, &mut self.cv4.bn, &mut self.bn];
        v.extend(self.m.batch_norms_mut());
        v
    }
    fn cost(&self, x: Shape) -> (f64, Shape) {
        let (a, y) = chain_cost(&[&self.cv1, &self.m], x);
        let c_ = self.cv2.size()[0];
        let hw = (y.1 * y.2) as f64;
        let plain = hw * (c_ * x.0 + c_ * c_) as f64;
        let bn = 4.0 * hw * (2 * c_) as f64;
        let (b, z) = self.cv4.cost((2 * c_, y.1, y.2));
        (a + plain + bn + b, z)
    }
    fn leaves(&self) -> usize {
        // cv1, cv2 and cv3 (plain Conv2d), cv4, bn, its own SiLU, the bottlenecks
        self.cv1.leaves() + 2 + self.cv4.leaves() + 2 + self.m.leaves()
    }
}

/// Ghost convolution (`GhostConv(c1, c2, k, s, g, act)`): half the channels from a conv, the other half
/// from a cheap 5×5 depthwise conv of those.
#[derive(Debug)]
pub struct GhostConv {
    /// Primary conv.
    pub cv1: Conv,
    /// Depthwise 5×5 conv.
    pub cv2: Conv,
}

impl GhostConv {
    /// `GhostConv(c1, c2, k, s)`; `act` None is `act=False`.
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64, s: i64, act: Option<Act>) -> Self {
        let c_ = c2 / 2;
        GhostConv {
            cv1: Conv::shaped(&(p / "cv1"), c1, c_, ConvShape::square(k, s), act),
            cv2: Conv::shaped(&(p / "cv2"), c_, c_, ConvShape::square(5, 1).groups(c_), act),
        }
    }
}

impl Module for GhostConv {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = Module::forward_t(&self.cv1, x, train);
        let z = Module::forward_t(&self.cv2, &y, train);
        Tensor::cat(&[y, z], 1)
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        vec![&mut self.cv1.bn, &mut self.cv2.bn]
    }
    fn cost(&self, x: Shape) -> (f64, Shape) {
        let (a, y) = chain_cost(&[&self.cv1, &self.cv2], x);
        (a, (2 * y.0, y.1, y.2))
    }
    fn leaves(&self) -> usize {
        self.cv1.leaves() + self.cv2.leaves()
    }
}

/// Depthwise conv (`DWConv(c1, c2, k, s, act)`): groups = gcd(c1, c2).
pub fn dw_conv(p: &Path, c1: i64, c2: i64, k: i64, s: i64, act: Option<Act>) -> Conv {
    Conv::shaped(p, c1, c2, ConvShape::square(k, s).groups(gcd(c1, c2)), act)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

/// Ghost bottleneck (`GhostBottleneck(c1, c2, k, s)`): ghost conv, a depthwise conv when strided, a linear
/// ghost conv, plus a shortcut (identity, or depthwise + 1x1 when strided).
#[derive(Debug)]
pub struct GhostBottleneck {
    /// `conv.0`.
    pub pw: GhostConv,
    /// `conv.1` when s = 2 (an nn.Identity otherwise).
    pub dw: Option<Conv>,
    /// `conv.2`.
    pub linear: GhostConv,
    /// `shortcut.0` and `shortcut.1` when s = 2.
    pub shortcut: Option<(Conv, Conv)>,
}

impl GhostBottleneck {
    /// `GhostBottleneck(c1, c2, k, s)`.
    pub fn new(p: &Path, c1: i64, c2: i64, k: i64, s: i64, ctx: Ctx) -> Self {
        let c_ = c2 / 2;
        let q = p / "conv";
        let strided = s == 2;
        GhostBottleneck {
            pw: GhostConv::new(&(&q / 0), c1, c_, 1, 1, Some(ctx.act)),
            dw: strided.then(|| dw_conv(&(&q / 1), c_, c_, k, s, None)),
            linear: GhostConv::new(&(&q / 2), c_, c2, 1, 1, None),
            shortcut: strided.then(|| {
                let r = p / "shortcut";
                (dw_conv(&(&r / 0), c1, c1, k, s, None), Conv::shaped(&(&r / 1), c1, c2, ConvShape::square(1, 1), None))
            }),
        }
    }
}

impl Module for GhostBottleneck {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.pw.forward_t(x, train);
        if let Some(dw) = &self.dw {
            y = Module::forward_t(dw, &y, train);
        }
        let y = self.linear.forward_t(&y, train);
        let short = match &self.shortcut {
            Some((a, b)) => Module::forward_t(b, &Module::forward_t(a, x, train), train),
            None => x.shallow_clone(),
        };
        y + short
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut v = self.pw.batch_norms_mut();
        if let Some(dw) = &mut self.dw {
            v.push(&mut dw.bn);
        }
        v.extend(self.linear.batch_norms_mut());
        if let Some((a, b)) = &mut self.shortcut {
            v.push(&mut a.bn);
            v.push(&mut b.bn);
        }
        v
    }
    fn cost(&self, x: Shape) -> (f64, Shape) {
        let mut path: Vec<&dyn Module> = vec![&self.pw];
        if let Some(dw) = &self.dw {
            path.push(dw);
        }
        path.push(&self.linear);
        let (a, y) = chain_cost(&path, x);
        let b = match &self.shortcut {
            Some((s0, s1)) => chain_cost(&[s0, s1], x).0,
            None => 0.0,
        };
        (a + b, y)
    }
    fn leaves(&self) -> usize {
        // an nn.Identity stands in for the missing depthwise conv and for the identity shortcut
        let dw = self.dw.as_ref().map(|d| d.leaves()).unwrap_or(1);
        let short = self.shortcut.as_ref().map(|(a, b)| a.leaves() + b.leaves()).unwrap_or(1);
        self.pw.leaves() + dw + self.linear.leaves() + short
    }
}

/// `nn.Linear(c_in, c_out, bias)`: weight `[c_out, c_in]`.
#[derive(Debug)]
pub struct Linear {
    /// Weight (decayed, as YOLOv5's optimizer groups a Linear's weight).
    pub weight: Tensor,
    /// Bias, if any.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// PyTorch's default initialisation.
    pub fn new(p: &Path, c_in: i64, c_out: i64, bias: bool) -> Self {
        Linear {
            weight: p.set_group(GROUP_WEIGHT).var("weight", &[c_out, c_in], conv_init(c_in)),
            bias: bias.then(|| p.set_group(GROUP_BIAS).var("bias", &[c_out], conv_init(c_in))),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }

    /// thop's count: in_features per output element.
    fn macs(&self, tokens: i64) -> f64 {
        let s = self.weight.size();
        (s[1] * s[0] * tokens) as f64
    }
}

/// One transformer layer (`TransformerLayer(c, num_heads)`): q, k, v projections, multi-head attention with
/// a residual, two linear layers with a residual.
#[derive(Debug)]
pub struct TransformerLayer {
    q: Linear,
    k: Linear,
    v: Linear,
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: Linear,
    fc1: Linear,
    fc2: Linear,
    heads: i64,
}

impl TransformerLayer {
    /// `TransformerLayer(c, num_heads)`; attention as `nn.MultiheadAttention(c, num_heads)` (`ma.*`).
    pub fn new(p: &Path, c: i64, heads: i64) -> Self {
        let ma = p / "ma";
        let bound = (6.0 / (c + 3 * c) as f64).sqrt(); // xavier_uniform_ of [3c, c]
        TransformerLayer {
            q: Linear::new(&(p / "q"), c, c, false),
            k: Linear::new(&(p / "k"), c, c, false),
            v: Linear::new(&(p / "v"), c, c, false),
            in_proj_weight: ma.set_group(GROUP_WEIGHT).var(
                "in_proj_weight",
                &[3 * c, c],
                Init::Uniform { lo: -bound, up: bound },
            ),
            // named in_proj_bias, not bias: YOLOv5's smart_optimizer puts it with the decayed weights
            in_proj_bias: ma.set_group(GROUP_WEIGHT).var("in_proj_bias", &[3 * c], Init::Const(0.0)),
            out_proj: {
                let l = Linear::new(&(&ma / "out_proj"), c, c, true);
                tch::no_grad(|| {
                    if let Some(b) = &l.bias {
                        let _ = b.shallow_clone().zero_();
                    }
                });
                l
            },
            fc1: Linear::new(&(p / "fc1"), c, c, false),
            fc2: Linear::new(&(p / "fc2"), c, c, false),
            heads,
        }
    }

    /// `x`: `[L, B, c]` (sequence first, as nn.MultiheadAttention expects).
    fn forward(&self, x: &Tensor) -> Tensor {
        let (q, k, v) = (self.q.forward(x), self.k.forward(x), self.v.forward(x));
        let s = x.size();
        let (l, b, c) = (s[0], s[1], s[2]);
        let hd = c / self.heads;
        let w = self.in_proj_weight.chunk(3, 0);
        let bias = self.in_proj_bias.chunk(3, 0);
        // [L, B, c] → [B·heads, L, hd]
        let split = |t: &Tensor| t.contiguous().view([l, b * self.heads, hd]).transpose(0, 1);
        let qh = split(&q.linear(&w[0], Some(&bias[0])));
        let kh = split(&k.linear(&w[1], Some(&bias[1])));
        let vh = split(&v.linear(&w[2], Some(&bias[2])));
        let att = (qh.matmul(&kh.transpose(1, 2)) / (hd as f64).sqrt()).softmax(-1, Kind::Float);
        let o = att.matmul(&vh).transpose(0, 1).contiguous().view([l, b, c]);
        let x = self.out_proj.forward(&o) + x;
        self.fc2.forward(&self.fc1.forward(&x)) + x
    }
}

/// The transformer of C3TR (`TransformerBlock(c1, c2, num_heads, num_layers)`): an optional conv when the
/// channels change, a learnable position embedding (`linear`), and the layers (`tr.{i}`).
#[derive(Debug)]
pub struct TransformerBlock {
    conv: Option<Conv>,
    linear: Linear,
    tr: Vec<TransformerLayer>,
    c2: i64,
}

impl TransformerBlock {
    /// `TransformerBlock(c1, c2, num_heads, num_layers)`.
    pub fn new(p: &Path, c1: i64, c2: i64, heads: i64, layers: usize, ctx: Ctx) -> Self {
        TransformerBlock {
            conv: (c1 != c2).then(|| Conv::new(&(p / "conv"), c1, c2, 1, 1, 0, ctx)),
            linear: Linear::new(&(p / "linear"), c2, c2, true),
            tr: (0..layers).map(|i| TransformerLayer::new(&(p / "tr" / i), c2, heads)).collect(),
            c2,
        }
    }
}

impl Module for TransformerBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = match &self.conv {
            Some(c) => Module::forward_t(c, x, train),
            None => x.shallow_clone(),
        };
        let s = x.size();
        let (b, h, w) = (s[0], s[2], s[3]);
        let p = x.flatten(2, -1).permute([2, 0, 1]);
        let mut t = &p + self.linear.forward(&p);
        for layer in &self.tr {
            t = layer.forward(&t);
        }
        t.permute([1, 2, 0]).reshape([b, self.c2, h, w])
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        self.conv.iter_mut().map(|c| &mut c.bn).collect()
    }
    fn cost(&self, x: Shape) -> (f64, Shape) {
        let (mut total, y) = match &self.conv {
            Some(c) => c.cost(x),
            None => (0.0, x),
        };
        let tokens = y.1 * y.2;
        total += self.linear.macs(tokens);
        let (e, heads) = (self.c2, self.tr.first().map(|l| l.heads).unwrap_or(1));
        for l in &self.tr {
            total += [&l.q, &l.k, &l.v, &l.fc1, &l.fc2].iter().map(|m| m.macs(tokens)).sum::<f64>();
            // thop's nn.MultiheadAttention rule: the four projections, both attention products, the softmax
            let projections = 4 * tokens * e * e;
            let attention = 2 * tokens * tokens * e;
            let softmax = heads * tokens * (3 * tokens - 1);
            total += (projections + attention + softmax) as f64;
        }
        (total, (self.c2, y.1, y.2))
    }
    fn leaves(&self) -> usize {
        // linear; per layer q, k, v, ma.out_proj, fc1, fc2
        self.conv.as_ref().map(|c| c.leaves()).unwrap_or(0) + 1 + 6 * self.tr.len()
    }
}

/// A layer without parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    /// `nn.MaxPool2d(k, s, p)`.
    MaxPool {
        /// Kernel.
        k: i64,
        /// Stride.
        s: i64,
        /// Padding.
        p: i64,
    },
    /// `nn.ZeroPad2d([left, right, top, bottom])`.
    ZeroPad([i64; 4]),
    /// `nn.Upsample(None, scale, 'nearest')`.
    Upsample(f64),
    /// `Contract(gain)`: space to depth.
    Contract(i64),
    /// `Expand(gain)`: depth to space.
    Expand(i64),
}

impl Plain {
    /// The output shape for an input shape.
    pub fn shape(&self, (c, h, w): Shape) -> Shape {
        match self {
            Plain::MaxPool { k, s, p } => (c, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1),
            Plain::ZeroPad([l, r, t, b]) => (c, h + t + b, w + l + r),
            Plain::Upsample(f) => (c, (h as f64 * f) as i64, (w as f64 * f) as i64),
            Plain::Contract(g) => (c * g * g, h / g, w / g),
            Plain::Expand(g) => (c / (g * g), h * g, w * g),
        }
    }
}

impl Module for Plain {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        let s = x.size();
        let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
        match self {
            Plain::MaxPool { k, s, p } => x.max_pool2d([*k], [*s], [*p], [1], false),
            Plain::ZeroPad(pad) => x.constant_pad_nd(pad.as_slice()),
            Plain::Upsample(f) => {
                x.upsample_nearest2d([(h as f64 * f) as i64, (w as f64 * f) as i64], Some(*f), Some(*f))
            }
            Plain::Contract(g) => x.view([b, c, h / g, *g, w / g, *g]).permute([0, 3, 5, 1, 2, 4]).contiguous().view([
                b,
                c * g * g,
                h / g,
                w / g,
            ]),
            Plain::Expand(g) => x.view([b, *g, *g, c / (g * g), h, w]).permute([0, 3, 4, 1, 5, 2]).contiguous().view([
                b,
                c / (g * g),
                h * g,
                w * g,
            ]),
        }
    }
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        vec![]
    }
    fn cost(&self, x: Shape) -> (f64, Shape) {
        (0.0, self.shape(x))
    }
    fn leaves(&self) -> usize {
        1
    }
}
