import logging
import math
import re

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from diffsens import sensitivity
from diffsens.diffeo import (
    displacement_field,
    sample_modes,
    temperature_for_displacement,
    temperature_range,
    typical_displacement,
    warp,
)
from diffsens.perturb import random_directions
from diffsens.probes import Probe
from diffsens.sensitivity import measure

T_MIN, T_MAX = temperature_range(12, 3)


def small_cnn(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 6 * 6, 4),
    ).to(dtype)


def probes(n=40, size=12, seed=1, dtype=torch.float64):
    return torch.rand(n, 2, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def channel_means(model, layers):
    """The named layers' outputs averaged over their channels, by forward hooks of their own
    (the hand computation of ``measure(..., channel_mean=True)``)."""
    modules = dict(model.named_modules())

    def features(images):
        found = {}
        hooks = [
            modules[name].register_forward_hook(
                lambda module, args, out, name=name: found.__setitem__(name, out.mean(1))
            )
            for name in layers
            if name != "output"
        ]
        output = model(images)
        for hook in hooks:
            hook.remove()
        return {name: (output if name == "output" else found[name]).flatten(1) for name in layers}

    return features


def brute_force(model, images, layers, temperatures, seed, statistic="mean", features=None):
    """Straight loops over the formulas (docs/science.md §2), with the draws measure() documents.
    ``features(images)`` gives the representations (default: each layer's whole output)."""
    generator = torch.Generator().manual_seed(seed)
    modes = sample_modes(len(images), 3, generator=generator, dtype=images.dtype)
    directions = random_directions(images.shape, generator=generator, dtype=images.dtype)
    with torch.no_grad(), Probe(model.eval(), layers) as whole:
        probe = features or whole
        clean = probe(images)
        out = {}
        for name in layers:
            f = clean[name]
            pairs = [((f[i] - f[j]) ** 2).sum() for i in range(len(f)) for j in range(len(f))]
            den = torch.stack(pairs).mean()
            rows = []
            for T in temperatures:
                deformed = warp(images, displacement_field(modes, images.shape[-1], T))
                norms = (deformed - images).flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                noisy = images + directions * norms
                sq_d = (probe(deformed)[name] - f) ** 2
                sq_g = (probe(noisy)[name] - f) ** 2
                if statistic == "mean":
                    rows.append((sq_d.sum(1).mean(), sq_g.sum(1).mean()))
                else:
                    rows.append((sq_d.median(0).values.sum(), sq_g.median(0).values.sum()))
            out[name] = (torch.tensor(rows, dtype=torch.float64), den)
    return out


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_matches_brute_force(statistic):
    model, images = small_cnn(), probes()
    layers = ["0", "2", "4", "output"]
    temperatures = [T_MIN, math.sqrt(T_MIN * T_MAX), T_MAX]
    ds = measure(
        model,
        images,
        temperatures=temperatures,
        layers=layers,
        seed=3,
        batch_size=7,
        statistic=statistic,
    )
    reference = brute_force(model, images, layers, temperatures, seed=3, statistic=statistic)
    for name in layers:
        nums, den = reference[name]
        np.testing.assert_allclose(ds.den.sel(layer=name), den, rtol=1e-9)
        np.testing.assert_allclose(ds.num_D.sel(layer=name), nums[:, 0], rtol=1e-9)
        np.testing.assert_allclose(ds.num_G.sel(layer=name), nums[:, 1], rtol=1e-9)
    np.testing.assert_allclose(ds.D, ds.num_D / ds.den)
    np.testing.assert_allclose(ds.R, ds.D / ds.G)


def test_channel_means_match_the_hand_computation():
    model, images = small_cnn(), probes()
    layers = ["1", "3", "output"]
    temperatures = [T_MIN, T_MAX]
    ds = measure(model, images, temperatures=temperatures, layers=layers, seed=3, channel_mean=True)
    reference = brute_force(
        model, images, layers, temperatures, seed=3, features=channel_means(model, layers)
    )
    for name in layers:
        nums, den = reference[name]
        np.testing.assert_allclose(ds.den.sel(layer=name), den, rtol=1e-9)
        np.testing.assert_allclose(ds.num_D.sel(layer=name), nums[:, 0], rtol=1e-9)
        np.testing.assert_allclose(ds.num_G.sel(layer=name), nums[:, 1], rtol=1e-9)
    whole = measure(model, images, temperatures=temperatures, layers=layers, seed=3)
    assert not np.allclose(ds.D.sel(layer="3"), whole.D.sel(layer="3"))  # another quantity
    np.testing.assert_array_equal(ds.D.sel(layer="output"), whole.D.sel(layer="output"))


def test_denominator_is_stable_under_a_large_offset():
    """The O(P) identity must not lose the spread when features share a huge common value."""
    images = probes(n=30)
    offset = nn.Sequential(nn.Flatten())
    ds_plain = measure(offset, images, temperatures=[T_MIN], batch_size=8)
    ds_shifted = measure(offset, images + 1e6, temperatures=[T_MIN], batch_size=8)
    f = images.flatten(1)
    brute = torch.cdist(f, f).square().mean().item()
    assert ds_plain.den.item() == pytest.approx(brute, rel=1e-10)
    assert ds_shifted.den.item() == pytest.approx(brute, rel=1e-6)


def test_identity_has_r_exactly_one():
    ds = measure(nn.Flatten(), probes(), temperatures=[T_MIN, T_MAX], seed=0)
    np.testing.assert_allclose(ds.R, 1.0, rtol=1e-12)
    np.testing.assert_allclose(ds.num_D, ds.num_G, rtol=1e-12)


def test_identity_on_1d_inputs_with_pixel_moves():
    signals = torch.zeros(50, 1, 32, dtype=torch.float64)
    signals[torch.arange(50), 0, torch.randint(0, 32, (50,))] = 4.0
    ds = measure(nn.Flatten(), signals, deformation="pixel_move", block=8)
    assert ds.sizes == {"layer": 1, "temperature": 1}
    assert np.isnan(ds.temperature.item()) and ds.delta.item() == 1.0
    assert "T_max" not in ds.attrs and "above_T_max" not in ds.attrs  # no temperatures here
    np.testing.assert_allclose(ds.R, 1.0, rtol=1e-12)
    assert ds.D.item() > 0


def test_identity_with_shifts_by_hand():
    """One-hot signals of length 8 shifted by one: every probe changes by e_(p+1) - e_p, of
    squared norm 2; the 8 distinct probes are sqrt(2) apart, so den = 2 (1 - 1/8)."""
    signals = torch.eye(8, dtype=torch.float64).view(8, 1, 8)
    ds = measure(nn.Flatten(), signals, deformation="shift", noise="gaussian")
    assert ds.num_D.item() == pytest.approx(2.0) and ds.den.item() == pytest.approx(1.75)
    assert ds.num_G.item() == pytest.approx(2.0)  # Gaussian noise of the move's norm
    assert ds.attrs["noise"] == "gaussian" and np.isnan(ds.temperature.item())


def test_displacements_in_pixels_are_measured_at_their_temperatures():
    model, images = small_cnn(), probes()
    n = images.shape[-1]
    deltas = [0.5, 1.0]
    by_delta = measure(model, images, deltas=deltas, layers=["0", "output"], seed=2)
    by_temperature = measure(
        model,
        images,
        temperatures=[temperature_for_displacement(d, 3, n) for d in deltas],
        layers=["0", "output"],
        seed=2,
    )
    np.testing.assert_allclose(by_delta.delta, deltas)
    xr.testing.assert_allclose(by_delta, by_temperature)
    assert list(by_delta.label.values) == ["conv1", "output"]  # readable beside the paths
    with pytest.raises(ValueError, match="not both"):
        measure(model, images, temperatures=[T_MIN], deltas=[1.0])
    with pytest.raises(ValueError, match="deltas"):
        measure(model, images, deltas=[-1.0])


def test_d_vanishes_as_t_goes_to_zero():
    model, images = small_cnn(), probes()
    ds = measure(model, images, temperatures=[1e-10, 1e-6, T_MIN, T_MAX], layers=["0", "output"])
    assert np.all(ds.D.sel(temperature=1e-10) < 1e-7)
    assert np.all(np.diff(ds.D.values, axis=1) > 0)  # one shape, growing amplitude


def test_result_does_not_depend_on_batch_size_and_is_seeded():
    model, images = small_cnn(), probes()
    kwargs = dict(temperatures=[T_MAX], layers=["2", "output"])
    a = measure(model, images, seed=5, batch_size=40, **kwargs)
    b = measure(model, images, seed=5, batch_size=3, **kwargs)
    c = measure(model, images, seed=6, batch_size=40, **kwargs)
    xr.testing.assert_allclose(a.drop_attrs(), b.drop_attrs(), rtol=1e-12)
    assert not np.allclose(a.D, c.D)


def test_dataset_layout():
    model = small_cnn(torch.float32)
    ds = measure(
        model,
        probes(dtype=torch.float32),
        temperatures=[T_MIN, T_MAX],
        layers={"1": 1, "4": 2, "output": 3},
    )
    assert ds.D.dims == ("layer", "temperature") and ds.den.dims == ("layer",)
    assert list(ds.layer.values) == ["1", "4", "output"] and list(ds.depth.values) == [1, 2, 3]
    np.testing.assert_allclose(ds.delta, [0.5, 12 / 2 * math.sqrt(math.pi * T_MAX * math.log(3))])
    assert ds.D.attrs["long_name"] and ds.attrs["deformation"] == "diffeo"
    assert ds.D.dtype == np.float64
    assert model.training  # measure left the mode as it found it


def test_output_only_by_default():
    ds = measure(small_cnn(), probes(), temperatures=[T_MIN])
    assert list(ds.layer.values) == ["output"]


def test_runs_on_every_device(device):
    model, images = small_cnn(torch.float32).to(device), probes(dtype=torch.float32)
    ds = measure(model, images, temperatures=[T_MAX], layers=["2", "output"])
    reference = measure(
        small_cnn(torch.float32), images, temperatures=[T_MAX], layers=["2", "output"]
    )
    assert ds.attrs["device"].startswith(device.type)
    np.testing.assert_allclose(ds.D, reference.D, rtol=1e-4)


@pytest.fixture
def work(monkeypatch):
    """Counts the draws and forward passes measure() makes: a refusal must come before any."""
    counts = {"draws": 0, "forward": 0}

    def counted(function):
        def wrapper(*args, **kwargs):
            counts["draws"] += 1
            return function(*args, **kwargs)

        return wrapper

    for name in ("sample_modes", "move_pixels", "random_directions"):
        monkeypatch.setattr(sensitivity, name, counted(getattr(sensitivity, name)))

    def model(dtype=torch.float64):
        net = small_cnn(dtype)
        net.register_forward_pre_hook(
            lambda module, args: counts.update(forward=counts["forward"] + 1)
        )
        return net

    return model, counts


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(), ValueError, "temperatures are required"),
        (dict(temperatures=[]), ValueError, "temperatures are required"),
        (
            dict(temperatures=[-1.0]),
            ValueError,
            r"temperatures must be finite and > 0, got \[-1\.0\]",
        ),
        (dict(temperatures=[T_MIN, 0.0]), ValueError, r"finite and > 0, got \[0\.0\]"),
        (dict(temperatures=[math.nan]), ValueError, r"finite and > 0, got \[nan\]"),
        (dict(temperatures=[T_MIN, math.inf]), ValueError, r"finite and > 0, got \[inf\]"),
        (dict(temperatures=torch.tensor([0.0, T_MIN])), ValueError, "finite and > 0"),
        (dict(temperatures=[[T_MIN]]), ValueError, "temperatures must be a 1-D list"),
        (dict(temperatures=T_MIN), ValueError, "temperatures must be a 1-D list"),
        (dict(temperatures=["hot"]), TypeError, "temperatures must be a real number"),
        (dict(temperatures=[True]), TypeError, "temperatures must be a real number"),
        (dict(temperatures=[T_MIN], statistic="mode"), ValueError, "statistic must be one of"),
        (dict(temperatures=[T_MIN], deformation="warp"), ValueError, "deformation must be one of"),
        (dict(temperatures=[T_MIN], noise="loud"), ValueError, "noise must be one of"),
        (dict(temperatures=[T_MIN], deformation="shift"), ValueError, "do not apply"),
        (dict(deformation="shift", block=4), ValueError, "block only applies"),
        (dict(temperatures=[T_MIN], interp="bicubic"), ValueError, "interp must be one of"),
        (dict(temperatures=[T_MIN], deformation="pixel_move"), ValueError, "do not apply"),
        (dict(temperatures=[T_MIN], cut=1), ValueError, "cut must be > 1"),
        (dict(temperatures=[T_MIN], cut=math.nan), ValueError, "cut must be > 1"),
        (dict(deformation="pixel_move", cut=0.5), ValueError, "cut must be > 1"),
        (dict(temperatures=[T_MIN], layers="0"), TypeError, "did you mean"),
        (dict(temperatures=[T_MIN], layers=["nope"]), ValueError, "unknown layer"),
        (dict(temperatures=[T_MIN], layers=["0", "0"]), ValueError, "layers must be distinct"),
        (dict(temperatures=[T_MIN], layers=[]), ValueError, "at least one layer"),
        (dict(temperatures=[T_MIN], layers={}), ValueError, "at least one layer"),
        (
            dict(temperatures=[T_MIN], layers=[0]),
            TypeError,
            r"layer names must be strings, got \[0\]",
        ),
        (dict(temperatures=[T_MIN], layers={"0", "2"}), TypeError, "list of names or a mapping"),
        (dict(temperatures=[T_MIN], layers={"nope": 1}), ValueError, "unknown layer"),
        (
            dict(temperatures=[T_MIN], layers={"0": 1, "2": 0}),
            ValueError,
            "depth of layer '2' must be an int >= 1, got 0",
        ),
        (
            dict(temperatures=[T_MIN], layers={"0": 1.5}),
            TypeError,
            "depth of layer '0' must be an int",
        ),
        (
            dict(temperatures=[T_MIN], layers={"0": True}),
            TypeError,
            "depth of layer '0' must be an int",
        ),
        (
            dict(temperatures=[T_MIN], batch_size=0),
            ValueError,
            "batch_size must be an int >= 1, got 0",
        ),
        (dict(temperatures=[T_MIN], batch_size=2.0), TypeError, "batch_size must be an int"),
        (dict(temperatures=[T_MIN], batch_size=True), TypeError, "batch_size must be an int"),
        (dict(temperatures=[T_MIN], seed=-1), ValueError, "seed must be an int >= 0, got -1"),
        (dict(temperatures=[T_MIN], seed=0.5), TypeError, "seed must be an int"),
        (dict(temperatures=[T_MIN], block=2), ValueError, "block only applies"),
        (dict(deformation="pixel_move", block=4), ValueError, "block only applies"),
        (dict(deformation="pixel_move", block=0), ValueError, "block must be an int >= 1"),
    ],
)
def test_bad_arguments(work, kwargs, error, match):
    model, counts = work
    with pytest.raises(error, match=match):
        measure(model(), probes(n=4), **kwargs)
    assert counts == {"draws": 0, "forward": 0}


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (probes(n=4).numpy(), TypeError, "images must be a torch.Tensor"),
        (probes(n=4).long(), TypeError, "images must be a floating-point tensor"),
        (probes(n=1), ValueError, "at least 2 probes for the denominator, got 1"),
        (probes(n=4)[..., :1, :1], ValueError, r"square images \(P, C, n, n\) with n >= 2"),
        (probes(n=4)[:, 0, 0, 0], ValueError, r"images must have shape \(P C \.\.\.\), got \(4,\)"),
        (
            probes(n=4)[:, 0],
            ValueError,
            r"square images \(P, C, n, n\) with n >= 2, got \(4, 12, 12\)",
        ),
    ],
)
def test_bad_images(work, images, error, match):
    model, counts = work
    with pytest.raises(error, match=match):
        measure(model(), images, temperatures=[T_MIN])
    assert counts == {"draws": 0, "forward": 0}


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module, got function"):
        measure(lambda x: x, probes(n=4), temperatures=[T_MIN])


def test_non_finite_probes_are_named_before_any_work(work):
    model, counts = work
    images = probes(n=20)
    images[3, 1, 5, 7] = math.nan
    images[17, 0, 0, 0] = -math.inf
    with pytest.raises(ValueError, match=re.escape("probes [3, 17] hold NaN or infinite values")):
        measure(model(), images, temperatures=[T_MIN])
    assert counts == {"draws": 0, "forward": 0}


def test_many_non_finite_probes_list_the_first_ten():
    images = probes(n=30)
    images[5:30:2, 0, 2, 2] = math.inf  # probes 5, 7, ..., 29: 13 of them
    message = "probes [5, 7, 9, 11, 13, 15, 17, 19, 21, 23] (the first 10 of 13) hold NaN"
    with pytest.raises(ValueError, match=re.escape(message)):
        measure(nn.Flatten(), images, temperatures=[T_MIN])


def test_non_finite_1d_signals_are_refused_for_pixel_moves():
    signals = torch.zeros(6, 1, 16, dtype=torch.float64)
    signals[4, 0, 3] = math.nan
    with pytest.raises(ValueError, match=re.escape("probes [4] hold NaN")):
        measure(nn.Flatten(), signals, deformation="pixel_move")


def test_temperatures_above_t_max_warn_and_are_recorded(caplog, tmp_path):
    T_max = 4 / (math.pi**3 * 3**2 * math.log(3))  # n-independent: 4 / (pi^3 cut^2 ln cut)
    assert T_max == pytest.approx(T_MAX, rel=1e-12)
    hot = [2 * T_max, 10 * T_max]
    with caplog.at_level(logging.WARNING, logger="diffsens.sensitivity"):
        ds = measure(nn.Flatten(), probes(n=6), temperatures=[T_MIN, *hot])
    (record,) = [r for r in caplog.records if r.name == "diffsens.sensitivity"]
    assert record.levelno == logging.WARNING
    assert str(hot) in record.getMessage() and f"T_max = {T_max:.6g}" in record.getMessage()
    pixels = [round(float(typical_displacement(T, 3, 12)), 3) for T in hot]  # in px too (n = 12)
    assert f"(displacements {pixels} px)" in record.getMessage()
    assert ds.attrs["T_max"] == pytest.approx(T_max, rel=1e-12)
    assert ds.attrs["above_T_max"] == hot
    assert np.all(np.isfinite(ds.R))  # measured all the same
    ds.to_netcdf(tmp_path / "hot.nc", engine="netcdf4")
    with xr.open_dataset(tmp_path / "hot.nc", engine="netcdf4") as back:
        assert back.attrs["T_max"] == pytest.approx(T_max, rel=1e-12)
        np.testing.assert_allclose(back.attrs["above_T_max"], hot, rtol=1e-12)


def test_temperatures_up_to_t_max_do_not_warn(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="diffsens.sensitivity"):
        ds = measure(nn.Flatten(), probes(n=6), temperatures=[T_MIN, T_MAX])  # T_max included
    assert not [r for r in caplog.records if r.name == "diffsens.sensitivity"]
    assert ds.attrs["T_max"] == T_MAX and ds.attrs["above_T_max"] == []
    ds.to_netcdf(tmp_path / "cool.nc", engine="netcdf4")
    with xr.open_dataset(tmp_path / "cool.nc", engine="netcdf4") as back:
        assert back.attrs["T_max"] == T_MAX and len(back.attrs["above_T_max"]) == 0


def test_temperatures_as_arrays_or_tensors():
    model, images = small_cnn(), probes(n=8)
    listed = measure(model, images, temperatures=[T_MIN, T_MAX])
    for temperatures in (
        np.array([T_MIN, T_MAX]),
        torch.tensor([T_MIN, T_MAX], dtype=torch.float64),
    ):
        other = measure(model, images, temperatures=temperatures)
        xr.testing.assert_identical(other, listed)


def test_diffeo_needs_square_images():
    with pytest.raises(ValueError, match="pixel_move"):
        measure(nn.Flatten(), torch.zeros(4, 1, 32), temperatures=[T_MIN])


def test_identical_probes_and_collapsed_layers_are_named(caplog):
    import logging

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
    same = torch.ones(4, 1, 8, 8)
    with pytest.raises(ValueError, match="all probes are the same image"):
        measure(model, same, temperatures=[1e-3])
    dead = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
    with torch.no_grad():
        dead[0].weight.zero_()
        dead[0].bias.fill_(-1.0)  # every output is relu(-1) = 0, whatever the probe
    images = torch.rand(4, 1, 8, 8)
    with caplog.at_level(logging.WARNING, logger="diffsens.sensitivity"):
        result = measure(dead, images, temperatures=[1e-3], layers=["1"])
    assert "give every probe the same representation" in caplog.text
    assert np.isnan(result.R.item())
    with pytest.raises(ValueError, match="noise"):
        measure(model, images, temperatures=[1e-3], noise="uniform")
