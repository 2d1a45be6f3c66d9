#!/usr/bin/env python3
"""Write tests/data/unstripped-tiny.pt: a mid-training checkpoint as YOLOv5's train.py saves one (model and EMA
in float16, optimizer state, updates, epoch), for a tiny model so the file stays small, plus
tests/data/unstripped-tiny.safetensors holding the EMA's float32 state_dict (what a reader must return).

    cd ~/ref/yolov5 && PYTHONPATH=. ~/ref/venv/bin/python /work/main/scripts/make_unstripped_checkpoint.py /work/main/tests/data
"""

import sys
from copy import deepcopy
from pathlib import Path

import torch
from safetensors.torch import save_file

from models.yolo import DetectionModel
from utils.torch_utils import ModelEMA

YAML = {
    "nc": 2,
    "depth_multiple": 1.0,
    "width_multiple": 1.0,
    "anchors": [[10, 13, 16, 30, 33, 23]],
    "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "Conv", [16, 3, 2]], [-1, 1, "C3", [16]]],
    "head": [[-1, 1, "Conv", [16, 3, 2]], [[3], 1, "Detect", ["nc", "anchors"]]],
}

out = Path(sys.argv[1])
torch.manual_seed(0)
model = DetectionModel(deepcopy(YAML), ch=3, nc=2)
ema = ModelEMA(model, updates=10000)  # a late EMA: it trails the model, so the two differ clearly
opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
for _ in range(3):  # a few steps so that the EMA differs from the model
    loss = sum(o.float().pow(2).mean() for o in model(torch.rand(2, 3, 64, 64)))
    opt.zero_grad()
    loss.backward()
    opt.step()
    ema.update(model)
ckpt = {
    "epoch": 2,
    "best_fitness": 0.25,
    "model": deepcopy(model).half(),
    "ema": deepcopy(ema.ema).half(),
    "updates": ema.updates,
    "optimizer": opt.state_dict(),
    "opt": {"imgsz": 64, "epochs": 10},
    "git": None,
    "date": "2026-12-01T00:00:00",
}
differ = sum(int((a.half() != b.half()).any()) for a, b in zip(model.state_dict().values(), ema.ema.state_dict().values()))
torch.save(ckpt, out / "unstripped-tiny.pt")
save_file({k: v.contiguous() for k, v in ema.ema.half().float().state_dict().items()}, out / "unstripped-tiny.safetensors")
print(len(ema.ema.state_dict()), "tensors,", differ, "differ between model and EMA; updates", ema.updates)
