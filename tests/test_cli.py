import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from diffsens.cli import main
from diffsens.data import prepare
from diffsens.io import write_netcdf
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
    assert "D, G and R = D / G by layer" in shown and "relu2" in shown and "shuffled" in shown
    assert "test error (mean over seeds): init=" in shown
    with xr.open_dataset(out) as cube:
        deltas = cube.delta.values
        smallest = cube.isel(temperature=0).mean("seed")
    main(["show", str(out), "--delta", str(deltas[0] / 2)])
    shown = capsys.readouterr().out
    assert f"(delta = {deltas[0]:.2f} px, the measured one nearest {deltas[0] / 2:g} px)" in shown
    row = next(line for line in shown.splitlines() if line.startswith("relu2 "))
    D_init_original = float(row.split()[1])
    assert D_init_original == pytest.approx(
        float(smallest.D.sel(layer="relu2", checkpoint="init", condition="original")), rel=1e-2
    )


def test_show_reads_cubes_without_torch(trained):
    """What makes it answer in about a second: importing torch alone takes seconds."""
    code = (
        "import sys; from diffsens.cli import main; "
        f"main(['show', {str(trained / 'cube.nc')!r}]); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "relu2" in result.stdout


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
        (
            ["--data", "{data}", "--probes", "20", "--deltas", "0.5", "--temperatures", "3"],
            r"- deltas: set either temperatures or deltas, not both",
        ),
        (
            ["digits={data}", "--data", "{data}", "--probes", "20"],
            r"digits\.pt' is a prepared dataset, not a checkpoint",
        ),
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


def test_a_plain_state_dict_is_measured_with_its_model_spec(trained, tmp_path, caplog, capsys):
    import torch

    from diffsens.data import PreparedData
    from diffsens.models import build_spec

    data = PreparedData.load(trained / "digits.pt")
    spec = {"name": "simple_cnn", "depth": 2, "width": 8}
    torch.manual_seed(0)
    net = build_spec(spec, in_channels=1, num_classes=10, input_size=28).eval()
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    out = tmp_path / "plain.nc"
    arguments = ["--data", str(trained / "digits.pt"), "--out", str(out), "--probes", "8"]
    main(
        [
            "measure",
            f"mine={tmp_path / 'weights.pt'}",
            "--model",
            "{name: simple_cnn, depth: 2, width: 8}",
            *arguments,
            "--temperatures",
            "1",
            "--seed",
            "3",
        ]
    )
    with torch.no_grad():
        wrong = (net(data.test_images).argmax(1) != data.test_labels).float().mean().item()
    with xr.open_dataset(out) as cube:
        assert list(cube.layer.values) == list(net.probe_points)
        assert cube.test_error.item() == pytest.approx(
            wrong
        )  # measured on the probe set's test set
        assert cube.epoch.item() == -1 and cube.seed.item() == 3
        assert json.loads(cube.attrs["model"]) == spec
        assert json.loads(cube.attrs["training_dataset"])["name"] == "unknown"
        # an untrained net is at chance (0.9 for 10 classes): loud in the log, the cube, show
        assert wrong >= 0.81 and json.loads(cube.attrs["at_chance"]) == ["mine"]
    assert f"checkpoint mine of {spec} has test error {wrong:.3f}" in caplog.text
    assert "trained on other preprocessing?" in caplog.text
    main(["show", str(out)])
    assert "WARNING: checkpoint(s) ['mine'] are at chance" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"is a plain state_dict: it does not say which network"):
        main(["measure", str(tmp_path / "weights.pt"), *arguments])
    with pytest.raises(
        SystemExit,
        match=r"does not hold the weights of model \{'depth': 3, .*\} built for 1 input channel\(s\), inputs of size 28 and 10 output\(s\): 2 missing \(conv3.weight, conv3.bias\)",
    ):
        main(
            [
                "measure",
                str(tmp_path / "weights.pt"),
                "--model",
                "{name: simple_cnn, depth: 3, width: 8}",
                *arguments,
            ]
        )
    with pytest.raises(
        SystemExit, match=r"'torchvision:resnet18' cannot take inputs of shape \(1, 1, 28, 28\)"
    ):
        main(
            ["measure", str(tmp_path / "weights.pt"), "--model", "torchvision:resnet18", *arguments]
        )
    with pytest.raises(SystemExit, match=r"holds model .*simple_cnn.*, not \{'name': 'fc2'\}"):
        main(["measure", str(trained / "run/checkpoints/init.pt"), "--model", "fc2", *arguments])
    colour = build_spec(spec, in_channels=3, num_classes=10, input_size=28)  # for RGB images
    torch.save(colour.state_dict(), tmp_path / "rgb.pt")
    model = "{name: simple_cnn, depth: 2, width: 8}"
    with pytest.raises(
        SystemExit,
        match=r"1 of another shape \(conv1.weight is \[8, 3, 3, 3\] in the file, \[8, 1, 3, 3\] in the model\)",
    ):
        main(["measure", str(tmp_path / "rgb.pt"), "--model", model, *arguments])
    with pytest.raises(SystemExit, match=r"model 'simple_cnn' has no option\(s\) \['widht'\]"):
        main(
            [
                "measure",
                str(tmp_path / "weights.pt"),
                "--model",
                "{name: simple_cnn, widht: 8}",
                *arguments,
            ]
        )


def test_displacements_are_given_as_numbers(trained):
    measure(trained, "--data", str(trained / "digits.pt"), "--probes", "10", "--deltas", "1", "0.5")
    with xr.open_dataset(trained / "x.nc") as cube:
        np.testing.assert_allclose(sorted(cube.delta.values), [0.5, 1.0], rtol=1e-6)
    (trained / "x.nc").unlink()


def test_a_torchvision_model_is_trained_and_measured_on_your_own_images(trained, tmp_path):
    from diffsens.checkpoints import measure_run
    from tests.image_folder_fixture import write_image_folder

    images = write_image_folder(tmp_path / "images")
    data = prepare("image_folder", root=str(images), crop=16)
    data.save(tmp_path / "own.pt")
    spec = {"name": "torchvision:resnet18"}
    train(spec, data, {"epochs": 1, "batch_size": 4, "device": "cpu"}, tmp_path / "run")
    run = measure_run(
        {"last": tmp_path / "run/checkpoints/last.pt"},
        data,
        {"probes": 4, "temperatures": 1, "device": "cpu"},
    )
    assert run.layer.values[0] == "relu" and run.layer.values[-1] == "output"
    assert np.isfinite(run.R.values).all()
    # the folder itself as --data: prepared for the checkpoint's network (16 px, RGB) as it was
    # for its training, the same probes, the same data fingerprint
    out = tmp_path / "folder.nc"
    last = str(tmp_path / "run/checkpoints/last.pt")
    options = ["--probes", "4", "--temperatures", "1", "--device", "cpu", "--out", str(out)]
    main(["measure", last, "--data", str(images), *options])
    with xr.open_dataset(out) as cube:
        assert json.loads(cube.attrs["dataset"]) == data.describe()
        np.testing.assert_allclose(cube.R.squeeze(), run.R.squeeze(), rtol=1e-5)
    digits = str(trained / "run/checkpoints/init.pt")  # trained on 1 x 28 x 28 digits
    with pytest.raises(SystemExit, match=r"cannot take the probes, of shape \(3, 16, 16\)"):
        main(
            [
                "measure",
                digits,
                "--data",
                str(tmp_path / "own.pt"),
                "--other-data",
                "--probes",
                "4",
                "--out",
                str(tmp_path / "x.nc"),
            ]
        )


def test_claims_join_the_seeds_of_a_variant_and_test_every_claim(trained, capsys):
    """Three runs measured one by one with ``diffsens measure`` are the seeds of one variant."""
    from diffsens.claims import COLUMNS, ExperimentResults, evaluate_claims
    from diffsens.cubes import merge_seeds
    from diffsens.io import open_netcdf, read_table

    data = prepare("mnist5k", n_test=100)
    spec = {"name": "simple_cnn", "depth": 2, "width": 8, "pooling": "max"}
    cubes = []
    for seed in (4, 5, 6):
        run = trained / ("run" if seed == 4 else f"run{seed}")
        if seed != 4:
            train(spec, data, {"optimizer": "adam", "lr": 0.005, "epochs": 1}, run, seed=seed)
        cubes.append(trained / f"seed{seed}.nc")
        checkpoints = [str(run / "checkpoints" / f"{name}.pt") for name in ("init", "best")]
        main(
            [
                "measure",
                *checkpoints,
                "--data",
                str(trained / "digits.pt"),
                "--out",
                str(cubes[-1]),
                "--probes",
                "30",
                "--deltas",
                "1",
                "--device",
                "cpu",
            ]
        )
    capsys.readouterr()
    out = trained / "claims.csv"
    main(["claims", *map(str, cubes), "--ceiling", "0.9", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "## At a glance (the measured displacement nearest 1 px)" in printed
    assert "| claim | mnist5k / seed4 | mnist5k / (all) |" in printed  # named by the data
    table = read_table(out, columns=COLUMNS)
    merged = merge_seeds({str(path): open_netcdf(path) for path in cubes})
    assert list(merged.seed.values) == [4, 5, 6]
    expected = evaluate_claims({"mnist5k": ExperimentResults({"seed4": merged}, ceiling=0.9)})
    np.testing.assert_allclose(table.estimate, expected.estimate, equal_nan=True)
    assert (table.query("claim == 'D_falls_with_training'").n == 3).all()
    shutil.copyfile(cubes[0], trained / "copy.nc")
    with pytest.raises(SystemExit, match=r"training seed 4 is in both .*seed4.nc and .*copy.nc"):
        main(["claims", str(cubes[0]), str(trained / "copy.nc")])
    # a run without a seed axis (the workflow's sensitivity.nc) is a seed of its own
    single = xr.open_dataset(cubes[2]).load().isel(seed=0).drop_vars(["seed", "measure_seed"])
    single.attrs.update(training_seed=6, seed=6)
    write_netcdf(single, trained / "run6.nc")  # an edited cube, saved with its new checksum
    main(["claims", str(cubes[0]), str(cubes[1]), str(trained / "run6.nc"), "--out", str(out)])
    np.testing.assert_allclose(
        read_table(out, columns=COLUMNS).estimate, expected.estimate, equal_nan=True
    )


@pytest.mark.parametrize("ceiling", ["-1", "0", "nan", "5", "abc"])
def test_claims_refuse_a_ceiling_that_is_not_an_error_rate(trained, capsys, ceiling):
    with pytest.raises(SystemExit):
        main(["claims", str(trained / "cube.nc"), "--ceiling", ceiling])
    assert "is not an error rate: expected a fraction in (0, 1], e.g. 0.1 for 10%" in (
        capsys.readouterr().err
    )


def test_the_workflow_s_resolved_measure_settings_with_deltas_are_measured(trained):
    """A workflow job hands on every measure setting, defaults included: temperatures beside
    deltas is then no conflict (only options given together on the command line are)."""
    from diffsens.checkpoints import measure_run
    from diffsens.data import PreparedData
    from diffsens.settings import resolve

    resolved = resolve("measure", {"deltas": [1.0], "probes": 8, "device": "cpu"})
    assert resolved["temperatures"] is not None
    run = measure_run(
        {"init": trained / "run" / "checkpoints" / "init.pt"},
        PreparedData.load(trained / "digits.pt"),
        {k: v for k, v in resolved.items() if k != "checkpoints"},
    )
    assert run.sizes["temperature"] == 1
