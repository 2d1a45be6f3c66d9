//! YOLOv5 models in tch (`models/yolo.py`, `models/common.py` of ultralytics/yolov5@5081342f).
//!
//! The model is a list of layers built from a model yaml; every variable is named as in PyTorch's
//! `state_dict` (`model.0.conv.weight`, `model.24.anchors`), so weights converted from YOLOv5 load one-to-one
//! and freezing by module index means the same thing in both.

mod blocks;
mod check;
mod detect;
mod layers;
pub mod pt;
mod summary;
mod weights;
mod yaml;

pub use blocks::Plain;
pub use detect::Detect;
pub use layers::{
    Act, BN_EPS, BN_MOMENTUM, BatchNorm, Bottleneck, C3, C3Kind, Conv, Ctx, GROUP_BIAS, GROUP_NORM, GROUP_WEIGHT,
    Module, Sequential, Shape, Sppf,
};
pub use pt::{Checkpoint, convert_checkpoint};
pub use summary::{LayerRow, ModelSummary, thousands};
pub use weights::{LoadReport, is_pt};
pub use yaml::{LayerSpec, MODEL_CONFIGS, ModelConfig, ModuleSpec, make_divisible};

use crate::error::Result;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Side of the zero image YOLOv5 runs through a new model to measure the strides.
pub const STRIDE_PROBE_SIZE: i64 = 256;

/// One block of the model.
#[derive(Debug)]
pub enum Block {
    /// A block with one input (Conv, C3, SPPF, ..., a repeated block as an nn.Sequential).
    Module(Box<dyn Module>),
    /// Concatenation along a dimension.
    Concat(i64),
    /// Detection head.
    Detect(Detect),
}

/// A layer: its index, its inputs and its block.
#[derive(Debug)]
pub struct Layer {
    /// Module index (`model.{index}`).
    pub index: usize,
    /// Inputs (-1 = previous layer).
    pub from: Vec<i64>,
    /// The block.
    pub block: Block,
}

impl Layer {
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        match &mut self.block {
            Block::Module(m) => m.batch_norms_mut(),
            _ => vec![],
        }
    }
}

/// The block a layer spec describes, its variables under `p` (`model.{i}`; a block repeated n times is an
/// nn.Sequential: `model.{i}.{j}`).
fn build(p: &tch::nn::Path, spec: &LayerSpec, ctx: Ctx) -> Block {
    let one = |p: &tch::nn::Path| -> Box<dyn Module> {
        use ModuleSpec as M;
        match &spec.module {
            M::Conv { c1, c2, k, s, p: pad } => Box::new(Conv::new(p, *c1, *c2, *k, *s, *pad, ctx)),
            M::DwConv { c1, c2, k, s } => Box::new(blocks::dw_conv(p, *c1, *c2, *k, *s, Some(ctx.act))),
            M::GhostConv { c1, c2, k, s } => Box::new(blocks::GhostConv::new(p, *c1, *c2, *k, *s, Some(ctx.act))),
            M::Focus { c1, c2, k, s, p: pad } => Box::new(blocks::Focus::new(p, *c1, *c2, *k, *s, *pad, ctx)),
            M::CrossConv { c1, c2, k, s, shortcut } => {
                Box::new(layers::cross_conv(p, *c1, *c2, *k, *s, *shortcut, ctx))
            }
            M::C3 { kind, c1, c2, n, shortcut } => Box::new(C3::new(p, kind, *c1, *c2, *n, *shortcut, ctx)),
            M::BottleneckCsp { c1, c2, n, shortcut } => {
                Box::new(blocks::BottleneckCsp::new(p, *c1, *c2, *n, *shortcut, ctx))
            }
            M::Bottleneck { c1, c2, shortcut } => Box::new(Bottleneck::new(p, *c1, *c2, *shortcut, 0.5, ctx)),
            M::GhostBottleneck { c1, c2, k, s } => Box::new(blocks::GhostBottleneck::new(p, *c1, *c2, *k, *s, ctx)),
            M::Spp { c1, c2, k } => Box::new(layers::Spp::new(p, *c1, *c2, k, ctx)),
            M::Sppf { c1, c2, k } => Box::new(Sppf::new(p, *c1, *c2, *k, ctx)),
            M::Plain(x) => Box::new(x.clone()),
            M::Concat { .. } | M::Detect { .. } => unreachable!("built below"),
        }
    };
    match &spec.module {
        ModuleSpec::Concat { dim } => Block::Concat(*dim),
        ModuleSpec::Detect { nc, anchors, ch } => Block::Detect(Detect::new(p, *nc, anchors, ch)),
        _ if spec.repeats > 1 => {
            Block::Module(Box::new(Sequential((0..spec.repeats).map(|j| one(&(p / j))).collect())))
        }
        _ => Block::Module(one(p)),
    }
}

/// A YOLOv5 detection model: variables in a [`VarStore`], layers in order.
#[derive(Debug)]
pub struct Yolo {
    /// The variables, named as PyTorch's state_dict.
    pub vs: VarStore,
    /// The config it was built from.
    pub config: ModelConfig,
    /// The layers.
    pub layers: Vec<Layer>,
    /// Whether each layer's output is needed later.
    save: Vec<bool>,
    /// Weights laid out channels-last ([`Yolo::use_channels_last`]); inputs are then laid out so too.
    channels_last: bool,
}

/// The same values laid out channels-last (NHWC in memory, still indexed NCHW) when `t` is 4-D: libtorch's
/// CPU convolutions run fastest in this layout (yolov5n, batch 16, 320 px on two cores: a training step 13%
/// shorter, `cargo run --release --example bench -- step`). Already channels-last: no copy.
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() != 4 {
        return t.shallow_clone();
    }
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

impl Yolo {
    /// Lay every convolution weight out channels-last ([`channels_last`]): names, shapes and values are
    /// unchanged, so are checkpoints; [`Yolo::forward_t`] then lays its input out the same way, which keeps
    /// every activation channels-last.
    pub fn use_channels_last(&mut self) {
        self.channels_last = true;
        tch::no_grad(|| {
            for (_, mut v) in self.vs.variables() {
                if v.dim() == 4 {
                    let laid = channels_last(&v);
                    v.set_data(&laid);
                }
            }
        });
    }

    /// Build a model from a config name or yaml path with `nc` classes (None keeps the yaml's) on a device,
    /// as `Model(cfg, nc=nc)` does: layers, stride probe, anchor order check, anchors to grid units, Detect
    /// bias priors.
    pub fn new(cfg: &str, nc: Option<i64>, device: Device) -> Result<Self> {
        Self::from_config(ModelConfig::load(cfg, nc, None)?, device)
    }

    /// Build from a parsed config.
    pub fn from_config(config: ModelConfig, device: Device) -> Result<Self> {
        let vs = VarStore::new(device);
        let root = vs.root() / "model";
        let mut layers = Vec::with_capacity(config.layers.len());
        let ctx = Ctx { act: config.act };
        for spec in &config.layers {
            layers.push(Layer {
                index: spec.index,
                from: spec.from.clone(),
                block: build(&(&root / spec.index), spec, ctx),
            });
        }
        let mut save = vec![false; layers.len()];
        for l in &layers {
            for &f in &l.from {
                if f != -1 {
                    save[if f < 0 { (l.index as i64 + f) as usize } else { f as usize }] = true;
                }
            }
        }
        let mut model = Yolo { vs, config, layers, save, channels_last: false };
        model.probe_strides();
        Ok(model)
    }

    /// Measure strides with a train-mode forward of a zero image while BatchNorm still has PyTorch's default
    /// momentum (as YOLOv5's constructor does; this is why fresh models have running_var 0.9), then fix the
    /// anchor order, convert anchors to grid units and set the bias priors.
    fn probe_strides(&mut self) {
        self.set_bn_momentum(layers::BN_MOMENTUM_DEFAULT);
        let dev = self.vs.device();
        let raw = tch::no_grad(|| {
            self.forward_t(&Tensor::zeros([1, 3, STRIDE_PROBE_SIZE, STRIDE_PROBE_SIZE], (Kind::Float, dev)), true)
        });
        self.set_bn_momentum(BN_MOMENTUM);
        let stride: Vec<f64> = raw.iter().map(|r| STRIDE_PROBE_SIZE as f64 / r.size()[2] as f64).collect();
        let det = self.head_mut();
        det.stride = stride.clone();
        tch::no_grad(|| {
            // check_anchor_order: anchor areas must grow with the stride
            let area: Vec<f64> =
                Vec::try_from(det.anchors.prod_dim_int(-1, false, Kind::Float).mean_dim(-1, false, Kind::Float))
                    .unwrap_or_default();
            let (da, ds) = (area[area.len() - 1] - area[0], stride[stride.len() - 1] - stride[0]);
            if da != 0.0 && da.signum() != ds.signum() {
                let flipped = det.anchors.flip([0]);
                det.anchors.copy_(&flipped);
            }
            let s = Tensor::from_slice(&stride.iter().map(|&x| x as f32).collect::<Vec<_>>())
                .to_device(dev)
                .view([-1, 1, 1]);
            let grid = &det.anchors / s;
            det.anchors.copy_(&grid);
        });
        det.initialize_biases();
    }

    /// Keep the BatchNorms of these layers in eval mode (running statistics used and fixed) and every other
    /// BatchNorm in the mode the forward pass asks for (`Trainer::freeze_bn`).
    pub fn set_bn_eval(&mut self, layers: &[usize]) {
        for l in &mut self.layers {
            let on = layers.contains(&l.index);
            for bn in l.batch_norms_mut() {
                bn.eval_always = on;
            }
        }
    }

    fn set_bn_momentum(&mut self, m: f64) {
        for l in &mut self.layers {
            for bn in l.batch_norms_mut() {
                bn.momentum = m;
            }
        }
    }

    /// The detection head.
    pub fn head(&self) -> &Detect {
        match &self.layers.last().expect("a model has layers").block {
            Block::Detect(d) => d,
            _ => unreachable!("ModelConfig checks that the last layer is Detect"),
        }
    }

    fn head_mut(&mut self) -> &mut Detect {
        match &mut self.layers.last_mut().expect("a model has layers").block {
            Block::Detect(d) => d,
            _ => unreachable!("ModelConfig checks that the last layer is Detect"),
        }
    }

    /// Classes.
    pub fn nc(&self) -> i64 {
        self.head().nc
    }

    /// Strides of the detection levels (8, 16, 32).
    pub fn stride(&self) -> &[f64] {
        &self.head().stride
    }

    /// Largest stride (image sizes must be multiples of it, at least 32).
    pub fn max_stride(&self) -> i64 {
        self.stride().iter().cloned().fold(32.0, f64::max) as i64
    }

    /// Device of the variables.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Raw outputs per level `[B, na, ny, nx, no]`. `train` selects batch statistics in BatchNorm (and
    /// updates the running statistics).
    ///
    /// # Shapes
    /// `xs`: `[B, 3, H, W]` float in 0..1, H and W multiples of the max stride.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Vec<Tensor> {
        let mut outs: Vec<Option<Tensor>> = (0..self.layers.len()).map(|_| None).collect();
        let mut x = if self.channels_last { channels_last(xs) } else { xs.shallow_clone() };
        for l in &self.layers {
            let input = |f: i64| -> Tensor {
                if f == -1 {
                    x.shallow_clone()
                } else {
                    let j = if f < 0 { (l.index as i64 + f) as usize } else { f as usize };
                    outs[j].as_ref().expect("saved output").shallow_clone()
                }
            };
            x = match &l.block {
                Block::Module(m) => m.forward_t(&input(l.from[0]), train),
                Block::Concat(d) => Tensor::cat(&l.from.iter().map(|&f| input(f)).collect::<Vec<_>>(), *d),
                Block::Detect(d) => return d.forward(&l.from.iter().map(|&f| input(f)).collect::<Vec<_>>()),
            };
            if self.save[l.index] {
                outs[l.index] = Some(x.shallow_clone());
            }
        }
        unreachable!("the last layer is Detect")
    }

    /// Eval-mode inference without gradients: decoded `[B, N, 5 + nc]` rows `(x, y, w, h, obj, cls...)` in
    /// input pixels, and the raw outputs.
    pub fn predict(&self, xs: &Tensor) -> (Tensor, Vec<Tensor>) {
        tch::no_grad(|| {
            let raw = self.forward_t(xs, false);
            (self.head().decode(&raw), raw)
        })
    }

    /// Number of parameters (buffers such as running statistics and anchors excluded), frozen or not.
    pub fn parameters(&self) -> i64 {
        self.vs.variables().iter().filter(|(k, _)| !is_buffer(k)).map(|(_, v)| v.numel() as i64).sum()
    }
}

/// Whether a state_dict name is a buffer (statistics, counters, anchors) rather than a parameter.
pub fn is_buffer(name: &str) -> bool {
    ["running_mean", "running_var", "num_batches_tracked", "anchors"].iter().any(|b| name.ends_with(b))
}
