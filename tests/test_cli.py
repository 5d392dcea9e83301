import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from diffsens.cli import main
from diffsens.data import prepare
from diffsens.train import load_checkpoint, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = prepare("mnist5k", n_test=100)
    data.save(root / "digits.pt")
    spec = {"name": "simple_cnn", "depth": 2, "width": 8, "pooling": "max"}
    train(spec, data, {"optimizer": "adam", "lr": 0.005, "epochs": 1}, root / "run", seed=4)
    return root


def test_measure_writes_a_cube_and_show_reads_it(trained, capsys):
    checkpoints = trained / "run" / "checkpoints"
    out = trained / "cube.nc"
    main(
        [
            "measure",
            str(checkpoints / "init.pt"),
            f"trained={checkpoints / 'best.pt'}",
            "--data",
            str(trained / "digits.pt"),
            "--out",
            str(out),
            "--probes",
            "30",
            "--temperatures",
            "3",
            "--seed",
            "2",
            "--device",
            "cpu",
        ]
    )
    assert f"wrote {out}" in capsys.readouterr().out
    with xr.open_dataset(out) as cube:
        assert dict(cube.sizes) == {
            "seed": 1,
            "checkpoint": 2,
            "condition": 2,
            "layer": 5,
            "temperature": 3,
        }
        assert list(cube.checkpoint.values) == ["init", "trained"]
        assert cube.seed.item() == 4 and cube.measure_seed.item() == 2  # trained, measured with
        np.testing.assert_allclose(cube.R, cube.D / cube.G)
        assert cube.attrs["device"].startswith("cpu") and "git_commit" in cube.attrs
    main(["show", str(out)])
    shown = capsys.readouterr().out
    assert "R = D / G by layer" in shown and "relu2" in shown and "shuffled" in shown
    assert "test error (mean over seeds): init=" in shown


def test_console_script_is_installed(trained):
    exe = Path(sys.executable).with_name("diffsens")
    result = subprocess.run(
        [str(exe), "show", str(trained / "missing.nc")], capture_output=True, text=True
    )
    assert result.returncode != 0 and "does not exist" in result.stderr


def test_bad_checkpoint_path_is_named(trained, capsys):
    with pytest.raises(SystemExit):
        main(["measure", str(trained / "nope.pt"), "--data", "x", "--out", "y.nc"])
    error = capsys.readouterr().err
    assert "checkpoint file" in error and "nope.pt" in error and "does not exist" in error


def measure(trained, *arguments):
    checkpoints = trained / "run" / "checkpoints"
    main(["measure", str(checkpoints / "init.pt"), *arguments, "--out", str(trained / "x.nc")])


def test_the_cube_describes_its_model_and_training_like_a_workflow_cube(trained):
    from diffsens.provenance import RunSettings

    with xr.open_dataset(trained / "cube.nc") as cube:
        settings = RunSettings.from_attrs(cube.attrs)
    checkpoint = load_checkpoint(trained / "run" / "checkpoints" / "best.pt")[1]
    assert settings.model == checkpoint["model"] and settings.training == checkpoint["training"]
    assert settings.dataset == checkpoint["dataset"] and settings.measure["probes"] == 30
    assert (settings.experiment, settings.variant) == ("", "")
    assert settings.measure["checkpoints"] == ["init", "trained"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--data", "missing/digits.pt"],
            r"--data: 'missing/digits\.pt' is neither a file \(no su",
        ),
        (
            ["--data", "{data}", "--probes", "1"],
            r"measure\.probes: 1 is less than the minimum of 2",
        ),
        (["--data", "{data}", "--probes", "101"], "101 probes, but the test set has 100 images"),
        (
            ["--data", "{data}", "--temperatures", "0"],
            r"measure\.temperatures: 0 is not valid here: 0 is less than the minimum of 1",
        ),
        (["--data", "{data}", "--temperatures", "0.01", "-1"], r"-1 is less than or equal to"),
        (["again={init}", "--data", "{data}"], "the same file is given twice"),
        (["--data", "scale_detection_2d"], "trained on mnist5k .* but the probes come from other"),
    ],
)
def test_bad_measure_arguments_say_what_is_wrong(trained, capsys, arguments, message):
    init = trained / "run" / "checkpoints" / "init.pt"
    arguments = [a.format(data=trained / "digits.pt", init=init) for a in arguments]
    with pytest.raises(SystemExit) as caught:
        measure(trained, *arguments)
    text = str(caught.value) + capsys.readouterr().err
    assert re.search(message, text), text
    assert not (trained / "x.nc").exists()


def test_other_data_is_measured_when_asked_for_and_recorded(trained):
    measure(trained, "--data", "mnist5k", "--probes", "20", "--temperatures", "1", "--other-data")
    with xr.open_dataset(trained / "x.nc") as cube:
        assert json.loads(cube.attrs["dataset"])["settings"]["n_test"] == 1000  # the probes
        assert json.loads(cube.attrs["training_dataset"])["settings"]["n_test"] == 100
    (trained / "x.nc").unlink()


def test_show_says_what_a_file_is_when_it_is_not_a_cube(trained):
    history = trained / "run" / "history.nc"
    with pytest.raises(SystemExit, match=r"is a NetCDF file but not a cube: it lacks \['D'"):
        main(["show", str(history)])
    with pytest.raises(SystemExit, match="not a NetCDF file"):
        main(["show", str(trained / "run" / "checkpoints" / "init.pt")])


def test_check_config(tmp_path, capsys):
    main(["check-config", str(Path(__file__).parents[1] / "config" / "config.yaml")])
    assert "valid (3 datasets, 3 experiments" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text("datasets: {a: {source: mnist5k}}\nexperiments: {}\n")
    with pytest.raises(SystemExit, match=r"experiments: \{\} should be non-empty"):
        main(["check-config", str(tmp_path / "bad.yaml")])
