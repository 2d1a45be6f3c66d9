//! Post-processing checks: NMS (as a set, or by its invariants when confidences tie) and AP per class.

use super::*;

pub(super) fn nms_checks(fx: &Fixture, report: &mut ParityReport) -> Result<()> {
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
pub(super) fn nms_as_set(key: &str, got: &[crate::metrics::Detection], want: &[[f32; 6]]) -> Check {
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
pub(super) fn nms_invariants(
    key: &str,
    got: &[crate::metrics::Detection],
    rows: &[f32],
    no: usize,
    cfg: &NmsConfig,
) -> Check {
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

pub(super) fn ap_checks(fx: &Fixture, report: &mut ParityReport) -> Result<()> {
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
