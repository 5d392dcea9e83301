import math

import numpy as np
import pytest

from diffsens.fits import fit_law
from diffsens.theory import (
    constant_filter_sensitivities,
    one_hot_inputs,
    propagate,
    theory_networks,
)


def local_slope(ds, quantity, lo, hi):
    k = ds.depth.values
    keep = (k >= lo) & (k <= hi)
    return fit_law(k[keep], ds[quantity].values[keep], "power")[0]


@pytest.fixture(scope="module")
def stride1_1d():
    return constant_filter_sensitivities(
        dim=1, filter_size=2, stride=1, depth=32, sites=48, repeats=8
    )


def test_stride1_slopes_approach_the_diffusive_laws(stride1_1d):
    """D ~ k^-1, G ~ k^(1/2), R ~ k^(-3/2): closer at depth than near the input."""
    for quantity, predicted, tolerance in (("D", -1.0, 0.1), ("G", 0.5, 0.2), ("R", -1.5, 0.3)):
        early = local_slope(stride1_1d, quantity, 2, 6)
        late = local_slope(stride1_1d, quantity, 16, 32)
        assert abs(late - predicted) < abs(early - predicted), quantity
        assert late == pytest.approx(predicted, abs=tolerance), quantity


def test_non_overlapping_filters_halve_d_and_double_g_per_layer():
    ds = constant_filter_sensitivities(dim=1, filter_size=2, stride=2, depth=6, sites=64, repeats=8)
    assert ds.law == "exponential"
    D, G = ds.D.values, ds.G.values
    assert np.median(D[1:] / D[:-1]) == pytest.approx(0.5, abs=0.08)
    assert np.median(G[1:] / G[:-1]) == pytest.approx(2.0, abs=0.35)
    np.testing.assert_allclose(ds.R, ds.D / ds.G)


def test_two_dimensional_strided_net_follows_s_to_the_dk():
    ds = constant_filter_sensitivities(dim=2, filter_size=2, stride=2, depth=4, sites=48, repeats=4)
    rate_G = fit_law(ds.depth.values, ds.G.values, "exponential")[0]
    assert rate_G == pytest.approx(2 * math.log(2), rel=0.25)  # G_k ~ s^(d k) with d = 2


def test_one_hot_inputs_stay_inside_the_margin():
    inputs = one_hot_inputs(2, 10, 3, sites=20, repeats=2, seed=0)
    assert inputs.shape == (32, 1, 10, 10) and (inputs.sum((1, 2, 3)) == 1).all()  # 16 sites x 2
    active = inputs.nonzero()[:, 2:]
    assert active.min() >= 3 and active.max() <= 6
    assert len({tuple(a) for a in active.tolist()}) == 16  # only 4 x 4 sites exist


def test_propagation_spreads_or_pools():
    import torch

    two = torch.zeros(1, 1, 32)
    two[0, 0, [8, 20]] = 1.0
    diffusive = propagate(two, 1, 3, 1, 5)
    assert [len(a) for a in diffusive] == [32] * 5  # same padding
    assert (diffusive[-1] > 0).sum() > (diffusive[0] > 0).sum()
    pooled = propagate(two, 1, 2, 2, 4)
    assert [len(a) for a in pooled] == [16, 8, 4, 2]
    assert pooled[0].sum() == pytest.approx(1.0)  # each layer averages: mass halves with size


def test_theory_table_sets_fits_beside_predictions():
    networks, table = theory_networks(
        [{"dim": 1, "filter_size": 2, "stride": 2, "depth": 5}], sites=32, repeats=4
    )
    assert list(networks.network.values) == ["1d_F2_s2"]
    assert set(table.columns) >= {
        "network",
        "law",
        "quantity",
        "exponent",
        "predicted",
        "deviation",
    }
    row = table.set_index("quantity").loc["D"]
    assert row.exponent == pytest.approx(row.predicted, abs=0.15)
