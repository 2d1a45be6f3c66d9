//! The compute environment: libtorch build, CUDA/cuDNN, NVML, threads (`yolo-lab doctor`).

use std::fmt;
use std::path::PathBuf;

/// A report on what this process can compute with, and what is wrong if anything is.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvReport {
    /// libtorch version this crate was built for.
    pub libtorch_version: String,
    /// Where libtorch was linked from (the `LIBTORCH` folder at build time, if known).
    pub libtorch_path: Option<PathBuf>,
    /// CUDA usable.
    pub cuda: bool,
    /// cuDNN usable.
    pub cudnn: bool,
    /// Number of CUDA devices.
    pub cuda_devices: i64,
    /// NVML status: driver version and device names, or why it is unavailable.
    pub nvml: std::result::Result<String, String>,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// libtorch inter-op threads.
    pub interop_threads: i32,
    /// `OMP_WAIT_POLICY` of this process.
    pub omp_wait_policy: Option<String>,
    /// The intra-op threads a training started now would use, and why.
    pub thread_plan: crate::threads::ThreadPlan,
    /// Problems found, each with what to do about it.
    pub problems: Vec<String>,
}

/// The libtorch version tch 0.26 is built against.
pub const LIBTORCH_VERSION: &str = "2.13.0";

impl EnvReport {
    /// Inspect this process.
    pub fn collect() -> Self {
        let libtorch_path = option_env!("LIBTORCH").map(PathBuf::from);
        let cuda = tch::Cuda::is_available();
        let cudnn = tch::Cuda::cudnn_is_available();
        let cuda_devices = tch::Cuda::device_count();
        let nvml = nvml_status();
        let omp_wait_policy = std::env::var("OMP_WAIT_POLICY").ok();
        let mut problems = Vec::new();
        if let Some(p) = &libtorch_path {
            let lib = p.join("lib");
            if !lib.is_dir() {
                problems.push(format!("libtorch folder {} is gone: run scripts/setup_libtorch.sh", lib.display()));
            }
            let cuda_lib = lib.join("libtorch_cuda.so").exists();
            if nvml.is_ok() && !cuda_lib {
                problems.push("an NVIDIA driver is present but libtorch is the CPU layout: run `scripts/setup_libtorch.sh cuda`, then `cargo clean -p torch-sys`".into());
            }
            if cuda_lib && nvml.is_ok() && !cuda {
                problems.push("libtorch_cuda.so exists and a driver answers, but CUDA is unavailable: check CUDA_VISIBLE_DEVICES and that the binary links torch_cuda (build.rs)".into());
            }
        }
        EnvReport {
            libtorch_version: LIBTORCH_VERSION.into(),
            libtorch_path,
            cuda,
            cudnn,
            cuda_devices,
            nvml,
            threads: tch::get_num_threads(),
            interop_threads: tch::get_num_interop_threads(),
            omp_wait_policy,
            thread_plan: crate::threads::plan(),
            problems,
        }
    }
}

/// NVML: driver version and device names, or why it cannot be used (no driver is normal on CPU machines).
pub fn nvml_status() -> std::result::Result<String, String> {
    let nvml = nvml_wrapper::Nvml::init().map_err(|e| format!("unavailable ({e})"))?;
    let driver = nvml.sys_driver_version().unwrap_or_else(|e| format!("? ({e})"));
    let n = nvml.device_count().map_err(|e| format!("device count failed: {e}"))?;
    let names: Vec<String> = (0..n)
        .map(|i| nvml.device_by_index(i).and_then(|d| d.name()).unwrap_or_else(|e| format!("device {i}: {e}")))
        .collect();
    Ok(format!("driver {driver}, {n} device(s): {}", names.join(", ")))
}

impl fmt::Display for EnvReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "yolo-lab {}", env!("CARGO_PKG_VERSION"))?;
        writeln!(
            f,
            "libtorch        {} ({})",
            self.libtorch_version,
            self.libtorch_path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "path unknown".into())
        )?;
        writeln!(f, "CUDA            {} ({} device(s))", yes(self.cuda), self.cuda_devices)?;
        writeln!(f, "cuDNN           {}", yes(self.cudnn))?;
        match &self.nvml {
            Ok(s) => writeln!(f, "NVML            {s}")?,
            Err(e) => writeln!(f, "NVML            {e}")?,
        }
        writeln!(f, "threads         {} intra-op, {} inter-op now", self.threads, self.interop_threads)?;
        writeln!(f, "training uses   {}", self.thread_plan)?;
        let policy = match self.omp_wait_policy.as_deref() {
            None => "(unset: libgomp spins between operations, the fastest setting on an idle machine)",
            Some(p) if p.eq_ignore_ascii_case("passive") => {
                "PASSIVE (threads sleep between operations: ~15% slower on an idle machine, less slowdown under load)"
            }
            Some(p) => p,
        };
        writeln!(f, "OMP_WAIT_POLICY {policy}")?;
        if self.problems.is_empty() {
            write!(f, "no problems found")
        } else {
            for p in &self.problems {
                writeln!(f, "PROBLEM: {p}")?;
            }
            Ok(())
        }
    }
}

/// Where telemetry figures come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TelemetrySource {
    /// NVML on this GPU (index, name).
    Nvml(u32, String),
    /// No NVML (CPU machine or no driver): process memory and CPU only.
    Process(String),
}

impl fmt::Display for TelemetrySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TelemetrySource::Nvml(i, n) => write!(f, "NVML, GPU {i} ({n})"),
            TelemetrySource::Process(why) => write!(f, "process RSS and CPU only (no GPU telemetry: {why})"),
        }
    }
}

/// One telemetry sample. GPU fields are NaN without NVML.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TelemetrySample {
    /// Seconds since the sampler started.
    pub time_s: f64,
    /// Device memory in use (all processes), MiB.
    pub gpu_mem_used_mib: f64,
    /// This process's device memory, MiB.
    pub process_gpu_mem_mib: f64,
    /// Device memory in use as a percentage of the total ("GPU memory allocated %").
    pub gpu_mem_allocated_pct: f64,
    /// GPU utilisation, %.
    pub gpu_util_pct: f64,
    /// This process's resident memory, MiB.
    pub process_rss_mib: f64,
    /// This process's CPU use, % of one core.
    pub process_cpu_pct: f64,
}

/// Columns of gpu.csv.
pub const TELEMETRY_COLUMNS: [&str; 7] = [
    "time_s",
    "gpu_mem_used_mib",
    "process_gpu_mem_mib",
    "gpu_mem_allocated_pct",
    "gpu_util_pct",
    "process_rss_mib",
    "process_cpu_pct",
];

/// Samples of a run and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryLog {
    /// Source.
    pub source: TelemetrySource,
    /// Samples in time order.
    pub samples: Vec<TelemetrySample>,
}

/// Peak and mean of the telemetry columns.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TelemetrySummary {
    /// Peak GPU memory allocated, %.
    pub peak_gpu_mem_pct: f64,
    /// Mean GPU memory allocated, %.
    pub mean_gpu_mem_pct: f64,
    /// Peak process GPU memory, MiB.
    pub peak_process_gpu_mib: f64,
    /// Mean GPU utilisation, %.
    pub mean_gpu_util_pct: f64,
    /// Peak process RSS, MiB.
    pub peak_rss_mib: f64,
    /// Mean process CPU, % of a core.
    pub mean_cpu_pct: f64,
}

impl TelemetryLog {
    /// Peaks and means (NaN for GPU figures without NVML).
    pub fn summary(&self) -> TelemetrySummary {
        let col = |f: fn(&TelemetrySample) -> f64| -> Vec<f64> {
            self.samples.iter().map(f).filter(|v| v.is_finite()).collect()
        };
        let peak = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { v.iter().cloned().fold(f64::MIN, f64::max) };
        let mean = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
        TelemetrySummary {
            peak_gpu_mem_pct: peak(col(|s| s.gpu_mem_allocated_pct)),
            mean_gpu_mem_pct: mean(col(|s| s.gpu_mem_allocated_pct)),
            peak_process_gpu_mib: peak(col(|s| s.process_gpu_mem_mib)),
            mean_gpu_util_pct: mean(col(|s| s.gpu_util_pct)),
            peak_rss_mib: peak(col(|s| s.process_rss_mib)),
            mean_cpu_pct: mean(col(|s| s.process_cpu_pct)),
        }
    }

    /// gpu.csv text: a comment naming the source, the header, one line per sample.
    pub fn to_csv(&self) -> String {
        let mut s = format!("# source: {}\n{}\n", self.source, TELEMETRY_COLUMNS.join(","));
        for x in &self.samples {
            let v = [
                x.time_s,
                x.gpu_mem_used_mib,
                x.process_gpu_mem_mib,
                x.gpu_mem_allocated_pct,
                x.gpu_util_pct,
                x.process_rss_mib,
                x.process_cpu_pct,
            ];
            let cells: Vec<String> =
                v.iter().map(|f| if f.is_finite() { format!("{f:.2}") } else { String::new() }).collect();
            s.push_str(&cells.join(","));
            s.push('\n');
        }
        s
    }
}

/// A background sampler, started by `fit` and stopped at its end.
#[derive(Debug)]
pub struct Telemetry {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<TelemetrySample>>>,
    source: TelemetrySource,
}

/// Clock ticks per second of /proc/self/stat (Linux's USER_HZ on every mainstream platform).
const CLOCK_TICKS: f64 = 100.0;
/// Page size of /proc/self/statm on x86_64 and aarch64 Linux.
const PAGE_BYTES: f64 = 4096.0;

fn process_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = s.rsplit_once(')')?.1; // skip "pid (comm)"
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / CLOCK_TICKS)
}

/// Resident memory of this process in bytes (Linux `/proc/self/statm`).
pub(crate) fn process_rss_bytes() -> Option<f64> {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<f64>().ok()))
        .map(|pages| pages * PAGE_BYTES)
}

fn process_rss_mib() -> f64 {
    process_rss_bytes().map(|b| b / 1048576.0).unwrap_or(f64::NAN)
}

impl Telemetry {
    /// Start sampling every `every` (NVML on `gpu` when given and available, else process figures only).
    pub fn start(gpu: Option<u32>, every: std::time::Duration) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let nvml = match gpu {
            None => Err("training on the CPU".to_string()),
            Some(_) => nvml_wrapper::Nvml::init().map_err(|e| e.to_string()),
        };
        let source = match (&nvml, gpu) {
            (Ok(n), Some(i)) => {
                TelemetrySource::Nvml(i, n.device_by_index(i).and_then(|d| d.name()).unwrap_or_else(|_| "?".into()))
            }
            (Err(e), _) => TelemetrySource::Process(e.clone()),
            _ => TelemetrySource::Process("no device".into()),
        };
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            let pid = std::process::id();
            let mut last_cpu = (process_cpu_seconds().unwrap_or(0.0), 0.0);
            let mut samples = Vec::new();
            loop {
                let now = t0.elapsed().as_secs_f64();
                let cpu = process_cpu_seconds().unwrap_or(f64::NAN);
                let cpu_pct = if now > last_cpu.1 { 100.0 * (cpu - last_cpu.0) / (now - last_cpu.1) } else { f64::NAN };
                last_cpu = (cpu, now);
                let mut s = TelemetrySample {
                    time_s: now,
                    gpu_mem_used_mib: f64::NAN,
                    process_gpu_mem_mib: f64::NAN,
                    gpu_mem_allocated_pct: f64::NAN,
                    gpu_util_pct: f64::NAN,
                    process_rss_mib: process_rss_mib(),
                    process_cpu_pct: cpu_pct,
                };
                if let (Ok(n), Some(i)) = (&nvml, gpu)
                    && let Ok(d) = n.device_by_index(i)
                {
                    if let Ok(m) = d.memory_info() {
                        s.gpu_mem_used_mib = m.used as f64 / 1048576.0;
                        s.gpu_mem_allocated_pct = 100.0 * m.used as f64 / m.total.max(1) as f64;
                    }
                    if let Ok(u) = d.utilization_rates() {
                        s.gpu_util_pct = u.gpu as f64;
                    }
                    if let Ok(procs) = d.running_compute_processes() {
                        s.process_gpu_mem_mib = procs
                            .iter()
                            .filter(|p| p.pid == pid)
                            .map(|p| match p.used_gpu_memory {
                                nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => b as f64 / 1048576.0,
                                nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => f64::NAN,
                            })
                            .sum();
                    }
                }
                samples.push(s);
                // sleep in short slices so stop() returns quickly
                let until = std::time::Instant::now() + every;
                while std::time::Instant::now() < until {
                    if flag.load(Ordering::Relaxed) {
                        return samples;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        });
        Telemetry { stop, handle: Some(handle), source }
    }

    /// Where the figures come from.
    pub fn source(&self) -> &TelemetrySource {
        &self.source
    }

    /// Stop and collect the samples.
    pub fn finish(mut self) -> TelemetryLog {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let samples = self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default();
        TelemetryLog { source: self.source.clone(), samples }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
