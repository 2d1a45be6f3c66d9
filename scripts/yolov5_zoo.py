#!/usr/bin/env python3
"""Record what YOLOv5 builds from each model yaml, for yolo-lab's zoo test.

Run inside a YOLOv5 checkout's environment (see ../shared/bench/README.md):

    cd ~/ref/yolov5 && PYTHONPATH=. ~/ref/venv/bin/python /work/main/scripts/yolov5_zoo.py models-dir out.json

(e.g. /work/main/models /work/main/tests/data/yolov5_zoo.json; YOLOv5 logs to stdout, so the JSON goes to a file).

For every yaml under the given folder (models/*.yaml and models/hub/*.yaml) it builds
`DetectionModel(cfg, ch=3, nc=80)` and writes parameters, GFLOPs at 640 px, leaf-module count, state_dict
tensor count and the detection strides. With `--export-hub DIR` it instead rewrites YOLOv5's own
models/hub yamls into DIR as plain layer tables (structure only), which is how yolo-lab's models/hub was made.
"""

import json
import sys
from pathlib import Path


def export_hub(src: Path, dst: Path) -> None:
    import yaml

    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.yaml")):
        d = yaml.safe_load(f.read_text())
        if "backbone" not in d:
            continue
        out = [f"# {f.stem}: layer table as YOLOv5 5081342f defines it (structure only)"]
        for k in ("nc", "depth_multiple", "width_multiple", "activation", "channel_multiple"):
            if k in d:
                out.append(f"{k}: {d[k]}")
        a = d["anchors"]
        if isinstance(a, int):
            out.append(f"anchors: {a}")
        else:
            out.append("anchors:")
            out += [f"  - {list(level)}" for level in a]
        for part in ("backbone", "head"):
            out.append(f"{part}:")
            for row in d[part]:
                out.append("  - " + json.dumps(row).replace('"', "'").replace("'nc'", "nc").replace("'anchors'", "anchors"))
        (dst / f.name).write_text("\n".join(out) + "\n")


def counts(root: Path) -> dict:
    import torch
    from models.common import Conv
    from models.yolo import DetectionModel
    from ultralytics.utils.torch_utils import model_info
    import torch.nn as nn

    result = {}
    for f in sorted(list(root.glob("*.yaml")) + list(root.glob("hub/*.yaml"))):
        Conv.default_act = nn.SiLU()  # a yaml's `activation:` changes the class default for later models
        torch.manual_seed(0)
        m = DetectionModel(str(f), ch=3, nc=80)
        n_l, n_p, n_g, flops = model_info(m, imgsz=640)
        result[str(f.relative_to(root))] = {
            "parameters": n_p,
            "gflops": round(flops, 4),
            "layers": n_l,
            "state_dict": len(m.state_dict()),
            "stride": [int(s) for s in m.stride.tolist()],
        }
    return result


if __name__ == "__main__":
    if sys.argv[1] == "--export-hub":
        export_hub(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        Path(sys.argv[2]).write_text(json.dumps(counts(Path(sys.argv[1])), indent=1) + "\n")
