"""Benchmarks of the measurement engine (issue 2). Prints a markdown table for benchmarks/README.md.

1. Diffeo throughput: batched sample + warp of 500 images 3x32x32 (c = 3, bilinear) against a
   per-image loop of the same maths.
2. ``measure`` of every probed layer of a VGG11-style net on 500 probes at one temperature against
   three bare forward passes (clean, deformed, noisy) over the same images.
3. Peak resident memory of (2), each side in a fresh process.

    python benchmarks/bench_engine.py [--repeats 5] [--allocator tuned|default]

``tuned`` (the default) calls ``diffsens.runtime.tune_allocator()`` as the project's entry points
do; ``default`` leaves glibc's allocator as it comes.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from diffsens.diffeo import deform, temperature_for_displacement
from diffsens.runtime import tune_allocator
from diffsens.sensitivity import measure

P, C, N, CUT = 500, 3, 32, 3
T = temperature_for_displacement(1.0, CUT, N)
BATCH = 125
VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def vgg11() -> tuple[nn.Sequential, list[str]]:
    layers, probes, channels = [], [], C
    for v in VGG11:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU()]
            channels = v
        if not isinstance(layers[-1], nn.Conv2d):
            probes.append(str(len(layers) - 1))
    layers += [nn.Flatten(), nn.Linear(512, 10)]
    return nn.Sequential(*layers).eval(), [*probes, "output"]


def loop_deform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The same maths image by image: one field, then four-corner bilinear interpolation."""
    m = math.ceil(CUT + 0.5)
    k = torch.arange(1, m + 1, dtype=torch.float64)
    radius = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    std = torch.where(radius < CUT + 0.5, 1 / radius, 0.0).float()
    basis = torch.sin(math.pi * torch.linspace(0, 1, N)[:, None] * k.float())
    ys, xs = torch.meshgrid(torch.arange(N.__float__()), torch.arange(float(N)), indexing="ij")
    out = []
    for image in images:
        modes = torch.randn(2, m, m, generator=generator) * std
        dx, dy = N * math.sqrt(T) * (basis @ modes.transpose(-1, -2) @ basis.T)
        sx, sy = (xs - dx).clamp(0, N - 1), (ys - dy).clamp(0, N - 1)
        x0, y0, x1, y1 = sx.floor().long(), sy.floor().long(), sx.ceil().long(), sy.ceil().long()
        fx, fy = sx - x0, sy - y0
        out.append(
            (1 - fy) * (1 - fx) * image[:, y0, x0]
            + (1 - fy) * fx * image[:, y0, x1]
            + fy * (1 - fx) * image[:, y1, x0]
            + fy * fx * image[:, y1, x1]
        )
    return torch.stack(out)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_forwards(model, images):
    with torch.inference_mode():
        for _ in range(3):
            for batch in images.split(BATCH):
                model(batch)


def run_measure(model, layers, images):
    return measure(model, images, temperatures=[T], layers=layers, batch_size=BATCH)


def peak_memory(which: str, allocator: str) -> float:
    """Peak RSS in MiB of a fresh process doing only ``which`` ("bare" or "measure")."""
    command = [sys.executable, __file__, "--child", which, "--allocator", allocator]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["peak_mib"]


def child(which: str) -> None:
    torch.manual_seed(0)
    model, layers = vgg11()
    images = torch.randn(P, C, N, N)
    if which == "bare":
        bare_forwards(model, images)
    else:
        run_measure(model, layers, images)
    # VmHWM, not ru_maxrss: on Linux a child inherits its parent's ru_maxrss across fork + exec
    status = Path("/proc/self/status").read_text()
    peak_kib = int(
        next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]
    )
    print(json.dumps({"peak_mib": peak_kib / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", choices=["bare", "measure"])
    parser.add_argument("--allocator", choices=["tuned", "default"], default="tuned")
    args = parser.parse_args()
    if args.allocator == "tuned":
        tune_allocator()
    if args.child:
        return child(args.child)

    torch.manual_seed(0)
    images = torch.randn(P, C, N, N)
    generator = torch.Generator().manual_seed(0)
    batched = timed(lambda: deform(images, T, CUT, generator=generator), args.repeats)
    looped = timed(lambda: loop_deform(images, generator), args.repeats)

    model, layers = vgg11()
    ratios, bare_times, measure_times = [], [], []
    for _ in range(args.repeats):  # interleaved, so both sides see the same machine state
        bare_times.append(timed(lambda: bare_forwards(model, images), 1))
        measure_times.append(timed(lambda: run_measure(model, layers, images), 1))
        ratios.append(measure_times[-1] / bare_times[-1])
    bare_mem = peak_memory("bare", args.allocator)
    measure_mem = peak_memory("measure", args.allocator)

    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, {args.allocator} allocator, {args.repeats} runs, medians"
    )
    print("| benchmark | baseline | diffsens | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| diffeo sample+warp, 500x3x32x32 | loop {looped * 1e3:.1f} ms | "
        f"batched {batched * 1e3:.2f} ms | {looped / batched:.0f}x faster | >= 25x |"
    )
    print(
        f"| measure, VGG11, {len(layers)} layers, 500 probes, 1 T | 3 bare forwards "
        f"{statistics.median(bare_times):.2f} s | {statistics.median(measure_times):.2f} s | "
        f"{statistics.median(ratios):.2f}x | <= 1.3x |"
    )
    print(
        f"| peak RSS of the above (fresh process) | {bare_mem:.0f} MiB | {measure_mem:.0f} MiB | "
        f"{measure_mem / bare_mem:.2f}x | a few GB at most |"
    )


if __name__ == "__main__":
    main()
