//! Model checks: raw and decoded forward outputs (plain and BatchNorm-calibrated) and the loss with its
//! gradients.

use super::*;

pub(super) fn forward_checks(fx: &Fixture, model: &Yolo, report: &mut ParityReport) -> Result<()> {
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

pub(super) fn decoded_checks(name: &str, got: &Tensor, want: &Tensor, report: &mut ParityReport) {
    let no = want.size()[2];
    report.checks.push(close(&format!("{name} xywh px"), &got.narrow(2, 0, 4), &want.narrow(2, 0, 4), tol::XYWH_PX));
    report.checks.push(close(
        &format!("{name} probabilities"),
        &got.narrow(2, 4, no - 4),
        &want.narrow(2, 4, no - 4),
        tol::PROB_ABS,
    ));
}

pub(super) fn calibrated_checks(fx: &Fixture, model: Yolo, report: &mut ParityReport) -> Result<()> {
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

pub(super) fn loss_config(fx: &Fixture) -> Result<LossConfig> {
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

pub(super) fn loss_checks(fx: &Fixture, model: &Yolo, report: &mut ParityReport) -> Result<()> {
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
