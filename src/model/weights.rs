//! Loading and saving weights as safetensors with YOLOv5's state_dict names.

use super::{Checkpoint, ModelConfig, Yolo};
use crate::error::{Error, Result};
use crate::fsutil::unique_suffix;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use tch::Tensor;

/// What a (partial) load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Tensors copied into the model.
    pub loaded: usize,
    /// Model tensors absent from the file (kept as initialised).
    pub missing: Vec<String>,
    /// Tensors whose shapes differ: (name, model shape, file shape); kept as initialised.
    pub mismatched: Vec<(String, Vec<i64>, Vec<i64>)>,
    /// File tensors the model has no use for (e.g. `num_batches_tracked` of other layouts).
    pub unexpected: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transferred {} tensors", self.loaded)?;
        if !self.mismatched.is_empty() {
            let names: Vec<String> = self.mismatched.iter().map(|(n, a, b)| format!("{n} {a:?}≠{b:?}")).collect();
            write!(f, "; skipped {} with other shapes ({})", names.len(), names.join(", "))?;
        }
        if !self.missing.is_empty() {
            write!(f, "; {} not in the file ({})", self.missing.len(), self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "; {} unused file tensors", self.unexpected.len())?;
        }
        Ok(())
    }
}

/// Whether a weights file is a PyTorch `.pt` (a zip) rather than safetensors.
pub fn is_pt(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && &magic == b"PK\x03\x04"
}

/// A weights file's tensors: a YOLOv5 `.pt` checkpoint's state_dict, or a safetensors file's tensors.
fn read(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such weights file")));
    }
    if is_pt(path) {
        return Ok(Checkpoint::read(path)?.tensors());
    }
    let list = Tensor::read_safetensors(path).map_err(|e| Error::Checkpoint {
        path: path.into(),
        message: format!("neither a YOLOv5 .pt checkpoint nor a readable safetensors file ({e})"),
    })?;
    Ok(list.into_iter().collect())
}

impl Yolo {
    /// Copy tensors from a safetensors file whose names and shapes match; report the rest. Used to fine-tune
    /// on another number of classes (the Detect convs then keep their initialisation).
    pub fn load_partial(&mut self, path: impl AsRef<Path>) -> Result<LoadReport> {
        let path = path.as_ref();
        Ok(self.load_tensors(&read(path)?))
    }

    fn load_tensors(&mut self, file: &HashMap<String, Tensor>) -> LoadReport {
        let mut report = LoadReport::default();
        let vars = self.vs.variables();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        tch::no_grad(|| {
            for name in names {
                let mut var = vars[name].shallow_clone();
                match file.get(name) {
                    None => report.missing.push(name.clone()),
                    Some(t) if t.size() != var.size() => report.mismatched.push((name.clone(), var.size(), t.size())),
                    Some(t) => {
                        var.copy_(&t.to_kind(var.kind()).to_device(var.device()));
                        report.loaded += 1;
                    }
                }
            }
        });
        report.unexpected = file.keys().filter(|k| !vars.contains_key(*k)).cloned().collect();
        report.unexpected.sort();
        report
    }

    /// Load every tensor of the model from a safetensors file; any missing or mismatched tensor is an error
    /// naming it. Extra file tensors are ignored.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<LoadReport> {
        let path = path.as_ref();
        let report = self.load_partial(path)?;
        self.require_complete(path, &report)?;
        Ok(report)
    }

    fn require_complete(&self, path: &Path, report: &LoadReport) -> Result<()> {
        if let Some((n, a, b)) = report.mismatched.first() {
            return Err(Error::DataConfig {
                path: path.into(),
                message: format!(
                    "tensor `{n}` has shape {b:?} in the file but {a:?} in the model ({} mismatched in all)",
                    report.mismatched.len()
                ),
            });
        }
        if !report.missing.is_empty() {
            return Err(Error::DataConfig {
                path: path.into(),
                message: format!("{} model tensors are missing, first `{}`", report.missing.len(), report.missing[0]),
            });
        }
        Ok(())
    }

    /// A model built from a YOLOv5 checkpoint's own yaml and `nc`, holding its weights (the EMA's when the
    /// checkpoint has one), as YOLOv5's `attempt_load`.
    pub fn from_checkpoint(ckpt: &Checkpoint, device: tch::Device) -> Result<Self> {
        let name = ckpt.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let config = ModelConfig::parse(&ckpt.yaml_text(), &ckpt.path, &name, Some(ckpt.nc), None)?;
        let mut model = Yolo::from_config(config, device)?;
        model.load_checkpoint(ckpt)?;
        Ok(model)
    }

    /// Load every tensor of the model from a checkpoint already read (as [`Yolo::load`] does from its file).
    pub fn load_checkpoint(&mut self, ckpt: &Checkpoint) -> Result<LoadReport> {
        let report = self.load_tensors(&ckpt.tensors());
        self.require_complete(&ckpt.path, &report)?;
        Ok(report)
    }

    /// Save every variable (parameters and buffers) as safetensors, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = dir.join(format!(
            ".{}.tmp{}.safetensors",
            path.file_stem().unwrap_or_default().to_string_lossy(),
            unique_suffix()
        ));
        let vars = self.vs.variables();
        let mut named: Vec<(String, Tensor)> =
            vars.into_iter().map(|(k, v)| (k, v.detach().to_device(tch::Device::Cpu).contiguous())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Tensor::write_safetensors(&named, &tmp).map_err(Error::Torch)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
    }
}
