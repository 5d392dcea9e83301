import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from diffsens.cli import main
from diffsens.data import prepare
from diffsens.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = prepare("mnist5k", n_test=100)
    data.save(root / "digits.pt")
    spec = {"name": "simple_cnn", "depth": 2, "width": 8, "pooling": "max"}
    train(spec, data, {"optimizer": "adam", "lr": 0.005, "epochs": 1, "seed": 4}, root / "run")
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
        assert list(cube.checkpoint.values) == ["init", "trained"] and cube.seed.item() == 2
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
