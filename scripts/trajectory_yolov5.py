"""Record a YOLOv5 training trajectory for yolo-lab's trajectory-parity check (issue 19).

Runs YOLOv5's own train.py (from the current directory, a YOLOv5 clone) with observers attached and
nothing else changed. It records the training state at iteration START (model after `model.half().float()`
for START 0; otherwise model, EMA, and the optimizer's momentum buffers as the first START iterations left
them), the training batches from START to ITERS as the loader produced them (uint8 images, targets), and for
each iteration the loss items, the global gradient norm before clipping, and the learning rates and momentum
in force. After ITERS iterations it saves the model and EMA states and stops. `examples/trajectory.rs`
replays the same batches from the same state through yolo-lab's training step.

    cd $REF_ROOT/yolov5 && source .../shared/bench/yolov5_env.sh
    unshare -n -- $REF_PY .../scripts/trajectory_yolov5.py OUT_DIR ITERS [START] -- <train.py arguments>

Writes OUT_DIR/init.safetensors (model; `ema.*`, `opt.*` momentum buffers when START > 0),
batches.safetensors, steps.json, final.safetensors, final_ema.safetensors.
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file

sep = sys.argv.index("--")
out_dir, iters = sys.argv[1], int(sys.argv[2])
start = int(sys.argv[3]) if sep > 3 else 0
sys.argv = ["train.py"] + sys.argv[sep + 1 :]
sys.path.insert(0, os.getcwd())
os.makedirs(out_dir, exist_ok=True)

import train as T  # noqa: E402

state = {"model": None, "ema": None, "opt": None, "batches": {}, "steps": [], "n": 0, "norm": None, "last_step": -1}


class Done(Exception):
    pass


def tensors_of(sd):
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def save_start():
    """The state before iteration `start`: model, EMA, momentum buffers, optimizer settings."""
    model, opt = state["model"], state["opt"]
    t = tensors_of(model.state_dict())
    if start > 0:
        t.update({f"ema.{k}": v for k, v in tensors_of(state["ema"].ema.state_dict()).items()})
        names = {id(p): n for n, p in model.named_parameters()}
        for g in opt.param_groups:
            for p in g["params"]:
                buf = opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    t[f"opt.{names[id(p)]}"] = buf.detach().clone().contiguous()
    save_file(t, os.path.join(out_dir, "init.safetensors"))
    with open(os.path.join(out_dir, "start.json"), "w") as f:
        json.dump(
            {
                "start": start,
                "ema_updates": state["ema"].updates,
                "last_opt_step": state["last_step"],
                "lr": [g["lr"] for g in opt.param_groups],
                "momentum": [g.get("momentum", 0.0) for g in opt.param_groups],
            },
            f,
        )


def finish():
    save_file(tensors_of(state["model"].state_dict()), os.path.join(out_dir, "final.safetensors"))
    ema = {f"ema.{k}": v for k, v in tensors_of(state["ema"].ema.state_dict()).items()}
    save_file(ema, os.path.join(out_dir, "final_ema.safetensors"))
    save_file(state["batches"], os.path.join(out_dir, "batches.safetensors"))
    with open(os.path.join(out_dir, "steps.json"), "w") as f:
        json.dump({"start": start, "iterations": state["n"], "ema_updates": state["ema"].updates, "steps": state["steps"]}, f)
    raise Done()


class Recorder:
    """Wraps the training DataLoader: records every batch, stops after `iters`."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __iter__(self):
        for imgs, targets, paths, shapes in self.loader:
            i = state["n"]
            if i > 0:
                self.close_step()
            if i >= iters:
                finish()
            if i == start:
                save_start()
            if i >= start:
                state["batches"][f"images.{i}"] = imgs.contiguous().clone()
                state["batches"][f"targets.{i}"] = targets.float().contiguous().clone()
            state["n"] += 1
            yield imgs, targets, paths, shapes
        # an epoch ended: its last iteration is closed by the next batch, or here when it was the last wanted
        if state["n"] >= iters:
            self.close_step()
            finish()

    @staticmethod
    def close_step():
        s = state["steps"][-1]
        s["grad_norm"] = state["norm"]
        state["norm"] = None


real_loader = T.create_dataloader


def create_dataloader(*a, **k):
    loader, ds = real_loader(*a, **k)
    return (Recorder(loader) if k.get("augment") else loader), ds


class Loss(T.ComputeLoss):
    def __init__(self, model, *a, **k):
        super().__init__(model, *a, **k)
        state["model"] = model

    def __call__(self, p, targets):
        loss, items = super().__call__(p, targets)
        if state["model"].training:
            opt = state["opt"]
            state["steps"].append(
                {
                    "loss": loss.item(),
                    "items": [float(x) for x in items],
                    "lr": [g["lr"] for g in opt.param_groups],
                    "momentum": [g.get("momentum", 0.0) for g in opt.param_groups],
                }
            )
        return loss, items


class Ema(T.ModelEMA):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        state["ema"] = self


real_optimizer = T.smart_optimizer


def smart_optimizer(*a, **k):
    state["opt"] = real_optimizer(*a, **k)
    return state["opt"]


real_clip = torch.nn.utils.clip_grad_norm_


def clip(params, max_norm, *a, **k):
    total = real_clip(params, max_norm, *a, **k)
    state["norm"] = float(total)
    state["last_step"] = state["n"] - 1
    return total


T.create_dataloader = create_dataloader
T.ComputeLoss = Loss
T.ModelEMA = Ema
T.smart_optimizer = smart_optimizer
torch.nn.utils.clip_grad_norm_ = clip

try:
    T.main(T.parse_opt())
except Done:
    print(f"trajectory: {state['n']} iterations recorded in {out_dir}")
