//! The detection head (`Detect` in models/yolo.py): one 1x1 conv per level, anchors in grid units, decoding.

use super::layers::{GROUP_BIAS, GROUP_WEIGHT, conv_init};
use tch::nn::Path;
use tch::{Kind, Tensor};

/// Objects per 640x640 image assumed by the objectness bias prior (`_initialize_biases`: 8 objects).
pub const OBJ_PRIOR_PER_IMAGE: f64 = 8.0;
/// Image size of that prior.
pub const OBJ_PRIOR_IMAGE_SIZE: f64 = 640.0;
/// Class probability prior (`_initialize_biases`: 0.6 / (nc - 0.99999)).
pub const CLS_PRIOR: f64 = 0.6;

/// The Detect head.
#[derive(Debug)]
pub struct Detect {
    /// Per level: 1x1 conv weight `[na*no, ch, 1, 1]` and bias `[na*no]` (`model.24.m.{l}.weight/bias`).
    pub m: Vec<(Tensor, Tensor)>,
    /// Anchors `[nl, na, 2]` in grid units (`model.24.anchors`, a buffer).
    pub anchors: Tensor,
    /// Classes.
    pub nc: i64,
    /// Anchors per level.
    pub na: i64,
    /// Outputs per anchor (`nc + 5`).
    pub no: i64,
    /// Stride of each level in pixels (set by the model's probe).
    pub stride: Vec<f64>,
}

impl Detect {
    /// Create the head under `p` for input channels `ch` and pixel anchors (stored as given until the model
    /// divides them by the strides).
    pub fn new(p: &Path, nc: i64, anchors_px: &[Vec<(f64, f64)>], ch: &[i64]) -> Self {
        let na = anchors_px[0].len() as i64;
        let no = nc + 5;
        let m = ch
            .iter()
            .enumerate()
            .map(|(l, &c)| {
                let q = p / "m" / l;
                let w = q.set_group(GROUP_WEIGHT).var("weight", &[na * no, c, 1, 1], conv_init(c));
                let b = q.set_group(GROUP_BIAS).var("bias", &[na * no], conv_init(c));
                (w, b)
            })
            .collect();
        let flat: Vec<f32> = anchors_px.iter().flatten().flat_map(|&(w, h)| [w as f32, h as f32]).collect();
        let anchors = Tensor::from_slice(&flat).view([anchors_px.len() as i64, na, 2]).to_device(p.device());
        let anchors = p.add("anchors", anchors, false);
        Detect { m, anchors, nc, na, no, stride: vec![] }
    }

    /// Raw outputs per level, `[B, na, ny, nx, no]` (training layout).
    pub fn forward(&self, xs: &[Tensor]) -> Vec<Tensor> {
        xs.iter()
            .zip(&self.m)
            .map(|(x, (w, b))| {
                let y = x.conv2d(w, Some(b), [1], [0], [1], 1);
                let s = y.size();
                y.view([s[0], self.na, self.no, s[2], s[3]]).permute([0, 1, 3, 4, 2]).contiguous()
            })
            .collect()
    }

    /// Decode raw outputs into `[B, sum(na*ny*nx), no]` rows `(x, y, w, h, obj, cls...)` in input pixels:
    /// `xy = (2σ(t) - 0.5 + grid) * stride`, `wh = (2σ(t))² * anchor * stride`, probabilities `σ(t)`.
    ///
    /// # Shapes
    /// `raw[l]`: `[B, na, ny, nx, no]` → `[B, N, no]`.
    pub fn decode(&self, raw: &[Tensor]) -> Tensor {
        let outs: Vec<Tensor> = raw
            .iter()
            .enumerate()
            .map(|(l, r)| {
                let s = r.size();
                let (bs, ny, nx) = (s[0], s[2], s[3]);
                let opts = (Kind::Float, r.device());
                let yv = Tensor::arange(ny, opts).view([ny, 1]).expand([ny, nx], false);
                let xv = Tensor::arange(nx, opts).view([1, nx]).expand([ny, nx], false);
                let grid = Tensor::stack(&[xv, yv], 2).view([1, 1, ny, nx, 2]) - 0.5;
                let stride = self.stride[l];
                let anchor_grid = (self.anchors.get(l as i64) * stride).view([1, self.na, 1, 1, 2]);
                let sig = r.to_kind(Kind::Float).sigmoid();
                let xy = (sig.narrow(4, 0, 2) * 2.0 + grid) * stride;
                let wh = (sig.narrow(4, 2, 2) * 2.0).pow_tensor_scalar(2) * anchor_grid;
                let conf = sig.narrow(4, 4, self.no - 4);
                Tensor::cat(&[xy, wh, conf], 4).view([bs, -1, self.no])
            })
            .collect();
        Tensor::cat(&outs, 1)
    }

    /// Add YOLOv5's priors to the conv biases: objectness for ~8 objects per 640 image, classes 0.6/nc.
    pub fn initialize_biases(&mut self) {
        tch::no_grad(|| {
            for ((_, b), &s) in self.m.iter().zip(&self.stride) {
                let v = b.view([self.na, self.no]);
                let obj = (OBJ_PRIOR_PER_IMAGE / (OBJ_PRIOR_IMAGE_SIZE / s).powi(2)).ln();
                let cls = (CLS_PRIOR / (self.nc as f64 - 0.99999)).ln();
                let _ = v.narrow(1, 4, 1).g_add_scalar_(obj);
                let _ = v.narrow(1, 5, self.nc).g_add_scalar_(cls);
            }
        });
    }
}
