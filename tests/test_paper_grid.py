"""The paper grid, end to end, before anyone takes it to a cluster.

The tiny config below is derived from config/paper.yaml itself, so it cannot drift from it: it
keeps every experiment, every dataset source, and a set of variants that covers every distinct
network (on its data's shape), training setting and measurement setting of the grid; only the
budget shrinks (one seed, one epoch, a few probes, small data). CIFAR-10 is a small generated
copy in the real on-disk layout, read by torchvision's loader. The whole workflow runs on it.
"""

from __future__ import annotations

import copy
import json
import re

import pandas as pd
import pytest
import xarray as xr

from diffsens.config import Config, read_yaml, with_grid_variants
from diffsens.cost import Costs, memory_mb, minutes
from tests.cifar_fixture import write_cifar_fixture
from tests.workflow_helpers import REPO, snakemake

PAPER = read_yaml(REPO / "config" / "paper.yaml")


def covering_variants(config: Config) -> dict[str, list[str]]:
    """Per experiment, variants that together cover every distinct network, training, measure
    and dataset setting of the grid (greedy set cover), at least one each.

    A network counts once whatever data it meets: building every network for each of its data
    shapes, and running it once, is what the workflow's config check already does for the whole
    grid before any job (``Config``, run on paper.yaml by ``test_the_shipped_configs_are_valid``).
    """
    items, chosen = {}, {}
    for experiment in config.raw["experiments"]:
        dataset = config.dataset_of(experiment)
        for variant in config.variants(experiment):
            settings = config.variant(experiment, variant)
            items[experiment, variant] = {
                ("network", json.dumps(settings["model"])),
                ("training", json.dumps(settings["training"])),
                ("measure", json.dumps(settings["measure"])),
                ("dataset", dataset),
            }
    uncovered = set().union(*items.values())
    while uncovered:
        best = max(items, key=lambda key: len(items[key] & uncovered))
        chosen.setdefault(best[0], []).append(best[1])
        uncovered -= items.pop(best)
    for experiment in config.raw["experiments"]:  # every experiment runs, for its figures
        chosen.setdefault(experiment, config.variants(experiment)[:1])
    return chosen


def tiny_paper_config(cifar_root) -> tuple[dict, dict[str, list[str]]]:
    """config/paper.yaml on a tiny budget, and the variants kept."""
    config = with_grid_variants(copy.deepcopy(PAPER))  # the grid's variants, named
    keep = covering_variants(Config(PAPER))
    config["results"] = "results"
    for entry in config["datasets"].values():
        if entry["source"] == "cifar10":
            entry.update(root=str(cifar_root), download=False, verify=False)
        else:
            entry.update(n_train=16, n_test=8)
    for name, experiment in config["experiments"].items():
        experiment["seeds"] = experiment.get("seeds", [0])[:1]
        experiment.pop("grid", None)
        experiment["variants"] = {v: experiment["variants"][v] for v in keep[name]}
        training = experiment.setdefault("training", {})
        training.update(epochs=1, save_epochs=[])
        if training.get("validation"):  # keep a validation set, of the tiny data's size
            training["validation"] = 4
        measure = experiment.setdefault("measure", {})
        measure["probes"] = 4
        if measure.get("deformation", "diffeo") == "diffeo":
            measure.pop("deltas", None)
            measure["temperatures"] = 1
    config["figures"] = {"formats": ["png"], "dpi": 50}
    config["analysis"] = {"bootstrap": 10}
    config["theory"] = {  # the theory rule is the default's, tested there; here it only runs
        "networks": [{"dim": 1, "filter_size": 2, "stride": 2, "depth": 3}],
        "precision": 0.05,
    }
    return config, keep


def test_the_cover_keeps_every_network_training_and_measure_setting():
    full = Config(PAPER)
    keep = covering_variants(full)

    def distinct(section, variants):
        return {json.dumps(full.variant(e, v)[section]) for e, v in variants}

    every = [(e, v) for e in full.raw["experiments"] for v in full.variants(e)]
    kept = [(e, v) for e in keep for v in keep[e]]
    for section in ("model", "training", "measure"):
        assert distinct(section, kept) == distinct(section, every), section
    noise = {full.variant(e, v)["training"]["training_noise"] for e in keep for v in keep[e]}
    assert noise == {0, 0.01, 0.1, 1, 10, 30, 100}
    assert set(keep) == set(full.raw["experiments"])
    assert sum(map(len, keep.values())) < sum(len(full.variants(e)) for e in keep)


@pytest.mark.slow
def test_the_paper_grid_runs_end_to_end_on_a_tiny_budget(tmp_path):
    write_cifar_fixture(tmp_path / "cifar", n_per_batch=8)
    config, keep = tiny_paper_config(tmp_path / "cifar")
    Config(config)  # the derived config is itself valid
    snakemake(
        tmp_path, config, "--workflow-profile", str(REPO / "profiles" / "default"), "--cores", "2"
    )
    results = tmp_path / "results"
    for experiment, variants in keep.items():
        for variant in variants:
            with xr.open_dataset(results / "cubes" / experiment / f"{variant}.nc") as cube:
                assert cube.sizes["seed"] == 1 and cube.sizes["layer"] >= 2
                assert not cube.R.isnull().all()
        for figure in ("layerwise", "compare", "depth_laws", "spectra", "error_vs_sensitivity"):
            assert (results / "figures" / experiment / f"{figure}.png").stat().st_size > 1000
    summary = pd.read_csv(results / "summary.csv")
    assert set(summary.experiment) == set(keep)


def test_the_paper_grid_asks_slurm_for_what_each_job_will_use(tmp_path):
    """A dry run with the SLURM profile, as docs/cluster.md starts: each training and
    measurement asks for the minutes and megabytes its cost gives (conservative model: no
    calibration), so the asks differ by network and epochs; CIFAR-10 is prepared by a local job
    (every rule but train, measure and calibrate is local: test_workflow)."""
    profile = ("--workflow-profile", str(REPO / "profiles" / "slurm"))
    result = snakemake(tmp_path, PAPER, "--dry-run", *profile)
    costs, config = Costs(Config(PAPER)), Config(PAPER)
    asked = {}
    for block in re.split(r"\n\s*(?=rule \w+:)", result.stdout):
        rule = re.match(r"rule (\w+):", block)
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.MULTILINE)
        if rule and rule.group(1) in ("train", "measure"):
            named = dict(pair.split("=", 1) for pair in wildcards.group(1).split(", "))
            resources = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE).group(1)
            given = dict(pair.split("=", 1) for pair in resources.split(", "))
            asked[rule.group(1), named["experiment"], named["variant"], named["seed"]] = given
    trainings = sum(len(config.variants(e)) * len(config.seeds(e)) for e in PAPER["experiments"])
    assert len(asked) == 2 * trainings
    for (rule, experiment, variant, _), given in asked.items():
        job = costs.variant(experiment, variant)
        seconds = (
            costs.training_s(experiment, variant)
            if rule == "train"
            else job["measurements"] * job["measure_s"]
        )
        assert int(given["runtime"]) == minutes(seconds), (rule, experiment, variant)
        assert int(given["mem_mb"]) == memory_mb(job["data_mb"]), (rule, experiment, variant)
        assert given["gpu"] == "1"
    limits = {int(given["runtime"]) for (rule, *_), given in asked.items() if rule == "train"}
    assert len(limits) > 10 and max(limits) > 10 * min(limits)  # by network and epochs
    assert "mem_mb=6212" in result.stdout  # CIFAR-10: 4 GB and three copies of its 737 MB
    assert "diffsens: this run costs" in result.stdout + result.stderr
    assert re.search(r"rule prepare_data:\n(.*\n){0,8}\s+wildcards: dataset=cifar10", result.stdout)
