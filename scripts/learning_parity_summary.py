#!/usr/bin/env python3
"""Summary of the learning-parity runs (scripts/learning_parity.sh): per program, mean ± standard deviation
(and standard error) over seeds of the final and best mAP@0.5:0.95 and mAP@0.5, and a figure of the per-epoch
bands (mean ± one standard deviation). Needs numpy and matplotlib (the YOLOv5 reference venv has both).

    $REF_PY scripts/learning_parity_summary.py [TAG_PREFIX]     # e.g. img160_e100
"""
import csv
import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.join(os.path.dirname(__file__), "..", "bench", "results", "learning_parity")
COLS = {"mAP@0.5:0.95": "metrics/mAP_0.5:0.95", "mAP@0.5": "metrics/mAP_0.5"}


def read(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    head = [h.strip() for h in rows[0]]
    return {h: np.array([float(r[i]) for r in rows[1:] if len(r) == len(head)]) for i, h in enumerate(head)}


def main():
    prefix = sys.argv[1] if len(sys.argv) > 1 else "img160_e100"
    runs = {}
    for tool in ("yolov5", "yolo-lab"):
        files = sorted(glob.glob(os.path.join(HERE, f"{tool}_{prefix}_s*.csv")))
        runs[tool] = [read(f) for f in files]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (label, col) in zip(axes, COLS.items()):
        for tool, colour in (("yolov5", "tab:blue"), ("yolo-lab", "tab:orange")):
            rs = runs[tool]
            if not rs:
                continue
            n = min(len(r[col]) for r in rs)
            m = np.stack([r[col][:n] for r in rs])
            mean, sd = m.mean(0), m.std(0, ddof=1) if len(rs) > 1 else np.zeros(n)
            ax.plot(np.arange(n), mean, color=colour, label=f"{tool} (k={len(rs)})")
            ax.fill_between(np.arange(n), mean - sd, mean + sd, color=colour, alpha=0.25)
            final, best = m[:, -1], m.max(1)
            k = len(rs)
            se = lambda v: v.std(ddof=1) / np.sqrt(k) if k > 1 else float("nan")
            sdv = lambda v: v.std(ddof=1) if k > 1 else float("nan")
            print(
                f"{tool:9s} {label:13s} final {final.mean():.4f} ± {sdv(final):.4f} (se {se(final):.4f})  "
                f"best {best.mean():.4f} ± {sdv(best):.4f}  seeds {[round(float(x), 4) for x in final]}"
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    fig.suptitle(f"yolov5n from scratch on shapes, {prefix}: mean ± 1 sd over seeds")
    fig.tight_layout()
    out = os.path.join(HERE, f"bands_{prefix}.png")
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main()
