//! Command-line flags (clap derive). Nothing outside `cli` depends on clap.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// yolo-lab: YOLOv5 training, layer freezing and hyperparameter evolution in Rust.
#[derive(Debug, Parser)]
#[command(name = "yolo-lab", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report libtorch, CUDA, cuDNN, NVML and thread settings, and what is wrong if anything is.
    Doctor,
    /// Scan a data set (registry name or data yaml), print its summary and save augmented mosaics as PNG.
    Data(DataArgs),
    /// Convert a Pascal VOCdevkit tree into YOLO layout (images/ and labels/ per split).
    VocConvert {
        /// The VOCdevkit folder (holding VOC2007/ and/or VOC2012/).
        devkit: PathBuf,
        /// Output folder (e.g. datasets/VOC).
        out: PathBuf,
    },
    /// Compare this implementation with reference tensors computed by YOLOv5 (a fixture folder with
    /// manifest.json, model.safetensors, forward/loss/nms/sgd_step safetensors); exits 1 on any mismatch.
    Parity {
        /// The fixture folder, e.g. ../shared/parity/yolov5n-nc3.
        dir: PathBuf,
    },
    /// Print a model's layer table, parameters and GFLOPs.
    Model {
        /// Model config name (yolov5n/s/m/l/x) or yaml path.
        #[arg(long, default_value = "yolov5n")]
        cfg: String,
        /// Number of classes.
        #[arg(long, default_value_t = 80)]
        nc: i64,
        /// Image size of the GFLOPs figure.
        #[arg(long = "img", default_value_t = 640)]
        img: i64,
    },
    /// The main job on the built-in data: what `make demo` runs.
    Demo(DemoArgs),
}

/// Flags of `yolo-lab data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Data set name from datasets.toml, or a YOLOv5 data yaml.
    #[arg(long, default_value = "shapes")]
    pub data: String,
    /// Hyperparameters: preset name or yaml path.
    #[arg(long, default_value = "scratch-low")]
    pub hyp: String,
    /// Image size in pixels.
    #[arg(long = "img", alias = "imgsz", default_value_t = 320)]
    pub img: u32,
    /// Batch size of the preview.
    #[arg(long = "batch-size", default_value_t = 16)]
    pub batch: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Folder for the PNG previews.
    #[arg(long, default_value = "runs/data")]
    pub out: PathBuf,
}

/// Flags of `yolo-lab demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_flags_parse() {
        let cli = Cli::try_parse_from(["yolo-lab", "data", "--data", "coco128", "--img", "640", "--batch-size", "4"])
            .unwrap();
        match cli.command {
            Command::Data(a) => assert_eq!((a.data.as_str(), a.img, a.batch), ("coco128", 640, 4)),
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["yolo-lab", "data", "--img", "abc"]).is_err());
    }

    #[test]
    fn voc_convert_needs_two_paths() {
        assert!(Cli::try_parse_from(["yolo-lab", "voc-convert", "a"]).is_err());
        assert!(Cli::try_parse_from(["yolo-lab", "voc-convert", "a", "b"]).is_ok());
    }
}
