"""Measuring a run's checkpoints into cubes, as the workflow and the command both do."""

import numpy as np
import pytest

from diffsens.checkpoints import measure_run
from diffsens.config import Config
from diffsens.cubes import collect
from diffsens.data import prepare
from diffsens.provenance import RunSettings
from diffsens.train import train

SIGNALS = {
    "datasets": {"signals": {"source": "scale_detection_1d", "n_train": 64, "n_test": 32}},
    "experiments": {
        "moves": {
            "dataset": "signals",
            "seeds": [0, 1],
            "model": {"name": "simple_cnn", "dim": 1, "depth": 3, "width": 4, "stride": 2},
            "training": {"loss": "hinge", "epochs": 1, "batch_size": 16},
            "measure": {"probes": 16, "deformation": "pixel_move", "block": 32},
            "variants": {"net": {}},
        }
    },
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both seeds of a 1-D net measured with the settings the workflow gives its jobs."""
    root = tmp_path_factory.mktemp("runs")
    config = Config(SIGNALS)
    settings = config.variant("moves", "net")
    source = dict(config.datasets["signals"])
    data = prepare(source.pop("source"), **source)
    measured = {}
    for seed in config.seeds("moves"):
        train(settings["model"], data, settings["training"], root / str(seed), seed=seed)
        folder = root / str(seed) / "checkpoints"
        checkpoints = {name: folder / f"{name}.pt" for name in settings["measure"]["checkpoints"]}
        measured[seed] = measure_run(checkpoints, data, settings["measure"], seed=seed)
    return measured


def test_pixel_moves_have_no_temperature_axis_and_record_none(runs):
    run = runs[0]
    assert run.sizes["temperature"] == 1 and np.isnan(run.temperature.item())
    assert run.delta.item() == 1.0
    assert RunSettings.from_attrs(run.attrs).measure["temperatures"] is None


def test_collect_stacks_seeds_and_names_the_variant(runs):
    cube = collect(runs, experiment="moves", variant="net")
    assert cube.D.dims == ("seed", "checkpoint", "condition", "layer", "temperature")
    assert list(cube.seed.values) == [0, 1]
    settings = RunSettings.from_attrs(cube.attrs)
    assert (settings.experiment, settings.variant) == ("moves", "net")
    assert settings.training["loss"] == "hinge" and settings.model["dim"] == 1


def test_collect_refuses_seeds_made_otherwise(runs):
    other = runs[1].copy()
    other.attrs = {
        **runs[1].attrs,
        **RunSettings(model={"name": "fc2"}, training={}, dataset={}).to_attrs(),
    }
    with pytest.raises(ValueError, match="seed 1 was made with other settings than seed 0"):
        collect({0: runs[0], 1: other})
