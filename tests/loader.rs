//! Augmentation invariants and the batch loader.

mod common;

use common::{write_shapes, write_yaml};
use yolo_lab::data::{Cache, Dataset, Loader, LoaderConfig, Samples, Split};
use yolo_lab::hyp::Hyp;

fn samples(n: usize, imgsz: u32) -> (tempfile::TempDir, Samples) {
    let dir = tempfile::tempdir().unwrap();
    write_shapes(dir.path(), "train", n, imgsz);
    let y = write_yaml(dir.path(), "train: images/train\nval: images/train\nnames: [circle, rectangle, triangle]\n");
    let s = Dataset::from_yaml(&y).unwrap().scan(Split::Train).unwrap();
    (dir, s)
}

fn strong_hyp() -> Hyp {
    let mut h = Hyp::load("scratch-high").unwrap();
    for (k, v) in [("degrees", 20.0), ("shear", 5.0), ("perspective", 0.0005), ("flipud", 0.5), ("mixup", 0.5)] {
        h.set(k, v).unwrap();
    }
    h
}

#[test]
fn augmented_boxes_stay_inside_the_image() {
    let (_d, s) = samples(6, 96);
    let loader =
        Loader::new(&s, &strong_hyp(), LoaderConfig { img_size: 96, batch: 3, workers: 0, ..Default::default() })
            .unwrap();
    let mut seen = 0;
    for epoch in 0..8 {
        for k in 0..loader.images() {
            let item = loader.item(k, epoch).unwrap();
            assert_eq!((item.image.width(), item.image.height()), (96, 96), "mosaic output is img_size square");
            for l in &item.labels {
                let [_, cx, cy, w, h] = *l;
                assert!(w > 0.0 && h > 0.0, "{l:?}");
                assert!(cx - w / 2.0 >= -1e-5 && cx + w / 2.0 <= 1.0 + 1e-5, "{l:?}");
                assert!(cy - h / 2.0 >= -1e-5 && cy + h / 2.0 <= 1.0 + 1e-5, "{l:?}");
                seen += 1;
            }
        }
    }
    assert!(seen > 20, "augmentation kept some boxes ({seen})");
}

/// With every augmentation off except a certain left-right flip, image and boxes are the exact mirror.
#[test]
fn flips_map_boxes_exactly() {
    let (_d, s) = samples(3, 64);
    let base = Hyp::load("no-augmentation").unwrap();
    let cfg = LoaderConfig { img_size: 64, batch: 1, workers: 0, ..Default::default() };
    let plain = Loader::new(&s, &base, cfg.clone()).unwrap();
    for (key, vertical) in [("fliplr", false), ("flipud", true)] {
        let mut flip = base.clone();
        flip.set(key, 1.0).unwrap();
        let flipped = Loader::new(&s, &flip, cfg.clone()).unwrap();
        for k in 0..3 {
            let a = plain.item(k, 0).unwrap();
            let b = flipped.item(k, 0).unwrap();
            let (w, h) = (a.image.width(), a.image.height());
            for y in 0..h {
                for x in 0..w {
                    let (mx, my) = if vertical { (x, h - 1 - y) } else { (w - 1 - x, y) };
                    assert_eq!(a.image.get_pixel(x, y), b.image.get_pixel(mx, my));
                }
            }
            assert_eq!(a.labels.len(), b.labels.len());
            for (la, lb) in a.labels.iter().zip(&b.labels) {
                let (i, j) = if vertical { (2, 1) } else { (1, 2) };
                assert!((la[i] - (1.0 - lb[i])).abs() < 1e-6 && la[j] == lb[j] && la[3] == lb[3] && la[4] == lb[4]);
            }
        }
    }
}

#[test]
fn same_seed_same_batch_whatever_the_workers() {
    let (_d, s) = samples(10, 64);
    let hyp = strong_hyp();
    let cfg = |workers| LoaderConfig { img_size: 64, batch: 4, workers, seed: 3, ..Default::default() };
    let collect = |l: &Loader, epoch| l.epoch(epoch).map(|b| b.unwrap()).collect::<Vec<_>>();
    let a = collect(&Loader::new(&s, &hyp, cfg(0)).unwrap(), 1);
    let b = collect(&Loader::new(&s, &hyp, cfg(3)).unwrap(), 1);
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert!(x.images.equal(&y.images));
        assert!(x.targets.equal(&y.targets));
    }
    let c = collect(&Loader::new(&s, &hyp, cfg(2)).unwrap(), 2);
    assert!(!a[0].images.equal(&c[0].images), "another epoch draws other augmentations");
    let other_seed = Loader::new(&s, &hyp, LoaderConfig { seed: 4, ..cfg(0) }).unwrap();
    assert!(!a[0].images.equal(&other_seed.batch(1, 0).unwrap().images));
}

#[test]
fn batch_layout_and_target_rows() {
    let (_d, s) = samples(5, 64);
    let loader =
        Loader::new(&s, &Hyp::default(), LoaderConfig { img_size: 64, batch: 2, workers: 1, ..Default::default() })
            .unwrap();
    assert_eq!(loader.len(), 3);
    let batches: Vec<_> = loader.epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(batches[0].images.size(), [2, 3, 64, 64]);
    assert_eq!(batches[0].images.kind(), tch::Kind::Uint8);
    assert_eq!(batches[2].images.size()[0], 1, "last batch holds the remainder");
    for b in &batches {
        let t = &b.targets;
        assert_eq!(t.size()[1], 6);
        let idx: Vec<f32> = Vec::try_from(t.select(1, 0)).unwrap();
        assert!(idx.iter().all(|&i| i >= 0.0 && (i as i64) < b.images.size()[0]));
    }
}

/// Validation batches: letterboxed into rectangles, and labels map back to the originals through the info.
#[test]
fn rect_validation_batches_map_back_to_originals() {
    let (_d, s) = samples(6, 96);
    let loader = Loader::new(&s, &Hyp::default(), LoaderConfig { workers: 0, ..LoaderConfig::val(96, 3) }).unwrap();
    for b in 0..loader.len() {
        let batch = loader.batch(0, b).unwrap();
        let size = batch.images.size();
        assert_eq!((size[2] % 32, size[3] % 32), (0, 0), "shape is a stride multiple");
        assert!(size[2] <= 96 + 32 && size[3] <= 96 + 32);
        let rows: Vec<f32> = Vec::try_from(batch.targets.reshape(-1)).unwrap();
        for (j, info) in batch.info.iter().enumerate() {
            let sample = s.items.iter().find(|it| it.image == info.path).unwrap();
            let got: Vec<&[f32]> = rows.chunks_exact(6).filter(|r| r[0] as usize == j).collect();
            assert_eq!(got.len(), sample.labels.len());
            let (h, w) = (size[2] as f32, size[3] as f32);
            for (r, l) in got.iter().zip(&sample.labels) {
                let x1 = (r[2] - r[4] / 2.0) * w;
                let back = (x1 - info.pad.0) / info.ratio.0 / sample.width as f32;
                assert!((back - (l.cx - l.w / 2.0)).abs() < 0.02, "{back} vs {}", l.cx - l.w / 2.0);
                let y2 = (r[3] + r[5] / 2.0) * h;
                let back = (y2 - info.pad.1) / info.ratio.1 / sample.height as f32;
                assert!((back - (l.cy + l.h / 2.0)).abs() < 0.02);
            }
        }
    }
}

#[test]
fn caches_give_the_same_batches() {
    let (_d, s) = samples(4, 64);
    let hyp = Hyp::default();
    let cfg = |cache| LoaderConfig { img_size: 64, batch: 4, workers: 0, cache, ..Default::default() };
    let reference = Loader::new(&s, &hyp, cfg(Cache::None)).unwrap().batch(0, 0).unwrap();
    for cache in [Cache::Ram, Cache::RamEncoded, Cache::Disk] {
        let l = Loader::new(&s, &hyp, cfg(cache)).unwrap();
        assert!(l.cache_bytes() > 0, "{cache:?} reports its memory");
        assert!(l.batch(0, 0).unwrap().images.equal(&reference.images), "{cache:?}");
    }
    assert!("ram".parse::<Cache>().is_ok() && "floppy".parse::<Cache>().is_err());
}

/// Box and pixel statistics of 2048 augmented samples (mosaic, scratch-low, 128 px), recorded with the loader
/// before its rewrite for speed (issue 11: the f64 warp and float HSV of 2026-12-01, commit 8f47f34). The
/// geometry draws are unchanged, so the box statistics must agree closely; the pixel means may move only by
/// rounding (the HSV back-conversion now truncates as OpenCV 5 does: means 0.26-0.34 levels lower).
#[test]
fn augmentation_statistics_match_the_loader_before_its_rewrite() {
    let (_d, s) = samples(32, 128);
    let hyp = Hyp::load("scratch-low").unwrap();
    let cfg = LoaderConfig { img_size: 128, batch: 16, workers: 0, cache: Cache::Ram, ..Default::default() };
    let loader = Loader::new(&s, &hyp, cfg).unwrap();
    let (mut items, mut boxes, mut area, mut clipped) = (0usize, 0usize, 0f64, 0usize);
    let mut channel_sum = [0f64; 3];
    let mut channel_sq = [0f64; 3];
    let mut pixels = 0f64;
    for epoch in 0..64 {
        for k in 0..loader.images() {
            let item = loader.item(k, epoch).unwrap();
            items += 1;
            for l in &item.labels {
                boxes += 1;
                area += (l[3] * l[4]) as f64;
                let edge = 2e-3;
                if l[1] - l[3] / 2.0 < edge
                    || l[2] - l[4] / 2.0 < edge
                    || l[1] + l[3] / 2.0 > 1.0 - edge
                    || l[2] + l[4] / 2.0 > 1.0 - edge
                {
                    clipped += 1;
                }
            }
            for p in item.image.pixels() {
                for c in 0..3 {
                    channel_sum[c] += p[c] as f64;
                    channel_sq[c] += (p[c] as f64).powi(2);
                }
            }
            pixels += (item.image.width() * item.image.height()) as f64;
        }
    }
    let per_image = boxes as f64 / items as f64;
    let mean_area = area / boxes as f64;
    let clip_share = clipped as f64 / boxes as f64;
    let mean: Vec<f64> = channel_sum.iter().map(|s| s / pixels).collect();
    let std: Vec<f64> = (0..3).map(|c| (channel_sq[c] / pixels - mean[c] * mean[c]).sqrt()).collect();
    println!(
        "items {items} boxes/image {per_image:.5} mean area {mean_area:.6} clipped {clip_share:.5} mean {mean:.3?} std {std:.3?}"
    );
    assert_eq!(items, 2048);
    let close = |got: f64, want: f64, tol: f64, what: &str| {
        assert!((got - want).abs() <= tol, "{what}: {got} against {want} before the rewrite (tolerance {tol})")
    };
    close(per_image, BEFORE.0, 0.01, "boxes per image");
    close(mean_area, BEFORE.1, 2e-4, "mean box area");
    close(clip_share, BEFORE.2, 0.003, "share of boxes at the edge");
    for c in 0..3 {
        close(mean[c], BEFORE.3[c], 0.5, "channel mean");
        close(std[c], BEFORE.4[c], 0.5, "channel standard deviation");
    }
}

/// (boxes per image, mean normalised box area, share of boxes at an edge, channel means, channel standard
/// deviations) measured before the rewrite.
const BEFORE: (f64, f64, f64, [f64; 3], [f64; 3]) =
    (6.03174, 0.031835, 0.42718, [134.793, 114.258, 133.282], [66.692, 68.263, 68.789]);
