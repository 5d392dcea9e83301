"""Sensitivities of a training run's checkpoints: one seed's slice of a cube.

:func:`measure_run` probes every checkpoint of one run (``init``, ``best``, ...) at its model's
probe points on the same test images, for the original net and its channel-shuffled twin, and
describes the result as a cube does (:class:`diffsens.provenance.RunSettings`, taken from the
checkpoints); :func:`diffsens.cubes.collect` stacks the seeds. The workflow's measure jobs and the
``diffsens measure`` command both use it, so their cubes carry the same description.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from diffsens.data import PreparedData, add_noise, probe_set
from diffsens.diffeo import log_spaced_temperatures, temperature_for_displacement
from diffsens.pooling import shuffle_channels
from diffsens.provenance import RunSettings
from diffsens.runtime import describe_device, pick_device, terminal_progress
from diffsens.sensitivity import measure
from diffsens.settings import SettingsError, measure_conflicts, resolve
from diffsens.train import evaluate, load_checkpoint

log = logging.getLogger(__name__)

__all__ = ["measure_run"]

_SAMPLING = (
    "probes",
    "probe_seed",
    "temperatures",
    "deltas",
    "checkpoints",
    "conditions",
    "device",
)
"""Measure settings that :func:`measure_run` handles itself; the rest go to ``measure()``."""


def measure_run(
    checkpoints: Mapping[str, str | os.PathLike],
    data: PreparedData,
    settings: Mapping | None = None,
    *,
    seed: int | None = None,
    other_data: bool = False,
    model: Mapping | None = None,
) -> xr.Dataset:
    """Sensitivities of one training run: ``checkpoint x condition x layer x temperature``.

    ``checkpoints`` maps names ("init", "best", ...) to checkpoint files of one run; every
    checkpoint is probed at its model's ``probe_points`` on the same test images of ``data``.
    ``settings`` are the ``measure`` settings (``diffsens.settings``; defaults filled in, the
    ``checkpoints`` key is taken from ``checkpoints``): ``temperatures`` is a count (log-spaced
    over [T_min, T_max] for the images' size and ``cut``) or explicit values (ignored by the
    discrete moves ``pixel_move`` and ``shift``); ``"shuffled"`` measures the net with its conv
    input channels permuted (:func:`diffsens.pooling.shuffle_channels`), ``"noisy"`` measures it
    on probes carrying its training noise and adds its error on the test set carrying that noise
    (``noisy_test_error``), ``"channel_mean"`` measures it with every probed layer averaged
    over its channels. ``seed`` seeds the deformations, the noise and the shuffle (default:
    the checkpoints' training seed, as the workflow does; the run records both as ``seed`` and
    ``training_seed``). Probing data other
    than the checkpoints' training data is refused unless ``other_data``, and so are probes the
    network cannot take. Checkpoints that are plain state dicts are rebuilt from ``model`` (a
    model spec) for the shape of ``data``; their test error is measured on ``data``'s test set,
    their epoch is -1 (unknown), and their training seed is taken to be ``seed`` (default 0).
    """
    given = {key: value for key, value in (settings or {}).items() if key != "checkpoints"}
    cfg = {**resolve("measure", given), "checkpoints": list(checkpoints)}  # any names here
    shape = data.shape
    problems = [f"{key}: {problem}" for key, problem in measure_conflicts(cfg, shape)]
    paths = [Path(path).resolve() for path in checkpoints.values()]
    if len(set(paths)) < len(paths):
        problems.append(f"checkpoints: the same file is given twice ({dict(checkpoints)})")
    if problems:
        raise SettingsError(problems)
    device = pick_device(cfg["device"])
    images, _ = probe_set(data, cfg["probes"], seed=cfg["probe_seed"])
    n = images.shape[-1]
    if cfg["deformation"] != "diffeo":
        cfg["temperatures"] = cfg["deltas"] = None  # one fixed move: no temperature axis
    elif cfg["deltas"] is not None:
        cfg["temperatures"] = [
            temperature_for_displacement(d, cfg["cut"], n) for d in cfg["deltas"]
        ]
    temperatures = cfg["temperatures"]
    if isinstance(temperatures, int):
        temperatures = log_spaced_temperatures(n, cfg["cut"], temperatures)
    options = {key: value for key, value in cfg.items() if key not in _SAMPLING}
    dataset = data.describe()
    loaded = {
        name: load_checkpoint(path, device, model=model, data_shape=shape.network)
        for name, path in checkpoints.items()
    }
    training_seed, run_settings = _one_run(checkpoints, loaded)
    first = next(iter(checkpoints.values()))
    _check_data(run_settings.dataset, dataset, first, other_data)
    _check_fit(next(iter(loaded.values()))[0], images[:1].to(device), first)
    if training_seed is None:  # a plain state dict
        training_seed = 0 if seed is None else seed
    seed = training_seed if seed is None else seed
    log.info(
        "measuring %s of %s (training seed %d) on %d probes of %s, %s, %s, seed %d, on %s",
        ", ".join(checkpoints),
        run_settings.model,
        training_seed,
        len(images),
        dataset["name"],
        " and ".join(cfg["conditions"]),
        f"{cfg['deformation']} at T = {', '.join(f'{t:.3g}' for t in temperatures)}"
        if cfg["deformation"] == "diffeo"
        else f"{cfg['deformation']} moves",
        seed,
        describe_device(device),
    )
    noise = run_settings.training.get("training_noise", 0.0)
    noisy = _noisy_test_set(data, noise, cfg) if "noisy" in cfg["conditions"] else None
    by_checkpoint = []
    bar = terminal_progress(None, "measuring", total=len(loaded) * len(cfg["conditions"]))
    for name, (network, _) in loaded.items():
        by_condition = []
        for condition in cfg["conditions"]:
            bar.set_postfix_str(f"{name}, {condition}")
            start = time.perf_counter()
            net = shuffle_channels(network, seed=seed) if condition == "shuffled" else network
            result = measure(
                net,
                noisy.probes if condition == "noisy" else images,
                temperatures=temperatures,
                layers=network.probe_points,
                channel_mean=condition == "channel_mean",
                seed=seed,
                **options,
            )
            R = result.R.isel(temperature=-1).values
            log.info(
                "%s, %s: %d probe points in %.1f s; at the largest move R is %.3g (first), "
                "%.3g (output)",
                name,
                condition,
                len(R),
                time.perf_counter() - start,
                R[0],
                R[-1],
            )
            by_condition.append(result)
            bar.update()
        by_checkpoint.append(xr.concat(by_condition, pd.Index(cfg["conditions"], name="condition")))
    bar.close()
    run = xr.concat(
        by_checkpoint, pd.Index(list(checkpoints), name="checkpoint"), combine_attrs="override"
    )
    test_errors = [
        _test_error(net, data, device)
        if checkpoint["test_error"] is None
        else checkpoint["test_error"]
        for net, checkpoint in loaded.values()
    ]
    run["test_error"] = ("checkpoint", np.asarray(test_errors, dtype=np.float64))
    run.test_error.attrs = {"long_name": "test error of the checkpoint", "units": "1"}
    run.attrs["at_chance"] = json.dumps(
        _at_chance(loaded, test_errors, shape.num_classes, model or run_settings.model)
    )
    if noisy is not None:
        errors = [_test_error(net, data, device, noisy.images) for net, _ in loaded.values()]
        run["noisy_test_error"] = ("checkpoint", np.asarray(errors, dtype=np.float64))
        run.noisy_test_error.attrs = {
            "long_name": f"test error of the checkpoint on the test set carrying its training "
            f"noise (norm {noise:g})",
            "units": "1",
        }
    epochs = [
        -1 if checkpoint["epoch"] is None else checkpoint["epoch"]
        for _, checkpoint in loaded.values()
    ]
    run["epoch"] = ("checkpoint", np.asarray(epochs, dtype=np.int64))
    run.epoch.attrs = {"long_name": "training epoch of the checkpoint", "units": "1"}
    run.checkpoint.attrs = {
        "long_name": "checkpoint: init, best (lowest test error), last, epoch_N"
    }
    run.condition.attrs = {
        "long_name": "original: the net as trained; shuffled: the input channels of each of its "
        "conv layers permuted (diffsens.pooling.shuffle_channels); noisy: the net as trained, "
        "probed on test images carrying its training noise; channel_mean: the net as trained, "
        "each probed layer averaged over its channels"
    }
    run.layer.attrs = {"long_name": "probe point (module path), input to output"}
    described = RunSettings(
        model=run_settings.model,
        training=run_settings.training,
        dataset=dataset,
        measure=cfg,
    )
    run.attrs.update(
        described.to_attrs(),
        seed=seed,
        training_seed=training_seed,
        device=describe_device(device),
    )
    if dataset != run_settings.dataset:
        run.attrs["training_dataset"] = json.dumps(run_settings.dataset, sort_keys=True)
    return run


def _one_run(checkpoints: Mapping, loaded: Mapping) -> tuple[int, RunSettings]:
    """The training seed and settings the checkpoints share; checkpoints of different runs
    (model, training, data or seed) are refused before anything is measured."""
    first = next(iter(loaded))
    seed, settings = loaded[first][1]["seed"], RunSettings.from_checkpoint(loaded[first][1])
    for name, (_, checkpoint) in loaded.items():
        if (checkpoint["seed"], RunSettings.from_checkpoint(checkpoint)) != (seed, settings):
            raise ValueError(
                f"checkpoint {os.fspath(checkpoints[name])!r} comes from another training run "
                f"than {os.fspath(checkpoints[first])!r} (other model, training, data or seed)"
            )
    return seed, settings


def _check_data(trained_on: dict, probed: dict, path, other_data: bool) -> None:
    """Probes come from the checkpoint's own data (unknown for a plain state dict)."""
    if trained_on["fingerprint"] in ("", probed["fingerprint"]) or other_data:
        return
    raise ValueError(
        f"checkpoint {os.fspath(path)!r} was trained on {trained_on['name']} "
        f"{trained_on['settings']}, but the probes come from other data ({probed['name']} "
        f"{probed['settings']}); probe its own data, or allow other data explicitly "
        "(other_data=True; diffsens measure --other-data)"
    )


def _check_fit(model, probe, path) -> None:
    """The network takes the probes: right channels, a size it can handle."""
    try:
        with torch.inference_mode():
            model(probe)
    except Exception as error:
        raise ValueError(
            f"the network of checkpoint {os.fspath(path)!r} cannot take the probes, of shape "
            f"{tuple(probe.shape[1:])} ({type(error).__name__}: {error}); give data of the shape "
            "it was made for"
        ) from None


AT_CHANCE = 0.9
"""A trained checkpoint whose test error is at least this fraction of chance's (1 - 1/classes;
1/2 for +1/-1 labels) is flagged: it does not work on the data it is measured on."""


def _at_chance(loaded: dict, errors: list[float], num_classes: int, model) -> list[str]:
    """The trained checkpoints (not ``init``, not epoch 0) at chance on these data, each warned
    about in the log with the likely cause."""
    chance = 1 - 1 / max(num_classes, 2)
    flagged = [
        name
        for (name, (_, checkpoint)), error in zip(loaded.items(), errors, strict=True)
        if name != "init" and checkpoint["epoch"] != 0 and error >= AT_CHANCE * chance
    ]
    for name in flagged:
        log.warning(
            "checkpoint %s of %s has test error %.3f on these data, chance being %.3f: its D, G "
            "and R describe a network that does not work here. Was it trained on other "
            "preprocessing? diffsens feeds it images normalised by the training set's "
            "per-channel mean and standard deviation (docs/formats.md)",
            name,
            model,
            errors[list(loaded).index(name)],
            chance,
        )
    return flagged


def _test_error(model, data: PreparedData, device, images=None) -> float:
    """Test error on ``data``'s test set (or on ``images``, the same set carrying noise), for a
    checkpoint that does not record its own or for the noisy condition."""
    loss = "hinge" if data.num_classes == 1 else "cross_entropy"
    cfg = resolve("training", {"loss": loss})
    images = data.test_images if images is None else images
    return evaluate(model, images, data.test_labels, cfg, device)


class _NoisyTestSet(NamedTuple):
    probes: torch.Tensor
    images: torch.Tensor


def _noisy_test_set(data: PreparedData, noise: float, cfg: dict) -> _NoisyTestSet:
    """The probes and the whole test set with the net's training noise added once, seeded by
    ``probe_seed`` (the same for every seed and checkpoint): the authors' way of probing a net
    trained on noise (docs/science.md §2)."""
    probes, _ = probe_set(data, cfg["probes"], seed=cfg["probe_seed"], noise=noise)
    generator = torch.Generator().manual_seed(cfg["probe_seed"])
    return _NoisyTestSet(probes, add_noise(data.test_images, noise, generator))
