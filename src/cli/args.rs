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
    /// Train a model (YOLOv5's train.py flags).
    Train(Box<TrainArgs>),
    /// Evolve hyperparameters (train.py --evolve): the train flags plus --evolve N, --resume, --workers.
    Evolve(Box<EvolveArgs>),
    /// Load an evolution (a folder holding evolve.csv, or an evolve.csv alone: yolo-lab's or YOLOv5's) into a new
    /// experiment of a PostgreSQL store (--storage, --name), for `evolve --storage` workers to continue; the
    /// training scenario is the folder's opt.yaml, else the train flags given here.
    EvolveImport(Box<EvolveImportArgs>),
    /// Write an experiment of a PostgreSQL store as an evolution folder: evolve.csv, generations.csv,
    /// hyp_evolve.yaml (the file store's formats) and its settings files.
    EvolveExport {
        /// The database (default: the YOLO_LAB_STORAGE environment variable).
        #[arg(long)]
        storage: Option<String>,
        /// The experiment.
        #[arg(long)]
        name: String,
        /// The folder to write.
        out: PathBuf,
    },
    /// Draw evolve.png (YOLOv5's fitness-vs-hyperparameter grid) from an evolve.csv.
    PlotEvolve {
        /// The evolve.csv (yolo-lab's or YOLOv5's).
        path: PathBuf,
    },
    /// Draw results.png (YOLOv5's 2×5 panels) from a results.csv.
    PlotResults {
        /// The results.csv.
        path: PathBuf,
    },
    /// The main job on the built-in data: what `make demo` runs.
    Demo(DemoArgs),
    /// Evaluate weights on a data set (val.py): per-class table, speed line, confusion matrix and PR curve.
    Val(ValArgs),
    /// Detect objects on images (detect.py): annotated images and labels in runs/detect/exp.
    Detect(DetectArgs),
    /// Write a half-precision copy of a yolo-lab weights file (metadata kept; e.g. best.safetensors to commit).
    Half {
        /// The weights file (weights/best.safetensors of a run).
        weights: PathBuf,
        /// The copy to write.
        out: PathBuf,
    },
    /// Convert a YOLOv5 .pt checkpoint into safetensors (state_dict names, float32) plus its model yaml.
    Convert {
        /// The checkpoint (YOLOv5's weights/best.pt, last.pt, or a release such as yolov5s.pt).
        ckpt: PathBuf,
        /// The safetensors file to write; OUT.yaml beside it receives the model yaml with nc and names.
        out: PathBuf,
    },
}

/// Flags of `yolo-lab detect`, named as detect.py's.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// Weights: a YOLOv5 .pt checkpoint, or safetensors (yolo-lab's own carry their config and classes).
    #[arg(long)]
    pub weights: PathBuf,
    /// An image, a folder of images, or a glob such as 'images/*.jpg'.
    #[arg(long, default_value = "data/images")]
    pub source: PathBuf,
    /// Model config, for safetensors weights without yolo-lab metadata.
    #[arg(long)]
    pub cfg: Option<String>,
    /// Inference size in pixels.
    #[arg(long = "img", alias = "imgsz", alias = "img-size", default_value_t = 640)]
    pub img: u32,
    /// Confidence threshold.
    #[arg(long = "conf-thres", default_value_t = 0.25)]
    pub conf_thres: f32,
    /// NMS IoU threshold.
    #[arg(long = "iou-thres", default_value_t = 0.45)]
    pub iou_thres: f32,
    /// Detections kept per image.
    #[arg(long = "max-det", default_value_t = 1000)]
    pub max_det: usize,
    /// Keep only these classes (--classes 0 2).
    #[arg(long, num_args = 1..)]
    pub classes: Option<Vec<usize>>,
    /// Class-agnostic NMS.
    #[arg(long = "agnostic-nms")]
    pub agnostic_nms: bool,
    /// Device: cpu, a CUDA index, or empty for automatic.
    #[arg(long, default_value = "")]
    pub device: String,
    /// Save labels/*.txt (class, normalised xywh).
    #[arg(long = "save-txt")]
    pub save_txt: bool,
    /// Add confidences to the --save-txt labels.
    #[arg(long = "save-conf")]
    pub save_conf: bool,
    /// Do not save annotated images.
    #[arg(long = "nosave")]
    pub nosave: bool,
    /// Output folder parent.
    #[arg(long, default_value = "runs/detect")]
    pub project: PathBuf,
    /// Output folder name.
    #[arg(long, default_value = "exp")]
    pub name: String,
    /// Reuse an existing output folder.
    #[arg(long = "exist-ok")]
    pub exist_ok: bool,
}

/// Flags of `yolo-lab val`, named as val.py's.
#[derive(Debug, Clone, clap::Args)]
pub struct ValArgs {
    /// Weights: a YOLOv5 .pt checkpoint, or safetensors (yolo-lab's own carry their config and classes).
    #[arg(long)]
    pub weights: PathBuf,
    /// Data set name (datasets.toml) or data yaml.
    #[arg(long, default_value = "shapes")]
    pub data: String,
    /// Model config, for safetensors weights without yolo-lab metadata.
    #[arg(long)]
    pub cfg: Option<String>,
    /// Inference size in pixels.
    #[arg(long = "img", alias = "imgsz", alias = "img-size", default_value_t = 640)]
    pub img: u32,
    /// Batch size.
    #[arg(long = "batch-size", default_value_t = 32)]
    pub batch_size: usize,
    /// Confidence threshold.
    #[arg(long = "conf-thres", default_value_t = 0.001)]
    pub conf_thres: f32,
    /// NMS IoU threshold.
    #[arg(long = "iou-thres", default_value_t = 0.6)]
    pub iou_thres: f32,
    /// Detections kept per image.
    #[arg(long = "max-det", default_value_t = 300)]
    pub max_det: usize,
    /// Split: val or test.
    #[arg(long, default_value = "val")]
    pub task: String,
    /// Device: cpu, a CUDA index, or empty for automatic.
    #[arg(long, default_value = "")]
    pub device: String,
    /// Save detections as labels/*.txt (class, normalised xywh, confidence).
    #[arg(long = "save-txt")]
    pub save_txt: bool,
    /// Save detections as predictions.json (COCO format).
    #[arg(long = "save-json")]
    pub save_json: bool,
    /// Output folder parent.
    #[arg(long, default_value = "runs/val")]
    pub project: PathBuf,
    /// Output folder name.
    #[arg(long, default_value = "exp")]
    pub name: String,
    /// Reuse an existing output folder.
    #[arg(long = "exist-ok")]
    pub exist_ok: bool,
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

/// Flags of `yolo-lab train`, named as train.py's.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Data set name (datasets.toml) or data yaml.
    #[arg(long, default_value = "shapes")]
    pub data: String,
    /// Model config name or yaml (when not given with a YOLOv5 .pt as --weights: the model it holds).
    #[arg(long, default_value = "yolov5n")]
    pub cfg: String,
    /// Initial weights (a YOLOv5 .pt checkpoint or safetensors); empty trains from scratch.
    #[arg(long, default_value = "")]
    pub weights: String,
    /// Hyperparameters: preset name or yaml path.
    #[arg(long, default_value = "scratch-low")]
    pub hyp: String,
    /// Epochs.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long = "batch-size", alias = "batch", default_value_t = 16)]
    pub batch_size: usize,
    /// Image size (train and val).
    #[arg(long = "img", alias = "imgsz", alias = "img-size", default_value_t = 640)]
    pub img: i64,
    /// Device: cpu, 0, or empty for automatic.
    #[arg(long, default_value = "")]
    pub device: String,
    /// Freeze layers: one number N freezes 0..N-1 (backbone = 10); several numbers freeze those.
    #[arg(long, num_args = 1.., default_values_t = [0])]
    pub freeze: Vec<usize>,
    /// Image cache: ram, ram-encoded, disk (flag alone = ram).
    #[arg(long, num_args = 0..=1, default_missing_value = "ram")]
    pub cache: Option<String>,
    /// Optimizer: SGD, Adam, AdamW.
    #[arg(long, default_value = "SGD")]
    pub optimizer: String,
    /// Sharpness-aware minimisation around the optimizer.
    #[arg(long)]
    pub sam: bool,
    /// Keep frozen layers' BatchNorm in eval mode (running statistics fixed; YOLOv5 lets them drift).
    #[arg(long = "freeze-bn")]
    pub freeze_bn: bool,
    /// Cosine learning-rate schedule.
    #[arg(long = "cos-lr")]
    pub cos_lr: bool,
    /// Depth multiple replacing the model yaml's (block repeats; yolov5n/s 0.33, m 0.67, l 1.0).
    #[arg(long = "depth-multiple")]
    pub depth_multiple: Option<f64>,
    /// Width multiple replacing the model yaml's (channels; yolov5n 0.25, s 0.5, m 0.75, l 1.0).
    #[arg(long = "width-multiple")]
    pub width_multiple: Option<f64>,
    /// Label smoothing epsilon.
    #[arg(long = "label-smoothing", default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Early-stopping patience in epochs.
    #[arg(long, default_value_t = 100)]
    pub patience: usize,
    /// Rectangular training.
    #[arg(long)]
    pub rect: bool,
    /// Vary the image size by ±50%.
    #[arg(long = "multi-scale")]
    pub multi_scale: bool,
    /// Validate only the final epoch.
    #[arg(long)]
    pub noval: bool,
    /// Save only the final checkpoint.
    #[arg(long)]
    pub nosave: bool,
    /// Skip AutoAnchor.
    #[arg(long)]
    pub noautoanchor: bool,
    /// Loader workers.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run folder parent.
    #[arg(long, default_value = "runs/train")]
    pub project: PathBuf,
    /// Run folder name.
    #[arg(long, default_value = "exp")]
    pub name: String,
    /// Reuse an existing run folder.
    #[arg(long = "exist-ok")]
    pub exist_ok: bool,
    /// Resume from a run folder or weights/last.safetensors; alone, the most recent run under --project
    /// (evolve: continue --project/--name).
    #[arg(long, num_args = 0..=1, default_missing_value = "last")]
    pub resume: Option<String>,
    /// Varifocal objectness loss.
    #[arg(long)]
    pub varifocal: bool,
    /// Output: auto (a bar on a terminal, lines otherwise), lines, bar, notebook (one line per epoch), quiet
    /// (epoch lines and warnings), silent (nothing, not even the results line).
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// The flags given on the command line (argument ids), filled in by `cli::run`: a resume checks only
    /// these against the run's settings.
    #[arg(skip)]
    pub given: Vec<String>,
}

/// Flags of `yolo-lab evolve`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvolveArgs {
    /// The training scenario every generation runs.
    #[command(flatten)]
    pub train: TrainArgs,
    /// Generations: the number of rows evolve.csv should reach (classic GA).
    #[arg(long = "evolve", default_value_t = 300)]
    pub evolve: usize,
    /// Generations trained at once, sharing evolve.csv.
    #[arg(long = "evolve-workers", default_value_t = 1)]
    pub evolve_workers: usize,
    /// Population GA with this many individuals per generation instead of the classic GA.
    #[arg(long)]
    pub population: Option<usize>,
    /// Mutation seed.
    #[arg(long = "evolve-seed", default_value_t = 0)]
    pub evolve_seed: u64,
    /// Let zero-valued hyperparameters evolve.
    #[arg(long = "evolve-zeros")]
    pub evolve_zeros: bool,
    /// Stop generations that fall behind: none, median[:warmup_epochs], sha[:min_epochs:reduction].
    #[arg(long, default_value = "none")]
    pub prune: String,
    /// Failed generations (after their retry) tolerated before the evolution stops.
    #[arg(long = "max-failures")]
    pub max_failures: Option<usize>,
    /// Re-train the base hyperparameters and each new best candidate N more times with other seeds.
    #[arg(long, default_value_t = 0)]
    pub reevaluate: usize,
    /// Validate at pruning rungs on only the first N validation images (the final validation uses all).
    #[arg(long = "rung-val-images")]
    pub rung_val_images: Option<usize>,
    /// Objectives, comma-separated: fitness plus any of speed, params, memory, latency (Pareto selection).
    #[arg(long, default_value = "fitness")]
    pub objectives: String,
    /// Structural genes to evolve, comma-separated: depth_multiple=LO:HI, width_multiple=LO:HI,
    /// imgsz=LO:HI, freeze=LO:HI, optimizer, cos_lr.
    #[arg(long)]
    pub genes: Option<String>,
    /// Genes to keep at their base value, comma-separated (e.g. `anchors` when fine-tuning a model whose Detect
    /// layer must keep its anchor count).
    #[arg(long, value_delimiter = ',')]
    pub fix: Vec<String>,
    /// Keep the evolution in a PostgreSQL database (`postgres://user:password@host:port/db`; default: the
    /// YOLO_LAB_STORAGE environment variable, else the folder's evolve.csv). Workers on any machine given the
    /// same URL and --name join one experiment.
    #[arg(long)]
    pub storage: Option<String>,
    /// Seconds without a heartbeat after which a database trial's worker counts as dead and its row is
    /// trained again by another worker.
    #[arg(long, default_value_t = 300.0)]
    pub grace: f64,
}

/// Flags of `yolo-lab evolve-import`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvolveImportArgs {
    /// The evolution folder or evolve.csv to load.
    pub from: PathBuf,
    /// The database, the experiment's name and (without an opt.yaml) its scenario.
    #[command(flatten)]
    pub evolve: EvolveArgs,
}

/// Flags of `yolo-lab demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Training epochs.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Generations of the short evolution.
    #[arg(long, default_value_t = 4)]
    pub generations: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evolve_fix_keeps_the_named_genes_at_their_base_value() {
        let cli = Cli::try_parse_from(["yolo-lab", "evolve", "--fix", "anchors,mosaic", "--evolve", "3"]).unwrap();
        let Command::Evolve(a) = cli.command else { panic!() };
        assert_eq!(a.fix, ["anchors", "mosaic"]);
        let e = crate::cli::evolver(&a).unwrap();
        for k in ["anchors", "mosaic"] {
            assert_eq!(e.space.gene(k).unwrap().gain, 0.0, "{k} is fixed");
        }
        assert!(e.space.gene("lr0").unwrap().gain > 0.0, "the others still evolve");
    }

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
    fn train_flags_parse_like_train_py() {
        let cli = Cli::try_parse_from([
            "yolo-lab",
            "train",
            "--freeze",
            "10",
            "--img",
            "320",
            "--batch-size",
            "8",
            "--cache",
            "--cos-lr",
        ])
        .unwrap();
        let Command::Train(a) = cli.command else { panic!() };
        assert_eq!(
            (a.freeze.as_slice(), a.img, a.batch_size, a.cache.as_deref(), a.cos_lr),
            (&[10][..], 320, 8, Some("ram"), true)
        );
        let cli = Cli::try_parse_from(["yolo-lab", "train", "--freeze", "0", "1", "2", "--cache", "disk"]).unwrap();
        let Command::Train(a) = cli.command else { panic!() };
        assert_eq!((a.freeze, a.cache.as_deref()), (vec![0, 1, 2], Some("disk")));
        assert!(Cli::try_parse_from(["yolo-lab", "train", "--epochs", "-1"]).is_err());
    }

    #[test]
    fn evolve_flags_parse() {
        let cli = Cli::try_parse_from([
            "yolo-lab", "evolve", "--evolve", "30", "--img", "320", "--resume", "--name", "exp3", "--device", "0,1",
        ])
        .unwrap();
        let Command::Evolve(a) = cli.command else { panic!() };
        assert_eq!(
            (a.evolve, a.train.img, a.train.resume.is_some(), a.train.name.as_str(), a.train.device.as_str()),
            (30, 320, true, "exp3", "0,1")
        );
        assert!(Cli::try_parse_from(["yolo-lab", "plot-evolve"]).is_err());
    }

    #[test]
    fn voc_convert_needs_two_paths() {
        assert!(Cli::try_parse_from(["yolo-lab", "voc-convert", "a"]).is_err());
        assert!(Cli::try_parse_from(["yolo-lab", "voc-convert", "a", "b"]).is_ok());
    }
}
