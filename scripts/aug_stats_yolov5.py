#!/usr/bin/env python3
"""Augmentation statistics of YOLOv5's training loader, to compare with yolo-lab's (issue 19).

The same figures as `cargo run --release --example aug_stats` prints, computed from YOLOv5's own
`LoadImagesAndLabels` (imported unmodified from a reference checkout, ../shared/bench/README.md):

    cd $REF_ROOT/yolov5 && source .../shared/bench/yolov5_env.sh
    unshare -n -- $REF_PY .../scripts/aug_stats_yolov5.py IMAGES_DIR IMGSZ SAMPLES [HYP_YAML] [DUMP_DIR]

With DUMP_DIR (written by the Rust example) it also compares, for the dumped images, yolo-lab's decoded pixels
with cv2.imread and yolo-lab's load_image resizes with cv2.resize: the augmenting loader's with INTER_LINEAR
(what YOLOv5 uses while augmenting), the plain loader's with INTER_AREA (what it uses otherwise when
shrinking). A measurement, not a test.
"""
import json
import random
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

sys.path.insert(0, ".")  # run from the YOLOv5 checkout
from utils.dataloaders import LoadImagesAndLabels  # noqa: E402


def mean_std(v):
    v = np.asarray(v, dtype=np.float64)
    return [float(v.mean()), float(v.std())]


def quantiles(v, qs=(0.1, 0.5, 0.9)):
    v = np.sort(np.asarray(v, dtype=np.float64))
    return [float(v[int(round((len(v) - 1) * q))]) if len(v) else float("nan") for q in qs]


def main():
    images, imgsz, samples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    hyp_path = sys.argv[4] if len(sys.argv) > 4 else "data/hyps/hyp.scratch-low.yaml"
    dump = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    hyp = yaml.safe_load(open(hyp_path))
    random.seed(0)
    np.random.seed(0)
    ds = LoadImagesAndLabels(images, imgsz, 16, augment=True, hyp=hyp, rect=False, stride=32, pad=0.0)
    n = len(ds)
    s = np.zeros(3)
    sq = np.zeros(3)
    pixels = fill = 0.0
    boxes, areas, aspects, sat, val = [], [], [], [], []
    border = 0
    for k in range(samples):
        img, labels, _, _ = ds[k % n]
        im = img.numpy().transpose(1, 2, 0).astype(np.float64)  # HWC RGB
        h, w = im.shape[:2]
        s += im.reshape(-1, 3).sum(0)
        sq += (im.reshape(-1, 3) ** 2).sum(0)
        pixels += h * w
        fill += float(np.all(im == 114, axis=2).sum())
        mx, mn = im.max(2), im.min(2)
        sat.append(float(np.where(mx > 0, np.round(255 * (mx - mn) / np.maximum(mx, 1e-9)), 0).mean()))
        val.append(float(mx.mean()))
        lb = labels.numpy()
        boxes.append(len(lb))
        for _, _, cx, cy, bw, bh in lb:
            cx, cy, bw, bh = cx * w, cy * h, bw * w, bh * h
            areas.append(bw * bh / (h * w))
            aspects.append(bw / max(bh, 1e-9))
            if cx - bw / 2 <= 1 or cy - bh / 2 <= 1 or cx + bw / 2 >= w - 1 or cy + bh / 2 >= h - 1:
                border += 1
    mean = s / pixels
    std = np.sqrt(sq / pixels - mean**2)
    source = float(np.mean([len(x) for x in ds.labels]))
    bm = float(np.mean(boxes))
    out = {
        "loader": "yolov5",
        "samples": samples,
        "imgsz": imgsz,
        "channel_mean_rgb": mean.tolist(),
        "channel_std_rgb": std.tolist(),
        "fill114": fill / pixels,
        "boxes_per_image": mean_std(boxes),
        "source_boxes_per_image": source,
        "kept_share_if_all_mosaic": bm / (4 * source),
        "area_q10_50_90": quantiles(areas),
        "aspect_q10_50_90": quantiles(aspects),
        "border_share": border / max(sum(boxes), 1),
        "image_mean_saturation": mean_std(sat),
        "image_mean_value": mean_std(val),
    }
    if dump:
        dec, lin, area = [], [], []
        for meta in sorted(dump.glob("*.json"), key=lambda p: int(p.stem)):
            m = json.loads(meta.read_text())
            ours = np.fromfile(dump / f"{meta.stem}.decoded.rgb", np.uint8).reshape(m["decoded"][1], m["decoded"][0], 3)
            cv = cv2.imread(m["path"])[:, :, ::-1]
            dec.append(np.abs(ours.astype(int) - cv.astype(int)))
            rw, rh = m["resized"]
            ours_r = np.fromfile(dump / f"{meta.stem}.resized.rgb", np.uint8).reshape(rh, rw, 3).astype(int)
            ours_a = np.fromfile(dump / f"{meta.stem}.area.rgb", np.uint8).reshape(rh, rw, 3).astype(int)
            if (rw, rh) != (cv.shape[1], cv.shape[0]):
                lin.append(np.abs(ours_r - cv2.resize(cv, (rw, rh), interpolation=cv2.INTER_LINEAR).astype(int)))
                area.append(np.abs(ours_a - cv2.resize(cv, (rw, rh), interpolation=cv2.INTER_AREA).astype(int)))
        pack = lambda d: {"mean_abs": float(np.mean([x.mean() for x in d])), "max_abs": int(max(x.max() for x in d))} if d else None
        out["decode_vs_cv2_imread"] = pack(dec)
        out["resize_vs_cv2_linear"] = pack(lin)
        out["resize_vs_cv2_area"] = pack(area)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
