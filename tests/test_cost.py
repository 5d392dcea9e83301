"""What a config costs: counts by hand-checkable rules, seconds from a calibration or the
conservative model, and the paper grid within its budget."""

import logging

import pandas as pd
import pytest

from diffsens.cli import main
from diffsens.config import Config, read_yaml
from diffsens.cost import (
    CONSERVATIVE,
    SHORT_TRAINING_S,
    Costs,
    calibration_networks,
    cost_line,
    data_mb,
    estimate_cost,
    forward_flops,
    memory_mb,
    read_calibration,
)
from diffsens.data import DataShape
from diffsens.io import CorruptedFile
from diffsens.settings import SettingsError
from tests.workflow_helpers import REPO, job, planned_jobs, snakemake, variant_count

CONFIG = {
    "datasets": {"digits": {"source": "mnist5k"}},  # 4000 train, 1000 test, 1 x 28 x 28
    "experiments": {
        "e": {
            "dataset": "digits",
            "seeds": [0, 1, 2],
            "model": {"name": "fc2"},
            "training": {"epochs": 4, "batch_size": 100},
            "measure": {
                "probes": 50,
                "deltas": [0.5, 1],
                "checkpoints": ["init", "best", "last"],
                "conditions": ["original"],
            },
            "variants": {
                "a": {},
                "b": {"training": {"epochs": 10}},
                "c": {"model": {"name": "fc4"}},
            },
        }
    },
}
FC2 = "digits:fc2"


def test_counts_follow_the_config():
    table = estimate_cost(Config(CONFIG)).set_index("network")
    assert table.loc[FC2, ["trainings", "epochs", "measurements"]].tolist() == [
        6,  # a and b share a network, 3 seeds each
        3 * 4 + 3 * 10,
        2 * 3 * 3,  # 3 checkpoints x 1 condition per training
    ]
    assert table.loc["digits:fc4", "trainings"] == 3


def test_seconds_come_from_a_calibration_where_it_has_the_network(tmp_path):
    path = tmp_path / "calibration.csv"
    path.write_text(
        "network,train_image_s,inference_image_s,device\ndigits:fc2,0.001,0.0002,NVIDIA H100\n"
    )
    table = estimate_cost(Config(CONFIG), read_calibration(path)).set_index("network")
    row = table.loc[FC2]
    assert row.source == "calibrated on NVIDIA H100"
    assert table.loc["digits:fc4", "source"] == "model"
    assert row.epoch_s == pytest.approx(4000 * 0.001 + 1000 * 0.0002)
    assert row.measure_s == pytest.approx(50 * (1 + 2 * 2) * 0.0002)  # clean, then D and G per δ
    assert row.gpu_hours == pytest.approx((42 * row.epoch_s + 18 * row.measure_s) / 3600)


def test_a_calibration_by_hand_is_checked_row_by_row_and_unused_rows_are_named(tmp_path):
    path = tmp_path / "calibration.csv"
    header = "network,train_image_s,inference_image_s\n"  # no device: written by hand
    path.write_text(header + "digits:fc2,0.001,0.0002\ndigits:fc22,0.001,0.0002\n")
    calibration = read_calibration(path)
    assert calibration[FC2]["device"] == "an unnamed device"
    line = cost_line(estimate_cost(Config(CONFIG), calibration), calibration)
    assert "calibrated on an unnamed device" in line
    assert "the calibration's ['digits:fc22'] match no network here, unused" in line
    for bad in ("nan", "-0.001", "0", "inf"):
        path.write_text(header + f"digits:fc2,0.001,0.0002\ndigits:fc4,{bad},0.0002\n")
        with pytest.raises(CorruptedFile, match=r"line 3 \(digits:fc4\): train_image_s is"):
            read_calibration(path)


def test_the_conservative_model_counts_flops_and_steps():
    config = Config(CONFIG)
    flops = forward_flops({"name": "fc2"}, config.shapes["digits"])
    assert flops == 2 * (784 * 64 + 64 * 10)  # two matrix products, multiply and add
    row = estimate_cost(config).set_index("network").loc[FC2]
    rate, step = CONSERVATIVE["flops_per_second"], CONSERVATIVE["seconds_per_step"]
    train_image, inference_image = 3 * flops / rate + step / 100, flops / rate
    assert row.epoch_s == pytest.approx(4000 * train_image + 1000 * inference_image)
    assert row.source == "model"


def test_a_validation_set_is_trained_on_no_more():
    config = {**CONFIG, "experiments": {"e": {**CONFIG["experiments"]["e"], "variants": {"a": {}}}}}
    config["experiments"]["e"]["training"] = {"epochs": 4, "batch_size": 100, "validation": 500}
    row = estimate_cost(Config(config)).iloc[0]
    flops = 2 * (784 * 64 + 64 * 10)
    rate, step = CONSERVATIVE["flops_per_second"], CONSERVATIVE["seconds_per_step"]
    expected = 3500 * (3 * flops / rate + step / 100) + 1500 * flops / rate
    assert row.epoch_s == pytest.approx(expected)


def test_the_paper_grid_fits_its_budget_without_a_calibration():
    raw = read_yaml(REPO / "config" / "paper.yaml")
    table = estimate_cost(Config(raw))
    trainings = sum(
        len(e.get("seeds", [0])) * variant_count(e) for e in raw["experiments"].values()
    )
    assert table.trainings.sum() == trainings
    assert table.gpu_hours.sum() <= 600
    assert set(table.source) == {"model"}


def test_the_command_prints_the_table_and_refuses_a_bad_calibration(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(__import__("yaml").safe_dump(CONFIG))
    main(["cost", str(config)])
    printed = capsys.readouterr().out
    assert "| `digits:fc2` | 6 | 42 | 18 |" in printed
    assert "GPU-hours at most (epochs at their caps), seconds from model" in printed
    bad = tmp_path / "bad.csv"
    bad.write_text("network,seconds\ndigits:fc2,1\n")
    with pytest.raises(CorruptedFile, match=r"lacks the column\(s\) \['train_image_s'"):
        read_calibration(bad)
    with pytest.raises(SystemExit, match="calibration table"):
        main(["cost", str(config), "--calibration", str(bad)])


def test_a_calibration_measured_here_replaces_the_model(tmp_path, capsys, caplog):
    config = tmp_path / "config.yaml"
    config.write_text(__import__("yaml").safe_dump(CONFIG))
    table = tmp_path / "calibration.csv"
    with caplog.at_level(logging.WARNING):
        main(["calibrate", str(config), "--out", str(table), "--device", "cpu", "--steps", "3"])
    assert "wrote" in capsys.readouterr().out
    assert "timing 3 steps per network leaves the table to the noise" in caplog.text
    calibration = read_calibration(table)
    assert set(calibration) == {FC2, "digits:fc4"}
    for row in calibration.values():
        assert row["train_image_s"] > 0 and row["inference_image_s"] > 0
        assert row["device"] == "cpu"
    costs = estimate_cost(Config(CONFIG), calibration)
    assert "timed on a CPU, not on a GPU" in cost_line(costs)
    costs = costs.set_index("network")
    assert set(costs.source) == {"calibrated on cpu"}
    per_image = calibration[FC2]
    expected = 4000 * per_image["train_image_s"] + 1000 * per_image["inference_image_s"]
    assert costs.loc[FC2, "epoch_s"] == pytest.approx(expected)


def test_calibration_times_each_network_once_on_the_datasets_asked_for():
    raw = {
        **CONFIG,
        "datasets": {**CONFIG["datasets"], "other": {"source": "mnist5k", "n_test": 100}},
        "experiments": {
            **CONFIG["experiments"],
            "f": {
                "dataset": "other",
                "model": {"name": "fc2"},
                "measure": {"probes": 50},
                "variants": {"a": {}},
            },
        },
    }
    config = Config(raw)
    networks = calibration_networks(config)
    assert list(networks) == [FC2, "digits:fc4", "other:fc2"]  # variant b shares a's network
    assert networks[FC2]["batch_size"] == 100
    assert networks["other:fc2"]["shape"]["n_test"] == 100
    assert list(calibration_networks(config, ["other"])) == ["other:fc2"]


def test_short_trainings_are_the_ones_estimated_under_the_limit():
    costs = Costs(Config(CONFIG))
    job = costs.variant("e", "b")
    assert costs.training_s("e", "b") == job["epochs"] * job["epoch_s"] == 10 * job["epoch_s"]
    assert costs.training_s("e", "b") < SHORT_TRAINING_S  # fc2 on 4000 digits, 10 epochs


def test_memory_follows_the_data_and_the_attempt():
    cifar = DataShape(
        dims=2, in_channels=3, input_size=32, num_classes=10, n_train=50000, n_test=10000
    )
    assert data_mb(cifar) == pytest.approx(4 * 60000 * 3 * 32 * 32 / 1e6)  # 737.28 MB
    assert memory_mb(data_mb(cifar)) == 6212  # 4000 + 3 x 737.28, rounded up
    assert memory_mb(data_mb(cifar), attempt=2) == 2 * 6212
    job = Costs(Config(CONFIG)).variant("e", "a")
    assert job["data_mb"] == pytest.approx(4 * 5000 * 28 * 28 / 1e6)  # 4000 + 1000 digits


def test_small_costs_keep_two_digits_and_large_ones_one_decimal():
    def line(*hours):
        rows = [
            {"network": f"n{i}", "gpu_hours": h, "source": "model"} for i, h in enumerate(hours)
        ]
        return cost_line(pd.DataFrame(rows))

    assert line(0.01, 0.0123).startswith("0.022 GPU-hours")  # not a bare 0.0
    assert line(0.5, 0.7).startswith("1.2 GPU-hours")
    assert line(300.04, 45.0).startswith("345.0 GPU-hours")


def test_a_missing_calibration_table_is_a_config_error(tmp_path):
    missing = tmp_path / "calibration.csv"
    with pytest.raises(SettingsError, match=r"calibration: no file .*snakemake calibration"):
        Config({**CONFIG, "calibration": str(missing)})
    Config({**CONFIG, "calibration": str(missing)}, against_data=False)  # a job's re-read


def test_the_workflow_makes_a_missing_calibration_and_refuses_other_runs_without_it(tmp_path):
    config = {**CONFIG, "calibration": "tables/timing.csv"}
    planned = planned_jobs(tmp_path, config, "calibration")
    assert planned == {job("calibrate", dataset="digits"), job("calibration")}
    made = snakemake(tmp_path, config, "calibration", "--dry-run")
    assert "output: tables/timing.csv" in made.stdout  # the table where the config names it
    refused = snakemake(tmp_path, config, "--dry-run", check=False)
    assert refused.returncode != 0 and not (tmp_path / "results" / "train").exists()
    said = refused.stdout + refused.stderr
    assert "calibration: no file 'tables/timing.csv'" in said
    assert "`snakemake calibration`" in said
