//! Model summaries as YOLOv5 prints them (`model_info`, `parse_model`'s table): layers, parameters, GFLOPs.

use super::{Block, Yolo};
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
    /// Multiply-accumulates of one forward at `imgsz`×`imgsz`, counted as thop counts them (convolutions and
    /// affine BatchNorm; activations, pooling, upsampling and concatenation free; conv biases not counted).
    pub fn macs(&self, imgsz: i64) -> f64 {
        let mut sizes: Vec<i64> = Vec::with_capacity(self.layers.len());
        let mut total = 0.0;
        for l in &self.layers {
            let src = |f: i64| -> i64 {
                if l.index == 0 {
                    imgsz
                } else if f < 0 {
                    sizes[(l.index as i64 + f) as usize]
                } else {
                    sizes[f as usize]
                }
            };
            let n_in = src(l.from[0]);
            let n_out = match &l.block {
                Block::Conv(c) => {
                    let o = c.out_size(n_in);
                    total += c.macs(o * o);
                    o
                }
                Block::C3(_) | Block::Bottleneck(_) | Block::Sppf(_) => {
                    total += l.convs().iter().map(|c| c.macs(n_in * n_in)).sum::<f64>();
                    n_in
                }
                Block::Upsample(s) => (n_in as f64 * s) as i64,
                Block::Concat(_) => n_in,
                Block::Detect(d) => {
                    for (f, (w, _)) in l.from.iter().zip(&d.m) {
                        let n = src(*f);
                        total += (n * n) as f64 * w.numel() as f64;
                    }
                    0
                }
            };
            sizes.push(n_out);
        }
        total
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
                    super::ModuleSpec::C3 { n, .. } => n,
                    _ => s.repeats,
                },
                params: params_of(s.index),
                module: s.module.type_name().into(),
                arguments: arguments(&s.module),
            })
            .collect();
        let convs: usize = self.layers.iter().map(|l| l.convs().len()).sum();
        let others: usize = self
            .layers
            .iter()
            .map(|l| match &l.block {
                Block::Sppf(_) | Block::Upsample(_) | Block::Concat(_) => 1,
                Block::Detect(d) => d.m.len(),
                _ => 0,
            })
            .sum();
        // Each Conv is a Conv2d and a BatchNorm2d; all Convs share one SiLU module object in YOLOv5.
        let layers = 2 * convs + usize::from(convs > 0) + others;
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
    match m {
        Conv { c1, c2, k, s, p } => {
            if *p == k / 2 {
                format!("[{c1}, {c2}, {k}, {s}]")
            } else {
                format!("[{c1}, {c2}, {k}, {s}, {p}]")
            }
        }
        C3 { c1, c2, n, shortcut } => {
            if *shortcut {
                format!("[{c1}, {c2}, {n}]")
            } else {
                format!("[{c1}, {c2}, {n}, False]")
            }
        }
        Bottleneck { c1, c2, shortcut } => format!("[{c1}, {c2}, {}]", if *shortcut { "True" } else { "False" }),
        Sppf { c1, c2, k } => format!("[{c1}, {c2}, {k}]"),
        Upsample { scale } => format!("[None, {scale}, 'nearest']"),
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
