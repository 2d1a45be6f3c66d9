//! Trained weights of any origin as a model with its class names: a YOLOv5 `.pt` checkpoint (its own yaml,
//! `nc` and `names`), a yolo-lab checkpoint (`best.safetensors` / `last.safetensors`, whose metadata names
//! the config and classes), or a bare safetensors state_dict with a config given. What `val`, `detect` and
//! `convert` start from.

use crate::error::{Error, Result};
use crate::model::{Checkpoint, Yolo, is_pt};
use crate::train::checkpoint::read_meta;
use std::path::{Path, PathBuf};
use tch::Device;

/// The committed reference model (`models/reference/`, its README has the command that made it): yolov5n
/// trained from scratch on `shapes` at 320 px for 100 epochs, mAP@0.5 0.889. Notebooks, the demo and the
/// fine-tuning examples start from it.
pub fn reference_model() -> Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/reference/yolov5n-shapes-320.safetensors");
    if !path.is_file() {
        let why = "the reference model is missing: models/reference/README.md has the command that makes it";
        return Err(Error::io(&path, std::io::Error::new(std::io::ErrorKind::NotFound, why)));
    }
    Ok(path)
}

/// A model ready for inference, with the names of its classes.
#[derive(Debug)]
pub struct Pretrained {
    /// The model, in eval use.
    pub model: Yolo,
    /// Class names in class order.
    pub names: Vec<String>,
    /// The weights file.
    pub path: PathBuf,
    /// Where the model came from, for a setup line ("YOLOv5 checkpoint (ema)", "yolo-lab checkpoint").
    pub origin: String,
}

impl Pretrained {
    /// Load `weights`. `cfg` overrides the model config the file implies (and is needed for a bare
    /// safetensors file, with `nc` the number of classes it was trained on).
    pub fn load(weights: impl AsRef<Path>, cfg: Option<&str>, nc: Option<i64>, device: Device) -> Result<Self> {
        let path = weights.as_ref();
        if !path.is_file() {
            return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found")));
        }
        let numbered = |n: i64| (0..n).map(|i| format!("class{i}")).collect::<Vec<_>>();
        if is_pt(path) {
            let ck = Checkpoint::read(path)?;
            let model = match cfg {
                Some(c) => {
                    let mut m = Yolo::new(c, Some(ck.nc), device)?;
                    m.load_checkpoint(&ck)?;
                    m
                }
                None => Yolo::from_checkpoint(&ck, device)?,
            };
            let names = if ck.names.len() == ck.nc as usize { ck.names.clone() } else { numbered(ck.nc) };
            return Ok(Pretrained {
                model,
                names,
                path: path.into(),
                origin: format!("YOLOv5 checkpoint ({})", ck.source),
            });
        }
        let (cfg, names, origin) = match read_meta(path) {
            Ok(meta) => (cfg.map(String::from).unwrap_or(meta.cfg), meta.names, "yolo-lab checkpoint".to_string()),
            Err(_) => {
                let Some(c) = cfg else {
                    return Err(Error::Checkpoint {
                        path: path.into(),
                        message: "a safetensors file without yolo-lab metadata does not say its model: give the \
                                  model config (--cfg) it was trained with"
                            .into(),
                    });
                };
                let n = nc.unwrap_or(80);
                (c.to_string(), numbered(n), "safetensors state_dict".to_string())
            }
        };
        let mut model = Yolo::new(&cfg, Some(names.len() as i64), device)?;
        model.load(path)?;
        Ok(Pretrained { model, names, path: path.into(), origin })
    }
}
