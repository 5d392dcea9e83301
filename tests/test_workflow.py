"""The Snakemake workflow end to end on a tiny config: DAG, cubes, validation, incremental reruns."""

import copy
import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml

from diffsens.config import Config
from diffsens.cost import cost_line, estimate_cost
from diffsens.models import list_models
from diffsens.provenance import RunSettings
from diffsens.settings import defaults, group
from diffsens.train import resolve_config
from tests.workflow_helpers import REPO, SNAKEMAKE, job, planned_jobs, snakemake, variant_count

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
        "precision": 0.05,
    },
}
EXPERIMENT_PLOTS = {
    job(rule, experiment="tiny")
    for rule in (
        "plot_layerwise",
        "plot_compare",
        "plot_temperatures",
        "plot_error_vs_sensitivity",
        "plot_depth_laws",
    )
}
# Jobs that read every cube: the fits and the summary (which reads the fits too), and the claims
# and their figure.
FITS = {job("fit_depth_laws", experiment="tiny"), job("summarise")}
CLAIMS = {job("claims"), job("plot_claims")}
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
        settings = RunSettings.from_attrs(cube.attrs)
        assert settings.model == {"name": "simple_cnn", "depth": 2, "width": 16, "pooling": "max"}
        assert settings.training["lr"] == 0.005 and settings.measure["probes"] == 20
        assert (settings.experiment, settings.variant) == ("tiny", "b")
        assert (
            settings.dataset["name"] == "mnist5k" and settings.dataset["settings"]["n_test"] == 100
        )
        for key in ("git_commit", "versions", "created", "device", "dataset"):
            assert cube.attrs[key]
        assert cube.D.attrs["long_name"] and cube.delta.attrs["units"] == "pixel"
    assert (tiny_run / "results" / "figures" / "tiny" / "layerwise.png").stat().st_size > 1000
    assert (tiny_run / "results" / "logs" / "train" / "tiny" / "a" / "seed~0.log").exists()
    assert (tiny_run / "results" / "benchmarks" / "measure" / "tiny" / "a" / "seed~0.tsv").exists()


def test_every_log_says_what_the_job_does_and_what_it_wrote(tiny_run):
    logs = tiny_run / "results" / "logs"
    for path in logs.rglob("*.log"):
        lines = path.read_text().splitlines()
        assert "diffsens.job: rule " in lines[0], path
        assert "diffsens.job: wrote results/" in lines[-1], path
    train = (logs / "train" / "tiny" / "a" / "seed~0.log").read_text()
    assert (
        len(re.findall(r"training \{.*'name': 'simple_cnn'.*parameters\) on mnist5k", train)) == 1
    )
    epochs = TINY["experiments"]["tiny"]["training"]["epochs"]
    assert [f"epoch {k}/{epochs}: loss" in train for k in range(1, epochs + 1)] == [True] * epochs
    measured = (logs / "measure" / "tiny" / "a" / "seed~0.log").read_text()
    for checkpoint in ("init", "best"):  # one line per checkpoint and condition
        for condition in ("original", "shuffled"):
            assert f"{checkpoint}, {condition}: 3 probe points in" in measured


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
            job("plot_training", experiment="tiny"),
        }
        | FITS
        | CLAIMS
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
            job("cost"),  # more displacements, longer measurements
        }
        | FITS
        | CLAIMS
        | EXPERIMENT_PLOTS
    )


def test_figure_edit_only_redraws(tiny_run):
    config = edited(lambda c: c["figures"].update(dpi=70))
    assert planned_jobs(tiny_run, config) == EXPERIMENT_PLOTS | {
        job("plot_spectra", experiment="tiny"),
        job("plot_training", experiment="tiny"),
        job("plot_theory"),
        job("plot_examples"),
        job("plot_claims"),
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
            job("plot_training", experiment="tiny"),
            job("cost"),
        }
        | FITS
        | CLAIMS
        | EXPERIMENT_PLOTS
    )


def test_analysis_edit_refits_and_redraws_only(tiny_run):
    config = edited(lambda c: c["analysis"].update(bootstrap=60))  # the fits' intervals only
    assert planned_jobs(tiny_run, config) == FITS | {job("plot_depth_laws", experiment="tiny")}
    config = edited(lambda c: c["analysis"].update(confidence=0.9))  # every interval
    assert planned_jobs(tiny_run, config) == FITS | CLAIMS | {
        job("plot_depth_laws", experiment="tiny")
    }


def test_a_delta_edit_refits_and_redraws_only_what_reads_the_cubes_at_it(tiny_run):
    config = edited(lambda c: c["analysis"].update(delta=2.0))
    at_delta = ("plot_layerwise", "plot_compare", "plot_error_vs_sensitivity", "plot_depth_laws")
    expected = FITS | CLAIMS | {job(r, experiment="tiny") for r in at_delta}
    assert planned_jobs(tiny_run, config) == expected


def test_a_ceiling_edit_redraws_and_resummarises_only(tiny_run):
    config = edited(lambda c: c["experiments"]["tiny"].update(error_ceiling=0.5))
    assert planned_jobs(tiny_run, config) == FITS | CLAIMS | EXPERIMENT_PLOTS | {
        job("plot_spectra", experiment="tiny"),
        job("plot_training", experiment="tiny"),
    }


def test_report_is_self_contained(tiny_run):
    snakemake(tiny_run, TINY, "--report", "results/report.html")
    html = (tiny_run / "results" / "report.html").read_text()
    assert len(html) > 100_000 and "layerwise.png" in html and "fits" in html
    assert "Layer-wise sensitivities" in html and "Depth laws" in html
    assert "claims.png" in html and "claims.csv" in html
    assert "cost.csv" in html and "GPU-hours at most" in html  # the caption gives the total
    categories = json.loads(re.search(r"var categories = (\{.*?\});", html).group(1))
    assert sorted(categories)[0] == "Claims"  # the report's menu lists categories sorted


def test_science_outputs(tiny_run):
    results = tiny_run / "results"
    for name in (
        "layerwise",
        "compare",
        "temperatures",
        "error_vs_sensitivity",
        "spectra",
        "depth_laws",
    ):
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
    assert "undertrained" in table[0]
    assert "| network |" in (results / "theory" / "fits.md").read_text()


def test_the_summary_quotes_the_cubes(tiny_run):
    import pandas as pd

    results = tiny_run / "results"
    summary = pd.read_csv(results / "summary.csv")
    assert len(summary) == 2 * 2 * 2  # variants x checkpoints x conditions
    row = summary.query("variant == 'b' and checkpoint == 'best' and condition == 'shuffled'")
    original = summary.query("variant == 'b' and checkpoint == 'best' and condition == 'original'")
    with xr.open_dataset(results / "cubes" / "tiny" / "b.nc") as cube:
        near = cube.isel(temperature=int(np.argmin(abs(np.log(cube.delta.values)))))
        R = near.R.sel(checkpoint="best", condition="shuffled", layer="pool2")  # deepest hidden
        assert row.R_last.item() == pytest.approx(float(R.mean()))
        assert original.test_error.item() == pytest.approx(
            float(cube.test_error.sel(checkpoint="best").mean())
        )
        assert np.isnan(row.test_error.item())  # the shuffled net is not evaluated
        assert row.delta.item() == pytest.approx(float(near.delta))
    assert row.last_layer.item() == "pool2"
    # two epochs leave the tiny nets far above the default ceiling (10%): flagged, init never
    assert summary.undertrained.tolist() == (summary.checkpoint == "best").tolist()
    text = (results / "summary.md").read_text()
    assert "## tiny" in text and "| b | best | shuffled |" in text and "(undertrained)" in text


def test_the_claims_table_has_every_claim_and_says_why_one_seed_gives_no_verdict(tiny_run):
    from diffsens.claims import CLAIMS, COLUMNS
    from diffsens.io import read_table

    results = tiny_run / "results"
    table = read_table(results / "claims.csv", "claims table", columns=COLUMNS)
    assert set(table.claim) == set(CLAIMS)
    assert set(table.variant) == {"a", "b", "(all)"}
    # one seed, and two epochs leave the nets above the ceiling: no verdict, and the reason
    assert (table.verdict == "not applicable").all()
    assert table.note.str.contains("undertrained|usable seed|variant|predicts no law").all()
    with xr.open_dataset(results / "cubes" / "tiny" / "a.nc") as cube:
        assert sorted(table.delta.dropna().unique()) == pytest.approx(sorted(cube.delta.values))
    text = (results / "claims.md").read_text()
    assert "## At a glance" in text and "| tiny / a | tiny / b | tiny / (all) |" in text
    assert (results / "figures" / "claims.png").stat().st_size > 1000


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
        (lambda c: c.update(plots={}), r"\(top level\): Additional properties .*'plots' was unexp"),
        (
            lambda c: c["experiments"]["tiny"]["training"].update(learning_rate=1),
            r"experiments\.tiny\.training: .*'learning_rate' was unexpected",
        ),
        (
            lambda c: c["experiments"]["tiny"]["training"].update(lr=-1),
            r"experiments\.tiny\.training\.lr: -1 is less than or equal to the minimum of 0",
        ),
        (
            lambda c: c["experiments"]["tiny"]["training"].update(lr=float("nan")),
            r"experiments\.tiny\.training\.lr: nan is not a finite number",
        ),
        (
            lambda c: c["experiments"]["tiny"]["measure"].update(interp="cubic"),
            r"experiments\.tiny\.measure\.interp: 'cubic' is not one of",
        ),
        (
            lambda c: c["experiments"]["tiny"]["measure"].update(temperatures=[0.0, 0.01]),
            r"experiments\.tiny\.measure\.temperatures: \[0\.0, 0\.01\] is not valid here: "
            r".*0\.0 is less than or equal to the minimum of 0",
        ),
        (
            lambda c: c["experiments"]["tiny"].update(dataset="cifar"),
            r"experiments\.tiny\.dataset: 'cifar' is not one of the datasets \['digits'\]",
        ),
        (
            lambda c: c["experiments"]["tiny"]["training"].update(loss="hinge"),
            r"experiments\.tiny\.training\.loss: the data have 10 classes: expected 'cross_ent",
        ),
        (
            lambda c: c["experiments"]["tiny"]["measure"].update(checkpoints=["epoch_3"]),
            r"experiments\.tiny\.measure\.checkpoints: \['epoch_3'\] are not kept",
        ),
        (
            lambda c: c["experiments"]["tiny"]["variants"]["b"].update(
                training={"save_epochs": [3]}
            ),
            r"experiments\.tiny\.variants\.b\.training\.save_epochs: epochs \[3\] are after "
            r"the last epoch \(2\)",
        ),
        (
            lambda c: c["experiments"]["tiny"]["measure"].update(probes=101),
            r"experiments\.tiny\.measure\.probes: 101 probes, but the test set has 100 images",
        ),
        (
            lambda c: c["experiments"]["tiny"]["model"].update(widht=8),
            r"experiments\.tiny\.model\.widht: model 'simple_cnn' has no option 'widht'",
        ),
        (
            lambda c: c["experiments"]["tiny"]["variants"]["a"].update(model={"dim": 1}),
            r"experiments\.tiny\.variants\.a\.model: model 'simple_cnn' cannot take inputs of "
            r"shape \(1, 1, 28, 28\)",
        ),
        (
            lambda c: c["datasets"]["digits"].update(n_tset=5),
            r"datasets\.digits: .*'n_tset' was unexpected",
        ),
        (
            lambda c: c["datasets"]["digits"].update(n_test=105),
            r"datasets\.digits: n_test must be a multiple of 10",
        ),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, change, message):
    result = snakemake(tmp_path, edited(change), "--dry-run", check=False)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks_fails_before_any_job(tmp_path):
    config = edited(
        lambda c: c["experiments"]["tiny"]["variants"]["b"].update(training={"device": "cuda"})
    )
    assert snakemake(tmp_path, config, "--dry-run").returncode == 0  # a cluster may have one
    result = snakemake(tmp_path, config, "--cores", "1", check=False)
    assert result.returncode != 0
    assert (
        "experiments.tiny.variants.b.training.device: device 'cuda' was asked for, but CUDA is "
        "not available here; use 'auto' or 'cpu'" in result.stderr
    ), result.stderr
    made = [p.name for p in (tmp_path / "results").iterdir()]
    assert made == [
        ".settings"
    ]  # the jobs' settings files, written as the DAG is built: no job ran


def test_every_problem_is_reported_at_once(tmp_path):
    """Schema errors first, then every contradiction found once the refused keys are cut out."""

    def output(change):
        result = snakemake(tmp_path, edited(change), "--dry-run", check=False)
        assert result.returncode != 0
        return result.stdout + result.stderr

    tiny = lambda c: c["experiments"]["tiny"]  # noqa: E731
    text = output(lambda c: (tiny(c)["training"].update(lr=-1), tiny(c)["measure"].update(x=1)))
    assert "2 problem(s)" in text and "training.lr" in text and "'x' was unexpected" in text
    text = output(
        lambda c: (
            tiny(c)["measure"].update(probes=500),
            tiny(c)["model"].update(widht=8),
            tiny(c)["training"].update(save_epochs=[5]),
        )
    )
    assert "3 problem(s)" in text
    assert all(key in text for key in ("measure.probes", "model.widht", "training.save_epochs"))
    # a typo in the dataset no longer hides the model's typo and the probes (a new user's case)
    text = output(
        lambda c: (
            c["datasets"]["digits"].update(chanels=3),
            tiny(c)["measure"].update(probes=500),
            tiny(c)["model"].update(widht=8),
        )
    )
    assert "3 problem(s)" in text and "'chanels' was unexpected" in text
    assert "measure.probes: 500 probes, but the test set has 100 images" in text
    assert "model.widht: model 'simple_cnn' has no option 'widht'" in text


def test_a_yaml_syntax_error_names_the_line(tmp_path):
    (tmp_path / "config").mkdir()
    text = yaml.safe_dump(TINY, sort_keys=False).replace("n_test: 100", "n_test: [100")
    (tmp_path / "config" / "config.yaml").write_text(text)
    result = snakemake(tmp_path, None, "--dry-run", check=False)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "[100" in row)
    assert re.search(
        rf"config/config\.yaml, line {line + 1}, column \d+: YAML syntax error",
        result.stdout + result.stderr,
    ), result.stdout + result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    checked = subprocess.run(
        [str(Path(sys.executable).with_name("diffsens")), "check-config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode != 0 and f"line {line + 1}, column" in checked.stderr


def test_snakemakes_own_command_line_messages_and_their_fixes_are_as_documented(tmp_path):
    """docs/reliability.md quotes what Snakemake says before diffsens sees anything, and the fix:
    this keeps both true."""
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump(TINY, sort_keys=False))
    rows = (REPO / "docs" / "reliability.md").read_text()
    run = functools.partial(snakemake, tmp_path, None, "--dry-run", check=False)
    dotted = run("--configfile", str(config), "--config", "analysis.bootstrap=60")
    assert dotted.returncode != 0
    assert "Config entry must start with a valid identifier" in dotted.stdout + dotted.stderr
    assert "Config entry must start with a valid identifier" in rows
    assert run("--configfile", str(config), "--config", "analysis={bootstrap: 60}").returncode == 0
    target = "results/summary.csv"
    after = run("--configfile", str(config), target)  # read as a second config file
    assert after.returncode != 0
    assert f"No such file or directory: '{target}'" in after.stdout + after.stderr
    assert f"No such file or directory: '{target}'" in rows
    fixed = run(f"--configfile={config}", target)
    assert fixed.returncode == 0 and "rule summarise:" in fixed.stdout


def test_command_line_overrides_keep_the_default_config_and_their_types(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    result = snakemake(tmp_path, None, "--dry-run", "--config", "analysis={bootstrap: 200}")
    assert "rule train:" in result.stdout  # the default config was kept, not dropped
    result = snakemake(
        tmp_path, None, "--dry-run", "--config", "analysis={bootstrap: 2}", check=False
    )
    assert "analysis.bootstrap: 2 is less than the minimum of 10" in result.stdout + result.stderr


def test_command_line_override_reruns_only_what_it_touches(tiny_run):
    config_path = tiny_run / "config.yaml"
    config_path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    result = snakemake(
        tiny_run,
        None,
        "--configfile",
        str(config_path),
        "--dry-run",
        "--config",
        "analysis={bootstrap: 60}",
        "--workflow-profile",
        str(REPO / "profiles" / "default"),
    )
    assert "rule fit_depth_laws:" in result.stdout and "rule train:" not in result.stdout


def test_lint_is_clean():
    result = subprocess.run([SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    snakefmt = shutil.which("snakefmt") or str(REPO / ".venv" / "bin" / "snakefmt")
    result = subprocess.run(
        [snakefmt, "--check", "workflow"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_gpu_rules_can_reach_a_cluster_queue():
    """Light rules (data, collect, fits, claims, plots, cost) run where Snakemake runs: each
    says so (localrule), and the three that compute on a GPU do not."""
    blocks = re.split(
        r"^rule (\w+):",
        "".join(p.read_text() for p in (REPO / "workflow").rglob("*.smk")),
        flags=re.M,
    )
    rules = dict(zip(blocks[1::2], blocks[2::2], strict=True))
    queued = {name for name, body in rules.items() if "localrule: True" not in body}
    assert queued == {"train", "measure", "calibrate"}
    assert len(rules) > 15


def test_paper_config_builds_the_whole_dag(tmp_path):
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    result = snakemake(tmp_path, config, "--dry-run", "--quiet", "rules")
    counts = dict(
        (line.split()[0], int(line.split()[1]))
        for line in result.stdout.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    )

    trainings = sum(
        variant_count(exp) * len(exp.get("seeds", [0])) for exp in config["experiments"].values()
    )
    assert counts["train"] == counts["measure"] == trainings
    assert trainings >= 10 * 7 * 4 + 3 * 11  # CIFAR nets x noise levels x seeds, FC nets x seeds


def test_default_config_satisfies_its_promises():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    sources = {d["source"] for d in config["datasets"].values()}
    assert {"mnist5k", "scale_detection_2d", "scale_detection_1d"} <= sources
    for experiment in config["experiments"].values():
        assert len(experiment["seeds"]) >= 4  # enough for a verdict with a seed to spare
        measure = experiment["measure"]
        assert set(measure["checkpoints"]) & {"init"} and len(measure["checkpoints"]) >= 2
        if measure.get("deformation", "diffeo") == "diffeo":  # several sizes, 1 pixel among them
            assert len(measure["deltas"]) >= 3 and 1 in measure["deltas"]
    assert sum(len(e["variants"]) for e in config["experiments"].values()) >= 4
    digits = config["experiments"]["mnist"]  # a noise series, measured both ways
    noises = {v.get("training", {}).get("training_noise", 0) for v in digits["variants"].values()}
    assert len(noises) >= 3 and 0 in noises
    assert "noisy" in digits["measure"]["conditions"]


def test_the_library_and_the_command_take_their_settings_from_the_schema():
    assert resolve_config({}) == defaults("training")
    assert (
        sorted(SCHEMA["$defs"]["model"]["properties"]["name"]["anyOf"][0]["enum"]) == list_models()
    )
    from diffsens.cli import _parser

    measure = next(
        action
        for action in _parser()._subparsers._group_actions[0].choices.values()
        if action.prog.endswith("measure")
    )
    options = {a.dest: a for a in measure._actions if a.option_strings}
    for key, spec in group("measure")["properties"].items():
        if key == "checkpoints":
            continue
        assert f"(default: {spec['default']})" in options[key].help, key
        if "enum" in spec:
            assert list(options[key].choices) == spec["enum"], key


def test_the_schema_offers_the_choices_of_the_library():
    from diffsens.perturb import NOISES
    from diffsens.sensitivity import DEFORMATIONS, STATISTICS
    from diffsens.theory import INPUTS

    measure, theory = group("measure")["properties"], group("theory")["properties"]
    assert measure["deformation"]["enum"] == list(DEFORMATIONS)
    assert measure["statistic"]["enum"] == list(STATISTICS)
    assert sorted(measure["noise"]["enum"]) == sorted(theory["noise"]["enum"]) == sorted(NOISES)
    assert theory["networks"]["items"]["properties"]["inputs"]["enum"] == list(INPUTS)


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


def copy_of(run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(run, workdir, symlinks=True)
    return workdir


@pytest.mark.parametrize(
    ("damaged", "rebuilt_by"),
    [
        ("results/cubes/tiny/a.nc", "results/cubes/tiny/a.nc"),
        (
            "results/train/tiny/a/seed~0/checkpoints/best.pt",
            "results/train/tiny/a/seed~0/checkpoints",
        ),
    ],
    ids=["cube (a file input)", "checkpoint (inside a folder input)"],
)
def test_a_corrupted_file_names_the_command_that_rebuilds_it_and_the_command_works(
    tiny_run, tmp_path, damaged, rebuilt_by
):
    workdir = copy_of(tiny_run, tmp_path)
    path = workdir / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    rule, reader = (
        ("plot_layerwise", "results/figures/tiny/layerwise.png")
        if "cubes" in damaged
        else ("measure", "results/cubes/tiny/a.nc")
    )
    profile = ("--workflow-profile", str(REPO / "profiles" / "default"))
    result = snakemake(workdir, TINY, *profile, reader, "--forcerun", rule, check=False)  # fails
    logs = "\n".join(p.read_text() for p in (workdir / "results" / "logs").rglob("*.log"))
    assert result.returncode != 0
    assert "truncated" in logs or "unreadable or corrupted" in logs, logs[-3000:]
    assert f"snakemake --forcerun {rebuilt_by}" in logs
    snakemake(workdir, TINY, *profile, reader, "--forcerun", rebuilt_by)  # the advice repairs it
    assert planned_jobs(workdir, TINY, reader) == set()


def test_a_changed_dataset_retrains_on_the_new_data(tiny_run, tmp_path):
    workdir = copy_of(tiny_run, tmp_path)
    before = torch.load(
        workdir / "results/train/tiny/a/seed~0/checkpoints/last.pt", weights_only=True
    )
    config = edited(lambda c: c["datasets"]["digits"].update(n_test=200))
    profile = ("--workflow-profile", str(REPO / "profiles" / "default"))
    snakemake(workdir, config, *profile, "results/cubes/tiny/a.nc")  # the path through a
    after = torch.load(
        workdir / "results/train/tiny/a/seed~0/checkpoints/last.pt", weights_only=True
    )
    assert after["dataset"]["settings"]["n_test"] == 200
    assert after["dataset"]["fingerprint"] != before["dataset"]["fingerprint"]
    assert not torch.equal(
        after["state_dict"]["conv1.weight"], before["state_dict"]["conv1.weight"]
    )
    log = (workdir / "results/logs/train/tiny/a/seed~0.log").read_text()
    assert "made with another data" in log and "starting afresh" in log
    with xr.open_dataset(workdir / "results/cubes/tiny/a.nc") as cube:
        assert json.loads(cube.attrs["dataset"])["settings"]["n_test"] == 200


def test_the_cost_table_is_what_the_cost_command_prints(tiny_run):
    expected = estimate_cost(Config(TINY))
    table = pd.read_csv(tiny_run / "results" / "cost.csv")
    assert list(table.network) == list(expected.network)
    np.testing.assert_allclose(table.gpu_hours, expected.gpu_hours)
    assert cost_line(expected) in (tiny_run / "results" / "cost.md").read_text()


def test_a_results_tree_without_snakemake_records_reruns_what_its_settings_no_longer_match(
    tiny_run, tmp_path
):
    """Settings travel with the results: a copied tree, or one whose .snakemake/ is gone."""
    workdir = copy_of(tiny_run, tmp_path)
    shutil.rmtree(workdir / ".snakemake")
    assert planned_jobs(workdir, TINY) == set()  # made with these settings: nothing to redo
    config = edited(lambda c: c["datasets"]["digits"].update(n_test=90))
    planned = planned_jobs(workdir, config)
    assert {job("prepare_data", dataset="digits")} | {
        job(rule, experiment="tiny", variant=v, seed=0)
        for rule in ("train", "measure")
        for v in ("a", "b")
    } <= planned
    assert planned_jobs(workdir, TINY) == set()  # dry runs leave no trace: back, nothing to do
