//! Data sets: description (registry, YOLOv5 data yamls), scanning and verification, the `shapes` generator,
//! VOC conversion, augmentation and the batch loader.
//!
//! Mirrors `utils/dataloaders.py` and `utils/augmentations.py` of ultralytics/yolov5@5081342f
//! (`check_dataset`, `LoadImagesAndLabels`, `verify_image_label`, `load_mosaic`, `random_perspective`, ...).

mod augment;
mod hsv;
mod imageops;
mod loader;
mod preview;
mod registry;
mod resample;
mod scan;
mod shapes;
mod voc;
mod warp;

pub use augment::{Letterbox, Perspective, PixelBox, augment_hsv, letterbox, random_perspective};
pub use hsv::apply as apply_hsv_gains;
pub use imageops::{Image, png_bytes, save_png};
pub use warp::warp;

/// Read and decode an image file to RGB.
pub fn imageops_decode(path: &Path) -> Result<Image> {
    imageops::decode(&read(path)?, path)
}
pub use loader::{Batch, Cache, EpochIter, ImageInfo, Item, Loader, LoaderConfig, collate};
pub use preview::{annotate, batch_grid, class_colour, draw_box, draw_label, save_batch_png};
pub use registry::Registry;
pub use resample::Interp;
pub use scan::{Issue, IssueKind, Label, Sample, Samples, ScanReport, label_path_for};
pub use shapes::{SHAPES_NAMES, ShapesConfig, ShapesStyle};
pub use voc::{VOC_NAMES, convert_voc};

use crate::error::{Error, IoContext, Result};
use crate::report::Reporter;
use std::path::{Path, PathBuf};

/// The 80 COCO class names, in YOLOv5's `coco.yaml` order.
pub const COCO_NAMES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// Which part of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training images.
    Train,
    /// Validation images.
    Val,
    /// Test images (optional).
    Test,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        })
    }
}

/// A data set description: where its images are and what its classes are. Scanning happens in
/// [`Dataset::scan`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dataset {
    /// Name (registry name or yaml file stem).
    pub name: String,
    /// Root folder the split paths were resolved against.
    pub root: PathBuf,
    /// Training sources: folders of images, `.txt` lists of image paths, or single images.
    pub train: Vec<PathBuf>,
    /// Validation sources.
    pub val: Vec<PathBuf>,
    /// Test sources (may be empty).
    pub test: Vec<PathBuf>,
    /// Class names; `names.len()` is `nc`.
    pub names: Vec<String>,
    /// The file that described the set (data yaml or datasets.toml).
    pub source: PathBuf,
}

impl Dataset {
    /// A data set from the registry (`datasets.toml`): `"shapes"`, `"coco128"`, ... Built-in sets are
    /// generated on first use; sets on disk must exist (the error says how to obtain them).
    pub fn named(name: &str) -> Result<Self> {
        Registry::load()?.dataset(name)
    }

    /// A data set from a YOLOv5 data yaml (`path`, `train`, `val`, `test`, `names`, `nc`). `train`/`val` may
    /// each be a folder, a list of folders, or a `.txt` file of image paths.
    pub fn from_yaml(path: impl AsRef<Path>) -> Result<Self> {
        registry::from_data_yaml(path.as_ref(), &Reporter::default())
    }

    /// A data set by registry name, or by yaml path when the argument names an existing file.
    pub fn load(name_or_path: &str) -> Result<Self> {
        Self::load_with(name_or_path, &Reporter::default())
    }

    /// [`Dataset::load`] reporting generation and yaml warnings to `reporter`.
    pub fn load_with(name_or_path: &str, reporter: &Reporter) -> Result<Self> {
        let p = Path::new(name_or_path);
        let looks_like_a_path = name_or_path.contains(std::path::MAIN_SEPARATOR)
            || p.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if p.is_file() || looks_like_a_path {
            registry::from_data_yaml(p, reporter) // a missing file is an I/O error naming it, not a registry name
        } else {
            Registry::load()?.dataset_with(name_or_path, reporter)
        }
    }

    /// Number of classes.
    pub fn nc(&self) -> usize {
        self.names.len()
    }

    /// The sources of one split.
    pub fn sources(&self, split: Split) -> &[PathBuf] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }

    /// List, verify and label every image of a split (using and refreshing the label cache), skipping
    /// corrupt images with a warning that names them. Fails only when no usable image remains.
    pub fn scan(&self, split: Split) -> Result<Samples> {
        self.scan_with(split, &Reporter::default())
    }

    /// [`Dataset::scan`] reporting skipped images and the summary line to `reporter`.
    pub fn scan_with(&self, split: Split, reporter: &Reporter) -> Result<Samples> {
        let sources = self.sources(split);
        if sources.is_empty() {
            return Err(Error::DataConfig {
                path: self.source.clone(),
                message: format!("data set `{}` has no `{split}` split", self.name),
            });
        }
        scan::scan(sources, &self.names, &format!("{split}"), reporter)
    }
}

/// Read a whole file, naming it on error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).at(path)
}

/// The seeded random streams of the crate. Every random draw comes from `rng_for(seed, stream, parts)`, so
/// results do not depend on thread scheduling or the number of workers. The ids are fixed: changing one
/// changes every run's numbers. Streams of different seeds (a data set's, a run's, an evolution's) may share
/// an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Shapes images of split 0 (train) or 1 (val), per image index; the data set's seed.
    Shapes(u64),
    /// Loader: the order of an epoch; the run's seed.
    Shuffle,
    /// Loader: one item's augmentation, per epoch and index.
    Item,
    /// Trainer: AutoAnchor's k-means and evolution of anchors.
    AutoAnchor,
    /// Trainer: the image subset of a staged schedule's stage, per epoch.
    StageSubset,
    /// Trainer: multi-scale image sizes, per epoch.
    MultiScale,
    /// Classic GA: a generation's parent choice and mutation; the evolution's seed.
    Mutation,
    /// Population GA: the first population.
    PopulationInit,
    /// Population GA: one generation's offspring.
    PopulationGeneration,
    /// Fidelity check: the rows drawn at random.
    Fidelity,
}

impl Stream {
    const fn id(self) -> u64 {
        match self {
            Stream::Shapes(split) => split,
            Stream::Shuffle => 1,
            Stream::Item => 2,
            Stream::AutoAnchor => 7,
            Stream::StageSubset => 11,
            Stream::MultiScale => 13,
            Stream::Mutation => 0xE70,
            Stream::PopulationInit => 0x909,
            Stream::PopulationGeneration => 0x90A,
            Stream::Fidelity => 0xF1D,
        }
    }
}

/// The random generator of `stream` under `seed` at `parts` (epoch, index, generation...).
pub(crate) fn rng_for(seed: u64, stream: Stream, parts: &[u64]) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for p in [seed, stream.id()].iter().chain(parts) {
        // splitmix64 finaliser over the running state
        h ^= p.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_add(h << 6).wrapping_add(h >> 2);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    rand_chacha::ChaCha8Rng::seed_from_u64(h)
}
