"""What a config costs before it runs: trainings, epochs, measurements and GPU-hours per network.

Each variant's work is counted from its settings (trainings = seeds; epochs = seeds x the epoch
cap, which a stop at zero loss may cut short; measurements = seeds x checkpoints x conditions,
each one clean, one deformed and one noisy pass over the probes at every displacement). Seconds
come from a calibration table measured on the device the grid will use (:func:`read_calibration`,
one row per network) or, where the table has no row, from a conservative model (docs/cluster.md):

* a training image costs three forward passes' FLOPs (forward and backward) at
  :data:`CONSERVATIVE` ``flops_per_second``, and every optimiser step ``seconds_per_step`` of
  kernel launches besides, which is what small nets at batch 8 are bound by;
* an inference image (the test set after each epoch, the probes) costs one forward pass.

A network's FLOPs are counted by running it once on PyTorch's meta device: nothing is computed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Collection, Mapping

import pandas as pd

from diffsens.config import Config
from diffsens.io import CorruptedFile, read_table
from diffsens.settings import displacement_count

logger = logging.getLogger(__name__)

__all__ = [
    "CALIBRATION_COLUMNS",
    "CALIBRATION_STEPS",
    "CONSERVATIVE",
    "SHORT_TRAINING_S",
    "Costs",
    "calibrate",
    "calibration_networks",
    "cost_line",
    "cost_markdown",
    "data_mb",
    "estimate_cost",
    "forward_flops",
    "memory_mb",
    "minutes",
    "network_name",
    "read_calibration",
]

CONSERVATIVE = {"flops_per_second": 10e12, "seconds_per_step": 0.005}
"""The model's rates: about a tenth of what one H100 sustains on a large net in float32 (tensor
cores), and 5 ms of launches and Python per optimiser step, several times what a small net
takes there."""

SHORT_TRAINING_S = 15 * 60
"""Trainings estimated at most this long (every epoch up to the cap) are short: on a cluster
several of them share one allocation, one after another, instead of queueing one by one."""

CALIBRATION_COLUMNS = {"network": str, "train_image_s": float, "inference_image_s": float}
"""A calibration table: per network, the seconds of one training image (at the batch size it
was timed with) and of one inference image; a column ``device`` may name what timed them
(:func:`calibrate` writes it)."""

CALIBRATION_STEPS = 200
"""Training steps (and as many inference batches) timed per network: seconds on a GPU."""
RELIABLE_STEPS = 20
"""Fewer timed steps than this leave a calibration to the noise of the first kernels."""


def network_name(dataset: str, model: Mapping) -> str:
    """``dataset:name(option=value, ...)`` with the options the spec sets."""
    options = {key: value for key, value in model.items() if key != "name"}
    text = ", ".join(f"{key}={value}" for key, value in sorted(options.items()))
    return f"{dataset}:{model['name']}" + (f"({text})" if text else "")


def data_mb(shape) -> float:
    """Megabytes of a prepared dataset of ``shape`` (a ``DataShape``) in memory: every train
    and test image in float32, as training and measurement jobs load it."""
    return (
        4 * (shape.n_train + shape.n_test) * shape.in_channels * shape.input_size**shape.dims / 1e6
    )


def forward_flops(model: Mapping, shape) -> float:
    """FLOPs of one forward pass of one image through ``model`` (a spec) on data of ``shape``
    (a ``DataShape``), counted on the meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from diffsens.models import build_spec

    with torch.device("meta"):
        net = build_spec(dict(model), **shape.network)
        image = torch.empty(1, shape.in_channels, *[shape.input_size] * shape.dims)
    with FlopCounterMode(display=False) as counter:
        net(image)
    return float(counter.get_total_flops())


def read_calibration(path) -> dict[str, dict]:
    """A calibration table (:data:`CALIBRATION_COLUMNS`) by network name, its seconds checked
    (finite and > 0), with the ``device`` that timed them (``"an unnamed device"`` without
    that column)."""
    what = "calibration table"
    table = read_table(path, what, columns=CALIBRATION_COLUMNS)
    rows = {}
    for number, row in enumerate(table.to_dict("records"), start=2):  # line 1: the header
        for column in ("train_image_s", "inference_image_s"):
            if not (math.isfinite(row[column]) and row[column] > 0):
                raise CorruptedFile(
                    path,
                    what,
                    f"line {number} ({row['network']}): {column} is {row[column]}",
                    "seconds per image must be finite and > 0; fix that row or time the "
                    "networks again (diffsens calibrate)",
                )
        device = row.get("device")
        rows[row["network"]] = {
            "train_image_s": row["train_image_s"],
            "inference_image_s": row["inference_image_s"],
            "device": device if isinstance(device, str) and device else "an unnamed device",
        }
    return rows


class Costs:
    """Seconds of a config's jobs, variant by variant: from ``calibration`` where it has the
    network, else from the conservative model (each network's FLOPs counted once)."""

    def __init__(
        self, config: Config, calibration: Mapping[str, Mapping[str, float]] | None = None
    ):
        self.config = config
        self.calibration = dict(calibration or {})
        self._flops: dict[str, float] = {}

    def variant(self, experiment: str, variant: str) -> dict:
        """``network``, ``source``, ``epoch_s`` (one epoch, with its evaluations), ``epochs``
        (the cap), ``measure_s`` (one checkpoint in one condition) and ``measurements`` (per
        training seed) of one variant."""
        dataset = self.config.dataset_of(experiment)
        shape = self.config.shape(dataset)
        settings = self.config.variant(experiment, variant)
        training, measure = settings["training"], settings["measure"]
        name = network_name(dataset, settings["model"])
        per_image = self.calibration.get(name)
        if per_image is None:
            if name not in self._flops:
                self._flops[name] = forward_flops(settings["model"], shape)
            per_image = _modelled(self._flops[name], training["batch_size"])
        displacements = displacement_count(measure)
        return {
            "network": name,
            "source": f"calibrated on {per_image['device']}"
            if name in self.calibration
            else "model",
            "epoch_s": (shape.n_train - training["validation"]) * per_image["train_image_s"]
            + (shape.n_test + training["validation"]) * per_image["inference_image_s"],
            "epochs": training["epochs"],
            "measure_s": measure["probes"]
            * (1 + 2 * displacements)
            * per_image["inference_image_s"],
            "measurements": len(measure["checkpoints"]) * len(measure["conditions"]),
            "data_mb": data_mb(shape),
        }

    def table(self) -> pd.DataFrame:
        """One row per network: trainings, epochs, measurements, the seconds of an epoch and of
        a measurement (of its first variant), their source (``calibrated on DEVICE`` or
        ``model``) and the GPU-hours of all of its work."""
        rows: dict[str, dict] = {}
        for experiment in self.config.raw["experiments"]:
            seeds = len(self.config.seeds(experiment))
            for variant in self.config.variants(experiment):
                job = self.variant(experiment, variant)
                row = rows.setdefault(
                    job["network"],
                    {
                        "network": job["network"],
                        "trainings": 0,
                        "epochs": 0,
                        "measurements": 0,
                        "epoch_s": job["epoch_s"],
                        "measure_s": job["measure_s"],
                        "source": job["source"],
                        "gpu_hours": 0.0,
                    },
                )
                row["trainings"] += seeds
                row["epochs"] += seeds * job["epochs"]
                row["measurements"] += seeds * job["measurements"]
                seconds = job["epochs"] * job["epoch_s"] + job["measurements"] * job["measure_s"]
                row["gpu_hours"] += seeds * seconds / 3600
        return pd.DataFrame(list(rows.values()))

    def training_s(self, experiment: str, variant: str) -> float:
        """Seconds of one training of a variant, every epoch up to its cap."""
        job = self.variant(experiment, variant)
        return job["epochs"] * job["epoch_s"]


def estimate_cost(
    config: Config, calibration: Mapping[str, Mapping[str, float]] | None = None
) -> pd.DataFrame:
    """One row per network of ``config`` (:meth:`Costs.table`)."""
    return Costs(config, calibration).table()


def calibration_networks(config: Config, datasets: Collection[str] = ()) -> dict[str, dict]:
    """What :func:`calibrate` times, by network name: each network of ``config`` (on
    ``datasets`` only, if given) with its first variant's batch size and its data's shape."""
    networks: dict[str, dict] = {}
    for experiment in config.raw["experiments"]:
        dataset = config.dataset_of(experiment)
        if datasets and dataset not in datasets:
            continue
        for variant in config.variants(experiment):
            settings = config.variant(experiment, variant)
            networks.setdefault(
                network_name(dataset, settings["model"]),
                {
                    "model": settings["model"],
                    "batch_size": settings["training"]["batch_size"],
                    "shape": dataclasses.asdict(config.shape(dataset)),
                },
            )
    return networks


def calibrate(
    networks: Mapping[str, Mapping], device: str = "auto", steps: int = CALIBRATION_STEPS
) -> pd.DataFrame:
    """A calibration table (:data:`CALIBRATION_COLUMNS`) measured here: for each of
    ``networks`` (:func:`calibration_networks`), the seconds of ``steps`` bare training steps
    (forward, loss, backward, SGD) at its batch size and of as many inference batches, on random
    inputs of its data's shape, after a few unmeasured steps. Per image, so that other set
    sizes scale."""
    import torch

    from diffsens.data import DataShape
    from diffsens.runtime import pick_device

    place = pick_device(device)
    if steps < RELIABLE_STEPS:
        logger.warning(
            "timing %d steps per network leaves the table to the noise of the first kernels; "
            "time at least %d (the default is %d)",
            steps,
            RELIABLE_STEPS,
            CALIBRATION_STEPS,
        )
    named = torch.cuda.get_device_name(place) if place.type == "cuda" else place.type
    rows = []
    for name, network in networks.items():
        batch = network["batch_size"]
        shape = DataShape(**network["shape"])
        train_s, inference_s = _time_network(network["model"], shape, batch, place, steps)
        rows.append(
            {
                "network": name,
                "train_image_s": train_s / batch,
                "inference_image_s": inference_s / batch,
                "device": named,
            }
        )
    return pd.DataFrame(rows, columns=[*CALIBRATION_COLUMNS, "device"])


def _time_network(model: Mapping, shape, batch: int, device, steps: int) -> tuple[float, float]:
    """Seconds of one training step and of one inference pass of a batch of random inputs."""
    import torch

    from diffsens.models import build_spec

    torch.manual_seed(0)
    net = build_spec(dict(model), **shape.network).to(device)
    x = torch.randn(batch, shape.in_channels, *[shape.input_size] * shape.dims, device=device)
    if shape.num_classes == 1:
        y = torch.ones(batch, device=device)

        def loss(out):
            return torch.relu(1 - y * out.squeeze(1)).mean()

    else:
        y = torch.randint(shape.num_classes, (batch,), device=device)

        def loss(out):
            return torch.nn.functional.cross_entropy(out, y)

    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss(net(x)).backward()
        optimizer.step()

    def infer():
        with torch.inference_mode():
            net(x)

    return _timed(step, steps, device), _timed(infer, steps, device)


def _timed(work, steps: int, device) -> float:
    """Seconds of one call of ``work``, the mean of ``steps`` after a few unmeasured ones."""
    import time

    import torch

    def wait():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(max(2, steps // 10)):
        work()
    wait()
    start = time.perf_counter()
    for _ in range(steps):
        work()
    wait()
    return (time.perf_counter() - start) / steps


def minutes(seconds: float, attempt: int = 1) -> int:
    """A job's time limit: twice the estimate plus 10 minutes of start-up, whole minutes, times
    the attempt (a retry of a job that ran out of time asks for more)."""
    return math.ceil((2 * seconds + 600) / 60) * attempt


def memory_mb(data_mb: float, attempt: int = 1) -> int:
    """A job's host memory: 4 GB for Python, PyTorch and CUDA's libraries, plus three copies of
    its dataset (the loaded file, the training split, its pinned copy for the GPU), times the
    attempt (a retry of a job that ran out of memory asks for more)."""
    return math.ceil(4000 + 3 * data_mb) * attempt


def _modelled(flops: float, batch_size: int) -> dict[str, float]:
    """Seconds per training and per inference image under :data:`CONSERVATIVE`."""
    rate = CONSERVATIVE["flops_per_second"]
    return {
        "train_image_s": 3 * flops / rate + CONSERVATIVE["seconds_per_step"] / batch_size,
        "inference_image_s": flops / rate,
    }


def cost_markdown(table: pd.DataFrame) -> str:
    """The cost as a pipe table, with the total and where its seconds come from."""
    lines = [
        "| network | trainings | epochs (at most) | measurements | s / epoch | s / measurement "
        "| seconds from | GPU-hours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        lines.append(
            f"| `{r.network}` | {r.trainings} | {r.epochs} | {r.measurements} | "
            f"{r.epoch_s:.3g} | {r.measure_s:.3g} | {r.source} | {_hours(r.gpu_hours)} |"
        )
    sources = " and ".join(sorted(set(table.source)))
    lines.append(
        f"| **total** | {table.trainings.sum()} | {table.epochs.sum()} | "
        f"{table.measurements.sum()} | | | {sources} | {_hours(table.gpu_hours.sum())} |"
    )
    return "\n".join(lines) + "\n"


def cost_line(table: pd.DataFrame, calibration: Collection[str] = ()) -> str:
    """The total in one sentence, saying where its seconds come from, and which networks of the
    ``calibration`` the config does not train (a misspelled name, a table of another config)."""
    sources = sorted(set(table.source))
    unused = sorted(set(calibration) - set(table.network))
    return (
        f"{_hours(table.gpu_hours.sum())} GPU-hours at most (epochs at their caps), seconds from "
        + " and ".join(sources)
        + (" (the conservative model: docs/cluster.md)" if "model" in sources else "")
        + ("; timed on a CPU, not on a GPU" if "calibrated on cpu" in sources else "")
        + (f"; the calibration's {unused} match no network here, unused" if unused else "")
    )


def _hours(hours: float) -> str:
    """Hours to one decimal, or to two significant digits below one hour (never a bare 0.0)."""
    return f"{hours:.1f}" if hours >= 1 else f"{hours:.2g}"
