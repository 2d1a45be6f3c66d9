//! The SGD step check, which runs the trainer's own step.

use super::*;

/// One SGD step: the loss and raw gradients of the fixture's batch, then the step itself as the trainer
/// takes it ([`TrainStep::iteration`] after warmup, at an iteration where the accumulation is full).
pub(super) fn sgd_checks(fx: &Fixture, fresh: &dyn Fn() -> Result<Yolo>, report: &mut ParityReport) -> Result<()> {
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
