//! The evolver: GA rules, evolve.csv and hyp_evolve.yaml formats (oracle: shared spec §3 and the YOLOv5-written
//! sample in shared/data/yolov5-evolve-sample), concurrency, crash recovery, and a tiny end-to-end run.

mod common;
use common::generations;

use std::path::{Path, PathBuf};
use yolo_lab::evolve::csv;
use yolo_lab::prelude::*;

fn sample_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/yolov5-evolve-sample");
    if d.join("evolve.csv").is_file() {
        Some(d)
    } else {
        eprintln!("*** shared/data/yolov5-evolve-sample not found: YOLOv5 sample checks SKIPPED ***");
        None
    }
}

fn yolov5_fitness(r: &[f64; 7]) -> f64 {
    yolo_lab::metrics::fitness(&r[..4])
}

#[test]
fn header_and_row_match_yolov5_bytes() {
    // spec §3.1: the default header and the first (un-mutated) row
    let header = "   metrics/precision,      metrics/recall,     metrics/mAP_0.5,metrics/mAP_0.5:0.95,        val/box_loss,        val/obj_loss,        val/cls_loss,                 lr0,                 lrf,            momentum,        weight_decay,       warmup_epochs,     warmup_momentum,      warmup_bias_lr,                 box,                 cls,              cls_pw,                 obj,              obj_pw,               iou_t,            anchor_t,            fl_gamma,               hsv_h,               hsv_s,               hsv_v,             degrees,           translate,               scale,               shear,         perspective,              flipud,              fliplr,              mosaic,               mixup,          copy_paste,             anchors";
    let row = "             0.54634,             0.55625,             0.58201,             0.33665,            0.056451,            0.042892,            0.013441,                0.01,                0.01,               0.937,              0.0005,                   3,                 0.8,                 0.1,                0.05,                 0.5,                   1,                   1,                   1,                 0.2,                   4,                   0,               0.015,                 0.7,                 0.4,                   0,                 0.1,                 0.5,                   0,                   0,                   0,                 0.5,                   1,                   0,                   0,                   3";
    let mut h = Hyp::default();
    h.set("anchors", 3.0).unwrap();
    let keys: Vec<&str> = h.keys().collect();
    assert_eq!(csv::header(&keys), header);
    let mut values = vec![0.54634, 0.55625, 0.58201, 0.33665, 0.056451, 0.042892, 0.013441];
    values.extend(h.iter().map(|(_, v)| v));
    assert_eq!(csv::row_line(&values), row);
    // and through append
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evolve.csv");
    let lock = csv::lock(dir.path()).unwrap();
    let pairs: Vec<(String, f64)> = h.iter().map(|(k, v)| (k.to_string(), v)).collect();
    csv::append(&p, &lock, &[0.54634, 0.55625, 0.58201, 0.33665, 0.056451, 0.042892, 0.013441], &pairs).unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{header}\n{row}\n"));
}

#[test]
fn reads_the_yolov5_sample_and_rewrites_its_hyp_evolve_yaml() {
    let Some(d) = sample_dir() else { return };
    let t = csv::read(&d.join("evolve.csv")).unwrap();
    assert_eq!((t.rows.len(), t.columns.len()), (150, 35));
    assert_eq!(t.hyp_columns().len(), 28);
    let ours = csv::hyp_evolve_yaml(&t, &yolov5_fitness).unwrap();
    let theirs = std::fs::read_to_string(d.join("hyp_evolve.yaml")).unwrap();
    assert_eq!(ours, theirs, "hyp_evolve.yaml byte for byte");
    let r = EvolveResults::load(d.join("evolve.csv")).unwrap();
    assert_eq!(r.best_row(), 17);
    let df = r.df().unwrap();
    assert_eq!(df.shape(), (150, 37));
    assert!(df.get_column_names().iter().any(|c| c.as_str() == "metrics/mAP_0.5:0.95"));
    assert_eq!(r.hyp(17).unwrap().hsv_h, 0.022446);
    let s = r.summary().unwrap();
    assert_eq!(s.height(), 28);
    let imp = r.importance().unwrap();
    assert_eq!(imp.height(), 28);
    assert_eq!(r.top(5).unwrap().height(), 5);
    let out = tempfile::tempdir().unwrap();
    r.save_best_yaml(out.path().join("best.yaml")).unwrap();
    assert_eq!(std::fs::read_to_string(out.path().join("best.yaml")).unwrap(), theirs);
    let fig = r.plot_evolve().unwrap();
    assert!(fig.png.starts_with(b"\x89PNG"));
}

#[test]
fn concurrent_appends_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evolve.csv");
    let h = Hyp::default();
    let pairs: Vec<(String, f64)> = h.iter().map(|(k, v)| (k.to_string(), v)).collect();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (p, pairs, dir) = (&p, &pairs, dir.path());
            s.spawn(move || {
                for i in 0..50 {
                    let lock = csv::lock(dir).unwrap();
                    let v = (t * 1000 + i) as f64;
                    csv::append(p, &lock, &[v, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], pairs).unwrap();
                }
            });
        }
    });
    let table = csv::read(&p).unwrap();
    assert_eq!(table.rows.len(), 400);
    let mut ids: Vec<i64> = table.rows.iter().map(|r| r[0] as i64).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 400, "every row written once");
    assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 401, "one header");
}

#[test]
fn a_truncated_last_line_is_ignored_then_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evolve.csv");
    let h = Hyp::default();
    let pairs: Vec<(String, f64)> = h.iter().map(|(k, v)| (k.to_string(), v)).collect();
    {
        let lock = csv::lock(dir.path()).unwrap();
        for i in 0..3 {
            csv::append(&p, &lock, &[i as f64, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], &pairs).unwrap();
        }
    }
    let full = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, &full[..full.len() - 40]).unwrap(); // a crash in the middle of the last row
    assert_eq!(csv::read(&p).unwrap().rows.len(), 2);
    assert_eq!(EvolveResults::load(&p).unwrap().len(), 2);
    let lock = csv::lock(dir.path()).unwrap();
    csv::append(&p, &lock, &[9.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], &pairs).unwrap();
    let t = csv::read(&p).unwrap();
    assert_eq!(t.rows.iter().map(|r| r[0]).collect::<Vec<_>>(), vec![0.0, 1.0, 9.0]);
}

fn base(dir: &Path) -> Evolver {
    let t = Trainer::new().data("shapes-tiny").imgsz(64).batch(8).epochs(1).workers(1).device("cpu");
    Evolver::new(t).project(dir).seed(1)
}

/// Three generations end to end (yolov5n, 64 px, 8 images, 1 epoch), then a resume that continues to 4.
#[test]
fn evolution_end_to_end_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let run = base(dir.path()).generations(3).run().unwrap();
    assert_eq!(run.rows, 3);
    for f in ["evolve.csv", "hyp_evolve.yaml", "generations.csv"] {
        assert!(run.dir.join(f).is_file(), "{f}");
    }
    assert!(!run.dir.join("evolve.png").exists(), "the evolver draws nothing (the CLI and notebooks do)");
    run.results().unwrap().plot_evolve().unwrap().save(run.dir.join("evolve.png")).unwrap();
    assert!(!run.dir.join("weights").exists(), "no checkpoints while evolving");
    let t = csv::read(&run.dir.join("evolve.csv")).unwrap();
    assert_eq!(t.columns.len(), 36);
    assert_eq!(t.columns.last().unwrap(), "anchors");
    let gens = std::fs::read_to_string(run.dir.join("generations.csv")).unwrap();
    assert_eq!(gens.lines().count(), 4);
    let best = run.best_hyp().unwrap();
    assert!(best.anchors.is_some());
    // resume: generations is the total to reach, so 4 adds one row
    let again = base(dir.path()).generations(4).name("exp").resume().run().unwrap();
    assert_eq!((again.rows, again.dir.clone()), (4, run.dir.clone()));
    // a fresh run goes to a new folder
    assert!(base(dir.path()).generations(0).run().is_err());
}

#[test]
fn two_workers_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = base(dir.path()).generations(4).workers(2).run().unwrap();
    assert_eq!(run.rows, 4);
    let gens = std::fs::read_to_string(run.dir.join("generations.csv")).unwrap();
    let workers: std::collections::BTreeSet<&str> =
        gens.lines().skip(1).map(|l| l.split(',').nth(3).unwrap()).collect();
    assert_eq!(workers.len(), 2, "{gens}");
}

#[test]
fn population_ga_runs_generations_of_individuals() {
    let dir = tempfile::tempdir().unwrap();
    let s = PopulationSettings { size: 3, ..Default::default() };
    let run = base(dir.path()).algorithm(Ga::Population(s)).generations(2).run().unwrap();
    assert_eq!(run.rows, 6);
    assert!(run.dir.join("evolve_population.yaml").is_file());
}

/// Issue 10.3 and 10.5: a population of 1 panicked in the GA, 0 exited 0 recommending a file never written.
#[test]
fn populations_too_small_to_breed_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for size in [0, 1] {
        let s = PopulationSettings { size, ..Default::default() };
        let e = base(dir.path()).algorithm(Ga::Population(s)).generations(1).run().unwrap_err().to_string();
        assert!(e.contains("population") && e.contains("at least 2"), "{e}");
    }
    assert!(!dir.path().join("exp").exists(), "nothing was created");
    // (the GA itself on a degenerate population: evolve::ga's unit tests)
}

/// Issue 10.3 and 10.5: a header-only evolve.csv cannot be plotted (it panicked), and a row whose fitness is
/// not a number is never the best, in the summary and in hyp_evolve.yaml alike.
#[test]
fn empty_and_nan_evolve_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evolve.csv");
    std::fs::write(&p, csv::header(&["lr0"]) + "\n").unwrap();
    let r = EvolveResults::load(&p).unwrap();
    for e in
        [r.plot_evolve().err(), r.plot_fitness_history().err(), r.plot_parallel(3).err(), r.plot_importance().err()]
    {
        let e = e.expect("an error, not a figure").to_string();
        assert!(e.contains("evolve.csv") && e.contains("no complete rows"), "{e}");
    }
    let rows = [[0.1, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, 0.01], [f64::NAN; 8], [0.2, 0.2, 0.2, 0.2, 0.0, 0.0, 0.0, 0.02]];
    let text: String = rows.iter().map(|r| csv::row_line(r) + "\n").collect();
    std::fs::write(&p, csv::header(&["lr0"]) + "\n" + &text).unwrap();
    let r = EvolveResults::load(&p).unwrap();
    assert_eq!(r.best_row(), 2);
    let yaml = csv::hyp_evolve_yaml(&csv::read(&p).unwrap(), &yolov5_fitness).unwrap();
    assert!(yaml.contains("# Best generation: 2"), "{yaml}");
}

/// Issue 10.5: a torn last row of evolve.csv (a worker killed mid-write) is dropped with a notice, and the
/// generations.csv line of the row that replaces it says so.
#[test]
fn a_torn_row_is_dropped_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let run = base(dir.path()).generations(1).run().unwrap();
    let p = run.dir.join("evolve.csv");
    let mut text = std::fs::read_to_string(&p).unwrap();
    let last = text.lines().last().unwrap().to_string();
    text.push_str(&last[..last.len() / 2]);
    std::fs::write(&p, text).unwrap();
    let again = base(dir.path()).generations(2).name("exp").resume().run().unwrap();
    assert_eq!(again.rows, 2);
    let gens = std::fs::read_to_string(run.dir.join("generations.csv")).unwrap();
    assert!(gens.lines().last().unwrap().contains("torn last row"), "{gens}");
}

/// Issue 14.1: successive halving stops generations at their rungs (recorded in generations.csv and
/// rungs.csv), so the evolution trains fewer epochs than the same one unpruned; a resume continues the rungs
/// with the evolution's own pruner.
#[test]
fn pruned_evolution_trains_fewer_epochs_and_resumes_its_rungs() {
    let dir = tempfile::tempdir().unwrap();
    let three = |name: &str| {
        let t = Trainer::new().data("shapes-tiny").imgsz(64).batch(8).epochs(3).workers(1).device("cpu");
        Evolver::new(t).project(dir.path()).name(name).seed(1)
    };
    let sha = Pruner::SuccessiveHalving { min_epochs: 1, reduction: 3 };
    let pruned = three("sha").prune(sha).generations(5).run().unwrap();
    let full = three("full").generations(5).run().unwrap();
    let epochs = |d: &Path| generations(d).iter().map(|g| g["epochs"].parse::<usize>().unwrap()).sum::<usize>();
    let (pe, fe) = (epochs(&pruned.dir), epochs(&full.dir));
    assert_eq!(fe, 15, "unpruned: 5 generations of 3 epochs");
    assert!(pe < fe, "pruned {pe} epochs vs {fe}");
    let gens = generations(&pruned.dir);
    let stopped: Vec<&std::collections::HashMap<String, String>> =
        gens.iter().filter(|g| !g["pruned_at_epoch"].is_empty()).collect();
    assert!(!stopped.is_empty());
    for g in &stopped {
        assert_eq!(g["pruned_at_epoch"], "0", "the only rung of 3 epochs at reduction 3 is after epoch 0");
        assert_eq!(g["epochs"], "1");
        assert!(g["note"].contains("pruned at epoch 0"), "{g:?}");
    }
    assert!(generations(&full.dir).iter().all(|g| g["pruned_at_epoch"].is_empty()));
    let table = pruned.results().unwrap().pruning().unwrap();
    assert_eq!(table.height(), 5);
    assert_eq!(table.column("pruned_at_epoch").unwrap().null_count(), 5 - stopped.len());
    let rungs = std::fs::read_to_string(pruned.dir.join("rungs.csv")).unwrap();
    assert_eq!(rungs.lines().count(), 6, "one measurement per generation at epoch 0:\n{rungs}");
    // resumed without --prune: the evolution's own pruner judges the new generations against the old rungs
    let more = three("sha").generations(7).resume().run().unwrap();
    assert_eq!(more.rows, 7);
    let rungs = std::fs::read_to_string(pruned.dir.join("rungs.csv")).unwrap();
    assert_eq!(rungs.lines().count(), 8, "{rungs}");
    assert_eq!(std::fs::read_to_string(pruned.dir.join("pruner.txt")).unwrap().trim(), "sha:1:3");
}

/// Issue 14.4: a failure is retried once with another seed; a generation failing twice is recorded with its
/// note and the metrics of its last completed validation, and --max-failures stops the evolution.
#[test]
fn failed_generations_are_retried_then_recorded_with_partial_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let two = || {
        let t = Trainer::new().data("shapes-tiny").imgsz(64).batch(8).epochs(2).workers(1).device("cpu");
        Evolver::new(t).project(dir.path()).seed(1)
    };
    // one injected failure: generation 0 succeeds on its retry
    let run = two().name("once").generations(1).inject_failures(1, "boom").run().unwrap();
    let g = &generations(&run.dir)[0];
    assert!(g["note"].contains("attempt 1 (seed 0) failed: training aborted at epoch 0: boom"), "{g:?}");
    assert!(g["note"].contains("retried with seed 1000"), "{g:?}");
    assert_eq!(g["epochs"], "2");
    // two: both attempts fail; the row keeps the epoch-0 validation, and a budget of 0 failures stops the run
    let err = two()
        .name("twice")
        .generations(3)
        .max_failures(0)
        .inject_failures(2, "CUDA out of memory (injected)")
        .run()
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_failures") && err.contains("1 generations failed"), "{err}");
    let d = dir.path().join("twice");
    let g = &generations(&d)[0];
    assert!(g["note"].contains("batch halved to 4"), "{g:?}");
    assert!(g["note"].contains("metrics of the last completed validation (epoch 0) kept"), "{g:?}");
    assert_eq!(g["epochs"], "1");
    let t = csv::read(&d.join("evolve.csv")).unwrap();
    assert_eq!(t.rows.len(), 1, "the failed generation's row is recorded before the run stops");
    let losses = &t.results(0)[4..];
    assert!(losses.iter().all(|x| *x > 0.0), "partial validation losses, not zeros: {losses:?}");
}

/// Issue 14.2: the fidelity check retrains the best rows and random ones with the full schedule and ranks both.
#[test]
fn fidelity_retrains_top_and_random_rows_with_the_full_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let run = base(dir.path()).generations(4).run().unwrap();
    let results = run.results().unwrap();
    let full = Trainer::new()
        .data("shapes-tiny")
        .imgsz(64)
        .batch(8)
        .epochs(2)
        .workers(1)
        .device("cpu")
        .project(dir.path().join("fidelity"))
        .progress(ProgressMode::Silent);
    let f = results.fidelity(&full, 2, 0).unwrap();
    assert_eq!(f.rows.len(), 4);
    assert_eq!(f.rows.iter().filter(|r| r.chosen == "top").count(), 2);
    assert_eq!(f.rows[0].row, results.best_row());
    let rows: std::collections::BTreeSet<usize> = f.rows.iter().map(|r| r.row).collect();
    assert_eq!(rows.len(), 4, "every row retrained once");
    for r in &f.rows {
        assert_eq!(r.short, results.fitness()[r.row]);
        assert!(r.full.is_finite() && r.full >= 0.0);
        assert!(dir.path().join(format!("fidelity/fidelity-row{}", r.row)).join("results.csv").is_file());
    }
    assert!((-1.0..=1.0).contains(&f.rho));
    assert_eq!(f.full_epochs, 2);
    assert!(f.to_string().contains("Spearman's rho"), "{f}");
    assert_eq!(f.df().unwrap().height(), 4);
}

/// Issue 14.3: re-evaluation trains the base hyperparameters and each new best candidate again with other
/// seeds; the repeats are rows linked by `repeat_of`, and the results report each candidate's mean ± SE and
/// the base's run-to-run noise.
#[test]
fn re_evaluations_link_to_their_candidate_and_measure_the_noise() {
    let dir = tempfile::tempdir().unwrap();
    // with a pruner too: re-evaluations measure noise, so they train to the end
    let sha = Pruner::SuccessiveHalving { min_epochs: 1, reduction: 3 };
    let t = Trainer::new().data("shapes-tiny").imgsz(64).batch(8).epochs(2).workers(1).device("cpu");
    let run = Evolver::new(t).project(dir.path()).seed(1).prune(sha).generations(6).reevaluate(2).run().unwrap();
    assert_eq!(run.rows, 6);
    let gens = generations(&run.dir);
    let repeats: Vec<(usize, usize)> = gens
        .iter()
        .filter(|g| !g["repeat_of"].is_empty())
        .map(|g| (g["row"].parse().unwrap(), g["repeat_of"].parse().unwrap()))
        .collect();
    assert_eq!(&repeats[..2], &[(1, 0), (2, 0)], "generation 0 is repeated first: {repeats:?}");
    for (r, c) in &repeats {
        assert!(c < r);
        assert_eq!(gens[*r]["pruned_at_epoch"], "", "repeat row {r} was pruned");
        assert_eq!(gens[*r]["epochs"], "2");
        assert!(repeats.iter().all(|(x, _)| x != c), "a repeat repeats a candidate, not another repeat");
        // the same hyperparameters as the candidate
        let t = csv::read(&run.dir.join("evolve.csv")).unwrap();
        assert_eq!(t.rows[*r][7..], t.rows[*c][7..]);
    }
    let results = run.results().unwrap();
    let noise = results.noise().expect("the base was trained three times");
    assert_eq!(noise.n, 3);
    assert!(noise.sd >= 0.0 && noise.se <= noise.sd);
    let cands = results.candidates().unwrap();
    assert_eq!(cands.height(), 6 - repeats.len());
    assert!(noise.to_string().contains("3 trainings"), "{noise}");
    // the fitness history draws the noise band
    let fig = results.plot_fitness_history().unwrap();
    if let Ok(p) = std::env::var("YOLO_LAB_KEEP_FIGURE") {
        fig.save(p).unwrap();
    }
}
