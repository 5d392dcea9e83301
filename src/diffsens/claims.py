"""The paper's claims tested on a run: each one's effect, its interval over seeds, a verdict.

Every claim is a statistic with a null value and a side of it that the paper predicts
(docs/science.md §11). Per-variant claims compute the statistic once per training seed (paired:
a seed's trained net against its own initialisation or its own shuffled copy) and give the mean
with a Student t interval over seeds; ratios are averaged as logarithms, so their estimate is a
geometric mean. ``error_tracks_sensitivity`` is a rank correlation across the trained nets of an
experiment, with Fisher's interval for Spearman's rho. A verdict reads the interval:

* ``holds``: it excludes the null on the paper's side;
* ``reversed``: it excludes the null on the other side;
* ``inconclusive``: it contains the null;
* ``differs`` (``depth_law``, which predicts a value, not a side): it excludes the prediction
  (``holds`` when it contains the prediction but not 0, ``inconclusive`` when it contains both);
* ``not applicable``: the run cannot test the claim (no initialisation or shuffle measured, no
  declared law, too few seeds or nets); the note says why.

A net whose trained test error is above its experiment's ceiling is left out of every claim,
and the note says so. Nothing here needs torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.stats
import xarray as xr

from diffsens.cubes import test_error_of
from diffsens.fits import depth_series, fit_law, trained_checkpoint
from diffsens.laws import LAWS, QUANTITIES, model_law
from diffsens.provenance import RunSettings

__all__ = [
    "ALL_VARIANTS",
    "CLAIMS",
    "COLUMNS",
    "MIN_SEEDS",
    "MIN_VARIANTS",
    "VERDICTS",
    "ExperimentResults",
    "at_delta",
    "claim_label",
    "claim_rows",
    "claims_markdown",
    "evaluate_claims",
]

CLAIMS = {
    "D_falls_with_training": "training lowers D at the deepest hidden probe point",
    "G_rises_with_training": "training raises G at the deepest hidden probe point",
    "R_below_init": "the trained net's R at the deepest hidden probe point is below its init value",
    "D_falls_with_depth": "the trained net's D_k falls from probe point to probe point",
    "R_falls_with_depth": "the trained net's R_k falls from probe point to probe point",
    "not_before_training": "D_k and R_k fall faster with depth after training than at init",
    "error_tracks_sensitivity": "across trained nets, test error rises with the output's D and R",
    "channel_pooling": "shuffling the trained net's conv input channels raises its deep R",
    "spatial_pooling": "training moves filter energy to the constant filter (eigenvalue 0)",
    "depth_law": "D_k, G_k, R_k follow the constant-filter depth law",
}
"""Every claim tested, by name, with what the paper says."""

VERDICTS = ("holds", "reversed", "inconclusive", "differs", "not applicable")

COLUMNS = {
    "experiment": str,
    "variant": str,
    "claim": str,
    "quantity": str,
    "condition": str,
    "delta": float,
    "statistic": str,
    "paper": str,
    "null": float,
    "estimate": float,
    "low": float,
    "high": float,
    "n": int,
    "verdict": str,
    "note": str,
}
"""The columns of the claims table, in order, with their types."""

MIN_SEEDS = 3
"""Usable seeds a verdict needs: two give an interval too wide to mean anything."""

MIN_VARIANTS = 3
"""Variants (architectures, noise levels) a correlation across nets needs, each with
:data:`MIN_SEEDS` usable seeds."""

ALL_VARIANTS = "(all)"
"""The variant of a claim about a whole experiment."""


class ExperimentResults(NamedTuple):
    """What the claims read of one experiment: cubes (and Laplacian spectra) by variant, and the
    test error above which a trained net counts as undertrained (none: every net counts)."""

    cubes: Mapping[str, xr.Dataset]
    spectra: Mapping[str, xr.Dataset] = {}
    ceiling: float | None = None


def evaluate_claims(
    experiments: Mapping[str, ExperimentResults], *, confidence: float = 0.95
) -> pd.DataFrame:
    """Every claim of :data:`CLAIMS` on every experiment, variant and measured displacement, as a
    table with :data:`COLUMNS`; ``confidence`` is the level of every interval."""
    rows = []
    for experiment, results in experiments.items():
        variants = {
            name: _Variant(cube, results.ceiling, confidence)
            for name, cube in results.cubes.items()
        }
        for name, variant in variants.items():
            found = [*variant.claims(), variant.spatial_pooling(results.spectra.get(name))]
            rows += [{"experiment": experiment, "variant": name, **row} for row in found]
        found = _error_tracks_sensitivity(variants, confidence)
        rows += [{"experiment": experiment, "variant": ALL_VARIANTS, **row} for row in found]
    table = pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMNS)
    table["delta"] = table["delta"].round(6)  # 1, not 1.0000000000000002 (from T and back)
    return table


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Mean of ``values`` (one per seed) and its Student t interval."""
    n = len(values)
    mean = float(np.mean(values))
    half = scipy.stats.t.ppf((1 + confidence) / 2, n - 1) * np.std(values, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def _side(low: float, high: float, null: float, paper: int) -> str:
    """The verdict of an interval on a claim that the value is below (``paper`` -1) or above
    (+1) ``null``."""
    if low > null or high < null:
        return "holds" if (low > null) == (paper > 0) else "reversed"
    return "inconclusive"


def _not_applicable(why: str, **row) -> dict:
    return {
        "estimate": np.nan,
        "low": np.nan,
        "high": np.nan,
        "n": 0,
        **row,
        "verdict": "not applicable",
        "note": why,
    }


def _log(ratios: np.ndarray) -> np.ndarray:
    """Natural logarithms, -inf or NaN where a ratio is 0 or undefined (left out, and said)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(ratios)


def _too_few(n: int) -> str:
    return f"{n} usable seed(s); a verdict needs at least {MIN_SEEDS}"


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def _over_seeds(
    values: np.ndarray, row: dict, note: str, confidence: float, verdict, transform=None
) -> dict:
    """``row`` completed with the mean of the finite ``values`` (one per seed) and its
    interval, mapped through ``transform``, and the ``verdict(low, high)`` of that interval."""
    finite = np.isfinite(values)
    if not finite.all():
        note = _join(note, f"{int((~finite).sum())} seed(s) left out: the statistic is undefined")
    values = values[finite]
    if len(values) < MIN_SEEDS:
        estimate = (transform or float)(values.mean()) if len(values) else np.nan
        why = _join(note, _too_few(len(values)))
        return _not_applicable(why, **row, n=len(values), estimate=estimate)
    estimate, low, high = map(transform or float, _t_interval(values, confidence))
    return {
        **row,
        "estimate": estimate,
        "low": low,
        "high": high,
        "n": len(values),
        "verdict": verdict(low, high),
        "note": note,
    }


def _ratio(logs: np.ndarray, paper: int, confidence: float, note: str) -> dict:
    """A ratio (or a factor per probe point) from its per-seed logarithms: the geometric mean
    and its interval, against 1."""
    row = {"paper": "below 1" if paper < 0 else "above 1", "null": 1.0}
    return _over_seeds(
        logs, row, note, confidence, lambda low, high: _side(low, high, 1.0, paper), math.exp
    )


def _exponent(exponents: np.ndarray, predicted: float, confidence: float, note: str) -> dict:
    """A fitted exponent (one per seed) against the value its law predicts."""

    def verdict(low: float, high: float) -> str:
        if not low <= predicted <= high:
            return "differs"
        return "inconclusive" if low <= 0 <= high else "holds"

    row = {"paper": f"{predicted:.4g}", "null": 0.0}
    return _over_seeds(exponents, row, note, confidence, verdict)


class _Variant:
    """One variant's cube, its usable seeds, and the claims it can test."""

    def __init__(self, cube: xr.Dataset, ceiling: float | None, confidence: float):
        cube = cube if "seed" in cube.dims else cube.expand_dims("seed")  # one measured run
        self.confidence = confidence
        self.trained = trained_checkpoint(cube)
        errors = cube.test_error.sel(checkpoint=self.trained).values
        keep = np.ones(len(errors), dtype=bool) if ceiling is None else errors <= ceiling
        self.cube = cube.isel(seed=keep)
        seeds = cube.seed.values
        above = [f"seed {s} ({e:.1%})" for s, e in zip(seeds[~keep], errors[~keep], strict=True)]
        self.note = (
            f"left out as undertrained (test error above {ceiling:.1%}, or unknown): "
            + ", ".join(above)
            if above
            else ""
        )
        names = [str(layer) for layer in cube.layer.values]
        self.hidden = [name for name in names if name != "output"] or names
        self.deep = self.hidden[-1]
        self.checkpoints = [str(c) for c in cube.checkpoint.values]
        self.conditions = [str(c) for c in cube.condition.values]
        self.paired = "init" in self.checkpoints and self.trained != "init"
        self.law, self.predicted = model_law(RunSettings.from_attrs(cube.attrs).model)

    @property
    def seeds(self) -> int:
        return self.cube.sizes["seed"]

    def claims(self) -> list[dict]:
        """Every per-variant claim on the original net, at every measured displacement."""
        rows = []
        for index in range(self.cube.sizes["temperature"]):
            at = self.cube.isel(temperature=index)
            if self.trained == "init":
                found = self._untestable("no trained checkpoint was measured")
            elif "original" not in self.conditions:
                found = self._untestable("the original net was not measured")
            else:
                found = self._at(at)
            rows += [{"condition": "original", "delta": float(at.delta), **r} for r in found]
        return rows

    def _untestable(self, why: str) -> list[dict]:
        return [
            self._row(claim, "", "", _not_applicable(why))
            for claim in CLAIMS
            if claim not in ("error_tracks_sensitivity", "spatial_pooling")
        ]

    def _at(self, at: xr.Dataset) -> list[dict]:
        """The claims at one displacement."""
        original, trained, deep = at.sel(condition="original"), self.trained, self.deep
        unpaired = "needs init and a trained checkpoint"
        rows = []
        for claim, quantity, paper in (
            ("D_falls_with_training", "D", -1),
            ("G_rises_with_training", "G", +1),
            ("R_below_init", "R", -1),
        ):
            if self.paired:
                values = original[quantity].sel(layer=deep)
                ratio = values.sel(checkpoint=trained) / values.sel(checkpoint="init")
                found = self._ratio(_log(ratio.values), paper)
            else:
                found = _not_applicable(unpaired)
            rows.append(self._row(claim, quantity, f"{quantity} {trained} / init at {deep}", found))
        span = f"{self.hidden[0]}..{deep}"
        for quantity in ("D", "R"):
            logs = self._slopes(original[quantity].sel(checkpoint=trained))
            statistic = f"factor per probe point of {quantity}_k, {trained}, {span}"
            found = self._ratio(logs, -1)
            rows.append(self._row(f"{quantity}_falls_with_depth", quantity, statistic, found))
        for quantity in ("D", "R"):
            values = original[quantity]
            statistic = f"factor per probe point of {quantity}_k, {trained} / init, {span}"
            if self.paired:
                logs = self._slopes(values.sel(checkpoint=trained))
                found = self._ratio(logs - self._slopes(values.sel(checkpoint="init")), -1)
            else:
                found = _not_applicable(unpaired)
            rows.append(self._row("not_before_training", quantity, statistic, found))
        statistic = f"R shuffled / original at {deep}, {trained}"
        if "shuffled" in self.conditions:
            values = at.R.sel(layer=deep, checkpoint=trained)
            ratio = values.sel(condition="shuffled") / values.sel(condition="original")
            found = self._ratio(_log(ratio.values), +1)
        else:
            found = _not_applicable("the shuffled net was not measured")
        rows.append(self._row("channel_pooling", "R", statistic, found))
        rows += self._depth_law(original.sel(checkpoint=trained))
        if "channel_mean" in self.conditions:  # the law on the paper's 1-D representation too
            averaged = at.sel(condition="channel_mean", checkpoint=trained)
            rows += [{**row, "condition": "channel_mean"} for row in self._depth_law(averaged)]
        return rows

    def _row(self, claim: str, quantity: str, statistic: str, found: dict) -> dict:
        return {
            "claim": claim,
            "quantity": quantity,
            "statistic": statistic,
            "paper": "",
            "null": np.nan,
            **found,
        }

    def _ratio(self, logs: np.ndarray, paper: int) -> dict:
        return _ratio(logs, paper, self.confidence, self.note)

    def _slopes(self, values: xr.DataArray) -> np.ndarray:
        """Per seed: the slope of ln y over the hidden probe points, the log of the factor per
        probe point."""
        k = np.arange(1, len(self.hidden) + 1)
        rows = values.sel(layer=self.hidden).transpose("seed", "layer").values
        return np.array([fit_law(k, row, "exponential").exponent for row in rows])

    def _depth_law(self, trained: xr.Dataset) -> list[dict]:
        """Per quantity: the exponent of the declared law fitted to each seed (over the layers
        the depth-law fits use), against its prediction."""
        series = depth_series(trained)
        span = f"{series.layer.values[0]}..{series.layer.values[-1]}"
        rows = []
        for quantity in QUANTITIES:
            predicted = self.predicted[quantity]
            law = f"{self.law} law" if self.law in LAWS else "depth law"
            statistic = f"exponent of the {law} of {quantity}_k, {self.trained}, {span}"
            if self.law in LAWS and np.isfinite(predicted):
                values = series[quantity].transpose("seed", "layer").values
                k = series.depth.values
                exponents = np.array([fit_law(k, v, self.law).exponent for v in values])
                found = _exponent(exponents, predicted, self.confidence, self.note)
            else:
                found = _not_applicable(
                    "the constant-filter theory predicts no law for this net (only simple_cnn "
                    "with one stride, 1 or the filter size, and no pooling has one)"
                )
            rows.append(self._row("depth_law", quantity, statistic, found))
        return rows

    def spatial_pooling(self, spectra: xr.Dataset | None) -> dict:
        """The share of filter energy on the constant filter, trained over init, per seed (the
        mean over conv layers)."""
        layers = 0 if spectra is None else spectra.sizes.get("layer", 0)
        statistic = (
            f"share of filter energy at eigenvalue 0, {self.trained} / init, mean over "
            f"{layers} conv layers"
        )
        row = {"condition": "original", "delta": np.nan}
        if spectra is None or layers == 0:
            why = "no Laplacian spectra" if spectra is None else "the net has no spatial filters"
            return {**row, **self._row("spatial_pooling", "", statistic, _not_applicable(why))}
        measured = [str(c) for c in spectra.checkpoint.values]
        if not (self.paired and self.trained in measured and "init" in measured):
            found = _not_applicable("needs the spectra of init and of a trained checkpoint")
            return {**row, **self._row("spatial_pooling", "", statistic, found)}
        usable = [s for s in spectra.seed.values if s in self.cube.seed.values]
        constant = spectra.fraction.sel(seed=usable).isel(mode=0).mean("layer")
        ratio = constant.sel(checkpoint=self.trained) / constant.sel(checkpoint="init")
        found = self._ratio(_log(ratio.values), +1)
        return {**row, **self._row("spatial_pooling", "", statistic, found)}

    def nets(self, condition: str, quantity: str, index: int) -> np.ndarray:
        """``(seeds, 2)``: each usable trained net's test error (on the noisy test set for the
        ``noisy`` condition) and ``quantity`` of its output at the ``index``-th displacement."""
        at = self.cube.isel(temperature=index).sel(checkpoint=self.trained, condition=condition)
        error = test_error_of(at, condition)
        return np.stack([error.values, at[quantity].isel(layer=-1).values], axis=1)


def _error_tracks_sensitivity(variants: Mapping[str, _Variant], confidence: float) -> list[dict]:
    """Spearman's rank correlation of the trained nets' test error with D and with R of their
    output, at every displacement, on the original probes and, where every variant measured
    them, on the noisy ones."""
    few = [name for name, v in variants.items() if v.seeds < MIN_SEEDS]
    used = {name: v for name, v in variants.items() if name not in few}
    note = _join(
        *(f"{name}: {v.note}" for name, v in variants.items() if v.note),
        f"left out with fewer than {MIN_SEEDS} usable seeds: {', '.join(few)}" if few else "",
    )
    conditions = ["original"]
    if used and all("noisy" in v.conditions for v in used.values()):
        conditions.append("noisy")
    deltas = {
        name: [round(float(d), 6) for d in v.cube.delta.values] for name, v in variants.items()
    }
    shared = next(iter(deltas.values()), [])
    if any(measured != shared for measured in deltas.values()):
        why = f"the variants were measured at other displacements: {deltas}"
        return [
            {
                "claim": "error_tracks_sensitivity",
                "quantity": q,
                "condition": "original",
                "delta": np.nan,
                "statistic": "",
                "paper": "above 0",
                "null": 0.0,
                **_not_applicable(why),
            }
            for q in ("D", "R")
        ]
    rows = []
    for condition in conditions:
        probes = " (probes and test set with the training noise)" if condition == "noisy" else ""
        for index, delta in enumerate(shared):
            for quantity in ("D", "R"):
                statistic = f"Spearman correlation of test error with {quantity} of the output"
                row = {
                    "claim": "error_tracks_sensitivity",
                    "quantity": quantity,
                    "condition": condition,
                    "delta": delta,
                    "statistic": statistic + probes,
                    "paper": "above 0",
                    "null": 0.0,
                }
                if len(used) < MIN_VARIANTS:
                    why = f"{len(used)} variant(s) with enough seeds, where it needs {MIN_VARIANTS}"
                    rows.append({**row, **_not_applicable(_join(note, why))})
                    continue
                nets = np.concatenate([v.nets(condition, quantity, index) for v in used.values()])
                rows.append({**row, **_correlation(nets, confidence, note)})
    return rows


def _correlation(nets: np.ndarray, confidence: float, note: str) -> dict:
    """Spearman's rho of the test errors ``nets[:, 0]`` with the sensitivities ``nets[:, 1]``,
    with Fisher's interval: ``atanh(rho) +- z sqrt(1.06 / (n - 3))`` (Fieller, Hartley and
    Pearson 1957), nets with an undefined sensitivity left out."""
    finite = np.isfinite(nets).all(axis=1)
    if not finite.all():
        note = _join(note, f"{int((~finite).sum())} net(s) left out: the value is undefined")
    nets = nets[finite]
    n = len(nets)
    rho = float(_spearman(nets[None, :, 0], nets[None, :, 1])[0]) if n > 3 else np.nan
    if not np.isfinite(rho):
        why = "the test errors or the sensitivities do not vary across nets" if n > 3 else ""
        return _not_applicable(_join(note, why or f"{n} nets; it needs at least 4"), n=n)
    half = scipy.stats.norm.ppf((1 + confidence) / 2) * math.sqrt(1.06 / (n - 3))
    z = math.atanh(float(np.clip(rho, -1 + 1e-12, 1 - 1e-12)))  # rho of +-1: a point
    low, high = math.tanh(z - half), math.tanh(z + half)
    return {
        "estimate": rho,
        "low": low,
        "high": high,
        "n": n,
        "verdict": _side(low, high, 0.0, +1),
        "note": note,
    }


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of ``x`` with the same row of ``y`` (tied values share their
    mean rank); NaN where a row does not vary."""
    rx = scipy.stats.rankdata(x, axis=1)
    ry = scipy.stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    norm = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (rx * ry).sum(axis=1) / norm, np.nan)


def at_delta(table: pd.DataFrame, delta: float = 1.0) -> pd.DataFrame:
    """The rows of a claims table at the measured displacement nearest ``delta`` pixels (on a log
    scale), one per experiment, variant, claim, quantity and condition; rows without a
    displacement (``spatial_pooling``) stay."""
    distance = np.abs(np.log(table["delta"] / delta)).fillna(0.0)
    keys = ["experiment", "variant", "claim", "quantity", "condition"]
    nearest = distance.groupby([table[k] for k in keys], sort=False).transform("min")
    return table[distance == nearest]


_CONDITION_WORDS = {"noisy": "noisy probes", "channel_mean": "channel mean"}


def claim_rows(table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The ``(claim, quantity, condition)`` of a claims table, in the order of :data:`CLAIMS`,
    then D, G, R, then original before the other conditions: the rows tables and figures show."""
    keys = set(zip(table.claim, table.quantity, table.condition, strict=True))
    claims, quantities = list(CLAIMS), ["", *QUANTITIES]
    return sorted(
        keys,
        key=lambda k: (claims.index(k[0]), quantities.index(k[1]), k[2] != "original", k[2]),
    )


def claim_label(claim: str, quantity: str, condition: str) -> str:
    """A claim as tables and figures name it: ``depth_law (G, channel mean)``."""
    detail = [quantity] if quantity else []
    detail += [_CONDITION_WORDS[condition]] if condition in _CONDITION_WORDS else []
    return claim + (f" ({', '.join(detail)})" if detail else "")


def claims_markdown(table: pd.DataFrame, delta: float = 1.0) -> str:
    """The claims as markdown: the verdicts at a glance (one row per claim, one column per
    experiment and variant, at the measured displacement nearest ``delta``), then every row of
    ``table``, experiment by experiment."""
    glance = at_delta(table, delta)
    columns = list(dict.fromkeys(zip(glance.experiment, glance.variant, strict=True)))
    lines = [
        "# The paper's claims on this run",
        "",
        "Each claim's effect is a mean over the usable seeds of a variant (ratios as geometric "
        "means) with its interval; the verdict says whether the interval excludes the null on "
        "the paper's side (holds), on the other (reversed), or not (inconclusive), and whether a "
        "fitted exponent's interval excludes its predicted value (differs). docs/science.md §11 "
        "gives every statistic and rule.",
        "",
        f"## At a glance (the measured displacement nearest {delta:g} px)",
        "",
        "| claim | " + " | ".join(f"{e} / {v}" for e, v in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    blocks = dict(list(glance.groupby(["claim", "quantity", "condition"], sort=False)))
    for key in claim_rows(glance):
        label = claim_label(*key)
        cells = {(r.experiment, r.variant): _cell(r) for r in blocks[key].itertuples(index=False)}
        lines.append(f"| {label} | " + " | ".join(cells.get(c, "") for c in columns) + " |")
    for experiment, block in table.groupby("experiment", sort=False):
        lines += [
            "",
            f"## {experiment}",
            "",
            "| variant | claim | condition | δ (px) | statistic | paper | estimate [interval] "
            "| n | verdict | note |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in block.itertuples(index=False):
            lines.append(
                f"| {r.variant} | {r.claim} | {r.condition} | {_number(r.delta)} | "
                f"{r.statistic} | {r.paper} | {_effect(r)} | {r.n} | {r.verdict} | {r.note} |"
            )
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return "" if not np.isfinite(value) else f"{value:.3g}"


def _effect(row) -> str:
    if not np.isfinite(row.estimate):
        return ""
    return f"{row.estimate:.3g} [{row.low:.3g}, {row.high:.3g}]"


def _cell(row) -> str:
    """A verdict and its effect, for the table at a glance."""
    effect = _effect(row)
    return f"**{row.verdict}** {effect}" if effect else row.verdict
