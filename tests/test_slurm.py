"""The SLURM profile, end to end on a real (single-node, loopback) SLURM cluster."""

import os
import subprocess

import numpy as np
import pytest
import xarray as xr

from tests.slurm_cluster import slurm_cluster, unavailable
from tests.workflow_helpers import REPO, snakemake

RULES = ("prepare_data", "train", "measure", "collect", "plot_layerwise")
CONFIG = {
    "datasets": {"digits": {"source": "mnist5k", "n_test": 100}},
    "experiments": {
        "tiny": {
            "dataset": "digits",
            "seeds": [0],
            "model": {"name": "simple_cnn", "depth": 2, "width": 8, "pooling": "max"},
            "training": {"optimizer": "adam", "lr": 0.005, "epochs": 1},
            "measure": {"probes": 20, "temperatures": 2},
            "variants": {"a": {}},
        }
    },
}


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
def test_tiny_config_runs_through_the_slurm_profile(cluster, tmp_path):
    snakemake(
        tmp_path,
        CONFIG,
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
    # SLURM ran every job, and the training and measuring jobs asked it for a GPU
    jobs = subprocess.run(
        ["scontrol", "-o", "show", "jobs"], capture_output=True, text=True, check=True
    )
    by_rule = {}
    for line in jobs.stdout.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        rule = next((r for r in RULES if f"rule_{r}" in fields.get("Comment", "")), None)
        if rule:
            by_rule[rule] = fields
    assert set(by_rule) == set(RULES), jobs.stdout
    assert all(by_rule[r]["JobState"] == "COMPLETED" for r in RULES), jobs.stdout
    gpu = {
        r for r, f in by_rule.items() if "gpu" in f.get("TresPerJob", "") + f.get("TresPerNode", "")
    }
    assert gpu == {"train", "measure"}, jobs.stdout
