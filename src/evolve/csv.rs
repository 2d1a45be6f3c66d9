//! `evolve.csv` and `hyp_evolve.yaml` in YOLOv5's formats (`utils/general.py::print_mutation`), the side file
//! `generations.csv`, and the lock that serialises appends across threads and processes.
//!
//! Appends hold an exclusive lock on `.evolve.lock` beside the CSV (an OS file lock, so other processes pointed
//! at the same folder wait too), repair a last line left incomplete by a crash, and write each row with one
//! `write` followed by `fsync`.

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{fmt_g_width, write_atomic, yaml_float};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The 7 result columns before the hyperparameters: results.csv's metric and validation-loss columns.
pub const METRIC_KEYS: [&str; 7] = {
    let r = crate::train::RESULTS_COLUMNS;
    [r[4], r[5], r[6], r[7], r[8], r[9], r[10]]
};

/// The parsed file: column names (trimmed) and complete rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EvolveCsv {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows of values, one per training, in file order.
    pub rows: Vec<Vec<f64>>,
}

impl EvolveCsv {
    /// Column index by name.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The 7 results of a row, matched by name (missing columns read 0).
    pub fn results(&self, row: usize) -> [f64; 7] {
        std::array::from_fn(|k| self.col(METRIC_KEYS[k]).map(|c| self.rows[row][c]).unwrap_or(0.0))
    }

    /// Gene columns: everything after the metrics (the hyperparameters, then any structural genes).
    pub fn hyp_columns(&self) -> Vec<&str> {
        self.columns.iter().filter(|c| !METRIC_KEYS.contains(&c.as_str())).map(String::as_str).collect()
    }
}

/// The header line for these hyperparameter keys.
pub fn header(hyp_keys: &[&str]) -> String {
    METRIC_KEYS.iter().chain(hyp_keys).map(|k| format!("{k:>20}")).collect::<Vec<_>>().join(",")
}

/// A row line.
pub fn row_line(values: &[f64]) -> String {
    values.iter().map(|v| fmt_g_width(*v, 20, 5)).collect::<Vec<_>>().join(",")
}

/// Parse evolve.csv text (ours or YOLOv5's). A last line cut short by a crash (fewer cells than the header,
/// an empty cell, or no newline at the end) is ignored. Other unparsable rows are errors naming the line.
pub fn parse(text: &str, path: &Path) -> Result<EvolveCsv> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let complete_last = text.ends_with('\n');
    if !complete_last {
        lines.pop(); // partial final line
    }
    let mut it = lines.into_iter().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, head)) = it.next() else { return Ok(EvolveCsv::default()) };
    let columns: Vec<String> = head.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
    let mut rows = Vec::new();
    for (i, line) in it {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cells: Vec<&str> = if cells.len() > columns.len() && cells[columns.len()..].iter().all(|c| c.is_empty()) {
            cells[..columns.len()].to_vec()
        } else {
            cells
        };
        if cells.len() != columns.len() {
            return Err(Error::Csv {
                path: path.into(),
                line: i + 1,
                message: format!("{} values for {} columns", cells.len(), columns.len()),
            });
        }
        let row: Vec<f64> = cells
            .iter()
            .map(|c| {
                c.parse::<f64>().map_err(|_| Error::Csv {
                    path: path.into(),
                    line: i + 1,
                    message: format!("`{c}` is not a number"),
                })
            })
            .collect::<Result<_>>()?;
        rows.push(row);
    }
    Ok(EvolveCsv { columns, rows })
}

/// Read evolve.csv; a missing file is an empty table.
pub fn read(path: &Path) -> Result<EvolveCsv> {
    match std::fs::read_to_string(path) {
        Ok(t) => parse(&t, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EvolveCsv::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// An exclusive lock on the evolution folder, held until dropped.
pub struct FolderLock {
    _file: std::fs::File,
}

/// Lock `dir/.evolve.lock` (blocking).
pub fn lock(dir: &Path) -> Result<FolderLock> {
    std::fs::create_dir_all(dir).at(dir)?;
    let p = dir.join(".evolve.lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&p).at(&p)?;
    f.lock().at(&p)?;
    Ok(FolderLock { _file: f })
}

/// Cut off a final line left without its newline by a crash mid-write, under the caller's lock. Returns
/// whether there was one (its row is lost: the generation that wrote it trains again).
pub fn repair_torn_line(path: &Path, _lock: &FolderLock) -> Result<bool> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    };
    if text.is_empty() || text.ends_with(b"\n") {
        return Ok(false);
    }
    let keep = text.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
    let f = std::fs::OpenOptions::new().write(true).open(path).at(path)?;
    f.set_len(keep as u64).at(path)?;
    f.sync_all().at(path)?;
    Ok(true)
}

/// Append one row to evolve.csv (writing the header when the file is new or empty), under the caller's lock.
/// A final line without its newline (a crash mid-write) is cut off first. Columns are matched by name: a new
/// row for an existing file follows that file's column order.
pub fn append(path: &Path, _lock: &FolderLock, results: &[f64; 7], hyp: &[(String, f64)]) -> Result<usize> {
    let mut f = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).at(path)?;
    let mut text = String::new();
    f.read_to_string(&mut text).at(path)?;
    if !text.is_empty() && !text.ends_with('\n') {
        let keep = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
        f.set_len(keep as u64).at(path)?;
        text.truncate(keep);
    }
    let existing = parse(&text, path)?;
    let mut out = String::new();
    let columns: Vec<String> = if existing.columns.is_empty() {
        let keys: Vec<&str> = hyp.iter().map(|(k, _)| k.as_str()).collect();
        out.push_str(&header(&keys));
        out.push('\n');
        METRIC_KEYS.iter().map(|s| s.to_string()).chain(hyp.iter().map(|(k, _)| k.clone())).collect()
    } else {
        existing.columns.clone()
    };
    let values: Vec<f64> = columns
        .iter()
        .map(|c| match METRIC_KEYS.iter().position(|m| m == c) {
            Some(k) => results[k],
            None => hyp.iter().find(|(k, _)| k == c).map(|(_, v)| *v).unwrap_or(f64::NAN),
        })
        .collect();
    out.push_str(&row_line(&values));
    out.push('\n');
    f.seek(SeekFrom::End(0)).at(path)?;
    f.write_all(out.as_bytes()).at(path)?;
    f.sync_all().at(path)?;
    Ok(existing.rows.len() + 1)
}

/// hyp_evolve.yaml text for the best row of a table (by `fitness`), as YOLOv5 writes it.
pub fn hyp_evolve_yaml(csv: &EvolveCsv, fitness: &dyn Fn(&[f64; 7]) -> f64) -> Option<String> {
    if csv.rows.is_empty() {
        return None;
    }
    let fits: Vec<f64> = (0..csv.rows.len()).map(|i| fitness(&csv.results(i))).collect();
    hyp_evolve_yaml_row(csv, super::top_rows(&fits, 1)[0])
}

/// hyp_evolve.yaml text naming row `best` as the best generation.
pub fn hyp_evolve_yaml_row(csv: &EvolveCsv, best: usize) -> Option<String> {
    if best >= csv.rows.len() {
        return None;
    }
    let r = csv.results(best);
    let mut s = format!(
        "# YOLOv5 Hyperparameter Evolution Results\n# Best generation: {best}\n# Last generation: {}\n",
        csv.rows.len() - 1
    );
    s.push_str(&format!("# {}\n", METRIC_KEYS.iter().map(|k| format!("{k:>20}")).collect::<Vec<_>>().join(", ")));
    s.push_str(&format!("# {}\n\n", r.iter().map(|v| fmt_g_width(*v, 20, 5)).collect::<Vec<_>>().join(", ")));
    let value = |c: &str| csv.rows[best][csv.col(c).expect("listed column")];
    let (structure, hyp): (Vec<&str>, Vec<&str>) =
        csv.hyp_columns().into_iter().partition(|c| super::structure::is_structural(c));
    if !structure.is_empty() {
        // comments, so that the file stays a hyp file YOLOv5 and yolo-lab load
        let genes: Vec<String> =
            structure.iter().map(|c| format!("{c}: {}", super::structure::describe(c, value(c)))).collect();
        s.push_str(&format!("# Structural genes of this generation: {}\n\n", genes.join(", ")));
    }
    for c in hyp {
        s.push_str(&format!("{c}: {}\n", yaml_float(value(c))));
    }
    Some(s)
}

/// Rewrite hyp_evolve.yaml (atomically) from the CSV.
pub fn write_hyp_evolve(dir: &Path, csv: &EvolveCsv, fitness: &dyn Fn(&[f64; 7]) -> f64) -> Result<PathBuf> {
    let p = dir.join("hyp_evolve.yaml");
    if let Some(text) = hyp_evolve_yaml(csv, fitness) {
        write_atomic(&p, text.as_bytes())?;
    }
    Ok(p)
}

/// Columns of generations.csv (`pruned_at_epoch` empty for a generation that trained to the end, `repeat_of`
/// the row a re-evaluation repeats; `params`, `images_per_s`, `peak_mem_mib` and `latency_ms` the
/// [`Measured`](super::objective::Measured) objectives, empty when not measured).
pub const GENERATION_COLUMNS: &str = "row,generation,seed,worker,device,fitness,wall_s,train_s,epochs,pruned_at_epoch,\
                                      repeat_of,params,images_per_s,peak_mem_mib,latency_ms,note";

/// One CSV cell: quoted when it holds a comma or a quote.
fn cell(c: &str) -> String {
    if c.contains(',') || c.contains('"') { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.to_string() }
}

/// A generations.csv line (with its newline) of these cells.
pub fn generations_line(fields: &[String]) -> String {
    let mut line = fields.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

/// evolve.csv's whole text for rows of (results, genes in `hyp_keys`' order), as appends would write it.
pub fn evolve_text(hyp_keys: &[&str], rows: &[Vec<f64>]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    out.push_str(&header(hyp_keys));
    out.push('\n');
    for r in rows {
        out.push_str(&row_line(r));
        out.push('\n');
    }
    out
}

/// The cells of a CSV line (quoted cells may hold commas and doubled quotes).
pub fn split_line(line: &str) -> Vec<String> {
    let (mut cells, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    cells.push(cur);
    cells
}

/// generations.csv of an earlier version with today's columns: every cell moved under its column's name,
/// columns it lacked empty. `None` when the header is today's (or the file is empty).
fn upgrade_generations(text: &str) -> Option<String> {
    let head = split_line(text.lines().next()?);
    let now: Vec<&str> = GENERATION_COLUMNS.split(',').collect();
    if head.iter().map(String::as_str).eq(now.iter().copied()) {
        return None;
    }
    let mut out = format!("{GENERATION_COLUMNS}\n");
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let cells = split_line(line);
        let moved: Vec<String> = now
            .iter()
            .map(|c| head.iter().position(|h| h == c).and_then(|k| cells.get(k)).map(|v| cell(v)).unwrap_or_default())
            .collect();
        out.push_str(&moved.join(","));
        out.push('\n');
    }
    Some(out)
}

/// Append a line to generations.csv (header first when new; a file of an earlier version gets the new
/// columns, empty, first), under the caller's lock.
pub fn append_generation(dir: &Path, _lock: &FolderLock, fields: &[String]) -> Result<()> {
    let p = dir.join("generations.csv");
    let text = if p.is_file() { std::fs::read_to_string(&p).at(&p)? } else { String::new() };
    if let Some(up) = upgrade_generations(&text) {
        write_atomic(&p, up.as_bytes())?;
    }
    let new = text.is_empty();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&p).at(&p)?;
    let mut line = String::new();
    if new {
        line.push_str(GENERATION_COLUMNS);
        line.push('\n');
    }
    line.push_str(&generations_line(fields));
    f.write_all(line.as_bytes()).at(&p)?;
    f.sync_all().at(&p)
}

/// Drop generations.csv lines of rows `from` and later: lines a worker killed between writing its
/// generations.csv line and its evolve.csv row left for a row that does not exist. Returns how many.
pub fn drop_generations_from(dir: &Path, _lock: &FolderLock, from: usize) -> Result<usize> {
    let p = dir.join("generations.csv");
    if !p.is_file() {
        return Ok(0);
    }
    let text = std::fs::read_to_string(&p).at(&p)?;
    let mut lines = text.lines();
    let Some(head) = lines.next() else { return Ok(0) };
    let row_of = |l: &str| split_line(l).first().and_then(|r| r.parse::<usize>().ok());
    let (keep, dropped): (Vec<&str>, Vec<&str>) =
        lines.filter(|l| !l.is_empty()).partition(|l| row_of(l).is_none_or(|r| r < from));
    if dropped.is_empty() {
        return Ok(0);
    }
    let out: String = std::iter::once(head).chain(keep).map(|l| format!("{l}\n")).collect();
    write_atomic(&p, out.as_bytes())?;
    Ok(dropped.len())
}

/// generations.csv's `row` and `column` of every line where `column` is set.
pub fn rows_with(dir: &Path, column: &str) -> Result<Vec<(usize, String)>> {
    let p = dir.join("generations.csv");
    if !p.is_file() {
        return Ok(vec![]);
    }
    let text = std::fs::read_to_string(&p).at(&p)?;
    let mut lines = text.lines();
    let head = lines.next().map(split_line).unwrap_or_default();
    let col = |name: &str| head.iter().position(|h| h == name);
    let (Some(row), Some(c)) = (col("row"), col(column)) else { return Ok(vec![]) };
    Ok(lines
        .map(split_line)
        .filter_map(|cells| {
            let v = cells.get(c).filter(|v| !v.is_empty())?.clone();
            Some((cells.get(row)?.parse().ok()?, v))
        })
        .collect())
}

/// The evolve.csv rows whose generation was pruned (generations.csv's `pruned_at_epoch`).
pub fn pruned_rows(dir: &Path) -> Result<std::collections::BTreeSet<usize>> {
    Ok(rows_with(dir, "pruned_at_epoch")?.into_iter().map(|(r, _)| r).collect())
}

/// Re-evaluations: row → the row it repeats (generations.csv's `repeat_of`).
pub fn repeats(dir: &Path) -> Result<std::collections::BTreeMap<usize, usize>> {
    Ok(rows_with(dir, "repeat_of")?.into_iter().filter_map(|(r, v)| Some((r, v.parse().ok()?))).collect())
}

/// The measured objectives of every row generations.csv records (rows without any measurement are absent).
pub fn measured(dir: &Path) -> Result<std::collections::BTreeMap<usize, super::objective::Measured>> {
    let mut cells: std::collections::BTreeMap<usize, [Option<String>; 4]> = Default::default();
    for (k, column) in ["params", "images_per_s", "peak_mem_mib", "latency_ms"].into_iter().enumerate() {
        for (row, v) in rows_with(dir, column)? {
            cells.entry(row).or_default()[k] = Some(v);
        }
    }
    Ok(cells
        .into_iter()
        .map(|(row, c)| (row, super::objective::Measured::from_cells(c.each_ref().map(|v| v.as_deref()))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_row_names_its_file_and_line() {
        let text = "metrics/precision,lr0\n0.5,0.01\n\n0.4,x\n";
        match parse(text, Path::new("evo/evolve.csv")) {
            Err(Error::Csv { path, line, message }) => {
                assert_eq!((path.as_path(), line), (Path::new("evo/evolve.csv"), 4));
                assert_eq!(message, "`x` is not a number");
            }
            other => panic!("expected a CSV error, got {other:?}"),
        }
        let e = parse("a,b\n1,2,3\n", Path::new("e.csv")).unwrap_err();
        assert_eq!(e.to_string(), "e.csv:2: 3 values for 2 columns");
    }

    #[test]
    fn generations_csv_gains_its_new_columns_and_names_pruned_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("generations.csv");
        let v1 = "row,generation,seed,worker,device,fitness,wall_s,train_s,note";
        std::fs::write(&p, format!("{v1}\n0,0,0,0,cpu,0.1,1.0,0.9,\"a, quoted \"\"note\"\"\"\n")).unwrap();
        let lock = lock(dir.path()).unwrap();
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        append_generation(
            dir.path(),
            &lock,
            &f(&["1", "1", "0", "0", "cpu", "0.2", "1.0", "0.5", "1", "0", "", "", "", "", "", "pruned"]),
        )
        .unwrap();
        let row2 = ["2", "2", "0", "0", "cpu", "0.2", "1.0", "0.5", "3", "", "0", "1000", "12.5", "300.0", "4.2", ""];
        append_generation(dir.path(), &lock, &f(&row2)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], GENERATION_COLUMNS);
        assert_eq!(
            split_line(lines[1]),
            f(&["0", "0", "0", "0", "cpu", "0.1", "1.0", "0.9", "", "", "", "", "", "", "", "a, quoted \"note\""])
        );
        assert_eq!(pruned_rows(dir.path()).unwrap().into_iter().collect::<Vec<_>>(), [1]);
        assert_eq!(repeats(dir.path()).unwrap().into_iter().collect::<Vec<_>>(), [(2, 0)]);
        let m = measured(dir.path()).unwrap();
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [2], "only row 2 measured anything");
        assert_eq!(
            (m[&2].params, m[&2].images_per_s, m[&2].peak_mem_mib, m[&2].latency_ms),
            (1000.0, 12.5, 300.0, 4.2)
        );
        // a line for a row evolve.csv never got (its writer killed in between) is dropped by the next record
        assert_eq!(drop_generations_from(dir.path(), &lock, 2).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 3);
        assert_eq!(drop_generations_from(dir.path(), &lock, 2).unwrap(), 0);
    }
}
