//! Augmentation statistics of yolo-lab's training loader, to compare with YOLOv5's (issue 19):
//! `scripts/aug_stats_yolov5.py` computes the same figures from YOLOv5's `LoadImagesAndLabels`.
//!
//! ```sh
//! cargo run --release --example aug_stats -- DATA_YAML IMGSZ SAMPLES [HYP] [DUMP_DIR] [SAMPLES_DIR]
//! ```
//! Prints one JSON object: per-channel pixel mean and std, the share of 114-grey fill, boxes per image, the
//! share of source boxes kept, quantiles of box area and aspect, the share of boxes touching the border, and
//! per-image mean saturation and value (OpenCV's HSV). With DUMP_DIR it also writes, for the first 16 images,
//! the decoded pixels and `load_image`'s resize to IMGSZ as raw RGB (`{i}.decoded.rgb`; `{i}.resized.rgb`
//! from the augmenting loader, `{i}.area.rgb` from one without augmentation; `{i}.json` with the sizes),
//! which the Python script compares with OpenCV's decoder and resamplers. With SAMPLES_DIR it writes the first
//! 300 augmented samples (`{k}.rgb`, `{k}.json` with size and labels) for `scripts/aug_align.py`.
//!
//! A benchmark, not a test: it asserts nothing.

use yolo_lab::data::{Dataset, Loader, LoaderConfig, Split, imageops_decode};
use yolo_lab::hyp::Hyp;

fn quantiles(mut v: Vec<f64>, qs: &[f64]) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    qs.iter().map(|q| if v.is_empty() { f64::NAN } else { v[((v.len() - 1) as f64 * q).round() as usize] }).collect()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt())
}

fn main() -> yolo_lab::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let data = args.get(1).map(String::as_str).unwrap_or("shapes");
    let imgsz: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(320);
    let samples: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let hyp = Hyp::load(args.get(4).map(String::as_str).unwrap_or("scratch-low"))?;
    let dump = args.get(5).filter(|s| !s.is_empty()).map(std::path::PathBuf::from);
    // optional: the first 300 augmented samples as raw RGB + labels, for scripts/aug_align.py
    let samples_dump = args.get(6).filter(|s| !s.is_empty()).map(std::path::PathBuf::from);
    let train = Dataset::load(data)?.scan(Split::Train)?;
    let loader =
        Loader::new(&train, &hyp, LoaderConfig { img_size: imgsz, batch: 16, workers: 0, ..Default::default() })?;
    let n = train.len();
    let (mut sum, mut sq, mut pixels, mut fill) = ([0f64; 3], [0f64; 3], 0f64, 0f64);
    let (mut boxes, mut areas, mut aspects, mut border, mut sat, mut val) = (vec![], vec![], vec![], 0, vec![], vec![]);
    for k in 0..samples {
        let item = loader.item(k % n, (k / n) as u64)?;
        if let Some(d) = samples_dump.as_ref().filter(|_| k < 300) {
            std::fs::create_dir_all(d).map_err(|e| yolo_lab::Error::io(d, e))?;
            let meta = serde_json::json!({"size": [item.image.width(), item.image.height()], "labels": item.labels});
            std::fs::write(d.join(format!("{k}.rgb")), item.image.as_raw()).map_err(|e| yolo_lab::Error::io(d, e))?;
            std::fs::write(d.join(format!("{k}.json")), meta.to_string()).map_err(|e| yolo_lab::Error::io(d, e))?;
        }
        let (w, h) = (item.image.width() as f64, item.image.height() as f64);
        let (mut s_img, mut v_img) = (0f64, 0f64);
        for p in item.image.pixels() {
            for c in 0..3 {
                let x = p[c] as f64;
                sum[c] += x;
                sq[c] += x * x;
            }
            if p[0] == 114 && p[1] == 114 && p[2] == 114 {
                fill += 1.0;
            }
            let (mx, mn) =
                (p.0.iter().max().copied().unwrap_or(0) as f64, p.0.iter().min().copied().unwrap_or(0) as f64);
            v_img += mx;
            s_img += if mx > 0.0 { (255.0 * (mx - mn) / mx).round() } else { 0.0 };
        }
        let np = w * h;
        pixels += np;
        sat.push(s_img / np);
        val.push(v_img / np);
        boxes.push(item.labels.len() as f64);
        for l in &item.labels {
            let (cx, cy, bw, bh) = (l[1] as f64 * w, l[2] as f64 * h, l[3] as f64 * w, l[4] as f64 * h);
            areas.push(bw * bh / np);
            aspects.push(bw / bh.max(1e-9));
            if cx - bw / 2.0 <= 1.0 || cy - bh / 2.0 <= 1.0 || cx + bw / 2.0 >= w - 1.0 || cy + bh / 2.0 >= h - 1.0 {
                border += 1;
            }
        }
    }
    let mean: Vec<f64> = (0..3).map(|c| sum[c] / pixels).collect();
    let std: Vec<f64> = (0..3).map(|c| (sq[c] / pixels - mean[c] * mean[c]).sqrt()).collect();
    let source = train.items.iter().map(|s| s.labels.len()).sum::<usize>() as f64 / n as f64;
    let (bm, bs) = mean_std(&boxes);
    let nb: f64 = boxes.iter().sum();
    let q = [0.1, 0.5, 0.9];
    let report = serde_json::json!({
        "loader": "yolo-lab",
        "samples": samples, "imgsz": imgsz,
        "channel_mean_rgb": mean, "channel_std_rgb": std,
        "fill114": fill / pixels,
        "boxes_per_image": [bm, bs],
        "source_boxes_per_image": source,
        "kept_share_if_all_mosaic": bm / (4.0 * source),
        "area_q10_50_90": quantiles(areas, &q),
        "aspect_q10_50_90": quantiles(aspects, &q),
        "border_share": border as f64 / nb.max(1.0),
        "image_mean_saturation": mean_std(&sat),
        "image_mean_value": mean_std(&val),
    });
    println!("{report}");
    if let Some(dir) = dump {
        std::fs::create_dir_all(&dir).map_err(|e| yolo_lab::Error::io(&dir, e))?;
        let raw = LoaderConfig { img_size: imgsz, batch: 1, workers: 0, augment: false, ..Default::default() };
        let plain = Loader::new(&train, &hyp, raw)?;
        for (i, s) in train.items.iter().take(16).enumerate() {
            let decoded = imageops_decode(&s.image)?;
            let resized = loader.loaded_image(i)?; // the training loader's load_image (INTER_LINEAR)
            let area = plain.loaded_image(i)?; // without augmentation, shrinking uses INTER_AREA
            let write = |name: String, bytes: &[u8]| {
                std::fs::write(dir.join(&name), bytes).map_err(|e| yolo_lab::Error::io(dir.join(name), e))
            };
            write(format!("{i}.decoded.rgb"), decoded.as_raw())?;
            write(format!("{i}.resized.rgb"), resized.as_raw())?;
            write(format!("{i}.area.rgb"), area.as_raw())?;
            let meta = serde_json::json!({"path": s.image, "decoded": [decoded.width(), decoded.height()],
                "resized": [resized.width(), resized.height()]});
            write(format!("{i}.json"), meta.to_string().as_bytes())?;
        }
    }
    Ok(())
}
