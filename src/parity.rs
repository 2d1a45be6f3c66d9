//! Parity with YOLOv5: run every comparison that a fixture folder allows (same file names, keys and
//! `manifest.json` schema as `shared/parity/yolov5n-nc3`) and report max errors per check against the
//! tolerances of the fixture README. Used by the parity tests and by `yolo-lab parity DIR`.
//!
//! Oracles: `model.safetensors`, `forward.safetensors`, `forward_calibrated.safetensors`, `loss.safetensors`,
//! `nms.safetensors`, `sgd_step.safetensors`, `ap_per_class.safetensors` (in DIR or its parent), all
//! produced by ultralytics/yolov5@5081342f on CPU in float32.

use crate::error::{Error, IoContext, Result};
use crate::loss::{ComputeLoss, LossConfig};
use crate::metrics::{NmsConfig, ap_per_class, fitness, iou_xyxy, nms_image};
use crate::model::Yolo;
use crate::train::step::{StepSchedule, TrainStep};
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

/// The parts of a fixture's `manifest.json` (schema `yolov5-parity-fixture/1`) that the checks read. A section
/// is needed only by the checks whose files are present; what a running check needs and the manifest lacks is
/// an error naming the key. The NMS settings of a key and the optimizer's decay and clipping, when absent, take
/// the values the fixture README documents, and the report lists each such default.
#[derive(Debug, serde::Deserialize)]
struct Manifest {
    model: Option<ModelSection>,
    loss: Option<LossSection>,
    #[serde(default)]
    nms: NmsSection,
    optimizer: Option<OptimizerSection>,
    sgd_step: Option<SgdSection>,
}

#[derive(Debug, serde::Deserialize)]
struct ModelSection {
    cfg: String,
    nc: i64,
    n_parameters: f64,
}

#[derive(Debug, serde::Deserialize)]
struct LossSection {
    gains: LossGains,
    cls_pw: f64,
    obj_pw: f64,
    anchor_t: f64,
    fl_gamma: f64,
    label_smoothing: f64,
}

#[derive(Debug, serde::Deserialize)]
struct LossGains {
    #[serde(rename = "box")]
    box_gain: f64,
    obj: f64,
    cls: f64,
}

#[derive(Debug, Default, serde::Deserialize)]
struct NmsSection {
    #[serde(default)]
    keys: HashMap<String, NmsKey>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct NmsKey {
    conf_thres: Option<f64>,
    iou_thres: Option<f64>,
    max_det: Option<usize>,
    multi_label: Option<bool>,
    agnostic: Option<bool>,
}

#[derive(Debug, serde::Deserialize)]
struct OptimizerSection {
    lr: f64,
    momentum: f64,
    #[serde(default)]
    groups: Vec<GroupSection>,
    gradient_clipping: Option<ClipSection>,
}

#[derive(Debug, serde::Deserialize)]
struct GroupSection {
    index: usize,
    weight_decay: Option<f64>,
}

#[derive(Debug, serde::Deserialize)]
struct ClipSection {
    max_norm: f64,
}

#[derive(Debug, serde::Deserialize)]
struct SgdSection {
    grad_global_norm_preclip: f64,
}

struct Fixture {
    dir: PathBuf,
    manifest: Manifest,
}

type Tensors = HashMap<String, Tensor>;

impl Fixture {
    fn file(&self, name: &str) -> Option<PathBuf> {
        [self.dir.join(name), self.dir.parent().unwrap_or(&self.dir).join(name)].into_iter().find(|p| p.is_file())
    }

    fn load(&self, name: &str) -> Result<Option<Tensors>> {
        let Some(p) = self.file(name) else { return Ok(None) };
        let list =
            Tensor::read_safetensors(&p).map_err(|e| Error::DataConfig { path: p.clone(), message: e.to_string() })?;
        Ok(Some(list.into_iter().collect()))
    }

    fn missing(&self, key: &str) -> Error {
        Error::DataConfig { path: self.dir.join("manifest.json"), message: format!("missing key `{key}`") }
    }

    /// A section the running check needs.
    fn section<'a, T>(&self, s: &'a Option<T>, key: &str) -> Result<&'a T> {
        s.as_ref().ok_or_else(|| self.missing(key))
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

fn forward_checks(fx: &Fixture, model: &Yolo, report: &mut ParityReport) -> Result<()> {
    let Some(t) = fx.load("forward.safetensors")? else {
        report.skipped.push("forward.safetensors".into());
        return Ok(());
    };
    let f = "forward.safetensors";
    let input = get(&t, f, "input")?;
    let (out, raw) = model.predict(input);
    for (l, r) in raw.iter().enumerate() {
        report.checks.push(close(
            &format!("forward/eval_raw_{l}"),
            r,
            get(&t, f, &format!("eval_raw_{l}"))?,
            tol::RAW_ABS,
        ));
    }
    decoded_checks("forward/eval_out", &out, get(&t, f, "eval_out")?, report);
    // train mode second: it updates the BatchNorm statistics (the README's order)
    let raw = tch::no_grad(|| model.forward_t(input, true));
    for (l, r) in raw.iter().enumerate() {
        report.checks.push(close(
            &format!("forward/train_raw_{l}"),
            r,
            get(&t, f, &format!("train_raw_{l}"))?,
            tol::RAW_ABS,
        ));
    }
    Ok(())
}

fn decoded_checks(name: &str, got: &Tensor, want: &Tensor, report: &mut ParityReport) {
    let no = want.size()[2];
    report.checks.push(close(&format!("{name} xywh px"), &got.narrow(2, 0, 4), &want.narrow(2, 0, 4), tol::XYWH_PX));
    report.checks.push(close(
        &format!("{name} probabilities"),
        &got.narrow(2, 4, no - 4),
        &want.narrow(2, 4, no - 4),
        tol::PROB_ABS,
    ));
}

fn calibrated_checks(fx: &Fixture, model: Yolo, report: &mut ParityReport) -> Result<()> {
    let Some(t) = fx.load("forward_calibrated.safetensors")? else {
        report.skipped.push("forward_calibrated.safetensors".into());
        return Ok(());
    };
    let Some(fw) = fx.load("forward.safetensors")? else { return Ok(()) };
    let vars = model.vs.variables();
    let mut n = 0;
    tch::no_grad(|| {
        for (k, v) in &t {
            if let Some(name) = k.strip_prefix("bn.")
                && let Some(var) = vars.get(name)
            {
                var.shallow_clone().copy_(v);
                n += 1;
            }
        }
    });
    let f = "forward_calibrated.safetensors";
    let expected = t.keys().filter(|k| k.starts_with("bn.")).count();
    report.checks.push(Check {
        name: "calibrated/bn buffers loaded".into(),
        max_abs: (expected - n) as f64,
        max_rel: 0.0,
        tolerance: "all".into(),
        pass: n == expected && n > 0,
    });
    let (out, raw) = model.predict(get(&fw, "forward.safetensors", "input")?);
    for (l, r) in raw.iter().enumerate() {
        report.checks.push(close(
            &format!("calibrated/eval_raw_{l}"),
            r,
            get(&t, f, &format!("eval_raw_{l}"))?,
            tol::RAW_ABS,
        ));
    }
    decoded_checks("calibrated/eval_out", &out, get(&t, f, "eval_out")?, report);
    Ok(())
}

fn loss_config(fx: &Fixture) -> Result<LossConfig> {
    let l = fx.section(&fx.manifest.loss, "loss")?;
    Ok(LossConfig {
        box_gain: l.gains.box_gain,
        obj_gain: l.gains.obj,
        cls_gain: l.gains.cls,
        cls_pw: l.cls_pw,
        obj_pw: l.obj_pw,
        anchor_t: l.anchor_t,
        fl_gamma: l.fl_gamma,
        label_smoothing: l.label_smoothing,
        varifocal: false,
    })
}

fn loss_checks(fx: &Fixture, model: &Yolo, report: &mut ParityReport) -> Result<()> {
    let (Some(t), Some(fw)) = (fx.load("loss.safetensors")?, fx.load("forward.safetensors")?) else {
        report.skipped.push("loss.safetensors".into());
        return Ok(());
    };
    let f = "loss.safetensors";
    let loss = ComputeLoss::new(model, loss_config(fx)?);
    let preds: Vec<Tensor> = (0..3)
        .map(|l| get(&fw, "forward.safetensors", &format!("train_raw_{l}")).map(Tensor::shallow_clone))
        .collect::<Result<_>>()?;
    let targets = get(&t, f, "targets")?;
    let rows: Vec<f32> = Vec::try_from(targets.reshape(-1)).unwrap_or_default();
    let tv: Vec<[f32; 6]> = rows.chunks_exact(6).map(|r| [r[0], r[1], r[2], r[3], r[4], r[5]]).collect();
    let grids: Vec<(i64, i64)> = preds.iter().map(|p| (p.size()[2], p.size()[3])).collect();
    for (l, lt) in loss.build_targets(&grids, &tv).iter().enumerate() {
        for (key, got) in [("b", &lt.b), ("a", &lt.a), ("gj", &lt.gj), ("gi", &lt.gi), ("tcls", &lt.tcls)] {
            let want: Vec<i64> = Vec::try_from(get(&t, f, &format!("l{l}_{key}"))?).unwrap_or_default();
            let pass = &want == got;
            let diff = if pass { 0.0 } else { 1.0 };
            report.checks.push(Check {
                name: format!("build_targets/l{l}_{key} ({} matches)", got.len()),
                max_abs: diff,
                max_rel: diff,
                tolerance: "exact".into(),
                pass,
            });
        }
        let n = lt.len() as i64;
        let tbox = Tensor::from_slice(&lt.tbox.concat()).view([n, 4]);
        report.checks.push(close(
            &format!("build_targets/l{l}_tbox"),
            &tbox,
            get(&t, f, &format!("l{l}_tbox"))?,
            tol::TBOX_ABS,
        ));
        let anch = Tensor::from_slice(&lt.anch.concat()).view([n, 2]);
        report.checks.push(close(
            &format!("build_targets/l{l}_anch"),
            &anch,
            get(&t, f, &format!("l{l}_anch"))?,
            tol::TBOX_ABS,
        ));
    }
    let out = loss.forward(&preds, targets);
    let want_items = f64s(get(&t, f, "loss_items")?);
    report.checks.push(close_rel("loss/loss_items (lbox, lobj, lcls)", &out.items, &want_items, tol::LOSS_FIXTURE_REL));
    report.checks.push(close_rel(
        "loss/loss",
        &[out.total.double_value(&[])],
        &f64s(get(&t, f, "loss")?),
        tol::LOSS_FIXTURE_REL,
    ));
    Ok(())
}

fn nms_checks(fx: &Fixture, report: &mut ParityReport) -> Result<()> {
    let Some(t) = fx.load("nms.safetensors")? else {
        report.skipped.push("nms.safetensors".into());
        return Ok(());
    };
    let sources = [("cal", fx.load("forward_calibrated.safetensors")?), ("raw", fx.load("forward.safetensors")?)];
    let mut keys: Vec<&String> = t.keys().collect();
    keys.sort();
    for key in keys {
        let src = key.split('_').next().unwrap_or("");
        let Some((_, Some(input))) = sources.iter().find(|(s, _)| *s == src) else { continue };
        let img: i64 = key.rsplit("img").next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let absent = NmsKey::default();
        let k = fx.manifest.nms.keys.get(key).unwrap_or(&absent);
        // the README's settings (val.py's; `multilabel` in the key name means multi_label) where a key omits one
        let mut noted = |field: &str, value: String| report.defaults.push(format!("nms.keys.{key}.{field} = {value}"));
        let cfg = NmsConfig {
            conf_thres: k.conf_thres.unwrap_or_else(|| {
                noted("conf_thres", "0.001".into());
                0.001
            }) as f32,
            iou_thres: k.iou_thres.unwrap_or_else(|| {
                noted("iou_thres", "0.6".into());
                0.6
            }) as f32,
            max_det: k.max_det.unwrap_or_else(|| {
                noted("max_det", "300".into());
                300
            }),
            multi_label: k.multi_label.unwrap_or_else(|| {
                let m = key.contains("multilabel");
                noted("multi_label", m.to_string());
                m
            }),
            agnostic: k.agnostic.unwrap_or_else(|| {
                noted("agnostic", "false".into());
                false
            }),
            classes: None,
        };
        let eo = get(input, "eval_out", "eval_out")?.get(img).contiguous();
        let (n, no) = (eo.size()[0] as usize, eo.size()[1] as usize);
        let rows: Vec<f32> = Vec::try_from(eo.reshape(-1)).unwrap_or_default();
        let got = nms_image(&rows, n, no, &cfg);
        let want: Vec<f32> = Vec::try_from(t[key].reshape(-1)).unwrap_or_default();
        let want: Vec<[f32; 6]> = want.chunks_exact(6).map(|r| [r[0], r[1], r[2], r[3], r[4], r[5]]).collect();
        let check =
            if src == "cal" { nms_as_set(key, &got, &want) } else { nms_invariants(key, &got, &rows, no, &cfg) };
        report.checks.push(check);
    }
    Ok(())
}

/// Distinct confidences: the kept rows must be the same set.
fn nms_as_set(key: &str, got: &[crate::metrics::Detection], want: &[[f32; 6]]) -> Check {
    let mut used = vec![false; want.len()];
    let (mut max_box, mut max_conf, mut unmatched) = (0.0f64, 0.0f64, 0usize);
    for d in got {
        let best = want.iter().enumerate().filter(|(j, w)| !used[*j] && w[5] as usize == d.class).min_by(|a, b| {
            let da = (a.1[4] - d.conf).abs();
            let db = (b.1[4] - d.conf).abs();
            da.total_cmp(&db)
        });
        match best {
            Some((j, w)) => {
                used[j] = true;
                let db = (0..4).map(|k| (w[k] - d.xyxy[k]).abs() as f64).fold(0.0, f64::max);
                max_box = max_box.max(db);
                max_conf = max_conf.max((w[4] - d.conf).abs() as f64);
            }
            None => unmatched += 1,
        }
    }
    let pass = got.len() == want.len() && unmatched == 0 && max_box <= tol::NMS_BOX_PX && max_conf <= tol::NMS_CONF;
    Check {
        name: format!("nms/{key} ({} rows, as a set)", got.len()),
        max_abs: max_box.max(max_conf),
        max_rel: max_conf,
        tolerance: format!("box ≤ {:.0e} px, conf ≤ {:.0e}", tol::NMS_BOX_PX, tol::NMS_CONF),
        pass,
    }
}

/// Tied confidences: check the properties every tie order guarantees (fixture README §5).
fn nms_invariants(key: &str, got: &[crate::metrics::Detection], rows: &[f32], no: usize, cfg: &NmsConfig) -> Check {
    let mut bad = 0usize;
    // 1. every kept row is a candidate (a decoded row with conf = obj · cls)
    let cands: Vec<([f32; 4], f32, usize)> = rows
        .chunks_exact(no)
        .filter(|r| r[4] > cfg.conf_thres)
        .flat_map(|r| {
            let b = [r[0] - r[2] / 2.0, r[1] - r[3] / 2.0, r[0] + r[2] / 2.0, r[1] + r[3] / 2.0];
            let confs: Vec<(usize, f32)> = (0..no - 5).map(|c| (c, r[5 + c] * r[4])).collect();
            let classes: Vec<(usize, f32)> = if cfg.multi_label && no - 5 > 1 {
                confs
            } else {
                // best class only; the first maximum, as torch.max returns it
                let best = confs.iter().fold(confs[0], |m, &c| if c.1 > m.1 { c } else { m });
                vec![best]
            };
            classes.into_iter().map(move |(c, v)| (b, v, c))
        })
        .filter(|c| c.1 > cfg.conf_thres)
        .collect();
    for d in got {
        if !cands.iter().any(|c| c.2 == d.class && c.1 == d.conf && c.0 == d.xyxy) {
            bad += 1;
        }
    }
    // 2. sorted, at most max_det
    bad += got.windows(2).filter(|w| w[0].conf < w[1].conf).count() + usize::from(got.len() > cfg.max_det);
    // 3. no two kept rows of a class overlap above the threshold
    for (i, a) in got.iter().enumerate() {
        for b in &got[i + 1..] {
            if a.class == b.class && iou_xyxy(&a.xyxy, &b.xyxy) > cfg.iou_thres {
                bad += 1;
            }
        }
    }
    // 4. every dropped candidate is covered by a kept row at least as confident
    let floor = if got.len() == cfg.max_det { got.last().map(|d| d.conf).unwrap_or(0.0) } else { f32::MIN };
    for c in cands.iter().filter(|c| c.1 > floor) {
        let kept = got.iter().any(|d| d.class == c.2 && d.xyxy == c.0 && d.conf == c.1);
        if !kept && !got.iter().any(|d| d.class == c.2 && d.conf >= c.1 && iou_xyxy(&d.xyxy, &c.0) > cfg.iou_thres) {
            bad += 1;
        }
    }
    Check {
        name: format!("nms/{key} ({} rows, invariants)", got.len()),
        max_abs: bad as f64,
        max_rel: 0.0,
        tolerance: "4 tie-order invariants".into(),
        pass: bad == 0,
    }
}

/// One SGD step: the loss and raw gradients of the fixture's batch, then the step itself as the trainer
/// takes it ([`TrainStep::iteration`] after warmup, at an iteration where the accumulation is full).
fn sgd_checks(fx: &Fixture, fresh: &dyn Fn() -> Result<Yolo>, report: &mut ParityReport) -> Result<()> {
    let model = fresh()?;
    let Some(t) = fx.load("sgd_step.safetensors")? else {
        report.skipped.push("sgd_step.safetensors".into());
        return Ok(());
    };
    let f = "sgd_step.safetensors";
    let o = fx.section(&fx.manifest.optimizer, "optimizer")?;
    let (lr, momentum) = (o.lr, o.momentum);
    // the README's values (hyp weight_decay 5e-4 on group 1, train.py's clip at 10) where the manifest omits them
    let wd = o.groups.iter().find(|g| g.index == 1).and_then(|g| g.weight_decay).unwrap_or_else(|| {
        report.defaults.push("optimizer.groups[index 1].weight_decay = 0.0005".into());
        5e-4
    });
    let max_norm = o.gradient_clipping.as_ref().map(|c| c.max_norm).unwrap_or_else(|| {
        report.defaults.push(format!("optimizer.gradient_clipping.max_norm = {}", crate::optim::MAX_GRAD_NORM));
        crate::optim::MAX_GRAD_NORM
    });
    let images = get(&t, f, "images_uint8")?.to_kind(Kind::Float) / 255.0;
    let targets = get(&t, f, "targets")?;
    let loss = ComputeLoss::new(&model, loss_config(fx)?);
    let out = loss.forward(&model.forward_t(&images, true), targets);
    report.checks.push(close_rel(
        "sgd_step/loss",
        &[out.total.double_value(&[])],
        &f64s(get(&t, f, "loss")?),
        tol::LOSS_OWN_REL,
    ));
    report.checks.push(close_rel(
        "sgd_step/loss_items",
        &out.items,
        &f64s(get(&t, f, "loss_items")?),
        tol::LOSS_OWN_REL,
    ));
    out.total.backward();
    let vars = model.vs.variables();
    let (mut worst, mut worst_name, mut failed) = (0.0f64, String::new(), 0);
    let mut grad_keys: Vec<&String> = t.keys().filter(|k| k.starts_with("grad.")).collect();
    grad_keys.sort();
    for k in &grad_keys {
        let name = &k[5..];
        let Some(v) = vars.get(name) else {
            failed += 1;
            continue;
        };
        let (g, r) = (f64s(&v.grad()), f64s(&t[*k]));
        let d: Vec<f64> = g.iter().zip(&r).map(|(a, b)| a - b).collect();
        let max_d = d.iter().map(|x| x.abs()).fold(0.0, f64::max);
        let max_r = r.iter().map(|x| x.abs()).fold(0.0, f64::max);
        let norm_d = d.iter().map(|x| x * x).sum::<f64>().sqrt();
        let norm_r = r.iter().map(|x| x * x).sum::<f64>().sqrt();
        let ok = g.len() == r.len()
            && max_d <= tol::GRAD_REL * max_r + tol::GRAD_ABS
            && norm_d <= tol::GRAD_REL * norm_r + 1e-12;
        failed += usize::from(!ok);
        let rel = max_d / (max_r + 1e-30);
        if rel > worst {
            (worst, worst_name) = (rel, name.to_string());
        }
    }
    report.checks.push(Check {
        name: format!("sgd_step/gradients ({} tensors; worst {worst_name})", grad_keys.len()),
        max_abs: failed as f64,
        max_rel: worst,
        tolerance: "max|Δ| ≤ 1e-2·max|g|+1e-6, ‖Δ‖ ≤ 1e-2·‖g‖".into(),
        pass: failed == 0 && !grad_keys.is_empty(),
    });
    // the trainer's step on a fresh copy: past warmup, accumulation full (batch 16: 4 batches, weight decay
    // scaled by 16·4/64 = 1), the fixture's learning rate and momentum
    report.checks.push(Check {
        name: "sgd_step/clipping max-norm is the trainer's".into(),
        max_abs: (max_norm - crate::optim::MAX_GRAD_NORM).abs(),
        max_rel: 0.0,
        tolerance: "exact".into(),
        pass: max_norm == crate::optim::MAX_GRAD_NORM,
    });
    let trained = fresh()?;
    let step_loss = ComputeLoss::new(&trained, loss_config(fx)?);
    let mut hyp = crate::hyp::Hyp::default();
    (hyp.lr0, hyp.momentum, hyp.weight_decay) = (lr, momentum, wd);
    let schedule = StepSchedule {
        epochs: 1,
        batches_per_epoch: 1,
        batch: 16,
        cos_lr: false,
        sam: false,
        amp: false,
        channels_last: false, // YOLOv5's layout: its gradients are matched to 1e-4
    };
    let mut step = TrainStep::new(trained, &hyp, step_loss, crate::optim::OptimizerKind::Sgd, schedule)?;
    const NI: usize = 1000;
    debug_assert!(NI > step.warmup_iterations());
    for g in &mut step.opt.groups {
        (g.lr, g.momentum) = (lr, momentum);
    }
    step.last_opt_step = (NI - 4) as i64;
    let total = step.iteration(NI, 0, 1.0, &images, targets).grad_norm.unwrap_or(f64::NAN);
    let want_norm = fx.section(&fx.manifest.sgd_step, "sgd_step")?.grad_global_norm_preclip;
    report.checks.push(close_rel("sgd_step/global grad norm", &[total], &[want_norm], tol::GRAD_NORM_REL));
    let vars = step.model.vs.variables();
    let (mut max_p, mut max_bn, mut bad) = (0.0f64, 0.0f64, 0usize);
    let mut n = 0;
    for (k, want) in t.iter().filter(|(k, _)| k.starts_with("state.")) {
        let name = &k[6..];
        let Some(v) = vars.get(name) else {
            bad += 1;
            continue;
        };
        n += 1;
        let (g, w) = (f64s(v), f64s(want));
        if crate::model::is_buffer(name) {
            for (a, b) in g.iter().zip(&w) {
                let d = (a - b).abs();
                max_bn = max_bn.max(d);
                bad += usize::from(d > tol::SGD_BN_REL * b.abs() + tol::SGD_BN_ABS);
            }
        } else {
            let d = g.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            max_p = max_p.max(d);
            bad += usize::from(d > tol::SGD_PARAM_ABS);
        }
    }
    report.checks.push(Check {
        name: format!("sgd_step/parameters after step ({n} tensors)"),
        max_abs: max_p,
        max_rel: 0.0,
        tolerance: format!("abs ≤ {:.0e}", tol::SGD_PARAM_ABS),
        pass: bad == 0 && max_p <= tol::SGD_PARAM_ABS && n > 0,
    });
    report.checks.push(Check {
        name: "sgd_step/BN buffers after step".into(),
        max_abs: max_bn,
        max_rel: 0.0,
        tolerance: "rel 1e-4 + abs 1e-6".into(),
        pass: bad == 0 && n > 0,
    });
    Ok(())
}

fn ap_checks(fx: &Fixture, report: &mut ParityReport) -> Result<()> {
    let Some(t) = fx.load("ap_per_class.safetensors")? else {
        report.skipped.push("ap_per_class.safetensors".into());
        return Ok(());
    };
    let f = "ap_per_class.safetensors";
    let tp_raw: Vec<u8> = Vec::try_from(get(&t, f, "tp")?.to_kind(Kind::Uint8).reshape(-1)).unwrap_or_default();
    let tp: Vec<[bool; 10]> = tp_raw.chunks_exact(10).map(|c| std::array::from_fn(|k| c[k] != 0)).collect();
    let conf = f64s(get(&t, f, "conf")?);
    let pred: Vec<usize> = f64s(get(&t, f, "pred_cls")?).iter().map(|&v| v as usize).collect();
    let target: Vec<usize> = f64s(get(&t, f, "target_cls")?).iter().map(|&v| v as usize).collect();
    let r = ap_per_class(&tp, &conf, &pred, &target);
    let t1 = |v: Vec<f64>| Tensor::from_slice(&v);
    for (key, got) in [
        ("out_tp", r.tp.clone()),
        ("out_fp", r.fp.clone()),
        ("out_p", r.p.clone()),
        ("out_r", r.r.clone()),
        ("out_f1", r.f1.clone()),
        ("ap50", r.ap50()),
        ("ap", r.ap50_95()),
    ] {
        report.checks.push(close(
            &format!("ap_per_class/{key}"),
            &t1(got),
            &get(&t, f, key)?.to_kind(Kind::Double),
            tol::AP_ABS,
        ));
    }
    let ap: Vec<f64> = r.ap.iter().flatten().copied().collect();
    report.checks.push(close(
        "ap_per_class/out_ap [classes, 10]",
        &t1(ap).view([-1, 10]),
        &get(&t, f, "out_ap")?.to_kind(Kind::Double),
        tol::AP_ABS,
    ));
    let classes: Vec<f64> = r.classes.iter().map(|&c| c as f64).collect();
    report.checks.push(close(
        "ap_per_class/out_unique_classes",
        &t1(classes),
        &get(&t, f, "out_unique_classes")?.to_kind(Kind::Double),
        0.0,
    ));
    let [mp, mr, map50, map] = r.means();
    for (key, v) in [("mp", mp), ("mr", mr), ("map50", map50), ("map", map)] {
        report.checks.push(close(
            &format!("ap_per_class/{key}"),
            &Tensor::from_slice(&[v]),
            &get(&t, f, key)?.to_kind(Kind::Double),
            tol::AP_ABS,
        ));
    }
    let rows = f64s(get(&t, f, "fitness_rows")?);
    let fit: Vec<f64> = rows.chunks(7).map(fitness).collect();
    report.checks.push(close("fitness", &t1(fit), &get(&t, f, "fitness_out")?.to_kind(Kind::Double), tol::AP_ABS));
    Ok(())
}
