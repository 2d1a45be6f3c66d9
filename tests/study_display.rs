//! The freeze study (train, then load instead of retrain) and the notebook displays.

use yolo_lab::prelude::*;

#[test]
fn freeze_study_trains_then_loads() {
    let dir = tempfile::tempdir().unwrap();
    let base = Trainer::new()
        .data("shapes-tiny")
        .imgsz(64)
        .batch(8)
        .epochs(1)
        .workers(1)
        .device("cpu")
        .progress(ProgressMode::Quiet);
    let study = FreezeStudy::new(base).variants([Freeze::None, Freeze::Backbone]).dir(dir.path().join("study"));
    let r = study.run().unwrap();
    assert_eq!(r.variants.len(), 2);
    assert!(r.variants.iter().all(|v| !v.loaded));
    assert!(
        r.variants[1].summary.trainable < r.variants[0].summary.trainable,
        "freezing leaves fewer trainable parameters"
    );
    let (head, rows) = r.table();
    assert_eq!(head[0], "variant");
    assert_eq!(rows[1][0], "freeze-backbone");
    assert!(!r.has_gpu());
    let html = r.to_html().unwrap();
    assert_eq!(html.matches("<img src=\"data:image/png;base64,").count(), 4, "two mAP figures, two telemetry figures");
    assert!(html.contains("No NVML on this machine"));
    let again = study.run().unwrap();
    assert!(again.variants.iter().all(|v| v.loaded), "finished variants are loaded, not retrained");
    assert_eq!(again.variants[0].rows.len(), 1);
}

/// Issue 15.3: the study compares frozen BatchNorms and unfreezing schedules beside plain freezing.
#[test]
fn freeze_study_compares_frozen_batchnorms_and_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let base = Trainer::new().data("shapes-tiny").imgsz(64).batch(8).epochs(2).workers(1).device("cpu");
    let variants = [
        Variant::from(Freeze::Backbone),
        Variant::from(Freeze::Backbone).with_frozen_bn(),
        Variant::schedule("unfreeze-at-1", FreezeSchedule::unfreeze_at(Freeze::Backbone, 1, 1)),
        Variant::schedule("gradual", FreezeSchedule::gradual(10, 5, 1, 1)),
    ];
    let r = FreezeStudy::new(base.clone()).variants(variants.clone()).dir(dir.path().join("s")).run().unwrap();
    let (_, rows) = r.table();
    let labels: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(labels, ["freeze-backbone", "freeze-backbone-bn-fixed", "unfreeze-at-1", "gradual"]);
    let epochs: Vec<usize> = r.variants.iter().map(|v| v.rows.len()).collect();
    assert_eq!(epochs, [2, 2, 2, 3], "a schedule trains its own epochs");
    let opt = |v: usize| std::fs::read_to_string(r.variants[v].dir.join("opt.yaml")).unwrap();
    assert!(opt(1).contains("freeze_bn: true") && opt(0).contains("freeze_bn: false"));
    // a schedule ends with everything trainable, plain freezing does not
    assert!(r.variants[2].summary.frozen == 0 && r.variants[0].summary.frozen > 0);
    let twice = FreezeStudy::new(base).variants([variants[0].clone(), variants[0].clone()]);
    assert!(twice.run().unwrap_err().to_string().contains("two variants are labelled `freeze-backbone`"));
}

#[test]
fn displays_emit_evcxr_blocks() {
    let m = Yolo::new("yolov5n", Some(3), tch::Device::Cpu).unwrap();
    let html = m.summary(320).to_html();
    assert!(
        html.starts_with("<table") && html.contains("YOLOv5n summary: 125 layers, 1,767,976 parameters"),
        "{}",
        &html[..200]
    );
    let df = yolo_lab::polars::prelude::df!("a" => [1.5f64, 2.0], "b" => ["x", "y"]).unwrap();
    let t = yolo_lab::display::df_to_html(&df, "cap");
    assert!(t.contains("<th style=\"text-align:right;padding:2px 8px;border-bottom:1px solid #999\">a</th>"));
    assert!(t.contains(">1.5</td>") && t.contains(">y</td>"));
    let fig = yolo_lab::plots::plot_schedule(&Hyp::default(), 10, 16, false).unwrap();
    assert!(fig.png.starts_with(b"\x89PNG") && fig.width == 800);
    let decoded = image::load_from_memory(&fig.png).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (fig.width, fig.height));
    // best deflate level: ~25 KB (the fast default gave ~119 KB), which matters for notebooks stored on GitHub
    assert!(fig.png.len() < 60_000, "{} bytes", fig.png.len());
    assert!(fig.to_html().starts_with("<img src=\"data:image/png;base64,iVBOR"));
}

/// Issue 16.2: candidates trained with the same seeds, paired; finished trainings reused, a folder trained
/// with other hyperparameters refused rather than overwritten.
#[test]
fn seed_comparison_pairs_seeds_reuses_trainings_and_refuses_a_foreign_folder() {
    let dir = tempfile::tempdir().unwrap();
    let base = Trainer::new().data("shapes-tiny").imgsz(64).batch(8).epochs(1).workers(1).device("cpu");
    let mut other = Hyp::load("scratch-low").unwrap();
    other.set("lr0", 0.03).unwrap();
    let cmp = SeedComparison::new(base.clone())
        .candidate("base", "scratch-low")
        .candidate("lr0.03", &other)
        .seeds([0, 1])
        .dir(dir.path().join("cmp"));
    let r = cmp.run().unwrap();
    assert_eq!(r.trials.len(), 4);
    assert!(r.trials.iter().all(|t| !t.loaded && t.fitness.is_finite()));
    assert!(dir.path().join("cmp/lr0.03/seed1/results.csv").is_file());
    let d = r.difference("lr0.03").unwrap();
    let f = |l| r.fitness_of(l);
    assert!((d.mean - ((f("lr0.03")[0] - f("base")[0]) + (f("lr0.03")[1] - f("base")[1])) / 2.0).abs() < 1e-12);
    assert!(d.low <= d.mean && d.mean <= d.high);
    assert_eq!(r.df().unwrap().height(), 4);
    assert!(r.plot().unwrap().png.len() > 1000);
    assert!(r.to_string().contains("lr0.03 − base"), "{r}");
    let again = cmp.run().unwrap();
    assert!(again.trials.iter().all(|t| t.loaded), "finished trainings are loaded");
    assert_eq!(again.fitness_of("lr0.03"), r.fitness_of("lr0.03"));
    // a longer schedule is another scenario: the one-epoch trainings are not reused for it
    let longer = SeedComparison::new(base.clone().epochs(2)).candidate("base", "scratch-low").seeds([0, 1]);
    let l = longer.dir(dir.path().join("cmp")).run().unwrap();
    assert!(l.trials.iter().all(|t| !t.loaded), "trained again with 2 epochs");
    // the same folder claimed by other hyperparameters under the same label
    let clash = SeedComparison::new(base).candidate("base", &other).seeds([0, 1]).dir(dir.path().join("cmp"));
    let e = clash.run().unwrap_err().to_string();
    assert!(e.contains("other hyperparameters") && e.contains("seed0"), "{e}");
    let one = SeedComparison::new(Trainer::new()).candidate("base", "scratch-low").seeds([0]);
    assert!(one.run().unwrap_err().to_string().contains("at least two"));
}
