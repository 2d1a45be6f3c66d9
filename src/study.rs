//! The freeze study (the tutorial's comparison of `--freeze` settings, seed 004): train the same scenario with
//! several freezing variants and compare accuracy, time, trainable parameters and GPU (or CPU) load.
//!
//! The recipe of the tutorial is yolov5m from COCO weights, 50 epochs, 512 px, hyp.VOC, on VOC and a GPU:
//! `FreezeStudy::new(Trainer::new().data("VOC").weights("yolov5m.safetensors").hyp("VOC").imgsz(512).epochs(50))`.
//! Any data set works; the notebooks use a CPU-sized shapes recipe.

use crate::error::{Error, Result};
use crate::gpu::TelemetrySummary;
use crate::plots::Figure;
use crate::train::{EpochRow, Freeze, FreezeSchedule, Trainer, results};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A study of freezing variants over one base scenario.
#[derive(Debug, Clone)]
pub struct FreezeStudy {
    /// The scenario (data, weights, hyp, epochs, ...).
    pub base: Trainer,
    /// Variants to compare. Default none, backbone, all but Detect.
    pub variants: Vec<Variant>,
    /// Study folder. Default `runs/freeze/study`.
    pub dir: PathBuf,
}

/// Figures of one variant kept beside its run (`study.json`), so a finished variant is loaded, not retrained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct VariantSummary {
    /// Label (folder name).
    pub label: String,
    /// Epochs trained.
    pub epochs: usize,
    /// Seconds of the run.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// Trainable parameters.
    pub trainable: i64,
    /// Frozen parameters.
    pub frozen: i64,
    /// Telemetry source in words.
    pub telemetry: String,
    /// Peak GPU memory allocated, % (NaN without NVML).
    #[serde(deserialize_with = "nan_from_null")]
    pub peak_gpu_mem_pct: f64,
    /// Mean GPU memory allocated, %.
    #[serde(deserialize_with = "nan_from_null")]
    pub mean_gpu_mem_pct: f64,
    /// Mean GPU utilisation, %.
    #[serde(deserialize_with = "nan_from_null")]
    pub mean_gpu_util_pct: f64,
    /// Peak process RSS, MiB.
    #[serde(deserialize_with = "nan_from_null")]
    pub peak_rss_mib: f64,
    /// Mean process CPU, %.
    #[serde(deserialize_with = "nan_from_null")]
    pub mean_cpu_pct: f64,
}

/// JSON has no NaN: serde_json writes it as null, read null back as NaN.
fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One way of freezing: which layers, whether their BatchNorm statistics stay fixed, or a schedule that
/// changes the frozen layers during training. A [`Freeze`] converts into the plain variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Its label (the run folder's name).
    pub label: String,
    /// Layers frozen for the whole run (ignored when `schedule` is given).
    pub freeze: Freeze,
    /// Frozen BatchNorms in eval mode ([`Trainer::freeze_bn`]).
    pub freeze_bn: bool,
    /// A freeze schedule (stages, unfreezing, gradual unfreezing) instead of one setting.
    pub schedule: Option<FreezeSchedule>,
}

impl From<Freeze> for Variant {
    fn from(f: Freeze) -> Self {
        Variant { label: label(&f), freeze: f, freeze_bn: false, schedule: None }
    }
}

impl Variant {
    /// The same layers with their BatchNorm statistics fixed (label `…-bn-fixed`).
    pub fn with_frozen_bn(mut self) -> Self {
        self.freeze_bn = true;
        self.label.push_str("-bn-fixed");
        self
    }

    /// A schedule under a label of your choice (e.g. `"unfreeze-at-5"`, `"gradual"`).
    pub fn schedule(label: &str, schedule: FreezeSchedule) -> Self {
        Variant { label: label.into(), freeze: Freeze::None, freeze_bn: false, schedule: Some(schedule) }
    }

    /// The base trainer with this variant applied.
    fn apply(&self, base: &Trainer) -> Trainer {
        let mut t = base.clone().freeze(self.freeze.clone()).freeze_bn(self.freeze_bn);
        if let Some(s) = &self.schedule {
            t.freeze_schedule = Some(s.clone());
        }
        t
    }

    fn epochs(&self, base: &Trainer) -> usize {
        let s = self.schedule.as_ref().or(base.freeze_schedule.as_ref());
        s.map(|s| s.epochs()).unwrap_or(base.epochs)
    }
}

/// One variant's outcome.
#[derive(Debug, Clone)]
pub struct VariantResult {
    /// What was frozen.
    pub variant: Variant,
    /// Run folder.
    pub dir: PathBuf,
    /// Per-epoch rows.
    pub rows: Vec<EpochRow>,
    /// Timings, parameters, telemetry.
    pub summary: VariantSummary,
    /// Whether it was loaded from a finished earlier run.
    pub loaded: bool,
}

/// All variants.
#[derive(Debug, Clone)]
pub struct StudyResult {
    /// In variant order.
    pub variants: Vec<VariantResult>,
}

fn label(f: &Freeze) -> String {
    match f {
        Freeze::None => "freeze-none".into(),
        Freeze::Backbone => "freeze-backbone".into(),
        Freeze::AllButDetect => "freeze-all-but-detect".into(),
        Freeze::First(n) => format!("freeze-first{n}"),
        Freeze::Layers(v) => format!("freeze-{}", v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("-")),
    }
}

impl FreezeStudy {
    /// Compare the tutorial's three variants on `base`.
    pub fn new(base: Trainer) -> Self {
        FreezeStudy {
            base,
            variants: vec![Freeze::None.into(), Freeze::Backbone.into(), Freeze::AllButDetect.into()],
            dir: PathBuf::from("runs/freeze/study"),
        }
    }

    /// The variants: [`Freeze`] settings, or [`Variant`]s (frozen BatchNorms, schedules).
    pub fn variants<V: Into<Variant>>(mut self, v: impl IntoIterator<Item = V>) -> Self {
        self.variants = v.into_iter().map(Into::into).collect();
        self
    }

    /// The study folder (variants go in sub-folders).
    pub fn dir(mut self, d: impl Into<PathBuf>) -> Self {
        self.dir = d.into();
        self
    }

    /// Train (or load) every variant.
    pub fn run(&self) -> Result<StudyResult> {
        if self.variants.is_empty() {
            return Err(Error::Config { name: "variants", message: "give at least one freezing variant".into() });
        }
        self.base.validate()?;
        let mut data = self.base.prepare_data()?;
        let mut out = Vec::new();
        let mut labels = std::collections::BTreeSet::new();
        for v in &self.variants {
            if !labels.insert(v.label.as_str()) {
                return Err(Error::Config {
                    name: "variants",
                    message: format!("two variants are labelled `{}`: give each its own label", v.label),
                });
            }
        }
        for v in &self.variants {
            let lab = v.label.clone();
            let dir = self.dir.join(&lab);
            let json = dir.join("study.json");
            let epochs = v.epochs(&self.base);
            if let (Ok(text), Ok(rows)) = (std::fs::read_to_string(&json), results::read(&dir.join("results.csv")))
                && let Ok(summary) = serde_json::from_str::<VariantSummary>(&text)
                && rows.len() >= epochs
            {
                self.base.report().summary(&format!("{lab}: finished earlier, loaded from {}", dir.display()));
                out.push(VariantResult { variant: v.clone(), dir, rows, summary, loaded: true });
                continue;
            }
            self.base.report().summary(&format!("{lab}: training ({epochs} epochs)"));
            let mut t = v.apply(&self.base).project(&self.dir).name(lab.as_str()).exist_ok(true);
            if dir.join("weights/last.safetensors").is_file() {
                t = t.resume(&dir);
            }
            let run = t.fit_with(&mut data)?;
            let s: TelemetrySummary = run.telemetry.summary();
            let summary = VariantSummary {
                label: lab,
                epochs: run.rows.len(),
                seconds: run.seconds,
                images_per_second: run.images_per_second,
                trainable: run.parameters.0 - run.parameters.1,
                frozen: run.parameters.1,
                telemetry: run.telemetry.source.to_string(),
                peak_gpu_mem_pct: s.peak_gpu_mem_pct,
                mean_gpu_mem_pct: s.mean_gpu_mem_pct,
                mean_gpu_util_pct: s.mean_gpu_util_pct,
                peak_rss_mib: s.peak_rss_mib,
                mean_cpu_pct: s.mean_cpu_pct,
            };
            crate::fsutil::write_atomic(&json, serde_json::to_string_pretty(&summary).unwrap_or_default().as_bytes())?;
            out.push(VariantResult { variant: v.clone(), dir, rows: run.rows, summary, loaded: false });
        }
        Ok(StudyResult { variants: out })
    }
}

fn num(v: f64, digits: usize) -> String {
    if v.is_finite() { format!("{v:.digits$}") } else { "n/a".into() }
}

impl StudyResult {
    /// Header and rows of the comparison table.
    pub fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let head = vec![
            "variant",
            "mAP@0.5",
            "mAP@0.5:0.95",
            "time (s)",
            "images/s",
            "trainable params",
            "peak GPU mem %",
            "mean GPU mem %",
            "mean GPU util %",
            "peak RSS MiB",
            "mean CPU %",
        ];
        let rows = self
            .variants
            .iter()
            .map(|v| {
                let m = v.rows.last().map(|r| r.metrics).unwrap_or_default();
                let s = &v.summary;
                vec![
                    s.label.clone(),
                    num(m[2], 4),
                    num(m[3], 4),
                    num(s.seconds, 1),
                    num(s.images_per_second, 2),
                    crate::model::thousands(s.trainable),
                    num(s.peak_gpu_mem_pct, 1),
                    num(s.mean_gpu_mem_pct, 1),
                    num(s.mean_gpu_util_pct, 1),
                    num(s.peak_rss_mib, 0),
                    num(s.mean_cpu_pct, 0),
                ]
            })
            .collect();
        (head, rows)
    }

    /// Whether any variant had NVML figures.
    pub fn has_gpu(&self) -> bool {
        self.variants.iter().any(|v| v.summary.peak_gpu_mem_pct.is_finite())
    }

    /// mAP@0.5 (column 2) or mAP@0.5:0.95 (column 3) per epoch for every variant.
    pub fn plot_map(&self, column: usize) -> Result<Figure> {
        let series: Vec<(String, Vec<(f64, f64)>)> = self
            .variants
            .iter()
            .map(|v| (v.summary.label.clone(), v.rows.iter().map(|r| (r.epoch as f64, r.metrics[column])).collect()))
            .collect();
        let title = if column == 2 { "mAP@0.5 per epoch" } else { "mAP@0.5:0.95 per epoch" };
        crate::plots::lines(title, "epoch", title, &series)
    }

    /// GPU memory allocated % and utilisation % over time per variant, or, without NVML, process RSS (MiB)
    /// and CPU %.
    pub fn plot_telemetry(&self) -> Result<Vec<Figure>> {
        let gpu = self.has_gpu();
        let cols: [(usize, &str); 2] = if gpu {
            [(3, "GPU memory allocated (%)"), (4, "GPU utilization (%)")]
        } else {
            [(5, "process RSS (MiB), no NVML"), (6, "process CPU (%), no NVML")]
        };
        cols.iter()
            .map(|(c, title)| {
                let series: Vec<(String, Vec<(f64, f64)>)> = self
                    .variants
                    .iter()
                    .map(|v| {
                        let text = std::fs::read_to_string(v.dir.join("gpu.csv")).unwrap_or_default();
                        let pts = text
                            .lines()
                            .filter(|l| !l.starts_with('#') && !l.starts_with("time_s"))
                            .filter_map(|l| {
                                let f: Vec<&str> = l.split(',').collect();
                                Some((f.first()?.parse().ok()?, f.get(*c)?.parse().ok()?))
                            })
                            .collect();
                        (v.summary.label.clone(), pts)
                    })
                    .collect();
                crate::plots::lines(title, "time (s)", title, &series)
            })
            .collect()
    }

    /// The table and all figures as one HTML block.
    pub fn to_html(&self) -> Result<String> {
        let (head, rows) = self.table();
        let mut html = crate::display::html_table("freeze study", &head, &rows);
        if !self.has_gpu() {
            html.push_str(
                "<p><i>No NVML on this machine: process memory and CPU are shown instead of GPU figures.</i></p>",
            );
        }
        let mut figs = vec![self.plot_map(2)?, self.plot_map(3)?];
        figs.extend(self.plot_telemetry()?);
        html.push_str(&crate::plots::figures_html(&figs.iter().collect::<Vec<_>>()));
        Ok(html)
    }

    /// evcxr: the table and the figures in one cell.
    pub fn evcxr_display(&self) {
        let (head, rows) = self.table();
        let plain =
            std::iter::once(head.join(" | ")).chain(rows.iter().map(|r| r.join(" | "))).collect::<Vec<_>>().join("\n");
        match self.to_html() {
            Ok(h) => crate::display::emit(&[("text/plain", &plain), ("text/html", &h)]),
            Err(e) => crate::display::emit(&[("text/plain", &format!("{plain}\n(figures failed: {e})"))]),
        }
    }
}
