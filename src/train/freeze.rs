//! Freezing (`train.py --freeze`): which modules get no gradient, and staged schedules that change the frozen
//! set, the data fraction and the learning rate between stages.

use std::fmt;

/// Which modules get no gradient (`--freeze`): parameters whose names contain `model.{i}.`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Freeze {
    /// Train everything.
    #[default]
    None,
    /// Modules 0–9, the backbone (`--freeze 10`).
    Backbone,
    /// Modules 0–23, everything but the Detect convs (`--freeze 24`).
    AllButDetect,
    /// Modules 0..n-1 (`--freeze n`).
    First(usize),
    /// Exactly these modules (`--freeze a b c`).
    Layers(Vec<usize>),
}

/// Modules in YOLOv5's backbone.
pub const BACKBONE_LAYERS: usize = 10;
/// Modules before the Detect head of the v6.0 layout.
pub const ALL_BUT_DETECT_LAYERS: usize = 24;

impl Freeze {
    /// The frozen module indices.
    pub fn indices(&self) -> Vec<usize> {
        match self {
            Freeze::None => vec![],
            Freeze::Backbone => (0..BACKBONE_LAYERS).collect(),
            Freeze::AllButDetect => (0..ALL_BUT_DETECT_LAYERS).collect(),
            Freeze::First(n) => (0..*n).collect(),
            Freeze::Layers(v) => v.clone(),
        }
    }

    /// YOLOv5's `--freeze` list: one number N means 0..N-1, several mean those indices.
    pub fn from_cli(v: &[usize]) -> Self {
        match v {
            [] | [0] => Freeze::None,
            [n] => Freeze::First(*n),
            more => Freeze::Layers(more.to_vec()),
        }
    }

    /// Whether a parameter name is frozen (substring `model.{i}.`, as YOLOv5 matches).
    pub fn matches(&self, name: &str) -> bool {
        self.indices().iter().any(|i| name.contains(&format!("model.{i}.")))
    }
}

impl From<usize> for Freeze {
    fn from(n: usize) -> Self {
        if n == 0 { Freeze::None } else { Freeze::First(n) }
    }
}
impl From<i32> for Freeze {
    fn from(n: i32) -> Self {
        Freeze::from(n.max(0) as usize)
    }
}
impl From<Vec<usize>> for Freeze {
    fn from(v: Vec<usize>) -> Self {
        Freeze::Layers(v)
    }
}

impl fmt::Display for Freeze {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Freeze::None => write!(f, "none"),
            Freeze::Backbone => write!(f, "backbone (0-9)"),
            Freeze::AllButDetect => write!(f, "all but Detect (0-23)"),
            Freeze::First(n) => write!(f, "first {n} (0-{})", n.saturating_sub(1)),
            Freeze::Layers(v) => write!(f, "{v:?}"),
        }
    }
}

/// One stage of a [`FreezeSchedule`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FreezeStage {
    /// Epochs in this stage.
    pub epochs: usize,
    /// Modules frozen during it.
    pub freeze: Freeze,
    /// Fraction of the training images used (a random subset drawn from the seed).
    pub data_fraction: f64,
    /// Learning-rate multiplier.
    pub lr_scale: f64,
}

/// A staged training plan (seed 003's strategy): train normally on a random half of the data, then train with
/// layers frozen on another random half, then a frozen stage on all data with the learning rate divided by 10.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FreezeSchedule {
    /// Stages in order; total epochs are their sum.
    pub stages: Vec<FreezeStage>,
}

impl FreezeSchedule {
    /// Seed 003's three stages: `normal` epochs unfrozen on a random half of the data, `half` epochs with
    /// `freeze` on another random half, `fine` epochs with `freeze` on all data at lr/10.
    pub fn seed003(normal: usize, half: usize, fine: usize, freeze: impl Into<Freeze>) -> Self {
        let freeze = freeze.into();
        FreezeSchedule {
            stages: vec![
                FreezeStage { epochs: normal, freeze: Freeze::None, data_fraction: 0.5, lr_scale: 1.0 },
                FreezeStage { epochs: half, freeze: freeze.clone(), data_fraction: 0.5, lr_scale: 1.0 },
                FreezeStage { epochs: fine, freeze, data_fraction: 1.0, lr_scale: 0.1 },
            ],
        }
    }

    /// `freeze` for the first `frozen_epochs`, then everything trains for `then_epochs` (unfreezing during
    /// training, yolov5 #10416).
    pub fn unfreeze_at(freeze: impl Into<Freeze>, frozen_epochs: usize, then_epochs: usize) -> Self {
        let stage = |epochs, freeze| FreezeStage { epochs, freeze, data_fraction: 1.0, lr_scale: 1.0 };
        FreezeSchedule { stages: vec![stage(frozen_epochs, freeze.into()), stage(then_epochs, Freeze::None)] }
    }

    /// Gradual unfreezing from the head down (yolov5 #9677): modules `0..frozen` frozen for
    /// `epochs_per_stage`, then `0..frozen-step`, and so on until nothing is frozen, which trains for
    /// `final_epochs`.
    pub fn gradual(frozen: usize, step: usize, epochs_per_stage: usize, final_epochs: usize) -> Self {
        let stage = |epochs, freeze| FreezeStage { epochs, freeze, data_fraction: 1.0, lr_scale: 1.0 };
        let mut stages = Vec::new();
        let mut n = frozen;
        while n > 0 {
            stages.push(stage(epochs_per_stage, Freeze::First(n)));
            n = n.saturating_sub(step.max(1));
        }
        stages.push(stage(final_epochs, Freeze::None));
        FreezeSchedule { stages }
    }

    /// Total epochs.
    pub fn epochs(&self) -> usize {
        self.stages.iter().map(|s| s.epochs).sum()
    }

    /// The stage of an epoch (the last stage beyond the end).
    pub fn stage(&self, epoch: usize) -> &FreezeStage {
        let mut e = epoch;
        for s in &self.stages {
            if e < s.epochs {
                return s;
            }
            e -= s.epochs;
        }
        self.stages.last().expect("a schedule has stages")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed003_trains_on_random_halves_then_on_everything_at_a_tenth_of_the_rate() {
        let s = FreezeSchedule::seed003(2, 3, 1, Freeze::Backbone);
        let plan: Vec<_> =
            s.stages.iter().map(|st| (st.epochs, st.freeze.clone(), st.data_fraction, st.lr_scale)).collect();
        assert_eq!(
            plan,
            [(2, Freeze::None, 0.5, 1.0), (3, Freeze::Backbone, 0.5, 1.0), (1, Freeze::Backbone, 1.0, 0.1)]
        );
        assert_eq!(s.epochs(), 6);
        assert_eq!(s.stage(1).freeze, Freeze::None);
        assert_eq!(s.stage(2).freeze, Freeze::Backbone);
        assert_eq!(s.stage(99).lr_scale, 0.1, "beyond the end: the last stage");
    }
}
