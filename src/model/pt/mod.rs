//! YOLOv5 `.pt` checkpoints read without Python. A `.pt` written by `torch.save` is a zip holding
//! `ARCHIVE/data.pkl` (a pickle of the checkpoint dict) and one raw record `ARCHIVE/data/KEY` per tensor
//! storage. The pickle is run by [`pickle::load`]; a tensor is a call of `torch._utils._rebuild_tensor_v2`
//! whose first argument is a persistent id `('storage', torch.HalfStorage, KEY, device, numel)`, and the
//! model is a pickled `DetectionModel` whose modules keep their parameters and buffers in `_parameters`
//! and `_buffers`. Walking those gives `model.state_dict()` with PyTorch's names; floating tensors are
//! returned in float32 (float16 to float32 is exact), as YOLOv5's `ckpt['model'].float()`.
//!
//! As YOLOv5's loader does, the EMA model of a mid-training checkpoint is preferred over `model`.

pub mod pickle;

use crate::error::{Error, IoContext, Result};
use pickle::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// A YOLOv5 checkpoint: the model's state_dict, its yaml and classes, and the training bookkeeping.
#[derive(Debug)]
pub struct Checkpoint {
    /// The file.
    pub path: PathBuf,
    /// Which entry the weights came from: `"ema"` or `"model"`.
    pub source: &'static str,
    /// `model.yaml`: the model config as the checkpoint stores it.
    pub yaml: serde_yaml::Value,
    /// Classes (`model.nc`, else the yaml's).
    pub nc: i64,
    /// Class names in class order (`model.names`), empty when the checkpoint has none.
    pub names: Vec<String>,
    /// `model.state_dict()` in the module order PyTorch gives it; floating tensors in float32.
    pub state_dict: Vec<(String, Tensor)>,
    /// The kind the floating tensors were stored in (YOLOv5 strips to float16).
    pub stored_kind: Kind,
    /// `epoch` (-1 in a stripped, finished checkpoint).
    pub epoch: Option<i64>,
    /// `best_fitness`, when recorded.
    pub best_fitness: Option<f64>,
    /// `updates` of the EMA, when recorded.
    pub updates: Option<i64>,
    /// Whether optimizer state is present (a mid-training checkpoint).
    pub has_optimizer: bool,
}

impl Checkpoint {
    /// Read a YOLOv5 checkpoint. A file that is not one (not a zip, a truncated zip, a TorchScript archive, a
    /// bare state_dict, a checkpoint without a model) is an error saying which it is.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |message: String| Error::Checkpoint { path: path.into(), message };
        let (mut zip, prefix, root) = open(path)?;
        let mut storages = Storages { zip: &mut zip, prefix: &prefix, path };
        from_pickle(&root, &mut storages).map_err(bad)
    }

    /// The model a checkpoint holds, as yaml text and class count, without reading its tensors (what a
    /// trainer needs to build the model before it loads them).
    pub fn model_yaml(path: impl AsRef<Path>) -> Result<(String, i64)> {
        let path = path.as_ref();
        let (_, _, root) = open(path)?;
        let about = model_of(&root).and_then(|(_, m)| describe(m));
        let (yaml, nc, _) = about.map_err(|message| Error::Checkpoint { path: path.into(), message })?;
        Ok((serde_yaml::to_string(&yaml).unwrap_or_default(), nc))
    }

    /// The state_dict as a name → tensor map.
    pub fn tensors(&self) -> std::collections::HashMap<String, Tensor> {
        self.state_dict.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect()
    }

    /// The yaml as text (for [`super::ModelConfig::parse`]).
    pub fn yaml_text(&self) -> String {
        serde_yaml::to_string(&self.yaml).unwrap_or_default()
    }
}

/// Write a checkpoint's state_dict as safetensors at `out` (float32, PyTorch's names) and its model yaml,
/// with `nc` and `names`, at `out` with the extension `.yaml`; returns the yaml's path. The pair builds the
/// same model in yolo-lab (`--cfg OUT.yaml --weights OUT.safetensors`) and in YOLOv5.
pub fn convert_checkpoint(ckpt: &Path, out: &Path) -> Result<PathBuf> {
    let ck = Checkpoint::read(ckpt)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let tmp = out.with_extension(format!("tmp{}.safetensors", crate::fsutil::unique_suffix()));
    Tensor::write_safetensors(&ck.state_dict, &tmp).map_err(Error::Torch)?;
    std::fs::rename(&tmp, out).at(out)?;
    let mut yaml = ck.yaml.clone();
    if let serde_yaml::Value::Mapping(m) = &mut yaml {
        m.insert("nc".into(), ck.nc.into());
        m.insert("names".into(), ck.names.iter().map(|n| serde_yaml::Value::from(n.as_str())).collect());
    }
    let yaml_path = out.with_extension("yaml");
    let text = serde_yaml::to_string(&yaml).unwrap_or_default();
    crate::fsutil::write_atomic(&yaml_path, text.as_bytes())?;
    Ok(yaml_path)
}

/// `v` when it is a pickled object (a model), not None.
fn model_like(v: Option<&Value>) -> Option<&Value> {
    v.filter(|m| matches!(m, Value::Object { .. }))
}

/// Open a `.pt`: its zip, the archive prefix (`ARCHIVE/`) and the unpickled `data.pkl`; every way the file
/// fails to be one torch.save wrote is an error saying which.
fn open(path: &Path) -> Result<(zip::ZipArchive<std::io::BufReader<std::fs::File>>, String, Value)> {
    let bad = |message: String| Error::Checkpoint { path: path.into(), message };
    let file = std::fs::File::open(path).at(path)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        bad(format!("not a PyTorch zip archive ({e}); files saved by torch < 1.6 or truncated ones cannot be read"))
    })?;
    let names: Vec<String> = zip.file_names().map(String::from).collect();
    let pkl = names
        .iter()
        .find(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
        .cloned()
        .ok_or_else(|| bad("the archive has no data.pkl: it is not a file written by torch.save".into()))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    if names.iter().any(|n| n.starts_with(&format!("{prefix}code/")) || n.ends_with("/constants.pkl")) {
        return Err(bad(
            "this is a TorchScript archive (torch.jit.save, YOLOv5's export.py --include torchscript); give the \
             training checkpoint (weights/best.pt or last.pt) instead"
                .into(),
        ));
    }
    if let Some(order) = names.iter().find(|n| n.ends_with("/byteorder"))
        && read_entry(&mut zip, order).map_err(&bad)? != b"little"
    {
        return Err(bad("tensors stored big-endian cannot be read".into()));
    }
    let data = read_entry(&mut zip, &pkl).map_err(&bad)?;
    let root = pickle::load(&data).map_err(|e| bad(format!("{pkl}: {e}")))?;
    Ok((zip, prefix, root))
}

fn read_entry<R: std::io::Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
) -> std::result::Result<Vec<u8>, String> {
    let mut f = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
    let mut buf = Vec::with_capacity(f.size() as usize);
    f.read_to_end(&mut buf).map_err(|e| format!("{name}: {e} (a truncated file?)"))?;
    Ok(buf)
}

/// The archive's storage records, read on demand.
struct Storages<'a, R: std::io::Read + std::io::Seek> {
    zip: &'a mut zip::ZipArchive<R>,
    prefix: &'a str,
    path: &'a Path,
}

impl<R: std::io::Read + std::io::Seek> Storages<'_, R> {
    /// A tensor from `_rebuild_tensor_v2(storage, offset, size, stride, ...)` arguments.
    fn tensor(&mut self, args: &[Value]) -> std::result::Result<(Tensor, Kind), String> {
        let [pid, offset, size, stride, ..] = args else {
            return Err(format!("_rebuild_tensor_v2 with {} arguments", args.len()));
        };
        let Value::PersId(pid) = pid else { return Err(format!("a tensor whose storage is {}", pid.describe())) };
        let p = pid.as_seq().unwrap_or_default();
        let (Some(ty), Some(key)) = (p.get(1).and_then(Value::class_name), p.get(2).and_then(Value::as_str)) else {
            return Err(format!("a storage reference {pid:?} that is not ('storage', type, key, device, numel)"));
        };
        let kind = storage_kind(&ty)?;
        let ints = |v: &Value, what: &str| -> std::result::Result<Vec<i64>, String> {
            v.as_seq()
                .ok_or_else(|| format!("tensor {what} is {}", v.describe()))?
                .iter()
                .map(|x| x.as_i64().ok_or_else(|| format!("tensor {what} holds {}", x.describe())))
                .collect()
        };
        let (size, stride) = (ints(size, "size")?, ints(stride, "stride")?);
        let offset = offset.as_i64().ok_or("tensor offset is not an integer")?;
        let name = format!("{}data/{key}", self.prefix);
        let bytes = read_entry(self.zip, &name)?;
        let elt = kind.elt_size_in_bytes();
        if !bytes.len().is_multiple_of(elt) {
            return Err(format!("{name}: {} bytes is not a whole number of {elt}-byte elements", bytes.len()));
        }
        let numel = (bytes.len() / elt) as i64;
        // the last element the view touches must lie inside the storage
        let reach = offset + size.iter().zip(&stride).map(|(n, s)| (n - 1).max(0) * s).sum::<i64>();
        if size.iter().any(|&n| n < 0) || stride.iter().any(|&s| s < 0) || size.len() != stride.len() {
            return Err(format!("{name}: a view of size {size:?} and stride {stride:?}"));
        }
        if size.iter().product::<i64>() > 0 && reach >= numel {
            return Err(format!("{name}: a view of size {size:?} at offset {offset} reaches past {numel} elements"));
        }
        let storage = Tensor::from_data_size(&bytes, &[numel], kind);
        let t = storage.as_strided(&size, &stride, Some(offset)).contiguous();
        Ok((t, kind))
    }
}

/// The element kind of a legacy typed storage class (`torch.HalfStorage`).
fn storage_kind(class: &str) -> std::result::Result<Kind, String> {
    Ok(match class.trim_start_matches("torch.") {
        "HalfStorage" => Kind::Half,
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        other => return Err(format!("storage type `{other}` is not supported")),
    })
}

/// The model of a checkpoint dict: the EMA when there is one (as YOLOv5's loader prefers), else `model`.
fn model_of(root: &Value) -> std::result::Result<(&'static str, &Value), String> {
    let Value::Dict(_) = root else {
        return Err(format!("the pickle holds {}, not a checkpoint dict", root.describe()));
    };
    match (model_like(root.get("ema")), model_like(root.get("model"))) {
        (Some(e), _) => Ok(("ema", e)),
        (None, Some(m)) => Ok(("model", m)),
        (None, None) => {
            let tensors_only = match root {
                Value::Dict(items) => {
                    !items.is_empty()
                        && items.iter().all(|(_, v)| v.class_name().is_some_and(|c| c.contains("rebuild")))
                }
                _ => false,
            };
            Err(if tensors_only {
                "this is a bare state_dict (a dict of tensors), not a YOLOv5 checkpoint: it does not say which \
                 model it belongs to; save it with its model (YOLOv5's train.py does) or convert it with a cfg"
                    .into()
            } else {
                let keys: Vec<String> = match root {
                    Value::Dict(items) => items.iter().filter_map(|(k, _)| k.as_str().map(String::from)).collect(),
                    _ => vec![],
                };
                format!("no `model` or `ema` model in the checkpoint (keys: {})", keys.join(", "))
            })
        }
    }
}

/// A pickled DetectionModel's yaml, class count and class names.
fn describe(model: &Value) -> std::result::Result<(serde_yaml::Value, i64, Vec<String>), String> {
    let state = model.state().ok_or("the model object has no state")?;
    let yaml_v = state.get("yaml").ok_or("the model has no `yaml` (not a YOLOv5 DetectionModel)")?;
    let yaml = to_yaml(yaml_v)?;
    let nc = state
        .get("nc")
        .and_then(Value::as_i64)
        .or_else(|| yaml_v.get("nc").and_then(Value::as_i64))
        .ok_or("neither the model nor its yaml gives `nc`")?;
    let names = match state.get("names") {
        Some(Value::List(v)) | Some(Value::Tuple(v)) => {
            v.iter().map(|n| n.as_str().unwrap_or_default().into()).collect()
        }
        Some(Value::Dict(items)) => {
            let mut v: Vec<(i64, String)> = items
                .iter()
                .map(|(k, n)| (k.as_i64().unwrap_or(i64::MAX), n.as_str().unwrap_or_default().to_string()))
                .collect();
            v.sort_by_key(|x| x.0);
            v.into_iter().map(|x| x.1).collect()
        }
        _ => vec![],
    };
    Ok((yaml, nc, names))
}

/// The checkpoint dict → [`Checkpoint`].
fn from_pickle<R: std::io::Read + std::io::Seek>(
    root: &Value,
    st: &mut Storages<'_, R>,
) -> std::result::Result<Checkpoint, String> {
    let (source, model) = model_of(root)?;
    let (yaml, nc, names) = describe(model)?;
    let mut state_dict = Vec::new();
    let mut stored_kind = Kind::Float;
    collect(model, "", st, &mut state_dict, &mut stored_kind, 0)?;
    if state_dict.is_empty() {
        return Err("the model holds no tensors".into());
    }
    Ok(Checkpoint {
        path: st.path.into(),
        source,
        yaml,
        nc,
        names,
        state_dict,
        stored_kind,
        epoch: root.get("epoch").and_then(Value::as_i64),
        best_fitness: root.get("best_fitness").and_then(Value::as_f64),
        updates: root.get("updates").and_then(Value::as_i64),
        has_optimizer: root.get("optimizer").is_some_and(|o| *o != Value::None),
    })
}

/// `module.state_dict(prefix)`: its parameters, its persistent buffers, then its children's, in order.
fn collect<R: std::io::Read + std::io::Seek>(
    module: &Value,
    prefix: &str,
    st: &mut Storages<'_, R>,
    out: &mut Vec<(String, Tensor)>,
    stored: &mut Kind,
    depth: usize,
) -> std::result::Result<(), String> {
    if depth > 64 {
        return Err("modules nest deeper than 64 levels".into());
    }
    let Some(state) = module.state() else {
        return Err(format!("module {prefix} ({}) has no state", module.class_name().unwrap_or_default()));
    };
    let non_persistent: Vec<&str> = match state.get("_non_persistent_buffers_set") {
        Some(Value::List(v)) => v.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    for (field, skip) in [("_parameters", &[][..]), ("_buffers", &non_persistent[..])] {
        let Some(Value::Dict(items)) = state.get(field) else { continue };
        for (k, v) in items {
            let name = k.as_str().ok_or_else(|| format!("{prefix}{field} has a key that is not a string"))?;
            if *v == Value::None || skip.contains(&name) {
                continue;
            }
            let full = format!("{prefix}{name}");
            let (t, kind) = tensor_of(v, st).map_err(|e| format!("{full}: {e}"))?;
            if t.is_floating_point() {
                *stored = kind;
            }
            out.push((full, if t.is_floating_point() { t.to_kind(Kind::Float) } else { t }));
        }
    }
    if let Some(Value::Dict(children)) = state.get("_modules") {
        for (k, child) in children {
            let name = k.as_str().ok_or_else(|| format!("{prefix}_modules has a key that is not a string"))?;
            if *child == Value::None {
                continue;
            }
            collect(child, &format!("{prefix}{name}."), st, out, stored, depth + 1)?;
        }
    }
    Ok(())
}

/// A tensor or an `nn.Parameter` of one.
fn tensor_of<R: std::io::Read + std::io::Seek>(
    v: &Value,
    st: &mut Storages<'_, R>,
) -> std::result::Result<(Tensor, Kind), String> {
    match v.class_name().as_deref() {
        Some("torch._utils._rebuild_tensor_v2") => st.tensor(v.args()),
        Some("torch._utils._rebuild_parameter") | Some("torch._utils._rebuild_parameter_with_state") => {
            let inner = v.args().first().ok_or("_rebuild_parameter without a tensor")?;
            tensor_of(inner, st)
        }
        _ => Err(format!("expected a tensor, found {}", v.describe())),
    }
}

/// The pickled yaml dict as a YAML value (numbers, strings, lists and dicts; None as null).
fn to_yaml(v: &Value) -> std::result::Result<serde_yaml::Value, String> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Value::None => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Int(i) => Y::Number((*i).into()),
        Value::Float(f) => Y::Number((*f).into()),
        Value::Str(s) => Y::String(s.clone()),
        Value::Tuple(items) | Value::List(items) => Y::Sequence(items.iter().map(to_yaml).collect::<Result<_, _>>()?),
        Value::Dict(items) => {
            let mut m = serde_yaml::Mapping::new();
            for (k, x) in items {
                m.insert(to_yaml(k)?, to_yaml(x)?);
            }
            Y::Mapping(m)
        }
        other => return Err(format!("the model yaml holds {}", other.describe())),
    })
}
