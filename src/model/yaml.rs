//! YOLOv5 model yamls (`models/yolov5*.yaml`) and the rules of `parse_model` (models/yolo.py) that turn them
//! into layer specifications: depth and width multiples, channel bookkeeping, argument insertion.

use super::blocks::Plain;
use super::layers::{Act, C3Kind};
use crate::error::{Error, IoContext, Result};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// Built-in model configs: (name, yaml text).
pub const MODEL_CONFIGS: [(&str, &str); 5] = [
    ("yolov5n", include_str!("../../models/yolov5n.yaml")),
    ("yolov5s", include_str!("../../models/yolov5s.yaml")),
    ("yolov5m", include_str!("../../models/yolov5m.yaml")),
    ("yolov5l", include_str!("../../models/yolov5l.yaml")),
    ("yolov5x", include_str!("../../models/yolov5x.yaml")),
];

/// The module names a model yaml may use.
pub const SUPPORTED_MODULES: [&str; 22] = [
    "Conv",
    "DWConv",
    "GhostConv",
    "Focus",
    "CrossConv",
    "C3",
    "C3x",
    "C3TR",
    "C3SPP",
    "C3Ghost",
    "BottleneckCSP",
    "Bottleneck",
    "GhostBottleneck",
    "SPP",
    "SPPF",
    "nn.MaxPool2d",
    "nn.ZeroPad2d",
    "nn.Upsample",
    "Contract",
    "Expand",
    "Concat",
    "Detect",
];

/// Channels are rounded up to a multiple of this (`make_divisible(c, 8)`; yaml key `channel_multiple`).
pub const CHANNEL_DIVISOR: i64 = 8;

/// `ceil(x / divisor) * divisor` (`make_divisible` in utils/general.py).
pub fn make_divisible(x: f64, divisor: i64) -> i64 {
    (x / divisor as f64).ceil() as i64 * divisor
}

/// One layer after `parse_model`: where its inputs come from and what it is, with channels resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// Module index (the `i` of `model.{i}`).
    pub index: usize,
    /// Input layers: -1 is the previous layer, other values are absolute indices.
    pub from: Vec<i64>,
    /// Repeats after the depth multiple.
    pub repeats: usize,
    /// The module.
    pub module: ModuleSpec,
    /// Output channels.
    pub c2: i64,
}

/// A module with its resolved arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleSpec {
    /// Conv2d (no bias) + BatchNorm + the model's activation.
    Conv {
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Kernel size.
        k: i64,
        /// Stride.
        s: i64,
        /// Padding (`k / 2` when not given).
        p: i64,
    },
    /// Depthwise conv: groups = gcd(c1, c2).
    DwConv {
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Kernel size.
        k: i64,
        /// Stride.
        s: i64,
    },
    /// Ghost conv: half the channels from a conv, half from a depthwise 5×5 of them.
    GhostConv {
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Kernel size.
        k: i64,
        /// Stride.
        s: i64,
    },
    /// Space to depth, then a conv (the v5.0 stem).
    Focus {
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Kernel size.
        k: i64,
        /// Stride.
        s: i64,
        /// Padding.
        p: i64,
    },
    /// A 1×k and a k×1 conv.
    CrossConv {
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Kernel size.
        k: i64,
        /// Stride.
        s: i64,
        /// Residual connection (only used when c1 == c2).
        shortcut: bool,
    },
    /// CSP bottleneck with 3 convolutions around `n` inner blocks (C3, C3x, C3TR, C3SPP, C3Ghost).
    C3 {
        /// Which inner blocks.
        kind: C3Kind,
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Inner blocks (transformer layers for C3TR).
        n: usize,
        /// Residual connections inside the bottlenecks.
        shortcut: bool,
    },
    /// The v3.0 CSP bottleneck (`BottleneckCSP`).
    BottleneckCsp {
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Bottlenecks.
        n: usize,
        /// Residual connections inside the bottlenecks.
        shortcut: bool,
    },
    /// A standalone bottleneck.
    Bottleneck {
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Residual connection (only used when c1 == c2).
        shortcut: bool,
    },
    /// Ghost bottleneck.
    GhostBottleneck {
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Depthwise kernel.
        k: i64,
        /// Stride (1 or 2).
        s: i64,
    },
    /// Spatial pyramid pooling: parallel max-pools.
    Spp {
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Pool kernels.
        k: Vec<i64>,
    },
    /// Spatial pyramid pooling, fast: three chained max-pools.
    Sppf {
        /// Input channels.
        c1: i64,
        /// Output channels.
        c2: i64,
        /// Pool kernel.
        k: i64,
    },
    /// A layer without parameters (max-pool, zero padding, upsampling, Contract, Expand).
    Plain(Plain),
    /// Concatenation along a dimension.
    Concat {
        /// Dimension (1 = channels).
        dim: i64,
    },
    /// The detection head.
    Detect {
        /// Classes.
        nc: i64,
        /// Anchors in pixels per level: `[level][anchor] = (w, h)`.
        anchors: Vec<Vec<(f64, f64)>>,
        /// Input channels per level.
        ch: Vec<i64>,
    },
}

impl ModuleSpec {
    /// YOLOv5's class name of the module (for summaries).
    pub fn type_name(&self) -> String {
        let common = |n: &str| format!("models.common.{n}");
        match self {
            ModuleSpec::Conv { .. } => common("Conv"),
            ModuleSpec::DwConv { .. } => common("DWConv"),
            ModuleSpec::GhostConv { .. } => common("GhostConv"),
            ModuleSpec::Focus { .. } => common("Focus"),
            ModuleSpec::CrossConv { .. } => common("CrossConv"),
            ModuleSpec::C3 { kind, .. } => common(kind.name()),
            ModuleSpec::BottleneckCsp { .. } => common("BottleneckCSP"),
            ModuleSpec::Bottleneck { .. } => common("Bottleneck"),
            ModuleSpec::GhostBottleneck { .. } => common("GhostBottleneck"),
            ModuleSpec::Spp { .. } => common("SPP"),
            ModuleSpec::Sppf { .. } => common("SPPF"),
            ModuleSpec::Plain(Plain::MaxPool { .. }) => "torch.nn.modules.pooling.MaxPool2d".into(),
            ModuleSpec::Plain(Plain::ZeroPad(_)) => "torch.nn.modules.padding.ZeroPad2d".into(),
            ModuleSpec::Plain(Plain::Upsample(_)) => "torch.nn.modules.upsampling.Upsample".into(),
            ModuleSpec::Plain(Plain::Contract(_)) => common("Contract"),
            ModuleSpec::Plain(Plain::Expand(_)) => common("Expand"),
            ModuleSpec::Concat { .. } => common("Concat"),
            ModuleSpec::Detect { .. } => "models.yolo.Detect".into(),
        }
    }

    /// Output channels of a module with parameters (None for the others).
    fn c2(&self) -> Option<i64> {
        use ModuleSpec::*;
        match self {
            Conv { c2, .. }
            | DwConv { c2, .. }
            | GhostConv { c2, .. }
            | Focus { c2, .. }
            | CrossConv { c2, .. }
            | C3 { c2, .. }
            | BottleneckCsp { c2, .. }
            | Bottleneck { c2, .. }
            | GhostBottleneck { c2, .. }
            | Spp { c2, .. }
            | Sppf { c2, .. } => Some(*c2),
            _ => None,
        }
    }
}

/// A parsed model yaml.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Config name (`yolov5n`) or file stem.
    pub name: String,
    /// Where it came from.
    pub source: PathBuf,
    /// Classes.
    pub nc: i64,
    /// Depth multiple.
    pub depth_multiple: f64,
    /// Width multiple.
    pub width_multiple: f64,
    /// Layers in order.
    pub layers: Vec<LayerSpec>,
    /// Whether the anchors are placeholders (`anchors: N`) that only AutoAnchor turns into real ones.
    pub placeholder_anchors: bool,
    /// The default activation of every Conv (the yaml's `activation:`, SiLU when absent).
    pub act: Act,
}

impl ModelConfig {
    /// A built-in config by name (`"yolov5n"`, `"yolov5s.yaml"`) or a yaml file by path; `nc` overrides the
    /// yaml's class count; `anchors` (hyp `anchors`) replaces the yaml anchors by that many placeholders per level.
    pub fn load(name_or_path: &str, nc: Option<i64>, anchors: Option<usize>) -> Result<Self> {
        Self::load_scaled(name_or_path, nc, anchors, (None, None))
    }

    /// [`ModelConfig::load`] with the yaml's depth and width multiples replaced where given.
    pub fn load_scaled(
        name_or_path: &str,
        nc: Option<i64>,
        anchors: Option<usize>,
        multiples: (Option<f64>, Option<f64>),
    ) -> Result<Self> {
        let p = Path::new(name_or_path);
        let (text, source, name) = if p.is_file() {
            let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            (std::fs::read_to_string(p).at(p)?, p.to_path_buf(), name)
        } else {
            let stem = name_or_path.trim_end_matches(".yaml");
            let looks_like_a_path = name_or_path.contains(std::path::MAIN_SEPARATOR) || stem != name_or_path;
            match MODEL_CONFIGS.iter().find(|(n, _)| *n == stem) {
                Some((n, t)) if !name_or_path.contains(std::path::MAIN_SEPARATOR) => {
                    (t.to_string(), PathBuf::from(format!("models/{n}.yaml")), n.to_string())
                }
                // a yaml path that does not exist is a missing file, not an unknown name
                _ if looks_like_a_path => {
                    let e = std::io::Error::new(std::io::ErrorKind::NotFound, "no such model yaml");
                    return Err(Error::io(p, e));
                }
                _ => {
                    return Err(Error::UnknownName {
                        kind: "model config",
                        name: name_or_path.into(),
                        available: MODEL_CONFIGS.map(|(n, _)| n).join(", ") + ", or a yaml path",
                    });
                }
            }
        };
        Self::parse_scaled(&text, &source, &name, nc, anchors, multiples)
    }

    /// Parse yaml text (`parse_model`).
    pub fn parse(text: &str, source: &Path, name: &str, nc: Option<i64>, anchors: Option<usize>) -> Result<Self> {
        Self::parse_scaled(text, source, name, nc, anchors, (None, None))
    }

    /// [`ModelConfig::parse`] with the yaml's depth and width multiples replaced where given.
    pub fn parse_scaled(
        text: &str,
        source: &Path,
        name: &str,
        nc: Option<i64>,
        anchors: Option<usize>,
        multiples: (Option<f64>, Option<f64>),
    ) -> Result<Self> {
        let bad = |message: String| Error::DataConfig { path: source.into(), message };
        let doc: Value = serde_yaml::from_str(text).map_err(|e| Error::yaml(source, &e))?;
        let num = |k: &str| doc.get(k).and_then(Value::as_f64).ok_or_else(|| bad(format!("`{k}` must be a number")));
        let yaml_nc = num("nc")? as i64;
        let nc = nc.unwrap_or(yaml_nc);
        if nc < 1 {
            return Err(bad(format!("nc must be at least 1, got {nc}")));
        }
        let gd = match multiples.0 {
            Some(v) => v,
            None => num("depth_multiple")?,
        };
        let gw = match multiples.1 {
            Some(v) => v,
            None => num("width_multiple")?,
        };
        for (k, v) in [("depth_multiple", gd), ("width_multiple", gw)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(format!("`{k}` is {v}, must be a positive number")));
            }
        }
        let divisor = doc.get("channel_multiple").and_then(Value::as_i64).unwrap_or(CHANNEL_DIVISOR);
        let act = match doc.get("activation") {
            None | Some(Value::Null) => Act::Silu,
            Some(v) => v.as_str().and_then(Act::parse).ok_or_else(|| {
                bad(format!(
                    "activation {v:?} is not supported (nn.SiLU(), nn.LeakyReLU(slope), nn.ReLU(), nn.Hardswish(), \
                     nn.Sigmoid(), nn.Identity())"
                ))
            })?,
        };
        let yaml_anchors = parse_anchors(doc.get("anchors"), anchors).map_err(bad)?;
        let na = yaml_anchors.per_level() as i64;
        let no = na * (nc + 5);

        let rows: Vec<&Value> = ["backbone", "head"]
            .iter()
            .map(|k| {
                doc.get(k).and_then(Value::as_sequence).ok_or_else(|| bad(format!("`{k}` must be a list of layers")))
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
        let mut ch: Vec<i64> = Vec::new();
        let mut layers = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let here = |m: String| bad(format!("layer {i}: {m}"));
            let row = row
                .as_sequence()
                .filter(|r| r.len() == 4)
                .ok_or_else(|| here("expected [from, number, module, args]".into()))?;
            let from: Vec<i64> = match &row[0] {
                Value::Number(n) => vec![n.as_i64().ok_or_else(|| here("`from` must be an integer".into()))?],
                Value::Sequence(v) => v
                    .iter()
                    .map(|x| x.as_i64().ok_or_else(|| here("`from` must hold integers".into())))
                    .collect::<Result<_>>()?,
                other => return Err(here(format!("`from` must be an integer or a list, got {other:?}"))),
            };
            for &f in &from {
                let ok = if f < 0 { (-f as usize) <= i.max(1) } else { (f as usize) < i };
                if !ok {
                    return Err(here(format!("`from` {f} does not name an earlier layer")));
                }
            }
            let input = |f: i64| -> i64 {
                if i == 0 {
                    3
                } else if f < 0 {
                    ch[(ch.len() as i64 + f) as usize]
                } else {
                    ch[f as usize]
                }
            };
            let n = row[1].as_i64().ok_or_else(|| here("`number` must be an integer".into()))?;
            if n < 1 {
                return Err(here(format!("`number` is {n}, must be at least 1")));
            }
            // Python's round() rounds halves to even.
            let n = if n > 1 { ((n as f64 * gd).round_ties_even() as i64).max(1) } else { n } as usize;
            let module = row[2].as_str().ok_or_else(|| here("module must be a name".into()))?;
            let args = row[3].as_sequence().cloned().unwrap_or_default();
            let arg_i = |k: usize, default: i64| -> Result<i64> {
                match args.get(k) {
                    None | Some(Value::Null) => Ok(default),
                    Some(Value::String(s)) if s == "None" => Ok(default),
                    Some(v) => v
                        .as_i64()
                        .ok_or_else(|| here(format!("argument {k} of {module} must be an integer, got {v:?}"))),
                }
            };
            let arg_b = |k: usize, default: bool| args.get(k).and_then(Value::as_bool).unwrap_or(default);
            let c1 = input(from[0]);
            let scaled = |c: i64| if c != no { make_divisible(c as f64 * gw, divisor) } else { c };
            let arg_f = |k: usize, default: f64| -> Result<f64> {
                match args.get(k) {
                    None | Some(Value::Null) => Ok(default),
                    Some(Value::String(s)) if s == "None" => Ok(default),
                    Some(v) => {
                        v.as_f64().ok_or_else(|| here(format!("argument {k} of {module} must be a number, got {v:?}")))
                    }
                }
            };
            let ints = |k: usize, default: &[i64]| -> Result<Vec<i64>> {
                match args.get(k) {
                    None | Some(Value::Null) => Ok(default.to_vec()),
                    Some(Value::Sequence(v)) => v
                        .iter()
                        .map(|x| x.as_i64().ok_or_else(|| here(format!("argument {k} of {module} must hold integers"))))
                        .collect(),
                    Some(v) => Err(here(format!("argument {k} of {module} must be a list of integers, got {v:?}"))),
                }
            };
            let c2_arg = || -> Result<i64> { Ok(scaled(arg_i(0, 0)?)) };
            // the modules whose repeats are built inside them (parse_model inserts n as their third argument)
            let csp = |kind: C3Kind| -> Result<ModuleSpec> {
                Ok(ModuleSpec::C3 { kind, c1, c2: c2_arg()?, n, shortcut: arg_b(1, true) })
            };
            let spec = match module {
                "Conv" => {
                    let (c2, k) = (c2_arg()?, arg_i(1, 1)?);
                    ModuleSpec::Conv { c1, c2, k, s: arg_i(2, 1)?, p: arg_i(3, k / 2)? }
                }
                "DWConv" => ModuleSpec::DwConv { c1, c2: c2_arg()?, k: arg_i(1, 1)?, s: arg_i(2, 1)? },
                "GhostConv" => ModuleSpec::GhostConv { c1, c2: c2_arg()?, k: arg_i(1, 1)?, s: arg_i(2, 1)? },
                "Focus" => {
                    let (c2, k) = (c2_arg()?, arg_i(1, 1)?);
                    ModuleSpec::Focus { c1, c2, k, s: arg_i(2, 1)?, p: arg_i(3, k / 2)? }
                }
                "CrossConv" => ModuleSpec::CrossConv {
                    c1,
                    c2: c2_arg()?,
                    k: arg_i(1, 3)?,
                    s: arg_i(2, 1)?,
                    shortcut: arg_b(5, false),
                },
                "C3" => csp(C3Kind::C3)?,
                "C3x" => csp(C3Kind::C3x)?,
                "C3TR" => csp(C3Kind::C3Tr)?,
                "C3Ghost" => csp(C3Kind::C3Ghost)?,
                // parse_model does not insert n for C3SPP: its arguments are [c2, k, n, shortcut]
                "C3SPP" => ModuleSpec::C3 {
                    kind: C3Kind::C3Spp(ints(1, &[5, 9, 13])?),
                    c1,
                    c2: c2_arg()?,
                    n: 1,
                    shortcut: arg_b(3, true),
                },
                "BottleneckCSP" => ModuleSpec::BottleneckCsp { c1, c2: c2_arg()?, n, shortcut: arg_b(1, true) },
                "Bottleneck" => ModuleSpec::Bottleneck { c1, c2: c2_arg()?, shortcut: arg_b(1, true) },
                "GhostBottleneck" => {
                    ModuleSpec::GhostBottleneck { c1, c2: c2_arg()?, k: arg_i(1, 3)?, s: arg_i(2, 1)? }
                }
                "SPP" => ModuleSpec::Spp { c1, c2: c2_arg()?, k: ints(1, &[5, 9, 13])? },
                "SPPF" => ModuleSpec::Sppf { c1, c2: c2_arg()?, k: arg_i(1, 5)? },
                "nn.MaxPool2d" => {
                    let k = arg_i(0, 0)?;
                    ModuleSpec::Plain(Plain::MaxPool { k, s: arg_i(1, k)?, p: arg_i(2, 0)? })
                }
                "nn.ZeroPad2d" => {
                    let pad = match args.first() {
                        Some(Value::Number(_)) => vec![arg_i(0, 0)?; 4],
                        _ => ints(0, &[])?,
                    };
                    let pad: [i64; 4] =
                        pad.try_into().map_err(|p| here(format!("ZeroPad2d takes 1 or 4 paddings, got {p:?}")))?;
                    ModuleSpec::Plain(Plain::ZeroPad(pad))
                }
                "nn.Upsample" => {
                    let scale = arg_f(1, 2.0)?;
                    if let Some(mode) = args.get(2).and_then(Value::as_str)
                        && mode != "nearest"
                    {
                        return Err(here(format!("Upsample mode `{mode}` is not supported (only nearest)")));
                    }
                    ModuleSpec::Plain(Plain::Upsample(scale))
                }
                "Contract" => ModuleSpec::Plain(Plain::Contract(arg_i(0, 2)?)),
                "Expand" => ModuleSpec::Plain(Plain::Expand(arg_i(0, 2)?)),
                "Concat" => ModuleSpec::Concat { dim: arg_i(0, 1)? },
                "Detect" => ModuleSpec::Detect {
                    nc,
                    anchors: yaml_anchors.levels(from.len()),
                    ch: from.iter().map(|&f| input(f)).collect(),
                },
                other => {
                    return Err(here(format!("module `{other}` is not supported ({})", SUPPORTED_MODULES.join(", "))));
                }
            };
            let repeats_inside = matches!(spec, ModuleSpec::C3 { .. } | ModuleSpec::BottleneckCsp { .. });
            if n > 1 && matches!(spec, ModuleSpec::Detect { .. } | ModuleSpec::Concat { .. }) {
                return Err(here(format!("repeating {module} {n} times is not supported")));
            }
            let c2 = match &spec {
                ModuleSpec::Concat { .. } => from.iter().map(|&f| input(f)).sum(),
                ModuleSpec::Detect { .. } => no,
                ModuleSpec::Plain(Plain::Contract(g)) => c1 * g * g,
                ModuleSpec::Plain(Plain::Expand(g)) if *g > 0 => c1 / (g * g),
                ModuleSpec::Plain(_) => c1,
                // GhostBottleneck keeps its input channels through its identity shortcut only when they agree
                other => other.c2().unwrap_or(c1),
            };
            if n > 1 && !repeats_inside && c1 != c2 {
                return Err(here(format!(
                    "{module} is repeated {n} times (an nn.Sequential) but maps {c1} channels to {c2}: each copy \
                     would get the previous one's output"
                )));
            }
            ch.push(c2);
            layers.push(LayerSpec { index: i, from, repeats: if repeats_inside { 1 } else { n }, module: spec, c2 });
        }
        match layers.last().map(|l| &l.module) {
            Some(ModuleSpec::Detect { .. }) => {}
            _ => return Err(bad("the last layer must be Detect".into())),
        }
        if layers[..layers.len() - 1].iter().any(|l| matches!(l.module, ModuleSpec::Detect { .. })) {
            return Err(bad("only the last layer may be Detect".into()));
        }
        super::check::check_config(&layers).map_err(bad)?;
        Ok(ModelConfig {
            name: name.into(),
            source: source.into(),
            nc,
            depth_multiple: gd,
            width_multiple: gw,
            layers,
            placeholder_anchors: matches!(yaml_anchors, Anchors::Count(_)),
            act,
        })
    }
}

/// The yaml's `anchors`: pixel sizes per level, or a count of placeholders per level.
enum Anchors {
    /// `[level][anchor] = (w, h)` in pixels.
    List(Vec<Vec<(f64, f64)>>),
    /// `anchors: N` (or the hyp's `anchors`): N placeholders per level, replaced by AutoAnchor.
    Count(usize),
}

impl Anchors {
    fn per_level(&self) -> usize {
        match self {
            Anchors::List(l) => l.first().map(Vec::len).unwrap_or(0),
            Anchors::Count(k) => *k,
        }
    }

    /// Anchors for a Detect layer with `nl` inputs: the list as given (its length is checked against `nl`
    /// by the shape pass), or `list(range(2k))` per level as YOLOv5 builds placeholders.
    fn levels(&self, nl: usize) -> Vec<Vec<(f64, f64)>> {
        match self {
            Anchors::List(l) => l.clone(),
            Anchors::Count(k) => {
                (0..nl).map(|_| (0..*k).map(|j| ((2 * j) as f64, (2 * j + 1) as f64)).collect()).collect()
            }
        }
    }
}

/// Parse `anchors`; `override_count` (the hyp's `anchors`) replaces them by that many placeholders per level.
fn parse_anchors(v: Option<&Value>, override_count: Option<usize>) -> std::result::Result<Anchors, String> {
    let anchors = match v {
        Some(Value::Sequence(levels)) => Anchors::List(
            levels
                .iter()
                .map(|l| {
                    let xs: Vec<f64> = l
                        .as_sequence()
                        .ok_or("each anchor level must be a list")?
                        .iter()
                        .filter_map(Value::as_f64)
                        .collect();
                    if xs.is_empty() || !xs.len().is_multiple_of(2) {
                        return Err(format!("anchor level {xs:?} must hold w, h pairs"));
                    }
                    if xs.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
                        return Err(format!("anchor level {xs:?} must hold positive sizes"));
                    }
                    Ok(xs.chunks(2).map(|c| (c[0], c[1])).collect())
                })
                .collect::<std::result::Result<_, String>>()?,
        ),
        Some(Value::Number(n)) => Anchors::Count(n.as_u64().ok_or("`anchors` must be a list or a count")? as usize),
        _ => return Err("`anchors` is missing".into()),
    };
    let anchors = override_count.map(Anchors::Count).unwrap_or(anchors);
    if anchors.per_level() == 0 {
        return Err("`anchors` must give at least 1 anchor per level".into());
    }
    Ok(anchors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_and_repeats_follow_parse_model() {
        let n = ModelConfig::load("yolov5n", None, None).unwrap();
        let c2: Vec<i64> = n.layers[..10].iter().map(|l| l.c2).collect();
        assert_eq!(c2, [16, 32, 32, 64, 64, 128, 128, 256, 256, 256]);
        let c3_repeats = |cfg: &ModelConfig| -> Vec<usize> {
            cfg.layers
                .iter()
                .filter_map(|l| match l.module {
                    ModuleSpec::C3 { n, .. } => Some(n),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(c3_repeats(&n), [1, 2, 3, 1, 1, 1, 1, 1]);
        let m = ModelConfig::load("yolov5m", None, None).unwrap();
        assert_eq!(m.layers[0].c2, 48);
        assert_eq!(c3_repeats(&m), [2, 4, 6, 2, 2, 2, 2, 2]);
        assert_eq!(make_divisible(1024.0 * 1.25, 8), 1280);
    }

    #[test]
    fn bad_configs_are_named_errors() {
        let e = ModelConfig::load("yolov9", None, None).unwrap_err().to_string();
        assert!(e.contains("yolov9") && e.contains("yolov5s"), "{e}");
        let text = MODEL_CONFIGS[0].1.replace("SPPF", "SPPCSPC");
        let e = ModelConfig::parse(&text, Path::new("x.yaml"), "x", None, None).unwrap_err().to_string();
        assert!(e.contains("x.yaml") && e.contains("layer 9") && e.contains("SPPCSPC"), "{e}");
    }
}
