import itertools

import matplotlib.colors
import matplotlib.text
import matplotlib.ticker
import numpy as np
import pytest
import xarray as xr
from matplotlib.patches import Rectangle

from diffsens import plots
from diffsens.fits import fit_experiment
from diffsens.plots import style
from diffsens.plots.examples import NO_POSITION
from diffsens.provenance import RunSettings
from diffsens.theory import theory_networks


def small_cube(seed=0, noise=0.0, model=None, deltas=(0.5, 1.5)):
    rng = np.random.default_rng(seed)
    k = np.arange(1, 5)
    dims = ("seed", "checkpoint", "condition", "layer", "temperature")
    shape = (2, 2, 2, 4, len(deltas))
    D = np.exp(-0.5 * k)[None, None, None, :, None] * np.exp(rng.normal(0, 0.1, shape))
    G = np.exp(0.2 * k)[None, None, None, :, None] * np.exp(rng.normal(0, 0.1, shape))
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
            "temperature": np.geomspace(1e-3, 1e-2, len(deltas)),
            "delta": ("temperature", list(deltas)),
        },
    )
    cube["R"] = cube.D / cube.G
    spec = model or {"name": "simple_cnn", "dim": 1, "filter_size": 2, "stride": 2}
    settings = RunSettings(model=spec, training={"training_noise": noise}, dataset={})
    cube.attrs.update(settings.to_attrs())
    return cube


def numbered(cube):
    """``cube`` as a plain nn.Sequential's: module paths that are numbers, and readable names in
    the ``label`` coordinate beside them (cubes made since probe points are named)."""
    names = cube.layer.values
    return cube.assign_coords(layer=[str(2 * i + 1) for i in range(len(names))]).assign_coords(
        label=("layer", names)
    )


def labelled(fig):
    """Every panel that shows data has both axis labels, or shares them with its row/column;
    one legend at most; no empty panel."""
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert all(ax.has_data() for ax in axes), "an empty panel"
    assert any(ax.get_xlabel() for ax in axes) and any(ax.get_ylabel() for ax in axes)
    assert len(fig.legends) + sum(bool(ax.get_legend()) for ax in fig.axes) <= 1
    return axes


def tick_labels(ax, axis="x"):
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text() for t in ticks if t.get_visible()]


def legend_labels(fig):
    return [t.get_text() for t in fig.legends[0].get_texts()]


def readable(fig):
    """Every text of the figure at the minimum size or more, inside the figure once drawn (no
    label cut at an edge), and no two tick labels of an axis touching."""
    fig.draw_without_rendering()
    for ax in fig.axes:
        boxes = [t.get_window_extent() for t in style.shown_ticklabels(ax)]
        assert all(a.x1 <= b.x0 for a, b in itertools.pairwise(boxes)), ax.get_xlabel()
    bounds = fig.bbox.padded(1)
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]
    for text in texts:
        assert text.get_fontsize() >= style.MIN_FONT, text.get_text()
        box = text.get_window_extent()
        assert bounds.contains(box.x0, box.y0) and bounds.contains(box.x1, box.y1), text.get_text()


def colours_drawn(fig):
    """The colours of every line and marker drawn in the panels."""
    colours = set()
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_alpha() is None or line.get_alpha() > 0.5:  # a fitted law is pale
                colours.add(matplotlib.colors.to_hex(line.get_color()))
    return colours


def ticks_cover(ax, values, axis="y"):
    """Labelled ticks at or beyond both ends of ``values`` (within the axis' limits)."""
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    target = ax.yaxis if axis == "y" else ax.xaxis
    ticks = [t for t in target.get_majorticklocs() if low <= t <= high]
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    assert min(ticks) <= values.min() * 1.0001 and max(ticks) >= values.max() / 1.0001
    return ticks


def test_the_palettes_read_on_white():
    """Every colour a line can take has 3:1 contrast on white (WCAG 2.1, graphics): no yellow,
    no pale end of a sequential scale."""
    lines = [*style.VARIANT_COLOURS, style.GREY, style.ALERT]
    lines += [c["color"] for c in style.CONDITIONS.values()]
    lines += style.ordered_colours(9)
    for colour in lines:
        assert style.contrast_ratio(colour) >= style.MIN_CONTRAST, colour
    assert style.contrast_ratio("#F0E442") < style.MIN_CONTRAST  # the rule excludes yellow
    assert style.contrast_ratio("black") == pytest.approx(21)


def test_layerwise():
    fig = plots.layerwise({"a": small_cube(0), "b": small_cube(1)}, experiment="digits")
    axes = labelled(fig)
    readable(fig)
    assert len(axes) == 6 and axes[0].get_yscale() == "log"
    assert {ax.get_ylabel() for ax in axes} >= {"$D_k$", "$G_k$", "$R_k = D_k / G_k$"}
    # probe points named on the bottom panel of each column (axes are row by row), the panels
    # above share them
    assert tick_labels(axes[4]) == ["relu1", "relu2", "relu3", "output"]
    assert axes[4].get_xlabel() == "probe point $k$"
    assert not axes[0].xaxis.get_tick_params()["labelbottom"]
    np.testing.assert_array_equal(axes[0].get_xticks(), [1, 2, 3, 4])
    labels = legend_labels(fig)
    assert labels == ["original", "shuffled", "init", "trained (best)", "seeds: min to max"]
    assert fig.get_suptitle().startswith("digits: ") and "δ = 1.5 px" in fig.get_suptitle()
    # conditions in neutral tones: no variant colour in a figure of one variant per panel
    assert colours_drawn(fig) <= {"#000000", style.GREY.lower()}


def test_depth_axes_name_probe_points_by_their_label_coordinate():
    """Cubes with a ``label`` coordinate are named by it, older ones by their layer paths."""
    cube = small_cube(0)
    new = numbered(cube)
    assert list(new.layer.values) == ["1", "3", "5", "7"]
    for figure in (plots.layerwise, plots.temperatures):
        assert tick_labels(figure({"a": new}).axes[-1]) == ["relu1", "relu2", "relu3", "output"]
    compare = plots.compare({"a": new, "b": numbered(small_cube(1))})
    assert tick_labels(compare.axes[0]) == ["relu1", "relu2", "relu3", "output"]
    old = cube.assign_coords(layer=["1", "3", "5", "7"])
    assert tick_labels(plots.layerwise({"a": old}).axes[-1]) == ["1", "3", "5", "7"]


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


def test_log_axes_label_the_whole_data_range_in_one_notation():
    """The issue's digits: D up to 0.45 had no label above 0.2; labels now reach past the data,
    as plain numbers over a few decades and powers of ten (only) over many."""
    cube = small_cube(0)
    cube["D"] = cube.D / cube.D.max() * 0.45
    fig = plots.layerwise({"a": cube})
    d = fig.axes[0]
    fig.draw_without_rendering()
    drawn = np.concatenate([line.get_ydata() for line in d.get_lines()])
    ticks = ticks_cover(d, drawn)
    assert max(ticks) >= 0.45 and all("10^" not in t for t in tick_labels(d, "y"))
    wide = cube.assign(D=cube.D * 10.0 ** (-3 * cube.depth))  # 9 decades
    axis = plots.layerwise({"a": wide}).axes[0]
    axis.figure.draw_without_rendering()
    labels = tick_labels(axis, "y")
    assert labels and all(t.startswith("$10^{") for t in labels)


def test_compare_draws_every_variant_in_one_panel_per_quantity():
    cubes = {"a": small_cube(0), "b": small_cube(1)}
    fig = plots.compare(cubes, ceiling=0.99, experiment="e")
    axes = labelled(fig)
    readable(fig)
    assert [ax.get_ylabel() for ax in axes] == ["$D_k$", "$G_k$", "$R_k = D_k / G_k$"]
    colours = plots.VARIANT_COLOURS
    for ax in axes:  # init dashed, trained solid, one colour per variant
        assert ax.get_yscale() == "log"
        styles = [(line.get_color(), line.get_linestyle()) for line in ax.get_lines()]
        assert styles == [(c, ls) for c in colours[:2] for ls in ("--", "-")]
    assert tick_labels(axes[0]) == ["relu1", "relu2", "relu3", "output"]  # the same probe points
    errors = [float(c.test_error.sel(checkpoint="best").mean()) for c in cubes.values()]
    assert legend_labels(fig) == [
        f"a ({errors[0]:.1%} error)",
        f"b ({errors[1]:.1%} error)",
        "init",
        "trained (best)",
    ]
    assert fig.get_suptitle() == "e: original nets at δ = 1.5 px, mean over seeds"


def test_compare_draws_an_init_shared_by_variants_once():
    """Variants differing only in training start from the same nets: their init curves would
    hide each other, so they are drawn once, in grey, and named."""
    same = small_cube(0)
    other = same.copy(deep=True)
    other["D"] = other.D.where(other.checkpoint == "init", other.D * 0.5)
    fig = plots.compare({"a": same, "b": other, "c": small_cube(2)})
    dashed = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 2  # a's and b's once, c's
    assert dashed[0].get_color() == style.GREY and dashed[1].get_color() == plots.VARIANT_COLOURS[2]
    assert "init of a,\nb\n(the same for each)" in legend_labels(fig)


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
    colours = plots.VARIANT_COLOURS
    for ax in axes:
        lines = ax.get_lines()
        assert [line.get_color() for line in lines] == [colours[0]] * 2 + [colours[1]] * 2
        assert [line.get_alpha() for line in lines[2:]] == [0.9, 0.3]  # vgg11 is undertrained
    # 4 and 6 probe points: relative depth, both ending at the output (1)
    assert {line.get_xdata()[-1] for line in axes[0].get_lines()} == {1.0}
    assert axes[-1].get_xlabel().startswith("relative depth")
    labels = legend_labels(fig)
    assert labels == ["simple_cnn", "vgg11", "init", "trained (best)", "undertrained (> 50% error)"]


def test_temperatures():
    fig = plots.temperatures({"a": small_cube(0), "b": small_cube(1)})
    axes = labelled(fig)
    readable(fig)
    assert len(axes) == 2 and axes[0].get_ylabel() == "$R_k = D_k / G_k$"
    assert legend_labels(fig) == [
        "δ = 0.5 px",
        "δ = 1.5 px",
        "init",
        "trained (best)",
        "seeds: min to max",
    ]
    handles = fig.legends[0].legend_handles
    assert handles[0].get_marker() != handles[1].get_marker()  # deltas differ twice over
    assert colours_drawn(fig) == {matplotlib.colors.to_hex(c) for c in style.ordered_colours(2)}


def test_one_pixel_moves_read_as_1_px():
    cube = small_cube(0, deltas=(1.0,))
    assert "δ = 1 px" in plots.layerwise({"a": cube}).get_suptitle()
    assert "δ = 1 px" in plots.compare({"a": cube}).get_suptitle()


def test_error_vs_sensitivity_colours_by_noise_when_given():
    cubes = {"n0": small_cube(0, 0.0), "n1": small_cube(1, 1.0), "n10": small_cube(2, 10.0)}
    fig = plots.error_vs_sensitivity(
        cubes,
        colour_by={"n0": 0.0, "n1": 1.0, "n10": 10.0},
        colour_label="noise",
        shape_by={"n0": "vgg", "n1": "vgg", "n10": "lenet"},
        ceiling=0.01,
    )
    axes = labelled(fig)
    readable(fig)
    assert [ax.get_xscale() for ax in axes] == ["log"] * 3  # D as G and R
    assert axes[0].get_yscale() == "log" and axes[0].get_ylabel() == "test error"
    assert all(t.endswith("%") for t in tick_labels(axes[0], "y"))
    errors = np.concatenate([c.get_offsets()[:, 1] for c in axes[0].collections])
    ticks = ticks_cover(axes[0], errors)
    assert max(ticks) / min(ticks) <= 10  # errors 10% to 90%: no empty decade
    labels = legend_labels(fig)
    assert labels[:3] == ["noise 0", "noise 1", "noise 10"]  # 0 shown as 0, on a discrete key
    assert labels[3:5] == ["vgg", "lenet"] and "one seed" in labels and "mean over seeds" in labels
    assert "error ceiling 1% (off the axis)" in labels  # below the axis: named, not drawn
    assert not [line for ax in axes for line in ax.get_lines()]
    means = [c for c in axes[0].collections if c.get_sizes()[0] > 40]  # one per variant
    assert len({tuple(c.get_facecolor()[0]) for c in means}) == 3  # a colour per level
    shapes = [c.get_paths()[0].vertices.round(6).tobytes() for c in means]
    assert shapes[0] == shapes[1] != shapes[2]  # a shape per architecture
    seeds = [c for c in axes[0].collections if c.get_sizes()[0] < 40]
    assert all(c.get_sizes()[0] >= 20 and len(c.get_facecolor()) == 0 for c in seeds)  # open


def test_error_vs_sensitivity_of_one_net_at_zero_error_says_why_it_shows_no_relation():
    cube = small_cube(0)
    cube["test_error"] = cube.test_error * 0
    fig = plots.error_vs_sensitivity({"paper_net": cube})
    axes = labelled(fig)
    readable(fig)
    assert axes[0].get_yscale() == "linear"  # 0 has no place on a log axis
    low, high = axes[0].get_ylim()
    assert low < 0 < high
    title = fig.get_suptitle()  # says why, once
    assert "one variant, so no relation" in title and "every net at 0% test error" in title


def test_error_vs_sensitivity_of_a_collapsed_output_draws_and_says_so():
    # a net whose output is constant has no D, G or R at the output (0/0): its panels are
    # empty, yet the shared log axis of test error still covers the errors and the figure draws
    cube = small_cube(0)
    for quantity in ("D", "G", "R"):
        cube[quantity] = cube[quantity].where(cube.layer != "output")
    fig = plots.error_vs_sensitivity({"a": cube})
    fig.canvas.draw()  # a log axis without limits fails here
    axes = labelled(fig)
    assert axes[0].get_yscale() == "log"
    errors = cube.test_error.sel(checkpoint="best").values
    assert ticks_cover(axes[0], errors)
    assert "no D, G, R at the output" in fig.get_suptitle()


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
    long = spectrum.isel(layer=[0, 1, 2] * 3).assign_coords(
        layer=[f"conv{k}" for k in range(1, 10)], depth=("layer", np.arange(1, 10))
    )
    readable(plots.spectra({"long names": long}, experiment="a long experiment name"))
    empty = spectrum.isel(layer=slice(0, 0))
    fig = plots.spectra({"conv": spectrum, "fc": empty}, experiment="e")
    readable(fig)
    assert "no convolution" in fig.axes[1].texts[0].get_text()
    assert fig.axes[0].get_title() == "conv\ntest error 5.0%"
    labels = legend_labels(fig)
    assert labels[:6] == [f"λ = {v}" for v in (0, 1, 2, 3, 4, 6)]
    assert "seeds: min to max" not in labels  # one seed: no band
    handles = fig.legends[0].legend_handles[:6]
    assert len({h.get_marker() for h in handles}) == 6  # neighbours differ by marker too
    for h in handles:
        assert style.contrast_ratio(h.get_color()) >= style.MIN_CONTRAST


def test_depth_laws_write_the_exponents_and_list_only_what_is_drawn():
    cubes = {"a": small_cube(0), "b": small_cube(1, model={"name": "vgg11"})}
    fits = fit_experiment(cubes, bootstrap=50)
    assert list(fits.law.values) == ["exponential", "none"]
    fig = plots.depth_laws(cubes, fits, experiment="e")
    labelled(fig)
    readable(fig)
    labels = legend_labels(fig)
    assert labels == [
        "init",
        "trained (best)",
        "seeds: min to max",
        "fitted law, exponent a",
        "predicted law",
    ]
    fit = fits.sel(variant="a", quantity="D", checkpoint="best", condition="original")
    (written,) = fig.axes[0].texts
    assert written.get_text().startswith(f"a = {float(fit.exponent):.2f} [")
    assert "predicted -0.69" in written.get_text()  # D ~ 2^-k
    assert not fig.axes[1].texts  # no law for vgg11: nothing written, nothing drawn
    assert colours_drawn(fig) == {"#000000"}  # quantities are panels, not colours
    unfitted = plots.depth_laws({"b": cubes["b"]}, fits.sel(variant=["b"]))
    assert legend_labels(unfitted) == ["init", "trained (best)", "seeds: min to max"]
    assert tick_labels(fig.axes[4]) == ["relu1", "relu2", "relu3"]  # the fitted (ReLU) layers
    assert fig.axes[4].get_xlabel() == "layer $k$"
    assert "exponential fit" in fig.axes[0].get_title()  # the form fitted, and predicted
    assert "no law predicted" not in fig.axes[0].get_title()
    pooled = {"name": "simple_cnn", "dim": 1, "filter_size": 2, "stride": 1, "pooling": "max"}
    cubes = {"p": small_cube(2, model=pooled)}
    fits = fit_experiment(cubes, bootstrap=20)
    assert str(fits.law.sel(variant="p").values) == "exponential"  # fitted, not predicted
    title = plots.depth_laws(cubes, fits).axes[0].get_title()
    assert "\nexponential fit $\\propto e^{a k}$, no law predicted\n" in title


def test_power_law_depth_axis_names_the_powers_of_two():
    model = {"name": "simple_cnn", "dim": 1, "filter_size": 3, "stride": 1}
    deep = deepened(small_cube(0, model=model), 9)
    fits = fit_experiment({"a": deep}, bootstrap=20)
    assert str(fits.law.sel(variant="a").values) == "power"
    bottom = plots.depth_laws({"a": deep}, fits).axes[2]
    assert bottom.get_xscale() == "log"
    assert tick_labels(bottom) == ["relu1", "relu2", "relu4", "relu8"]


def test_theory_puts_architectures_of_a_law_in_one_panel_coloured_by_filter_size():
    networks, _ = theory_networks(
        {
            "networks": [
                {"dim": 1, "filter_size": 2, "stride": 2, "depth": 5},
                {"dim": 1, "filter_size": 2, "stride": 2, "depth": 4, "inputs": "lattice"},
                {"dim": 1, "filter_size": 3, "stride": 3, "depth": 3},
                {"dim": 2, "filter_size": 2, "stride": 1, "depth": 3},
            ],
            "precision": 0.05,
            "max_overlap": 0.2,
        }
    )
    fig = plots.theory(networks)
    labelled(fig)
    readable(fig)
    assert len(fig.axes) == 6  # 3 quantities x (1-D strided, 2-D stride 1), none empty
    assert fig.get_suptitle()
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["1-D, stride s = F\n(exponential law)", "2-D, stride 1\n(power law)"]
    assert legend_labels(fig) == [
        "filter size F = 2",
        "filter size F = 3",
        "authors' input (padded)",
        "lattice (no overlap)",
        "fit (asymptotic layers)",
        "predicted law",
    ]
    colours = {line.get_color() for line in fig.axes[0].get_lines()}
    assert colours == set(plots.VARIANT_COLOURS[:2])  # F = 2 and F = 3 side by side
    power = fig.axes[1]  # D of 2-D F = 2, s = 1: log depth, powers of 2
    assert power.get_xscale() == "log" and power.xaxis.get_major_locator()._base == 2


def test_examples(tmp_path):
    image = np.zeros((8, 8))
    image[2, 3] = image[5, 6] = 1
    spreading = {"F = 2, s = 2": [np.ones(8), np.ones(4), np.ones(2)]}
    fig = plots.examples(image, np.roll(image, 1, axis=1), spreading, "2-D scale detection")
    readable(fig)
    assert fig.get_suptitle().startswith("2-D scale detection")
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bar.get_ylabel() == "activation / layer maximum" and bar.get_ylim() == (0, 1)
    # the positions a strided layer lacks: a colour of their own, off the scale, and named
    (spread,) = [ax for ax in fig.axes if ax.get_title().startswith("two pixels")]
    bad = spread.images[0].get_cmap().get_bad()
    assert matplotlib.colors.to_hex(bad) == NO_POSITION.lower()
    assert legend_labels(fig) == ["no such position at that layer (stride)"]
    plots.save(fig, [tmp_path / "x.png", tmp_path / "x.pdf"], dpi=50)
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "x.pdf").read_bytes()[:4] == b"%PDF"


def test_fit_experiment_reports_predictions():
    cubes = {"strided": small_cube(0)}
    fits = fit_experiment(cubes, bootstrap=50)
    assert fits.predicted.sel(variant="strided", quantity="D") == pytest.approx(-np.log(2))
    assert fits.exponent.sel(
        variant="strided", quantity="D", checkpoint="best", condition="original"
    ) == pytest.approx(-0.5, abs=0.1)


def test_many_variants_wrap_into_rows_without_empty_panels():
    cubes = {f"v{i}": small_cube(i) for i in range(9)}
    fig = plots.layerwise(cubes)
    assert len(fig.axes) == 27  # 2 rows of 7 columns, the 5 slots left over removed
    labelled(fig)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [t.split("\n")[0] for t in titles] == [f"v{i}" for i in range(9)]
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
        assert "undertrained" in title.get_title() and title.title.get_color() == style.ALERT
    fits = fit_experiment({"a": cube}, bootstrap=20)
    under = plots.depth_laws({"a": cube}, fits, ceiling=error - 0.01)
    assert any("undertrained" in ax.get_title() for ax in under.axes)
    errors = cube.test_error.sel(checkpoint="best").values
    ceiling = float(errors.mean())  # among the errors: drawn
    scatter = plots.error_vs_sensitivity({"a": cube}, ceiling=ceiling)
    assert any(line.get_ydata()[0] == ceiling for ax in scatter.axes for line in ax.get_lines())
    top = plots.error_vs_sensitivity({"a": cube}).axes[0].get_ylim()[1]
    ceiling = (errors.max() + top) / 2  # above every net, but on the axis: drawn, not "off"
    scatter = plots.error_vs_sensitivity({"a": cube}, ceiling=ceiling)
    assert any(line.get_ydata()[0] == ceiling for ax in scatter.axes for line in ax.get_lines())
    assert f"error ceiling {ceiling:.0%}" in legend_labels(scatter)


def history(seed, epochs, lr=0.1):
    k = np.arange(epochs + 1)
    return xr.Dataset(
        {
            "train_loss": ("epoch", np.r_[np.nan, 1.0 / k[1:]]),
            "train_error": ("epoch", np.r_[np.nan, 0.5 / k[1:]]),
            "test_error": ("epoch", 0.9 / (k + 1) + 0.01 * seed),
            "lr": ("epoch", np.r_[np.nan, np.full(epochs, lr)]),
        },
        coords={"epoch": k},
    )


def test_training_curves_give_each_quantity_its_panel_and_seeds_a_band():
    runs = {"a": [history(0, 8), history(1, 8)], "b": [history(0, 2, lr=0.002)]}
    fig = plots.training_curves(runs, ceiling=0.2, experiment="digits")
    axes = labelled(fig)
    readable(fig)
    loss, train, test, lr = axes
    assert [ax.get_ylabel() for ax in axes] == [
        "training loss",
        "train error",
        "test error",
        "learning rate",
    ]
    assert fig.get_suptitle().startswith("digits: ")
    assert loss.get_yscale() == lr.get_yscale() == "log"  # 0.002 beside 0.1
    assert ticks_cover(lr, [0.002, 0.1])
    for ax in (train, test):  # errors in percent, as the titles
        assert ax.get_yscale() == "linear" and all(t.endswith("%") for t in tick_labels(ax, "y"))
    assert len(loss.lines) == len(lr.lines) == 2  # a mean line per variant
    assert len(test.lines) == 2 + 1  # and the ceiling
    np.testing.assert_array_equal(loss.lines[0].get_xdata(), np.arange(1, 9))  # none at init
    assert len(test.collections) == 1  # a band for a's two seeds, none for b's one
    assert legend_labels(fig) == ["a", "b", "seeds: min to max", "error ceiling"]
    for ax in (loss, train, lr):  # the ceiling is an error's: only on the test error
        assert not [line for line in ax.lines if line.get_color() == style.ALERT]
    long = plots.training_curves({"a": [history(0, 300)]}).axes[0].lines[0]
    assert long.get_markevery() == 10  # 300 epochs: a marker every 10th, lines stay readable
    assert loss.lines[0].get_markevery() == 1


def test_training_curves_draw_a_learning_rate_schedule_shared_by_variants_once():
    runs = {"a": [history(0, 3)], "b": [history(1, 3)], "c": [history(0, 3, lr=0.01)]}
    fig = plots.training_curves(runs)
    lr = fig.axes[3]
    assert [line.get_color() for line in lr.lines] == [style.GREY, plots.VARIANT_COLOURS[2]]
    assert legend_labels(fig) == ["a", "b", "c", "learning rate of a,\nb\n(the same for each)"]
    assert len(fig.axes[0].lines) == 3  # every other panel: a line per variant


def test_training_curves_mark_a_loss_of_zero_and_average_seeds_that_stopped_early():
    stopped = history(0, 3)
    stopped["train_loss"][-1] = 0.0  # stopped at zero loss: no place on a log axis
    fig = plots.training_curves({"a": [stopped, history(1, 5)]})
    loss = fig.axes[0]
    (marker,) = [line for line in loss.lines if line.get_marker() == "v"]
    assert list(marker.get_xdata()) == [3] and list(marker.get_ydata()) == [0]
    assert marker.get_transform() == loss.get_xaxis_transform()
    assert "loss of 0" in legend_labels(fig)
    (mean,) = [line for line in loss.lines if line.get_marker() != "v"]
    assert list(mean.get_xdata()) == [1, 2, 3, 4, 5]  # the seed still training carries on
    low, high = fig.axes[3].get_ylim()  # a constant rate of 0.1: a flat line, labelled near it
    assert 0.04 < low < 0.1 < high < 0.25 and ticks_cover(fig.axes[3], [0.1])


def test_claims_colour_every_cell_by_its_verdict_and_give_the_interval():
    from diffsens.claims import ExperimentResults, evaluate_claims
    from diffsens.claims import at_delta as claims_at_delta

    def three_seeds(cube):  # enough for a verdict
        extra = (cube.isel(seed=[0]) * 1.1).assign_coords(seed=[2])
        return xr.concat([cube, extra], "seed", combine_attrs="override")

    cubes = {f"v{i}": three_seeds(small_cube(i)) for i in range(3)}
    table = evaluate_claims({"e": ExperimentResults(cubes)})
    fig = plots.claims(table, delta=1.5)
    readable(fig)
    (ax,) = fig.axes
    shown = claims_at_delta(table, 1.5)
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
    assert "nearest 1.5 px" in fig.get_suptitle()
    assert "e (δ = 1.5 px)" in texts  # each experiment says at which displacement
    readable(plots.claims(table[table.variant == "v0"], delta=1.5))  # one column: title whole


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
    noisy = style.CONDITIONS["noisy"]["marker"]
    drawn = [sum(line.get_marker() == noisy for line in ax.lines) for ax in fig.axes]
    assert drawn[0::2] == [0, 0, 0] and drawn[1::2] == [2, 2, 2]  # init and best
    assert "noisy" in legend_labels(fig)


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
