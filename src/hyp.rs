//! Training hyperparameters: YOLOv5's `data/hyps/hyp.*.yaml` files as a typed, ordered struct.
//!
//! Mirrors the hyp dict that `train.py` (ultralytics/yolov5@5081342f) loads from `--hyp`: the same 28 keys plus
//! the optional `anchors`, in the file's order. Presets ship inside the crate (`hyps/`), so
//! `Hyp::load("scratch-low")` works from any folder, notebooks included.

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{write_atomic, yaml_float};
use std::fmt;
use std::path::{Path, PathBuf};

/// The presets shipped in `hyps/`: (name, file contents).
pub const PRESETS: [(&str, &str); 6] = [
    ("scratch-low", include_str!("../hyps/hyp.scratch-low.yaml")),
    ("scratch-med", include_str!("../hyps/hyp.scratch-med.yaml")),
    ("scratch-high", include_str!("../hyps/hyp.scratch-high.yaml")),
    ("VOC", include_str!("../hyps/hyp.VOC.yaml")),
    ("Objects365", include_str!("../hyps/hyp.Objects365.yaml")),
    ("no-augmentation", include_str!("../hyps/hyp.no-augmentation.yaml")),
];

/// Declares the `Hyp` struct, its key table and accessors from one list, so a key is written once.
macro_rules! hyp_struct {
    ($( $(#[doc = $doc:literal])* $name:literal $key:ident : $default:literal, [$min:literal, $max:literal]; )*) => {
        /// YOLOv5 training hyperparameters. `Default` is `hyp.scratch-low.yaml`.
        ///
        /// Fields are public for reading and quick edits; [`Hyp::set`] and [`Hyp::validate`] check ranges.
        /// `anchors` is optional as in YOLOv5's files (commented out in most presets).
        #[derive(Debug, Clone, PartialEq)]
        pub struct Hyp {
            $( $(#[doc = $doc])* #[doc = concat!("\n\nDefault: `", stringify!($default), "` (`", $name, "` in hyp.scratch-low.yaml).")] pub $key: f64, )*
            /// Anchors per output level; `None` keeps the model yaml's anchors (YOLOv5 adds `anchors: 3` when
            /// evolving). Default: absent.
            pub anchors: Option<f64>,
            /// Key order as read (or YOLOv5's order), so saving keeps the layout. Contains `anchors` iff set.
            order: Vec<&'static str>,
        }

        /// The keys every hyp file must have, in YOLOv5's order (`anchors` is optional and not listed).
        pub const REQUIRED_KEYS: &[&str] = &[$($name),*];

        /// Accepted range of each key, inclusive: values outside cannot train (negative probabilities,
        /// momentum of 1, shear of 90 degrees, ...).
        const RANGES: &[(&str, f64, f64)] = &[$(($name, $min, $max)),* , ("anchors", 0.0, 20.0)];

        impl Default for Hyp {
            fn default() -> Self {
                Hyp { $($key: $default,)* anchors: None, order: REQUIRED_KEYS.to_vec() }
            }
        }

        impl Hyp {
            /// The value of `key`, or `None` for an unknown key or an absent `anchors`.
            pub fn get(&self, key: &str) -> Option<f64> {
                match key {
                    $($name => Some(self.$key),)*
                    "anchors" => self.anchors,
                    _ => None,
                }
            }

            fn slot(&mut self, key: &str) -> Option<&mut f64> {
                match key {
                    $($name => Some(&mut self.$key),)*
                    _ => None,
                }
            }
        }
    };
}

hyp_struct! {
    /// Initial learning rate (SGD 1e-2, Adam 1e-3).
    "lr0" lr0: 0.01, [0.0, 10.0];
    /// Final learning rate as a fraction of `lr0`.
    "lrf" lrf: 0.01, [0.0, 10.0];
    /// SGD momentum or Adam beta1.
    "momentum" momentum: 0.937, [0.0, 0.999];
    /// Weight decay of conv weights.
    "weight_decay" weight_decay: 0.0005, [0.0, 1.0];
    /// Warmup length in epochs (fractions allowed).
    "warmup_epochs" warmup_epochs: 3.0, [0.0, 1000.0];
    /// Momentum at the start of warmup.
    "warmup_momentum" warmup_momentum: 0.8, [0.0, 0.999];
    /// Bias learning rate at the start of warmup.
    "warmup_bias_lr" warmup_bias_lr: 0.1, [0.0, 10.0];
    /// Box loss gain.
    "box" box_: 0.05, [0.0, 1000.0];
    /// Classification loss gain.
    "cls" cls: 0.5, [0.0, 1000.0];
    /// Classification BCE positive weight.
    "cls_pw" cls_pw: 1.0, [0.0, 1000.0];
    /// Objectness loss gain.
    "obj" obj: 1.0, [0.0, 1000.0];
    /// Objectness BCE positive weight.
    "obj_pw" obj_pw: 1.0, [0.0, 1000.0];
    /// IoU training threshold (read by no current loss; kept for file compatibility).
    "iou_t" iou_t: 0.20, [0.0, 1.0];
    /// Anchor-multiple threshold of target assignment.
    "anchor_t" anchor_t: 4.0, [1.0, 100.0];
    /// Focal loss gamma (0 = off).
    "fl_gamma" fl_gamma: 0.0, [0.0, 10.0];
    /// HSV hue augmentation (fraction).
    "hsv_h" hsv_h: 0.015, [0.0, 1.0];
    /// HSV saturation augmentation (fraction).
    "hsv_s" hsv_s: 0.7, [0.0, 1.0];
    /// HSV value augmentation (fraction).
    "hsv_v" hsv_v: 0.4, [0.0, 1.0];
    /// Rotation (+/- degrees).
    "degrees" degrees: 0.0, [0.0, 180.0];
    /// Translation (+/- fraction).
    "translate" translate: 0.1, [0.0, 1.0];
    /// Scale (+/- gain).
    "scale" scale: 0.5, [0.0, 1.0];
    /// Shear (+/- degrees).
    "shear" shear: 0.0, [0.0, 80.0];
    /// Perspective (+/- fraction).
    "perspective" perspective: 0.0, [0.0, 0.1];
    /// Up-down flip probability.
    "flipud" flipud: 0.0, [0.0, 1.0];
    /// Left-right flip probability.
    "fliplr" fliplr: 0.5, [0.0, 1.0];
    /// Mosaic probability.
    "mosaic" mosaic: 1.0, [0.0, 1.0];
    /// MixUp probability.
    "mixup" mixup: 0.0, [0.0, 1.0];
    /// Segment copy-paste probability.
    "copy_paste" copy_paste: 0.0, [0.0, 1.0];
}

/// YOLOv5 spells the box gain `box`, a Rust keyword: the field is `box_`, the key stays `box`.
/// All keys a hyp file may contain, YOLOv5 spelling.
fn known_keys() -> impl Iterator<Item = &'static str> {
    REQUIRED_KEYS.iter().copied().chain(std::iter::once("anchors"))
}

fn memory_path() -> PathBuf {
    PathBuf::from("<memory>")
}

impl Hyp {
    /// Load a preset by name (`"scratch-low"`, also `"hyp.scratch-low.yaml"`) or a YAML file by path.
    pub fn load(name_or_path: impl AsRef<Path>) -> Result<Self> {
        let p = name_or_path.as_ref();
        if p.exists() {
            return Self::from_file(p);
        }
        let s = p.to_string_lossy();
        let name = s.trim_start_matches("hyp.").trim_end_matches(".yaml");
        match PRESETS.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Self::from_yaml_str(text, Path::new(&format!("hyps/hyp.{n}.yaml"))),
            None if s.ends_with(".yaml") || s.contains('/') => {
                Err(Error::io(p, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")))
            }
            None => Err(Error::UnknownName {
                kind: "hyperparameter preset",
                name: s.into_owned(),
                available: PRESETS.map(|(n, _)| n).join(", "),
            }),
        }
    }

    /// A shipped preset by name.
    pub fn preset(name: &str) -> Result<Self> {
        Self::load(name)
    }

    /// Read a hyp YAML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).at(path)?;
        Self::from_yaml_str(&text, path)
    }

    /// Parse hyp YAML text; `path` only labels errors. Every key training reads must be present.
    pub fn from_yaml_str(text: &str, path: &Path) -> Result<Self> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| Error::yaml(path, &e))?;
        let map = match value {
            serde_yaml::Value::Mapping(m) => m,
            other => {
                return Err(Error::Yaml {
                    path: path.into(),
                    line: None,
                    message: format!("expected a mapping of `key: value`, got {}", yaml_kind(&other)),
                });
            }
        };
        let mut hyp = Hyp { order: Vec::with_capacity(map.len()), ..Hyp::default() };
        for (k, v) in &map {
            let key = match k {
                serde_yaml::Value::String(s) => s.as_str(),
                other => {
                    return Err(Error::UnknownHypKey {
                        path: path.into(),
                        key: format!("{other:?}"),
                        expected: known_keys().collect::<Vec<_>>().join(", "),
                    });
                }
            };
            let Some(canonical) = known_keys().find(|k| *k == key) else {
                return Err(Error::UnknownHypKey {
                    path: path.into(),
                    key: key.into(),
                    expected: known_keys().collect::<Vec<_>>().join(", "),
                });
            };
            let value = yaml_number(v).ok_or_else(|| Error::HypNotNumeric {
                path: path.into(),
                key: key.into(),
                value: yaml_text(v),
            })?;
            hyp.put(canonical, value);
        }
        for key in known_keys().filter(|k| *k != "anchors") {
            if !hyp.order.contains(&key) {
                return Err(Error::MissingHypKey { path: path.into(), key: key.into() });
            }
        }
        hyp.validate_at(path)?;
        Ok(hyp)
    }

    /// Store a value without checking it; appends the key to the order when it is new (as YOLOv5 appends
    /// `anchors`).
    fn put(&mut self, key: &'static str, value: f64) {
        if key == "anchors" {
            self.anchors = Some(value);
        } else {
            *self.slot(key).expect("key checked by caller") = value;
        }
        if !self.order.contains(&key) {
            self.order.push(key);
        }
    }

    /// Set `key` to `value`, checking the key and its range. Setting an absent `anchors` appends it last.
    pub fn set(&mut self, key: &str, value: f64) -> Result<()> {
        let Some(canonical) = known_keys().find(|k| *k == key) else {
            return Err(Error::UnknownHypKey {
                path: memory_path(),
                key: key.into(),
                expected: known_keys().collect::<Vec<_>>().join(", "),
            });
        };
        check_range(canonical, value, &memory_path())?;
        self.put(canonical, value);
        Ok(())
    }

    /// Remove `anchors` (YOLOv5 does this under `--noautoanchor` when evolving).
    pub fn remove_anchors(&mut self) {
        self.anchors = None;
        self.order.retain(|k| *k != "anchors");
    }

    /// The value of a key written as YOLOv5 spells it, or `None`. Same as [`Hyp::get`].
    pub fn value(&self, key: &str) -> Option<f64> {
        self.get(key)
    }

    /// Keys present, in order (YOLOv5 spelling: `box`, not `box_`).
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.order.iter().copied()
    }

    /// `(key, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.order.iter().map(|k| (*k, self.get(k).expect("order holds only present keys")))
    }

    /// Number of keys present (28, or 29 with `anchors`).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Always false: a hyp has at least the 28 required keys.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Check every value against the range training accepts.
    pub fn validate(&self) -> Result<()> {
        self.validate_at(&memory_path())
    }

    fn validate_at(&self, path: &Path) -> Result<()> {
        self.iter().try_for_each(|(k, v)| check_range(k, v, path))
    }

    /// The YAML text: `key: value` lines in order, floats written as PyYAML writes them.
    pub fn to_yaml_string(&self) -> String {
        self.iter().map(|(k, v)| format!("{k}: {}\n", yaml_float(v))).collect()
    }

    /// Save as YAML (atomically), keeping the key order.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), self.to_yaml_string().as_bytes())
    }
}

impl fmt::Display for Hyp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.iter().map(|(k, v)| format!("{k}={}", crate::fsutil::python_repr(v))).collect();
        write!(f, "hyperparameters: {}", parts.join(", "))
    }
}

fn check_range(key: &str, value: f64, path: &Path) -> Result<()> {
    let (_, min, max) = RANGES.iter().find(|(k, _, _)| *k == key).copied().expect("known key");
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::HypOutOfRange { path: path.into(), key: key.into(), value, min, max })
    }
}

fn yaml_number(v: &serde_yaml::Value) -> Option<f64> {
    match v {
        serde_yaml::Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn yaml_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Null => "null".into(),
        other => serde_yaml::to_string(other).map(|s| s.trim().to_string()).unwrap_or_default(),
    }
}

fn yaml_kind(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "nothing (empty file)",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_scratch_low() {
        assert_eq!(Hyp::default(), Hyp::load("scratch-low").unwrap());
    }

    #[test]
    fn every_preset_parses() {
        for (name, _) in PRESETS {
            let h = Hyp::load(name).unwrap();
            assert!(h.len() >= 28, "{name}");
        }
        let voc = Hyp::load("VOC").unwrap();
        assert_eq!(voc.anchors, Some(3.412));
        assert_eq!(voc.keys().last(), Some("anchors"));
        let o365 = Hyp::load("Objects365").unwrap();
        let keys: Vec<_> = o365.keys().collect();
        assert_eq!(keys[13..15], ["anchor_t", "anchors"]);
    }
}
