import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
import xarray as xr

from diffsens.data import PreparedData, prepare
from diffsens.train import load_checkpoint, resolve_config, train

SMALL_CNN = {"name": "simple_cnn", "dim": 2, "depth": 3, "width": 8, "pooling": "max"}


@pytest.fixture(scope="module")
def mnist():
    return prepare("mnist5k", n_test=500, seed=0)


def separable_1d(n=64):
    """Labels are the sign of the first value, with a wide margin: a hinge loss of 0 is reachable."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * n, 1, 4, 4, generator=g)
    y = torch.where(torch.arange(2 * n) % 2 == 0, 1.0, -1.0)
    x[:, 0, 0, 0] = 3 * y
    return PreparedData("separable", x[:n], y[:n], x[n:], y[n:], 1, (0.0,), {})


def test_small_cnn_learns_mnist5k(mnist, tmp_path):
    config = {"optimizer": "adam", "lr": 3e-3, "epochs": 2, "batch_size": 64, "weight_decay": 0.0}
    spec = {"name": "simple_cnn", "dim": 2, "depth": 3, "width": 16, "pooling": "max"}
    history = train(spec, mnist, config, tmp_path)
    assert history.test_error.sel(epoch=0) > 0.7  # chance is 0.9
    assert history.test_error.sel(epoch=2) < 0.25


def test_small_cnn_learns_scale_detection_2d(tmp_path):
    data = prepare("scale_detection_2d", n_train=1024, n_test=512, seed=0)
    config = {"loss": "hinge", "optimizer": "adam", "lr": 1e-3, "epochs": 6, "weight_decay": 0.0}
    spec = {"name": "simple_cnn", "dim": 2, "depth": 4, "width": 32, "pooling": "max"}
    history = train(spec, data, config, tmp_path)
    assert history.test_error.min() < 0.3  # chance is 0.5


def test_outputs_checkpoints_and_history(mnist, tmp_path):
    config = {"epochs": 3, "lr": 0.05, "save_epochs": [2], "scheduler": "cosine"}
    history = train(SMALL_CNN, mnist, config, tmp_path)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best.pt", "epoch_2.pt", "init.pt", "last.pt"]
    with xr.open_dataset(tmp_path / "history.nc") as saved:
        xr.testing.assert_allclose(saved, history)
        assert list(saved.epoch.values) == [0, 1, 2, 3]
        assert np.isnan(saved.train_loss.sel(epoch=0))
        assert saved.attrs["device"].startswith("cpu")
        # cosine annealing: lr_e = lr/2 (1 + cos(pi (e-1) / E)) during epoch e
        np.testing.assert_allclose(
            saved.lr.sel(epoch=[1, 2, 3]),
            [0.05 * (1 + np.cos(np.pi * k / 3)) / 2 for k in range(3)],
        )
    best_epoch = int(np.argmin(history.test_error.sel(epoch=slice(1, None)).values)) + 1
    model, checkpoint = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert checkpoint["epoch"] == best_epoch == history.attrs["best_epoch"]
    with torch.no_grad():
        error = (model(mnist.test_images).argmax(1) != mnist.test_labels).float().mean().item()
    assert (
        error
        == pytest.approx(checkpoint["test_error"])
        == pytest.approx(float(history.test_error.sel(epoch=best_epoch)))
    )
    assert load_checkpoint(tmp_path / "checkpoints" / "init.pt")[1]["epoch"] == 0


def test_finished_run_is_not_repeated(tmp_path):
    data = separable_1d()
    spec = {"name": "fc2", "width": 8}
    first = train(spec, data, {"loss": "hinge", "epochs": 2}, tmp_path)
    stamp = (tmp_path / "checkpoints" / "last.pt").stat().st_mtime_ns
    again = train(spec, data, {"loss": "hinge", "epochs": 2}, tmp_path)
    xr.testing.assert_identical(first, again)
    assert (tmp_path / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp


def test_changed_settings_refuse_to_resume_or_restart(tmp_path):
    spec = {"name": "fc2", "width": 8}
    train(spec, separable_1d(), {"loss": "hinge", "epochs": 1}, tmp_path)
    with pytest.raises(ValueError, match="other training settings"):
        train(spec, separable_1d(), {"loss": "hinge", "epochs": 1, "lr": 0.5}, tmp_path)
    with pytest.raises(ValueError, match="other training settings"):
        train({"name": "fc2", "width": 9}, separable_1d(), {"loss": "hinge", "epochs": 1}, tmp_path)
    fresh = train(spec, separable_1d(), {"loss": "hinge", "epochs": 2, "lr": 0.5}, tmp_path / "x")
    restarted = train(
        spec,
        separable_1d(),
        {"loss": "hinge", "epochs": 2, "lr": 0.5},
        tmp_path,
        restart_on_change=True,
    )
    xr.testing.assert_equal(restarted.drop_vars("time"), fresh.drop_vars("time"))


def test_stop_at_zero_loss(tmp_path):
    config = {
        "loss": "hinge",
        "epochs": 50,
        "optimizer": "sgd",
        "lr": 0.1,
        "stop_at_zero_loss": True,
        "batch_size": 8,
    }
    history = train({"name": "fc2", "width": 16}, separable_1d(), config, tmp_path)
    assert history.train_loss[-1] == 0 and history.sizes["epoch"] < 51
    assert (history.train_loss[1:-1] > 0).all()


def test_l2_penalty_shrinks_weights(tmp_path):
    data = separable_1d()
    config = {"loss": "hinge", "epochs": 1, "l2_penalty": 1.0, "optimizer": "sgd", "lr": 0.01}
    train({"name": "fc2", "width": 8}, data, {**config, "l2_penalty": 0.0}, tmp_path / "a")
    train({"name": "fc2", "width": 8}, data, config, tmp_path / "b")

    def weight_norm(run):
        state = load_checkpoint(tmp_path / run / "checkpoints" / "last.pt")[0].state_dict()
        return sum(float(p.square().sum()) for p in state.values())

    assert weight_norm("b") < 0.99 * weight_norm("a")  # the penalty shrinks the weights


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    config = {"loss": "hinge", "epochs": 3, "lr": 1e30, "momentum": 0.0, "weight_decay": 0.0}
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train({"name": "fc2", "width": 8}, separable_1d(), config, tmp_path)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"learning_rate": 0.1}, r"unknown training setting\(s\) \['learning_rate'\]"),
        ({"optimizer": "rmsprop"}, "'optimizer' must be one of"),
        ({"lr": -1}, "'lr' must be a finite number >= 0"),
        ({"epochs": 0}, "'epochs' must be an integer >= 1"),
        ({"save_epochs": [20]}, "'save_epochs' must list epochs in 1..10"),
        ({"device": "tpu"}, "'device' must be"),
        ({"mixed_precision": "yes"}, "true or false"),
    ],
)
def test_bad_settings(config, match):
    with pytest.raises(ValueError, match=match):
        resolve_config(config)


def test_loss_must_match_labels(mnist, tmp_path):
    with pytest.raises(ValueError, match="hinge"):
        train(SMALL_CNN, mnist, {"loss": "hinge"}, tmp_path)
    with pytest.raises(ValueError, match="use loss 'hinge'"):
        train({"name": "fc2"}, separable_1d(), {}, tmp_path)


JOB = """
import sys, torch
from diffsens.data import prepare
from diffsens.train import train
torch.set_num_threads(1)
data = prepare("scale_detection_2d", n_train=768, n_test=64, seed=0)
config = {"loss": "hinge", "epochs": 6, "lr": 0.02, "batch_size": 16, "augmentation": "crop_flip",
          "training_noise": 5.0, "seed": 3}
train({"name": "simple_cnn", "dim": 2, "depth": 3, "width": 16, "pooling": "max"}, data, config, sys.argv[1])
"""


def run_job(out, script):
    return subprocess.Popen(
        [sys.executable, str(script), str(out)], stderr=subprocess.PIPE, text=True
    )


def wait_for_epoch(out, epoch, process, timeout=120):
    """Block until the saved state has finished ``epoch`` (read atomically written files only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = out / "state" / "state.pt"
        if path.exists() and torch.load(path, weights_only=True)["epoch"] >= epoch:
            return
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    raise TimeoutError


def final_weights(out):
    return torch.load(out / "checkpoints" / "last.pt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    script = root / "job.py"
    script.write_text(textwrap.dedent(JOB))
    subprocess.run([sys.executable, str(script), str(root / "reference")], check=True)
    return (
        script,
        final_weights(root / "reference"),
        xr.open_dataset(root / "reference" / "history.nc").load(),
    )


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted_run(uninterrupted, tmp_path):
    script, reference, reference_history = uninterrupted
    process = run_job(tmp_path, script)
    wait_for_epoch(tmp_path, 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "history.nc").exists()  # the run did not finish
    shutil.rmtree(tmp_path / "checkpoints")  # as a workflow manager removes a failed job's outputs
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best.pt",
        "init.pt",
        "last.pt",
    ]
    resumed = final_weights(tmp_path)
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name
    with xr.open_dataset(tmp_path / "history.nc") as history:
        xr.testing.assert_equal(
            history[["train_loss", "test_error", "lr"]],
            reference_history[["train_loss", "test_error", "lr"]],
        )


@pytest.mark.slow
def test_sigterm_saves_exits_nonzero_and_resumes(uninterrupted, tmp_path):
    script, reference, _ = uninterrupted
    process = run_job(tmp_path, script)
    wait_for_epoch(tmp_path, 1, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0 and "SIGTERM" in stderr and "run again to resume" in stderr
    state = torch.load(tmp_path / "state" / "state.pt", weights_only=True)
    assert state["position"] is not None and state["position"]["batch"] > 0  # saved mid-epoch
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True)
    resumed = final_weights(tmp_path)
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name


def test_weight_decay_can_spare_biases_and_norms():
    from diffsens.train import _optimizer, build_model

    model = build_model(
        {"name": "vgg11_bn"}, {"in_channels": 3, "num_classes": 10, "input_size": 32}
    )
    spared = _optimizer(model, resolve_config({"decay_biases_and_norms": False}))
    decayed, exempt = spared.param_groups
    assert all(p.ndim > 1 for p in decayed["params"]) and decayed["weight_decay"] == 5e-4
    assert all(p.ndim == 1 for p in exempt["params"]) and exempt["weight_decay"] == 0.0
    (everything,) = _optimizer(model, resolve_config({})).param_groups
    assert len(everything["params"]) == len(list(model.parameters()))
