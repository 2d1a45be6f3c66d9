//! A fixture folder and the parts of its `manifest.json` the checks read.

use super::*;

/// The parts of a fixture's `manifest.json` (schema `yolov5-parity-fixture/1`) that the checks read. A section
/// is needed only by the checks whose files are present; what a running check needs and the manifest lacks is
/// an error naming the key. The NMS settings of a key and the optimizer's decay and clipping, when absent, take
/// the values the fixture README documents, and the report lists each such default.
#[derive(Debug, serde::Deserialize)]
pub(super) struct Manifest {
    pub(super) model: Option<ModelSection>,
    pub(super) loss: Option<LossSection>,
    #[serde(default)]
    pub(super) nms: NmsSection,
    pub(super) optimizer: Option<OptimizerSection>,
    pub(super) sgd_step: Option<SgdSection>,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct ModelSection {
    pub(super) cfg: String,
    pub(super) nc: i64,
    pub(super) n_parameters: f64,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct LossSection {
    pub(super) gains: LossGains,
    pub(super) cls_pw: f64,
    pub(super) obj_pw: f64,
    pub(super) anchor_t: f64,
    pub(super) fl_gamma: f64,
    pub(super) label_smoothing: f64,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct LossGains {
    #[serde(rename = "box")]
    pub(super) box_gain: f64,
    pub(super) obj: f64,
    pub(super) cls: f64,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct NmsSection {
    #[serde(default)]
    pub(super) keys: HashMap<String, NmsKey>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct NmsKey {
    pub(super) conf_thres: Option<f64>,
    pub(super) iou_thres: Option<f64>,
    pub(super) max_det: Option<usize>,
    pub(super) multi_label: Option<bool>,
    pub(super) agnostic: Option<bool>,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct OptimizerSection {
    pub(super) lr: f64,
    pub(super) momentum: f64,
    #[serde(default)]
    pub(super) groups: Vec<GroupSection>,
    pub(super) gradient_clipping: Option<ClipSection>,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct GroupSection {
    pub(super) index: usize,
    pub(super) weight_decay: Option<f64>,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct ClipSection {
    pub(super) max_norm: f64,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct SgdSection {
    pub(super) grad_global_norm_preclip: f64,
}

pub(super) struct Fixture {
    pub(super) dir: PathBuf,
    pub(super) manifest: Manifest,
}

pub(super) type Tensors = HashMap<String, Tensor>;

impl Fixture {
    pub(super) fn file(&self, name: &str) -> Option<PathBuf> {
        [self.dir.join(name), self.dir.parent().unwrap_or(&self.dir).join(name)].into_iter().find(|p| p.is_file())
    }

    pub(super) fn load(&self, name: &str) -> Result<Option<Tensors>> {
        let Some(p) = self.file(name) else { return Ok(None) };
        let list =
            Tensor::read_safetensors(&p).map_err(|e| Error::DataConfig { path: p.clone(), message: e.to_string() })?;
        Ok(Some(list.into_iter().collect()))
    }

    pub(super) fn missing(&self, key: &str) -> Error {
        Error::DataConfig { path: self.dir.join("manifest.json"), message: format!("missing key `{key}`") }
    }

    /// A section the running check needs.
    pub(super) fn section<'a, T>(&self, s: &'a Option<T>, key: &str) -> Result<&'a T> {
        s.as_ref().ok_or_else(|| self.missing(key))
    }
}
