"""The constant-filter model: exact D against hand computations, the noise convention of G,
and the fitted depth laws against their predictions."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from diffsens.sensitivity import measure
from diffsens.theory import (
    asymptotic_layers,
    constant_filter_sensitivities,
    probe_sites,
    propagate,
    theory_networks,
)


def sensitivities(dim, filter_size, stride, depth, inputs="padded", noise="rectified_input"):
    return constant_filter_sensitivities(
        dim, filter_size, stride, depth, inputs=inputs, noise=noise, precision=0.05
    )


# D by hand (docs/science.md §8). Each layer averages its window (1/2 per pixel in 1-D); the
# move rolls every input by one pixel along its last axis; padded sides N = F + (F - 1)(s + ...
# + s^L) + 1, every site probed; den = 2 (mean ||f||^2 - ||mean f||^2).
# * 1-D, F = 2, s = 1, L = 2, N = 5: num_D = 0.4, 0.15; mean ||f||^2 = 0.4, 0.225; ||mean f||^2 =
#   0.16, 0.12, so D = 0.4 / 0.48 = 5/6 and 0.15 / 0.21 = 5/7;
# * F = s = 2, L = 2, N = 9 (the last pixel is dropped by the windows): num_D = 2/9, 1/36;
#   den = 2 (2/9 - 4/81) = 28/81 and 2 (1/18 - 2/81) = 5/81, so D = 9/14 and 9/20;
# * 2-D, the site (r, c) gives b_r (x) b_c, so num_D = M n_1 and den = 2 (M^2 - m^4) with the
#   1-D mean squared norm M, squared norm of the mean m^2 and numerator n_1:
#   F = 2, s = 1, L = 1, N = 4: M = 3/8, m^2 = 3/16, n_1 = 3/8, D = (9/64) / (27/128) = 2/3;
#   F = s = 2, L = 1, N = 5: M = 1/5, m^2 = 2/25, n_1 = 1/5, D = (1/25) / (42/625) = 25/42;
# * lattice, 1-D, F = 2, s = 1: a ring of side 2 (L + 1) with sites 0 and L + 1. L = 1: f =
#   (e_p + e_(p-1)) / 2, num_D = 1/2, den = 2 (1/2 - 1/4), D = 1; L = 2: f = (e_p + 2 e_(p-1) +
#   e_(p-2)) / 4, num_D = 1/4, den = 2 (1 - 1/2) 3/8, D = 2/3.
EXACT_D = [
    ((1, 2, 1, 2, "padded"), [5 / 6, 5 / 7]),
    ((1, 2, 2, 2, "padded"), [9 / 14, 9 / 20]),
    ((2, 2, 1, 1, "padded"), [2 / 3]),
    ((2, 2, 2, 1, "padded"), [25 / 42]),
    ((1, 2, 1, 2, "lattice"), [1.0, 2 / 3]),
]


@pytest.mark.parametrize(("spec", "expected"), EXACT_D)
def test_d_is_exact(spec, expected):
    ds = sensitivities(*spec)
    np.testing.assert_allclose(ds.D.values, expected, rtol=1e-12)
    np.testing.assert_allclose(ds.R.values, ds.D.values / ds.G.values, rtol=1e-12)


def test_d_does_not_depend_on_the_noise_draws():
    a = sensitivities(2, 3, 1, 3)
    b = constant_filter_sensitivities(
        2, 3, 1, 3, inputs="padded", noise="rectified_input", precision=0.05, seed=7
    )
    np.testing.assert_array_equal(a.D.values, b.D.values)
    assert not np.array_equal(a.G.values, b.G.values)


@pytest.mark.parametrize(
    ("noise", "expected"),
    [("rectified_input", 1.5 - 1 / (2 * math.pi)), ("rectified", 1.5), ("gaussian", 2.0)],
)
def test_noise_conventions_on_two_pixels(noise, expected):
    """x = (1, 0), shifted to (0, 1), so ||eta||^2 = 2 and the identity's num_G = E ||x' - x||^2
    (half the probes are the mirror image (0, 1), with the same expectations).

    * rectified_input: eta = sqrt(2) (cos t, sin t), t uniform; relu(x + eta) - x has squared
      norm (relu(1 + sqrt(2) cos t) - 1)^2 + 2 relu(sin t)^2, of mean 1 - 1/(2 pi) + 1/2;
    * rectified: eta = sqrt(2) relu(g) / ||relu(g)||, all of it unless both entries of g are
      negative (probability 1/4), when there is no noise: 2 (3/4);
    * gaussian: x + eta, exactly 2.
    """
    probes = torch.zeros(20000, 1, 2, dtype=torch.float64)
    probes[:10000, 0, 0] = probes[10000:, 0, 1] = 1.0
    ds = measure(nn.Flatten(), probes, deformation="shift", noise=noise, seed=1)
    assert ds.num_D.item() == pytest.approx(2.0, rel=1e-12)
    assert ds.num_G.item() == pytest.approx(expected, rel=0.01)  # standard error below 0.5%


def test_rectifying_the_noisy_input_halves_g_at_every_layer():
    """The authors' relu(x + eta) keeps half the energy of rectified noise of the same norm
    (the mean of relu(eta) is 1/sqrt(2) that of the rectified direction times its norm)."""
    theirs = sensitivities(1, 2, 2, 6, noise="rectified_input")
    ours = sensitivities(1, 2, 2, 6, noise="rectified")
    np.testing.assert_allclose(ours.G / theirs.G, 2.0, rtol=0.03)


def test_g_reaches_its_precision_at_every_layer():
    ds = constant_filter_sensitivities(
        1, 2, 1, 16, inputs="padded", noise="rectified_input", precision=0.005
    )
    assert (ds.G_se <= 0.005).all() and ds.draws > 4


def test_padded_sites_are_every_site_of_the_authors_input():
    sites = probe_sites(1, 2, 2, 8, "padded")
    assert sites.shape == (513, 1, 513)  # their N = receptive_field(2, 2, 8) + 1
    torch.testing.assert_close(sites[:, 0], torch.eye(513, dtype=torch.float64))
    assert probe_sites(2, 3, 1, 4, "padded").shape == (144, 1, 12, 12)


def test_lattice_sites_never_overlap():
    sites = probe_sites(1, 3, 1, 4, "lattice")  # receptive field 9: a ring of 18, sites 0 and 9
    assert sites.shape == (2, 1, 18) and sites[:, 0].nonzero()[:, 1].tolist() == [0, 9]
    sites = probe_sites(1, 2, 2, 2, "lattice")  # one site per position within a cell of 4
    assert sites[:, 0].nonzero()[:, 1].tolist() == [0, 5, 10, 15]
    ds = sensitivities(2, 3, 1, 4, inputs="lattice")
    np.testing.assert_allclose(ds.overlap, 0, atol=1e-12)
    with pytest.raises(ValueError, match="stride 1 or stride = filter size"):
        probe_sites(1, 3, 2, 3, "lattice")


def test_overlap_grows_with_depth_on_the_authors_input():
    ds = sensitivities(1, 2, 2, 5)
    # layer k maps blocks of 2^k of the 64 kept sites (of 65) onto one pixel: a site shares
    # its representation with 2^k - 1 of the 64 others
    np.testing.assert_allclose(ds.overlap, [1 / 64, 3 / 64, 7 / 64, 15 / 64, 31 / 64], rtol=1e-9)


def test_asymptotic_layers():
    overlap = np.array([0.0, 0.01, 0.02, 0.03, 0.04, 0.06, 0.2])
    assert asymptotic_layers(overlap, 0.05).tolist() == [0, 0, 1, 1, 1, 0, 0]
    assert asymptotic_layers(overlap[:4], 0.05).tolist() == [0, 1, 1, 1]  # at least 3
    assert not asymptotic_layers(overlap + 1, 0.05).any()


# (network, quantity): the laws of docs/science.md §8 within 5% on the lattice, where they are
# asymptotic at these depths; 1-D G approaches k^(1/2) too slowly (docs/science.md §8).
WITHIN_5_PERCENT = [("2d_F3_s1_lattice", q) for q in "DGR"] + [
    ("1d_F5_s1_lattice", "D"),
    ("1d_F5_s1_lattice", "R"),
    ("1d_F2_s2_lattice", "D"),
]


@pytest.fixture(scope="module")
def fitted():
    settings = {
        "networks": [
            {"dim": 2, "filter_size": 3, "stride": 1, "depth": 24, "inputs": "lattice"},
            {"dim": 1, "filter_size": 5, "stride": 1, "depth": 64, "inputs": "lattice"},
            {"dim": 1, "filter_size": 2, "stride": 2, "depth": 7, "inputs": "lattice"},
        ]
    }
    return theory_networks(settings)


@pytest.mark.parametrize(("network", "quantity"), WITHIN_5_PERCENT)
def test_fitted_exponents_meet_the_laws(fitted, network, quantity):
    _, table = fitted
    row = table.set_index(["network", "quantity"]).loc[(network, quantity)]
    assert abs(row.relative) <= 0.05, row
    assert row.stderr < 0.01 and row.layers


def test_fits_keep_to_the_asymptotic_layers(fitted):
    networks, table = fitted
    assert list(networks.network.values) == [
        "2d_F3_s1_lattice",
        "1d_F5_s1_lattice",
        "1d_F2_s2_lattice",
    ]
    assert networks.fitted.sel(network="2d_F3_s1_lattice").values.nonzero()[0].tolist() == list(
        range(12, 24)
    )
    row = table.set_index(["network", "quantity"]).loc[("1d_F2_s2_lattice", "D")]
    assert row.layers == "4-7" and row.exponent == pytest.approx(-math.log(2), rel=1e-12)
    assert row.low_overlap == "1-7"  # no overlap anywhere on the lattice


def test_no_networks_is_said_in_the_settings_words():
    """config/fig7.yaml lists none: asking for the theory there (a --forcerun) names the key."""
    with pytest.raises(ValueError, match=r"theory.networks is empty"):
        theory_networks({"networks": []})


def test_no_fit_where_too_few_layers_are_asymptotic():
    networks, table = theory_networks(
        {"networks": [{"dim": 1, "filter_size": 2, "stride": 1, "depth": 8}], "precision": 0.05}
    )
    assert not networks.fitted.any() and table.exponent.isna().all()
    assert set(table.low_overlap) == {""}  # 11 sites overlap by more than 5% from layer 1
    assert table.predicted.tolist() == [-1.0, 0.5, -1.5]


def test_propagation_spreads_or_pools():
    two = torch.zeros(1, 1, 32)
    two[0, 0, [8, 20]] = 1.0
    diffusive = propagate(two, 1, 3, 1, 5)
    assert [len(a) for a in diffusive] == [32] * 5  # the authors' padding keeps the size
    assert (diffusive[-1] > 0).sum() > (diffusive[0] > 0).sum()
    pooled = propagate(two, 1, 2, 2, 4)
    assert [len(a) for a in pooled] == [16, 8, 4, 2]
    assert pooled[0].sum() == pytest.approx(1.0)  # each layer averages: mass halves with size
