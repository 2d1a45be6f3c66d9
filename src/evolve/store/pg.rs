//! The PostgreSQL store: one evolution shared by workers on any number of machines.
//!
//! An experiment is a row of `experiments` (its settings files, so a worker that joins it trains the same
//! scenario) and its trainings are rows of `trials` (schema in `0001_init.sql`, applied at connect time under
//! an advisory lock). Every claim and record is one transaction under the experiment's advisory lock:
//!
//! - a claim first takes over a `running` trial whose heartbeat is older than the grace period (its worker was
//!   killed or lost its network: `FOR UPDATE SKIP LOCKED`), else inserts the lowest free row number below the
//!   target, else — every row is finished or running — waits for the running ones, so that a killed worker's
//!   row is still reclaimed;
//! - a heartbeat thread touches this process's running trials every fifth of the grace period;
//! - a record turns this worker's own running trial into a finished one with the next place in evolve.csv
//!   (`seq`); a record whose trial another worker took over meanwhile is refused with a warning, and a record
//!   repeated after a lost acknowledgement finds its row already written, so nothing is written twice;
//! - a dropped connection (server restarted, network gone) is reconnected with backoff for up to five minutes,
//!   then the operation is retried.
//!
//! Parents are chosen from finished trials only, never from running ones. The evolution folder is a mirror:
//! evolve.csv, generations.csv and hyp_evolve.yaml are rewritten from the database after each claim and record.

use super::mirror::{self, gene, snapshot_of};
use super::{Experiment, FitnessOf, Individual, Recorded, SETTINGS_FILES, Snapshot, Store, Trial};
use crate::error::{Error, Result};
use crate::evolve::objective::Measured;
use crate::report::Reporter;
use postgres::{Client, Config, Transaction};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Schema versions, applied in order (each file records its own version in `yolo_lab_schema`).
const MIGRATIONS: [(i32, &str); 3] =
    [(1, include_str!("0001_init.sql")), (2, include_str!("0002_population.sql")), (3, include_str!("0003_rungs.sql"))];
/// First key of yolo-lab's advisory locks (the second: 0 for migrations, else the experiment's id).
const LOCK_CLASS: i32 = 0x796c;
/// How long a dropped connection is retried before the operation fails.
const RECONNECT_FOR: Duration = Duration::from_secs(300);
/// Default grace period of a trial's heartbeat, in seconds.
pub const DEFAULT_GRACE_S: f64 = 300.0;

/// A connection string with its password replaced by `***` (URL `user:pw@` or key-value `password=pw`).
pub fn mask(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) {
        let scheme = &url[..url.len() - rest.len()];
        let (auth_end, tail) = match rest.find('@') {
            Some(at) if rest[..at].contains(':') && !rest[..at].contains('/') => (at, &rest[at..]),
            _ => return url.to_string(),
        };
        let user = &rest[..rest[..auth_end].find(':').unwrap_or(auth_end)];
        return format!("{scheme}{user}:***{tail}");
    }
    url.split_whitespace()
        .map(|kv| if kv.starts_with("password=") { "password=***".to_string() } else { kv.to_string() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an error means the connection is gone (retry after reconnecting) rather than a refused statement.
fn connection_lost(e: &postgres::Error, client: &Client) -> bool {
    if client.is_closed() || e.is_closed() {
        return true;
    }
    match e.code() {
        // 08: connection exception; 57P: operator intervention (shutdown, crash recovery)
        Some(c) => c.code().starts_with("08") || c.code().starts_with("57P"),
        None => e.as_db_error().is_none(),
    }
}

struct Inner {
    masked: String,
    config: Config,
    client: Mutex<Client>,
    /// `host:pid` of this process: its workers are `host:pid/thread`.
    me: String,
    host: String,
    /// The attached experiment's id and gene columns (evolve.csv's order), fixed once attached.
    experiment: OnceLock<(i64, Vec<String>)>,
    /// Row numbers this process is training (heartbeats go to these).
    live: Mutex<BTreeSet<i32>>,
    grace: Duration,
    dir: PathBuf,
    /// Rows of the last mirror written (a slower thread never replaces a newer mirror with an older one).
    mirrored: Mutex<usize>,
    reporter: Reporter,
    stop: AtomicBool,
    /// Whether this worker is creating the experiment (it did not exist when the worker started).
    creating: AtomicBool,
    /// Set when [`Store::attach`] found the experiment created meanwhile by another worker with other files.
    raced: AtomicBool,
}

/// An experiment in a PostgreSQL database ([module docs](self)).
pub struct PgStore {
    inner: Arc<Inner>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({})", self.inner.masked)
    }
}

fn connect(config: &Config) -> std::result::Result<Client, postgres::Error> {
    let tls = native_tls::TlsConnector::builder()
        // libpq's sslmode=prefer/require encrypt without verifying the server's certificate
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .build()
        .expect("the system's TLS library initialises");
    config.connect(postgres_native_tls::MakeTlsConnector::new(tls))
}

impl PgStore {
    /// Connect to `url` (a `postgres://user:password@host:port/db` URL or a key-value string), apply the
    /// schema migrations it lacks, and mirror experiments into `dir`. Trials whose heartbeat is older than
    /// `grace_s` seconds are taken over. A first connection that fails is an error naming the URL (without its
    /// password); later ones are retried.
    pub fn connect(url: &str, dir: &Path, grace_s: f64, reporter: Reporter) -> Result<PgStore> {
        let masked = mask(url);
        let err = |message: String| Error::Storage { url: masked.clone(), message };
        let mut config: Config =
            url.parse().map_err(|e: postgres::Error| err(format!("not a connection string: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("yolo-lab");
        }
        if !(grace_s.is_finite() && grace_s > 0.0) {
            return Err(Error::Config {
                name: "heartbeat grace",
                message: format!("{grace_s} s: give a positive time"),
            });
        }
        let mut client = connect(&config).map_err(|e| err(describe(&e)))?;
        if let Some(v) = migrate(&mut client).map_err(|e| err(format!("schema migration: {}", describe(&e))))? {
            return Err(err(format!(
                "the database's schema is version {v}, newer than this yolo-lab knows ({}): upgrade yolo-lab",
                MIGRATIONS.len()
            )));
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let inner = Arc::new(Inner {
            masked: masked.clone(),
            config,
            client: Mutex::new(client),
            me: format!("{host}:{}", std::process::id()),
            host,
            experiment: OnceLock::new(),
            live: Mutex::new(BTreeSet::new()),
            grace: Duration::from_secs_f64(grace_s),
            dir: dir.to_path_buf(),
            mirrored: Mutex::new(0),
            reporter,
            stop: AtomicBool::new(false),
            creating: AtomicBool::new(false),
            raced: AtomicBool::new(false),
        });
        let hb = inner.clone();
        let heartbeat = std::thread::Builder::new()
            .name("yolo-lab-heartbeat".into())
            .spawn(move || hb.heartbeats())
            .map_err(|e| err(format!("cannot start the heartbeat thread: {e}")))?;
        Ok(PgStore { inner, heartbeat: Some(heartbeat) })
    }

    /// The URL with its password masked.
    pub fn masked_url(&self) -> &str {
        &self.inner.masked
    }

    /// The settings files of experiment `name` (file name, text), or `None` when it does not exist.
    pub fn settings_files(&self, name: &str) -> Result<Option<Vec<(String, String)>>> {
        let row = self.inner.with_client("read the experiment", |c| {
            c.query_opt("SELECT base FROM experiments WHERE name = $1", &[&name])
        })?;
        Ok(row.map(|r| files_of(&r.get::<_, serde_json::Value>(0))))
    }

    /// Every finished trial of experiment `name` in evolve.csv's order, with the experiment's gene columns and
    /// fitness weights (empty for a fitness function).
    pub fn trials(&self, name: &str) -> Result<(Vec<String>, Vec<f64>, Vec<Trial>)> {
        let e = self
            .inner
            .with_client("read the experiment", |c| {
                c.query_opt("SELECT id, hyp_keys, fitness FROM experiments WHERE name = $1", &[&name])
            })?
            .ok_or_else(|| self.inner.error(format!("no experiment named `{name}`")))?;
        let keys: Vec<String> = e.get(1);
        let trials = self.finished(e.get(0), &keys)?;
        Ok((keys, e.get(2), trials))
    }

    pub(super) fn error(&self, message: String) -> Error {
        self.inner.error(message)
    }

    /// Tell the store this worker creates the experiment (it did not exist when the worker started).
    pub(super) fn set_creating(&self, creating: bool) {
        self.inner.creating.store(creating, Ordering::SeqCst);
    }

    /// Whether [`Store::attach`] found the experiment created meanwhile by another worker with other files.
    pub(super) fn raced(&self) -> bool {
        self.inner.raced.load(Ordering::SeqCst)
    }

    /// The attached experiment's finished trials.
    pub(super) fn finished_trials(&self, keys: &[String]) -> Result<Vec<Trial>> {
        self.finished(self.inner.id()?, keys)
    }

    fn finished(&self, id: i64, keys: &[String]) -> Result<Vec<Trial>> {
        self.inner.with_client("read the trials", |c| finished(c, id, keys))
    }

    /// Load finished trials (an imported evolution, in its row order) into the attached experiment, which
    /// must have none. Returns how many.
    pub(super) fn load(&self, trials: &[Trial], keys: &[String]) -> Result<usize> {
        let id = self.inner.id()?;
        self.inner.with_client("import the trials", |c| {
            let mut tx = c.transaction()?;
            for (i, t) in trials.iter().enumerate() {
                let row = i as i32;
                tx.execute(
                    "INSERT INTO trials (experiment, row_no, generation, label, state, hyp, hyp_values, worker, host, \
                     seed) VALUES ($1, $2, $2, $3, 'running', '{}', '{}', $4, 'imported', 0)",
                    &[&id, &row, &t.label, &t.worker],
                )?;
                write_finished(&mut tx, id, row, row, t, keys, &t.note)?;
            }
            tx.commit()
        })?;
        Ok(trials.len())
    }
}

/// Turn running trial `row` into finished trial `t` at place `seq` of evolve.csv.
fn write_finished(
    tx: &mut Transaction<'_>,
    id: i64,
    row: i32,
    seq: i32,
    t: &Trial,
    keys: &[String],
    note: &str,
) -> std::result::Result<u64, postgres::Error> {
    let state = if t.failed {
        "failed"
    } else if t.pruned_at.is_some() {
        "pruned"
    } else {
        "complete"
    };
    let hyp: serde_json::Map<String, serde_json::Value> =
        t.genes.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect();
    let hyp = serde_json::Value::Object(hyp);
    let values: Vec<f64> = keys.iter().map(|k| gene(t, k)).collect();
    let measured = serde_json::json!(t.measured.cells());
    let results = t.results.to_vec();
    let opt_i32 = |v: Option<usize>| v.map(|x| x as i32);
    let (pruned_at, repeat_of) = (opt_i32(t.pruned_at), opt_i32(t.repeat_of));
    let (seed, epochs) = (t.seed as i64, t.epochs as i32);
    let generation: i32 = t.label.split('.').next().and_then(|g| g.parse().ok()).unwrap_or(row);
    tx.execute(
        "UPDATE trials SET seq = $3, generation = $4, label = $5, state = $6, hyp = $7, hyp_values = $8, \
         results = $9, fitness = $10, measured = $11, worker = $12, device = $13, seed = $14, repeat_of = $15, \
         pruned_at = $16, epochs = $17, wall_s = $18, train_s = $19, note = $20, finished = now() \
         WHERE experiment = $1 AND row_no = $2",
        &[
            &id,
            &row,
            &seq,
            &generation,
            &t.label,
            &state,
            &hyp,
            &values,
            &results,
            &t.fitness,
            &measured,
            &t.worker,
            &t.device,
            &seed,
            &repeat_of,
            &pruned_at,
            &epochs,
            &t.wall_s,
            &t.train_s,
            &note,
        ],
    )
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
    }
}

/// A postgres error with its server message, when it has one.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(x) = src {
                s.push_str(&format!(": {x}"));
                src = x.source();
            }
            s
        }
    }
}

/// Apply the schema versions the database lacks, in one transaction. `Ok(Some(v))` when the database holds a
/// version `v` newer than this yolo-lab knows (nothing is applied then).
fn migrate(client: &mut Client) -> std::result::Result<Option<i32>, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_CLASS])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS yolo_lab_schema (version integer PRIMARY KEY, applied timestamptz NOT NULL \
         DEFAULT now())",
    )?;
    let have: BTreeSet<i32> = tx.query("SELECT version FROM yolo_lab_schema", &[])?.iter().map(|r| r.get(0)).collect();
    let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    if let Some(&newer) = have.iter().find(|&&v| v > known) {
        return Ok(Some(newer));
    }
    for (v, sql) in MIGRATIONS {
        if !have.contains(&v) {
            tx.batch_execute(sql)?;
        }
    }
    tx.commit()?;
    Ok(None)
}

/// The settings files held in an experiment's `base`.
fn files_of(base: &serde_json::Value) -> Vec<(String, String)> {
    base.get("files")
        .and_then(|f| f.as_object())
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// The 7 results in column `i` of a trials row.
fn results_at(r: &postgres::Row, i: usize) -> [f64; 7] {
    let v: Vec<f64> = r.get::<_, Option<Vec<f64>>>(i).unwrap_or_default();
    std::array::from_fn(|k| v.get(k).copied().unwrap_or(0.0))
}

/// The measurements in column `i` (generations.csv's four cells as a JSON array).
fn measured_at(r: &postgres::Row, i: usize) -> Measured {
    let cells: Vec<String> =
        r.get::<_, Option<serde_json::Value>>(i).and_then(|m| serde_json::from_value(m).ok()).unwrap_or_default();
    let cell = |k: usize| cells.get(k).map(String::as_str).filter(|c| !c.is_empty());
    Measured::from_cells([cell(0), cell(1), cell(2), cell(3)])
}

/// Finished trials of an experiment in evolve.csv's order.
fn finished(
    c: &mut impl postgres::GenericClient,
    experiment: i64,
    keys: &[String],
) -> std::result::Result<Vec<Trial>, postgres::Error> {
    let rows = c.query(
        "SELECT label, seed, worker, device, fitness, wall_s, train_s, epochs, pruned_at, repeat_of, measured, note, \
         results, hyp_values, state FROM trials WHERE experiment = $1 AND state <> 'running' ORDER BY seq",
        &[&experiment],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let values: Vec<f64> = r.get(13);
            Trial {
                claim: None,
                label: r.get(0),
                seed: r.get::<_, i64>(1) as u64,
                worker: r.get(2),
                device: r.get(3),
                fitness: r.get::<_, Option<f64>>(4).unwrap_or(0.0),
                wall_s: r.get::<_, Option<f64>>(5).unwrap_or(0.0),
                train_s: r.get::<_, Option<f64>>(6).unwrap_or(0.0),
                epochs: r.get::<_, Option<i32>>(7).unwrap_or(0) as usize,
                pruned_at: r.get::<_, Option<i32>>(8).map(|e| e as usize),
                repeat_of: r.get::<_, Option<i32>>(9).map(|e| e as usize),
                measured: measured_at(r, 10),
                note: r.get(11),
                results: results_at(r, 12),
                genes: keys.iter().cloned().zip(values.iter().copied()).collect(),
                failed: r.get::<_, String>(14) == "failed",
            }
        })
        .collect())
}

/// The rows a claim chooses among: `lo..hi` (classic GA: every row below the target; population GA: one
/// generation's individuals, `generation` of `size` each).
#[derive(Debug, Clone, Copy)]
struct Span {
    lo: i32,
    hi: i32,
    population: Option<(i32, i32)>,
}

impl Span {
    fn label(&self, row: i32) -> String {
        match self.population {
            Some((g, size)) => format!("{g}.{}", row - g * size),
            None => row.to_string(),
        }
    }
    fn generation(&self, row: i32) -> i32 {
        self.population.map_or(row, |(g, _)| g)
    }
}

/// What a claim transaction decided.
enum Claimed {
    Row(i32, Vec<Trial>, Option<String>),
    Done,
    Wait(i64),
}

impl Inner {
    fn error(&self, message: String) -> Error {
        Error::Storage { url: self.masked.clone(), message }
    }

    fn id(&self) -> Result<i64> {
        Ok(self.attached()?.0)
    }

    fn attached(&self) -> Result<&(i64, Vec<String>)> {
        self.experiment.get().ok_or_else(|| self.error("no experiment attached".into()))
    }

    /// Run `op` on the connection; when the connection is lost, reconnect with backoff (up to
    /// [`RECONNECT_FOR`]) and run it again.
    fn with_client<T>(
        &self,
        what: &str,
        mut op: impl FnMut(&mut Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let start = Instant::now();
        let mut wait = Duration::from_millis(250);
        loop {
            let e = match op(&mut client) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !connection_lost(&e, &client) {
                return Err(self.error(format!("{what}: {}", describe(&e))));
            }
            let lost = Instant::now();
            self.reporter.warn(&format!(
                "evolve: {}: connection lost during `{what}` ({}); reconnecting with backoff for up to {} s",
                self.masked,
                describe(&e),
                RECONNECT_FOR.as_secs()
            ));
            loop {
                if start.elapsed() > RECONNECT_FOR {
                    return Err(self.error(format!(
                        "{what}: connection lost and not re-established in {} s: {}",
                        RECONNECT_FOR.as_secs(),
                        describe(&e)
                    )));
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(10));
                if let Ok(c) = connect(&self.config) {
                    *client = c;
                    let s = lost.elapsed().as_secs_f64();
                    self.reporter.warn(&format!("evolve: {}: reconnected after {s:.1} s", self.masked));
                    break;
                }
            }
        }
    }

    fn heartbeats(&self) {
        let every = (self.grace / 5).max(Duration::from_millis(100));
        let mut last = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50).min(every));
            if last.elapsed() < every {
                continue;
            }
            last = Instant::now();
            let live: Vec<i32> = self.live.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
            let Some(&(id, _)) = self.experiment.get() else { continue };
            if live.is_empty() {
                continue;
            }
            let pattern = format!("{}/%", self.me);
            // a failed heartbeat is retried at the next beat; the grace period covers a few missed ones
            let _ = self.with_client("heartbeat", |c| {
                c.execute(
                    "UPDATE trials SET heartbeat = now() WHERE experiment = $1 AND state = 'running' AND worker LIKE $2 \
                     AND row_no = ANY($3)",
                    &[&id, &pattern, &live],
                )
            });
        }
    }

    /// Rewrite the folder's mirror from `trials` unless a newer one is there already.
    fn mirror(&self, keys: &[String], trials: &[Trial], fitness: Option<FitnessOf<'_>>) -> Result<()> {
        let mut last = self.mirrored.lock().unwrap_or_else(|p| p.into_inner());
        if trials.len() < *last {
            return Ok(());
        }
        *last = trials.len();
        mirror::write(&self.dir, keys, trials, fitness)
    }

    fn claim_once(&self, thread: usize, span: Span, keys: &[String]) -> Result<Claimed> {
        let id = self.id()?;
        let grace = self.grace.as_secs_f64();
        let (lo, hi) = (span.lo, span.hi);
        let pattern = format!("{}/%", self.me);
        let worker = format!("{}/{thread}", self.me);
        self.with_client("claim a row", |c| {
            let live: Vec<i32> = self.live.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1, $2::int)", &[&LOCK_CLASS, &((id % i32::MAX as i64) as i32)])?;
            // rows this process claimed but whose claim it lost track of (a commit whose acknowledgement the
            // connection dropped) are freed
            tx.execute(
                "DELETE FROM trials WHERE experiment = $1 AND state = 'running' AND worker LIKE $2 AND NOT row_no = ANY($3)",
                &[&id, &pattern, &live],
            )?;
            let counts = tx.query_one(
                "SELECT count(*) FILTER (WHERE state <> 'running'), count(*) FILTER (WHERE state = 'running') FROM trials \
                 WHERE experiment = $1 AND row_no >= $2 AND row_no < $3",
                &[&id, &lo, &hi],
            )?;
            let (done, running): (i64, i64) = (counts.get(0), counts.get(1));
            if done >= (hi - lo) as i64 {
                tx.commit()?;
                return Ok(Claimed::Done);
            }
            let stale = tx.query_opt(
                "SELECT row_no, worker, extract(epoch FROM now() - heartbeat)::float8 FROM trials WHERE experiment = $1 \
                 AND state = 'running' AND heartbeat < now() - make_interval(secs => $2) AND row_no >= $3 AND row_no < $4 \
                 ORDER BY row_no LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[&id, &grace, &lo, &hi],
            )?;
            let (row, note) = if let Some(s) = stale {
                let (row, from, age): (i32, String, f64) = (s.get(0), s.get(1), s.get(2));
                let note = format!("reclaimed from worker {from}, whose heartbeat stopped {age:.0} s before");
                tx.execute(
                    "UPDATE trials SET worker = $3, host = $4, note = $5, claimed = now(), heartbeat = now(), \
                     parents = ARRAY(SELECT seq FROM trials WHERE experiment = $1 AND state <> 'running' ORDER BY seq) \
                     WHERE experiment = $1 AND row_no = $2",
                    &[&id, &row, &worker, &self.host, &note],
                )?;
                (row, Some(note))
            } else if let Some(row) = tx
                .query_one(
                    "SELECT min(n)::int FROM generate_series($2, $3 - 1) n WHERE NOT EXISTS (SELECT 1 FROM trials \
                     WHERE experiment = $1 AND row_no = n)",
                    &[&id, &lo, &hi],
                )?
                .get::<_, Option<i32>>(0)
            {
                tx.execute(
                    "INSERT INTO trials (experiment, row_no, generation, label, state, hyp, hyp_values, worker, host, seed, \
                     parents) VALUES ($1, $2, $6, $5, 'running', '{}', '{}', $3, $4, 0, ARRAY(SELECT seq FROM trials \
                     WHERE experiment = $1 AND state <> 'running' ORDER BY seq))",
                    &[&id, &row, &worker, &self.host, &span.label(row), &span.generation(row)],
                )?;
                (row, None)
            } else {
                tx.commit()?;
                return Ok(Claimed::Wait(running));
            };
            let trials = finished(&mut tx, id, keys)?;
            tx.commit()?;
            self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(row);
            Ok(Claimed::Row(row, trials, note))
        })
    }
}

impl Inner {
    /// Claim a row of `span`, waiting while every free one is taken and some still run; `None` once every row
    /// of the span is finished. Returns the row and the finished trials.
    fn claim_span(&self, thread: usize, span: Span, keys: &[String]) -> Result<Option<(i32, Vec<Trial>)>> {
        let mut waited = false;
        loop {
            match self.claim_once(thread, span, keys)? {
                Claimed::Row(row, trials, note) => {
                    if let Some(n) = note {
                        self.reporter.warn(&format!("evolve: row {row} {n}"));
                    }
                    self.mirror(keys, &trials, None)?;
                    return Ok(Some((row, trials)));
                }
                Claimed::Done => return Ok(None),
                Claimed::Wait(running) => {
                    if !waited {
                        self.reporter.info(&format!(
                            "evolve: every row is claimed; waiting for {running} running trial(s) (taken over if a \
                             heartbeat stops for {:.0} s)",
                            self.grace.as_secs_f64()
                        ));
                        waited = true;
                    }
                    std::thread::sleep((self.grace / 5).clamp(Duration::from_millis(100), Duration::from_secs(5)));
                }
            }
        }
    }
}

impl Store for PgStore {
    fn attach(&self, e: &Experiment) -> Result<()> {
        let inner = &self.inner;
        let mut files = serde_json::Map::new();
        for f in SETTINGS_FILES {
            let p = e.dir.join(f);
            if p.is_file() {
                let text = std::fs::read_to_string(&p).map_err(|err| Error::io(&p, err))?;
                files.insert(f.to_string(), serde_json::Value::String(text));
            }
        }
        let base = serde_json::json!({ "files": files });
        let algorithm = if e.population.is_some() { "population" } else { "classic" };
        let population = e.population.map(|p| p as i32);
        let generations = e.generations as i32;
        let (id, stored) = inner.with_client("create the experiment", |c| {
            c.execute(
                "INSERT INTO experiments (name, algorithm, population, generations, fitness, objectives, hyp_keys, base) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING",
                &[&e.name, &algorithm, &population, &generations, &e.fitness, &e.objectives, &e.hyp_keys, &base],
            )?;
            let r = c.query_one("SELECT id, base, hyp_keys FROM experiments WHERE name = $1", &[&e.name])?;
            Ok((r.get::<_, i64>(0), (r.get::<_, serde_json::Value>(1), r.get::<_, Vec<String>>(2))))
        })?;
        let (stored_base, stored_keys) = stored;
        // a worker that joined wrote the experiment's own files before it started: they agree; a worker that
        // created the experiment at the same moment as another with other settings does not
        let theirs = files_of(&stored_base);
        let ours = files_of(&base);
        if theirs != ours || stored_keys != e.hyp_keys {
            inner.raced.store(inner.creating.swap(false, Ordering::SeqCst), Ordering::SeqCst);
            let differ: Vec<&str> = SETTINGS_FILES
                .iter()
                .copied()
                .filter(|f| theirs.iter().find(|(k, _)| k == f) != ours.iter().find(|(k, _)| k == f))
                .collect();
            return Err(inner.error(format!(
                "experiment `{}` exists with other settings ({}): join it with `--storage URL --name {}` alone, or \
                 choose another name",
                e.name,
                if differ.is_empty() { "gene columns".to_string() } else { differ.join(", ") },
                e.name
            )));
        }
        let _ = inner.experiment.set((id, stored_keys));
        let marker = e.dir.join(STORAGE_MARKER);
        crate::fsutil::write_atomic(&marker, format!("{}\n{}\n", inner.masked, e.name).as_bytes())?;
        Ok(())
    }

    fn claim(&self, thread: usize, target: usize) -> Result<Option<(usize, Snapshot)>> {
        let keys = &self.inner.attached()?.1;
        let span = Span { lo: 0, hi: target as i32, population: None };
        let claimed = self.inner.claim_span(thread, span, keys)?;
        Ok(claimed.map(|(row, trials)| (row as usize, snapshot_of(keys, &trials))))
    }

    fn snapshot(&self) -> Result<Snapshot> {
        let inner = &self.inner;
        let (id, keys) = inner.attached()?;
        let id = *id;
        let trials = self.finished(id, keys)?;
        inner.mirror(keys, &trials, None)?;
        Ok(snapshot_of(keys, &trials))
    }

    fn record(&self, t: &Trial, fitness: FitnessOf<'_>) -> Result<Recorded> {
        let inner = &self.inner;
        let Some(claim) = t.claim else {
            return Err(
                inner.error("a trial without a claim (the population GA) is not stored in a database yet".into())
            );
        };
        let (id, keys) = inner.attached()?;
        let id = *id;
        let row = claim as i32;
        let (outcome, trials) = inner.with_client("record a trial", |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1, $2::int)", &[&LOCK_CLASS, &((id % i32::MAX as i64) as i32)])?;
            let now = tx.query_opt(
                "SELECT state, worker, seq, note FROM trials WHERE experiment = $1 AND row_no = $2 FOR UPDATE",
                &[&id, &row],
            )?;
            let outcome = match now {
                None => Err(format!("row {row} is no longer claimed")),
                Some(r) if r.get::<_, String>(0) != "running" => {
                    if r.get::<_, String>(1) == t.worker {
                        // written before, its acknowledgement lost with the connection
                        Ok(r.get::<_, Option<i32>>(2).map(|s| s as usize))
                    } else {
                        Err(format!("row {row} was finished by worker {}", r.get::<_, String>(1)))
                    }
                }
                Some(r) if r.get::<_, String>(1) != t.worker => {
                    Err(format!("row {row} was taken over by worker {}", r.get::<_, String>(1)))
                }
                Some(r) => {
                    let claim_note: String = r.get(3);
                    let note = [claim_note.as_str(), t.note.as_str()]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ");
                    let seq: i32 = tx
                        .query_one("SELECT coalesce(max(seq) + 1, 0) FROM trials WHERE experiment = $1", &[&id])?
                        .get(0);
                    write_finished(&mut tx, id, row, seq, t, keys, &note)?;
                    Ok(Some(seq as usize))
                }
            };
            let trials = finished(&mut tx, id, keys)?;
            tx.commit()?;
            Ok((outcome, trials))
        })?;
        inner.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&row);
        inner.mirror(keys, &trials, Some(fitness))?;
        let (row, warnings) = match outcome {
            Ok(r) => (r, vec![]),
            Err(why) => (None, vec![format!("evolve: {why} while this worker trained it; its result is dropped")]),
        };
        Ok(Recorded { row, snapshot: snapshot_of(keys, &trials), warnings })
    }

    fn started(&self, generation: usize, genes: &[(String, f64)]) -> Result<()> {
        let inner = &self.inner;
        let (id, keys) = inner.attached()?;
        let id = *id;
        let hyp: serde_json::Map<String, serde_json::Value> =
            genes.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect();
        let hyp = serde_json::Value::Object(hyp);
        let values: Vec<f64> =
            keys.iter().map(|k| genes.iter().find(|(g, _)| g == k).map_or(f64::NAN, |(_, v)| *v)).collect();
        let (row, pattern) = (generation as i32, format!("{}/%", inner.me));
        inner.with_client("describe a running trial", |c| {
            c.execute(
                "UPDATE trials SET hyp = $3, hyp_values = $4 WHERE experiment = $1 AND row_no = $2 AND state = 'running' \
                 AND worker LIKE $5",
                &[&id, &row, &hyp, &values, &pattern],
            )
        })?;
        Ok(())
    }

    fn release(&self, generation: usize) -> Result<()> {
        let inner = &self.inner;
        let id = inner.id()?;
        let row = generation as i32;
        inner.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&row);
        let pattern = format!("{}/%", inner.me);
        inner.with_client("release a claim", |c| {
            c.execute(
                "DELETE FROM trials WHERE experiment = $1 AND row_no = $2 AND state = 'running' AND worker LIKE $3",
                &[&id, &row, &pattern],
            )
        })?;
        Ok(())
    }

    fn rungs(&self) -> Arc<dyn super::Rungs> {
        Arc::new(PgRungs(self.inner.clone()))
    }

    fn shares_population(&self) -> bool {
        true
    }

    fn current_population(&self) -> Result<Option<(usize, Vec<Vec<f64>>)>> {
        let id = self.inner.id()?;
        let row = self.inner.with_client("read the population", |c| {
            c.query_opt(
                "SELECT generation, individuals FROM populations WHERE experiment = $1 ORDER BY generation DESC LIMIT 1",
                &[&id],
            )
        })?;
        row.map(|r| {
            let pop: Vec<Vec<f64>> = serde_json::from_value(r.get(1))
                .map_err(|e| self.inner.error(format!("a stored population is not arrays of numbers: {e}")))?;
            Ok((r.get::<_, i32>(0) as usize, pop))
        })
        .transpose()
    }

    fn put_population(&self, generation: usize, genes: &[String], pop: &[Vec<f64>]) -> Result<()> {
        let id = self.inner.id()?;
        let (g, individuals) = (generation as i32, serde_json::json!(pop));
        self.inner.with_client("store a population", |c| {
            c.execute(
                "INSERT INTO populations (experiment, generation, genes, individuals) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
                &[&id, &g, &genes, &individuals],
            )
        })?;
        Ok(())
    }

    fn claim_individual(&self, thread: usize, generation: usize, size: usize) -> Result<Individual> {
        let inner = &self.inner;
        let (id, keys) = inner.attached()?;
        let id = *id;
        let (g, n) = (generation as i32, size as i32);
        let span = Span { lo: g * n, hi: g * n + n, population: Some((g, n)) };
        if let Some((row, _)) = inner.claim_span(thread, span, keys)? {
            return Ok(Individual::Train { k: (row - span.lo) as usize, row: row as usize });
        }
        let rows = inner.with_client("read a generation", |c| {
            c.query(
                "SELECT results, measured FROM trials WHERE experiment = $1 AND row_no >= $2 AND row_no < $3 \
                 ORDER BY row_no",
                &[&id, &span.lo, &span.hi],
            )
        })?;
        Ok(Individual::Complete(rows.iter().map(|r| (results_at(r, 0), measured_at(r, 1))).collect()))
    }

    fn worker_name(&self, thread: usize) -> String {
        format!("{}/{thread}", self.inner.me)
    }
}

/// The database's rungs (table `rungs`), shared by every worker of the experiment.
struct PgRungs(Arc<Inner>);

impl super::Rungs for PgRungs {
    fn record(&self, label: &str, epoch: usize, fitness: f64) -> Result<Vec<f64>> {
        let id = self.0.id()?;
        let epoch = epoch as i32;
        self.0.with_client("record a rung", |c| {
            c.execute(
                "INSERT INTO rungs (experiment, label, epoch, fitness) VALUES ($1, $2, $3, $4) ON CONFLICT \
                 (experiment, label, epoch) DO UPDATE SET fitness = excluded.fitness, recorded = now()",
                &[&id, &label, &epoch, &fitness],
            )?;
            let rows = c.query(
                "SELECT fitness FROM rungs WHERE experiment = $1 AND epoch = $2 AND label <> $3 ORDER BY recorded",
                &[&id, &epoch, &label],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

/// The file in an evolution folder that names the database experiment it mirrors.
pub const STORAGE_MARKER: &str = "storage.txt";
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_urls_and_key_value_strings() {
        assert_eq!(mask("postgres://yolo:s3cr:et@db.lab:5432/evo"), "postgres://yolo:***@db.lab:5432/evo");
        assert_eq!(mask("postgresql://u:p@h/d?sslmode=require"), "postgresql://u:***@h/d?sslmode=require");
        assert_eq!(mask("postgres://u@h/d"), "postgres://u@h/d", "no password, nothing to mask");
        assert_eq!(mask("host=h user=u password=pw dbname=d"), "host=h user=u password=*** dbname=d");
        let url = crate::evolve::store::StorageUrl::new("postgres://a:b@c/d");
        assert_eq!(format!("{url} {url:?}"), "postgres://a:***@c/d StorageUrl(postgres://a:***@c/d)");
    }
}
