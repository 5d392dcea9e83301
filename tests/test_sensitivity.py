import math

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from diffsens.diffeo import displacement_field, sample_modes, temperature_range, warp
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


def brute_force(model, images, layers, temperatures, seed, statistic="mean"):
    """Straight loops over the formulas of SPEC section 2, with the draws measure() documents."""
    generator = torch.Generator().manual_seed(seed)
    modes = sample_modes(len(images), 3, generator=generator, dtype=images.dtype)
    directions = random_directions(images.shape, generator=generator, dtype=images.dtype)
    with torch.no_grad(), Probe(model.eval(), layers) as probe:
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
    np.testing.assert_allclose(ds.R, 1.0, rtol=1e-12)
    assert ds.D.item() > 0


def test_d_vanishes_as_t_goes_to_zero():
    model, images = small_cnn(), probes()
    ds = measure(
        model, images, temperatures=[0.0, 1e-10, 1e-6, T_MIN, T_MAX], layers=["0", "output"]
    )
    assert np.all(ds.D.sel(temperature=0.0) < 1e-25)
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


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(), ValueError, "temperatures are required"),
        (dict(temperatures=[-1.0]), ValueError, "finite and >= 0"),
        (dict(temperatures=[T_MIN], statistic="mode"), ValueError, "statistic must be one of"),
        (dict(temperatures=[T_MIN], deformation="warp"), ValueError, "deformation must be one of"),
        (dict(temperatures=[T_MIN], deformation="pixel_move"), ValueError, "do not apply"),
        (dict(temperatures=[T_MIN], layers="0"), TypeError, "did you mean"),
        (dict(temperatures=[T_MIN], layers=["nope"]), ValueError, "unknown layer"),
        (dict(temperatures=[T_MIN], batch_size=0), ValueError, "batch_size must be > 0"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        measure(small_cnn(), probes(n=4), **kwargs)


def test_diffeo_needs_square_images():
    with pytest.raises(ValueError, match="pixel_move"):
        measure(nn.Flatten(), torch.zeros(4, 1, 32), temperatures=[T_MIN])
