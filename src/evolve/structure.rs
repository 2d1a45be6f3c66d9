//! Structural and categorical genes (off by default): the model's depth and width multiples, the image
//! size, the freeze depth, the optimizer and the cosine schedule. They are evolve.csv columns after the
//! hyperparameters (only when the space has them, so an evolution without them writes YOLOv5's file), and a
//! generation applies them to its trainer, which builds its own model (pretrained weights transfer where
//! shapes match).

use super::meta::{Gene, GeneKind, Space};
use crate::error::{Error, Result};
use crate::hyp::Hyp;
use crate::optim::OptimizerKind;
use crate::train::{Freeze, Trainer};

/// The structural genes: key and how its values move.
pub const STRUCTURAL: [(&str, GeneKind); 6] = [
    ("depth_multiple", GeneKind::Float),
    ("width_multiple", GeneKind::Float),
    ("imgsz", GeneKind::Integer { step: 32 }),
    ("freeze", GeneKind::Integer { step: 1 }),
    ("optimizer", GeneKind::Choice),
    ("cos_lr", GeneKind::Choice),
];

/// The optimizer gene's values: 0 SGD, 1 Adam, 2 AdamW (YOLOv5's `--optimizer` choices).
pub const OPTIMIZERS: [OptimizerKind; 3] = [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW];

/// The kind of a structural key; None for a hyperparameter.
pub fn kind_of(key: &str) -> Option<GeneKind> {
    STRUCTURAL.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

/// Whether `key` is a structural gene.
pub fn is_structural(key: &str) -> bool {
    kind_of(key).is_some()
}

/// The limits a structural gene may take, checked by [`Space::validate`].
pub(crate) fn check(key: &str, g: &Gene) -> std::result::Result<(), String> {
    let (lo, hi) = match key {
        "depth_multiple" | "width_multiple" => (0.01, 4.0),
        "imgsz" => (32.0, crate::train::MAX_IMAGE_SIZE as f64),
        "freeze" => (0.0, 1000.0),
        "optimizer" => (0.0, (OPTIMIZERS.len() - 1) as f64),
        "cos_lr" => (0.0, 1.0),
        _ => return Ok(()),
    };
    if g.low < lo || g.high > hi {
        return Err(format!("limits [{}, {}] must lie within [{lo}, {hi}]", g.low, g.high));
    }
    Ok(())
}

/// A value moved onto a gene's grid: integers to multiples of their step, choices to an index, within the
/// limits (rounded inward so a grid value always exists).
pub(crate) fn snap(kind: GeneKind, v: f64, low: f64, high: f64) -> f64 {
    let v = v.clamp(low, high);
    match kind {
        GeneKind::Float => v,
        GeneKind::Integer { step } => {
            let step = step as f64;
            let (lo, hi) = ((low / step).ceil() * step, (high / step).floor() * step);
            ((v / step).round() * step).clamp(lo, hi.max(lo))
        }
        GeneKind::Choice => v.round().clamp(low.ceil(), high.floor().max(low.ceil())),
    }
}

/// What one generation trains: hyperparameters and the structural genes the space holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Genome {
    pub(crate) hyp: Hyp,
    pub(crate) structure: Vec<(String, f64)>,
}

impl Genome {
    /// Keys in evolve.csv order: the hyperparameters, then the structural genes.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.hyp.keys().map(String::from).chain(self.structure.iter().map(|(k, _)| k.clone())).collect()
    }

    pub(crate) fn get(&self, key: &str) -> Option<f64> {
        match self.structure.iter().find(|(k, _)| k == key) {
            Some((_, v)) => Some(*v),
            None => self.hyp.get(key),
        }
    }

    /// Set a gene; a hyperparameter is checked against its training range.
    pub(crate) fn set(&mut self, key: &str, v: f64) -> Result<()> {
        match self.structure.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => {
                *slot = v;
                Ok(())
            }
            None => self.hyp.set(key, v),
        }
    }

    /// (key, value) in evolve.csv order.
    pub(crate) fn pairs(&self) -> Vec<(String, f64)> {
        self.hyp.iter().map(|(k, v)| (k.to_string(), v)).chain(self.structure.iter().cloned()).collect()
    }
}

/// The base trainer's values of the structural genes `space` holds (what generation 0 trains).
pub(crate) fn base_values(t: &Trainer, space: &Space) -> Result<Vec<(String, f64)>> {
    let keys: Vec<&str> = space.genes().map(|(k, _)| k).filter(|k| is_structural(k)).collect();
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let cfg = t.model_config(None, None)?;
    keys.into_iter()
        .map(|k| {
            let v = match k {
                "depth_multiple" => cfg.depth_multiple,
                "width_multiple" => cfg.width_multiple,
                "imgsz" => t.imgsz as f64,
                "freeze" => match &t.freeze {
                    Freeze::None => 0.0,
                    Freeze::First(n) => *n as f64,
                    Freeze::Backbone => 10.0,
                    Freeze::AllButDetect => 24.0,
                    Freeze::Layers(_) => {
                        return Err(Error::Config {
                            name: "space",
                            message: "the freeze gene evolves a depth (`freeze n`): the base trainer freezes a list \
                                      of layers"
                                .into(),
                        });
                    }
                },
                "optimizer" => OPTIMIZERS.iter().position(|o| *o == t.optimizer).unwrap_or(0) as f64,
                "cos_lr" => f64::from(u8::from(t.cos_lr)),
                _ => unreachable!("a structural key"),
            };
            let g = space.gene(k).expect("listed");
            Ok((k.to_string(), snap(g.kind, v, g.low, g.high)))
        })
        .collect()
}

/// `t` with a generation's structural genes applied.
pub(crate) fn apply(mut t: Trainer, structure: &[(String, f64)]) -> Trainer {
    for (k, v) in structure {
        match k.as_str() {
            "depth_multiple" => t.depth_multiple = Some(*v),
            "width_multiple" => t.width_multiple = Some(*v),
            "imgsz" => t.imgsz = *v as i64,
            "freeze" => t.freeze = if *v >= 1.0 { Freeze::First(*v as usize) } else { Freeze::None },
            "optimizer" => t.optimizer = OPTIMIZERS[(*v as usize).min(OPTIMIZERS.len() - 1)],
            "cos_lr" => t.cos_lr = *v >= 0.5,
            _ => {}
        }
    }
    t
}

/// A structural gene's value as a person reads it (`AdamW`, `true`, `256`).
pub fn describe(key: &str, v: f64) -> String {
    match key {
        "optimizer" => {
            format!("{:?}", OPTIMIZERS[(v.max(0.0) as usize).min(OPTIMIZERS.len() - 1)]).replace("Sgd", "SGD")
        }
        "cos_lr" => (v >= 0.5).to_string(),
        "imgsz" | "freeze" => format!("{}", v as i64),
        _ => crate::fsutil::yaml_float(v),
    }
}

/// The structural genes of an evolution folder (`genes.txt`: `key=low:high` per line) added to `space`
/// where it lacks them, so a resume evolves what the evolution started with; the file is written when
/// missing. Returns the space to evolve.
pub(crate) fn restore(dir: &std::path::Path, mut space: Space) -> Result<Space> {
    let p = dir.join("genes.txt");
    if p.is_file() {
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = || Error::Csv { path: p.clone(), line: n + 1, message: format!("`{line}` is not key=low:high") };
            let (key, range) = line.trim().split_once('=').ok_or_else(bad)?;
            let (lo, hi) = range.split_once(':').ok_or_else(bad)?;
            let (lo, hi): (f64, f64) = (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?);
            if !is_structural(key) {
                return Err(bad());
            }
            if space.gene(key).is_none() {
                space = space.structure(key, lo, hi);
            }
        }
    } else {
        let lines: String = space.structural().map(|(k, g)| format!("{k}={}:{}\n", g.low, g.high)).collect();
        if !lines.is_empty() {
            crate::fsutil::write_atomic(&p, lines.as_bytes())?;
        }
    }
    Ok(space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_snap_to_their_grid_inside_the_limits() {
        assert_eq!(snap(GeneKind::Integer { step: 32 }, 150.0, 96.0, 320.0), 160.0);
        assert_eq!(snap(GeneKind::Integer { step: 32 }, 20.0, 100.0, 320.0), 128.0, "rounded inward");
        assert_eq!(snap(GeneKind::Integer { step: 32 }, 999.0, 64.0, 300.0), 288.0);
        assert_eq!(snap(GeneKind::Choice, 1.6, 0.0, 2.0), 2.0);
        assert_eq!(snap(GeneKind::Float, 0.41, 0.25, 0.4), 0.4);
        assert_eq!(describe("optimizer", 2.0), "AdamW");
        assert_eq!(describe("optimizer", 0.0), "SGD");
        assert_eq!(describe("cos_lr", 1.0), "true");
    }

    #[test]
    fn a_genome_keeps_hyperparameters_and_structure_apart() {
        let mut g = Genome { hyp: Hyp::default(), structure: vec![("imgsz".into(), 64.0)] };
        g.set("imgsz", 96.0).unwrap();
        g.set("lr0", 0.02).unwrap();
        assert_eq!((g.get("imgsz"), g.get("lr0")), (Some(96.0), Some(0.02)));
        assert!(g.set("lr0", -1.0).is_err(), "hyperparameters keep their training range");
        assert_eq!(g.keys().last().map(String::as_str), Some("imgsz"));
        let t = apply(Trainer::new(), &[("imgsz".into(), 96.0), ("optimizer".into(), 2.0), ("freeze".into(), 3.0)]);
        assert_eq!((t.imgsz, t.optimizer, t.freeze), (96, OptimizerKind::AdamW, Freeze::First(3)));
    }
}
