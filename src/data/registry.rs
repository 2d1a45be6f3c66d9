//! The data set registry (`datasets.toml`) and YOLOv5 data yamls.

use super::{COCO_NAMES, Dataset, ShapesConfig, ShapesStyle, VOC_NAMES};
use crate::error::{Error, IoContext, Result};
use crate::report::Reporter;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const BUILTIN: &str = include_str!("../../datasets.toml");

/// A split given as a count (generated sets) or as paths.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Spec {
    Count(u64),
    One(String),
    Many(Vec<String>),
}

/// Class names: a list, or the name of a built-in list (`coco`, `voc`, `shapes`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Names {
    Builtin(String),
    List(Vec<String>),
}

/// One `[name]` table of datasets.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    generate: Option<String>,
    seed: Option<u64>,
    imgsz: Option<u32>,
    style: Option<String>,
    root: Option<String>,
    yaml: Option<String>,
    train: Option<Spec>,
    val: Option<Spec>,
    test: Option<Spec>,
    names: Option<Names>,
    download: Option<String>,
}

/// The named data sets: the crate's `datasets.toml`, then `./datasets.toml`, then `$YOLO_LAB_DATASETS`
/// (later files add entries and override earlier ones).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, (Entry, PathBuf)>,
}

impl Registry {
    /// Load the built-in registry and any user files.
    pub fn load() -> Result<Self> {
        let mut reg = Registry::default();
        let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets.toml");
        reg.add_text(BUILTIN, &builtin)?;
        let mut extra = vec![PathBuf::from("datasets.toml")];
        if let Some(p) = std::env::var_os("YOLO_LAB_DATASETS") {
            extra.push(PathBuf::from(p));
        }
        for p in extra {
            let same = p.canonicalize().ok().is_some_and(|c| builtin.canonicalize().ok() == Some(c));
            if p.is_file() && !same {
                let text = std::fs::read_to_string(&p).at(&p)?;
                reg.add_text(&text, &p.canonicalize().unwrap_or(p.clone()))?;
            }
        }
        Ok(reg)
    }

    /// Add the entries of one TOML text; `file` labels errors and anchors relative roots.
    pub fn add_text(&mut self, text: &str, file: &Path) -> Result<()> {
        let table: BTreeMap<String, Entry> =
            toml::from_str(text).map_err(|e| Error::Toml { path: file.into(), message: e.to_string() })?;
        for (name, entry) in table {
            self.entries.insert(name, (entry, file.to_path_buf()));
        }
        Ok(())
    }

    /// Registered names.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// How to obtain a data set that is not on disk, if the registry says.
    pub fn download_note(&self, name: &str) -> Option<&str> {
        self.entries.get(name).and_then(|(e, _)| e.download.as_deref())
    }

    /// Resolve a name into a [`Dataset`], generating built-in sets when needed.
    pub fn dataset(&self, name: &str) -> Result<Dataset> {
        self.dataset_with(name, &Reporter::default())
    }

    /// [`Registry::dataset`] reporting generation and yaml warnings to `reporter`.
    pub fn dataset_with(&self, name: &str, reporter: &Reporter) -> Result<Dataset> {
        let Some((entry, file)) = self.entries.get(name) else {
            return Err(Error::UnknownName { kind: "data set", name: name.into(), available: self.names().join(", ") });
        };
        let bad = |message: String| Error::DataConfig { path: file.clone(), message: format!("[{name}]: {message}") };
        if let Some(kind) = &entry.generate {
            if kind != "shapes" {
                return Err(bad(format!("unknown generator `{kind}` (known: shapes)")));
            }
            let count = |s: &Option<Spec>, field: &str, default: usize| match s {
                None => Ok(default),
                Some(Spec::Count(n)) => Ok(*n as usize),
                Some(_) => Err(bad(format!("`{field}` of a generated set must be an image count"))),
            };
            let style = match entry.style.as_deref() {
                None | Some("default") => ShapesStyle::Default,
                Some("alt") => ShapesStyle::Alt,
                Some(other) => {
                    return Err(bad(format!("unknown shapes style `{other}` (known: default, alt)")));
                }
            };
            let cfg = ShapesConfig {
                seed: entry.seed.unwrap_or(0),
                train: count(&entry.train, "train", 256)?,
                val: count(&entry.val, "val", 64)?,
                imgsz: entry.imgsz.unwrap_or(320),
                style,
            };
            let mut ds = cfg.generate_with(reporter)?;
            ds.name = name.into();
            return Ok(ds);
        }
        let base = file.parent().unwrap_or(Path::new("."));
        let root = base.join(entry.root.as_deref().unwrap_or("."));
        let missing = |what: &Path| {
            let how = entry.download.as_deref().map(|d| format!("\nTo obtain it: {d}")).unwrap_or_default();
            bad(format!("{} does not exist.{how}", what.display()))
        };
        if let Some(yaml) = &entry.yaml {
            let y = root.join(yaml);
            if !y.is_file() {
                return Err(missing(&y));
            }
            let mut ds = from_data_yaml(&y, reporter)?;
            ds.name = name.into();
            return Ok(ds);
        }
        if !root.exists() {
            return Err(missing(&root));
        }
        let paths = |s: &Option<Spec>, field: &str| -> Result<Vec<PathBuf>> {
            Ok(match s {
                None => vec![],
                Some(Spec::One(p)) => vec![root.join(p)],
                Some(Spec::Many(v)) => v.iter().map(|p| root.join(p)).collect(),
                Some(Spec::Count(_)) => {
                    return Err(bad(format!("`{field}` must be a path or a list of paths")));
                }
            })
        };
        let names = match &entry.names {
            None => return Err(bad("`names` is missing".into())),
            Some(Names::List(v)) => v.clone(),
            Some(Names::Builtin(b)) => builtin_names(b).ok_or_else(|| {
                bad(format!("unknown names list `{b}` (built in: coco, voc, shapes; or give a list)"))
            })?,
        };
        let ds = Dataset {
            name: name.into(),
            root: root.clone(),
            train: paths(&entry.train, "train")?,
            val: paths(&entry.val, "val")?,
            test: paths(&entry.test, "test")?,
            names,
            source: file.clone(),
        };
        for p in ds.train.iter().chain(&ds.val) {
            if !p.exists() {
                return Err(missing(p));
            }
        }
        Ok(ds)
    }
}

fn builtin_names(name: &str) -> Option<Vec<String>> {
    let list: &[&str] = match name {
        "coco" => &COCO_NAMES,
        "voc" => &VOC_NAMES,
        "shapes" => &super::SHAPES_NAMES,
        _ => return None,
    };
    Some(list.iter().map(|s| s.to_string()).collect())
}

/// Parse a YOLOv5 data yaml.
pub(super) fn from_data_yaml(path: &Path, reporter: &Reporter) -> Result<Dataset> {
    let text = std::fs::read_to_string(path).at(path)?;
    let value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| Error::yaml(path, &e))?;
    let bad = |message: String| Error::DataConfig { path: path.into(), message };
    let map = value.as_mapping().ok_or_else(|| bad("expected a mapping with train, val and names".into()))?;
    let get = |k: &str| map.get(serde_yaml::Value::String(k.into()));
    let unknown: Vec<String> = map.keys().map(yaml_scalar).filter(|k| !DATA_YAML_KEYS.contains(&k.as_str())).collect();
    if !unknown.is_empty() {
        warn_once(
            reporter,
            path,
            &format!("unknown keys ignored: {} (known: {})", unknown.join(", "), DATA_YAML_KEYS.join(", ")),
        );
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // YOLOv5 resolves a relative `path` against its repository root; the nearest analogues here are the
    // yaml's folder, the working folder and the yaml's parent folder: the first that exists wins.
    let root = match get("path").and_then(|v| v.as_str()) {
        Some(p) if Path::new(p).is_absolute() => PathBuf::from(p),
        Some(p) => {
            let candidates = [dir.join(p), PathBuf::from(p), dir.parent().unwrap_or(dir).join(p)];
            candidates.iter().find(|c| c.exists()).cloned().unwrap_or_else(|| candidates[0].clone())
        }
        None => dir.to_path_buf(),
    };
    let split = |k: &str| -> Result<Vec<PathBuf>> {
        match get(k) {
            None | Some(serde_yaml::Value::Null) => Ok(vec![]),
            Some(serde_yaml::Value::String(s)) => Ok(vec![root.join(s)]),
            Some(serde_yaml::Value::Sequence(v)) => v
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(|s| root.join(s))
                        .ok_or_else(|| bad(format!("`{k}` entries must be paths, got {x:?}")))
                })
                .collect(),
            Some(other) => Err(bad(format!("`{k}` must be a path or a list of paths, got {other:?}"))),
        }
    };
    let names: Vec<String> = match get("names") {
        Some(serde_yaml::Value::Sequence(v)) => v.iter().map(yaml_scalar).collect(),
        Some(serde_yaml::Value::Mapping(m)) => {
            let mut pairs = Vec::with_capacity(m.len());
            for (k, v) in m {
                let i = k.as_u64().ok_or_else(|| bad(format!("`names` keys must be class indices, got {k:?}")))?;
                pairs.push((i as usize, yaml_scalar(v)));
            }
            pairs.sort();
            if pairs.iter().enumerate().any(|(j, (i, _))| *i != j) {
                return Err(bad("`names` indices must run 0, 1, 2, ... without gaps".into()));
            }
            pairs.into_iter().map(|(_, n)| n).collect()
        }
        None => vec![],
        Some(other) => {
            return Err(bad(format!("`names` must be a list or an index: name mapping, got {other:?}")));
        }
    };
    let nc = match get("nc") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| bad(format!("`nc` must be a whole number, got {v:?}")))? as usize),
    };
    let names = match (nc, names.is_empty()) {
        (None, true) => return Err(bad("`names` is missing".into())),
        (Some(n), true) => (0..n).map(|i| format!("class{i}")).collect(),
        (Some(n), false) if n != names.len() => {
            return Err(bad(format!("`nc` is {n} but `names` lists {} classes", names.len())));
        }
        _ => names,
    };
    let ds = Dataset {
        name: path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        root: root.clone(),
        train: split("train")?,
        val: split("val")?,
        test: split("test")?,
        names,
        source: path.into(),
    };
    if ds.train.is_empty() && ds.val.is_empty() {
        return Err(bad("neither `train` nor `val` is given".into()));
    }
    for p in ds.train.iter().chain(&ds.val) {
        if !p.exists() {
            return Err(bad(format!("{} does not exist", p.display())));
        }
    }
    Ok(ds)
}

/// Keys of a YOLOv5 data yaml (`download` is YOLOv5's fetch script, `roboflow` a Roboflow export's block).
pub const DATA_YAML_KEYS: [&str; 8] = ["path", "train", "val", "test", "names", "nc", "download", "roboflow"];

/// A warning about a file, printed once per process.
fn warn_once(reporter: &Reporter, path: &Path, message: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let line = format!("{}: {message}", path.display());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if !seen.contains(&line) {
        reporter.warn(&line);
        seen.push(line);
    }
}

fn yaml_scalar(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).map(|s| s.trim().to_string()).unwrap_or_default(),
    }
}
