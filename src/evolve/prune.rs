//! Pruning generations that are not going anywhere: a generation under a pruner is validated at its rung
//! epochs, each measurement is recorded in `rungs.csv` (under the evolution's lock, so threads and processes
//! share it and a resume continues it), and the pruner compares it with what the other generations measured
//! at the same epoch. A pruned generation stops there and is recorded with its last metrics.
//!
//! - [`Pruner::Median`] (Optuna's median rule): from `warmup_epochs` on, every epoch is a rung; a generation
//!   whose fitness is below the median of the others' at that epoch stops, once [`MEDIAN_STARTUP`] others
//!   have reached it.
//! - [`Pruner::SuccessiveHalving`] (asynchronous successive halving, as ASHA and Optuna's
//!   SuccessiveHalvingPruner): rungs after `min_epochs · reduction^k` epochs; a generation continues only if
//!   its fitness is among the best `1 / reduction` of every measurement at that rung so far (the best one when
//!   fewer than `reduction` have been made), so parallel workers never wait for each other.

use super::csv::FolderLock;
use crate::error::{Error, IoContext, Result};
use std::fmt;
use std::io::Write;
use std::path::Path;

/// Measurements the median rule needs from other generations at an epoch before it prunes.
pub const MEDIAN_STARTUP: usize = 2;

/// When generations stop early. Default [`Pruner::None`] (YOLOv5's behaviour: every generation trains to the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pruner {
    /// Train every generation to the end.
    #[default]
    None,
    /// Stop a generation below the median of the others at the same epoch, from `warmup_epochs` on.
    Median {
        /// Epochs trained before any pruning.
        warmup_epochs: usize,
    },
    /// Asynchronous successive halving.
    SuccessiveHalving {
        /// Epochs before the first rung.
        min_epochs: usize,
        /// Each rung keeps the best `1 / reduction`.
        reduction: usize,
    },
}

impl Pruner {
    /// The epochs (0-based) at which a generation of `epochs` epochs is validated and judged; the final epoch
    /// is validated anyway and never judged.
    pub fn rungs(&self, epochs: usize) -> Vec<usize> {
        let last = epochs.saturating_sub(1);
        match *self {
            Pruner::None => vec![],
            Pruner::Median { warmup_epochs } => (warmup_epochs.max(1) - 1..last).collect(),
            Pruner::SuccessiveHalving { min_epochs, reduction } => {
                let mut out = vec![];
                let mut trained = min_epochs.max(1);
                while trained - 1 < last {
                    out.push(trained - 1);
                    trained *= reduction.max(2);
                }
                out
            }
        }
    }

    /// Whether a generation whose fitness at `epoch` is `value` stops, given `others`: what every other
    /// generation measured at that epoch.
    pub fn prunes(&self, epoch: usize, value: f64, others: &[f64]) -> bool {
        match *self {
            Pruner::None => false,
            Pruner::Median { warmup_epochs } => {
                if epoch + 1 < warmup_epochs.max(1) || others.len() < MEDIAN_STARTUP {
                    return false;
                }
                let mut v: Vec<f64> = others.iter().copied().filter(|x| x.is_finite()).collect();
                if v.is_empty() {
                    return false;
                }
                v.sort_by(f64::total_cmp);
                let mid = v.len() / 2;
                let median = if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 };
                value < median
            }
            Pruner::SuccessiveHalving { reduction, .. } => {
                let mut all: Vec<f64> = others.iter().copied().chain([value]).filter(|x| x.is_finite()).collect();
                if all.is_empty() {
                    return true;
                }
                all.sort_by(|a, b| b.total_cmp(a));
                let keep = (all.len() / reduction.max(2)).max(1);
                // NaN is never among the best
                value.partial_cmp(&all[keep - 1]).is_none_or(|o| o == std::cmp::Ordering::Less)
            }
        }
    }
}

impl std::str::FromStr for Pruner {
    type Err = Error;
    /// `none`, `median` or `median:WARMUP`, `sha` or `sha:MIN_EPOCHS:REDUCTION` (defaults: warmup 1; 1 and 3).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config {
            name: "prune",
            message: format!("`{s}` is not none, median[:warmup_epochs] or sha[:min_epochs:reduction]"),
        };
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split(':').collect();
        let num = |i: usize, default: usize| -> Result<usize> {
            parts.get(i).map(|p| p.parse().map_err(|_| bad())).unwrap_or(Ok(default))
        };
        Ok(match parts[0] {
            "none" | "" if parts.len() == 1 => Pruner::None,
            "median" if parts.len() <= 2 => Pruner::Median { warmup_epochs: num(1, 1)? },
            "sha" | "asha" if parts.len() <= 3 => {
                let (min_epochs, reduction) = (num(1, 1)?, num(2, 3)?);
                if min_epochs == 0 || reduction < 2 {
                    return Err(bad());
                }
                Pruner::SuccessiveHalving { min_epochs, reduction }
            }
            _ => return Err(bad()),
        })
    }
}

impl fmt::Display for Pruner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pruner::None => write!(f, "none"),
            Pruner::Median { warmup_epochs } => write!(f, "median:{warmup_epochs}"),
            Pruner::SuccessiveHalving { min_epochs, reduction } => write!(f, "sha:{min_epochs}:{reduction}"),
        }
    }
}

/// `rungs.csv`: one line per measurement at a rung (`generation,epoch,fitness`).
pub const RUNGS_FILE: &str = "rungs.csv";

/// Record `generation`'s fitness at `epoch` and return what the others measured at that epoch, under the
/// caller's lock.
pub fn record_rung(dir: &Path, _lock: &FolderLock, generation: &str, epoch: usize, fitness: f64) -> Result<Vec<f64>> {
    let p = dir.join(RUNGS_FILE);
    let text = if p.is_file() { std::fs::read_to_string(&p).at(&p)? } else { String::new() };
    let mut others = Vec::new();
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        // a line cut short by a crash is skipped
        if let [g, e, v] = cells[..]
            && e.parse() == Ok(epoch)
            && g != generation
            && let Ok(v) = v.parse::<f64>()
        {
            others.push(v);
        }
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&p).at(&p)?;
    let mut line = String::new();
    if text.is_empty() {
        line.push_str("generation,epoch,fitness\n");
    } else if !text.ends_with('\n') {
        line.push('\n');
    }
    line.push_str(&format!("{generation},{epoch},{fitness}\n"));
    f.write_all(line.as_bytes()).at(&p)?;
    f.sync_all().at(&p)?;
    Ok(others)
}

/// The pruner an evolution folder was started with (`pruner.txt`), if any.
pub fn stored(dir: &Path) -> Result<Option<Pruner>> {
    let p = dir.join("pruner.txt");
    if !p.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).at(&p)?;
    text.trim().parse::<Pruner>().map(Some).map_err(|e| Error::DataConfig { path: p, message: e.to_string() })
}

/// Record the pruner in the evolution folder, unless one is recorded.
pub fn store(dir: &Path, pruner: Pruner) -> Result<()> {
    let p = dir.join("pruner.txt");
    if p.is_file() {
        return Ok(());
    }
    crate::fsutil::write_atomic(&p, format!("{pruner}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_follow_the_schedule() {
        assert_eq!(Pruner::None.rungs(10), Vec::<usize>::new());
        assert_eq!(Pruner::Median { warmup_epochs: 2 }.rungs(5), [1, 2, 3]);
        assert_eq!(Pruner::SuccessiveHalving { min_epochs: 1, reduction: 3 }.rungs(10), [0, 2, 8]);
        assert_eq!(Pruner::SuccessiveHalving { min_epochs: 1, reduction: 3 }.rungs(3), [0]);
        assert_eq!(Pruner::SuccessiveHalving { min_epochs: 2, reduction: 2 }.rungs(2), Vec::<usize>::new());
    }

    #[test]
    fn median_pruning_waits_for_its_warmup_and_for_others() {
        let p = Pruner::Median { warmup_epochs: 3 };
        let others = [0.5, 0.6, 0.7];
        for epoch in 0..2 {
            assert!(!p.prunes(epoch, 0.0, &others), "pruned during warmup at epoch {epoch}");
        }
        assert!(p.prunes(2, 0.55, &others));
        assert!(!p.prunes(2, 0.6, &others), "the median itself is not pruned");
        assert!(!p.prunes(2, 0.0, &others[..1]), "too few others");
        assert!(p.prunes(4, 0.5, &[0.5, 0.6, 0.7, 0.8]), "below the even median 0.65");
    }

    #[test]
    fn successive_halving_keeps_the_best_share() {
        let p = Pruner::SuccessiveHalving { min_epochs: 1, reduction: 3 };
        // alone or with fewer than 3 measurements: continue only as the best so far
        assert!(!p.prunes(0, 0.1, &[]));
        assert!(p.prunes(0, 0.1, &[0.2]));
        assert!(!p.prunes(0, 0.3, &[0.2, 0.1]));
        // six measurements: the best two continue
        let others = [0.9, 0.8, 0.7, 0.6, 0.5];
        assert!(!p.prunes(0, 0.85, &others));
        assert!(p.prunes(0, 0.75, &others));
        assert!(p.prunes(0, f64::NAN, &others), "a NaN fitness never continues");
    }

    #[test]
    fn specs_parse_and_print() {
        for s in ["none", "median:1", "median:3", "sha:1:3", "sha:2:2"] {
            assert_eq!(s.parse::<Pruner>().unwrap().to_string(), s);
        }
        assert_eq!("sha".parse::<Pruner>().unwrap(), Pruner::SuccessiveHalving { min_epochs: 1, reduction: 3 });
        assert_eq!("median".parse::<Pruner>().unwrap(), Pruner::Median { warmup_epochs: 1 });
        for bad in ["sha:0:3", "sha:1:1", "mean", "median:x", "sha:1:2:3"] {
            assert!(bad.parse::<Pruner>().unwrap_err().to_string().contains("`prune`"), "{bad}");
        }
    }

    #[test]
    fn rung_records_are_shared_and_survive_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let lock = super::super::csv::lock(dir.path()).unwrap();
        assert!(record_rung(dir.path(), &lock, "0", 0, 0.5).unwrap().is_empty());
        assert_eq!(record_rung(dir.path(), &lock, "1", 0, 0.4).unwrap(), [0.5]);
        // a killed worker left half a line
        let p = dir.path().join(RUNGS_FILE);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"2,0").unwrap();
        assert_eq!(record_rung(dir.path(), &lock, "3", 0, 0.3).unwrap(), [0.5, 0.4]);
        assert_eq!(record_rung(dir.path(), &lock, "3", 2, 0.3).unwrap(), Vec::<f64>::new());
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.ends_with("3,0,0.3\n3,2,0.3\n"), "{text}");
    }
}
