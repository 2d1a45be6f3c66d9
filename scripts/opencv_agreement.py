#!/usr/bin/env python3
"""Compare yolo-lab's warps and HSV augmentation with OpenCV's (the cases written by
`cargo run --release --example opencv_agreement -- DIR`). Needs numpy and opencv-python (YOLOv5's reference
environment has both). Prints, per case, the largest difference and how many values differ, and times OpenCV on
the same 320x320 outputs. Usage: python scripts/opencv_agreement.py DIR"""
import sys, time
from pathlib import Path
import numpy as np
import cv2

d = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/opencv-agreement")
lines = [l.split() for l in (d / "cases.txt").read_text().splitlines()]
w, h = int(lines[0][1]), int(lines[0][2])
src = np.fromfile(d / "src.rgb", dtype=np.uint8).reshape(h, w, 3)
bgr = np.ascontiguousarray(src[:, :, ::-1])
print(f"OpenCV {cv2.__version__}")
for case in lines[1:]:
    name = case[0]
    ours = np.fromfile(d / f"{name}.rgb", dtype=np.uint8)
    if name.startswith("warp"):
        ow, oh = int(case[1]), int(case[2])
        M = np.array([float(v) for v in case[3:]]).reshape(3, 3)
        if (M[2] == [0, 0, 1]).all():
            ref = cv2.warpAffine(bgr, M[:2], dsize=(ow, oh), borderValue=(114, 114, 114))
        else:
            ref = cv2.warpPerspective(bgr, M, dsize=(ow, oh), borderValue=(114, 114, 114))
    else:
        r = np.array([float(v) for v in case[1:]])
        hue, sat, val = cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV))
        x = np.arange(0, 256, dtype=r.dtype)
        luts = [((x * r[0]) % 180).astype(np.uint8), np.clip(x * r[1], 0, 255).astype(np.uint8),
                np.clip(x * r[2], 0, 255).astype(np.uint8)]
        im_hsv = cv2.merge((cv2.LUT(hue, luts[0]), cv2.LUT(sat, luts[1]), cv2.LUT(val, luts[2])))
        ref = cv2.cvtColor(im_hsv, cv2.COLOR_HSV2BGR)
    ref = ref[:, :, ::-1].reshape(-1).astype(int)
    diff = np.abs(ours.astype(int) - ref)
    print(f"{name:6} max difference {diff.max()}  values differing {int((diff > 0).sum())} of {diff.size}")
cv2.setNumThreads(0)  # as YOLOv5 does (utils/general.py): one thread, the per-core figure
big = np.random.default_rng(0).integers(0, 256, (640, 640, 3), dtype=np.uint8)
M = np.array([[0.73, 0, -5.3], [0, 0.73, 3.7]])
n = 500
t = time.perf_counter()
for _ in range(n):
    cv2.warpAffine(big, M, dsize=(320, 320), borderValue=(114, 114, 114))
wt = (time.perf_counter() - t) * 1e3 / n
im = np.ascontiguousarray(big[:320, :320])
t = time.perf_counter()
for _ in range(n):
    hue, sat, val = cv2.split(cv2.cvtColor(im, cv2.COLOR_BGR2HSV))
    im_hsv = cv2.merge((cv2.LUT(hue, luts[0]), cv2.LUT(sat, luts[1]), cv2.LUT(val, luts[2])))
    cv2.cvtColor(im_hsv, cv2.COLOR_HSV2BGR, dst=im)
ht = (time.perf_counter() - t) * 1e3 / n
print(f"OpenCV per 320x320 output (one thread): warpAffine {wt:.3f} ms, augment_hsv {ht:.3f} ms")
