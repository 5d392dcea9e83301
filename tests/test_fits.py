import math

import numpy as np
import pytest
import xarray as xr

from diffsens.fits import at_delta, depth_series, fit_cube, fit_law, fit_layers

LAYERS = np.arange(1.0, 9.0)


def seeds_of(law, exponent, noise, n_seeds, rng, k=LAYERS):
    clean = 2.0 * (k**exponent if law == "power" else np.exp(exponent * k))
    values = clean * np.exp(rng.normal(0, noise, (n_seeds, len(k))))
    return xr.DataArray(values, dims=("seed", "layer"), coords={"depth": ("layer", k)})


@pytest.mark.parametrize(("law", "exponent"), [("power", -1.5), ("exponential", math.log(0.5))])
def test_recovers_known_exponents_exactly_without_noise(law, exponent):
    k = np.arange(1, 7)
    y = 3.0 * (k**exponent if law == "power" else np.exp(exponent * k))
    fitted, prefactor, stderr = fit_law(k, y, law)
    assert fitted == pytest.approx(exponent, abs=1e-12) and prefactor == pytest.approx(3.0)
    assert stderr == pytest.approx(0, abs=1e-12)  # on the line


def test_standard_error_of_the_exponent_by_hand():
    """log y = 0, 1, 3 at x = 0, 1, 2 (exponential law): slope 3/2, intercept -1/6, residuals
    1/6, -1/3, 1/6, so s^2 = (1/6) / (3 - 2) and the error is sqrt(s^2 / sum (x - 1)^2) =
    sqrt(1/12)."""
    fit = fit_law(np.array([0.0, 1.0, 2.0]), np.exp([0.0, 1.0, 3.0]), "exponential")
    assert fit.exponent == pytest.approx(1.5) and fit.prefactor == pytest.approx(math.exp(-1 / 6))
    assert fit.stderr == pytest.approx(math.sqrt(1 / 12), rel=1e-12)
    assert np.isnan(fit_law(np.array([1.0, 2.0]), np.array([1.0, 2.0]), "power").stderr)


@pytest.mark.parametrize(("law", "exponent"), [("power", 0.5), ("exponential", -0.7)])
def test_intervals_cover_the_truth_at_their_level(law, exponent):
    rng = np.random.default_rng(1)
    hits = []
    for trial in range(150):
        fit = fit_layers(seeds_of(law, exponent, 0.2, 10, rng), law, n_boot=400, seed=trial)
        hits.append(float(fit.low) <= exponent <= float(fit.high))
        assert float(fit.low) <= float(fit.exponent) <= float(fit.high)
    assert 0.85 <= np.mean(hits) <= 1.0  # nominal 95 %; the percentile bootstrap runs a bit short


def test_interval_narrows_with_more_seeds():
    rng = np.random.default_rng(0)
    few = fit_layers(seeds_of("power", -1, 0.3, 4, rng), "power")
    many = fit_layers(seeds_of("power", -1, 0.3, 40, rng), "power")
    assert float(many.high - many.low) < float(few.high - few.low)


def test_single_seed_has_no_interval_and_bad_points_are_skipped():
    k = np.arange(1, 6)
    y = xr.DataArray(
        [[1.0, 0.5, 0.0, 0.25, np.nan]], dims=("seed", "layer"), coords={"depth": ("layer", k)}
    )
    fit = fit_layers(y, "exponential")
    assert np.isnan(float(fit.low)) and np.isnan(float(fit.high))
    assert float(fit.exponent) == pytest.approx(
        fit_law(k[[0, 1, 3]], [1.0, 0.5, 0.25], "exponential")[0]
    )
    with pytest.raises(ValueError, match="law must be one of"):
        fit_law(k, k, "linear")


def test_depth_series_keeps_relus_and_renumbers():
    ds = xr.Dataset(
        {"D": ("layer", [1.0, 2, 3, 4, 5])},
        coords={
            "layer": ["relu1", "pool1", "relu2", "pool2", "output"],
            "depth": ("layer", [1, 2, 3, 4, 5]),
        },
    )
    series = depth_series(ds)
    assert list(series.layer.values) == ["relu1", "relu2"] and list(series.depth.values) == [1, 2]
    resnet = ["relu", "layer1.0", "layer1.1", "avgpool", "output"]  # a stem ReLU, then blocks
    series = depth_series(ds.assign_coords(layer=resnet))
    assert list(series.layer.values) == resnet[:-1] and list(series.depth.values) == [1, 2, 3, 4]
    paths = ["features.1", "features.2", "features.4", "features.5", "output"]  # a Sequential's
    labelled = ds.assign_coords(layer=paths, label=("layer", [*ds.layer.values]))
    series = depth_series(labelled)  # its ReLUs found by their labels
    assert list(series.layer.values) == ["features.1", "features.4"]
    assert list(series.label.values) == ["relu1", "relu2"]


def test_fit_cube_fits_every_checkpoint_and_condition():
    rng = np.random.default_rng(0)
    k = np.arange(1, 6)
    shape = (3, 2, 2, 5, 1)  # seed, checkpoint, condition, layer, temperature
    D = np.exp(-0.7 * k)[None, None, None, :, None] * np.exp(rng.normal(0, 0.05, shape))
    G = np.exp(0.3 * k)[None, None, None, :, None] * np.ones(shape)
    cube = xr.Dataset(
        {
            "D": (("seed", "checkpoint", "condition", "layer", "temperature"), D),
            "G": (("seed", "checkpoint", "condition", "layer", "temperature"), G),
        },
        coords={
            "layer": [f"relu{i}" for i in k],
            "depth": ("layer", k),
            "checkpoint": ["init", "best"],
            "condition": ["original", "shuffled"],
            "seed": [0, 1, 2],
            "temperature": [0.01],
            "delta": ("temperature", [1.0]),
        },
    )
    cube["R"] = cube.D / cube.G
    fits = fit_cube(at_delta(cube), "exponential", n_boot=200)
    assert fits.exponent.dims == ("quantity", "checkpoint", "condition")
    np.testing.assert_allclose(fits.exponent.sel(quantity="D"), -0.7, atol=0.05)
    np.testing.assert_allclose(fits.exponent.sel(quantity="R"), -1.0, atol=0.05)


def test_at_delta_picks_the_nearest_displacement_on_a_log_scale():
    cube = xr.Dataset(
        {"D": ("temperature", [1.0, 2.0, 3.0])},
        coords={"temperature": [1e-4, 1e-3, 1e-2], "delta": ("temperature", [0.5, 1.6, 5.0])},
    )
    assert float(at_delta(cube, 1.0).D) == 2.0  # log(1.6) is nearer log(1) than log(0.5) is
    assert float(at_delta(cube, 0.8).D) == 1.0  # 0.8/0.5 = 1.6 < 1.6/0.8 = 2
    assert float(at_delta(cube, 100).D) == 3.0
    with pytest.raises(ValueError, match="delta must be > 0"):
        at_delta(cube, 0)
