"""The SLURM profile, end to end on a real (single-node, loopback) SLURM cluster."""

import os
import subprocess

import numpy as np
import pytest
import xarray as xr

from diffsens.config import Config
from diffsens.cost import Costs, cost_line, memory_mb, minutes, read_calibration
from tests.slurm_cluster import slurm_cluster, unavailable
from tests.workflow_helpers import REPO, snakemake

RULES = ("calibrate", "calibration", "prepare_data", "train", "measure", "collect", "cost")
# the others are local rules, run by the submitting host; the trainings go as one group job
SUBMITTED = ("calibrate", "short_trainings", "measure")
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


def slurm_jobs():
    """Every job the test cluster has run: its fields by the rule (or group) its comment names."""
    jobs = subprocess.run(
        ["scontrol", "-o", "show", "jobs"], capture_output=True, text=True, check=True
    )
    by_rule = {}
    for line in jobs.stdout.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        comment = fields.get("Comment", "")
        rule = next((r for r in RULES if f"rule_{r}" in comment), None)
        if "short_trainings" in comment:
            rule = "short_trainings"
        if rule:
            by_rule.setdefault(rule, []).append(fields)
    return by_rule, jobs.stdout


@pytest.mark.slow
def test_tiny_config_runs_through_the_slurm_profile(cluster, tmp_path):
    site = tmp_path / "site-packages-of-the-user"  # outside the repository and the venv
    site.mkdir()
    (site / "users_models.py").write_text(USERS_MODELS)
    options = (
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
        # site settings of this test cluster, which keeps no accounting database
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--latency-wait",
        "5",
    )
    env = {"PYTHONPATH": str(site)}
    # first the calibration, timed in a SLURM job, though the config names its table already;
    # then the run, its time limits from it
    config = {**CONFIG, "calibration": "results/calibration.csv"}
    snakemake(tmp_path, config, "calibration", *options, env=env)
    calibration = read_calibration(tmp_path / "results" / "calibration.csv")
    assert len(calibration) == 2  # both networks, the user's own included
    assert all(row["train_image_s"] > 0 < row["inference_image_s"] for row in calibration.values())
    run = snakemake(
        tmp_path,
        config,
        "results/figures/tiny/layerwise.png",  # one path through the DAG: the rules of RULES
        *options,
        env=env,
    )
    costs = Costs(Config(config, against_data=False), calibration)
    assert f"this run costs {cost_line(costs.table())}" in run.stderr  # as the run starts
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
    # SLURM ran the calibration, the two (short) trainings in one job and the measurements,
    # each asking it for one GPU, and nothing else
    by_rule, listing = slurm_jobs()
    assert sorted(by_rule) == sorted(SUBMITTED), listing
    assert [len(by_rule[r]) for r in SUBMITTED] == [1, 1, 2], listing
    for submitted in by_rule.values():
        for fields in submitted:
            assert fields["JobState"] == "COMPLETED", listing
            assert "gpu:1" in fields.get("TresPerJob", "") + fields.get("TresPerNode", "")
    # the grouped trainings' time limit: theirs one after another, each from the calibration
    # (twice its epochs' seconds plus 10 minutes)
    limit = sum(minutes(costs.training_s("tiny", v)) for v in ("a", "own"))
    assert by_rule["short_trainings"][0]["TimeLimit"] == f"00:{limit:02d}:00", listing
    # memory from the data: 4 GB plus three copies of the dataset, the same for every job here
    memory = memory_mb(costs.variant("tiny", "a")["data_mb"])
    assert memory > 4000
    for submitted in by_rule.values():
        for fields in submitted:
            assert fields["MinMemoryNode"] == f"{memory}M", listing
