"""The Snakemake workflow end to end on a tiny config: DAG, cubes, validation, incremental reruns."""

import copy
import shutil
import subprocess

import numpy as np
import pytest
import xarray as xr
import yaml

from diffsens.models import list_models
from diffsens.train import DEFAULTS
from tests.workflow_helpers import REPO, SNAKEMAKE, job, planned_jobs, snakemake

TINY = {
    "datasets": {"digits": {"source": "mnist5k", "n_test": 100}},
    "experiments": {
        "tiny": {
            "dataset": "digits",
            "seeds": [0],
            "model": {"name": "simple_cnn", "depth": 2, "width": 16},
            "training": {"optimizer": "adam", "lr": 0.005, "epochs": 2, "batch_size": 64},
            "measure": {"probes": 20, "temperatures": 2, "checkpoints": ["init", "best"]},
            "variants": {"a": {}, "b": {"model": {"pooling": "max"}}},
        }
    },
    "figures": {"formats": ["png"], "dpi": 60},
    "analysis": {"bootstrap": 50},
    "theory": {
        "networks": [{"dim": 1, "filter_size": 2, "stride": 2, "depth": 3}],
        "sites": 16,
        "repeats": 2,
    },
}
EXPERIMENT_PLOTS = {
    job(rule, experiment="tiny")
    for rule in (
        "plot_layerwise",
        "plot_temperatures",
        "plot_error_vs_sensitivity",
        "plot_depth_laws",
    )
}
FITS = {job("fit_depth_laws", experiment="tiny")}
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(workdir, TINY, "--workflow-profile", str(REPO / "profiles" / "default"))
    return workdir


def edited(change):
    config = copy.deepcopy(TINY)
    change(config)
    return config


def test_cube_layout_and_provenance(tiny_run):
    with xr.open_dataset(tiny_run / "results" / "cubes" / "tiny" / "b.nc") as cube:
        assert cube.D.dims == ("seed", "checkpoint", "condition", "layer", "temperature")
        assert cube.den.dims == ("seed", "checkpoint", "condition", "layer")
        assert cube.test_error.dims == cube.epoch.dims == ("seed", "checkpoint")
        assert (
            cube.epoch.sel(checkpoint="init").item() == 0
            and cube.epoch.sel(checkpoint="best").item() >= 1
        )
        assert "seed" not in cube.attrs
        assert list(cube.checkpoint.values) == ["init", "best"]
        assert list(cube.condition.values) == ["original", "shuffled"]
        assert list(cube.layer.values) == ["relu1", "pool1", "relu2", "pool2", "output"]
        assert list(cube.depth.values) == [1, 2, 3, 4, 5]
        assert cube.sizes["temperature"] == 2 and np.all(np.diff(cube.delta.values) > 0)
        np.testing.assert_allclose(cube.delta[0], 0.5)  # the first temperature is T_min
        np.testing.assert_allclose(cube.R, cube.D / cube.G)
        np.testing.assert_allclose(cube.D, cube.num_D / cube.den)
        assert (
            cube.test_error.sel(checkpoint="best").item()
            < cube.test_error.sel(checkpoint="init").item() - 0.2
        )
        settings = yaml.safe_load(cube.attrs["settings"])
        assert settings["model"] == {
            "name": "simple_cnn",
            "depth": 2,
            "width": 16,
            "pooling": "max",
        }
        assert settings["training"]["lr"] == 0.005 and settings["measure"]["probes"] == 20
        for key in ("git_commit", "versions", "created", "device", "dataset"):
            assert cube.attrs[key]
        assert cube.D.attrs["long_name"] and cube.delta.attrs["units"] == "pixel"
    assert (tiny_run / "results" / "figures" / "tiny" / "layerwise.png").stat().st_size > 1000
    assert (tiny_run / "results" / "logs" / "train" / "tiny" / "a" / "seed~0.log").exists()
    assert (tiny_run / "results" / "benchmarks" / "measure" / "tiny" / "a" / "seed~0.tsv").exists()


def test_second_run_does_nothing(tiny_run):
    assert planned_jobs(tiny_run, TINY) == set()


def test_training_edit_reruns_that_variant_only(tiny_run):
    config = edited(
        lambda c: c["experiments"]["tiny"]["variants"]["a"].update(training={"lr": 0.01})
    )
    assert (
        planned_jobs(tiny_run, config)
        == {
            job("train", experiment="tiny", variant="a", seed=0),
            job("measure", experiment="tiny", variant="a", seed=0),
            job("collect", experiment="tiny", variant="a"),
            job("spectra", experiment="tiny", variant="a"),
            job("plot_spectra", experiment="tiny"),
        }
        | FITS
        | EXPERIMENT_PLOTS
    )


def test_temperature_edit_remeasures_without_retraining(tiny_run):
    config = edited(lambda c: c["experiments"]["tiny"]["measure"].update(temperatures=3))
    assert (
        planned_jobs(tiny_run, config)
        == {
            job("measure", experiment="tiny", variant="a", seed=0),
            job("measure", experiment="tiny", variant="b", seed=0),
            job("collect", experiment="tiny", variant="a"),
            job("collect", experiment="tiny", variant="b"),
        }
        | FITS
        | EXPERIMENT_PLOTS
    )


def test_figure_edit_only_redraws(tiny_run):
    config = edited(lambda c: c["figures"].update(dpi=70))
    assert planned_jobs(tiny_run, config) == EXPERIMENT_PLOTS | {
        job("plot_spectra", experiment="tiny"),
        job("plot_theory"),
        job("plot_examples"),
    }


def test_new_seed_trains_only_that_seed(tiny_run):
    config = edited(lambda c: c["experiments"]["tiny"].update(seeds=[0, 1]))
    assert (
        planned_jobs(tiny_run, config)
        == {
            job("train", experiment="tiny", variant="a", seed=1),
            job("train", experiment="tiny", variant="b", seed=1),
            job("measure", experiment="tiny", variant="a", seed=1),
            job("measure", experiment="tiny", variant="b", seed=1),
            job("collect", experiment="tiny", variant="a"),
            job("collect", experiment="tiny", variant="b"),
            job("spectra", experiment="tiny", variant="a"),
            job("spectra", experiment="tiny", variant="b"),
            job("plot_spectra", experiment="tiny"),
        }
        | FITS
        | EXPERIMENT_PLOTS
    )


def test_analysis_edit_refits_and_redraws_only(tiny_run):
    config = edited(lambda c: c["analysis"].update(bootstrap=60))
    assert planned_jobs(tiny_run, config) == FITS | {job("plot_depth_laws", experiment="tiny")}


def test_report_is_self_contained(tiny_run):
    snakemake(tiny_run, TINY, "--report", "results/report.html")
    html = (tiny_run / "results" / "report.html").read_text()
    assert len(html) > 100_000 and "layerwise.png" in html and "fits" in html
    assert "Layer-wise sensitivities" in html and "Depth laws" in html


def test_science_outputs(tiny_run):
    results = tiny_run / "results"
    for name in ("layerwise", "temperatures", "error_vs_sensitivity", "spectra", "depth_laws"):
        assert (results / "figures" / "tiny" / f"{name}.png").stat().st_size > 1000, name
    for name in ("constant_filters", "examples"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 1000, name
    with xr.open_dataset(results / "spectra" / "tiny" / "a.nc") as spectra:
        assert spectra.fraction.dims == ("seed", "checkpoint", "layer", "mode")
        np.testing.assert_allclose(spectra.fraction.sum("mode"), 1.0)
    with xr.open_dataset(results / "fits" / "tiny.nc") as fits:
        assert set(fits.law.values) == {"power", "exponential"}  # a: stride 1; b: max pooling
        assert fits.exponent.dims == ("variant", "quantity", "checkpoint", "condition")
    table = (results / "fits" / "tiny.csv").read_text().splitlines()
    assert table[0].startswith("variant,quantity,checkpoint,condition,exponent")
    assert "| network |" in (results / "theory" / "fits.md").read_text()


def test_an_executed_edit_leaves_the_rest_alone(tiny_run, tmp_path):
    """Really rerun after an edit: untouched files keep their modification times."""
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    untouched = workdir / "results" / "train" / "tiny" / "b" / "seed~0" / "history.nc"
    before = untouched.stat().st_mtime_ns
    config = edited(lambda c: c["figures"].update(dpi=70))
    snakemake(workdir, config, "--workflow-profile", str(REPO / "profiles" / "default"))
    assert untouched.stat().st_mtime_ns == before
    assert planned_jobs(workdir, config) == set()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(plots={}), "Additional properties are not allowed \\('plots'"),
        (lambda c: c["experiments"]["tiny"]["training"].update(learning_rate=1), "learning_rate"),
        (
            lambda c: c["experiments"]["tiny"]["training"].update(lr=-1),
            "-1 is less than or equal to the minimum of 0",
        ),
        (
            lambda c: c["experiments"]["tiny"]["measure"].update(interp="cubic"),
            "'cubic' is not one of",
        ),
        (
            lambda c: c["experiments"]["tiny"].update(dataset="cifar"),
            "'cifar' is not one of the datasets",
        ),
        (
            lambda c: c["experiments"]["tiny"]["training"].update(loss="hinge"),
            "training.loss must be 'hinge'",
        ),
        (
            lambda c: c["experiments"]["tiny"]["measure"].update(checkpoints=["epoch_3"]),
            r"\['epoch_3'\] are not kept",
        ),
        (lambda c: c["datasets"]["digits"].update(n_tset=5), "n_tset"),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, change, message):
    result = snakemake(tmp_path, edited(change), "--dry-run", check=False)
    assert result.returncode != 0
    assert __import__("re").search(message, result.stdout + result.stderr), (
        result.stdout + result.stderr
    )
    assert not (tmp_path / "results").exists()


def test_lint_is_clean():
    result = subprocess.run([SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    snakefmt = shutil.which("snakefmt") or str(REPO / ".venv" / "bin" / "snakefmt")
    result = subprocess.run(
        [snakefmt, "--check", "workflow"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_paper_config_builds_the_whole_dag(tmp_path):
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    result = snakemake(tmp_path, config, "--dry-run", "--quiet", "rules")
    counts = dict(
        (line.split()[0], int(line.split()[1]))
        for line in result.stdout.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    trainings = sum(
        len(exp["variants"]) * len(exp.get("seeds", [0])) for exp in config["experiments"].values()
    )
    assert counts["train"] == counts["measure"] == trainings
    assert trainings >= 10 * 7 * 4 + 3 * 11  # CIFAR nets x noise levels x seeds, FC nets x seeds


def test_default_config_satisfies_its_promises():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    sources = {d["source"] for d in config["datasets"].values()}
    assert {"mnist5k", "scale_detection_2d", "scale_detection_1d"} <= sources
    for experiment in config["experiments"].values():
        assert len(experiment["seeds"]) >= 2
        measure = experiment["measure"]
        assert set(measure["checkpoints"]) & {"init"} and len(measure["checkpoints"]) >= 2
        if measure.get("deformation", "diffeo") == "diffeo":
            assert measure["temperatures"] >= 3
    assert sum(len(e["variants"]) for e in config["experiments"].values()) >= 4


def test_schema_defaults_are_the_library_defaults():
    training = SCHEMA["$defs"]["training"]["properties"]
    assert set(training) == set(DEFAULTS) - {"seed"}
    for key, spec in training.items():
        assert spec["default"] == DEFAULTS[key], key
    assert sorted(SCHEMA["$defs"]["model"]["properties"]["name"]["enum"]) == list_models()


def test_every_schema_key_is_described():
    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                if isinstance(value, dict) and key != "source":
                    target = value
                    if "$ref" in value:  # described where it is defined
                        target = SCHEMA["$defs"][value["$ref"].rsplit("/", 1)[1]]
                    assert "description" in target, f"{path}.{key} has no description"
                    assert "default" in target, f"{path}.{key} has no default"
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(SCHEMA, "schema")
