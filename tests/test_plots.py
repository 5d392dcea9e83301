import matplotlib.ticker
import numpy as np
import pytest
import xarray as xr

from diffsens import plots
from diffsens.fits import fit_experiment
from diffsens.provenance import RunSettings
from diffsens.theory import theory_networks


def small_cube(seed=0, noise=0.0, model=None):
    rng = np.random.default_rng(seed)
    k = np.arange(1, 5)
    dims = ("seed", "checkpoint", "condition", "layer", "temperature")
    D = np.exp(-0.5 * k)[None, None, None, :, None] * np.exp(rng.normal(0, 0.1, (2, 2, 2, 4, 2)))
    G = np.exp(0.2 * k)[None, None, None, :, None] * np.exp(rng.normal(0, 0.1, (2, 2, 2, 4, 2)))
    cube = xr.Dataset(
        {
            "D": (dims, D),
            "G": (dims, G),
            "test_error": (("seed", "checkpoint"), rng.uniform(0.1, 0.9, (2, 2))),
        },
        coords={
            "seed": [0, 1],
            "checkpoint": ["init", "best"],
            "condition": ["original", "shuffled"],
            "layer": ["relu1", "relu2", "relu3", "output"],
            "depth": ("layer", k),
            "temperature": [1e-3, 1e-2],
            "delta": ("temperature", [0.5, 1.5]),
        },
    )
    cube["R"] = cube.D / cube.G
    spec = model or {"name": "simple_cnn", "dim": 1, "filter_size": 2, "stride": 2}
    settings = RunSettings(model=spec, training={"training_noise": noise}, dataset={})
    cube.attrs.update(settings.to_attrs())
    return cube


def labelled(fig):
    """Every panel that shows data has both axis labels, or shares them with its row/column."""
    axes = [ax for ax in fig.axes if ax.has_data()]
    assert axes, "the figure draws nothing"
    assert any(ax.get_xlabel() for ax in axes) and any(ax.get_ylabel() for ax in axes)
    assert len(fig.legends) + sum(bool(ax.get_legend()) for ax in fig.axes) <= 1
    return axes


def tick_labels(ax):
    return [t.get_text() for t in ax.get_xticklabels() if t.get_visible()]


def test_layerwise():
    fig = plots.layerwise({"a": small_cube(0), "b": small_cube(1)})
    axes = labelled(fig)
    assert len(axes) == 6 and axes[0].get_yscale() == "log"
    assert {ax.get_ylabel() for ax in axes} >= {"$D_k$", "$G_k$", "$R_k = D_k / G_k$"}
    assert len(fig.legends) == 1
    # probe points named on the bottom panel of each column (axes are row by row), the panels
    # above share them
    assert tick_labels(axes[4]) == ["relu1", "relu2", "relu3", "output"]
    assert axes[4].get_xlabel() == "probe point $k$"
    assert not axes[0].xaxis.get_tick_params()["labelbottom"]
    np.testing.assert_array_equal(axes[0].get_xticks(), [1, 2, 3, 4])


def deepened(cube, layers):
    """``cube`` with ``layers`` ReLU probe points (its own, repeated)."""
    names = [f"relu{k}" for k in range(1, layers + 1)]
    deep = cube.isel(layer=np.arange(layers) % cube.sizes["layer"])
    return deep.assign_coords(layer=names, depth=("layer", np.arange(1, layers + 1)))


def test_deep_nets_are_numbered_not_named():
    deep = deepened(small_cube(0), plots.MAX_NAMED + 1)  # the names would overlap
    bottom = plots.layerwise({"deep": deep}).axes[2]
    assert not any(label.startswith("relu") for label in tick_labels(bottom))
    assert all(float(k).is_integer() for k in bottom.get_xticks())
    assert bottom.get_xlabel() == "probe point $k$"


def test_compare_draws_every_variant_in_one_panel_per_quantity():
    cubes = {"a": small_cube(0), "b": small_cube(1)}
    fig = plots.compare(cubes, ceiling=0.99)
    axes = labelled(fig)
    assert [ax.get_ylabel() for ax in axes] == ["$D_k$", "$G_k$", "$R_k = D_k / G_k$"]
    for ax in axes:  # init dashed, trained solid, one colour per variant
        assert ax.get_yscale() == "log"
        styles = [(line.get_color(), line.get_linestyle()) for line in ax.get_lines()]
        assert styles == [(c, ls) for c in plots.PALETTE[:2] for ls in ("--", "-")]
    assert tick_labels(axes[0]) == ["relu1", "relu2", "relu3", "output"]  # the same probe points
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    errors = [float(c.test_error.sel(checkpoint="best").mean()) for c in cubes.values()]
    assert labels == [
        f"a ({errors[0]:.1%} error)",
        f"b ({errors[1]:.1%} error)",
        "init",
        "trained (best)",
    ]
    delta = float(plots.at_delta(cubes["a"], 1.0).delta)
    assert fig._suptitle.get_text().startswith(f"original nets at δ = {delta:.2f} px")


def test_compare_lays_a_grid_out_in_rows_of_one_colour_per_architecture():
    cubes = {}
    for noise in (10.0, 0.0, 1.0):
        cubes[f"cnn_{noise}"] = small_cube(0, noise)
        vgg = deepened(small_cube(1, noise, model={"name": "vgg11"}), 6)
        cubes[f"vgg11_{noise}"] = vgg.assign(test_error=vgg.test_error * 0 + 0.9)
    fig = plots.compare(cubes, ceiling=0.5, grid=["training.training_noise", "model.name"])
    axes = labelled(fig)
    assert len(axes) == 9  # 3 noise levels (rows) x D, G, R
    margins = [text.get_text() for ax in axes for text in ax.texts]
    assert margins == [f"training_noise = {n}" for n in (0.0, 1.0, 10.0)]  # in increasing order
    for ax in axes:
        lines = ax.get_lines()
        assert [line.get_color() for line in lines] == [plots.PALETTE[0]] * 2 + [
            plots.PALETTE[1]
        ] * 2
        assert [line.get_alpha() for line in lines[2:]] == [0.9, 0.3]  # vgg11 is undertrained
    # 4 and 6 probe points: relative depth, both ending at the output (1)
    assert {line.get_xdata()[-1] for line in axes[0].get_lines()} == {1.0}
    assert axes[-1].get_xlabel().startswith("relative depth")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["simple_cnn", "vgg11", "init", "trained (best)", "undertrained (> 50% error)"]


def test_temperatures():
    fig = plots.temperatures({"a": small_cube(0), "b": small_cube(1)})
    axes = labelled(fig)
    assert len(axes) == 2 and axes[0].get_ylabel() == "$R_k = D_k / G_k$"
    assert {t.get_text() for t in fig.legends[0].get_texts()} >= {
        "δ = 0.50 px",
        "δ = 1.50 px",
        "init",
        "trained (best)",
    }
    last = small_cube(0).assign_coords(checkpoint=["init", "last"])  # drawn dash-dotted
    fig = plots.temperatures({"a": last})
    styles = {
        t.get_text(): h.get_linestyle()
        for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles, strict=True)
    }
    drawn = {line.get_linestyle() for line in labelled(fig)[0].get_lines()}
    assert styles["trained (last)"] == "-." and styles["init"] == "--" and drawn == {"-.", "--"}


def test_error_vs_sensitivity_colours_by_noise_when_given():
    cubes = {"n0": small_cube(0, 0.0), "n1": small_cube(1, 1.0), "n10": small_cube(2, 10.0)}
    fig = plots.error_vs_sensitivity(
        cubes,
        colour_by={"n0": 0.0, "n1": 1.0, "n10": 10.0},
        colour_label="noise",
        shape_by={"n0": "vgg", "n1": "vgg", "n10": "lenet"},
    )
    axes = labelled(fig)
    for ax in axes[:3]:  # the fourth is the colour bar; log axes only over a decade or more
        values = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections])
        decades = np.log10(values.max() / values.min())
        assert ax.get_xscale() == ("log" if decades > 1.1 else "linear" if decades < 0.9 else "")
    assert axes[0].get_ylabel() == "test error"
    (bar,) = [ax for ax in fig.axes if ax.get_ylabel() == "noise"]
    fig.canvas.draw()
    assert [t.get_text() for t in bar.get_yticklabels()] == ["0", "1", "10"]  # 0 shown as 0
    means = [c for c in axes[0].collections if c.get_sizes()[0] > 20]  # one per variant
    colours = [tuple(c.get_facecolor()[0]) for c in means]
    assert len(set(colours)) == 3  # a colour per level
    shapes = [c.get_paths()[0].vertices.round(6).tobytes() for c in means]
    assert shapes[0] == shapes[1] != shapes[2]  # a shape per architecture
    legend = axes[2].get_legend()
    assert [t.get_text() for t in legend.get_texts()][:2] == ["vgg", "lenet"]


def test_spectra_and_empty_spectra():
    spectrum = xr.Dataset(
        {
            "fraction": (("seed", "checkpoint", "layer", "mode"), np.full((1, 2, 3, 9), 1 / 9)),
            "test_error": (("seed", "checkpoint"), [[0.9, 0.05]]),
        },
        coords={
            "seed": [0],
            "checkpoint": ["init", "best"],
            "layer": ["c1", "c2", "c3"],
            "depth": ("layer", [1, 2, 3]),
            "mode": np.arange(9),
            "eigenvalue": ("mode", [0, 1, 1, 2, 3, 3, 4, 4, 6]),
        },
    )
    empty = spectrum.isel(layer=slice(0, 0))
    fig = plots.spectra({"conv": spectrum, "fc": empty})
    labelled(fig)
    assert "no convolution" in fig.axes[1].texts[0].get_text()
    assert fig.axes[0].get_title() == "conv\ntest error 5.0%"


def test_depth_laws_and_theory():
    cubes = {"a": small_cube(0), "b": small_cube(1, model={"name": "vgg11"})}
    fits = fit_experiment(cubes, bootstrap=50)
    assert list(fits.law.values) == ["exponential", "none"]
    fig = plots.depth_laws(cubes, fits)
    labelled(fig)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["init", "trained", "fitted law", "prediction"]
    fitted = [line for line in fig.axes[0].get_lines() if line.get_linestyle() in ("-", ":")]
    assert {line.get_color() for line in fitted} == {plots.PALETTE[0]}  # D's colour
    unfitted = plots.depth_laws({"b": cubes["b"]}, fits.sel(variant=["b"]))
    assert [t.get_text() for t in unfitted.legends[0].get_texts()] == ["init", "trained"]
    assert tick_labels(fig.axes[4]) == ["relu1", "relu2", "relu3"]  # the fitted (ReLU) layers
    assert fig.axes[4].get_xlabel() == "layer $k$"
    networks, _ = theory_networks(
        {
            "networks": [
                {"dim": 1, "filter_size": 2, "stride": 2, "depth": 5},
                {"dim": 1, "filter_size": 2, "stride": 2, "depth": 4, "inputs": "lattice"},
                {"dim": 2, "filter_size": 2, "stride": 1, "depth": 3},
            ],
            "precision": 0.05,
            "max_overlap": 0.2,
        }
    )
    fig = plots.theory(networks)
    labelled(fig)
    assert len(fig.axes) == 6  # a column per architecture (both inputs of 1-D F = s = 2 in one)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [
        "authors' input (padded)",
        "lattice (no overlap)",
        "fit (asymptotic layers)",
        "predicted law",
    ]
    lines = fig.axes[0].get_lines()  # D of 1-D F = s = 2: two sets of markers, two fits, the law
    assert [line.get_linestyle() for line in lines] == ["None", "-", "None", "-", ":"]
    assert {line.get_color() for line in lines} == {plots.PALETTE[0]}  # all in D's colour
    power = fig.axes[3]  # D of 2-D F = 2, s = 1 (a row per dimension): log depth, powers of 2
    assert power.get_xscale() == "log" and power.xaxis.get_major_locator()._base == 2
    assert isinstance(power.xaxis.get_minor_formatter(), matplotlib.ticker.NullFormatter)


def legend_colours(fig):
    """Each legend entry's label -> the colours of the samples drawn beside it (an entry is a
    box of handle and text, in a column, in the legend's packing of columns)."""
    legend = fig.legends[0]
    boxes = legend.get_children()[0].get_children()[1].get_children()[0].get_children()
    entries = {}
    for box in boxes:
        handle, text = box.get_children()
        lines = handle.findobj(matplotlib.lines.Line2D)
        entries[text.get_text()] = [line.get_color() for line in lines]
    return entries


def test_depth_laws_legend_is_coloured_by_quantity_and_lists_only_what_is_drawn():
    cube = small_cube(0)
    cube["G"][dict(checkpoint=1, layer=0)] = np.nan  # no trained G at the first layer to anchor on
    cubes = {"a": cube}
    fits = fit_experiment(cubes, bootstrap=20)
    fig = plots.depth_laws(cubes, fits)
    colours = legend_colours(fig)
    D, G, R = plots.PALETTE[:3]
    assert set(colours["init"]) == {"grey"}
    assert colours["trained"] == [D, G, R] and colours["fitted law"] == [D, G, R]
    assert colours["prediction"] == [D, R]  # G's prediction has no anchor, so is not drawn...
    assert ":" not in [line.get_linestyle() for line in fig.axes[1].get_lines()]  # ...indeed


def test_power_law_depth_axis_names_the_powers_of_two():
    model = {"name": "simple_cnn", "dim": 1, "filter_size": 3, "stride": 1}
    deep = deepened(small_cube(0, model=model), 9)
    fits = fit_experiment({"a": deep}, bootstrap=20)
    assert str(fits.law.sel(variant="a").values) == "power"
    bottom = plots.depth_laws({"a": deep}, fits).axes[2]
    assert bottom.get_xscale() == "log"
    assert tick_labels(bottom) == ["relu1", "relu2", "relu4", "relu8"]


def test_examples(tmp_path):
    image = np.zeros((8, 8))
    image[2, 3] = image[5, 6] = 1
    spreading = {"F = 2, s = 2": [np.ones(8), np.ones(4), np.ones(2)]}
    fig = plots.examples(image, np.roll(image, 1, axis=1), spreading, "2-D scale detection")
    labelled(fig)
    assert fig.get_suptitle().startswith("2-D scale detection")
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bar.get_ylabel() == "activation / layer maximum" and bar.get_ylim() == (0, 1)
    plots.save(fig, [tmp_path / "x.png", tmp_path / "x.pdf"], dpi=50)
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG" and (
        tmp_path / "x.pdf"
    ).read_bytes()[:4] == b"%PDF"


def test_fit_experiment_reports_predictions():
    cubes = {"strided": small_cube(0)}
    fits = fit_experiment(cubes, bootstrap=50)
    assert fits.predicted.sel(variant="strided", quantity="D") == pytest.approx(-np.log(2))
    assert fits.exponent.sel(
        variant="strided", quantity="D", checkpoint="best", condition="original"
    ) == pytest.approx(-0.5, abs=0.1)


def test_many_variants_wrap_into_rows():
    cubes = {f"v{i}": small_cube(i) for i in range(9)}
    fig = plots.layerwise(cubes)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 27 and len(fig.axes) == 3 * 2 * plots.MAX_COLUMNS
    titles = [ax.get_title() for ax in visible if ax.get_title()]
    # the temperature nearest 1 px is drawn (deltas 0.5 and 1.5: 1.5 is nearer on a log scale)
    assert [t.split("\n")[0] for t in titles] == [f"v{i}  (δ = 1.50 px)" for i in range(9)]
    assert fig.get_figwidth() < 25


def test_trained_nets_show_their_test_error_and_undertrained_ones_are_marked():
    cube = small_cube(0)
    error = float(cube.test_error.sel(checkpoint="best").mean())
    for figure in (plots.layerwise, plots.temperatures):
        fine = figure({"a": cube}, ceiling=error + 0.01)
        title = next(ax for ax in fine.axes if ax.get_title())
        assert title.get_title().endswith(f"test error {error:.1%}")
        assert title.title.get_color() == "black"
        under = figure({"a": cube}, ceiling=error - 0.01)
        title = next(ax for ax in under.axes if ax.get_title())
        assert "undertrained" in title.get_title() and title.title.get_color() == "#C00000"
    fits = fit_experiment({"a": cube}, bootstrap=20)
    under = plots.depth_laws({"a": cube}, fits, ceiling=error - 0.01)
    assert any("undertrained" in ax.get_title() for ax in under.axes)
    scatter = plots.error_vs_sensitivity({"a": cube}, ceiling=0.3)
    assert any(line.get_ydata()[0] == 0.3 for ax in scatter.axes for line in ax.get_lines())


def test_training_curves_draw_every_seed_and_the_ceiling():
    def history(seed, epochs):
        k = np.arange(epochs + 1)
        return xr.Dataset(
            {
                "train_loss": ("epoch", np.r_[np.nan, 1.0 / k[1:]]),
                "train_error": ("epoch", np.r_[np.nan, 0.5 / k[1:]]),
                "test_error": ("epoch", 0.9 / (k + 1) + 0.01 * seed),
                "lr": ("epoch", np.r_[np.nan, np.full(epochs, 0.1)]),
            },
            coords={"epoch": k},
        )

    runs = {"a": [history(0, 4), history(1, 4)], "b": [history(0, 2)]}
    fig = plots.training_curves(runs, ceiling=0.2)
    loss, error, lr = fig.axes[:3]
    assert len(loss.lines) == len(lr.lines) == 3  # one per seed
    assert len(error.lines) == 2 * 3 + 1  # test and train per seed, the ceiling
    assert loss.get_yscale() == "log" and error.get_ylabel() == "error"
    np.testing.assert_array_equal(loss.lines[0].get_xdata(), [1, 2, 3, 4])  # no loss at init
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["a", "b", "test error", "train error", "error ceiling"]
    stopped = history(0, 3)
    stopped["train_loss"][-1] = 0.0  # stopped at zero loss: no place on a log axis
    loss = plots.training_curves({"a": [stopped]}).axes[0]
    marker = loss.lines[-1]
    assert marker.get_marker() == "v" and list(marker.get_xdata()) == [3]
    assert marker.get_transform() == loss.get_xaxis_transform() and list(marker.get_ydata()) == [0]


def test_claims_colour_every_cell_by_its_verdict_and_give_the_interval():
    from matplotlib.patches import Rectangle

    from diffsens.claims import ExperimentResults, at_delta, evaluate_claims

    def three_seeds(cube):  # enough for a verdict
        extra = (cube.isel(seed=[0]) * 1.1).assign_coords(seed=[2])
        return xr.concat([cube, extra], "seed", combine_attrs="override")

    cubes = {f"v{i}": three_seeds(small_cube(i)) for i in range(3)}
    table = evaluate_claims({"e": ExperimentResults(cubes)})
    fig = plots.claims(table, delta=1.5)
    (ax,) = fig.axes
    shown = at_delta(table, 1.5)
    cells = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(cells) == len(shown)
    colours = {matplotlib.colors.to_hex(c.get_facecolor()) for c in cells}
    expected = {plots.VERDICT_COLOURS[v].lower() for v in shown.verdict}
    assert colours == expected
    texts = [t.get_text() for t in ax.texts]
    held = shown[shown.verdict == "holds"].iloc[0]
    assert f"holds\n{held.estimate:.3g}\n[{held.low:.3g}, {held.high:.3g}]" in texts
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "D_falls_with_training (D)" in labels and "spatial_pooling" in labels
    assert "nearest 1.5 px" in fig._suptitle.get_text()
    assert "e (δ = 1.5 px)" in texts  # each experiment says at which displacement


def with_condition(cube, name, factor):
    """``cube`` and a condition ``name`` whose D, G, R are the original's times ``factor``."""
    other = cube[["D", "G", "R"]].sel(condition=["original"]) * factor
    other = other.assign_coords(condition=[name])
    return xr.merge([cube, other], join="outer", compat="no_conflicts", combine_attrs="override")


def test_layerwise_draws_the_noisy_probes_only_of_nets_trained_on_noise():
    cubes = {
        "clean": with_condition(small_cube(0), "noisy", 1.5),
        "noisy": with_condition(small_cube(1, 3.0), "noisy", 1.5),
    }
    fig = plots.layerwise(cubes)
    # panels row by row: D of clean, D of noisy, G of clean, ...
    drawn = [sum(line.get_color() == plots.PALETTE[2] for line in ax.lines) for ax in fig.axes]
    assert drawn[0::2] == [0, 0, 0] and drawn[1::2] == [2, 2, 2]  # init and best
    assert "noisy" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_depth_laws_give_the_channel_mean_a_column_of_its_own():
    cube = with_condition(small_cube(0), "channel_mean", 0.5)
    fits = fit_experiment({"a": cube}, bootstrap=50)
    fig = plots.depth_laws({"a": cube}, fits)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2 and "channel mean" in titles[1] and "channel mean" not in titles[0]
    fitted = fits.sel(variant="a", quantity="D", checkpoint="best")
    assert float(fitted.exponent.sel(condition="channel_mean")) == pytest.approx(
        float(fitted.exponent.sel(condition="original"))  # halving D does not change its law
    )
