//! Parity with YOLOv5: run every comparison that a fixture folder allows (same file names, keys and
//! `manifest.json` schema as `shared/parity/yolov5n-nc3`) and report max errors per check against the
//! tolerances of the fixture README. Used by the parity tests and by `yolo-lab parity DIR`.
//!
//! Oracles: `model.safetensors`, `forward.safetensors`, `forward_calibrated.safetensors`, `loss.safetensors`,
//! `nms.safetensors`, `sgd_step.safetensors`, `ap_per_class.safetensors` (in DIR or its parent), all
//! produced by ultralytics/yolov5@5081342f on CPU in float32.

mod fixture;
mod forward;
mod nms;
mod sgd;

use crate::error::{Error, IoContext, Result};
use crate::loss::{ComputeLoss, LossConfig};
use crate::metrics::{NmsConfig, ap_per_class, fitness, iou_xyxy, nms_image};
use crate::model::Yolo;
use crate::train::step::{StepSchedule, TrainStep};
use fixture::{Fixture, Manifest, NmsKey, Tensors};
use forward::{calibrated_checks, forward_checks, loss_checks, loss_config};
use nms::{ap_checks, nms_checks};
use sgd::sgd_checks;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Tolerances of shared/parity/README.md, one constant each.
pub mod tol {
    /// Build-target boxes and anchors (abs).
    pub const TBOX_ABS: f64 = 1e-6;
    /// Raw outputs (abs).
    pub const RAW_ABS: f64 = 5e-4;
    /// Decoded xywh (pixels, abs).
    pub const XYWH_PX: f64 = 0.05;
    /// Decoded probabilities (abs).
    pub const PROB_ABS: f64 = 1e-4;
    /// Loss from the stored predictions (rel).
    pub const LOSS_FIXTURE_REL: f64 = 1e-5;
    /// Loss from our own forward (rel).
    pub const LOSS_OWN_REL: f64 = 1e-4;
    /// Per-tensor gradient: max|Δ| ≤ GRAD_REL · max|g_ref| + GRAD_ABS and ‖Δ‖ ≤ GRAD_REL · ‖g_ref‖.
    pub const GRAD_REL: f64 = 1e-2;
    /// See [`GRAD_REL`].
    pub const GRAD_ABS: f64 = 1e-6;
    /// Global gradient norm (rel).
    pub const GRAD_NORM_REL: f64 = 1e-4;
    /// Parameters after the SGD step (abs).
    pub const SGD_PARAM_ABS: f64 = 2e-5;
    /// BN buffers after the SGD step: rel + abs.
    pub const SGD_BN_REL: f64 = 1e-4;
    /// See [`SGD_BN_REL`].
    pub const SGD_BN_ABS: f64 = 1e-6;
    /// NMS boxes fed the stored eval_out (pixels).
    pub const NMS_BOX_PX: f64 = 1e-3;
    /// NMS confidences fed the stored eval_out.
    pub const NMS_CONF: f64 = 1e-5;
    /// ap_per_class outputs (abs).
    pub const AP_ABS: f64 = 1e-9;
}

/// One comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was compared (`forward/eval_raw_0`).
    pub name: String,
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Largest difference relative to the reference's largest magnitude.
    pub max_rel: f64,
    /// The bound, in words.
    pub tolerance: String,
    /// Within tolerance.
    pub pass: bool,
}

/// All checks of a fixture folder.
#[derive(Debug, Clone, PartialEq)]
pub struct ParityReport {
    /// The folder.
    pub dir: PathBuf,
    /// Checks in order.
    pub checks: Vec<Check>,
    /// Files that were absent, so their checks did not run.
    pub skipped: Vec<String>,
    /// Settings the manifest omitted and the checks took from the fixture README (`key = value`).
    pub defaults: Vec<String>,
}

impl ParityReport {
    /// Every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }
}

impl fmt::Display for ParityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "parity against {}", self.dir.display())?;
        writeln!(f, "{:<44} {:>12} {:>12}  {:<34} result", "check", "max abs", "max rel", "tolerance")?;
        for c in &self.checks {
            let ok = if c.pass { "ok" } else { "MISMATCH" };
            writeln!(f, "{:<44} {:>12.3e} {:>12.3e}  {:<34} {ok}", c.name, c.max_abs, c.max_rel, c.tolerance)?;
        }
        for s in &self.skipped {
            writeln!(f, "skipped: {s} not found")?;
        }
        for d in &self.defaults {
            writeln!(f, "default: {d} (not in the manifest)")?;
        }
        let failed = self.checks.iter().filter(|c| !c.pass).count();
        write!(f, "{} checks, {} passed, {} failed", self.checks.len(), self.checks.len() - failed, failed)
    }
}

fn get<'a>(t: &'a Tensors, file: &str, key: &str) -> Result<&'a Tensor> {
    t.get(key).ok_or_else(|| Error::DataConfig { path: file.into(), message: format!("missing tensor `{key}`") })
}

fn f64s(t: &Tensor) -> Vec<f64> {
    Vec::try_from(t.to_device(Device::Cpu).to_kind(Kind::Double).reshape(-1)).unwrap_or_default()
}

/// Compare two tensors elementwise with an absolute bound.
fn close(name: &str, got: &Tensor, want: &Tensor, abs: f64) -> Check {
    if got.size() != want.size() {
        return Check {
            name: name.into(),
            max_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
            tolerance: format!("shape {:?} vs {:?}", got.size(), want.size()),
            pass: false,
        };
    }
    let (g, w) = (f64s(got), f64s(want));
    let max_abs = g.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let scale = w.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1e-30);
    Check {
        name: name.into(),
        max_abs,
        max_rel: max_abs / scale,
        tolerance: format!("abs ≤ {abs:.0e}"),
        pass: max_abs <= abs,
    }
}

/// Compare with a relative bound on each element (loss components).
fn close_rel(name: &str, got: &[f64], want: &[f64], rel: f64) -> Check {
    let max_abs = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let max_rel = got.iter().zip(want).map(|(a, b)| (a - b).abs() / b.abs().max(1e-30)).fold(0.0, f64::max);
    let pass = got.len() == want.len() && max_rel <= rel;
    Check { name: name.into(), max_abs, max_rel, tolerance: format!("rel ≤ {rel:.0e}"), pass }
}

/// Run every comparison the files in `dir` allow.
pub fn run(dir: impl AsRef<Path>) -> Result<ParityReport> {
    let dir = dir.as_ref().to_path_buf();
    let mpath = dir.join("manifest.json");
    let text = std::fs::read_to_string(&mpath).at(&mpath)?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| Error::DataConfig { path: mpath.clone(), message: e.to_string() })?;
    let fx = Fixture { dir: dir.clone(), manifest };
    let mut report = ParityReport { dir, checks: vec![], skipped: vec![], defaults: vec![] };
    let Some(weights) = fx.file("model.safetensors") else {
        report.skipped.push("model.safetensors (and every model-based check)".into());
        ap_checks(&fx, &mut report)?;
        return Ok(report);
    };
    let m = fx.section(&fx.manifest.model, "model")?;
    let (cfg, nc) = (m.cfg.clone(), m.nc);
    let fresh = || -> Result<Yolo> {
        let mut m = Yolo::new(&cfg, Some(nc), Device::Cpu)?;
        m.load(&weights)?;
        Ok(m)
    };
    let model = fresh()?;
    let want = m.n_parameters;
    let got = model.parameters() as f64;
    report.checks.push(Check {
        name: "model/n_parameters".into(),
        max_abs: (got - want).abs(),
        max_rel: (got - want).abs() / want,
        tolerance: "exact".into(),
        pass: got == want,
    });
    let file_keys = Tensor::read_safetensors(&weights).map(|l| l.len()).unwrap_or(0);
    let nvars = model.vs.variables().len();
    report.checks.push(Check {
        name: "model/state_dict tensors".into(),
        max_abs: (file_keys as f64 - nvars as f64).abs(),
        max_rel: 0.0,
        tolerance: "every tensor used once".into(),
        pass: file_keys == nvars,
    });

    forward_checks(&fx, &model, &mut report)?;
    calibrated_checks(&fx, fresh()?, &mut report)?;
    loss_checks(&fx, &model, &mut report)?;
    nms_checks(&fx, &mut report)?;
    sgd_checks(&fx, &fresh, &mut report)?;
    ap_checks(&fx, &mut report)?;
    Ok(report)
}
