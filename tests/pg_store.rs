//! The PostgreSQL store (issue 17) against a real server: `make test` starts one with scripts/with_pg.sh and
//! passes its URL in YOLO_LAB_TEST_PG. Without it the tests say SKIPPED, except in CI, where they fail.
//!
//! The tests run one at a time (one restarts the server) and each uses its own experiment names.

use postgres::{Client, NoTls};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use yolo_lab::evolve::store::pg::PgStore;
use yolo_lab::report::{ProgressMode, Reporter};

static SERIAL: Mutex<()> = Mutex::new(());

/// The test server's URL, or `None` (after a loud message) where none runs outside CI.
fn server() -> Option<String> {
    match std::env::var("YOLO_LAB_TEST_PG") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI runs the PostgreSQL store's tests, but YOLO_LAB_TEST_PG is unset: run them through `make test`")
        }
        _ => {
            eprintln!(
                "SKIPPED: no PostgreSQL test server (YOLO_LAB_TEST_PG is unset); run `scripts/with_pg.sh cargo test \
                 --test pg_store`"
            );
            None
        }
    }
}

fn client(url: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Client::connect(url, NoTls) {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("test client cannot connect: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A worker process: `yolo-lab evolve` of the shapes-tiny scenario (64 px, 1 epoch) into experiment `name`,
/// with its own mirror folder under `project` (as on a machine of its own).
fn worker(url: &str, name: &str, project: &Path, rows: usize, grace: f64) -> Child {
    worker_epochs(url, name, project, rows, grace, 1)
}

fn worker_epochs(url: &str, name: &str, project: &Path, rows: usize, grace: f64, epochs: usize) -> Child {
    let (rows, grace, epochs) = (rows.to_string(), grace.to_string(), epochs.to_string());
    worker_with(url, name, project, &["--evolve", &rows, "--grace", &grace, "--epochs", &epochs])
}

/// A worker process with other evolve flags (`--evolve`, `--epochs`, `--population`, `--prune`, ...).
fn worker_with(url: &str, name: &str, project: &Path, flags: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_yolo-lab"))
        .args(["evolve", "--storage", url, "--name", name, "--project"])
        .arg(project)
        .args(["--data", "shapes-tiny", "--img", "64", "--batch-size", "8", "--workers", "1", "--device", "cpu"])
        .args(flags)
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("yolo-lab runs")
}

/// Two worker processes with their own folders under `dir`, run to the end (each must succeed).
fn two_machines(url: &str, name: &str, dir: &Path, flags: &[&str]) {
    let children: Vec<Child> = (0..2).map(|k| worker_with(url, name, &dir.join(format!("m{k}")), flags)).collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
}

struct Row {
    row_no: i32,
    seq: Option<i32>,
    state: String,
    worker: String,
    note: String,
}

fn rows(c: &mut Client, name: &str) -> Vec<Row> {
    c.query(
        "SELECT t.row_no, t.seq, t.state, t.worker, t.note FROM trials t JOIN experiments e ON e.id = t.experiment \
         WHERE e.name = $1 ORDER BY t.row_no",
        &[&name],
    )
    .unwrap()
    .iter()
    .map(|r| Row { row_no: r.get(0), seq: r.get(1), state: r.get(2), worker: r.get(3), note: r.get(4) })
    .collect()
}

/// The finished rows' row numbers and places in evolve.csv are exactly 0..n, each once.
fn assert_exactly(rows: &[Row], n: i32) {
    assert!(rows.iter().all(|r| r.state == "complete"), "every row complete: {:?}", states(rows));
    let mut nos: Vec<i32> = rows.iter().map(|r| r.row_no).collect();
    nos.sort();
    assert_eq!(nos, (0..n).collect::<Vec<_>>(), "row numbers");
    let mut seqs: Vec<i32> = rows.iter().filter_map(|r| r.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "evolve.csv places");
}

fn states(rows: &[Row]) -> Vec<(i32, String, String)> {
    rows.iter().map(|r| (r.row_no, r.state.clone(), r.worker.clone())).collect()
}

fn pid_of(worker: &str) -> &str {
    worker.rsplit_once(':').map_or("", |(_, p)| p.split('/').next().unwrap_or(""))
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[test]
fn four_workers_on_their_own_folders_write_exactly_the_rows_asked_for() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("four");
    let folders: Vec<PathBuf> = (0..4).map(|k| tmp.path().join(format!("machine{k}"))).collect();
    let children: Vec<Child> = folders.iter().map(|p| worker(&url, &name, p, 20, 300.0)).collect();
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for o in &outs {
        assert!(o.status.success(), "{}", text(o));
    }
    let mut c = client(&url);
    let all = rows(&mut c, &name);
    assert_exactly(&all, 20);
    let pids: std::collections::BTreeSet<&str> = all.iter().map(|r| pid_of(&r.worker)).collect();
    assert_eq!(pids.len(), 4, "every worker trained: {:?}", states(&all));
    // parents come from finished rows only: every row a trial's parents were chosen from had finished when it
    // was claimed, and most trials had some to choose from
    let bad: i64 = c
        .query_one(
            "SELECT count(*) FROM trials t JOIN experiments e ON e.id = t.experiment CROSS JOIN unnest(t.parents) p \
             JOIN trials q ON q.experiment = t.experiment AND q.seq = p WHERE e.name = $1 AND (q.finished IS NULL OR \
             q.finished > t.claimed)",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert_eq!(bad, 0, "a parent was chosen from a row still running");
    let with_parents: i64 = c
        .query_one(
            "SELECT count(*) FROM trials t JOIN experiments e ON e.id = t.experiment WHERE e.name = $1 AND \
             cardinality(t.parents) > 0",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert!(with_parents >= 10, "{with_parents} trials chose from finished rows");
    // each machine's folder mirrors the whole experiment, and an export writes the same files
    let out = tmp.path().join("export");
    let o = Command::new(env!("CARGO_BIN_EXE_yolo-lab"))
        .args(["evolve-export", "--storage", &url, "--name", &name])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("20 rows"), "{}", text(&o));
    for f in &folders {
        let mirror = f.join(&name);
        let table = yolo_lab::evolve::csv::read(&mirror.join("evolve.csv")).unwrap();
        assert_eq!(table.rows.len(), 20, "{}", mirror.display());
        for file in ["evolve.csv", "generations.csv", "hyp_evolve.yaml", "opt.yaml", "hyp.yaml"] {
            let a = std::fs::read(mirror.join(file)).unwrap();
            let b = std::fs::read(out.join(file)).unwrap();
            assert!(a == b, "{file} of {} differs from the export", mirror.display());
        }
    }
    let r = yolo_lab::results::EvolveResults::load(out.join("evolve.csv")).unwrap();
    let from_db = yolo_lab::results::EvolveResults::from_storage(&url, &name).unwrap();
    assert_eq!(r.df().unwrap().height(), 20);
    assert!(r.df().unwrap().equals_missing(&from_db.df().unwrap()), "from_storage gives the export's table");
    assert_eq!(r.best_row(), from_db.best_row());
}

#[test]
fn a_killed_workers_row_is_taken_over_after_the_grace_period() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("killed");
    let mut c = client(&url);
    // trainings of 3 epochs, so that the victim is still training when it is killed
    let mut victim = worker_epochs(&url, &name, &tmp.path().join("a"), 4, 2.0, 3);
    let pid = victim.id().to_string();
    // wait until the victim trains a row of its own
    let deadline = Instant::now() + Duration::from_secs(120);
    let held = loop {
        let running: Vec<Row> =
            rows(&mut c, &name).into_iter().filter(|r| r.state == "running" && pid_of(&r.worker) == pid).collect();
        if let Some(r) = running.first() {
            break r.row_no;
        }
        assert!(Instant::now() < deadline, "the first worker never claimed a row");
        assert!(victim.try_wait().unwrap().is_none(), "the first worker ended early");
        std::thread::sleep(Duration::from_millis(100));
    };
    // a running trial shows what it trains
    let mut described = false;
    while !described && Instant::now() < deadline {
        described = c
            .query_one(
                "SELECT t.hyp ? 'lr0' FROM trials t JOIN experiments e ON e.id = t.experiment WHERE e.name = $1 AND \
                 t.row_no = $2 AND t.state = 'running'",
                &[&name, &held],
            )
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(described, "the running trial's hyperparameters are in the database");
    victim.kill().unwrap(); // SIGKILL
    let _ = victim.wait();
    let other = worker_epochs(&url, &name, &tmp.path().join("b"), 4, 2.0, 3).wait_with_output().unwrap();
    let t = text(&other);
    assert!(other.status.success(), "{t}");
    let all = rows(&mut c, &name);
    assert_exactly(&all, 4);
    let row = all.iter().find(|r| r.row_no == held).unwrap();
    assert_ne!(pid_of(&row.worker), pid, "the killed worker's row was trained by the other");
    assert!(row.note.contains("reclaimed from worker") && row.note.contains(&format!(":{pid}/")), "{}", row.note);
    assert!(t.contains(&format!("row {held} reclaimed from worker")), "{t}");
}

#[test]
fn workers_reconnect_after_a_server_restart_and_write_nothing_twice() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(url) = server() else { return };
    let Ok(pg_dir) = std::env::var("YOLO_LAB_TEST_PG_DIR") else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must give YOLO_LAB_TEST_PG_DIR");
        eprintln!("SKIPPED: YOLO_LAB_TEST_PG_DIR is unset, so the server cannot be restarted");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("restart");
    // trainings of 3 epochs, so that the restart falls while the workers still have rows to train
    let children: Vec<Child> =
        (0..2).map(|k| worker_epochs(&url, &name, &tmp.path().join(format!("m{k}")), 10, 60.0, 3)).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut c = client(&url);
        if rows(&mut c, &name).iter().any(|r| r.state == "complete") {
            break;
        }
        assert!(Instant::now() < deadline, "no trial finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg_server.sh");
    let r = Command::new(script).args(["restart", &pg_dir]).output().unwrap();
    assert!(r.status.success(), "restart: {}", text(&r));
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let mut reconnected = 0;
    for o in &outs {
        assert!(o.status.success(), "{}", text(o));
        reconnected += text(o).matches("reconnected after").count();
    }
    assert!(reconnected >= 1, "{}", outs.iter().map(text).collect::<String>());
    let mut c = client(&url);
    assert_exactly(&rows(&mut c, &name), 10);
}

#[test]
fn bad_urls_passwords_and_databases_are_named_without_the_password() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(url) = server() else { return };
    let port = url.rsplit_once(':').unwrap().1.split('/').next().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let quiet = || Reporter::new(ProgressMode::Silent);
    let fails = |u: &str| PgStore::connect(u, tmp.path(), 300.0, quiet()).map(|_| ()).unwrap_err().to_string();
    let wrong = format!("postgres://yolo:not-the-password@127.0.0.1:{port}/yolo_lab_test");
    let e = fails(&wrong);
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(
        e.contains(&format!("postgres://yolo:***@127.0.0.1:{port}/yolo_lab_test")) && !e.contains("not-the"),
        "{e}"
    );
    let e = fails(&url.replace("/yolo_lab_test", "/no_such_db"));
    assert!(e.contains("\"no_such_db\" does not exist") && !e.contains("yolo-test"), "{e}");
    // a fresh database gets every schema version; one with a newer version than this build knows is refused
    let db = unique("schema").replace('-', "_");
    client(&url).batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    let fresh = url.replace("/yolo_lab_test", &format!("/{db}"));
    drop(PgStore::connect(&fresh, tmp.path(), 300.0, quiet()).unwrap());
    let mut c = client(&fresh);
    let versions: Vec<i32> = c
        .query("SELECT version FROM yolo_lab_schema ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    c.execute("INSERT INTO yolo_lab_schema (version) VALUES (99)", &[]).unwrap();
    drop(c);
    let e = fails(&fresh);
    assert!(e.contains("schema is version 99, newer than this yolo-lab knows (3)"), "{e}");
    let e = fails("postgres://yolo:secret@127.0.0.1:notaport/db");
    assert!(e.contains("not a connection string") && !e.contains("secret"), "{e}");
    let e = fails("postgres://yolo:secret@127.0.0.1:1/db");
    assert!(e.contains("postgres://yolo:***@127.0.0.1:1/db") && !e.contains("secret"), "{e}");
    // the command line says the same and exits with an error
    let o = Command::new(env!("CARGO_BIN_EXE_yolo-lab"))
        .args(["evolve", "--storage", &wrong, "--name", "x", "--data", "shapes-tiny", "--img", "64"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success() && t.contains("password authentication failed") && !t.contains("not-the"), "{t}");
}

#[test]
fn a_file_store_folder_is_never_taken_for_a_mirror() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("taken");
    let dir = tmp.path().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("evolve.csv"), "").unwrap();
    let o = worker(&url, &name, tmp.path(), 2, 300.0).wait_with_output().unwrap();
    let t = text(&o);
    assert!(!o.status.success() && t.contains("holds an evolution of its own"), "{t}");
    assert_eq!(std::fs::read(dir.join("evolve.csv")).unwrap(), b"", "left as it was");
}

#[test]
fn export_import_round_trips_byte_for_byte_and_a_yolov5_evolution_continues() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(url) = server() else { return };
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/yolov5-evolve-sample/evolve.csv");
    if !sample.is_file() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI has ../shared");
        eprintln!("SKIPPED: {} not found", sample.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (yolo, again) = (unique("yolov5"), unique("again"));
    let scenario = ["--data", "shapes-tiny", "--img", "64", "--batch-size", "8", "--epochs", "1", "--workers", "1"];
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_yolo-lab")).args(args).current_dir(tmp.path()).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        text(&o)
    };
    // YOLOv5's evolve.csv alone: the scenario comes from the flags
    let t = run(&[
        &["evolve-import", sample.to_str().unwrap(), "--storage", &url, "--name", &yolo, "--evolve", "152"],
        &scenario[..],
        &["--device", "cpu", "--noautoanchor"],
    ]
    .concat());
    assert!(t.contains("150 rows"), "{t}");
    let a = tmp.path().join("a");
    run(&["evolve-export", "--storage", &url, "--name", &yolo, a.to_str().unwrap()]);
    let theirs = yolo_lab::evolve::csv::read(&sample).unwrap();
    let ours = yolo_lab::evolve::csv::read(&a.join("evolve.csv")).unwrap();
    assert_eq!(ours.columns, theirs.columns);
    assert_eq!(ours.rows, theirs.rows, "the sample's values, read back unchanged");
    assert_eq!(std::fs::read(&sample).unwrap(), std::fs::read(a.join("evolve.csv")).unwrap(), "YOLOv5's bytes");
    // an exported folder (with its opt.yaml and generations.csv) imported again exports the same bytes
    run(&["evolve-import", a.to_str().unwrap(), "--storage", &url, "--name", &again]);
    let b = tmp.path().join("b");
    run(&["evolve-export", "--storage", &url, "--name", &again, b.to_str().unwrap()]);
    for f in ["evolve.csv", "generations.csv", "hyp_evolve.yaml", "opt.yaml", "hyp.yaml"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} changed in the round trip"
        );
    }
    // the imported YOLOv5 evolution continues: two more trainings, parents chosen from its rows
    let o = worker(&url, &yolo, &tmp.path().join("w"), 152, 300.0).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut c = client(&url);
    let all = rows(&mut c, &yolo);
    assert_exactly(&all, 152);
    let parents: Vec<i32> = c
        .query_one(
            "SELECT min(cardinality(t.parents)) FROM trials t JOIN experiments e ON e.id = t.experiment WHERE \
             e.name = $1 AND t.row_no >= 150",
            &[&yolo],
        )
        .map(|r| vec![r.get(0)])
        .unwrap();
    assert!(parents[0] >= 150, "the new trials chose among the imported rows: {parents:?}");
}

#[test]
fn the_population_ga_shares_its_generations_between_workers() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("population");
    let flags = ["--population", "3", "--evolve", "2", "--epochs", "1"];
    two_machines(&url, &name, tmp.path(), &flags);
    let mut c = client(&url);
    let all = rows(&mut c, &name);
    assert_exactly(&all, 6);
    let labels: Vec<String> = c
        .query(
            "SELECT t.label FROM trials t JOIN experiments e ON e.id = t.experiment WHERE e.name = $1 ORDER BY t.row_no",
            &[&name],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(labels, ["0.0", "0.1", "0.2", "1.0", "1.1", "1.2"]);
    // generation 1 started only after generation 0 had finished, and was bred from it
    let order: bool = c
        .query_one(
            "SELECT max(t.finished) FILTER (WHERE t.generation = 0) <= min(t.claimed) FILTER (WHERE t.generation = 1) \
             FROM trials t JOIN experiments e ON e.id = t.experiment WHERE e.name = $1",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert!(order, "a generation-1 individual was claimed before generation 0 finished");
    let pops: Vec<(i32, serde_json::Value)> = c
        .query(
            "SELECT p.generation, p.individuals FROM populations p JOIN experiments e ON e.id = p.experiment WHERE \
             e.name = $1 ORDER BY p.generation",
            &[&name],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(pops.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1]);
    assert_ne!(pops[0].1, pops[1].1, "generation 1 is bred, not a copy");
    let hyp_scale: Vec<f64> = c
        .query(
            "SELECT (t.hyp->>'scale')::float8 FROM trials t JOIN experiments e ON e.id = t.experiment WHERE e.name = $1 \
             AND t.generation = 1 ORDER BY t.row_no",
            &[&name],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let genes: Vec<String> = c
        .query_one(
            "SELECT p.genes FROM populations p JOIN experiments e ON e.id = p.experiment WHERE e.name = $1 AND \
             p.generation = 1",
            &[&name],
        )
        .unwrap()
        .get(0);
    let k = genes.iter().position(|g| g == "scale").expect("scale is a population gene");
    let bred: Vec<f64> = (0..3).map(|i| pops[1].1[i][k].as_f64().unwrap()).collect();
    assert_eq!(hyp_scale, bred, "each individual trained with its stored genes");
}

#[test]
fn pruning_judges_each_trial_against_every_machines_rungs() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("pruned");
    let flags = ["--evolve", "8", "--prune", "median:0", "--epochs", "3"];
    two_machines(&url, &name, tmp.path(), &flags);
    let mut c = client(&url);
    let all = rows(&mut c, &name);
    assert_eq!(all.len(), 8, "{:?}", states(&all));
    assert!(all.iter().all(|r| r.state == "complete" || r.state == "pruned"), "{:?}", states(&all));
    // every trial's rungs are in the database, from both machines
    let rungs: Vec<(String, i32)> = c
        .query(
            "SELECT r.label, r.epoch FROM rungs r JOIN experiments e ON e.id = r.experiment WHERE e.name = $1",
            &[&name],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let labels: std::collections::BTreeSet<&str> = rungs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(labels.len(), 8, "each trial measured at its rungs: {rungs:?}");
    let pids: std::collections::BTreeSet<&str> = all.iter().map(|r| pid_of(&r.worker)).collect();
    assert_eq!(pids.len(), 2, "both machines trained: {:?}", states(&all));
    // a pruned trial stopped early and says where
    let pruned: Vec<(i32, i32)> = c
        .query(
            "SELECT t.pruned_at, t.epochs FROM trials t JOIN experiments e ON e.id = t.experiment WHERE e.name = $1 \
             AND t.state = 'pruned'",
            &[&name],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(pruned.iter().all(|&(at, epochs)| at < 2 && epochs <= 2), "{pruned:?}");
}
