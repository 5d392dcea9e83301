"""Training with checkpoints, a per-epoch history, and exact resumption after a kill.

``train(model_spec, data, config, out_dir, seed=...)`` writes under ``out_dir``:

* ``checkpoints/{init,best,last}.pt`` and ``checkpoints/epoch_<N>.pt`` for each listed epoch:
  self-describing and checksummed (docs/formats.md), reloaded by :func:`load_checkpoint`;
* ``history.nc``: train loss, train and test error, learning rate and time per epoch;
* ``state/<identity>/``: everything needed to continue (model, optimizer, scheduler, every random
  generator, position inside the epoch) and its own copies of the checkpoints, saved atomically
  after every epoch and on SIGTERM.

The published checkpoints are independent copies: deleting or corrupting one never touches the
state, and running again publishes them anew from it. A state lives in a folder named by a
digest of everything that determines the run (the data's contents, the model spec, the training
settings, the seed, the device type and the library's code): a run resumes only its own state,
and leaves those made otherwise where they are, so that going back to earlier settings publishes
their finished training again instead of retraining it (delete ``state/`` folders to free
space). A state found corrupted is discarded and training starts afresh, which the log says.

Started again after a kill, a run resumes from its state and ends with the weights an
uninterrupted run would have (bit for bit on CPU). SIGTERM (cluster preemption) saves the state
at the next batch boundary and raises :class:`TrainingInterrupted`, so the job fails and a retry
resumes. All randomness comes from generators seeded by ``seed``.
"""

from __future__ import annotations

import dataclasses
import filecmp
import logging
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

from diffsens.data import PreparedData, add_noise, random_crop_flip
from diffsens.io import (
    CorruptedFile,
    digest,
    load_torch,
    save_torch,
    write_atomically,
    write_netcdf,
)
from diffsens.models import build_spec, is_external, model_options
from diffsens.provenance import RunSettings, code_digest, software
from diffsens.runtime import describe_device, pick_device, terminal_progress
from diffsens.settings import SettingsError, canonical, resolve, training_conflicts

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainingInterrupted",
    "learning_rate",
    "load_checkpoint",
    "resolve_config",
    "ridge_penalty",
    "train",
    "validation_split",
]

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout described in docs/formats.md."""
_CROP_PADDING = 4
_HISTORY = ("epoch", "train_loss", "train_error", "test_error", "lr", "time", "validation_error")

log = logging.getLogger(__name__)


class TrainingInterrupted(RuntimeError):
    """Training stopped on SIGTERM after saving its state; running it again resumes."""


def resolve_config(config: dict | None = None) -> dict:
    """The training settings with the schema's defaults filled in; every value checked."""
    return resolve("training", config)


def train(
    model_spec: dict, data: PreparedData, config: dict, out_dir: str | os.PathLike, *, seed: int = 0
) -> xr.Dataset:
    """Train ``model_spec`` on ``data`` with ``config`` (the ``training`` settings); resume if
    a state of this very run exists. Returns the history (also written to ``history.nc``)."""
    cfg = resolve_config(config)
    problems = [f"{key}: {problem}" for key, problem in training_conflicts(cfg, data.shape)]
    if problems:
        raise SettingsError(problems)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    run = _Run(model_spec, data, cfg, seed, Path(out_dir))
    run.announce()
    found = (run.state_dir / "state.pt").exists()
    if not run.restore():
        if found:  # a discarded state may have reached the model or the random streams
            run = _Run(model_spec, data, cfg, seed, Path(out_dir))
        run.begin()
    if not run.finished:
        run.fit()
    run.publish()
    return run.history_dataset()


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    model: dict | None = None,
    data_shape: dict | None = None,
):
    """Rebuild the model stored in a checkpoint; returns ``(model, checkpoint_dict)``.

    A plain state dict (``torch.save(net.state_dict(), path)``) is rebuilt from ``model`` (a
    model spec) for ``data_shape`` (``in_channels``, ``num_classes``, ``input_size``); its
    description leaves what it cannot know empty: no training settings, seed, epoch, test error
    or dataset fingerprint.
    """
    checkpoint = load_torch(path, "checkpoint", state_dict=True)
    if "format" not in checkpoint:
        if not all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
            from diffsens.data import PreparedData

            prepared = set(checkpoint) == {f.name for f in dataclasses.fields(PreparedData)}
            raise ValueError(
                f"{os.fspath(path)!r} is "
                + ("a prepared dataset" if prepared else f"a mapping of {sorted(checkpoint)}")
                + ", not a checkpoint: give a diffsens checkpoint (results/train/.../"
                "checkpoints/NAME.pt) or a state dict (torch.save(net.state_dict(), path))"
            )
        if model is None or data_shape is None:
            raise ValueError(
                f"checkpoint {os.fspath(path)!r} is a plain state_dict: it does not say which "
                "network it holds; give its model spec (diffsens measure --model NAME)"
            )
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "model": canonical(model),
            "data_shape": dict(data_shape),
            "dataset": {"name": "unknown", "settings": {}, "fingerprint": ""},
            "training": {},
            "seed": None,
            "epoch": None,
            "test_error": None,
            "device": "unknown",
            "state_dict": checkpoint,
        }
    elif model is not None and canonical(model) != checkpoint.get("model"):
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} holds model {checkpoint.get('model')}, not {model}; "
            "a model spec is needed for plain state dicts only"
        )
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CorruptedFile(
            path,
            "checkpoint",
            f"has format {checkpoint.get('format')!r}, not {CHECKPOINT_FORMAT} (docs/formats.md)",
        )
    shape = checkpoint["data_shape"]
    model = build_spec(checkpoint["model"], **shape)
    differences = _differences(model.state_dict(), checkpoint["state_dict"])
    if differences:  # another network's weights, or a network made for other data
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} does not hold the weights of model "
            f"{checkpoint['model']} built for {shape['in_channels']} input channel(s), inputs "
            f"of size {shape['input_size']} and {shape['num_classes']} output(s): {differences}"
        )
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval(), checkpoint


def _differences(expected: dict, given: dict) -> str:
    """What a file's weights lack, add or shape otherwise than a model's, in a few words."""
    shaped = [
        f"{key} is {list(given[key].shape)} in the file, {list(value.shape)} in the model"
        for key, value in expected.items()
        if key in given and given[key].shape != value.shape
    ]
    found = {
        "missing": [key for key in expected if key not in given],
        "not in the model": [key for key in given if key not in expected],
        "of another shape": shaped,
    }
    return "; ".join(
        f"{len(keys)} {what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
        for what, keys in found.items()
        if keys
    )


class _Run:
    """One training run: the model and everything that moves it, with its files on disk."""

    def __init__(self, model_spec: dict, data: PreparedData, cfg: dict, seed: int, out: Path):
        self.cfg, self.seed, self.out = cfg, seed, out
        self.device = pick_device(cfg["device"])
        shape = data.shape
        self.data_shape = shape.network
        dataset = data.describe()
        # Everything that determines the run; a saved state with another identity is not resumed.
        self.identity = canonical(
            {
                "data": dataset["fingerprint"],
                "model": model_spec,
                "training": cfg,
                "seed": seed,
                "device": self.device.type,  # random streams differ between CPU and CUDA
                "code": code_digest(),
            }
        )
        self.state_dir = out / "state" / digest(self.identity)[:16]
        torch.manual_seed(seed)
        self.model = build_spec(model_spec, **self.data_shape).to(self.device)
        self.conv_weights = [
            m.weight for m in self.model.modules() if isinstance(m, nn.modules.conv._ConvNd)
        ]
        if cfg["ridge"] and not self.conv_weights:
            raise SettingsError([f"ridge: model {model_spec} has no conv layers to put it on"])
        self.optimizer = _optimizer(self.model, cfg, learning_rate(model_spec, cfg))
        self.scheduler = _scheduler(self.optimizer, cfg)
        self.order = torch.Generator().manual_seed(seed)
        self.draws = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.history = {key: [] for key in _HISTORY}
        self.best = {"error": math.inf, "epoch": -1}
        self.first_zero_loss = None  # the first epoch of zero training loss
        self.epoch = 0  # last epoch finished, or the one under way when ``position`` is set
        self.position = None  # inside an interrupted epoch: permutation, next batch, sums
        self.kept: list[str] = []
        self.finished = False
        self.description = {
            "format": CHECKPOINT_FORMAT,
            "model": canonical(model_spec),
            "data_shape": self.data_shape,
            "dataset": dataset,
            "training": cfg,
            "seed": seed,
            "device": describe_device(self.device),
        }
        images, labels = data.train_images, data.train_labels
        kept, held_out = validation_split(shape.n_train, cfg["validation"], seed)
        if len(held_out):  # (without, the training set is not copied)
            images, labels = images[kept], labels[kept]
        self.train_x = _place(images, self.device)
        self.train_y = _place(labels, self.device)
        self.validation_x = _place(data.train_images[held_out], self.device)
        self.validation_y = _place(data.train_labels[held_out], self.device)
        self.test_x = _place(data.test_images, self.device)
        self.test_y = _place(data.test_labels, self.device)
        self.fill = torch.tensor(data.fill, device=self.device)
        parameters = sum(p.numel() for p in self.model.parameters())
        self.summary = (
            f"{model_spec} ({parameters:,} parameters) on {data.name} ({shape.n_train} train, "
            f"{shape.n_test} test), {self.description['device']}, seed {seed}, into {out}"
        )

    def announce(self) -> None:
        """The log's first line: what is trained, on what, where, with which settings."""
        log.info("training %s", self.summary)
        log.info("settings: %s", ", ".join(f"{k} {v}" for k, v in self.cfg.items()))

    # -- restoring -----------------------------------------------------------------------------
    def restore(self) -> bool:
        """Continue from the saved state if it belongs to this very run; False to start afresh."""
        path = self.state_dir / "state.pt"
        if not path.exists():  # what is published here, if anything, is another run's
            self._note_other_states()
            shutil.rmtree(self.out / "checkpoints", ignore_errors=True)
            (self.out / "history.nc").unlink(missing_ok=True)
            return False
        try:
            state = load_torch(path, "training state")
            for name in state["kept"]:  # the copies to publish must be sound too
                load_torch(self._kept(name), "kept checkpoint")
        except (CorruptedFile, FileNotFoundError) as error:
            return self._discard(getattr(error, "problem", str(error)))
        if state.get("identity") != self.identity:  # a digest collision, or a state moved here
            return self._discard("it was made for another run")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"]["torch"])
            if self.device.type == "cuda" and state["rng"]["cuda"]:
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            self.order.set_state(state["rng"]["order"])
            self.draws.set_state(state["rng"]["draws"])
        except (KeyError, RuntimeError, ValueError) as error:  # a state of another version
            return self._discard(f"it does not fit this run ({type(error).__name__}: {error})")
        for key in ("best", "history", "position", "epoch", "kept", "finished", "first_zero_loss"):
            setattr(self, key, state[key])
        log.info(
            "resuming from %s: %s",
            path,
            "finished" if self.finished else f"epoch {self.epoch} of {self.cfg['epochs']}",
        )
        return True

    def _note_other_states(self) -> None:
        """Say in the log why a training with states beside it starts afresh: what differs."""
        others = sorted((self.out / "state").glob("*/state.pt"), key=os.path.getmtime)
        if not others:
            return
        try:
            saved = load_torch(others[-1], "training state").get("identity") or {}
        except (CorruptedFile, FileNotFoundError):
            saved = {}
        changed = [k for k in self.identity if saved.get(k) != self.identity[k]] or ["settings"]
        log.warning(
            "starting afresh: the latest state beside, %s, was made with another %s; it is "
            "kept (with %d other(s)): running with its settings again publishes it without "
            "retraining; delete the state folders you no longer need",
            others[-1].parent,
            " and ".join(changed),
            len(others) - 1,
        )

    def _discard(self, why: str) -> bool:
        """Forget the saved state and what was published from it; training starts afresh."""
        log.warning("not resuming from %s: %s; starting afresh", self.state_dir, why)
        for stale in (self.state_dir, self.out / "checkpoints"):
            shutil.rmtree(stale, ignore_errors=True)
        (self.out / "history.nc").unlink(missing_ok=True)
        return False

    # -- the epoch loop ------------------------------------------------------------------------
    def begin(self) -> None:
        """Checkpoint the initial net (epoch 0) and save the first state."""
        init_error = evaluate(self.model, self.test_x, self.test_y, self.cfg, self.device)
        self._checkpoint("init", 0, init_error)
        lr = self.optimizer.param_groups[0]["lr"]
        self._record(0, math.nan, math.nan, init_error, lr, 0.0, self._validation_error())
        self._save_state()
        log.info("epoch 0: test error %.4f (initialisation)", init_error)

    def fit(self) -> None:
        """Run the remaining epochs; SIGTERM saves the state and raises TrainingInterrupted."""
        first = self.epoch if self.position is not None else self.epoch + 1
        started = time.perf_counter()
        with _sigterm_flag() as stop:
            for epoch in range(first, self.cfg["epochs"] + 1):
                self.epoch = epoch
                train_loss, train_error, lr, seconds = self._train_epoch(stop)
                test_error = evaluate(self.model, self.test_x, self.test_y, self.cfg, self.device)
                validation_error = self._validation_error()
                self._record(
                    epoch, train_loss, train_error, test_error, lr, seconds, validation_error
                )
                self._end_epoch(epoch, train_loss, test_error, validation_error)
                remaining = (time.perf_counter() - started) / (epoch - first + 1)
                log.info(
                    "epoch %d/%d: loss %.4g, train error %.4f, test error %.4f%s, lr %.3g, "
                    "%.1f s, at most %.0f s left",
                    epoch,
                    self.cfg["epochs"],
                    train_loss,
                    train_error,
                    test_error,
                    ""
                    if math.isnan(validation_error)
                    else f", validation error {validation_error:.4f}",
                    lr,
                    seconds,
                    remaining * (self.cfg["epochs"] - epoch),
                )
                if self.finished:
                    break
        why = "the zero-loss rule" if self.epoch < self.cfg["epochs"] else "last epoch"
        log.info(
            "finished after epoch %d (%s); best test error %.4f at epoch %d",
            self.epoch,
            why,
            self.best["error"],
            self.best["epoch"],
        )

    def _train_epoch(self, stop: threading.Event) -> tuple[float, float, float, float]:
        """One pass over the training set (from where an interrupted pass stopped)."""
        cfg, device, n = self.cfg, self.device, len(self.train_x)
        start = time.perf_counter()
        if self.position is None:
            permutation = torch.randperm(n, generator=self.order)
            self.position = {"permutation": permutation, "batch": 0, "loss": 0.0, "errors": 0}
        batches = self.position["permutation"].split(cfg["batch_size"])
        loss_sum = torch.tensor(self.position["loss"], dtype=torch.float64, device=device)
        error_sum = torch.tensor(self.position["errors"], device=device)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if cfg["mixed_precision"] and device.type == "cuda"
            else nullcontext()
        )
        self.model.train()
        bar = terminal_progress(
            range(self.position["batch"], len(batches)),
            f"epoch {self.epoch}/{cfg['epochs']}",
            initial=self.position["batch"],
            total=len(batches),
        )
        for b in bar:
            index = batches[b].to(self.train_x.device)
            x = self.train_x[index].to(device, non_blocking=True)
            y = self.train_y[index].to(device, non_blocking=True)
            if cfg["augmentation"] != "none":
                flip = cfg["augmentation"] == "crop_flip"
                x = random_crop_flip(x, _CROP_PADDING, self.fill, self.draws, flip=flip)
            x = add_noise(x, cfg["training_noise"], self.draws)
            with autocast:
                output = self.model(x)
            data_loss, errors = _loss_and_errors(output, y, cfg["loss"])
            loss = data_loss
            if cfg["l2_penalty"]:
                penalty = sum(p.square().sum() for p in self.model.parameters())
                loss = loss + cfg["l2_penalty"] * penalty
            if cfg["ridge"]:
                loss = loss + cfg["ridge"] * ridge_penalty(self.conv_weights)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss.item()} at epoch {self.epoch}, batch {b + 1}; "
                    f"lower the learning rate (lr={cfg['lr']}) or check the data"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += data_loss.detach() * len(index)
            error_sum += errors
            if stop.is_set():
                self._interrupt(b + 1, loss_sum, error_sum)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.position = None
        return float(loss_sum) / n, int(error_sum) / n, lr, time.perf_counter() - start

    def _validation_error(self) -> float:
        if not len(self.validation_x):
            return math.nan
        return evaluate(self.model, self.validation_x, self.validation_y, self.cfg, self.device)

    def _end_epoch(
        self, epoch: int, train_loss: float, test_error: float, validation_error: float
    ) -> None:
        if test_error < self.best["error"]:
            self.best = {"error": test_error, "epoch": epoch}
            self._checkpoint("best", epoch, test_error)
        if epoch in self.cfg["save_epochs"]:
            self._checkpoint(f"epoch_{epoch}", epoch, test_error)
        self._checkpoint("last", epoch, test_error)
        if train_loss == 0 and self.first_zero_loss is None:
            self.first_zero_loss = epoch
        self.finished = epoch == self.cfg["epochs"] or (
            self.cfg["stop_at_zero_loss"]
            and train_loss == 0
            and not validation_error > 0  # zero, or no validation set (NaN)
            and epoch >= self.cfg["zero_loss_multiple"] * self.first_zero_loss
        )
        self._save_state()

    def _record(self, *row) -> None:
        for key, value in zip(self.history, row, strict=True):
            self.history[key].append(value)

    # -- interruption --------------------------------------------------------------------------
    def _interrupt(self, next_batch: int, loss_sum, error_sum) -> None:
        self.position.update(batch=next_batch, loss=float(loss_sum), errors=int(error_sum))
        self._save_state()
        raise TrainingInterrupted(
            f"SIGTERM at epoch {self.epoch}, batch {next_batch}: state saved to "
            f"{self.state_dir / 'state.pt'}; run again to resume"
        )

    def _save_state(self) -> None:
        save_torch(
            {
                "identity": self.identity,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                    "order": self.order.get_state(),
                    "draws": self.draws.get_state(),
                },
                "epoch": self.epoch,
                "best": self.best,
                "first_zero_loss": self.first_zero_loss,
                "history": self.history,
                "position": self.position,
                "kept": self.kept,
                "finished": self.finished,
            },
            self.state_dir / "state.pt",
        )

    # -- publishing ----------------------------------------------------------------------------
    def _kept(self, name: str) -> Path:
        return self.state_dir / "checkpoints" / f"{name}.pt"

    def _checkpoint(self, name: str, epoch: int, test_error: float) -> None:
        """Keep a checkpoint in the state (published with the others by :meth:`publish`)."""
        payload = {
            **self.description,
            "state_dict": self.model.state_dict(),
            "epoch": epoch,
            "test_error": test_error,
        }
        save_torch(payload, self._kept(name))
        self.kept = [*dict.fromkeys([*self.kept, name])]

    def publish(self) -> None:
        """Copy every kept checkpoint out of the state (where missing or different)."""
        folder = self.out / "checkpoints"
        for name in self.kept:
            kept, published = self._kept(name), folder / f"{name}.pt"
            if not (published.exists() and filecmp.cmp(kept, published, shallow=False)):
                write_atomically(published, lambda partial, k=kept: shutil.copyfile(k, partial))
        log.info("wrote %s (%s) and %s", folder, ", ".join(self.kept), self.out / "history.nc")

    def history_dataset(self) -> xr.Dataset:
        return _history_dataset(self.history, self.best, self.description, self.out)


def validation_split(n: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(kept, held_out)`` indices of ``n`` training examples: ``count`` of them held out as a
    validation set, the first of a permutation seeded by ``seed``; the rest kept, in order."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[count:].sort()[0], order[:count]


def learning_rate(model_spec: dict, cfg: dict) -> float:
    """The optimizer's rate: ``lr``, times the model's width with ``lr_per_width``."""
    if not cfg["lr_per_width"]:
        return cfg["lr"]
    name = model_spec["name"]
    options = {} if is_external(name) else model_options(name)
    width = model_spec.get("width", options.get("width"))
    if width is None:
        raise SettingsError([f"lr_per_width: model {name!r} has no width option"])
    return cfg["lr"] * width


def ridge_penalty(weights: list[torch.Tensor]) -> torch.Tensor:
    """The authors' ridge without its coefficient: the mean over conv layers of the squared norm
    of each weight over its number of output channels."""
    return sum(w.square().sum() / w.shape[0] for w in weights) / len(weights)


def _optimizer(model: nn.Module, cfg: dict, lr: float) -> torch.optim.Optimizer:
    decayed, exempt = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            exempt_param = parameter.ndim <= 1 and not cfg["decay_biases_and_norms"]
            (exempt if exempt_param else decayed).append(parameter)
    groups = [{"params": decayed, "weight_decay": cfg["weight_decay"]}]
    if exempt:
        groups.append({"params": exempt, "weight_decay": 0.0})
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg["momentum"])
    return torch.optim.Adam(groups, lr=lr)


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


def _history_dataset(history: dict, best: dict, description: dict, out: Path) -> xr.Dataset:
    epochs = np.asarray(history["epoch"], dtype=np.int64)
    units = {"time": "s"}
    names = {
        "train_loss": "mean training data loss over the epoch (without the L2 penalty)",
        "train_error": "training error over the epoch (augmented, noisy batches)",
        "test_error": "test error after the epoch",
        "validation_error": "error on the held-out training examples after the epoch (NaN: none)",
        "lr": "learning rate during the epoch",
        "time": "wall time of the epoch",
    }
    ds = xr.Dataset(
        {
            key: (
                "epoch",
                np.asarray(history[key], dtype=np.float64),
                {"long_name": names[key], "units": units.get(key, "1")},
            )
            for key in names
        },
        coords={"epoch": epochs},
        attrs={
            **RunSettings.from_checkpoint(description).to_attrs(),
            **software(),
            "seed": description["seed"],
            "device": description["device"],
            "best_epoch": best["epoch"],
            "best_test_error": best["error"],
        },
    )
    write_netcdf(ds, out / "history.nc")
    return ds
