"""The SLURM profile, end to end on a real (single-node, loopback) SLURM cluster."""

import os
import subprocess

import numpy as np
import pytest
import xarray as xr

from diffsens.config import Config
from diffsens.cost import Costs, minutes, read_calibration
from tests.slurm_cluster import slurm_cluster, unavailable
from tests.workflow_helpers import REPO, snakemake

RULES = ("prepare_data", "train", "measure", "collect", "plot_layerwise")
SUBMITTED = ("train", "measure")  # the others are local rules, run by the submitting host
CONFIG = {
    "datasets": {"digits": {"source": "mnist5k", "n_test": 100}},
    "experiments": {
        "tiny": {
            "dataset": "digits",
            "seeds": [0],
            "training": {"optimizer": "adam", "lr": 0.005, "epochs": 1},
            "measure": {"probes": 20, "temperatures": 2},
            "variants": {
                "a": {"model": {"name": "simple_cnn", "depth": 2, "width": 8, "pooling": "max"}},
                # a model of the user's own, importable only from the PYTHONPATH they set
                "own": {"model": {"name": "users_models:tiny_net"}},
            },
        }
    },
}
USERS_MODELS = """
from torch import nn


def tiny_net(in_channels, num_classes):
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, num_classes),
    )
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM test: {reason}")
        pytest.skip(reason)
    with slurm_cluster(tmp_path_factory.mktemp("slurm-state")):
        yield


@pytest.mark.slow
def test_tiny_config_runs_through_the_slurm_profile(cluster, tmp_path, monkeypatch):
    site = tmp_path / "site-packages-of-the-user"  # outside the repository and the venv
    site.mkdir()
    (site / "users_models.py").write_text(USERS_MODELS)
    # seconds measured for one of the networks: its time limits come from them
    calibration = tmp_path / "calibration.csv"
    calibration.write_text(
        "network,train_image_s,inference_image_s\n"
        '"digits:simple_cnn(depth=2, pooling=max, width=8)",0.01,0.001\n'
    )
    snakemake(
        tmp_path,
        {**CONFIG, "calibration": str(calibration)},
        "results/figures/tiny/layerwise.png",  # one path through the DAG: the rules of RULES
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
        # site settings of this test cluster, which keeps no accounting database
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--latency-wait",
        "5",
        env={"PYTHONPATH": str(site)},
    )
    with xr.open_dataset(tmp_path / "results" / "cubes" / "tiny" / "a.nc") as cube:
        assert dict(cube.sizes) == {
            "seed": 1,
            "checkpoint": 2,
            "condition": 2,
            "layer": 5,
            "temperature": 2,
        }
        np.testing.assert_allclose(cube.R, cube.D / cube.G)
        assert cube.attrs["device"].startswith("cpu")  # the fake GPU falls back to the CPU
    with xr.open_dataset(tmp_path / "results" / "cubes" / "tiny" / "own.nc") as cube:
        assert "users_models:tiny_net" in cube.attrs["model"]  # trained and measured in SLURM
    # SLURM ran the training and measuring jobs, each asking it for a GPU, and nothing else
    jobs = subprocess.run(
        ["scontrol", "-o", "show", "jobs"], capture_output=True, text=True, check=True
    )
    by_rule = {}
    for line in jobs.stdout.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        rule = next((r for r in RULES if f"rule_{r}" in fields.get("Comment", "")), None)
        if rule:
            by_rule.setdefault(rule, []).append(fields)
    assert set(by_rule) == set(SUBMITTED), jobs.stdout
    for submitted in by_rule.values():
        assert len(submitted) == 2, jobs.stdout  # both variants, "own" included
        for fields in submitted:
            assert fields["JobState"] == "COMPLETED", jobs.stdout
            assert "gpu" in fields.get("TresPerJob", "") + fields.get("TresPerNode", "")
    # the trainings' time limits: calibrated for "a" (4900 training images at 0.01 s, 100 test
    # images at 0.001 s, one epoch: twice that plus 10 minutes), the model's for "own"
    costs = Costs(Config(CONFIG, against_data=False), read_calibration(calibration))
    limits = {
        "own" if "own" in f["Comment"].split("rule_train", 1)[1] else "a": f["TimeLimit"]
        for f in by_rule["train"]
    }
    assert limits["a"] == f"00:{minutes(4900 * 0.01 + 100 * 0.001):02d}:00" == "00:12:00", (
        jobs.stdout
    )
    monkeypatch.syspath_prepend(site)  # to count the user's model's operations here too
    own = costs.variant("tiny", "own")
    assert limits["own"] == f"00:{minutes(own['epochs'] * own['epoch_s']):02d}:00"
