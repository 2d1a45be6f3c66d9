//! Issue 15: evolution for more than one goal (objective columns, Pareto front, NSGA-II selection) and
//! structural genes (the model rebuilt per generation, resumable after a kill -9).

mod common;
use common::generations;

use std::collections::BTreeSet;
use std::path::Path;
use yolo_lab::evolve::csv;
use yolo_lab::prelude::*;

fn base(dir: &Path) -> Evolver {
    let t = Trainer::new().data("shapes-tiny").imgsz(64).batch(8).epochs(1).workers(1).device("cpu");
    Evolver::new(t).project(dir).seed(3)
}

#[test]
fn a_two_objective_evolution_writes_its_objective_columns_and_a_front() {
    let dir = tempfile::tempdir().unwrap();
    let run = base(dir.path()).generations(5).objectives([Objective::Fitness, Objective::Latency]).run().unwrap();
    assert_eq!(run.rows, 5);
    let gens = generations(&run.dir);
    assert_eq!(gens.len(), 5);
    for g in &gens {
        for column in ["params", "images_per_s", "peak_mem_mib", "latency_ms"] {
            let v: f64 = g[column].parse().unwrap_or_else(|_| panic!("{column} `{}` in {g:?}", g[column]));
            assert!(v > 0.0, "{column} = {v}");
        }
    }
    // yolov5n's parameters depend only on the anchors gene here (anchors per level size the Detect convs)
    let table = csv::read(&run.dir.join("evolve.csv")).unwrap();
    let a = table.col("anchors").unwrap();
    for (i, j) in [(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)] {
        let same = table.rows[i][a].round_ties_even() == table.rows[j][a].round_ties_even();
        assert_eq!(same, gens[i]["params"] == gens[j]["params"], "rows {i}, {j}: {gens:?}");
    }
    assert_eq!(std::fs::read_to_string(run.dir.join("objectives.txt")).unwrap(), "fitness,latency_ms\n");
    // evolve.csv keeps YOLOv5's columns: 7 results and the hyperparameters only
    assert_eq!(table.columns.len(), 7 + 29, "{:?}", table.columns);
    let r = run.results().unwrap();
    assert_eq!(r.objectives(), [Objective::Fitness, Objective::Latency]);
    let front = r.pareto().unwrap();
    assert!(front.height() >= 1 && front.height() <= 5);
    let names: Vec<String> = front.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(&names[..4], ["row", "knee", "fitness", "latency_ms"]);
    let knee = r.knee(&r.objectives()).expect("a front has a knee");
    assert!(r.front(&r.objectives()).iter().any(|t| t.row == knee.row));
    // nothing off the front dominates a front member
    let fit = r.fitness();
    let lat: Vec<f64> = r.trials().iter().map(|t| t.measured.latency_ms).collect();
    for t in r.front(&r.objectives()) {
        assert!(
            !(0..5).any(|j| fit[j] >= t.fitness
                && lat[j] <= t.measured.latency_ms
                && (fit[j] > t.fitness || lat[j] < t.measured.latency_ms)),
            "row {} is dominated",
            t.row
        );
    }
    let pick = r.fastest_within(0.0).unwrap();
    assert_eq!(pick.measured.latency_ms, lat.iter().cloned().fold(f64::MAX, f64::min), "fastest of all");
    let fig = r.plot_pareto().unwrap();
    assert!(fig.png.len() > 1000 && fig.width == 900);
    // the resume keeps the evolution's objectives when none are given
    let again = base(dir.path()).name("exp").resume().generations(6).run().unwrap();
    assert_eq!(again.rows, 6);
    assert_eq!(std::fs::read_to_string(run.dir.join("objectives.txt")).unwrap(), "fitness,latency_ms\n");
}

#[test]
fn a_structural_gene_changes_the_model_between_generations() {
    let dir = tempfile::tempdir().unwrap();
    let run = base(dir.path())
        .generations(5)
        .space(|s| s.width_multiple(0.1, 0.5).imgsz(64, 96).optimizer())
        .objectives([Objective::Fitness, Objective::Parameters])
        .run()
        .unwrap();
    let table = csv::read(&run.dir.join("evolve.csv")).unwrap();
    let (w, sz, opt) =
        (table.col("width_multiple").unwrap(), table.col("imgsz").unwrap(), table.col("optimizer").unwrap());
    assert_eq!(table.rows[0][w], 0.25, "generation 0 is the base model (yolov5n)");
    assert_eq!(table.rows[0][sz], 64.0);
    for r in &table.rows {
        assert!((0.1..=0.5).contains(&r[w]), "width {}", r[w]);
        assert!(r[sz] == 64.0 || r[sz] == 96.0, "imgsz {} is a multiple of 32 within the limits", r[sz]);
        assert!([0.0, 1.0, 2.0].contains(&r[opt]));
    }
    let gens = generations(&run.dir);
    let params: BTreeSet<&str> = gens.iter().map(|g| g["params"].as_str()).collect();
    assert!(params.len() >= 2, "the width gene changed the parameter count: {params:?}");
    // the same width gives the same parameter count, a wider one more
    let mut by_width: Vec<(f64, i64)> =
        table.rows.iter().zip(&gens).map(|(r, g)| (r[w], g["params"].parse().unwrap())).collect();
    by_width.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(by_width.windows(2).all(|p| p[0].1 <= p[1].1), "{by_width:?}");
    // hyp_evolve.yaml stays a hyp file, naming the structural genes in a comment
    let y = std::fs::read_to_string(run.dir.join("hyp_evolve.yaml")).unwrap();
    assert!(y.contains("# Structural genes of this generation: width_multiple: "), "{y}");
    Hyp::load(run.dir.join("hyp_evolve.yaml").to_str().unwrap()).unwrap();
    let r = run.results().unwrap();
    let t = r.trainer(1, Trainer::new()).unwrap();
    assert_eq!(t.width_multiple, Some(table.rows[1][w]));
    assert_eq!(
        std::fs::read_to_string(run.dir.join("genes.txt")).unwrap(),
        "width_multiple=0.1:0.5\nimgsz=64:96\noptimizer=0:2\n"
    );
}

/// `yolo-lab evolve --genes ...` killed with SIGKILL mid-training resumes with its genes (genes.txt) and
/// reaches its rows, none lost or repeated.
#[test]
fn a_structural_evolution_resumes_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("runs/evolve/exp");
    let scenario = [
        "--data",
        "shapes-tiny",
        "--img",
        "64",
        "--batch-size",
        "8",
        "--epochs",
        "2",
        "--workers",
        "1",
        "--device",
        "cpu",
        "--evolve",
        "5",
        "--genes",
        "width_multiple=0.1:0.5,depth_multiple=0.2:0.5",
        "--objectives",
        "fitness,params",
    ];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_yolo-lab"))
        .arg("evolve")
        .args(scenario)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rows = || csv::read(&exp.join("evolve.csv")).map(|t| t.rows.len()).unwrap_or(0);
    let t0 = std::time::Instant::now();
    while rows() < 2 {
        assert!(t0.elapsed().as_secs() < 300, "no rows after 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the evolution ended before it was killed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = rows();
    assert!(killed_at < 5, "killed before the end ({killed_at} rows)");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yolo-lab"))
        .args(["evolve", "--resume"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    let table = csv::read(&exp.join("evolve.csv")).unwrap();
    assert_eq!(table.rows.len(), 5, "{text}");
    let (w, d) = (table.col("width_multiple").unwrap(), table.col("depth_multiple").unwrap());
    assert!(table.rows.iter().all(|r| r[w].is_finite() && r[d].is_finite()), "the resume kept the genes");
    let genomes: BTreeSet<String> = table.rows.iter().map(|r| format!("{:?}", &r[7..])).collect();
    assert_eq!(genomes.len(), 5, "no genome trained twice");
    let gens = generations(&exp);
    let labels: BTreeSet<&str> = gens.iter().map(|g| g["generation"].as_str()).collect();
    assert_eq!(labels.len(), 5, "one line per row: {labels:?}");
    assert!(gens.iter().all(|g| !g["params"].is_empty()));
}
