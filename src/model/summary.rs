//! Model summaries as YOLOv5 prints them (`model_info`, `parse_model`'s table): layers, parameters, GFLOPs.

use super::{Block, Shape, Yolo};
use std::fmt;

/// One row of the per-module table.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    /// Module index.
    pub index: usize,
    /// Inputs.
    pub from: Vec<i64>,
    /// Repeats.
    pub n: usize,
    /// Parameters.
    pub params: i64,
    /// YOLOv5 class name.
    pub module: String,
    /// Constructor arguments as YOLOv5 prints them.
    pub arguments: String,
}

/// Layers, parameters, trainable parameters and GFLOPs of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// Model name (`YOLOv5n`).
    pub name: String,
    /// Per-module rows.
    pub rows: Vec<LayerRow>,
    /// Leaf modules, as YOLOv5's current summary counts them ("125 layers").
    pub layers: usize,
    /// Parameters.
    pub parameters: i64,
    /// Parameters that receive gradients (fewer when layers are frozen).
    pub gradients: i64,
    /// GFLOPs (2 × multiply-accumulates) at `imgsz`.
    pub gflops: f64,
    /// Image size of the GFLOPs figure.
    pub imgsz: i64,
}

fn display_name(name: &str) -> String {
    match name.strip_prefix("yolov5") {
        Some(rest) => format!("YOLOv5{rest}"),
        None => name.to_string(),
    }
}

/// `1872157` → `1,872,157`.
pub fn thousands(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

impl Yolo {
    /// Multiply-accumulates of one `imgsz` × `imgsz` image as thop counts them (convolutions with their
    /// BatchNorm, linear layers; pooling, upsampling and activations are free).
    pub fn macs(&self, imgsz: i64) -> f64 {
        let mut shapes: Vec<Shape> = Vec::with_capacity(self.layers.len());
        let mut total = 0.0;
        for l in &self.layers {
            let src = |f: i64| -> Shape {
                if l.index == 0 {
                    (3, imgsz, imgsz)
                } else if f < 0 {
                    shapes[(l.index as i64 + f) as usize]
                } else {
                    shapes[f as usize]
                }
            };
            let out = match &l.block {
                Block::Module(m) => {
                    let (c, y) = m.cost(src(l.from[0]));
                    total += c;
                    y
                }
                Block::Concat(_) => {
                    let parts: Vec<Shape> = l.from.iter().map(|&f| src(f)).collect();
                    (parts.iter().map(|p| p.0).sum(), parts[0].1, parts[0].2)
                }
                Block::Detect(d) => {
                    for (f, (w, _)) in l.from.iter().zip(&d.m) {
                        let (_, h, w_) = src(*f);
                        total += (h * w_) as f64 * w.numel() as f64;
                    }
                    (0, 0, 0)
                }
            };
            shapes.push(out);
        }
        total
    }

    /// Leaf nn.Modules as `model.named_modules()` lists them (YOLOv5's layer count): each block's, the
    /// Detect convs, and the default activation once (all Convs share one module object).
    pub fn leaf_modules(&self) -> usize {
        let blocks: usize = self
            .layers
            .iter()
            .map(|l| match &l.block {
                Block::Module(m) => m.leaves(),
                Block::Concat(_) => 1,
                Block::Detect(d) => d.m.len(),
            })
            .sum();
        blocks + 1
    }

    /// The summary at an image size (YOLOv5 reports 640).
    pub fn summary(&self, imgsz: i64) -> ModelSummary {
        let vars = self.vs.variables();
        let params_of = |i: usize| -> i64 {
            let prefix = format!("model.{i}.");
            vars.iter()
                .filter(|(k, _)| k.starts_with(&prefix) && !super::is_buffer(k))
                .map(|(_, v)| v.numel() as i64)
                .sum()
        };
        let rows = self
            .config
            .layers
            .iter()
            .map(|s| LayerRow {
                index: s.index,
                from: s.from.clone(),
                n: match s.module {
                    super::ModuleSpec::C3 { n, .. } | super::ModuleSpec::BottleneckCsp { n, .. } => n,
                    _ => s.repeats,
                },
                params: params_of(s.index),
                module: s.module.type_name(),
                arguments: arguments(&s.module),
            })
            .collect();
        let layers = self.leaf_modules();
        let parameters = self.parameters();
        let gradients =
            vars.iter().filter(|(k, v)| !super::is_buffer(k) && v.requires_grad()).map(|(_, v)| v.numel() as i64).sum();
        ModelSummary {
            name: display_name(&self.config.name),
            rows,
            layers,
            parameters,
            gradients,
            gflops: 2.0 * self.macs(imgsz) / 1e9,
            imgsz,
        }
    }
}

fn arguments(m: &super::ModuleSpec) -> String {
    use super::ModuleSpec::*;
    use super::blocks::Plain;
    let py = |b: bool| if b { "True" } else { "False" };
    match m {
        Conv { c1, c2, k, s, p } | Focus { c1, c2, k, s, p } => {
            if *p == k / 2 {
                format!("[{c1}, {c2}, {k}, {s}]")
            } else {
                format!("[{c1}, {c2}, {k}, {s}, {p}]")
            }
        }
        DwConv { c1, c2, k, s } | GhostConv { c1, c2, k, s } | GhostBottleneck { c1, c2, k, s } => {
            format!("[{c1}, {c2}, {k}, {s}]")
        }
        CrossConv { c1, c2, k, s, shortcut } => format!("[{c1}, {c2}, {k}, {s}, 1, 1.0, {}]", py(*shortcut)),
        C3 { c1, c2, n, shortcut, .. } | BottleneckCsp { c1, c2, n, shortcut } => {
            if *shortcut {
                format!("[{c1}, {c2}, {n}]")
            } else {
                format!("[{c1}, {c2}, {n}, False]")
            }
        }
        Bottleneck { c1, c2, shortcut } => format!("[{c1}, {c2}, {}]", py(*shortcut)),
        Spp { c1, c2, k } => format!("[{c1}, {c2}, {k:?}]"),
        Sppf { c1, c2, k } => format!("[{c1}, {c2}, {k}]"),
        Plain(Plain::Upsample(scale)) => format!("[None, {scale}, 'nearest']"),
        Plain(Plain::MaxPool { k, s, p }) => format!("[{k}, {s}, {p}]"),
        Plain(Plain::ZeroPad(p)) => format!("[{p:?}]"),
        Plain(Plain::Contract(g)) | Plain(Plain::Expand(g)) => format!("[{g}]"),
        Concat { dim } => format!("[{dim}]"),
        Detect { nc, anchors, ch } => {
            let a: Vec<String> = anchors
                .iter()
                .map(|l| format!("{:?}", l.iter().flat_map(|(w, h)| [*w as i64, *h as i64]).collect::<Vec<_>>()))
                .collect();
            format!("[{nc}, [{}], {ch:?}]", a.join(", "))
        }
    }
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>3}{:>18}{:>3}{:>10}  {:<40}{:<30}", "", "from", "n", "params", "module", "arguments")?;
        for r in &self.rows {
            let from = if r.from.len() == 1 { r.from[0].to_string() } else { format!("{:?}", r.from) };
            writeln!(f, "{:>3}{:>18}{:>3}{:>10}  {:<40}{:<30}", r.index, from, r.n, r.params, r.module, r.arguments)?;
        }
        write!(
            f,
            "{} summary: {} layers, {} parameters, {} gradients, {:.1} GFLOPs",
            self.name,
            self.layers,
            thousands(self.parameters),
            thousands(self.gradients),
            self.gflops
        )
    }
}
