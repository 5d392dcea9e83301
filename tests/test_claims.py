"""The claims: cubes made with known effects get the verdicts and intervals those effects imply."""

import math
from itertools import chain

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import xarray as xr

from diffsens.claims import (
    ALL_VARIANTS,
    CLAIMS,
    COLUMNS,
    MIN_SEEDS,
    ExperimentResults,
    at_delta,
    claims_markdown,
    evaluate_claims,
)
from diffsens.provenance import RunSettings

LAYERS = ["relu1", "relu2", "relu3", "relu4", "output"]
HIDDEN = 4
VGG = {"name": "vgg11"}
STRIDED_1D = {"name": "simple_cnn", "dim": 1, "filter_size": 2, "stride": 2}


def cube(
    D,
    G,
    *,
    errors=None,
    shuffled_R=None,
    model=VGG,
    deltas=(1.0,),
    noisy_errors=None,
) -> xr.Dataset:
    """A cube of ``len(D)`` seeds: ``D[s][checkpoint]`` and ``G[s][checkpoint]`` are arrays over the
    5 probe points (init, best), the same at every displacement; ``shuffled_R[s]`` the shuffled
    net's R at every point (best; init as the original)."""
    seeds = len(D)
    conditions = ["original", "shuffled"] + (["noisy"] if noisy_errors is not None else [])
    shape = (seeds, 2, len(conditions), len(LAYERS), len(deltas))
    d, g = np.empty(shape), np.empty(shape)
    for s in range(seeds):
        for c, name in enumerate(("init", "best")):
            d[s, c] = np.asarray(D[s][name], dtype=float)[None, :, None]
            g[s, c] = np.asarray(G[s][name], dtype=float)[None, :, None]
        if shuffled_R is not None:
            d[s, 1, 1] = (np.asarray(shuffled_R[s], dtype=float) * g[s, 1, 1, :, 0])[:, None]
    dims = ("seed", "checkpoint", "condition", "layer", "temperature")
    ds = xr.Dataset(
        {"D": (dims, d), "G": (dims, g), "R": (dims, d / g)},
        coords={
            "seed": np.arange(seeds),
            "checkpoint": ["init", "best"],
            "condition": conditions,
            "layer": LAYERS,
            "depth": ("layer", np.arange(1, len(LAYERS) + 1)),
            "temperature": np.arange(len(deltas), dtype=float),
            "delta": ("temperature", np.asarray(deltas, dtype=float)),
        },
    )
    errors = np.full(seeds, 0.02) if errors is None else np.asarray(errors, dtype=float)
    ds["test_error"] = (("seed", "checkpoint"), np.stack([np.full(seeds, 0.9), errors], axis=1))
    if noisy_errors is not None:
        noisy = np.stack([np.full(seeds, 0.9), np.asarray(noisy_errors, dtype=float)], axis=1)
        ds["noisy_test_error"] = (("seed", "checkpoint"), noisy)
    ds.attrs = RunSettings(model=model, training={}, dataset={}, measure={}).to_attrs()
    return ds


def flat(value):
    return np.full(len(LAYERS), float(value))


def deep_ratio(ratios, quantity="D"):
    """Seeds whose ``quantity`` at the deepest hidden point is ``ratio`` times its init value;
    everything else 1."""
    D, G = [], []
    for ratio in ratios:
        trained = flat(1.0)
        trained[HIDDEN - 1] = ratio
        pair = {"init": flat(1.0), "best": trained}
        D.append(pair if quantity == "D" else {"init": flat(1.0), "best": flat(1.0)})
        G.append(pair if quantity == "G" else {"init": flat(1.0), "best": flat(1.0)})
    return D, G


def row(table, claim, quantity=None, variant="net", condition="original"):
    rows = table[(table.claim == claim) & (table.variant == variant)]
    rows = rows[rows.condition == condition]
    if quantity is not None:
        rows = rows[rows.quantity == quantity]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def claims_of(cubes, **kwargs):
    return evaluate_claims({"e": ExperimentResults(cubes, **kwargs)})


def t_interval_of_logs(ratios, confidence=0.95):
    """The expected interval, from scipy: the t interval of the mean log, exponentiated."""
    logs = np.log(ratios)
    low, high = scipy.stats.t.interval(
        confidence, len(logs) - 1, loc=logs.mean(), scale=scipy.stats.sem(logs)
    )
    return math.exp(logs.mean()), math.exp(low), math.exp(high)


@pytest.mark.parametrize(
    ("ratios", "verdict"),
    [
        ([0.2, 0.25, 0.3, 0.22], "holds"),
        ([1.5, 2.0, 1.8, 2.4], "reversed"),
        ([0.5, 2.0, 0.8, 1.5], "inconclusive"),
    ],
)
def test_a_ratio_claim_gets_the_t_interval_of_its_logs_and_its_verdict(ratios, verdict):
    table = claims_of({"net": cube(*deep_ratio(ratios))})
    found = row(table, "D_falls_with_training")
    estimate, low, high = t_interval_of_logs(np.array(ratios))
    assert found.estimate == pytest.approx(estimate, rel=1e-12)
    assert (found.low, found.high) == (pytest.approx(low, rel=1e-12), pytest.approx(high))
    assert (found.n, found.verdict, found.null, found.paper) == (4, verdict, 1.0, "below 1")
    assert found.statistic == "D best / init at relu4"


def test_G_is_claimed_to_rise_so_a_rise_holds_and_a_fall_is_reversed():
    rises = claims_of({"net": cube(*deep_ratio([2.0, 3.0, 2.5], "G"))})
    falls = claims_of({"net": cube(*deep_ratio([0.2, 0.3, 0.25], "G"))})
    assert row(rises, "G_rises_with_training").verdict == "holds"
    assert row(falls, "G_rises_with_training").verdict == "reversed"
    # R = D / G: a rise of G alone is a fall of R
    assert row(rises, "R_below_init").verdict == "holds"
    assert row(rises, "R_below_init").estimate == pytest.approx(1 / 2.466212, rel=1e-6)


def test_fewer_than_three_usable_seeds_give_no_verdict():
    assert MIN_SEEDS == 3
    table = claims_of({"net": cube(*deep_ratio([0.2, 0.25]))})
    found = row(table, "D_falls_with_training")
    assert found.verdict == "not applicable" and np.isnan(found.low) and found.n == 2
    assert found.estimate == pytest.approx(math.sqrt(0.2 * 0.25))  # shown, without a verdict
    assert "2 usable seed(s); a verdict needs at least 3" in found.note


def test_a_seed_whose_statistic_is_undefined_is_left_out_and_named():
    D, G = deep_ratio([0.2, 0.25, 0.3, 0.0])  # ln 0: undefined
    found = row(claims_of({"net": cube(D, G)}), "D_falls_with_training")
    assert found.n == 3 and found.verdict == "holds"
    assert found.note == "1 seed(s) left out: the statistic is undefined"


def test_a_cube_without_a_trained_checkpoint_tests_no_claim_of_the_trained_net():
    ds = cube(*deep_ratio([0.2, 0.25, 0.3])).sel(checkpoint=["init"])
    table = claims_of({"net": ds})
    tested = table[(table.variant == "net") & (table.claim != "spatial_pooling")]
    assert (tested.verdict == "not applicable").all()
    assert (tested.note == "no trained checkpoint was measured").all()


def test_undertrained_seeds_are_left_out_and_named():
    D, G = deep_ratio([0.2, 0.25, 0.3, 5.0])
    table = claims_of({"net": cube(D, G, errors=[0.01, 0.02, 0.03, 0.5])}, ceiling=0.1)
    found = row(table, "D_falls_with_training")
    assert found.n == 3 and found.verdict == "holds"
    assert found.estimate == pytest.approx(t_interval_of_logs(np.array([0.2, 0.25, 0.3]))[0])
    assert found.note == (
        "left out as undertrained (test error above 10.0%, or unknown): seed 3 (50.0%)"
    )
    tested = table[(table.variant == "net") & (table.verdict != "not applicable")]
    assert len(tested) == 8 and (tested.note == found.note).all()  # every tested claim says so


def test_an_unknown_test_error_is_left_out_only_under_a_ceiling():
    D, G = deep_ratio([0.2, 0.25, 0.3, 0.22])
    ds = cube(D, G, errors=[0.01, 0.02, np.nan, 0.03])
    assert row(claims_of({"net": ds}), "D_falls_with_training").n == 4
    found = row(claims_of({"net": ds}, ceiling=0.05), "D_falls_with_training")
    assert found.n == 3 and "seed 2 (nan%)" in found.note


def test_depth_claims_use_the_factor_per_probe_point():
    factors = [0.5, 0.6, 0.55]
    k = np.arange(1, len(LAYERS) + 1)
    D = [{"init": 0.9**k, "best": f**k} for f in factors]
    G = [{"init": flat(1.0), "best": flat(1.0)} for _ in factors]
    table = claims_of({"net": cube(D, G)})
    falls = row(table, "D_falls_with_depth")
    assert falls.estimate == pytest.approx(t_interval_of_logs(np.array(factors))[0])
    assert falls.verdict == "holds"
    assert falls.statistic == "factor per probe point of D_k, best, relu1..relu4"
    steeper = row(table, "not_before_training", "D")  # trained factor / init factor (0.9)
    expected = t_interval_of_logs(np.array(factors) / 0.9)
    assert (steeper.estimate, steeper.low, steeper.high) == pytest.approx(expected)
    assert steeper.verdict == "holds"
    assert row(table, "R_falls_with_depth").verdict == "holds"  # G is flat: R falls as D


def test_the_output_is_not_a_probe_point_of_the_depth_claims():
    k = np.arange(1, len(LAYERS) + 1)
    falls = [{"init": flat(1.0), "best": np.where(k < len(LAYERS), 0.5**k, 1e6)} for _ in range(3)]
    flat_G = [{"init": flat(1.0), "best": flat(1.0)} for _ in range(3)]
    table = claims_of({"net": cube(falls, flat_G)})
    assert row(table, "D_falls_with_depth").estimate == pytest.approx(0.5)


def test_channel_pooling_compares_the_shuffled_net_with_the_original():
    D, G = deep_ratio([0.2, 0.25, 0.3])
    raised = claims_of({"net": cube(D, G, shuffled_R=[flat(1.0)] * 3)})
    found = row(raised, "channel_pooling")
    assert found.estimate == pytest.approx(t_interval_of_logs(1 / np.array([0.2, 0.25, 0.3]))[0])
    assert found.verdict == "holds" and found.statistic == "R shuffled / original at relu4, best"
    lowered = claims_of({"net": cube(D, G, shuffled_R=[flat(0.01)] * 3)})
    assert row(lowered, "channel_pooling").verdict == "reversed"


def test_claims_that_need_the_initialisation_are_not_applicable_without_it():
    ds = cube(*deep_ratio([0.2, 0.25, 0.3])).sel(checkpoint=["best"])
    table = claims_of({"net": ds})
    for claim in ("D_falls_with_training", "G_rises_with_training", "R_below_init"):
        assert row(table, claim).verdict == "not applicable"
        assert row(table, claim).note == "needs init and a trained checkpoint"
    assert row(table, "D_falls_with_depth").verdict != "not applicable"


def law_cube(exponents, scatter=0.0):
    """A 1-D stride-2 net whose trained D_k, G_k, R_k follow exp(a k) with the seeds' ``a``."""
    k = np.arange(1, len(LAYERS) + 1)
    rng = np.random.default_rng(0)
    D, G = [], []
    for a in exponents:
        wobble = np.exp(scatter * rng.standard_normal(len(k)))
        D.append({"init": flat(1.0), "best": np.exp(-a * k) * wobble})
        G.append({"init": flat(1.0), "best": np.exp(a * k)})
    return cube(D, G, model=STRIDED_1D)


def test_a_depth_law_holds_when_its_interval_contains_the_prediction_and_not_zero():
    ln2 = math.log(2)
    table = claims_of({"net": law_cube([ln2 * 0.95, ln2 * 1.05, ln2])})
    D, G, R = (row(table, "depth_law", q) for q in "DGR")
    assert (D.paper, G.paper) == ("-0.6931", "0.6931")
    assert float(R.paper) == pytest.approx(-2 * ln2, rel=1e-3)  # 1-D, stride 2: 4^-k
    assert D.verdict == G.verdict == R.verdict == "holds"
    assert (G.estimate, R.estimate) == pytest.approx((ln2, -2 * ln2))
    assert G.statistic == "exponent of the exponential law of G_k, best, relu1..relu4"


def test_a_depth_law_differs_when_its_interval_excludes_the_prediction():
    table = claims_of({"net": law_cube([0.15, 0.16, 0.14])})
    assert row(table, "depth_law", "G").verdict == "differs"


def test_a_depth_law_is_inconclusive_when_its_interval_also_contains_zero():
    table = claims_of({"net": law_cube([-0.5, 0.9, 1.2])})
    found = row(table, "depth_law", "G")
    assert found.low < 0 < math.log(2) < found.high
    assert found.verdict == "inconclusive"


def test_a_net_without_a_law_gets_no_depth_law_verdict():
    table = claims_of({"net": cube(*deep_ratio([0.2, 0.25, 0.3]))})
    found = row(table, "depth_law", "G")
    assert found.verdict == "not applicable" and "predicts no law" in found.note


def nets(errors_by_variant, R_by_variant, noisy=False):
    """One cube per variant; the trained output's R and D per seed as given (init 1)."""
    cubes = {}
    for name, errors in errors_by_variant.items():
        R = R_by_variant[name]
        D = [{"init": flat(1.0), "best": flat(r)} for r in R]
        G = [{"init": flat(1.0), "best": flat(1.0)} for _ in R]
        cubes[name] = cube(D, G, errors=errors, noisy_errors=errors[::-1] if noisy else None)
    return cubes


def test_error_tracking_sensitivity_is_spearmans_rho_over_every_net_with_fishers_interval():
    errors = {"a": [0.01, 0.02, 0.015], "b": [0.05, 0.06, 0.04], "c": [0.1, 0.12, 0.09]}
    R = {"a": [0.1, 0.3, 0.15], "b": [0.5, 0.2, 0.4], "c": [0.9, 1.1, 0.35]}
    table = claims_of(nets(errors, R))
    found = row(table, "error_tracks_sensitivity", "R", variant=ALL_VARIANTS)
    rho = scipy.stats.spearmanr([*chain(*errors.values())], [*chain(*R.values())])[0]
    half = 1.959964 * math.sqrt(1.06 / (9 - 3))
    assert found.estimate == pytest.approx(rho)
    assert (found.low, found.high) == pytest.approx(
        (math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)), rel=1e-5
    )
    assert found.n == 9 and found.verdict == "holds"
    reversed_R = {name: [1 / r for r in values] for name, values in R.items()}
    flipped = claims_of(nets(errors, reversed_R))
    assert row(flipped, "error_tracks_sensitivity", "R", variant=ALL_VARIANTS).verdict == (
        "reversed"
    )


def test_error_tracking_needs_the_variants_measured_at_the_same_displacements():
    cubes = nets({"a": [0.01] * 3, "b": [0.02] * 3, "c": [0.03] * 3}, {v: [0.1] * 3 for v in "abc"})
    cubes["c"] = cubes["c"].assign_coords(delta=("temperature", [2.0]))
    found = row(claims_of(cubes), "error_tracks_sensitivity", "R", variant=ALL_VARIANTS)
    assert found.verdict == "not applicable"
    assert "the variants were measured at other displacements" in found.note


def test_error_tracking_says_why_it_cannot_rank_and_drops_undefined_nets():
    same = claims_of(nets({v: [0.0] * 3 for v in "abc"}, {v: [0.1, 0.2, 0.3] for v in "abc"}))
    found = row(same, "error_tracks_sensitivity", "R", variant=ALL_VARIANTS)
    assert found.verdict == "not applicable"
    assert found.note == "the test errors or the sensitivities do not vary across nets"
    errors = {"a": [0.01, 0.02, 0.015], "b": [0.05, 0.06, 0.04], "c": [0.1, 0.12, 0.09]}
    R = {"a": [0.1, 0.2, np.nan], "b": [0.5, 0.3, 0.4], "c": [0.9, 1.1, 0.8]}
    found = row(claims_of(nets(errors, R)), "error_tracks_sensitivity", "R", variant=ALL_VARIANTS)
    assert found.n == 8 and "1 net(s) left out: the value is undefined" in found.note


def test_error_tracking_is_inconclusive_when_seeds_can_reorder_the_variants():
    errors = {"a": [0.01, 0.05, 0.09], "b": [0.02, 0.06, 0.1], "c": [0.03, 0.07, 0.08]}
    R = {"a": [0.5, 0.1, 0.9], "b": [0.2, 0.8, 0.4], "c": [0.6, 0.3, 0.7]}
    found = row(claims_of(nets(errors, R)), "error_tracks_sensitivity", "R", variant=ALL_VARIANTS)
    assert found.low < 0 < found.high and found.verdict == "inconclusive"


def test_error_tracking_needs_three_variants_with_enough_seeds():
    errors = {"a": [0.01, 0.02, 0.015], "b": [0.05, 0.06, 0.04], "c": [0.1, 0.12]}
    R = {"a": [0.1, 0.2, 0.15], "b": [0.5, 0.3, 0.4], "c": [0.9, 1.1]}
    found = row(claims_of(nets(errors, R)), "error_tracks_sensitivity", "D", variant=ALL_VARIANTS)
    assert found.verdict == "not applicable"
    assert "left out with fewer than 3 usable seeds: c" in found.note
    assert "2 variant(s) with enough seeds, where it needs 3" in found.note


def test_error_tracking_on_noisy_probes_uses_the_noisy_test_error():
    errors = {"a": [0.01, 0.02, 0.015], "b": [0.05, 0.06, 0.04], "c": [0.1, 0.12, 0.09]}
    R = {"a": [0.1, 0.2, 0.15], "b": [0.5, 0.3, 0.4], "c": [0.9, 1.1, 0.8]}
    table = claims_of(nets(errors, R, noisy=True))
    noisy = row(table, "error_tracks_sensitivity", "R", variant=ALL_VARIANTS, condition="noisy")
    flipped = [e for values in errors.values() for e in values[::-1]]
    expected = scipy.stats.spearmanr(flipped, [*chain(*R.values())])[0]
    assert noisy.estimate == pytest.approx(expected)
    assert "training noise" in noisy.statistic


def test_spatial_pooling_reads_the_share_of_the_constant_filter():
    shares = {"init": [0.11, 0.11, 0.11], "best": [0.2, 0.3, 0.25]}
    fraction = np.zeros((3, 2, 2, 9))  # seed x checkpoint x layer x mode
    for c, name in enumerate(("init", "best")):
        fraction[:, c, :, 0] = np.asarray(shares[name])[:, None]
        fraction[:, c, :, 1:] = (1 - fraction[:, c, :, :1]) / 8
    spectra = xr.Dataset(
        {"fraction": (("seed", "checkpoint", "layer", "mode"), fraction)},
        coords={
            "seed": [0, 1, 2],
            "checkpoint": ["init", "best"],
            "layer": ["c1", "c2"],
            "mode": np.arange(9),
        },
    )
    table = claims_of({"net": cube(*deep_ratio([0.2, 0.25, 0.3]))}, spectra={"net": spectra})
    found = row(table, "spatial_pooling")
    expected = t_interval_of_logs(np.array(shares["best"]) / 0.11)
    assert (found.estimate, found.low, found.high) == pytest.approx(expected)
    assert found.verdict == "holds" and np.isnan(found.delta)
    assert "mean over 2 conv layers" in found.statistic


def test_every_claim_is_in_the_table_at_every_displacement():
    ds = cube(*deep_ratio([0.2, 0.25, 0.3]), deltas=(0.5, 1.0, 2.0))
    table = claims_of({"net": ds, "other": ds, "third": ds})
    assert list(table.columns) == list(COLUMNS)
    assert set(table.claim) == set(CLAIMS)
    per_delta = table[(table.variant == "net") & table.delta.notna()]
    assert sorted(per_delta.delta.unique()) == [0.5, 1.0, 2.0]
    assert (table.delta == 1.0).any()  # exactly, not 1.0000000000000002
    assert per_delta.groupby("delta").size().nunique() == 1
    assert set(table.verdict) <= {"holds", "reversed", "inconclusive", "differs", "not applicable"}


def test_at_delta_keeps_the_nearest_measured_displacement():
    ds = cube(*deep_ratio([0.2, 0.25, 0.3]), deltas=(0.5, 1.0, 2.0))
    table = claims_of({"net": ds})
    assert set(at_delta(table, 1.4).delta.dropna()) == {1.0}
    assert set(at_delta(table, 1.5).delta.dropna()) == {2.0}  # nearest on a log scale
    assert (at_delta(table, 1.0).claim == "spatial_pooling").sum() == 1


def test_the_markdown_shows_the_verdicts_at_a_glance_and_every_row():
    ds = cube(*deep_ratio([0.2, 0.25, 0.3]), deltas=(0.5, 1.0))
    table = claims_of({"net": ds})
    text = claims_markdown(table, delta=1.0)
    glance = text.split("## e")[0]
    estimate = row(table[table.delta == 1.0], "D_falls_with_training")
    assert f"| D_falls_with_training (D) | **holds** {estimate.estimate:.3g} [" in glance
    assert f"| e / net | e / {ALL_VARIANTS} |" in glance
    assert text.count("| net | D_falls_with_training |") == 2  # both displacements listed


def test_the_table_round_trips_through_csv(tmp_path):
    from diffsens.io import read_table, write_table

    table = claims_of({"net": cube(*deep_ratio([0.2, 0.25, 0.3]))})
    write_table(table, tmp_path / "claims.csv")
    back = read_table(tmp_path / "claims.csv", "claims table", columns=COLUMNS)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
