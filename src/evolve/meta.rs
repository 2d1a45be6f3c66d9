//! The evolution search space: YOLOv5's `meta` table (gain, lower limit, upper limit, evolved by the
//! population GA) and a builder to change it without editing code.

use crate::error::{Error, Result};

/// How a gene's values move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneKind {
    /// A real number: multiplicative mutation in the classic GA (YOLOv5's; a structural multiple instead steps
    /// additively across its range), additive in the population GA.
    Float,
    /// Multiples of `step` (image size 32, freeze depth 1): an additive step of, on average, a third of the
    /// range in the classic GA (a tenth in the population GA), rounded to the grid.
    Integer {
        /// Grid spacing.
        step: u32,
    },
    /// An index into a list of choices (optimizer, cosine schedule on/off): a mutation jumps to another
    /// choice within the limits.
    Choice,
}

/// One gene's mutation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gene {
    /// Mutation gain of the classic GA (0 = never mutated).
    pub gain: f64,
    /// Lower limit.
    pub low: f64,
    /// Upper limit.
    pub high: f64,
    /// Whether the population GA evolves it.
    pub population: bool,
    /// How its values move (every hyperparameter is [`GeneKind::Float`]).
    pub kind: GeneKind,
}

/// YOLOv5's meta table (train.py `meta`): key, classic gain, lower, upper, evolved by the population GA.
pub const META: [(&str, f64, f64, f64, bool); 29] = [
    ("lr0", 1.0, 1e-5, 1e-1, false),            // initial learning rate
    ("lrf", 1.0, 0.01, 1.0, false),             // final learning rate fraction
    ("momentum", 0.3, 0.6, 0.98, false),        // SGD momentum / Adam beta1
    ("weight_decay", 1.0, 0.0, 0.001, false),   // optimizer weight decay
    ("warmup_epochs", 1.0, 0.0, 5.0, false),    // warmup epochs (fractions ok)
    ("warmup_momentum", 1.0, 0.0, 0.95, false), // warmup initial momentum
    ("warmup_bias_lr", 1.0, 0.0, 0.2, false),   // warmup initial bias lr
    ("box", 1.0, 0.02, 0.2, false),             // box loss gain
    ("cls", 1.0, 0.2, 4.0, false),              // cls loss gain
    ("cls_pw", 1.0, 0.5, 2.0, false),           // cls BCE positive weight
    ("obj", 1.0, 0.2, 4.0, false),              // obj loss gain
    ("obj_pw", 1.0, 0.5, 2.0, false),           // obj BCE positive weight
    ("iou_t", 0.0, 0.1, 0.7, false),            // IoU training threshold (unused by the loss)
    ("anchor_t", 1.0, 2.0, 8.0, false),         // anchor-multiple threshold
    ("anchors", 2.0, 2.0, 10.0, false),         // anchors per output level
    ("fl_gamma", 0.0, 0.0, 2.0, false),         // focal loss gamma
    ("hsv_h", 1.0, 0.0, 0.1, true),             // hue augmentation
    ("hsv_s", 1.0, 0.0, 0.9, true),             // saturation augmentation
    ("hsv_v", 1.0, 0.0, 0.9, true),             // value augmentation
    ("degrees", 1.0, 0.0, 45.0, true),          // rotation
    ("translate", 1.0, 0.0, 0.9, true),         // translation
    ("scale", 1.0, 0.0, 0.9, true),             // scale
    ("shear", 1.0, 0.0, 10.0, true),            // shear
    ("perspective", 0.0, 0.0, 0.001, true),     // perspective
    ("flipud", 1.0, 0.0, 1.0, true),            // up-down flip probability
    ("fliplr", 0.0, 0.0, 1.0, true),            // left-right flip probability
    ("mosaic", 1.0, 0.0, 1.0, true),            // mosaic probability
    ("mixup", 1.0, 0.0, 1.0, true),             // mixup probability
    ("copy_paste", 1.0, 0.0, 1.0, true),        // segment copy-paste probability
];

/// The search space: a gene per hyperparameter key, in hyp key order.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    genes: Vec<(String, Gene)>,
}

impl Default for Space {
    fn default() -> Self {
        Space {
            genes: META
                .iter()
                .map(|&(k, gain, low, high, population)| {
                    (k.to_string(), Gene { gain, low, high, population, kind: GeneKind::Float })
                })
                .collect(),
        }
    }
}

impl Space {
    /// The gene of a key.
    pub fn gene(&self, key: &str) -> Option<&Gene> {
        self.genes.iter().find(|(k, _)| k == key).map(|(_, g)| g)
    }

    fn gene_mut(&mut self, key: &str) -> &mut Gene {
        if self.gene(key).is_none() {
            let kind = super::structure::kind_of(key).unwrap_or(GeneKind::Float);
            self.genes.push((key.to_string(), Gene { gain: 1.0, low: 0.0, high: f64::MAX, population: false, kind }));
        }
        self.genes.iter_mut().find(|(k, _)| k == key).map(|(_, g)| g).expect("inserted above")
    }

    /// Never mutate `key` (gain 0, not evolved by the population GA).
    pub fn fix(mut self, key: &str) -> Self {
        let g = self.gene_mut(key);
        g.gain = 0.0;
        g.population = false;
        self
    }

    /// Mutate `key` (gain 1 unless set, and evolved by the population GA).
    pub fn free(mut self, key: &str) -> Self {
        let g = self.gene_mut(key);
        if g.gain == 0.0 {
            g.gain = 1.0;
        }
        g.population = true;
        self
    }

    /// Limits of `key`.
    pub fn bounds(mut self, key: &str, low: f64, high: f64) -> Self {
        let g = self.gene_mut(key);
        g.low = low;
        g.high = high;
        self
    }

    /// Mutation gain of `key` (0 fixes it).
    pub fn gain(mut self, key: &str, gain: f64) -> Self {
        self.gene_mut(key).gain = gain;
        self
    }

    /// Remove a gene (e.g. `anchors` under `noautoanchor`).
    pub fn remove(mut self, key: &str) -> Self {
        self.genes.retain(|(k, _)| k != key);
        self
    }

    /// Evolve a structural gene (see [`STRUCTURAL`](super::structure::STRUCTURAL)) between `low` and
    /// `high`, in both GAs. Generation 0 trains the base trainer's value.
    pub fn structure(mut self, key: &str, low: f64, high: f64) -> Self {
        let g = self.gene_mut(key);
        (g.low, g.high, g.population) = (low, high, true);
        if g.gain == 0.0 {
            g.gain = 1.0;
        }
        self
    }

    /// Evolve the model's depth multiple (block repeats) between `low` and `high` (yolov5n/s: 0.33).
    pub fn depth_multiple(self, low: f64, high: f64) -> Self {
        self.structure("depth_multiple", low, high)
    }

    /// Evolve the model's width multiple (channels) between `low` and `high` (yolov5n 0.25, s 0.5).
    pub fn width_multiple(self, low: f64, high: f64) -> Self {
        self.structure("width_multiple", low, high)
    }

    /// Evolve the image size between `low` and `high` pixels, in multiples of 32.
    pub fn imgsz(self, low: u32, high: u32) -> Self {
        self.structure("imgsz", low as f64, high as f64)
    }

    /// Evolve the freeze depth (`--freeze n`: modules 0..n-1 frozen) between `low` and `high`.
    pub fn freeze_depth(self, low: usize, high: usize) -> Self {
        self.structure("freeze", low as f64, high as f64)
    }

    /// Evolve the optimizer among SGD, Adam and AdamW.
    pub fn optimizer(self) -> Self {
        self.structure("optimizer", 0.0, 2.0)
    }

    /// Evolve whether the learning rate follows the cosine schedule.
    pub fn cos_lr(self) -> Self {
        self.structure("cos_lr", 0.0, 1.0)
    }

    /// The structural genes of the space, in order.
    pub fn structural(&self) -> impl Iterator<Item = (&str, &Gene)> {
        self.genes().filter(|(k, _)| super::structure::is_structural(k))
    }

    /// Genes in order.
    pub fn genes(&self) -> impl Iterator<Item = (&str, &Gene)> {
        self.genes.iter().map(|(k, g)| (k.as_str(), g))
    }

    /// Every key must be a hyperparameter, limits ordered and gains within [0, 2].
    pub fn validate(&self) -> Result<()> {
        for (k, g) in &self.genes {
            let bad = |m: String| Err(Error::Config { name: "space", message: format!("`{k}`: {m}") });
            let structural = super::structure::is_structural(k);
            if crate::hyp::Hyp::default().get(k).is_none() && k != "anchors" && !structural {
                return bad("not a hyperparameter or a structural gene".into());
            }
            if structural && let Err(m) = super::structure::check(k, g) {
                return bad(m);
            }
            if g.low > g.high || !g.low.is_finite() || !g.high.is_finite() {
                return bad(format!("limits [{}, {}] are not ordered finite numbers", g.low, g.high));
            }
            if !(0.0..=10.0).contains(&g.gain) {
                return bad(format!("gain {} is outside [0, 10]", g.gain));
            }
        }
        Ok(())
    }
}
