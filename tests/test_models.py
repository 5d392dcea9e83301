import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from diffsens.diffeo import temperature_range
from diffsens.models import build, list_models, model_options, register_model
from diffsens.models.simple import POOLINGS, Subsample
from diffsens.probes import OUTPUT, Probe, list_layers
from diffsens.sensitivity import measure

IMAGE_MODELS = [name for name in list_models() if name != "constant_filters"]
SHAPES = [(3, 32), (1, 28)]
BATCH = 2


def inputs(channels, size, dim=2, seed=0):
    shape = (BATCH, channels, *([size] * dim))
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# Every architecture, plus the 1-D and pooled variants, for the structural checks: id -> build args
VARIANTS = {name: (name, {"in_channels": 1}) for name in IMAGE_MODELS}
VARIANTS["simple_cnn-1d"] = ("simple_cnn", {"in_channels": 2, "dim": 1, "input_size": 64})
VARIANTS["simple_cnn-pooled"] = ("simple_cnn", {"in_channels": 1, "pooling": "subsampling"})
VARIANTS["constant_filters"] = ("constant_filters", {"in_channels": 1, "num_classes": None})


def build_variant(key):
    name, options = VARIANTS[key]
    return build(name, **{"num_classes": 1, "input_size": 28, **options})


def test_registry_lists_every_architecture_of_the_spec():
    expected = {"fc2", "fc4", "fc6", "lenet", "alexnet", "simple_cnn", "constant_filters"}
    expected |= {f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")}
    expected |= {"resnet18", "resnet34", "resnet50", "efficientnet_b0"}
    assert set(list_models()) == expected
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("num_classes", [10, 1])
@pytest.mark.parametrize(("channels", "size"), SHAPES)
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_builds_runs_and_backpropagates(name, channels, size, num_classes):
    torch.manual_seed(0)
    model = build(name, in_channels=channels, num_classes=num_classes, input_size=size)
    out = model(inputs(channels, size))
    assert out.shape == (BATCH, num_classes)
    out.square().mean().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for param_name, param in trainable:
        assert param.grad is not None, f"{name}: no gradient reached {param_name}"
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient in {param_name}"


@pytest.mark.parametrize(("channels", "size"), SHAPES)
@pytest.mark.parametrize("name", [*IMAGE_MODELS, "constant_filters"])
def test_probe_points_are_in_depth_order_and_probeable(name, channels, size):
    options = {}
    if name == "constant_filters":
        channels, options = 1, {"dim": 2}
    model = build(name, in_channels=channels, num_classes=10, input_size=size, **options).eval()
    x = inputs(channels, size)
    points = model.probe_points
    assert list(points.values()) == list(range(1, len(points) + 1))
    modules = [p for p in points if p != OUTPUT]
    if OUTPUT in points:
        assert list(points)[-1] == OUTPUT
    order = list_layers(model, x, kinds=("all",))
    assert all(p in order for p in modules), f"{name}: {set(modules) - set(order)} not run once"
    positions = [order.index(p) for p in modules]
    assert positions == sorted(positions), f"{name}: probe points out of execution order"
    with torch.no_grad(), Probe(model, list(points)) as probe:
        recorded = probe(x)
        expected = model(x)
    assert list(recorded) == list(points)
    last = list(points)[-1]
    torch.testing.assert_close(recorded[last], expected.flatten(1))


@pytest.mark.parametrize("name", VARIANTS)
def test_no_inplace_or_shared_modules(name):
    model = build_variant(name)
    for path, module in model.named_modules():
        assert not getattr(module, "inplace", False), f"{name}: {path} is in place"
    seen = [id(m) for _, m in model.named_modules(remove_duplicate=False)]
    assert len(seen) == len(set(seen)), f"{name}: a module instance is used under two names"


def expected_sizes(n, filter_size, strides, padding, pooling, pool_size=2):
    sizes = {}
    for k, stride in enumerate(strides, start=1):
        n = (n + 2 * padding - filter_size) // stride + 1
        sizes[f"relu{k}"] = n
        if pooling != "none":
            n = n // pool_size
            sizes[f"pool{k}"] = n
    return sizes


def spatial_sizes(model, x, dim):
    """Spatial size after each named layer, checking the size is the same along every axis."""
    sizes = {}
    for layer, module in model.named_children():
        x = module(x)
        if x.ndim == 2 + dim:
            assert len(set(x.shape[2:])) == 1
            sizes[layer] = x.shape[-1]
    return sizes


@pytest.mark.parametrize("filter_size", [2, 3])
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize(("dim", "size"), [(1, 61), (2, 37)])
def test_simple_cnn_spatial_sizes(dim, size, pooling, filter_size):
    strides = [2, 1, 2]
    model = build(
        "simple_cnn",
        in_channels=2,
        num_classes=3,
        input_size=size,
        dim=dim,
        depth=3,
        width=4,
        filter_size=filter_size,
        stride=strides,
        pooling=pooling,
    )
    with torch.no_grad():
        measured = spatial_sizes(model, inputs(2, size, dim), dim)
    expected = expected_sizes(size, filter_size, strides, (filter_size - 1) // 2, pooling)
    for layer, n in expected.items():
        assert measured[layer] == n, f"{layer}: {measured[layer]} != {n}"
        assert model.sizes[layer] == n
    pools = [p for p in model.probe_points if p.startswith("pool")]
    assert len(pools) == (0 if pooling == "none" else 3)
    names = dict(model.named_children())
    assert isinstance(names["gap"], nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d)
    assert isinstance(names["readout"], nn.Linear)


def test_simple_cnn_bias_and_padding_options():
    model = build(
        "simple_cnn",
        in_channels=1,
        num_classes=2,
        input_size=20,
        bias=False,
        padding=[0, 1],
        depth=2,
    )
    assert model.conv1.bias is None and model.conv1.padding == (0, 0)
    assert model.conv2.padding == (1, 1)


def test_subsampling_keeps_every_pool_size_th_position():
    x = torch.arange(7.0).view(1, 1, 7)
    torch.testing.assert_close(Subsample(1, 2)(x), torch.tensor([[[0.0, 2.0, 4.0]]]))
    image = torch.arange(36.0).view(1, 1, 6, 6)
    torch.testing.assert_close(Subsample(2, 3)(image), image[..., ::3, ::3])


def test_paper_1d_net_reduces_128_to_1():
    model = build(
        "simple_cnn",
        in_channels=2,
        num_classes=1,
        input_size=128,
        dim=1,
        depth=7,
        filter_size=2,
        stride=2,
        width=1000,
    )
    with torch.no_grad():
        sizes = spatial_sizes(model, inputs(2, 128, dim=1), 1)
    assert [sizes[f"relu{k}"] for k in range(1, 8)] == [64, 32, 16, 8, 4, 2, 1]
    assert model.readout.in_features == 1000
    assert list(model.probe_points) == [f"relu{k}" for k in range(1, 8)] + [OUTPUT]


def test_simple_cnn_refuses_a_layer_left_without_positions():
    with pytest.raises(ValueError, match=r"simple_cnn: layer 'conv8' shrinks its input of size 1"):
        build(
            "simple_cnn",
            in_channels=1,
            num_classes=2,
            input_size=128,
            dim=1,
            depth=8,
            filter_size=2,
            stride=2,
        )
    with pytest.raises(ValueError, match=r"layer 'pool3'"):
        build("simple_cnn", in_channels=1, num_classes=2, input_size=4, depth=3, pooling="max")


# ---------------------------------------------------------------- constant-filter network


def brute_force(x, dim, filter_size, stride, padding, value, depth):
    """Activations of every layer by explicit loops over windows (x: one channel, numpy)."""
    activations = []
    for _ in range(depth):
        x = np.pad(x, padding)
        n_out = (x.shape[0] - filter_size) // stride + 1
        out = np.zeros((n_out,) * dim)
        for index in np.ndindex(*out.shape):
            window = tuple(slice(i * stride, i * stride + filter_size) for i in index)
            out[index] = max(0.0, value * x[window].sum())
        activations.append(out)
        x = out
    return activations


def constant_net(dim, size, **options):
    model = build(
        "constant_filters", in_channels=1, num_classes=None, input_size=size, dim=dim, **options
    )
    return model.double()


def test_constant_filters_have_no_parameters_and_weigh_every_pixel_alike():
    model = constant_net(2, 12, filter_size=3, depth=3)
    assert list(model.parameters()) == []  # nothing to train
    assert list(model.probe_points) == ["relu1", "relu2", "relu3"]
    x = torch.zeros(1, 1, 12, 12, dtype=torch.float64)
    x[0, 0, 4:7, 2:5] = torch.arange(9.0).view(3, 3)  # one window, 3 x 3
    np.testing.assert_allclose(model.conv1(x)[0, 0, 4, 2].item(), 36 / 9, rtol=1e-15)
    custom = constant_net(1, 12, value=0.7)  # filter 2
    signal = torch.arange(12.0, dtype=torch.float64).view(1, 1, 12)
    np.testing.assert_allclose(custom.conv1(signal)[0, 0].numpy(), 0.7 * (2 * np.arange(11) + 1))


def test_periodic_constant_filters_wrap_round():
    model = constant_net(1, 6, filter_size=3, depth=1, periodic=True)
    x = torch.zeros(1, 1, 6, dtype=torch.float64)
    x[0, 0, 0] = 3.0
    np.testing.assert_allclose(model(x)[0, 0].numpy(), [1, 1, 0, 0, 0, 1], rtol=1e-15)


def test_constant_filters_stride_1_gives_pascal_triangle():
    n, j, depth, value = 16, 9, 5, 0.5
    model = constant_net(1, n, filter_size=2, stride=1, depth=depth, value=value)
    x = torch.zeros(1, 1, n, dtype=torch.float64)
    x[0, 0, j] = 1
    with torch.no_grad(), Probe(model, list(model.probe_points)) as probe:
        recorded = probe(x)
    for k in range(1, depth + 1):
        expected = [
            value**k * math.comb(k, j - i) if 0 <= j - i <= k else 0.0 for i in range(n - k)
        ]
        np.testing.assert_allclose(recorded[f"relu{k}"][0].numpy(), expected, rtol=1e-12)


# (dim, filter_size, stride, padding): overlapping and non-overlapping windows, with padding
CONSTANT_CASES = [(1, 2, 1, 0), (1, 3, 1, 1), (1, 2, 2, 0), (1, 3, 2, 1)]
CONSTANT_CASES += [(2, 2, 1, 0), (2, 2, 2, 0), (2, 3, 1, 1)]


@pytest.mark.parametrize(("dim", "filter_size", "stride", "padding"), CONSTANT_CASES)
def test_constant_filters_match_brute_force_on_one_hot_inputs(dim, filter_size, stride, padding):
    size, depth = 16, 3
    model = constant_net(
        dim, size, filter_size=filter_size, stride=stride, padding=padding, depth=depth
    )
    value = 1 / filter_size**dim  # the default: every layer averages its window
    for position in [(0,) * dim, (5,) * dim, (size - 1, 6)[:dim]]:
        x = np.zeros((size,) * dim)
        x[position] = 1.0
        expected = brute_force(x, dim, filter_size, stride, padding, value, depth)
        tensor = torch.from_numpy(x)[None, None]
        with torch.no_grad(), Probe(model, list(model.probe_points)) as probe:
            recorded = probe(tensor)
        for k in range(1, depth + 1):
            np.testing.assert_allclose(
                recorded[f"relu{k}"][0].numpy(), expected[k - 1].ravel(), rtol=1e-12, atol=0
            )


# ---------------------------------------------------------------- registry errors


def test_unknown_model_is_named_with_the_available_ones():
    with pytest.raises(
        ValueError, match=r"unknown model 'resnet999'; available models: .*resnet18"
    ):
        build("resnet999", in_channels=3, num_classes=10, input_size=32)


def test_duplicate_registration_is_refused():
    def builder(*, in_channels, num_classes, input_size):
        raise AssertionError("never built")

    with pytest.raises(ValueError, match=r"model 'fc2' is already registered"):
        register_model("fc2")(builder)
    assert "fc2" in list_models()


def test_builders_must_be_keyword_only():
    def positional(in_channels, num_classes, input_size):
        raise AssertionError("never built")

    with pytest.raises(TypeError, match=r"keyword-only"):
        register_model("test_models_positional")(positional)
    assert "test_models_positional" not in list_models()


@pytest.mark.parametrize(
    ("name", "options", "error", "match"),
    [
        ("simple_cnn", {"pooling": "median"}, ValueError, r"pooling must be one of \['none'"),
        ("fc2", {"widht": 32}, TypeError, r"model 'fc2' has no option\(s\) \['widht'\].*'width'"),
        ("lenet", {"width": 32}, TypeError, r"model 'lenet' has no option.*none"),
        ("fc4", {"width": 0}, ValueError, r"option width must be an int >= 1, got 0"),
        ("simple_cnn", {"dim": 3}, ValueError, r"option dim must be 1 .* or 2 .*, got 3"),
        ("simple_cnn", {"stride": [1, 2]}, ValueError, r"stride must list one value per layer"),
        ("simple_cnn", {"stride": 1.5}, ValueError, r"stride must be an int"),
        ("simple_cnn", {"bias": "yes"}, ValueError, r"bias must be True or False"),
        ("efficientnet_b0", {"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\)"),
    ],
)
def test_bad_options_are_named(name, options, error, match):
    with pytest.raises(error, match=match):
        build(name, in_channels=1, num_classes=10, input_size=28, **options)


def test_bad_shape_arguments_are_named():
    with pytest.raises(ValueError, match=r"input_size must be a positive int, got 0"):
        build("fc2", in_channels=1, num_classes=10, input_size=0)
    with pytest.raises(ValueError, match=r"num_classes must be a positive int"):
        build("lenet", in_channels=1, num_classes=None, input_size=28)
    with pytest.raises(ValueError, match=r"in_channels must be 1, got 3"):
        build("constant_filters", in_channels=3, num_classes=None, input_size=16)
    with pytest.raises(ValueError, match=r"lenet: layer 'conv2' shrinks"):
        build("lenet", in_channels=1, num_classes=10, input_size=8)


def test_model_options_lists_defaults():
    assert model_options("fc2") == {"width": 64, "dim": 2}
    assert model_options("simple_cnn")["pooling"] == "none"


# ---------------------------------------------------------------- with the measurement


def test_measure_runs_on_probe_points():
    torch.manual_seed(0)
    model = build("lenet", in_channels=1, num_classes=10, input_size=28)
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    T = math.sqrt(math.prod(temperature_range(28, 3)))
    ds = measure(model, images, temperatures=[T], layers=model.probe_points)
    assert list(ds.layer.values) == list(model.probe_points)
    assert list(ds.depth.values) == list(model.probe_points.values())
    assert np.isfinite(ds.D.values).all() and np.isfinite(ds.G.values).all()


def test_measure_runs_on_the_constant_filter_net_with_one_hot_inputs():
    model = build("constant_filters", in_channels=1, num_classes=None, input_size=32, depth=4)
    images = torch.zeros(6, 1, 32)
    images[torch.arange(6), 0, torch.arange(6) * 5 + 1] = 1
    ds = measure(model, images, deformation="pixel_move", layers=model.probe_points)
    assert list(ds.layer.values) == ["relu1", "relu2", "relu3", "relu4"]
    assert np.isfinite(ds.R.values).all()


def two_layer_net(*, in_channels, num_classes):
    """A user's own builder, named by its import path: it takes the shape arguments it names."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3),
        nn.GELU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, num_classes),
    )


def probed_net(*, depth: int = 2):
    """A user's builder that chooses its own probe points."""
    net = nn.Sequential(*[nn.Tanh() for _ in range(depth)], nn.Flatten(), nn.LazyLinear(3))
    net.probe_points = {"0": 1}
    return net


def not_a_module():
    return "a string"


def test_a_torchvision_model_is_built_with_its_options_and_probed_at_its_blocks():
    model = build(
        "torchvision:resnet18", in_channels=3, num_classes=7, input_size=32, zero_init_residual=True
    )
    assert model.fc.out_features == 7
    assert all(
        not block.bn2.weight.any() for layer in (model.layer1, model.layer4) for block in layer
    )
    blocks = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert list(model.probe_points) == ["relu", *blocks, OUTPUT]  # a block's ReLU runs twice
    assert list(model.probe_points.values()) == list(range(1, 11))
    assert model(inputs(3, 32)).shape == (BATCH, 7)


def test_an_import_path_builder_gets_the_shape_arguments_it_names():
    model = build(f"{__name__}:two_layer_net", in_channels=2, num_classes=5, input_size=16)
    assert model[0].in_channels == 2 and model[-1].out_features == 5
    assert model.probe_points == {"1": 1, "3": 2, OUTPUT: 3}
    own = build(f"{__name__}:probed_net", in_channels=1, num_classes=3, input_size=8, depth=3)
    assert own.probe_points == {"0": 1} and len(own) == 5


@pytest.mark.parametrize(
    ("name", "options", "error", "match"),
    [
        (
            "torchvision:resnet1",
            {},
            ValueError,
            r"torchvision has no classification model 'resnet1'; it has alexnet",
        ),
        (
            "torchvision:resnet18",
            {"widht": 2},
            TypeError,
            r"model 'torchvision:resnet18' with options \{'widht': 2\}: .*unexpected keyword",
        ),
        ("no_such_package.nets:net", {}, ValueError, r"cannot import 'no_such_package.nets'"),
        (f"{__name__}:missing", {}, ValueError, r"has no function 'missing'"),
        (f"{__name__}:not_a_module", {}, TypeError, r"returned a str, not an nn.Module"),
    ],
)
def test_bad_outside_models_are_named(name, options, error, match):
    with pytest.raises(error, match=match):
        build(name, in_channels=3, num_classes=10, input_size=32, **options)


def test_an_outside_model_that_cannot_take_the_data_is_refused_by_its_check():
    from diffsens.models import check_spec

    check_spec(
        {"name": "torchvision:resnet18"}, dims=2, in_channels=3, num_classes=10, input_size=32
    )
    with pytest.raises(
        ValueError, match=r"'torchvision:resnet18' cannot take inputs of shape \(1, 1, 28, 28\)"
    ):
        check_spec(
            {"name": "torchvision:resnet18"}, dims=2, in_channels=1, num_classes=10, input_size=28
        )


def test_the_documented_probe_points_are_the_registry_s():
    from pathlib import Path

    science = (Path(__file__).parents[1] / "docs" / "science.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| ([\w., ]+) \|$", science, re.MULTILINE)
    assert len(rows) == 13
    for name, count, points in rows:
        model = build(name, in_channels=3, num_classes=10, input_size=32)
        assert list(model.probe_points) == points.split(", ") and int(count) == len(
            points.split(", ")
        )


@pytest.mark.parametrize("dim", [1, 2])
def test_mean_field_simple_cnn_is_the_authors_net(dim):
    """N(0, 1) weights and biases, weights divided by sqrt(fan-in) in the forward pass,
    sqrt(F) * ReLU blocks, global average pooling, readout b + x . w / width."""
    import math

    import torch.nn.functional as F

    depth, width, size, fs = 3, 32, 16, 2
    torch.manual_seed(0)
    net = build(
        "simple_cnn",
        in_channels=2,
        num_classes=1,
        input_size=size,
        dim=dim,
        depth=depth,
        width=width,
        filter_size=fs,
        stride=2,
        parametrisation="mean_field",
    )
    convs = [getattr(net, f"conv{k}") for k in range(1, depth + 1)]
    expected = sum(width * c.in_channels * fs**dim + width for c in convs) + width + 1
    assert sum(p.numel() for p in net.parameters()) == expected
    weights = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert abs(float(weights.mean())) < 0.05 and abs(float(weights.std()) - 1) < 0.05
    x = torch.randn(4, 2, *[size] * dim, generator=torch.Generator().manual_seed(1))
    conv = F.conv1d if dim == 1 else F.conv2d
    y = x
    for c in convs:
        fan_in = c.in_channels * fs**dim
        y = math.sqrt(fs) * F.relu(conv(y, c.weight / math.sqrt(fan_in), c.bias, stride=2))
    y = y.flatten(2).mean(-1)
    by_hand = net.readout.bias + y @ net.readout.weight.T / width
    torch.testing.assert_close(net(x), by_hand, rtol=1e-6, atol=1e-6)
    assert list(net.probe_points) == [f"relu{k}" for k in range(1, depth + 1)] + ["output"]


def test_the_parametrisation_is_checked():
    with pytest.raises(ValueError, match=r"parametrisation must be one of \['standard', 'mean_f"):
        build("simple_cnn", in_channels=1, num_classes=1, input_size=8, parametrisation="ntk")
