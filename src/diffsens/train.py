"""Training with checkpoints, a per-epoch history, and exact resumption after a kill.

``train(model_spec, data, config, out_dir)`` writes under ``out_dir``:

* ``checkpoints/{init,best,last}.pt`` and ``checkpoints/epoch_<N>.pt`` for each listed epoch:
  self-describing (model spec, data shape, epoch, test error), reloaded by :func:`load_checkpoint`;
* ``history.nc``: train loss, train and test error, learning rate and time per epoch;
* ``state/``: everything needed to continue (model, optimizer, scheduler, every random generator,
  position inside the epoch, the checkpoints so far), saved atomically after every epoch and on
  SIGTERM. ``checkpoints/`` holds hard links to the kept checkpoints, re-made on resume: a
  workflow manager may delete its declared outputs after a failure, the state survives.

Started again after a kill, a run resumes from its state and ends with the weights an
uninterrupted run would have (bit for bit on CPU). SIGTERM (cluster preemption) saves the state
at the next batch boundary and raises :class:`TrainingInterrupted`, so the job fails and a retry
resumes. All randomness comes from generators seeded by ``config["seed"]``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm import tqdm

from diffsens import models
from diffsens._io import load_torch, save_torch, write_atomically, write_netcdf
from diffsens.data import PreparedData, add_noise, random_crop_flip

__all__ = ["DEFAULTS", "TrainingInterrupted", "load_checkpoint", "resolve_config", "train"]

DEFAULTS: dict = {
    "optimizer": "sgd",  # "sgd" (with momentum) or "adam"
    "lr": 0.1,
    "momentum": 0.9,  # sgd only
    "weight_decay": 5e-4,
    "decay_biases_and_norms": True,  # False: no weight decay on biases and normalisation weights
    "scheduler": "cosine",  # "cosine" (to 0 over the epochs) or "none"
    "epochs": 10,
    "batch_size": 128,
    "loss": "cross_entropy",  # or "hinge" (one output, labels +1/-1)
    "augmentation": "none",  # or "crop_flip": random crop with padding 4 + horizontal flip
    "training_noise": 0.0,  # norm of the Gaussian noise added to every training image
    "l2_penalty": 0.0,  # l2 * sum of squared weights, added to the optimised loss
    "stop_at_zero_loss": False,  # stop after an epoch whose mean data loss (no penalty) is 0
    "seed": 0,
    "device": "auto",  # "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"
    "mixed_precision": False,  # bfloat16 autocast on CUDA; ignored on CPU
    "save_epochs": [],  # extra checkpoints epoch_<N>.pt
    "eval_batch_size": 1000,
}
_CHOICES = {
    "optimizer": ("sgd", "adam"),
    "scheduler": ("cosine", "none"),
    "loss": ("cross_entropy", "hinge"),
    "augmentation": ("none", "crop_flip"),
}
_CROP_PADDING = 4


class TrainingInterrupted(RuntimeError):
    """Training stopped on SIGTERM after saving its state; running it again resumes."""


def resolve_config(config: dict) -> dict:
    """Fill in defaults and check every key and value, naming what is wrong."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown}; valid: {sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **config}
    for key, choices in _CHOICES.items():
        if cfg[key] not in choices:
            raise ValueError(
                f"training setting {key!r} must be one of {list(choices)}, got {cfg[key]!r}"
            )
    for key, low in (("epochs", 1), ("batch_size", 1), ("eval_batch_size", 1), ("seed", 0)):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"training setting {key!r} must be an integer >= {low}, got {value!r}")
    for key in ("lr", "momentum", "weight_decay", "training_noise", "l2_penalty"):
        value = cfg[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not value >= 0
            or not math.isfinite(value)
        ):
            raise ValueError(
                f"training setting {key!r} must be a finite number >= 0, got {value!r}"
            )
    if cfg["lr"] == 0:
        raise ValueError("training setting 'lr' must be > 0")
    for key in ("decay_biases_and_norms", "stop_at_zero_loss", "mixed_precision"):
        if not isinstance(cfg[key], bool):
            raise ValueError(f"training setting {key!r} must be true or false, got {cfg[key]!r}")
    epochs = cfg["save_epochs"]
    if not isinstance(epochs, list | tuple) or any(
        not isinstance(e, int) or not 0 < e <= cfg["epochs"] for e in epochs
    ):
        raise ValueError(f"'save_epochs' must list epochs in 1..{cfg['epochs']}, got {epochs!r}")
    cfg["save_epochs"] = sorted(set(epochs))
    device = cfg["device"]
    if device not in ("auto", "cpu") and not str(device).startswith("cuda"):
        raise ValueError(
            f"training setting 'device' must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}"
        )
    return cfg


def pick_device(name: str) -> torch.device:
    """CUDA when asked or (``"auto"``) available, else CPU; asking for absent CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for, but CUDA is not available here")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def build_model(model_spec: dict, data_shape: dict) -> nn.Module:
    """Build ``model_spec = {"name": ..., **options}`` for data of ``data_shape``."""
    if "name" not in model_spec:
        raise ValueError(f"the model spec needs a 'name', got {model_spec!r}")
    options = {k: v for k, v in model_spec.items() if k != "name"}
    return models.build(model_spec["name"], **data_shape, **options)


def _data_shape(data: PreparedData) -> dict:
    return {
        "in_channels": data.in_channels,
        "num_classes": data.num_classes,
        "input_size": data.input_size,
    }


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model stored in a checkpoint; returns ``(model, checkpoint_dict)``."""
    checkpoint = load_torch(path, "checkpoint")
    model = build_model(checkpoint["model_spec"], checkpoint["data_shape"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval(), checkpoint


def _optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    decayed, exempt = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            exempt_param = parameter.ndim <= 1 and not cfg["decay_biases_and_norms"]
            (exempt if exempt_param else decayed).append(parameter)
    groups = [{"params": decayed, "weight_decay": cfg["weight_decay"]}]
    if exempt:
        groups.append({"params": exempt, "weight_decay": 0.0})
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"])
    return torch.optim.Adam(groups, lr=cfg["lr"])


def _scheduler(optimizer, cfg: dict):
    if cfg["scheduler"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg["epochs"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def _loss_and_errors(output: torch.Tensor, target: torch.Tensor, loss: str):
    """Mean loss and the number of misclassified examples (a tensor, to avoid a sync)."""
    if loss == "hinge":
        score = output.float().squeeze(1)
        return torch.relu(1 - target * score).mean(), (score * target <= 0).sum()
    return nn.functional.cross_entropy(output.float(), target), (output.argmax(1) != target).sum()


@torch.no_grad()
def evaluate(model: nn.Module, images, labels, cfg: dict, device) -> float:
    """Test error of ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    errors = 0
    for start in range(0, len(images), cfg["eval_batch_size"]):
        x = images[start : start + cfg["eval_batch_size"]].to(device, non_blocking=True)
        y = labels[start : start + cfg["eval_batch_size"]].to(device, non_blocking=True)
        errors += int(_loss_and_errors(model(x), y, cfg["loss"])[1])
    model.train(was_training)
    return errors / len(images)


def _place(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Hold data on the training device when it fits comfortably, else in pinned host memory."""
    if device.type != "cuda":
        return tensor
    free, _ = torch.cuda.mem_get_info(device)
    return tensor.to(device) if tensor.nbytes < free / 4 else tensor.pin_memory()


@contextmanager
def _sigterm_flag():
    """Turn SIGTERM into a flag checked between batches (main thread only)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(
    model_spec: dict,
    data: PreparedData,
    config: dict,
    out_dir: str | os.PathLike,
    *,
    restart_on_change: bool = False,
) -> xr.Dataset:
    """Train ``model_spec`` on ``data`` with ``config`` (see :data:`DEFAULTS`); resume if possible.

    A saved state made with other settings (model, data or config) is an error, or, with
    ``restart_on_change``, discarded so that training starts over. Returns the history (also
    written to ``out_dir/history.nc``).
    """
    cfg = resolve_config(config)
    if cfg["loss"] == "hinge" and data.num_classes != 1:
        raise ValueError(
            f"loss 'hinge' needs +1/-1 labels (one output); "
            f"{data.name!r} has {data.num_classes} classes"
        )
    if cfg["loss"] == "cross_entropy" and data.num_classes == 1:
        raise ValueError(f"{data.name!r} has +1/-1 labels: use loss 'hinge'")
    if cfg["augmentation"] == "crop_flip" and data.train_images.ndim != 4:
        raise ValueError("augmentation 'crop_flip' needs 2-D images (N, C, H, W)")
    out = Path(out_dir)
    state_path = out / "state" / "state.pt"
    kept = out / "state" / "checkpoints"
    device = pick_device(cfg["device"])
    data_shape = _data_shape(data)

    torch.manual_seed(cfg["seed"])
    model = build_model(model_spec, data_shape).to(device)
    optimizer = _optimizer(model, cfg)
    scheduler = _scheduler(optimizer, cfg)
    order = torch.Generator().manual_seed(cfg["seed"])
    draws = torch.Generator(device=device).manual_seed(cfg["seed"] + 1)
    history = {
        key: [] for key in ("epoch", "train_loss", "train_error", "test_error", "lr", "time")
    }
    best = {"error": math.inf, "epoch": -1}
    position = None  # inside an interrupted epoch: permutation, next batch, running sums

    meta = {
        "model_spec": dict(model_spec),
        "data_shape": data_shape,
        "dataset": data.name,
        "config": cfg,
        "device": describe_device(device),
    }

    def checkpoint(name: str, epoch: int, test_error: float) -> None:
        payload = {
            **meta,
            "state_dict": model.state_dict(),
            "epoch": epoch,
            "test_error": test_error,
        }
        _publish(save_torch(payload, kept / f"{name}.pt"), out / "checkpoints")

    def save_state(epoch: int, finished: bool = False) -> None:
        save_torch(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                    "order": order.get_state(),
                    "draws": draws.get_state(),
                },
                "epoch": epoch,
                "best": best,
                "history": history,
                "position": position,
                "finished": finished,
                "settings": settings,
            },
            state_path,
        )

    train_x, train_y = _place(data.train_images, device), _place(data.train_labels, device)
    test_x, test_y = _place(data.test_images, device), _place(data.test_labels, device)
    fill = torch.tensor(data.fill, device=device)

    settings = {"config": cfg, "model_spec": dict(model_spec), "data": data.name, **data_shape}
    state = load_torch(state_path, "training state") if state_path.exists() else None
    if state is not None and state.get("settings") != settings:
        if not restart_on_change:
            raise ValueError(
                f"{state_path} was saved with other training settings; delete {out / 'state'} "
                "to start over"
            )
        shutil.rmtree(out / "state")
        state = None
    if state is not None:
        for path in sorted(kept.glob("*.pt")):
            _publish(path, out / "checkpoints")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        order.set_state(state["rng"]["order"])
        draws.set_state(state["rng"]["draws"])
        best, history, position = state["best"], state["history"], state["position"]
        first_epoch = state["epoch"] + 1 if position is None else state["epoch"]
        if state["finished"]:
            return _history_dataset(history, best, meta, out)
    else:
        init_error = evaluate(model, test_x, test_y, cfg, device)
        checkpoint("init", 0, init_error)
        for key, value in zip(
            history, (0, math.nan, math.nan, init_error, cfg["lr"], 0.0), strict=True
        ):
            history[key].append(value)
        save_state(0)
        first_epoch = 1

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cfg["mixed_precision"] and device.type == "cuda"
        else nullcontext()
    )
    n = len(train_x)
    bar = tqdm(range(first_epoch, cfg["epochs"] + 1), desc="train", unit="epoch", mininterval=5)
    with _sigterm_flag() as stop:
        for epoch in bar:
            start = time.perf_counter()
            if position is None:
                permutation = torch.randperm(n, generator=order)
                position = {"permutation": permutation, "batch": 0, "loss": 0.0, "errors": 0}
            batches = position["permutation"].split(cfg["batch_size"])
            loss_sum = torch.tensor(position["loss"], dtype=torch.float64, device=device)
            error_sum = torch.tensor(position["errors"], device=device)
            model.train()
            for b in range(position["batch"], len(batches)):
                index = batches[b].to(train_x.device)
                x = train_x[index].to(device, non_blocking=True)
                y = train_y[index].to(device, non_blocking=True)
                if cfg["augmentation"] == "crop_flip":
                    x = random_crop_flip(x, _CROP_PADDING, fill, draws)
                x = add_noise(x, cfg["training_noise"], draws)
                with autocast:
                    output = model(x)
                data_loss, errors = _loss_and_errors(output, y, cfg["loss"])
                loss = data_loss
                if cfg["l2_penalty"]:
                    loss = loss + cfg["l2_penalty"] * sum(
                        p.square().sum() for p in model.parameters()
                    )
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"training loss became {loss.item()} at epoch {epoch}, batch {b + 1}; "
                        f"lower the learning rate (lr={cfg['lr']}) or check the data"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += data_loss.detach() * len(index)
                error_sum += errors
                if stop.is_set():
                    position.update(batch=b + 1, loss=float(loss_sum), errors=int(error_sum))
                    save_state(epoch)
                    raise TrainingInterrupted(
                        f"SIGTERM at epoch {epoch}, batch {b + 1}: state saved to {state_path}; "
                        "run again to resume"
                    )
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            position = None
            train_loss = float(loss_sum) / n
            test_error = evaluate(model, test_x, test_y, cfg, device)
            row = (epoch, train_loss, int(error_sum) / n, test_error, lr)
            for key, value in zip(history, (*row, time.perf_counter() - start), strict=True):
                history[key].append(value)
            if test_error < best["error"]:
                best = {"error": test_error, "epoch": epoch}
                checkpoint("best", epoch, test_error)
            if epoch in cfg["save_epochs"]:
                checkpoint(f"epoch_{epoch}", epoch, test_error)
            checkpoint("last", epoch, test_error)
            done = epoch == cfg["epochs"] or (cfg["stop_at_zero_loss"] and train_loss == 0)
            save_state(epoch, finished=done)
            bar.set_postfix(loss=f"{train_loss:.4g}", test_error=f"{test_error:.4f}", refresh=False)
            if done:
                break
    return _history_dataset(history, best, meta, out)


def _publish(path: Path, folder: Path) -> None:
    """Hard-link (or copy, across file systems) a kept checkpoint into ``folder``, atomically."""

    def link(partial: Path) -> None:
        try:
            os.link(path, partial)
        except OSError:
            shutil.copyfile(path, partial)

    write_atomically(folder / path.name, link)


def _history_dataset(history: dict, best: dict, meta: dict, out: Path) -> xr.Dataset:
    epochs = np.asarray(history["epoch"], dtype=np.int64)
    units = {"train_loss": "1", "train_error": "1", "test_error": "1", "lr": "1", "time": "s"}
    names = {
        "train_loss": "mean training data loss over the epoch (without the L2 penalty)",
        "train_error": "training error over the epoch (augmented, noisy batches)",
        "test_error": "test error after the epoch",
        "lr": "learning rate during the epoch",
        "time": "wall time of the epoch",
    }
    ds = xr.Dataset(
        {
            key: (
                "epoch",
                np.asarray(history[key], dtype=np.float64),
                {"long_name": names[key], "units": units[key]},
            )
            for key in names
        },
        coords={"epoch": epochs},
        attrs={
            "model_spec": json.dumps(meta["model_spec"]),
            "dataset": meta["dataset"],
            "config": json.dumps(meta["config"]),
            "device": meta["device"],
            "best_epoch": best["epoch"],
            "best_test_error": best["error"],
        },
    )
    write_netcdf(ds, out / "history.nc")
    return ds
