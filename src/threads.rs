//! Threads chosen for the machine. libtorch runs each operation on its intra-op threads; the loader's workers
//! need little (a 320-px mosaic takes about half a millisecond, so feeding a CPU training is 2% of a core).
//! Measured on two cores (yolov5n, 320 px, batch 16, `bench/results/README.md`): on an idle machine two
//! intra-op threads train 1.6× faster than one and the number of loader workers (0, 1, 2) makes no
//! difference; with one other process spinning, two threads fall to a third of their speed (libgomp's
//! threads wait for each other while one of them is descheduled) and one thread is the fastest setting. So
//! the training threads are the cores that other processes leave free, measured over 200 ms when the first
//! training of a process starts; `YOLO_LAB_THREADS` or `OMP_NUM_THREADS` override the choice.

use crate::report::Reporter;
use std::sync::OnceLock;
use std::time::Duration;

/// Jiffies per second in `/proc` (`USER_HZ`: 100 on every Linux architecture's ABI).
const CLOCK_TICKS: f64 = 100.0;
/// How long the load of other processes is sampled.
const SAMPLE: Duration = Duration::from_millis(200);

/// Where the thread count came from.
#[derive(Debug, Clone, PartialEq)]
pub enum ThreadSource {
    /// An environment variable (its name) set it.
    Env(&'static str),
    /// The free cores, measured.
    Measured,
    /// `/proc` could not be read: every core.
    Unmeasured,
}

/// The intra-op threads for this process and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadPlan {
    /// Cores this process may use.
    pub cores: usize,
    /// Cores' worth of CPU other processes used while sampling (NaN when not measured).
    pub others_busy: f64,
    /// libtorch intra-op threads.
    pub threads: usize,
    /// Where `threads` came from.
    pub source: ThreadSource,
}

impl std::fmt::Display for ThreadPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} intra-op thread(s) of {} core(s)", self.threads, self.cores)?;
        match &self.source {
            ThreadSource::Env(v) => write!(f, " (set by {v})"),
            ThreadSource::Measured => write!(f, " (other processes busy on {:.1} core(s))", self.others_busy),
            ThreadSource::Unmeasured => write!(f, " (load of other processes unknown)"),
        }
    }
}

/// The plan for this machine now: an environment override, else the cores other processes leave free (at least
/// one), sampled over 200 ms.
pub fn plan() -> ThreadPlan {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for var in ["YOLO_LAB_THREADS", "OMP_NUM_THREADS"] {
        if let Some(n) = std::env::var(var).ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0) {
            return ThreadPlan { cores, others_busy: f64::NAN, threads: n, source: ThreadSource::Env(var) };
        }
    }
    match others_busy(SAMPLE) {
        Some(busy) => {
            let threads = cores.saturating_sub(busy.round() as usize).max(1);
            ThreadPlan { cores, others_busy: busy, threads, source: ThreadSource::Measured }
        }
        None => ThreadPlan { cores, others_busy: f64::NAN, threads: cores, source: ThreadSource::Unmeasured },
    }
}

/// Choose and apply the plan once per process (later calls return the first plan), reporting it.
pub fn configure(reporter: &Reporter) -> ThreadPlan {
    static PLAN: OnceLock<ThreadPlan> = OnceLock::new();
    let mut fresh = false;
    let p = PLAN.get_or_init(|| {
        fresh = true;
        let p = plan();
        tch::set_num_threads(p.threads as i32);
        p
    });
    if fresh {
        reporter.detail(&format!("threads: {p}"));
    }
    p.clone()
}

/// Cores' worth of CPU used by other processes over `window`: busy time of all CPUs (steal included) minus
/// this process's own. None where `/proc` is unavailable.
pub fn others_busy(window: Duration) -> Option<f64> {
    let (b0, s0) = (system_busy()?, self_cpu()?);
    std::thread::sleep(window);
    let (b1, s1) = (system_busy()?, self_cpu()?);
    Some((((b1 - b0) as f64 - (s1 - s0) as f64) / CLOCK_TICKS / window.as_secs_f64()).max(0.0))
}

/// Busy jiffies of all CPUs (`/proc/stat`: everything but idle and iowait).
fn system_busy() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = text.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    (v.len() >= 5).then(|| v.iter().sum::<u64>() - v[3] - v[4])
}

/// This process's user + system jiffies (`/proc/self/stat` fields 14 and 15).
fn self_cpu() -> Option<u64> {
    stat_cpu("/proc/self/stat")
}

/// Another process's user + system jiffies.
#[cfg(test)]
fn process_cpu(pid: u32) -> Option<u64> {
    stat_cpu(&format!("/proc/{pid}/stat"))
}

fn stat_cpu(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    // the command name may hold spaces: fields count from after its closing parenthesis
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_override_wins_and_a_measured_plan_keeps_a_thread() {
        let p = plan();
        assert!(p.cores >= 1 && p.threads >= 1);
        match p.source {
            ThreadSource::Env(_) => {}
            ThreadSource::Measured => {
                assert!(p.others_busy >= 0.0 && p.threads <= p.cores, "{p:?}");
                assert!(p.to_string().contains("other processes busy"), "{p}");
            }
            ThreadSource::Unmeasured => assert_eq!(p.threads, p.cores),
        }
    }

    #[test]
    fn a_spinning_neighbour_shows_as_one_busy_core() {
        if std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) < 2 || system_busy().is_none() {
            eprintln!("SKIPPED: needs /proc and two cores");
            return;
        }
        // a child process, so that it is not this process's own CPU time
        let mut child = std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
        let child_cpu = || process_cpu(child.id());
        std::thread::sleep(Duration::from_millis(50));
        let c0 = child_cpu();
        let window = Duration::from_millis(400);
        let busy = others_busy(window);
        let c1 = child_cpu();
        let _ = child.kill();
        let _ = child.wait();
        let busy = busy.unwrap();
        let (Some(c0), Some(c1)) = (c0, c1) else { panic!("the child's /proc/PID/stat is unreadable") };
        // what the child really ran: other tests of this process (threads of its own, subtracted as this
        // process's time) may have kept it off the cores, so it is the yardstick rather than a full core
        let child_busy = (c1 - c0) as f64 / CLOCK_TICKS / window.as_secs_f64();
        if child_busy < 0.3 {
            eprintln!("SKIPPED: the spinning child got only {child_busy:.2} core(s) (the machine is busy)");
            return;
        }
        assert!(busy >= 0.7 * child_busy, "measured {busy:.2} core(s) of others, the child alone ran {child_busy:.2}");
    }
}
