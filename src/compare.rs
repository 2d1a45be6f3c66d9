//! Is one set of hyperparameters better, or only luckier? An evolution keeps the best of many noisy trainings,
//! so its best row is partly a lucky seed. [`SeedComparison`] trains every candidate (the base hyperparameters,
//! an evolved hyp_evolve.yaml, ...) under one scenario with the same seeds, and reports each candidate's mean and
//! run-to-run noise and, for every candidate against the first, the paired difference with a 95% interval
//! (Student's t over the seeds). An interval that holds 0 says the difference is within the noise.
//!
//! ```no_run
//! # use yolo_lab::prelude::*;
//! let base = Trainer::new().data("shapes-alt").weights("best.safetensors").imgsz(160).epochs(5);
//! let cmp = SeedComparison::new(base)
//!     .candidate("base", "scratch-low")
//!     .candidate("evolved", "runs/evolve/evolve/hyp_evolve.yaml")
//!     .seeds(0..4)
//!     .run()?;
//! println!("{cmp}");
//! # Ok::<(), yolo_lab::Error>(())
//! ```

use crate::error::{Error, IoContext, Result};
use crate::evolve::Fitness;
use crate::hyp::Hyp;
use crate::results::Noise;
use crate::train::{HypSource, ProgressMode, Trainer, results};
use std::fmt;
use std::path::PathBuf;

/// Candidates trained under one scenario with the same seeds.
#[derive(Debug, Clone)]
pub struct SeedComparison {
    base: Trainer,
    candidates: Vec<(String, HypSource)>,
    seeds: Vec<u64>,
    dir: PathBuf,
    fitness: Fitness,
}

/// One training of a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedTrial {
    /// The candidate's label.
    pub label: String,
    /// The training's seed.
    pub seed: u64,
    /// Fitness of its final validation.
    pub fitness: f64,
    /// Final P, R, mAP@0.5, mAP@0.5:0.95.
    pub metrics: [f64; 4],
    /// Run folder.
    pub dir: PathBuf,
    /// Whether it was loaded from a finished earlier run.
    pub loaded: bool,
}

/// A candidate against the first one, seed by seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The candidate.
    pub label: String,
    /// The candidate it is compared with (the first).
    pub reference: String,
    /// Paired seeds.
    pub n: usize,
    /// Mean of the per-seed differences (candidate − reference).
    pub mean: f64,
    /// Standard error of that mean.
    pub se: f64,
    /// 95% interval of the mean difference (Student's t with n − 1 degrees of freedom).
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
    /// Seeds on which the candidate scored higher.
    pub wins: usize,
}

impl Difference {
    /// Whether the interval excludes 0: the difference is larger than the run-to-run noise.
    pub fn above_noise(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match (self.above_noise(), self.mean > 0.0) {
            (true, true) => "better, beyond the noise",
            (true, false) => "worse, beyond the noise",
            (false, _) => "within the noise",
        };
        write!(
            f,
            "{} − {}: {:+.5} (95% interval {:+.5} … {:+.5}, {} paired seeds, higher on {} of {}): {verdict}",
            self.label, self.reference, self.mean, self.low, self.high, self.n, self.wins, self.n
        )
    }
}

/// What [`SeedComparison::run`] measured.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Candidate labels in the order given.
    pub labels: Vec<String>,
    /// The seeds, in order.
    pub seeds: Vec<u64>,
    /// Every training, candidate by candidate and seed by seed.
    pub trials: Vec<SeedTrial>,
}

impl SeedComparison {
    /// Compare candidates on `base` (its data, model, weights, image size, epochs); seeds 0–3, folder
    /// `runs/compare`, YOLOv5's fitness.
    pub fn new(base: Trainer) -> Self {
        SeedComparison {
            base,
            candidates: vec![],
            seeds: (0..4).collect(),
            dir: PathBuf::from("runs/compare"),
            fitness: Fitness::Weights(crate::metrics::FITNESS_WEIGHTS),
        }
    }

    /// Add a candidate: a preset name, a yaml path (hyp_evolve.yaml) or [`Hyp`] values. The first is the
    /// reference the others are compared with.
    pub fn candidate(mut self, label: &str, hyp: impl Into<HypSource>) -> Self {
        self.candidates.push((label.to_string(), hyp.into()));
        self
    }

    /// The seeds every candidate trains with (at least two, to measure noise).
    pub fn seeds(mut self, seeds: impl IntoIterator<Item = u64>) -> Self {
        self.seeds = seeds.into_iter().collect();
        self
    }

    /// The folder of the trainings (`<dir>/<label>/seed<k>`).
    pub fn dir(mut self, d: impl Into<PathBuf>) -> Self {
        self.dir = d.into();
        self
    }

    /// Fitness weights of (P, R, mAP@0.5, mAP@0.5:0.95), as in [`crate::evolve::Evolver::fitness`].
    pub fn fitness(mut self, w: [f64; 4]) -> Self {
        self.fitness = Fitness::Weights(w);
        self
    }

    /// Train (or load) every candidate with every seed. A finished training with the same hyperparameters and
    /// epochs is loaded from its folder; one with other hyperparameters is an error rather than overwritten.
    pub fn run(&self) -> Result<Comparison> {
        let bad = |message: String| Error::Config { name: "comparison", message };
        if self.candidates.is_empty() {
            return Err(bad("add at least one candidate (`.candidate(label, hyp)`)".into()));
        }
        if self.seeds.len() < 2 {
            return Err(bad(format!("{} seed(s): the noise needs at least two", self.seeds.len())));
        }
        let mut labels = std::collections::BTreeSet::new();
        if let Some((l, _)) = self.candidates.iter().find(|(l, _)| !labels.insert(l.as_str())) {
            return Err(bad(format!("two candidates are labelled `{l}`: give each its own label")));
        }
        self.base.validate()?;
        let hyps: Vec<Hyp> =
            self.candidates.iter().map(|(_, h)| self.base.clone().hyp(h.clone()).load_hyp()).collect::<Result<_>>()?;
        let mut data = self.base.prepare_data()?;
        let report = self.base.report();
        let total = self.candidates.len() * self.seeds.len();
        let mut trials = Vec::with_capacity(total);
        for ((label, _), hyp) in self.candidates.iter().zip(&hyps) {
            for &seed in &self.seeds {
                let dir = self.dir.join(label).join(format!("seed{seed}"));
                let (r, loaded) = match self.finished(&dir, hyp)? {
                    Some(r) => (r, true),
                    None => {
                        self.base
                            .clone()
                            .hyp(hyp)
                            .seed(seed)
                            .project(self.dir.join(label))
                            .name(format!("seed{seed}"))
                            .exist_ok(true)
                            .progress(ProgressMode::Silent)
                            .fit_with(&mut data)?;
                        // read back from results.csv, so a fresh and a reloaded training give the same numbers
                        let r = self.finished(&dir, hyp)?.ok_or_else(|| {
                            bad(format!("{}: the training left no complete results.csv", dir.display()))
                        })?;
                        (r, false)
                    }
                };
                let fitness = self.fitness.eval(&r);
                report.summary(&format!(
                    "compare: {}/{total} {label} seed {seed}: fitness {fitness:.5}{}",
                    trials.len() + 1,
                    if loaded { " (finished earlier)" } else { "" }
                ));
                let metrics = [r[0], r[1], r[2], r[3]];
                trials.push(SeedTrial { label: label.clone(), seed, fitness, metrics, dir, loaded });
            }
        }
        Ok(Comparison {
            labels: self.candidates.iter().map(|c| c.0.clone()).collect(),
            seeds: self.seeds.clone(),
            trials,
        })
    }

    /// The final results of a finished training in `dir` with `hyp`, if there is one.
    fn finished(&self, dir: &std::path::Path, hyp: &Hyp) -> Result<Option<[f64; 7]>> {
        let csv = dir.join("results.csv");
        let Ok(rows) = results::read(&csv) else { return Ok(None) };
        let hyp_yaml = dir.join("hyp.yaml");
        // the run folder's hyp.yaml is written by the same function, so equal values give equal text
        if std::fs::read_to_string(&hyp_yaml).at(&hyp_yaml)? != hyp.to_yaml_string() {
            return Err(Error::Config {
                name: "comparison",
                message: format!(
                    "{} was trained with other hyperparameters than this candidate's: remove {} or give the \
                     comparison another `.dir(..)`",
                    hyp_yaml.display(),
                    dir.display()
                ),
            });
        }
        let epochs = self.base.freeze_schedule.as_ref().map(|s| s.epochs()).unwrap_or(self.base.epochs);
        // an unfinished training, or one of another length (another scenario): retrain; exist_ok replaces it
        let Some(last) = rows.last().filter(|_| rows.len() == epochs) else { return Ok(None) };
        let m = last.metrics;
        Ok(Some([m[0], m[1], m[2], m[3], last.val_loss[0], last.val_loss[1], last.val_loss[2]]))
    }
}

/// Two-sided 95% critical value of Student's t with `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    if df == 0 { f64::INFINITY } else { T.get(df - 1).copied().unwrap_or(1.96) }
}

impl Comparison {
    /// The fitness of a candidate's trainings, in seed order.
    pub fn fitness_of(&self, label: &str) -> Vec<f64> {
        self.trials.iter().filter(|t| t.label == label).map(|t| t.fitness).collect()
    }

    /// A candidate's mean fitness and run-to-run noise.
    pub fn noise(&self, label: &str) -> Option<Noise> {
        let f = self.fitness_of(label);
        (f.len() > 1).then(|| Noise::of(&f))
    }

    /// A candidate against the first candidate, paired by seed.
    pub fn difference(&self, label: &str) -> Option<Difference> {
        let reference = self.labels.first()?;
        let (a, b) = (self.fitness_of(label), self.fitness_of(reference));
        if label == reference || a.len() != b.len() || a.len() < 2 {
            return None;
        }
        let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        let Noise { mean, se, .. } = Noise::of(&d);
        let half = t95(d.len() - 1) * se;
        Some(Difference {
            label: label.to_string(),
            reference: reference.clone(),
            n: d.len(),
            mean,
            se,
            low: mean - half,
            high: mean + half,
            wins: d.iter().filter(|&&x| x > 0.0).count(),
        })
    }

    /// Every candidate but the first against the first.
    pub fn differences(&self) -> Vec<Difference> {
        self.labels.iter().skip(1).filter_map(|l| self.difference(l)).collect()
    }

    /// Header and rows of the summary table: one row per candidate.
    pub fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let head =
            vec!["candidate", "trainings", "mean fitness", "sd", "min", "max", "mean mAP@0.5", "mean mAP@0.5:0.95"];
        let rows = self
            .labels
            .iter()
            .map(|l| {
                let f = self.fitness_of(l);
                let Noise { mean, sd, .. } = Noise::of(&f);
                let mine: Vec<&SeedTrial> = self.trials.iter().filter(|t| &t.label == l).collect();
                let avg = |k: usize| mine.iter().map(|t| t.metrics[k]).sum::<f64>() / mine.len().max(1) as f64;
                let lo = f.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                vec![
                    l.clone(),
                    f.len().to_string(),
                    format!("{mean:.5}"),
                    format!("{sd:.5}"),
                    format!("{lo:.5}"),
                    format!("{hi:.5}"),
                    format!("{:.4}", avg(2)),
                    format!("{:.4}", avg(3)),
                ]
            })
            .collect();
        (head, rows)
    }

    /// Every training as a DataFrame (`candidate`, `seed`, `fitness`, `mAP@0.5`, `mAP@0.5:0.95`).
    pub fn df(&self) -> Result<polars::prelude::DataFrame> {
        use polars::prelude::*;
        let t = &self.trials;
        DataFrame::new_infer_height(vec![
            Column::new("candidate".into(), t.iter().map(|t| t.label.as_str()).collect::<Vec<_>>()),
            Column::new("seed".into(), t.iter().map(|t| t.seed).collect::<Vec<_>>()),
            Column::new("fitness".into(), t.iter().map(|t| t.fitness).collect::<Vec<_>>()),
            Column::new("mAP@0.5".into(), t.iter().map(|t| t.metrics[2]).collect::<Vec<_>>()),
            Column::new("mAP@0.5:0.95".into(), t.iter().map(|t| t.metrics[3]).collect::<Vec<_>>()),
        ])
        .map_err(|e| Error::Table(e.to_string()))
    }

    /// Write the trainings as CSV (`candidate,seed,fitness,map50,map50_95`), replaced atomically (folders made).
    pub fn save_csv(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let mut s = String::from("candidate,seed,fitness,map50,map50_95\n");
        for t in &self.trials {
            s.push_str(&format!("{},{},{},{},{}\n", t.label, t.seed, t.fitness, t.metrics[2], t.metrics[3]));
        }
        crate::fsutil::write_atomic(path.as_ref(), s.as_bytes())
    }

    /// evcxr: the table, the differences and the figure.
    pub fn evcxr_display(&self) {
        let (head, rows) = self.table();
        let diffs: Vec<String> = self.differences().iter().map(|d| d.to_string()).collect();
        let mut html = crate::display::html_table("", &head, &rows);
        for d in &diffs {
            html.push_str(&format!("<p style=\"font-family:monospace\">{}</p>", crate::display::escape(d)));
        }
        if let Ok(fig) = self.plot() {
            html.push_str(&crate::plots::figures_html(&[&fig]));
        }
        let plain = format!("{self}");
        crate::display::emit(&[("text/plain", &plain), ("text/html", &html)]);
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, rows) = self.table();
        writeln!(f, "{}", head.join(" | "))?;
        for r in &rows {
            writeln!(f, "{}", r.join(" | "))?;
        }
        for d in self.differences() {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &[f64], b: &[f64]) -> Comparison {
        let trial = |label: &str, seed: usize, fitness: f64| SeedTrial {
            label: label.into(),
            seed: seed as u64,
            fitness,
            metrics: [0.0, 0.0, fitness, fitness],
            dir: PathBuf::new(),
            loaded: false,
        };
        let mut trials: Vec<SeedTrial> = a.iter().enumerate().map(|(i, &f)| trial("base", i, f)).collect();
        trials.extend(b.iter().enumerate().map(|(i, &f)| trial("evolved", i, f)));
        Comparison { labels: vec!["base".into(), "evolved".into()], seeds: (0..a.len() as u64).collect(), trials }
    }

    #[test]
    fn a_consistent_gain_is_beyond_the_noise_and_a_lucky_seed_is_not() {
        // every seed gains 0.02 ± 0.001: the paired interval is tight around +0.02
        let c = cmp(&[0.10, 0.15, 0.12, 0.18], &[0.121, 0.169, 0.141, 0.200]);
        let d = c.difference("evolved").unwrap();
        assert!((d.mean - 0.02025).abs() < 1e-9, "{d}");
        assert!(d.above_noise() && d.low > 0.015 && d.high < 0.026, "{d}");
        assert_eq!(d.wins, 4);
        // the same mean gain from one lucky seed: the interval holds 0
        let lucky = cmp(&[0.10, 0.15, 0.12, 0.18], &[0.10, 0.15, 0.12, 0.261]);
        let d = lucky.difference("evolved").unwrap();
        assert!((d.mean - 0.02025).abs() < 1e-9 && !d.above_noise() && d.wins == 1, "{d}");
        assert!(d.to_string().contains("within the noise"), "{d}");
        assert!(c.difference("base").is_none(), "the reference has no difference with itself");
    }

    #[test]
    fn noise_is_the_sample_sd_and_the_table_has_a_row_per_candidate() {
        let c = cmp(&[0.1, 0.2, 0.3, 0.4], &[0.2, 0.2, 0.2, 0.2]);
        let n = c.noise("base").unwrap();
        assert!((n.mean - 0.25).abs() < 1e-12 && (n.sd - 0.129_099_444_873_580_56).abs() < 1e-9);
        assert!((n.se - n.sd / 2.0).abs() < 1e-12);
        let (head, rows) = c.table();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][0], "evolved");
        assert_eq!(rows[1][3], "0.00000", "{head:?} {rows:?}");
        assert_eq!(c.df().unwrap().height(), 8);
        assert!((t95(3) - 3.182).abs() < 1e-9 && t95(0).is_infinite() && t95(100) == 1.96);
    }
}
