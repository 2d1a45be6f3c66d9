//! A dry shape pass over a parsed model config: every layer's output (channels, height, width) for a given
//! input, computed without building a tensor. A config that libtorch would reject deep inside a forward pass
//! (a kernel of 0, channels that vanish, a Concat of different sizes, more downsampling than the image allows,
//! a detection stride that is not a whole number of pixels) is refused here with the layer named, before any
//! variable is created. The pass runs at the stride probe's size and at the two smallest training sizes.

use super::STRIDE_PROBE_SIZE;
use super::blocks::Plain;
use super::layers::C3Kind;
use super::yaml::{LayerSpec, ModuleSpec};

/// Output shape of a layer: channels, height, width.
type Shape = (i64, i64, i64);

/// Check a config: at the stride probe's size (where the Detect strides must come out whole), then at two
/// and three times the largest stride (the smallest image sizes training accepts).
pub(crate) fn check_config(layers: &[LayerSpec]) -> Result<(), String> {
    let sides = pass(layers, STRIDE_PROBE_SIZE)?;
    let detect = layers.last().map(|l| l.index).unwrap_or(0);
    let mut max_stride = 32;
    for (f, side) in sides {
        if STRIDE_PROBE_SIZE % side != 0 {
            return Err(format!(
                "layer {detect} (models.yolo.Detect): the input from {f} is {side} pixels for a \
                 {STRIDE_PROBE_SIZE}-pixel image, a stride of {:.2} that is not a whole number",
                STRIDE_PROBE_SIZE as f64 / side as f64
            ));
        }
        max_stride = max_stride.max(STRIDE_PROBE_SIZE / side);
    }
    for k in [2, 3] {
        pass(layers, k * max_stride)?;
    }
    Ok(())
}

/// Every layer's shape on a `3 × side²` input; returns each Detect input's (from, height).
fn pass(layers: &[LayerSpec], side: i64) -> Result<Vec<(i64, i64)>, String> {
    let mut out: Vec<Shape> = Vec::with_capacity(layers.len());
    let mut detect_inputs = Vec::new();
    let input = (3, side, side);
    for (i, l) in layers.iter().enumerate() {
        let here = |m: String| format!("layer {i} ({}): {m}", l.module.type_name());
        let src = |f: i64| -> Shape {
            if i == 0 {
                input
            } else if f < 0 {
                out[(i as i64 + f) as usize]
            } else {
                out[f as usize]
            }
        };
        let (c1, h, w) = src(l.from[0]);
        let positive =
            |what: &str, v: i64| if v >= 1 { Ok(()) } else { Err(here(format!("{what} is {v}, must be at least 1"))) };
        let conv_side = |x: i64, k: i64, s: i64, p: i64| if x + 2 * p >= k { (x + 2 * p - k) / s + 1 } else { 0 };
        let conv_checks = |c2: i64, k: i64, s: i64, p: i64| -> Result<(), String> {
            positive("output channels", c2)?;
            positive("kernel size", k)?;
            positive("stride", s)?;
            if p < 0 {
                return Err(here(format!("padding is {p}, must be at least 0")));
            }
            Ok(())
        };
        let hidden = |c2: i64, min: i64| -> Result<(), String> {
            if c2 < min {
                return Err(here(format!("output channels are {c2}; its hidden convolutions need at least {min}")));
            }
            Ok(())
        };
        let odd_pools = |ks: &[i64]| -> Result<(), String> {
            match ks.iter().find(|&&k| k < 1 || k % 2 == 0) {
                Some(k) => Err(here(format!("pool kernel is {k}, must be odd and positive"))),
                None if ks.is_empty() => Err(here("needs at least one pool kernel".into())),
                None => Ok(()),
            }
        };
        let shape = match &l.module {
            ModuleSpec::Conv { c2, k, s, p, .. } => {
                conv_checks(*c2, *k, *s, *p)?;
                (*c2, conv_side(h, *k, *s, *p), conv_side(w, *k, *s, *p))
            }
            ModuleSpec::Focus { c2, k, s, p, .. } => {
                conv_checks(*c2, *k, *s, *p)?;
                let (h2, w2) = ((h + 1) / 2, (w + 1) / 2);
                (*c2, conv_side(h2, *k, *s, *p), conv_side(w2, *k, *s, *p))
            }
            ModuleSpec::DwConv { c2, k, s, .. } => {
                conv_checks(*c2, *k, *s, 0)?;
                (*c2, conv_side(h, *k, *s, k / 2), conv_side(w, *k, *s, k / 2))
            }
            ModuleSpec::GhostConv { c2, k, s, .. } => {
                conv_checks(*c2, *k, *s, 0)?;
                hidden(*c2, 2)?;
                (2 * (c2 / 2), conv_side(h, *k, *s, k / 2), conv_side(w, *k, *s, k / 2))
            }
            ModuleSpec::CrossConv { c2, k, s, .. } => {
                conv_checks(*c2, *k, *s, 0)?;
                (*c2, conv_side(h, *k, *s, k / 2), conv_side(w, *k, *s, k / 2))
            }
            ModuleSpec::C3 { kind, c2, .. } => {
                hidden(*c2, 2)?;
                match kind {
                    C3Kind::C3Tr if (c2 / 2) % 4 != 0 => {
                        return Err(here(format!(
                            "its transformer has {} channels, which 4 attention heads cannot share",
                            c2 / 2
                        )));
                    }
                    C3Kind::C3Ghost => hidden(*c2, 8)?,
                    C3Kind::C3Spp(k) => odd_pools(k)?,
                    _ => {}
                }
                (*c2, h, w)
            }
            ModuleSpec::BottleneckCsp { c2, .. } | ModuleSpec::Bottleneck { c2, .. } => {
                hidden(*c2, 2)?;
                (*c2, h, w)
            }
            ModuleSpec::GhostBottleneck { c2, k, s, .. } => {
                hidden(*c2, 4)?;
                positive("kernel size", *k)?;
                match s {
                    1 if c1 != *c2 => {
                        return Err(here(format!(
                            "with stride 1 its identity shortcut needs equal channels, got {c1} in and {c2} out"
                        )));
                    }
                    1 => (*c2, h, w),
                    2 => (*c2, conv_side(h, *k, 2, k / 2), conv_side(w, *k, 2, k / 2)),
                    other => return Err(here(format!("stride is {other}, must be 1 or 2"))),
                }
            }
            ModuleSpec::Spp { c2, k, .. } => {
                positive("output channels", *c2)?;
                hidden(c1, 2)
                    .map_err(|_| here(format!("input channels are {c1}; its hidden convolution needs at least 2")))?;
                odd_pools(k)?;
                (*c2, h, w)
            }
            ModuleSpec::Sppf { c2, k, .. } => {
                positive("output channels", *c2)?;
                if c1 < 2 {
                    return Err(here(format!("input channels are {c1}; its hidden convolution needs at least 2")));
                }
                odd_pools(&[*k])?;
                (*c2, h, w)
            }
            ModuleSpec::Plain(pl) => {
                match pl {
                    Plain::MaxPool { k, s, p } => {
                        positive("kernel size", *k)?;
                        positive("stride", *s)?;
                        if *p < 0 || 2 * p > *k {
                            return Err(here(format!("padding is {p}, must lie in [0, kernel / 2]")));
                        }
                    }
                    Plain::ZeroPad(pad) => {
                        if pad.iter().any(|&x| x < 0) {
                            return Err(here(format!("paddings {pad:?} must be at least 0")));
                        }
                    }
                    Plain::Upsample(scale) => {
                        if !(scale.is_finite() && *scale > 0.0) {
                            return Err(here(format!("scale factor is {scale}, must be positive")));
                        }
                    }
                    Plain::Contract(g) => {
                        positive("gain", *g)?;
                        if h % g != 0 || w % g != 0 {
                            return Err(here(format!("a {h}x{w} input does not split into {g}x{g} blocks")));
                        }
                    }
                    Plain::Expand(g) => {
                        positive("gain", *g)?;
                        if c1 % (g * g) != 0 {
                            return Err(here(format!("{c1} channels do not split into {g}x{g} blocks")));
                        }
                    }
                }
                pl.shape((c1, h, w))
            }
            ModuleSpec::Concat { dim } => {
                if *dim != 1 {
                    return Err(here(format!("dimension {dim} is not supported (only 1, the channels)")));
                }
                let shapes: Vec<Shape> = l.from.iter().map(|&f| src(f)).collect();
                if shapes.iter().any(|s| (s.1, s.2) != (h, w)) {
                    let sizes: Vec<String> =
                        l.from.iter().zip(&shapes).map(|(f, s)| format!("from {f}: {}x{}", s.1, s.2)).collect();
                    return Err(here(format!("inputs differ in size at a {side}-pixel input ({})", sizes.join(", "))));
                }
                (shapes.iter().map(|s| s.0).sum(), h, w)
            }
            ModuleSpec::Detect { anchors, ch, .. } => {
                if anchors.len() != ch.len() {
                    return Err(here(format!(
                        "{} anchor levels for {} input layers (give one anchor list per input, or `anchors: N`)",
                        anchors.len(),
                        ch.len()
                    )));
                }
                if anchors.iter().any(|a| a.len() != anchors[0].len() || a.is_empty()) {
                    return Err(here("every level needs the same number of anchors, at least 1".into()));
                }
                for &f in &l.from {
                    let s = src(f);
                    if s.1 < 1 || s.2 < 1 {
                        return Err(here(format!("input from {f} has no pixels left")));
                    }
                    detect_inputs.push((f, s.1));
                }
                (l.c2, 1, 1)
            }
        };
        if shape.1 < 1 || shape.2 < 1 {
            return Err(here(format!(
                "the output would be {}x{} pixels for a {side}-pixel input (too much downsampling)",
                shape.1, shape.2
            )));
        }
        out.push(shape);
    }
    Ok(detect_inputs)
}
