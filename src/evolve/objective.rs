//! What an evolution optimises besides fitness: training speed, model size, memory and inference latency,
//! measured for every generation and recorded in generations.csv. With more than one objective, parents are
//! chosen by NSGA-II's order (Pareto front, then crowding distance) instead of by fitness alone.

use super::pareto::nsga2_order;
use crate::error::{Error, Result};
use crate::model::Yolo;
use crate::train::{PreparedData, TrainRun, Trainer};
use std::fmt;
use std::path::Path;
use std::time::Instant;

/// One goal of a multi-objective evolution ([`Evolver::objectives`](super::Evolver::objectives)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Objective {
    /// The evolution's fitness (higher is better).
    Fitness,
    /// Training throughput, images per second (higher is better).
    ImagesPerSecond,
    /// Parameters of the model (fewer is better).
    Parameters,
    /// Peak memory of the training: the process's device memory on CUDA, its resident memory on the CPU
    /// (MiB, less is better). On the CPU it includes what the process held before, so it only separates
    /// generations whose peaks differ.
    PeakMemory,
    /// Inference latency at batch 1 and the run's image size on its device (ms per image, less is better):
    /// the fastest of [`LATENCY_RUNS`] forward passes after [`LATENCY_WARMUP`] warm-up passes (interference from
    /// other work only ever adds time, so the minimum is the steadiest estimate).
    Latency,
}

/// Forward passes timed for [`Objective::Latency`].
pub const LATENCY_RUNS: usize = 10;
/// Forward passes before the timed ones.
pub const LATENCY_WARMUP: usize = 3;

/// Every objective, in generations.csv's column order (fitness has its own column).
pub const OBJECTIVES: [Objective; 5] =
    [Objective::Fitness, Objective::ImagesPerSecond, Objective::Parameters, Objective::PeakMemory, Objective::Latency];

impl Objective {
    /// Its column in generations.csv and in [`EvolveResults::pareto`](crate::results::EvolveResults::pareto).
    pub fn column(self) -> &'static str {
        match self {
            Objective::Fitness => "fitness",
            Objective::ImagesPerSecond => "images_per_s",
            Objective::Parameters => "params",
            Objective::PeakMemory => "peak_mem_mib",
            Objective::Latency => "latency_ms",
        }
    }

    /// Whether larger values are better.
    pub fn maximise(self) -> bool {
        matches!(self, Objective::Fitness | Objective::ImagesPerSecond)
    }

    /// Axis label of plots.
    pub fn label(self) -> &'static str {
        match self {
            Objective::Fitness => "fitness",
            Objective::ImagesPerSecond => "training images/s",
            Objective::Parameters => "parameters",
            Objective::PeakMemory => "peak memory (MiB)",
            Objective::Latency => "latency (ms/image)",
        }
    }

    /// From a column name or a short name (`fitness`, `speed`/`images_per_s`, `params`, `memory`, `latency`).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Ok(match s.as_str() {
            "fitness" => Objective::Fitness,
            "speed" | "images_per_s" | "images_per_second" | "throughput" => Objective::ImagesPerSecond,
            "params" | "parameters" | "size" => Objective::Parameters,
            "memory" | "peak_memory" | "peak_mem_mib" | "mem" => Objective::PeakMemory,
            "latency" | "latency_ms" => Objective::Latency,
            _ => {
                return Err(Error::UnknownName {
                    kind: "objective",
                    name: s,
                    available: "fitness, speed, params, memory, latency".into(),
                });
            }
        })
    }

    /// The value to maximise: the measurement, negated when less is better (NaN stays NaN).
    pub(crate) fn signed(self, v: f64) -> f64 {
        if self.maximise() { v } else { -v }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.column())
    }
}

/// What was measured of one generation besides its metrics (NaN when not measured).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Model parameters.
    pub params: f64,
    /// Training images per second.
    pub images_per_s: f64,
    /// Peak memory, MiB (see [`Objective::PeakMemory`]).
    pub peak_mem_mib: f64,
    /// Inference latency, ms per image (measured only when an objective asks for it).
    pub latency_ms: f64,
}

impl Default for Measured {
    fn default() -> Self {
        Measured { params: f64::NAN, images_per_s: f64::NAN, peak_mem_mib: f64::NAN, latency_ms: f64::NAN }
    }
}

impl Measured {
    /// What a finished training shows (latency is measured separately).
    pub(crate) fn of_run(run: &TrainRun) -> Self {
        let t = run.telemetry.summary();
        let mem = if t.peak_process_gpu_mib.is_finite() { t.peak_process_gpu_mib } else { t.peak_rss_mib };
        Measured {
            params: run.parameters.0 as f64,
            images_per_s: run.images_per_second,
            peak_mem_mib: mem,
            latency_ms: f64::NAN,
        }
    }

    /// The value of an objective (`fitness` is the row's).
    pub fn value(&self, o: Objective, fitness: f64) -> f64 {
        match o {
            Objective::Fitness => fitness,
            Objective::ImagesPerSecond => self.images_per_s,
            Objective::Parameters => self.params,
            Objective::PeakMemory => self.peak_mem_mib,
            Objective::Latency => self.latency_ms,
        }
    }

    /// The generations.csv cells of the four measurements (empty when not measured).
    pub(crate) fn cells(&self) -> [String; 4] {
        let c = |v: f64, d: usize| if v.is_finite() { format!("{v:.d$}") } else { String::new() };
        [c(self.params, 0), c(self.images_per_s, 2), c(self.peak_mem_mib, 1), c(self.latency_ms, 3)]
    }

    /// From generations.csv cells in [`Measured::cells`]'s order (missing or empty: NaN).
    pub(crate) fn from_cells(cells: [Option<&str>; 4]) -> Self {
        let v = |c: Option<&str>| c.and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
        Measured { params: v(cells[0]), images_per_s: v(cells[1]), peak_mem_mib: v(cells[2]), latency_ms: v(cells[3]) }
    }
}

/// `fitness, latency_ms`.
pub fn names(objectives: &[Objective]) -> String {
    objectives.iter().map(|o| o.column()).collect::<Vec<_>>().join(", ")
}

/// Whether `objectives` asks for more than fitness.
pub(crate) fn is_multi(objectives: &[Objective]) -> bool {
    objectives.iter().any(|&o| o != Objective::Fitness)
}

/// The score parents are chosen by, per row: the fitness with one objective; with several, NSGA-II's
/// position turned into a number (1 for the first, falling by 1/n), so that every GA that picks by score
/// picks by front and crowding.
pub(crate) fn selection_scores(fitness: &[f64], measured: &[Measured], objectives: &[Objective]) -> Vec<f64> {
    if !is_multi(objectives) {
        return fitness.to_vec();
    }
    let points: Vec<Vec<f64>> = fitness
        .iter()
        .zip(measured)
        .map(|(&f, m)| objectives.iter().map(|&o| o.signed(m.value(o, f))).collect())
        .collect();
    let n = points.len() as f64;
    let mut score = vec![0.0; points.len()];
    for (pos, i) in nsga2_order(&points).into_iter().enumerate() {
        score[i] = 1.0 - pos as f64 / n;
    }
    score
}

/// Inference latency of `t`'s model at its image size on its device: ms per image at batch 1, the fastest
/// of [`LATENCY_RUNS`] passes after [`LATENCY_WARMUP`] (the weights do not matter, so a fresh model of the
/// same layout is timed).
pub(crate) fn latency_ms(t: &Trainer, data: &PreparedData) -> Result<f64> {
    let hyp = t.load_hyp()?;
    let anchors = hyp.anchors.map(|a| a.round_ties_even().max(1.0) as usize);
    let cfg = t.model_config(Some(data.dataset.names.len() as i64), anchors)?;
    let device = crate::train::parse_device(&t.device)?;
    let model = Yolo::from_config(cfg, device)?;
    let gs = model.max_stride().max(32);
    let imgsz = crate::model::make_divisible(t.imgsz as f64, gs).max(2 * gs);
    Ok(time_forward(&model, imgsz))
}

/// The fastest of [`LATENCY_RUNS`] batch-1 eval forward passes at `imgsz`, in ms.
pub fn time_forward(model: &Yolo, imgsz: i64) -> f64 {
    let x = tch::Tensor::zeros([1, 3, imgsz, imgsz], (tch::Kind::Float, model.device()));
    let sync = || {
        if let tch::Device::Cuda(i) = model.device() {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let ms: Vec<f64> = (0..LATENCY_WARMUP + LATENCY_RUNS)
        .map(|_| {
            sync();
            let t0 = Instant::now();
            let _ = tch::no_grad(|| model.forward_t(&x, false));
            sync();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .skip(LATENCY_WARMUP)
        .collect();
    ms.into_iter().fold(f64::INFINITY, f64::min)
}

/// The objectives recorded in an evolution folder (`objectives.txt`), if any.
pub fn stored(dir: &Path) -> Result<Option<Vec<Objective>>> {
    let p = dir.join("objectives.txt");
    if !p.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let o = text
        .trim()
        .split(',')
        .map(Objective::parse)
        .collect::<Result<Vec<_>>>()
        .map_err(|e| Error::DataConfig { path: p.clone(), message: e.to_string() })?;
    Ok(Some(o))
}

/// Record the objectives in the evolution folder (replaced atomically).
pub fn store(dir: &Path, objectives: &[Objective]) -> Result<()> {
    let line: Vec<&str> = objectives.iter().map(|o| o.column()).collect();
    crate::fsutil::write_atomic(&dir.join("objectives.txt"), format!("{}\n", line.join(",")).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse_and_point_the_right_way() {
        assert_eq!(Objective::parse("Latency").unwrap(), Objective::Latency);
        assert_eq!(Objective::parse("speed").unwrap(), Objective::ImagesPerSecond);
        assert!(Objective::parse("accuracy").unwrap_err().to_string().contains("fitness, speed"));
        assert_eq!(Objective::Parameters.signed(10.0), -10.0);
        assert_eq!(Objective::Fitness.signed(0.5), 0.5);
        for o in OBJECTIVES {
            assert_eq!(Objective::parse(o.column()).unwrap(), o);
        }
    }

    #[test]
    fn selection_scores_follow_fitness_alone_or_the_pareto_order() {
        let fit = [0.5, 0.4, 0.3, 0.2];
        let m = |p: f64| Measured { params: p, ..Default::default() };
        let measured = [m(100.0), m(50.0), m(10.0), m(60.0)];
        assert_eq!(selection_scores(&fit, &measured, &[Objective::Fitness]), fit);
        let s = selection_scores(&fit, &measured, &[Objective::Fitness, Objective::Parameters]);
        // rows 0, 1, 2 are the front (each trades fitness for size); row 3 is dominated by row 1
        assert!(s[3] < s[0].min(s[1]).min(s[2]), "{s:?}");
        assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
        let cells = Measured { params: 7.0, images_per_s: 1.234, ..Default::default() }.cells();
        assert_eq!(cells, ["7", "1.23", "", ""].map(String::from));
        let back = Measured::from_cells([Some("7"), Some("1.23"), Some(""), None]);
        assert_eq!((back.params, back.images_per_s), (7.0, 1.23));
        assert!(back.peak_mem_mib.is_nan() && back.latency_ms.is_nan());
    }
}
