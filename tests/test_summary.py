"""The summary table: what README prose quotes, checked against the cubes it is made from."""

import numpy as np
import pytest

from diffsens.fits import fit_experiment, fit_table
from diffsens.summary import summarise, summary_markdown
from tests.test_plots import small_cube


@pytest.fixture(scope="module")
def experiment():
    cubes = {"a": small_cube(0), "b": small_cube(1)}
    return cubes, fit_experiment(cubes, bootstrap=20)


def test_summary_rows_are_means_and_spreads_over_seeds(experiment):
    cubes, fits = experiment
    table = summarise({"e": experiment}, delta=1.0)
    assert len(table) == 2 * 2 * 2  # variants x checkpoints x conditions
    row = table.query("variant == 'a' and checkpoint == 'best' and condition == 'original'")
    row = row.iloc[0]
    cube = cubes["a"].isel(temperature=1)  # delta 1.5 px is the nearest to 1 px
    R = cube.R.sel(checkpoint="best", condition="original")
    assert row.delta == 1.5 and (row.first_layer, row.last_layer) == ("relu1", "relu3")
    assert row.R_first == pytest.approx(float(R.sel(layer="relu1").mean()))
    assert row.R_last_sd == pytest.approx(float(np.std(R.sel(layer="relu3").values, ddof=1)))
    errors = cubes["a"].test_error.sel(checkpoint="best").values
    assert row.test_error == pytest.approx(errors.mean())
    assert table.query("condition == 'shuffled'").test_error.isna().all()  # not evaluated
    exponent = fits.exponent.sel(variant="a", quantity="R", checkpoint="best", condition="original")
    assert row.R_exponent == pytest.approx(float(exponent)) and row.law == "exponential"


def test_undertrained_nets_are_flagged_in_the_summary_and_the_fits(experiment):
    cubes, fits = experiment
    errors = {v: float(c.test_error.sel(checkpoint="best").mean()) for v, c in cubes.items()}
    ceiling = (errors["a"] + errors["b"]) / 2
    table = summarise({"e": experiment}, ceilings={"e": ceiling})
    flagged = set(table[table.undertrained].variant)
    assert flagged == {v for v, e in errors.items() if e > ceiling} and len(flagged) == 1
    assert not table[table.checkpoint == "init"].undertrained.any()
    assert "(undertrained)" in summary_markdown(table)
    fitted = fit_table(fits, ceiling)
    assert set(fitted[fitted.undertrained].variant) == flagged
    assert set(fitted.columns) >= {"exponent", "predicted", "deviation", "law", "test_error"}


def test_markdown_has_one_table_per_experiment(experiment):
    text = summary_markdown(summarise({"e": experiment, "f": experiment}))
    assert text.count("| variant | checkpoint | condition | test error |") == 2
    assert "## e" in text and "## f" in text and " ± " in text
