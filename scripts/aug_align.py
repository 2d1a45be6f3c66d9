#!/usr/bin/env python3
"""Label-to-pixel alignment after augmentation (issue 19): on a data set of one white rectangle per black
image, how far each augmented label box lies from the white pixels it should frame. Same measure for
yolo-lab's samples (dumped by `cargo run --release --example aug_stats -- ... SAMPLES_DIR`) and for YOLOv5's
loader (run from a YOLOv5 checkout, ../shared/bench/README.md):

    python3 scripts/aug_align.py dump SAMPLES_DIR
    $REF_PY scripts/aug_align.py yolov5 IMAGES_DIR IMGSZ [HYP_YAML]

Prints the mean and median of the four edge offsets (measured − label, pixels), skipping boxes at the border.
A measurement, not a test.
"""
import json
import sys
from pathlib import Path

import numpy as np


def offsets(img, labels):
    h, w = img.shape[:2]
    grey = img.mean(2) > 128
    out = []
    for _, cx, cy, bw, bh in labels:
        x1, y1, x2, y2 = (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h
        if x1 <= 2 or y1 <= 2 or x2 >= w - 2 or y2 >= h - 2 or bw * w < 8 or bh * h < 8:
            continue
        rx1, ry1, rx2, ry2 = max(int(x1) - 4, 0), max(int(y1) - 4, 0), min(int(x2) + 5, w), min(int(y2) + 5, h)
        ys, xs = np.nonzero(grey[ry1:ry2, rx1:rx2])
        if len(xs) == 0:
            continue
        out.append([rx1 + xs.min() - x1, ry1 + ys.min() - y1, rx1 + xs.max() + 1 - x2, ry1 + ys.max() + 1 - y2])
    return out


def report(name, rows):
    a = np.array(rows)
    print(f"{name}: {len(a)} boxes; edge offsets x1 y1 x2 y2 (px): mean {np.round(a.mean(0), 3).tolist()} "
          f"median {np.round(np.median(a, 0), 3).tolist()} mean |.| {np.round(np.abs(a).mean(0), 3).tolist()}")


def main():
    rows = []
    if sys.argv[1] == "dump":
        d = Path(sys.argv[2])
        for meta in sorted(d.glob("*.json"), key=lambda p: int(p.stem)):
            m = json.loads(meta.read_text())
            w, h = m["size"]
            img = np.fromfile(d / f"{meta.stem}.rgb", np.uint8).reshape(h, w, 3)
            rows += offsets(img, m["labels"])
        report("yolo-lab", rows)
    else:
        import random

        import yaml

        sys.path.insert(0, ".")
        from utils.dataloaders import LoadImagesAndLabels

        hyp = yaml.safe_load(open(sys.argv[4] if len(sys.argv) > 4 else "data/hyps/hyp.scratch-low.yaml"))
        random.seed(0)
        np.random.seed(0)
        ds = LoadImagesAndLabels(sys.argv[2], int(sys.argv[3]), 16, augment=True, hyp=hyp, stride=32)
        for k in range(300):
            img, labels, _, _ = ds[k % len(ds)]
            rows += offsets(img.numpy().transpose(1, 2, 0), labels.numpy()[:, 1:].tolist())
        report("yolov5", rows)


if __name__ == "__main__":
    main()
