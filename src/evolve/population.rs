//! The population GA's loop (YOLOv5's `evolve_population.yaml` GA): one generation's individuals are trained
//! by the worker pool, scored, and bred into the next; the population is saved before each generation so a
//! resume continues with it. With a store that shares generations between machines (PostgreSQL), individuals
//! are claimed from the store one by one instead, and the generation is bred by whichever worker finds it complete.

use super::meta::GeneKind;
use super::objective::{self, Measured};
use super::store::Individual;
use super::structure::{Genome, snap};
use super::worker::{Ctx, Job};
use super::{PopulationSettings, csv, population_next};
use crate::data::{Stream, rng_for};
use crate::error::{Error, Result};
use crate::hyp::Hyp;
use rand::Rng;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// The genes the population GA evolves: names with their ranges, and kinds.
struct PopGenes {
    genes: Vec<(String, (f64, f64))>,
    kinds: Vec<GeneKind>,
    ranges: Vec<(f64, f64)>,
}

impl Ctx<'_> {
    fn pop_genes(&self) -> Result<PopGenes> {
        let genes: Vec<(String, (f64, f64))> =
            self.space.genes().filter(|(_, g)| g.population).map(|(k, g)| (k.to_string(), (g.low, g.high))).collect();
        let kinds: Vec<GeneKind> =
            genes.iter().map(|(k, _)| self.space.gene(k).map_or(GeneKind::Float, |g| g.kind)).collect();
        if genes.is_empty() {
            return Err(Error::Config { name: "space", message: "no gene is evolved by the population GA".into() });
        }
        let ranges: Vec<(f64, f64)> = genes.iter().map(|g| g.1).collect();
        Ok(PopGenes { genes, kinds, ranges })
    }

    /// Generation 0: the six presets first, then random individuals (seeded: every worker draws the same).
    fn initial_population(&self, g: &PopGenes, s: &PopulationSettings) -> Vec<Vec<f64>> {
        let mut rng = rng_for(self.evo.seed, Stream::PopulationInit, &[]);
        // a preset has no structural genes: those start at the base trainer's values
        let mut pop: Vec<Vec<f64>> = crate::hyp::PRESETS
            .iter()
            .filter_map(|(n, _)| Hyp::load(n).ok())
            .map(|h| Genome { hyp: h, structure: self.base.structure.clone() })
            .map(|genome| g.genes.iter().map(|(k, _)| genome.get(k).unwrap_or(0.0)).collect())
            .collect();
        pop.truncate(s.size);
        while pop.len() < s.size {
            pop.push(
                g.ranges
                    .iter()
                    .zip(&g.kinds)
                    .map(|(&(lo, hi), &kind)| snap(kind, if hi > lo { rng.random_range(lo..hi) } else { lo }, lo, hi))
                    .collect(),
            );
        }
        pop
    }

    /// The next generation, bred from `pop`'s scores (seeded by the generation: every worker breeds the same).
    fn breed(
        &self,
        g: &PopGenes,
        s: &PopulationSettings,
        generation: usize,
        pop: &[Vec<f64>],
        scored: Vec<(f64, Measured)>,
    ) -> Vec<Vec<f64>> {
        let (fitness, measured): (Vec<f64>, Vec<Measured>) = scored.into_iter().unzip();
        // one objective: the fitness; several: the Pareto order of this generation's individuals
        let scores = objective::selection_scores(&fitness, &measured, &self.evo.objectives);
        let mut rng = rng_for(self.evo.seed, Stream::PopulationGeneration, &[generation as u64]);
        population_next(pop, &scores, &g.ranges, &g.kinds, generation, self.evo.generations, s, &mut rng)
    }

    /// The genome of an individual.
    fn individual(&self, g: &PopGenes, values: &[f64]) -> Genome {
        let mut genome = self.base.clone();
        for ((key, _), v) in g.genes.iter().zip(values) {
            let _ = genome.set(key, *v);
        }
        genome
    }

    pub(super) fn population(&self, s: &PopulationSettings) -> Result<()> {
        if self.store.shares_population() {
            return self.shared_population(s);
        }
        let g = self.pop_genes()?;
        let pop_file = self.dir.join("evolve_population.yaml");
        let existing = csv::read(&self.dir.join("evolve.csv"))?.rows.len();
        let (mut generation, mut pop) = if self.evo.resume && pop_file.is_file() {
            read_population(&pop_file, &g.genes)?
        } else {
            (0, self.initial_population(&g, s))
        };
        let fit = self.evo.fitness_closure();
        while generation < self.evo.generations {
            write_population(&pop_file, generation, &pop, &g.genes)?;
            // individuals of this generation already recorded (resume): rows beyond generation * size
            let done = existing.saturating_sub(generation * s.size).min(s.size);
            let table = csv::read(&self.dir.join("evolve.csv"))?;
            let recorded = csv::measured(&self.dir)?;
            let mut scored = vec![(0.0, Measured::default()); pop.len()];
            for (k, sc) in scored.iter_mut().enumerate().take(done) {
                let row = generation * s.size + k;
                *sc = (fit(&table.results(row)), recorded.get(&row).copied().unwrap_or_default());
            }
            let next = Mutex::new(done);
            let scores_m = Mutex::new(scored);
            self.pool(|w, device, data| -> Result<()> {
                loop {
                    let k = {
                        let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                        if *n >= pop.len() {
                            return Ok(());
                        }
                        *n += 1;
                        *n - 1
                    };
                    let genome = self.individual(&g, &pop[k]);
                    let out = self.train_individual(generation, k, None, &genome, w, device, data)?;
                    scores_m.lock().unwrap_or_else(|p| p.into_inner())[k] = (fit(&out.results), out.measured);
                }
            })?;
            let scored = scores_m.into_inner().unwrap_or_else(|p| p.into_inner());
            pop = self.breed(&g, s, generation, &pop, scored);
            generation += 1;
        }
        Ok(())
    }

    /// Train and record individual `k` of `generation` (settling claim `row` in a store that claims them).
    #[allow(clippy::too_many_arguments)]
    fn train_individual(
        &self,
        generation: usize,
        k: usize,
        row: Option<usize>,
        genome: &Genome,
        w: usize,
        device: &str,
        data: &mut crate::train::PreparedData,
    ) -> Result<super::generation::Trained> {
        let job = Job {
            start: Instant::now(),
            label: format!("{generation}.{k}"),
            claim: row,
            genome,
            seed_offset: 0,
            changes: &[],
            repeat_of: None,
        };
        let (out, res) = self.run_job(job, w, device, data);
        res?;
        Ok(out)
    }

    /// The population GA in a store shared by machines: generation `g`'s individuals are claimed one by one
    /// from the store; the worker that finds the generation complete breeds the next (seeded, so any worker
    /// breeds the same; the store keeps the first) and every worker moves on to it.
    fn shared_population(&self, s: &PopulationSettings) -> Result<()> {
        let g = self.pop_genes()?;
        let names: Vec<String> = g.genes.iter().map(|(k, _)| k.clone()).collect();
        if self.store.current_population()?.is_none() {
            self.store.put_population(0, &names, &self.initial_population(&g, s))?;
        }
        let fit = self.evo.fitness_closure();
        self.pool(|w, device, data| -> Result<()> {
            loop {
                let Some((generation, pop)) = self.store.current_population()? else {
                    return Err(Error::Config { name: "storage", message: "the stored population vanished".into() });
                };
                if generation >= self.evo.generations {
                    return Ok(());
                }
                if pop.len() != s.size || pop.iter().any(|p| p.len() != g.genes.len()) {
                    return Err(Error::Config {
                        name: "population",
                        message: format!(
                            "the stored generation {generation} has {} individuals of other genes than this \
                             evolution's {} of {}",
                            pop.len(),
                            s.size,
                            names.join(", ")
                        ),
                    });
                }
                match self.store.claim_individual(w, generation, s.size)? {
                    Individual::Train { k, row } => {
                        let genome = self.individual(&g, &pop[k]);
                        self.train_individual(generation, k, Some(row), &genome, w, device, data)?;
                    }
                    Individual::Complete(done) => {
                        if generation + 1 >= self.evo.generations {
                            return Ok(());
                        }
                        let scored = done.iter().map(|(r, m)| (fit(r), *m)).collect();
                        let next = self.breed(&g, s, generation, &pop, scored);
                        self.store.put_population(generation + 1, &names, &next)?;
                    }
                }
            }
        })
    }
}

/// `evolve_population.yaml`: `generation{g}number{i}: {gene: value}` for the population about to be evaluated.
fn write_population(path: &Path, generation: usize, pop: &[Vec<f64>], genes: &[(String, (f64, f64))]) -> Result<()> {
    let mut s = String::new();
    for (i, ind) in pop.iter().enumerate() {
        s.push_str(&format!("generation{generation}number{i}:\n"));
        for ((k, _), v) in genes.iter().zip(ind) {
            s.push_str(&format!("  {k}: {}\n", crate::fsutil::yaml_float(*v)));
        }
    }
    crate::fsutil::write_atomic(path, s.as_bytes())
}

fn read_population(path: &Path, genes: &[(String, (f64, f64))]) -> Result<(usize, Vec<Vec<f64>>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| Error::yaml(path, &e))?;
    let map = v
        .as_mapping()
        .ok_or_else(|| Error::DataConfig { path: path.into(), message: "expected a mapping of individuals".into() })?;
    let mut generation = 0;
    let mut pop = Vec::new();
    for (name, ind) in map {
        let name = name.as_str().unwrap_or_default();
        if let Some(g) =
            name.strip_prefix("generation").and_then(|r| r.split("number").next()).and_then(|g| g.parse().ok())
        {
            generation = g;
        }
        pop.push(
            genes
                .iter()
                .map(|(k, (lo, _))| ind.get(k.as_str()).and_then(serde_yaml::Value::as_f64).unwrap_or(*lo))
                .collect(),
        );
    }
    Ok((generation, pop))
}
