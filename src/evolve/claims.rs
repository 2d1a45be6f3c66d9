//! Row claims: which generations of an evolution are being trained right now, so that processes and threads
//! sharing one evolve.csv never train the same generation twice and stop at the requested number of rows.
//!
//! `.evolve.claims` (JSON, beside evolve.csv, replaced atomically under the folder lock) holds the next
//! generation number and the live claims. A generation number is handed out once and never again: it seeds
//! that generation's mutation, so two claims cannot draw the same hyperparameters from the same parents. A
//! claim whose process has died (same host, process gone or its pid reused) is dropped at the next claim, so
//! a killed worker's generation is trained again by someone else. YOLOv5 has no equivalent: its workers
//! sharing a bucket's evolve.csv repeat and overshoot each other.

use super::csv::FolderLock;
use crate::error::Result;
use crate::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The claims file of an evolution folder.
pub const CLAIMS_FILE: &str = ".evolve.claims";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Claims {
    /// The next generation number to hand out.
    next: usize,
    /// Generations being trained.
    live: Vec<Claim>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Claim {
    generation: usize,
    pid: u32,
    host: String,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22), to tell a reused pid.
    started: u64,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(CLAIMS_FILE)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// Start time of a process (field 22 of `/proc/PID/stat`), if it is running.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces and parentheses: fields 3.. follow the last ')'
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

fn alive(c: &Claim, here: &str) -> bool {
    c.host != here || start_time(c.pid) == Some(c.started)
}

fn read(dir: &Path) -> Claims {
    // a missing or unreadable file means no live claims: at worst a generation is trained twice
    std::fs::read(path(dir)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn write(dir: &Path, c: &Claims) -> Result<()> {
    write_atomic(&path(dir), &serde_json::to_vec(c).expect("claims serialise"))
}

/// Claim the next generation while `rows` are recorded and the evolution should reach `target` rows: its
/// number, or `None` when recorded rows plus live claims already reach the target.
pub fn claim(dir: &Path, _lock: &FolderLock, rows: usize, target: usize) -> Result<Option<usize>> {
    let here = host();
    let mut c = read(dir);
    c.live.retain(|x| alive(x, &here));
    if rows + c.live.len() >= target {
        write(dir, &c)?;
        return Ok(None);
    }
    let generation = c.next.max(rows);
    c.next = generation + 1;
    let pid = std::process::id();
    c.live.push(Claim { generation, pid, host: here, started: start_time(pid).unwrap_or(0) });
    write(dir, &c)?;
    Ok(Some(generation))
}

/// Release a claim (its row was recorded, or its worker gave up).
pub fn release(dir: &Path, _lock: &FolderLock, generation: usize) -> Result<()> {
    let mut c = read(dir);
    c.live.retain(|x| x.generation != generation);
    write(dir, &c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_the_target_holds() {
        let dir = tempfile::tempdir().unwrap();
        let lock = super::super::csv::lock(dir.path()).unwrap();
        assert_eq!(claim(dir.path(), &lock, 0, 3).unwrap(), Some(0));
        assert_eq!(claim(dir.path(), &lock, 0, 3).unwrap(), Some(1));
        assert_eq!(claim(dir.path(), &lock, 0, 3).unwrap(), Some(2));
        assert_eq!(claim(dir.path(), &lock, 0, 3).unwrap(), None, "three in flight reach the target");
        // generation 1 finishes first: its number is not handed out again
        release(dir.path(), &lock, 1).unwrap();
        assert_eq!(claim(dir.path(), &lock, 1, 4).unwrap(), Some(3));
        // a dead process's claim is dropped
        let mut c = read(dir.path());
        c.live.push(Claim { generation: 9, pid: u32::MAX - 1, host: host(), started: 1 });
        c.live.push(Claim { generation: 10, pid: 1, host: "elsewhere".into(), started: 1 });
        write(dir.path(), &c).unwrap();
        assert_eq!(claim(dir.path(), &lock, 1, 6).unwrap(), Some(4));
        let live: Vec<usize> = read(dir.path()).live.iter().map(|c| c.generation).collect();
        assert_eq!(live, vec![0, 2, 3, 10, 4]);
    }
}
