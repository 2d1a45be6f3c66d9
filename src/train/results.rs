//! `results.csv` in YOLOv5's exact format (`utils/loggers/__init__.py::on_fit_epoch_end`): 14 columns, header
//! cells `%20s`, values `%20.5g`, comma separated. One writer and one reader.

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{fmt_g_width, write_atomic};
use std::path::Path;

/// The 14 column names.
pub const RESULTS_COLUMNS: [&str; 14] = [
    "epoch",
    "train/box_loss",
    "train/obj_loss",
    "train/cls_loss",
    "metrics/precision",
    "metrics/recall",
    "metrics/mAP_0.5",
    "metrics/mAP_0.5:0.95",
    "val/box_loss",
    "val/obj_loss",
    "val/cls_loss",
    "x/lr0",
    "x/lr1",
    "x/lr2",
];

/// One epoch's row.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EpochRow {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean training losses (box, obj, cls).
    pub train_loss: [f64; 3],
    /// Precision, recall, mAP@0.5, mAP@0.5:0.95.
    pub metrics: [f64; 4],
    /// Validation losses (box, obj, cls).
    pub val_loss: [f64; 3],
    /// Learning rates of the bias, weight and norm groups at the end of the epoch, before the scheduler step.
    pub lr: [f64; 3],
}

impl EpochRow {
    /// The 14 values in column order.
    pub fn values(&self) -> [f64; 14] {
        let mut v = [0.0; 14];
        v[0] = self.epoch as f64;
        v[1..4].copy_from_slice(&self.train_loss);
        v[4..8].copy_from_slice(&self.metrics);
        v[8..11].copy_from_slice(&self.val_loss);
        v[11..14].copy_from_slice(&self.lr);
        v
    }

    /// From 14 values in column order.
    pub fn from_values(v: &[f64]) -> Self {
        EpochRow {
            epoch: v[0] as usize,
            train_loss: [v[1], v[2], v[3]],
            metrics: [v[4], v[5], v[6], v[7]],
            val_loss: [v[8], v[9], v[10]],
            lr: [v[11], v[12], v[13]],
        }
    }

    /// YOLOv5's fitness of this row.
    pub fn fitness(&self) -> f64 {
        crate::metrics::fitness(&self.metrics)
    }
}

/// The header line (no newline).
pub fn header() -> String {
    RESULTS_COLUMNS.iter().map(|c| format!("{c:>20}")).collect::<Vec<_>>().join(",")
}

/// One row line (no newline).
pub fn row_line(r: &EpochRow) -> String {
    r.values().iter().map(|v| fmt_g_width(*v, 20, 5)).collect::<Vec<_>>().join(",")
}

/// The whole file for these rows.
pub fn to_csv(rows: &[EpochRow]) -> String {
    let mut s = header() + "\n";
    for r in rows {
        s.push_str(&row_line(r));
        s.push('\n');
    }
    s
}

/// Replace `path` atomically with these rows.
pub fn write(path: &Path, rows: &[EpochRow]) -> Result<()> {
    write_atomic(path, to_csv(rows).as_bytes())
}

/// Read a results.csv (ours or YOLOv5's); columns are matched by name; a truncated last line is ignored.
pub fn read(path: &Path) -> Result<Vec<EpochRow>> {
    let text = std::fs::read_to_string(path).at(path)?;
    parse(&text, path)
}

/// Parse results.csv text; `path` labels errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<EpochRow>> {
    let mut lines = text.lines();
    let head: Vec<String> = lines.next().unwrap_or_default().split(',').map(|s| s.trim().to_string()).collect();
    let idx: Vec<usize> = RESULTS_COLUMNS
        .iter()
        .map(|c| {
            head.iter().position(|h| h == c).ok_or_else(|| Error::DataConfig {
                path: path.into(),
                message: format!("column `{c}` missing from the header"),
            })
        })
        .collect::<Result<_>>()?;
    let mut rows = Vec::new();
    let body: Vec<&str> = lines.collect();
    for (i, line) in body.iter().enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() == 1 && cells[0].is_empty() {
            continue;
        }
        if cells.len() != head.len() || cells.iter().any(|c| c.is_empty()) {
            // a last line cut short by a crash (no newline after it) is ignored; anywhere else it is an error
            if i + 1 == body.len() && !text.ends_with('\n') {
                continue;
            }
            return Err(Error::Csv {
                path: path.into(),
                line: i + 2,
                message: format!("{} cells for {} columns, or an empty cell", cells.len(), head.len()),
            });
        }
        let vals: Vec<f64> = idx
            .iter()
            .map(|&k| {
                cells[k].parse::<f64>().map_err(|_| Error::Csv {
                    path: path.into(),
                    line: i + 2,
                    message: format!("`{}` is not a number", cells[k]),
                })
            })
            .collect::<Result<_>>()?;
        rows.push(EpochRow::from_values(&vals));
    }
    Ok(rows)
}
