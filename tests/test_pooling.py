import itertools

import numpy as np
import pytest
import torch
from torch import nn

from diffsens.models import build
from diffsens.pooling import (
    checkpoint_spectra,
    grid_laplacian_modes,
    laplacian_spectrum,
    path_laplacian_modes,
    shuffle_channels,
)


def brute_force_laplacian(shape):
    sites = list(itertools.product(*[range(n) for n in shape]))
    index = {s: i for i, s in enumerate(sites)}
    L = np.zeros((len(sites), len(sites)))
    for s in sites:
        for axis in range(len(shape)):
            t = list(s)
            t[axis] += 1
            if tuple(t) in index:
                i, j = index[s], index[tuple(t)]
                L[i, j] = L[j, i] = -1
    np.fill_diagonal(L, -L.sum(axis=1))
    return L


@pytest.mark.parametrize("shape", [(3, 3), (5, 5), (2, 3), (4,)])
def test_grid_modes_diagonalise_the_grid_laplacian(shape):
    values, vectors = grid_laplacian_modes(shape)
    L = brute_force_laplacian(shape)
    np.testing.assert_allclose(L @ vectors, vectors * values, atol=1e-12)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(len(values)), atol=1e-12)
    np.testing.assert_allclose(values, np.sort(np.linalg.eigvalsh(L)), atol=1e-12)


def test_three_by_three_spectrum_and_constant_mode():
    values, vectors = grid_laplacian_modes((3, 3))
    np.testing.assert_allclose(values, [0, 1, 1, 2, 3, 3, 4, 4, 6], atol=1e-12)
    np.testing.assert_allclose(vectors[:, 0], np.full(9, 1 / 3))
    assert path_laplacian_modes(3)[0] == pytest.approx([0, 1, 3])


def test_averaging_filters_put_all_energy_on_eigenvalue_zero():
    model = build("vgg11", in_channels=3, num_classes=10, input_size=32)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.fill_(0.1)
    ds = laplacian_spectrum(model)
    np.testing.assert_allclose(ds.fraction.sel(mode=0), 1.0)
    np.testing.assert_allclose(ds.fraction.sum("mode"), 1.0)


def test_initial_filters_spread_energy_evenly():
    torch.manual_seed(0)
    ds = laplacian_spectrum(build("vgg11", in_channels=3, num_classes=10, input_size=32))
    assert ds.attrs["kernel_shape"] == "3x3" and ds.sizes["layer"] == 8
    np.testing.assert_allclose(ds.fraction.mean("layer"), 1 / 9, atol=0.01)
    np.testing.assert_allclose(ds.eigenvalue, [0, 1, 1, 2, 3, 3, 4, 4, 6], atol=1e-12)


def test_other_filter_sizes_and_nets_without_them():
    lenet = laplacian_spectrum(build("lenet", in_channels=1, num_classes=10, input_size=28))
    assert lenet.attrs["kernel_shape"] == "5x5" and lenet.sizes["mode"] == 25
    with pytest.raises(ValueError, match="no convolution"):
        laplacian_spectrum(build("fc2", in_channels=1, num_classes=10, input_size=28))


def test_shuffle_permutes_input_channels_once_per_layer():
    torch.manual_seed(0)
    model = build("simple_cnn", in_channels=3, num_classes=2, input_size=8, depth=2, width=6)
    shuffled = shuffle_channels(model, seed=1)
    for name in ("conv1", "conv2"):
        w, v = getattr(model, name).weight, getattr(shuffled, name).weight
        # the same permutation for every output filter: find it from filter 0 and check all
        order = [
            int(torch.nonzero((v[0, i] == w[0]).all(-1).all(-1))[0]) for i in range(w.shape[1])
        ]
        assert sorted(order) == list(range(w.shape[1]))
        assert torch.equal(v, w[:, order])
    assert not torch.equal(shuffled.conv2.weight, model.conv2.weight)
    assert torch.equal(shuffled.readout.weight, model.readout.weight)
    x = torch.randn(4, 3, 8, 8)
    assert not torch.allclose(model(x), shuffled(x))
    again = shuffle_channels(model, seed=1)
    assert torch.equal(again.conv2.weight, shuffled.conv2.weight)


def test_checkpoint_spectra_stack_seeds_and_checkpoints(tmp_path):
    from diffsens.data import PreparedData
    from diffsens.train import train

    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, 8, 8, generator=g)
    y = torch.randint(0, 2, (32,), generator=g)
    data = PreparedData("toy", x, y, x, y, 2, (0.0,), {})
    paths = {}
    for seed in (0, 1):
        spec = {"name": "simple_cnn", "depth": 2, "width": 4}
        train(spec, data, {"epochs": 1, "lr": 0.5}, tmp_path / str(seed), seed=seed)
        for name in ("init", "best"):
            paths[seed, name] = tmp_path / str(seed) / "checkpoints" / f"{name}.pt"
    ds = checkpoint_spectra(paths)
    assert ds.fraction.dims == ("seed", "checkpoint", "layer", "mode")
    assert list(ds.checkpoint.values) == ["init", "best"] and list(ds.seed.values) == [0, 1]
    assert not np.allclose(ds.energy.sel(checkpoint="init"), ds.energy.sel(checkpoint="best"))
