"""YOLOv5's train.py trained on batches another loader produced (issue 19's data swap).

Everything in train.py runs as usual (model, AutoAnchor, optimizer, warmup, EMA, validation every epoch,
results.csv) except that the training DataLoader yields the recorded batches of BATCHES.safetensors
(`examples/dump_batches.rs`: `images.{i}` uint8 NCHW, `targets.{i}` [n, 6]) in order, epoch after epoch.

    cd $REF_ROOT/yolov5 && source .../shared/bench/yolov5_env.sh
    unshare -n -- $REF_PY .../scripts/train_on_batches.py BATCHES.safetensors -- <train.py arguments>

TRAIN_PERTURB=1e-6 multiplies every initial weight by 1 + 1e-6·N(0,1) (see `Loss`).
"""

import os
import sys

from safetensors.torch import load_file

path = sys.argv[1]
assert sys.argv[2] == "--", "usage: train_on_batches.py BATCHES -- train.py args"
sys.argv = ["train.py"] + sys.argv[3:]
sys.path.insert(0, os.getcwd())

import train as T  # noqa: E402

batches = load_file(path)
count = sum(1 for k in batches if k.startswith("images."))


class Replay:
    """Stands in for the training DataLoader: the recorded batches, `len` of them per epoch."""

    def __init__(self, loader):
        self.loader, self.next = loader, 0

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __iter__(self):
        for _ in range(len(self.loader)):
            i = self.next
            assert i < count, f"{path} has {count} batches; the run asked for more"
            self.next += 1
            imgs = batches[f"images.{i}"]
            yield imgs, batches[f"targets.{i}"], [""] * imgs.shape[0], None


real = T.create_dataloader
perturb = float(os.environ.get("TRAIN_PERTURB", "0"))


class Loss(T.ComputeLoss):
    """With TRAIN_PERTURB=ε, every initial weight is multiplied by 1 + ε·N(0,1) once (the chaos probe: how
    far a rounding-sized difference carries a run on the same batches)."""

    def __init__(self, model, *a, **k):
        super().__init__(model, *a, **k)
        if perturb > 0:
            import torch

            g = torch.Generator().manual_seed(1)
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1 + perturb * torch.randn(p.shape, generator=g))


def create_dataloader(*a, **k):
    loader, ds = real(*a, **k)
    return (Replay(loader) if k.get("augment") else loader), ds


T.create_dataloader = create_dataloader
T.ComputeLoss = Loss
T.main(T.parse_opt())
