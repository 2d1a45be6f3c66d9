//! Database rows in the file store's formats: the [`Snapshot`] parents are chosen from, the texts of evolve.csv
//! and generations.csv (byte for byte what the file store's appends write), and back: the trials an evolution
//! folder or a lone evolve.csv holds.

use super::{FitnessOf, Snapshot, Trial};
use crate::error::{Error, Result};
use crate::evolve::csv::{self, EvolveCsv, GENERATION_COLUMNS};
use crate::evolve::objective::Measured;
use std::path::Path;

/// The rows of finished trials (in evolve.csv's order) as parents are chosen from them.
pub fn snapshot_of(keys: &[String], trials: &[Trial]) -> Snapshot {
    let columns = csv::METRIC_KEYS.iter().map(|s| s.to_string()).chain(keys.iter().cloned()).collect();
    let rows =
        trials.iter().map(|t| t.results.iter().copied().chain(keys.iter().map(|k| gene(t, k))).collect()).collect();
    let has_measure = |m: &Measured| m.cells().iter().any(|c| !c.is_empty());
    Snapshot {
        table: EvolveCsv { columns, rows },
        pruned: trials.iter().enumerate().filter(|(_, t)| t.pruned_at.is_some()).map(|(i, _)| i).collect(),
        repeats: trials.iter().enumerate().filter_map(|(i, t)| Some((i, t.repeat_of?))).collect(),
        measured: trials
            .iter()
            .enumerate()
            .filter(|(_, t)| has_measure(&t.measured))
            .map(|(i, t)| (i, t.measured))
            .collect(),
    }
}

/// A trial's value of gene `key` (NaN when it lacks it).
pub fn gene(t: &Trial, key: &str) -> f64 {
    t.genes.iter().find(|(k, _)| k == key).map(|(_, v)| *v).unwrap_or(f64::NAN)
}

/// evolve.csv and generations.csv of finished trials (`table`: their [`snapshot_of`]'s), as the file store
/// writes them.
pub fn texts_of(keys: &[String], table: &EvolveCsv, trials: &[Trial]) -> (String, String) {
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let evolve = csv::evolve_text(&keys, &table.rows);
    let mut generations = String::new();
    if !trials.is_empty() {
        generations.push_str(GENERATION_COLUMNS);
        generations.push('\n');
        for (i, t) in trials.iter().enumerate() {
            generations.push_str(&csv::generations_line(&t.generation_cells(i)));
        }
    }
    (evolve, generations)
}

/// Write an experiment's evolve.csv, generations.csv and (given a fitness) hyp_evolve.yaml into `dir`, each
/// replaced atomically.
pub fn write(dir: &Path, keys: &[String], trials: &[Trial], fitness: Option<FitnessOf<'_>>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let table = snapshot_of(keys, trials).table;
    let (evolve, generations) = texts_of(keys, &table, trials);
    crate::fsutil::write_atomic(&dir.join("evolve.csv"), evolve.as_bytes())?;
    crate::fsutil::write_atomic(&dir.join("generations.csv"), generations.as_bytes())?;
    if let Some(f) = fitness {
        csv::write_hyp_evolve(dir, &table, f)?;
    }
    Ok(())
}

/// The trials an evolution folder (or a lone evolve.csv, YOLOv5's or ours) holds, in its row order: with
/// generations.csv beside it, its labels, workers, timings, measurements and notes; without, row numbers and
/// the fitness by `fitness`.
pub fn read_trials(csv_path: &Path, fitness: FitnessOf<'_>) -> Result<Vec<Trial>> {
    let table = csv::read(csv_path)?;
    let dir = csv_path.parent().unwrap_or(Path::new("."));
    let side = dir.join("generations.csv");
    let lines: Vec<Vec<String>> = if side.is_file() {
        let text = std::fs::read_to_string(&side).map_err(|e| Error::io(&side, e))?;
        text.lines().map(csv::split_line).collect()
    } else {
        vec![]
    };
    let head: Vec<String> = lines.first().cloned().unwrap_or_default();
    let mut by_row: std::collections::BTreeMap<usize, &Vec<String>> = Default::default();
    for l in lines.iter().skip(1) {
        if let Some(r) = l.first().and_then(|r| r.parse().ok()) {
            by_row.insert(r, l);
        }
    }
    let genes: Vec<&str> = table.hyp_columns();
    Ok((0..table.rows.len())
        .map(|i| {
            let line = by_row.get(&i);
            let get = |c: &str| -> Option<String> {
                let k = head.iter().position(|h| h == c)?;
                line?.get(k).filter(|v| !v.is_empty()).cloned()
            };
            let num = |c: &str| get(c).and_then(|v| v.parse::<f64>().ok());
            let results = table.results(i);
            let cell = |c: &str| get(c);
            let m = [cell("params"), cell("images_per_s"), cell("peak_mem_mib"), cell("latency_ms")];
            Trial {
                claim: None,
                label: get("generation").unwrap_or_else(|| i.to_string()),
                seed: num("seed").unwrap_or(0.0) as u64,
                worker: get("worker").unwrap_or_else(|| "0".into()),
                device: get("device").unwrap_or_else(|| "auto".into()),
                fitness: num("fitness").unwrap_or_else(|| fitness(&results)),
                wall_s: num("wall_s").unwrap_or(0.0),
                train_s: num("train_s").unwrap_or(0.0),
                epochs: num("epochs").unwrap_or(0.0) as usize,
                pruned_at: num("pruned_at_epoch").map(|e| e as usize),
                repeat_of: num("repeat_of").map(|e| e as usize),
                measured: Measured::from_cells(m.each_ref().map(|c| c.as_deref())),
                note: get("note").unwrap_or_default(),
                results,
                genes: genes.iter().map(|g| (g.to_string(), table.rows[i][table.col(g).expect("listed")])).collect(),
                failed: false,
            }
        })
        .collect())
}
