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
        if omp_wait_policy.as_deref() != Some("PASSIVE") {
            problems.push("OMP_WAIT_POLICY is not PASSIVE: libgomp's spin-wait slows training on busy machines (set it before starting the process)".into());
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
        writeln!(f, "threads         {} intra-op, {} inter-op", self.threads, self.interop_threads)?;
        writeln!(f, "OMP_WAIT_POLICY {}", self.omp_wait_policy.as_deref().unwrap_or("(unset)"))?;
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
