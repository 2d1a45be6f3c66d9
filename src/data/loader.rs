//! The batch loader (`LoadImagesAndLabels.__getitem__`, `load_image`, `collate_fn`, `InfiniteDataLoader`).
//!
//! Every item draws its randomness from its own stream `(seed, epoch, index)`, so a batch is the same whatever
//! the number of worker threads; workers build whole batches and the iterator hands them out in order.

use super::augment::{
    Perspective, PixelBox, augment_hsv, flip_lr, flip_ud, letterbox, mixup, mosaic, random_perspective,
};
use super::imageops::{Image, decode, resize};
use super::resample::Interp;
use super::{Sample, Samples, Stream, read, rng_for};
use crate::error::{Error, Result};
use crate::hyp::Hyp;
use crate::report::Reporter;
use rand::Rng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use tch::Tensor;

/// Margin kept below the clip edge when boxes become normalised labels (`xyxy2xywhn(..., clip=True, eps=1E-3)`).
const LABEL_CLIP_EPS: f32 = 1e-3;
/// Fraction of free memory that must remain after a RAM cache (`check_cache_ram`: 10% headroom).
const RAM_HEADROOM: f64 = 0.1;

/// Where decoded images are kept between epochs (`--cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cache {
    /// Read and decode every image every time.
    #[default]
    None,
    /// Keep decoded, resized pixels in memory (fastest; most memory).
    Ram,
    /// Keep the encoded file bytes in memory and decode on the fly: a fraction of `Ram`'s memory, no disk reads.
    RamEncoded,
    /// Save decoded originals as `.npy` beside the images and read those.
    Disk,
}

impl std::str::FromStr for Cache {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "" | "none" | "false" | "no" => Ok(Cache::None),
            "ram" | "true" => Ok(Cache::Ram),
            "ram-encoded" | "ram_encoded" | "encoded" => Ok(Cache::RamEncoded),
            "disk" => Ok(Cache::Disk),
            other => Err(Error::Config {
                name: "cache",
                message: format!("`{other}` is not one of none, ram, ram-encoded, disk"),
            }),
        }
    }
}

/// How batches are built.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Target size (long side) in pixels. Default 640.
    pub img_size: u32,
    /// Images per batch. Default 16.
    pub batch: usize,
    /// Apply augmentation (training). Default true.
    pub augment: bool,
    /// Rectangular batches sorted by aspect ratio (always used for validation; disables mosaic and shuffle).
    pub rect: bool,
    /// Shuffle each epoch (ignored with `rect`). Default true.
    pub shuffle: bool,
    /// Worker threads building batches; 0 builds them in the caller's thread. Default 2.
    pub workers: usize,
    /// Seed of shuffling and augmentation.
    pub seed: u64,
    /// Model stride: rectangular batch shapes are multiples of it. Default 32.
    pub stride: u32,
    /// Padding of rectangular batch shapes, in strides (0 for training, 0.5 for validation).
    pub pad: f32,
    /// Image cache.
    pub cache: Cache,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            img_size: 640,
            batch: 16,
            augment: true,
            rect: false,
            shuffle: true,
            workers: 2,
            seed: 0,
            stride: 32,
            pad: 0.0,
            cache: Cache::None,
        }
    }
}

impl LoaderConfig {
    /// Settings for validation: no augmentation, rectangular batches padded by half a stride, no shuffle.
    pub fn val(img_size: u32, batch: usize) -> Self {
        LoaderConfig { img_size, batch, augment: false, rect: true, shuffle: false, pad: 0.5, ..Default::default() }
    }
}

/// Where an image came from and how it was scaled, to map predictions back (`shapes` in `collate_fn`).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// The image file.
    pub path: PathBuf,
    /// Original (height, width).
    pub orig: (u32, u32),
    /// Letterbox ratio (width, height) relative to the original.
    pub ratio: (f32, f32),
    /// Letterbox padding (left, top).
    pub pad: (f32, f32),
}

/// One batch.
#[derive(Debug)]
pub struct Batch {
    /// `[B, 3, H, W]` uint8 RGB.
    pub images: Tensor,
    /// `[N, 6]` float32 rows `[image_index, class, cx, cy, w, h]`, normalised.
    pub targets: Tensor,
    /// Per-image provenance.
    pub info: Vec<ImageInfo>,
}

/// One augmented image and its normalised labels `[class, cx, cy, w, h]`.
#[derive(Debug, Clone)]
pub struct Item {
    /// The image (HWC RGB).
    pub image: Image,
    /// Labels.
    pub labels: Vec<[f32; 5]>,
    /// Provenance.
    pub info: ImageInfo,
}

/// A loaded image, resized so the long side is `img_size` (borrowed from the RAM cache when there is one), and
/// its labels as pixel boxes in that image.
struct Loaded<'a> {
    img: Cow<'a, Image>,
    orig: (u32, u32),
    boxes: Vec<PixelBox>,
}

enum Store {
    None,
    Ram(Vec<Image>),
    Encoded(Vec<Vec<u8>>),
    Disk(Vec<PathBuf>),
}

struct Inner {
    samples: Vec<Sample>,
    hyp: Hyp,
    cfg: LoaderConfig,
    store: Arc<Store>,
    cache_bytes: u64,
    /// Per-batch (height, width) for rectangular batches.
    batch_shapes: Option<Vec<(u32, u32)>>,
}

/// Builds batches from scanned samples.
#[derive(Clone)]
pub struct Loader {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader").field("images", &self.inner.samples.len()).field("cfg", &self.inner.cfg).finish()
    }
}

impl Loader {
    /// Prepare a loader (and fill the cache, in parallel, when one is asked for), reporting to the console.
    pub fn new(samples: &Samples, hyp: &Hyp, cfg: LoaderConfig) -> Result<Self> {
        Loader::build(samples, hyp, cfg, &Reporter::default())
    }

    /// [`Loader::new`] reporting the cache it builds (or refuses to build) to `reporter`.
    pub fn build(samples: &Samples, hyp: &Hyp, cfg: LoaderConfig, reporter: &Reporter) -> Result<Self> {
        if cfg.batch == 0 {
            return Err(Error::Config { name: "batch", message: "must be at least 1".into() });
        }
        if cfg.img_size < cfg.stride || cfg.stride == 0 {
            return Err(Error::Config {
                name: "img_size",
                message: format!("{} must be at least the stride {}", cfg.img_size, cfg.stride),
            });
        }
        let mut items = samples.items.clone();
        let batch_shapes = cfg.rect.then(|| {
            items.sort_by(|a, b| (a.height as f64 / a.width as f64).total_cmp(&(b.height as f64 / b.width as f64)));
            rect_shapes(&items, &cfg)
        });
        let (store, cache_bytes) = build_store(&items, &cfg, reporter)?;
        Ok(Loader {
            inner: Arc::new(Inner {
                samples: items,
                hyp: hyp.clone(),
                cfg,
                store: Arc::new(store),
                cache_bytes,
                batch_shapes,
            }),
        })
    }

    /// The same images and cache with other hyperparameters (evolution reuses the cache across generations).
    pub fn with_hyp(&self, hyp: &Hyp) -> Self {
        let i = &self.inner;
        let store = i.store.clone();
        Loader {
            inner: Arc::new(Inner {
                samples: i.samples.clone(),
                hyp: hyp.clone(),
                cfg: i.cfg.clone(),
                store,
                cache_bytes: i.cache_bytes,
                batch_shapes: i.batch_shapes.clone(),
            }),
        }
    }

    /// Number of images.
    pub fn images(&self) -> usize {
        self.inner.samples.len()
    }

    /// Number of batches per epoch.
    pub fn len(&self) -> usize {
        self.inner.samples.len().div_ceil(self.inner.cfg.batch)
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.inner.samples.is_empty()
    }

    /// Bytes held by the image cache.
    pub fn cache_bytes(&self) -> u64 {
        self.inner.cache_bytes
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.inner.cfg
    }

    /// The samples in loader order (sorted by aspect ratio with `rect`).
    pub fn samples(&self) -> &[Sample] {
        &self.inner.samples
    }

    /// The image order of an epoch.
    fn order(&self, epoch: u64) -> Vec<usize> {
        let i = &self.inner;
        let mut order: Vec<usize> = (0..i.samples.len()).collect();
        if i.cfg.shuffle && !i.cfg.rect {
            order.shuffle(&mut rng_for(i.cfg.seed, Stream::Shuffle, &[epoch]));
        }
        order
    }

    /// One augmented item (what a notebook shows as a preview).
    pub fn item(&self, index: usize, epoch: u64) -> Result<Item> {
        let i = &self.inner;
        let shape = match &i.batch_shapes {
            Some(s) => s[index / i.cfg.batch],
            None => (i.cfg.img_size, i.cfg.img_size),
        };
        self.build_item(index, epoch, shape)
    }

    /// Build batch `b` of an epoch.
    pub fn batch(&self, epoch: u64, b: usize) -> Result<Batch> {
        self.batch_with_order(&self.order(epoch), epoch, b)
    }

    fn batch_with_order(&self, order: &[usize], epoch: u64, b: usize) -> Result<Batch> {
        let i = &self.inner;
        let lo = b * i.cfg.batch;
        let hi = (lo + i.cfg.batch).min(order.len());
        let shape = match &i.batch_shapes {
            Some(s) => s[b],
            None => (i.cfg.img_size, i.cfg.img_size),
        };
        let items = order[lo..hi].iter().map(|&k| self.build_item(k, epoch, shape)).collect::<Result<Vec<_>>>()?;
        Ok(collate(items))
    }

    /// Iterate over the batches of one epoch, built by `workers` threads and returned in order.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let order = Arc::new(self.order(epoch));
        let nb = self.len();
        let workers = self.inner.cfg.workers.min(nb);
        if workers == 0 {
            return EpochIter {
                rx: None,
                pending: BTreeMap::new(),
                next: 0,
                nb,
                inline: Some((self.clone(), order, epoch)),
            };
        }
        let (tx, rx) = mpsc::sync_channel(workers * 2);
        let counter = Arc::new(AtomicUsize::new(0));
        for _ in 0..workers {
            let (tx, counter, order, me) = (tx.clone(), counter.clone(), order.clone(), self.clone());
            std::thread::spawn(move || {
                loop {
                    let b = counter.fetch_add(1, Ordering::Relaxed);
                    if b >= nb {
                        break;
                    }
                    let batch = me.batch_with_order(&order, epoch, b);
                    if tx.send((b, batch)).is_err() {
                        break; // the iterator was dropped
                    }
                }
            });
        }
        EpochIter { rx: Some(rx), pending: BTreeMap::new(), next: 0, nb, inline: None }
    }

    /// Image `k` as loaded before augmentation (`load_image`: decoded, long side resized to `img_size`).
    pub fn loaded_image(&self, k: usize) -> Result<Image> {
        Ok(self.load(k)?.img.into_owned())
    }

    fn load(&self, k: usize) -> Result<Loaded<'_>> {
        let i = &self.inner;
        let s = &i.samples[k];
        let img = match i.store.as_ref() {
            Store::Ram(v) => Cow::Borrowed(&v[k]),
            Store::Encoded(v) => Cow::Owned(resize_long(&decode(&v[k], &s.image)?, i.cfg.img_size, i.cfg.augment)),
            Store::Disk(v) => Cow::Owned(resize_long(&read_npy(&v[k])?, i.cfg.img_size, i.cfg.augment)),
            Store::None => Cow::Owned(resize_long(&decode(&read(&s.image)?, &s.image)?, i.cfg.img_size, i.cfg.augment)),
        };
        let (w, h) = (img.width() as f32, img.height() as f32);
        let boxes = s
            .labels
            .iter()
            .map(|l| {
                [
                    l.class as f32,
                    (l.cx - l.w / 2.0) * w,
                    (l.cy - l.h / 2.0) * h,
                    (l.cx + l.w / 2.0) * w,
                    (l.cy + l.h / 2.0) * h,
                ]
            })
            .collect();
        Ok(Loaded { img, orig: (s.height, s.width), boxes })
    }

    fn mosaic(&self, k: usize, rng: &mut impl Rng) -> Result<(Image, Vec<PixelBox>)> {
        let n = self.inner.samples.len();
        let mut idx = [k, rng.random_range(0..n), rng.random_range(0..n), rng.random_range(0..n)];
        idx.shuffle(rng);
        let parts = idx.iter().map(|&j| self.load(j)).collect::<Result<Vec<_>>>()?;
        let parts: Vec<(&Image, &[PixelBox])> = parts.iter().map(|l| (l.img.as_ref(), l.boxes.as_slice())).collect();
        let s = self.inner.cfg.img_size;
        // the 2s x 2s canvas is scratch: one buffer per thread, reused (no page faults for a fresh 4.9 MB at 640)
        let buffer = MOSAIC_CANVAS.with(|c| c.take());
        let (img, boxes, buffer) = mosaic(&parts, s, Perspective::from(&self.inner.hyp), rng, buffer);
        MOSAIC_CANVAS.with(|c| c.replace(buffer));
        Ok((img, boxes))
    }

    fn build_item(&self, k: usize, epoch: u64, shape: (u32, u32)) -> Result<Item> {
        let i = &self.inner;
        let hyp = &i.hyp;
        let mut rng = rng_for(i.cfg.seed, Stream::Item, &[epoch, k as u64]);
        let use_mosaic = i.cfg.augment && !i.cfg.rect && rng.random::<f64>() < hyp.mosaic;
        let s = &i.samples[k];
        let (mut img, boxes, info) = if use_mosaic {
            let (mut img, mut boxes) = self.mosaic(k, &mut rng)?;
            if rng.random::<f64>() < hyp.mixup {
                let other = rng.random_range(0..i.samples.len());
                let (img2, boxes2) = self.mosaic(other, &mut rng)?;
                (img, boxes) = mixup(img, boxes, &img2, &boxes2, &mut rng);
            }
            let info =
                ImageInfo { path: s.image.clone(), orig: (s.height, s.width), ratio: (1.0, 1.0), pad: (0.0, 0.0) };
            (img, boxes, info)
        } else {
            let loaded = self.load(k)?;
            let (lh, lw) = (loaded.img.height() as f32, loaded.img.width() as f32);
            let (img, lb) = letterbox(&loaded.img, shape, i.cfg.augment);
            let mut boxes: Vec<PixelBox> = loaded
                .boxes
                .iter()
                .map(|b| {
                    let f = lb.forward([b[1], b[2], b[3], b[4]]);
                    [b[0], f[0], f[1], f[2], f[3]]
                })
                .collect();
            let (oh, ow) = loaded.orig;
            let ratio = (lh / oh as f32 * lb.ratio.0, lw / ow as f32 * lb.ratio.1);
            let info = ImageInfo { path: s.image.clone(), orig: loaded.orig, ratio: (ratio.1, ratio.0), pad: lb.pad };
            let img = if i.cfg.augment {
                let (img, kept) = random_perspective(&img, &boxes, Perspective::from(hyp), (0, 0), &mut rng);
                boxes = kept;
                img
            } else {
                img
            };
            (img, boxes, info)
        };
        let (w, h) = (img.width() as f32, img.height() as f32);
        let mut labels: Vec<[f32; 5]> = boxes
            .iter()
            .map(|b| {
                let x1 = b[1].clamp(0.0, w - LABEL_CLIP_EPS);
                let y1 = b[2].clamp(0.0, h - LABEL_CLIP_EPS);
                let x2 = b[3].clamp(0.0, w - LABEL_CLIP_EPS);
                let y2 = b[4].clamp(0.0, h - LABEL_CLIP_EPS);
                [b[0], (x1 + x2) / 2.0 / w, (y1 + y2) / 2.0 / h, (x2 - x1) / w, (y2 - y1) / h]
            })
            .collect();
        if i.cfg.augment {
            augment_hsv(&mut img, hyp.hsv_h, hyp.hsv_s, hyp.hsv_v, &mut rng);
            if rng.random::<f64>() < hyp.flipud {
                flip_ud(&mut img);
                labels.iter_mut().for_each(|l| l[2] = 1.0 - l[2]);
            }
            if rng.random::<f64>() < hyp.fliplr {
                flip_lr(&mut img);
                labels.iter_mut().for_each(|l| l[1] = 1.0 - l[1]);
            }
        }
        Ok(Item { image: img, labels, info })
    }
}

thread_local! {
    /// Each thread's mosaic canvas, kept between items.
    static MOSAIC_CANVAS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Iterator over one epoch's batches, in order.
pub struct EpochIter {
    rx: Option<mpsc::Receiver<(usize, Result<Batch>)>>,
    pending: BTreeMap<usize, Result<Batch>>,
    next: usize,
    nb: usize,
    inline: Option<(Loader, Arc<Vec<usize>>, u64)>,
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.next >= self.nb {
            return None;
        }
        let b = self.next;
        self.next += 1;
        if let Some((loader, order, epoch)) = &self.inline {
            return Some(loader.batch_with_order(order, *epoch, b));
        }
        let rx = self.rx.as_ref().expect("threaded iterator has a receiver");
        while !self.pending.contains_key(&b) {
            match rx.recv() {
                Ok((k, batch)) => {
                    self.pending.insert(k, batch);
                }
                Err(_) => {
                    return Some(Err(Error::Worker {
                        what: "loader",
                        message: "it stopped before sending its batch".into(),
                    }));
                }
            }
        }
        self.pending.remove(&b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.nb - self.next;
        (left, Some(left))
    }
}

/// Stack items into a batch (`collate_fn`): images to `[B, 3, H, W]`, labels to `[N, 6]` with the image index.
pub fn collate(items: Vec<Item>) -> Batch {
    let (h, w) = (items[0].image.height() as i64, items[0].image.width() as i64);
    let b = items.len() as i64;
    let plane = (h * w) as usize;
    let images = Tensor::empty([b, 3, h, w], (tch::Kind::Uint8, tch::Device::Cpu));
    if plane > 0 {
        // SAFETY: a new contiguous uint8 CPU tensor of b*3*h*w elements, written whole below and not shared yet
        let dst = unsafe { std::slice::from_raw_parts_mut(images.data_ptr() as *mut u8, b as usize * 3 * plane) };
        for (it, out) in items.iter().zip(dst.chunks_exact_mut(3 * plane)) {
            assert_eq!((it.image.height() as i64, it.image.width() as i64), (h, w), "a batch's images share one shape");
            let (r, rest) = out.split_at_mut(plane);
            let (g, bl) = rest.split_at_mut(plane);
            for (k, p) in it.image.as_raw().chunks_exact(3).enumerate() {
                (r[k], g[k], bl[k]) = (p[0], p[1], p[2]);
            }
        }
    }
    let mut targets = Vec::new();
    let mut info = Vec::with_capacity(items.len());
    for (j, it) in items.into_iter().enumerate() {
        for l in &it.labels {
            targets.extend_from_slice(&[j as f32, l[0], l[1], l[2], l[3], l[4]]);
        }
        info.push(it.info);
    }
    Batch { images, targets: Tensor::from_slice(&targets).view([-1, 6]), info }
}

/// Resize so the long side is `size` (`load_image`); dimensions rounded up as YOLOv5 does, and its choice of
/// interpolation: `INTER_LINEAR` when augmenting or enlarging, `INTER_AREA` when shrinking for validation.
fn resize_long(img: &Image, size: u32, augment: bool) -> Image {
    let (w, h) = (img.width(), img.height());
    let r = size as f64 / w.max(h) as f64;
    if (r - 1.0).abs() < f64::EPSILON {
        return img.clone();
    }
    let nw = ((w as f64 * r).ceil() as u32).min(size).max(1);
    let nh = ((h as f64 * r).ceil() as u32).min(size).max(1);
    resize(img, nw, nh, if augment || r > 1.0 { Interp::Linear } else { Interp::Area })
}

/// Rectangular batch shapes (height, width): images sorted by aspect ratio, each batch shaped by its extreme
/// ratios, rounded up to a multiple of the stride.
fn rect_shapes(items: &[Sample], cfg: &LoaderConfig) -> Vec<(u32, u32)> {
    items
        .chunks(cfg.batch)
        .map(|chunk| {
            let ars: Vec<f64> = chunk.iter().map(|s| s.height as f64 / s.width as f64).collect();
            let (mini, maxi) =
                (ars.iter().cloned().fold(f64::MAX, f64::min), ars.iter().cloned().fold(f64::MIN, f64::max));
            let (sh, sw) = if maxi < 1.0 {
                (maxi, 1.0)
            } else if mini > 1.0 {
                (1.0, 1.0 / mini)
            } else {
                (1.0, 1.0)
            };
            let st = cfg.stride as f64;
            let round = |x: f64| ((x * cfg.img_size as f64 / st + cfg.pad as f64).ceil() * st) as u32;
            (round(sh), round(sw))
        })
        .collect()
}

fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

fn build_store(items: &[Sample], cfg: &LoaderConfig, reporter: &Reporter) -> Result<(Store, u64)> {
    match cfg.cache {
        Cache::None => Ok((Store::None, 0)),
        Cache::Ram => {
            // Estimate from the label sizes before decoding anything (`check_cache_ram`).
            let need: u64 = items
                .iter()
                .map(|s| {
                    let r = cfg.img_size as f64 / s.width.max(s.height) as f64;
                    (s.width as f64 * r).ceil() as u64 * (s.height as f64 * r).ceil() as u64 * 3
                })
                .sum();
            if let Some(avail) = available_memory()
                && need as f64 * (1.0 + RAM_HEADROOM) > avail as f64
            {
                reporter.warn(&format!(
                    "cache ram needs {:.1} GB but {:.1} GB are available: not caching images",
                    need as f64 / 1e9,
                    avail as f64 / 1e9
                ));
                return Ok((Store::None, 0));
            }
            let imgs = items
                .par_iter()
                .map(|s| Ok(resize_long(&decode(&read(&s.image)?, &s.image)?, cfg.img_size, cfg.augment)))
                .collect::<Result<Vec<_>>>()?;
            let bytes = imgs.iter().map(|i| i.as_raw().len() as u64).sum();
            reporter.info(&format!("cache: {:.1} MB of decoded images in RAM", bytes as f64 / 1e6));
            Ok((Store::Ram(imgs), bytes))
        }
        Cache::RamEncoded => {
            let data = items.par_iter().map(|s| read(&s.image)).collect::<Result<Vec<_>>>()?;
            let bytes = data.iter().map(|d| d.len() as u64).sum();
            reporter.info(&format!("cache: {:.1} MB of encoded images in RAM", bytes as f64 / 1e6));
            Ok((Store::Encoded(data), bytes))
        }
        Cache::Disk => {
            let paths = items
                .par_iter()
                .map(|s| {
                    let npy = s.image.with_extension("npy");
                    if !npy.is_file() {
                        write_npy(&npy, &decode(&read(&s.image)?, &s.image)?)?;
                    }
                    Ok(npy)
                })
                .collect::<Result<Vec<_>>>()?;
            let bytes = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
            reporter.info(&format!("cache: {:.1} MB of decoded images on disk (.npy)", bytes as f64 / 1e6));
            Ok((Store::Disk(paths), bytes))
        }
    }
}

/// Write an HWC uint8 image as a NumPy `.npy` file (format 1.0), atomically.
fn write_npy(path: &std::path::Path, img: &Image) -> Result<()> {
    let header =
        format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {}, 3), }}", img.height(), img.width());
    let total = 10 + header.len() + 1;
    let pad = (64 - total % 64) % 64;
    let header = format!("{header}{}\n", " ".repeat(pad));
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(img.as_raw());
    crate::fsutil::write_atomic(path, &bytes)
}

/// Read an `.npy` written by [`write_npy`].
fn read_npy(path: &std::path::Path) -> Result<Image> {
    let bytes = read(path)?;
    let bad = |m: &str| Error::Image {
        path: path.into(),
        message: format!("bad .npy cache file ({m}); delete it to rebuild"),
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no NumPy magic"));
    }
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(bytes.get(10..10 + hlen).ok_or_else(|| bad("short header"))?)
        .map_err(|_| bad("header not text"))?;
    let shape = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let dims: Vec<u32> = shape.split(',').filter_map(|d| d.trim().parse().ok()).collect();
    if dims.len() != 3 || dims[2] != 3 {
        return Err(bad("shape is not (h, w, 3)"));
    }
    Image::from_raw(dims[1], dims[0], bytes[10 + hlen..].to_vec()).ok_or_else(|| bad("size does not match shape"))
}
