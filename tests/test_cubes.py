"""Measuring a run's checkpoints into cubes, as the workflow and the command both do."""

import numpy as np
import pytest
import torch
import xarray as xr

from diffsens.checkpoints import measure_run
from diffsens.config import Config
from diffsens.cubes import collect, layer_names, summary
from diffsens.data import add_noise, prepare, probe_set
from diffsens.provenance import RunSettings
from diffsens.sensitivity import measure
from diffsens.train import evaluate, load_checkpoint, train

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


def test_cubes_keep_readable_layer_names_which_summaries_show(runs):
    cube = collect(runs, experiment="moves", variant="net")
    assert list(cube.label.values) == list(cube.layer.values)  # simple_cnn's paths read well
    renamed = cube.assign_coords(label=("layer", [f"point{k}" for k in cube.depth.values]))
    assert layer_names(renamed) == [f"point{k}" for k in cube.depth.values]
    assert "point1" in summary(renamed) and "point1" not in summary(cube)
    unlabelled = cube.drop_vars("label")  # a cube measured before labels: its paths
    assert layer_names(unlabelled) == [str(name) for name in cube.layer.values]


def test_collect_refuses_seeds_made_otherwise(runs):
    other = runs[1].copy()
    other.attrs = {
        **runs[1].attrs,
        **RunSettings(model={"name": "fc2"}, training={}, dataset={}).to_attrs(),
    }
    with pytest.raises(ValueError, match="seed 1 was made with other settings than seed 0"):
        collect({0: runs[0], 1: other})


def test_the_noisy_condition_probes_and_tests_with_the_training_noise(tmp_path):
    """The authors' way for nets trained on noise: the same probes carrying the training noise,
    and the test error on the test set carrying it; with no training noise, the original."""
    config = Config(SIGNALS)
    settings = config.variant("moves", "net")
    source = dict(config.datasets["signals"])
    data = prepare(source.pop("source"), **source)
    measure_settings = {**settings["measure"], "conditions": ["original", "noisy"]}
    for noise in (0.0, 3.0):
        training = {**settings["training"], "training_noise": noise}
        folder = tmp_path / str(noise)
        train(settings["model"], data, training, folder, seed=0)
        checkpoints = {"last": folder / "checkpoints" / "last.pt"}
        run = measure_run(checkpoints, data, measure_settings, seed=0)
        original = run.sel(condition="original", checkpoint="last")
        noisy = run.sel(condition="noisy", checkpoint="last")
        if noise == 0:
            assert np.array_equal(noisy.D, original.D) and np.array_equal(noisy.G, original.G)
            assert run.noisy_test_error.equals(run.test_error)
            continue
        net, _ = load_checkpoint(checkpoints["last"])
        probes, _ = probe_set(data, 16, seed=0, noise=noise)
        clean, _ = probe_set(data, 16, seed=0)
        assert not torch.equal(probes, clean)
        by_hand = measure(
            net,
            probes,
            temperatures=None,
            layers=net.probe_points,
            seed=0,
            deformation="pixel_move",
            block=32,
        )
        np.testing.assert_allclose(noisy.D.squeeze(), by_hand.D.squeeze(), rtol=1e-12)
        np.testing.assert_allclose(noisy.G.squeeze(), by_hand.G.squeeze(), rtol=1e-12)
        noisy_test = add_noise(data.test_images, noise, torch.Generator().manual_seed(0))
        cfg = {"eval_batch_size": 1000, "loss": "hinge"}
        expected = evaluate(net, noisy_test, data.test_labels, cfg, torch.device("cpu"))
        assert float(run.noisy_test_error.sel(checkpoint="last")) == expected
        assert "noise (norm 3)" in run.noisy_test_error.attrs["long_name"]


def test_a_summary_says_when_noisy_probes_carry_no_noise(runs):
    """A net trained without noise is measured on 'noisy' probes equal to the original ones."""
    cube = collect(runs, experiment="moves", variant="net")
    cube = cube.assign_coords(condition=[str(c) for c in cube.condition.values])
    noisy = cube.sel(condition=["original"]).assign_coords(condition=["noisy"])
    clean = xr.concat(
        [cube, noisy], "condition", data_vars="minimal", coords="minimal", combine_attrs="override"
    )
    assert "none here, so as original" in summary(clean)
    assert "none here" not in summary(cube)  # no noisy condition: nothing to say
    settings = RunSettings.from_attrs(clean.attrs)
    settings.training["training_noise"] = 3.0
    trained_on_noise = clean.assign_attrs(settings.to_attrs())
    assert "none here" not in summary(trained_on_noise)
