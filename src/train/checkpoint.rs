//! Checkpoints as safetensors (`weights/last.safetensors`, `weights/best.safetensors`), written atomically.
//!
//! The EMA weights are stored under the model's own names, so `Yolo::load("best.safetensors")` works and
//! Python's `safetensors.torch.load_file` gives a YOLOv5 state_dict. `last` also holds what resuming needs:
//! the raw training weights (`train.` prefix), the optimizer state (`optim.` prefix) and, in the file's
//! metadata (`yolo_lab`, JSON), epoch, best fitness, EMA updates and the run's settings.

use crate::error::{Error, Result};
use crate::fsutil::unique_suffix;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Prefix of the raw (non-EMA) training weights.
pub const TRAIN_PREFIX: &str = "train.";
/// Prefix of the optimizer state.
pub const OPTIM_PREFIX: &str = "optim.";
/// Metadata key holding [`CheckpointMeta`] as JSON.
pub const META_KEY: &str = "yolo_lab";

/// What a checkpoint records besides tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CheckpointMeta {
    /// Last completed epoch (0-based).
    pub epoch: usize,
    /// Best fitness so far.
    pub best_fitness: f64,
    /// Epoch of the best fitness.
    pub best_epoch: usize,
    /// EMA updates so far.
    pub ema_updates: u64,
    /// Optimizer steps so far.
    pub optimizer_steps: i64,
    /// Global iteration of the last optimizer step (so gradient accumulation resumes in phase).
    #[serde(default = "minus_one")]
    pub last_opt_step: i64,
    /// Model config name or path.
    pub cfg: String,
    /// Class names.
    pub names: Vec<String>,
    /// Hyperparameters as YAML.
    pub hyp: String,
    /// The run's settings (opt.yaml) as YAML.
    pub opt: String,
    /// Whether this file carries the training state (last) or only weights (best).
    pub resumable: bool,
    /// yolo-lab version.
    pub version: String,
}

fn bytes_of(t: &Tensor) -> (Dtype, Vec<u8>) {
    let t = t.detach().to_device(Device::Cpu);
    // int64, float16 (a compact copy of best weights) and float64 as they are, everything else as float32
    let (dtype, t) = match t.kind() {
        Kind::Int64 => (Dtype::I64, t),
        Kind::Half => (Dtype::F16, t),
        Kind::Double => (Dtype::F64, t),
        _ => (Dtype::F32, t.to_kind(Kind::Float)),
    };
    let t = t.contiguous();
    // the element bytes in memory order: little-endian on every platform libtorch ships for, as safetensors wants
    let mut bytes = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
    t.copy_data_u8(&mut bytes, t.numel());
    (dtype, bytes)
}

/// Write tensors and metadata to `path` atomically (temporary file beside it, then rename).
pub fn write(path: &Path, tensors: &[(String, Tensor)], meta: &CheckpointMeta) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            let (dt, b) = bytes_of(t);
            (n.clone(), dt, t.size().iter().map(|&d| d as usize).collect(), b)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(n, dt, shape, b)| {
            (n.clone(), TensorView::new(*dt, shape.clone(), b).expect("sizes agree by construction"))
        })
        .collect();
    let json = serde_json::to_string(meta).expect("metadata serialises");
    let info = HashMap::from([(META_KEY.to_string(), json)]);
    let tmp = dir.join(format!(".{}.tmp{}", path.file_name().unwrap_or_default().to_string_lossy(), unique_suffix()));
    let res = safetensors::tensor::serialize_to_file(views, Some(info), &tmp)
        .map_err(|e| Error::DataConfig { path: path.into(), message: format!("cannot write checkpoint: {e}") })
        .and_then(|()| {
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
        });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// A half-precision copy of a weights file: every floating-point tensor as float16, integers and the
/// metadata as they are (a compact file to commit or share; loading converts back to the model's precision).
pub fn write_half(from: &Path, to: &Path) -> Result<()> {
    let meta = read_meta(from)?;
    let mut tensors: Vec<(String, Tensor)> = read_tensors(from)?
        .into_iter()
        .map(|(n, t)| {
            let t = if t.is_floating_point() { t.to_kind(Kind::Half) } else { t };
            (n, t)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    write(to, &tensors, &meta)
}

/// Read a checkpoint's metadata.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: String| Error::DataConfig { path: path.into(), message: m };
    let (_, md) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let json = md
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| bad("not a yolo-lab checkpoint (no `yolo_lab` metadata)".into()))?;
    serde_json::from_str(json).map_err(|e| bad(format!("bad checkpoint metadata: {e}")))
}

/// Read every tensor of a checkpoint.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let list = Tensor::read_safetensors(path)
        .map_err(|e| Error::DataConfig { path: path.into(), message: format!("cannot read checkpoint: {e}") })?;
    Ok(list.into_iter().collect())
}

fn minus_one() -> i64 {
    -1
}
