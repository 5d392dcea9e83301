import json
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
from diffsens.io import CorruptedFile
from diffsens.models import build_spec
from diffsens.settings import SettingsError
from diffsens.train import (
    learning_rate,
    load_checkpoint,
    resolve_config,
    ridge_penalty,
    train,
    validation_split,
)

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
    xr.testing.assert_equal(first, again)  # epoch times included: nothing was trained again
    assert (tmp_path / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp


def weights(folder, name="last"):
    return load_checkpoint(folder / "checkpoints" / f"{name}.pt")[0].state_dict()


def same_weights(a, b):
    return all(torch.equal(a[key], b[key]) for key in a)


@pytest.mark.parametrize(
    "change",
    [
        {"config": {"lr": 0.5}},
        {"spec": {"name": "fc2", "width": 9}},
        {"seed": 1},
        {"data": {"flip": True}},
    ],
    ids=["training", "model", "seed", "data"],
)
def test_a_state_made_otherwise_is_discarded_and_training_starts_afresh(tmp_path, caplog, change):
    spec, config, data = {"name": "fc2", "width": 8}, {"loss": "hinge", "epochs": 2}, separable_1d()
    train(spec, data, config, tmp_path / "run")
    spec = change.get("spec", spec)
    config = {**config, **change.get("config", {})}
    seed = change.get("seed", 0)
    if "data" in change:  # other contents under the same name and shape
        data = PreparedData(
            "separable",
            data.train_images.flip(0),
            data.train_labels.flip(0),
            data.test_images,
            data.test_labels,
            1,
            (0.0,),
            {},
        )
    with caplog.at_level("WARNING", logger="diffsens.train"):
        again = train(spec, data, config, tmp_path / "run", seed=seed)
    assert "starting afresh" in caplog.text
    fresh = train(spec, data, config, tmp_path / "fresh", seed=seed)
    xr.testing.assert_equal(again.drop_vars("time"), fresh.drop_vars("time"))
    assert same_weights(weights(tmp_path / "run"), weights(tmp_path / "fresh"))


def test_going_back_to_earlier_settings_republishes_their_training_without_retraining(
    tmp_path, caplog
):
    """An accidental edit, run and reverted, loses nothing: the finished state is kept beside."""
    spec, data = {"name": "fc2", "width": 8}, separable_1d()
    config = {"loss": "hinge", "epochs": 2}
    train(spec, data, config, tmp_path)
    first = weights(tmp_path)
    train(spec, data, {**config, "lr": 0.01}, tmp_path)  # the edit: another training
    assert not same_weights(first, weights(tmp_path))
    assert len(list(tmp_path.glob("state/*/state.pt"))) == 2
    caplog.clear()
    with caplog.at_level("INFO", logger="diffsens.train"):
        train(spec, data, config, tmp_path)  # reverted
    assert "resuming from" in caplog.text and "finished" in caplog.text
    assert "starting afresh" not in caplog.text
    assert same_weights(first, weights(tmp_path))


def test_a_change_of_the_library_code_retrains_and_keeps_the_old_state(
    tmp_path, caplog, monkeypatch
):
    """What `snakemake --forcerun train` after editing src/diffsens relies on."""
    import diffsens.train

    spec, data, config = {"name": "fc2", "width": 8}, separable_1d(), {"loss": "hinge", "epochs": 1}
    train(spec, data, config, tmp_path)
    (old,) = tmp_path.glob("state/*/state.pt")
    monkeypatch.setattr(diffsens.train, "code_digest", lambda: "the code after an edit")
    with caplog.at_level("WARNING", logger="diffsens.train"):
        train(spec, data, config, tmp_path)
    assert "starting afresh" in caplog.text and "made with another code" in caplog.text
    assert old.exists() and len(list(tmp_path.glob("state/*/state.pt"))) == 2


def test_a_changed_dataset_retrains_instead_of_reusing_the_old_model(tmp_path):
    spec, config = {"name": "fc2", "width": 8}, {"epochs": 1, "lr": 0.05}
    train(spec, prepare("mnist5k", n_test=100), config, tmp_path)
    old = weights(tmp_path)
    history = train(spec, prepare("mnist5k", n_test=200), config, tmp_path)
    assert not same_weights(old, weights(tmp_path))
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.pt")[1]
    assert checkpoint["dataset"]["settings"]["n_test"] == 200
    assert json.loads(history.attrs["dataset"])["settings"]["n_test"] == 200


def test_published_checkpoints_are_independent_of_the_state(tmp_path):
    spec, config = {"name": "fc2", "width": 8}, {"loss": "hinge", "epochs": 2}
    train(spec, separable_1d(), config, tmp_path)
    best = tmp_path / "checkpoints" / "best.pt"
    good = best.read_bytes()
    assert best.stat().st_nlink == 1  # a copy, not a link into the state
    best.write_bytes(good[:-100] + bytes(100))  # corrupt the published copy
    with pytest.raises(CorruptedFile, match=r"best\.pt"):
        load_checkpoint(best)
    train(spec, separable_1d(), config, tmp_path)  # following the advice: run again
    assert best.read_bytes() == good
    (tmp_path / "checkpoints" / "init.pt").unlink()  # a deleted checkpoint comes back too
    train(spec, separable_1d(), config, tmp_path)
    load_checkpoint(tmp_path / "checkpoints" / "init.pt")


@pytest.mark.parametrize("damaged", ["state.pt", "checkpoints/best.pt"])
def test_a_corrupted_state_starts_afresh(tmp_path, caplog, damaged):
    spec, config = {"name": "fc2", "width": 8}, {"loss": "hinge", "epochs": 2}
    train(spec, separable_1d(), config, tmp_path / "run")
    reference = weights(tmp_path / "run")
    (state,) = (tmp_path / "run" / "state").iterdir()
    path = state / damaged
    path.write_bytes(path.read_bytes()[:-50] + bytes(50))
    with caplog.at_level("WARNING", logger="diffsens.train"):
        train(spec, separable_1d(), config, tmp_path / "run")
    assert "corrupted" in caplog.text and "starting afresh" in caplog.text
    assert same_weights(weights(tmp_path / "run"), reference)  # the same run, made again


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
    with pytest.raises(
        FloatingPointError,
        match=r"loss became (nan|inf) at epoch \d, batch \d+; lower the learning",
    ):
        train({"name": "fc2", "width": 8}, separable_1d(), config, tmp_path)
    lower = {**config, "lr": 0.01}  # following the advice: a lower learning rate trains
    assert np.isfinite(
        train({"name": "fc2", "width": 8}, separable_1d(), lower, tmp_path).train_loss[1:]
    ).all()
    data = separable_1d()
    data.train_images[5] = float("nan")
    with pytest.raises(FloatingPointError, match="loss became nan at epoch 1, batch 1;"):
        train(
            {"name": "fc2", "width": 8}, data, {"loss": "hinge", "batch_size": 64}, tmp_path / "b"
        )


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"learning_rate": 0.1}, r"'learning_rate' was unexpected\); the keys here are \['augm"),
        ({"seed": 3}, r"'seed' was unexpected"),  # the seed is an argument of train()
        (
            {"optimizer": "rmsprop"},
            r"training.optimizer: 'rmsprop' is not one of \['sgd', 'adam'\]",
        ),
        ({"lr": -1}, "training.lr: -1 is less than or equal to the minimum of 0"),
        ({"lr": float("nan")}, "training.lr: nan is not a finite number"),
        ({"epochs": 0}, "training.epochs: 0 is less than the minimum of 1"),
        (
            {"save_epochs": [20]},
            r"training.save_epochs: epochs \[20\] are after the last epoch \(10\)",
        ),
        ({"device": "tpu"}, "training.device: 'tpu' does not match"),
        ({"mixed_precision": "yes"}, "training.mixed_precision: 'yes' is not of type 'boolean'"),
    ],
)
def test_bad_settings(config, match):
    with pytest.raises(SettingsError, match=match):
        resolve_config(config)


def test_loss_must_match_labels(mnist, tmp_path):
    with pytest.raises(
        SettingsError, match=r"loss: the data have 10 classes: expected 'cross_entropy'"
    ):
        train(SMALL_CNN, mnist, {"loss": "hinge"}, tmp_path)
    with pytest.raises(SettingsError, match=r"loss: the data have \+1/-1 labels: expected 'hinge'"):
        train({"name": "fc2"}, separable_1d(), {}, tmp_path)


JOB = """
import sys, torch
from diffsens.data import prepare
from diffsens.train import train
torch.set_num_threads(1)
data = prepare("scale_detection_2d", n_train=768, n_test=64, seed=0)
config = {"loss": "hinge", "epochs": 6, "lr": 0.02, "batch_size": 16, "augmentation": "crop_flip",
          "training_noise": 5.0}
spec = {"name": "simple_cnn", "dim": 2, "depth": 3, "width": 16, "pooling": "max"}
train(spec, data, config, sys.argv[1], seed=3)
"""


def run_job(out, script):
    return subprocess.Popen(
        [sys.executable, str(script), str(out)], stderr=subprocess.PIPE, text=True
    )


def wait_for_epoch(out, epoch, process, timeout=120):
    """Block until the saved state has finished ``epoch`` (read atomically written files only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        paths = list(out.glob("state/*/state.pt"))
        if paths and torch.load(paths[0], weights_only=True)["epoch"] >= epoch:
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
    shutil.rmtree(tmp_path / "checkpoints", ignore_errors=True)  # as a workflow manager would
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
    (path,) = tmp_path.glob("state/*/state.pt")
    state = torch.load(path, weights_only=True)
    assert state["position"] is not None and state["position"]["batch"] > 0  # saved mid-epoch
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True)
    resumed = final_weights(tmp_path)
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name


def test_weight_decay_can_spare_biases_and_norms():
    from diffsens.train import _optimizer

    model = build_spec({"name": "vgg11_bn"}, in_channels=3, num_classes=10, input_size=32)
    spared = _optimizer(model, resolve_config({"decay_biases_and_norms": False}), 0.1)
    decayed, exempt = spared.param_groups
    assert all(p.ndim > 1 for p in decayed["params"]) and decayed["weight_decay"] == 5e-4
    assert all(p.ndim == 1 for p in exempt["params"]) and exempt["weight_decay"] == 0.0
    (everything,) = _optimizer(model, resolve_config({}), 0.1).param_groups
    assert len(everything["params"]) == len(list(model.parameters()))


PROGRESS_JOB = """
import sys
from diffsens.data import prepare
from diffsens.train import train
data = prepare("scale_detection_2d", size=12, xi=6, n_train=64, n_test=16)
spec = {"name": "simple_cnn", "depth": 2, "width": 4}
train(spec, data, {"loss": "hinge", "epochs": 2, "batch_size": 8}, sys.argv[1])
"""


def test_a_progress_bar_shows_on_a_terminal_and_stays_out_of_logs(tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import termios

    script = tmp_path / "job.py"
    script.write_text(PROGRESS_JOB)
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "tty")], stderr=terminal, stdout=terminal
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed: the job ended
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait() == 0
    shown = shown.decode()
    assert "epoch 1/2:   0%|" in shown and "epoch 2/2:" in shown and "0/8 [" in shown  # batches
    logged = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "log")], capture_output=True, text=True
    )
    assert logged.returncode == 0 and "epoch 1/2:" not in logged.stderr + logged.stdout


def fitted_from_the_start(seed: int, n: int = 24, wrong: torch.Tensor | None = None):
    """1-D signals that a net without conv biases classifies with margin at least 10 as
    initialised by ``seed``: zero hinge loss, hence zero gradient, from the first batch.
    ``wrong``: indices of training examples given the other label."""
    spec = {"name": "simple_cnn", "dim": 1, "depth": 2, "width": 4, "bias": False}
    torch.manual_seed(seed)
    net = build_spec(spec, in_channels=1, num_classes=1, input_size=16)
    x = torch.randn(2 * n, 1, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        bias = float(net.readout.bias)
        g = net(x).squeeze(1) - bias  # positively homogeneous: g(c x) = c g(x) for c > 0
    x = x * ((10 + abs(bias)) / g.abs())[:, None, None]
    labels = torch.sign(g)
    if wrong is not None:
        labels[wrong] = -labels[wrong]
    data = PreparedData("fitted", x[:n], labels[:n], x[n:], labels[n:], 1, (0.0,))
    return spec, data


PLAIN_SGD_TO_ZERO_LOSS = {
    "loss": "hinge",
    "optimizer": "sgd",
    "momentum": 0.0,
    "weight_decay": 0.0,
    "lr": 0.1,
    "batch_size": 8,
    "stop_at_zero_loss": True,
}


def test_the_zero_loss_rule_trains_to_its_multiple_of_the_first_zero_loss_epoch(tmp_path):
    spec, data = fitted_from_the_start(seed=3)
    config = {**PLAIN_SGD_TO_ZERO_LOSS, "epochs": 40}
    first = train(spec, data, config, tmp_path / "first", seed=3)
    assert first.sizes["epoch"] == 2 and float(first.train_loss[1]) == 0  # epochs 0 and 1
    history = train(
        spec, data, {**config, "zero_loss_multiple": 7, "validation": 6}, tmp_path / "m7", seed=3
    )
    assert list(history.epoch.values) == list(range(8))  # zero loss at 1, stopped at 7 x 1
    assert (history.validation_error[1:] == 0).all()
    assert np.isnan(first.validation_error).all()


def test_the_zero_loss_rule_waits_for_a_zero_validation_error(tmp_path):
    _, held_out = validation_split(24, 6, seed=3)
    spec, data = fitted_from_the_start(seed=3, wrong=held_out[:1])  # one wrong label, held out
    config = {**PLAIN_SGD_TO_ZERO_LOSS, "epochs": 9, "validation": 6}
    history = train(spec, data, config, tmp_path, seed=3)
    assert (history.train_loss[1:] == 0).all()  # every kept example is fitted
    assert history.sizes["epoch"] == 10  # the cap: one in six held-out examples stays wrong
    assert np.allclose(history.validation_error, 1 / 6)


def test_lr_per_width_scales_the_rate_by_the_width(tmp_path):
    config = {"loss": "hinge", "epochs": 1, "optimizer": "sgd", "lr": 0.001, "lr_per_width": True}
    history = train({"name": "fc2", "width": 16}, separable_1d(), config, tmp_path / "a")
    assert float(history.lr[1]) == pytest.approx(0.001 * 16)
    spec = {"name": "simple_cnn", "dim": 1, "depth": 2}  # width by default: 64
    assert learning_rate(spec, resolve_config(config)) == pytest.approx(0.064)
    with pytest.raises(SettingsError, match="lr_per_width: model 'lenet' has no width option"):
        learning_rate({"name": "lenet"}, resolve_config(config))


def test_the_ridge_is_the_mean_of_the_conv_weights_squared_norms_over_their_channels(tmp_path):
    spec = {"name": "simple_cnn", "dim": 1, "depth": 3, "width": 6, "parametrisation": "mean_field"}
    net = build_spec(spec, in_channels=1, num_classes=1, input_size=16)
    convs = [getattr(net, f"conv{k}") for k in (1, 2, 3)]
    by_hand = sum(float((c.weight.detach() ** 2).sum()) / 6 for c in convs) / 3
    assert float(ridge_penalty([c.weight.detach() for c in convs])) == pytest.approx(by_hand)
    # one step of SGD: the ridge moves the conv weights, and nothing else
    x = torch.randn(32, 1, 16, generator=torch.Generator().manual_seed(1))
    y = torch.where(torch.arange(32) % 2 == 0, 1.0, -1.0)
    one_batch = PreparedData("one", x[:16], y[:16], x[16:], y[16:], 1, (0.0,))
    config = {
        "loss": "hinge",
        "epochs": 1,
        "optimizer": "sgd",
        "momentum": 0.0,
        "weight_decay": 0.0,
        "lr": 0.5,
        "batch_size": 16,
    }
    states = {}
    for ridge in (0.0, 10.0):
        train(spec, one_batch, {**config, "ridge": ridge}, tmp_path / str(ridge))
        states[ridge] = load_checkpoint(tmp_path / str(ridge) / "checkpoints" / "last.pt")[0]
    for name, value in states[0.0].state_dict().items():
        moved = not torch.equal(value, states[10.0].state_dict()[name])
        assert moved == (name.endswith("weight") and name.startswith("conv")), name
