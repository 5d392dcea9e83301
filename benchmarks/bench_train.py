"""Training throughput of ``diffsens.train`` against a minimal hand-written loop (issue 3).

Same model, data (the 4,000 training digits of mnist5k, 1,000 test digits), batch size, optimizer
and epochs; both evaluate the test error once per epoch, as the paper's protocol asks. The trainer
additionally writes its checkpoints, history and resumable state every epoch.

    python benchmarks/bench_train.py [--repeats 3] [--epochs 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch
from torch import nn

from diffsens.data import prepare
from diffsens.models import build_spec
from diffsens.runtime import tune_allocator
from diffsens.train import train

MODEL = {"name": "simple_cnn", "dim": 2, "depth": 4, "width": 32, "pooling": "max"}
BATCH = 128


def hand_loop(data, epochs: int) -> None:
    torch.manual_seed(0)
    model = build_spec(MODEL, in_channels=1, num_classes=10, input_size=28)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x, y = data.train_images, data.train_labels
    for _ in range(epochs):
        model.train()
        for index in torch.randperm(len(x)).split(BATCH):
            loss = nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            (model(data.test_images).argmax(1) != data.test_labels).float().mean().item()


def with_trainer(data, epochs: int) -> None:
    config = {"lr": 0.05, "batch_size": BATCH, "epochs": epochs, "scheduler": "none"}
    with tempfile.TemporaryDirectory() as out:
        train(MODEL, data, config, out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    tune_allocator()
    data = prepare("mnist5k", n_test=1000, seed=0)
    images = len(data.train_images) * args.epochs
    rates = {"hand": [], "trainer": []}
    for _ in range(args.repeats):  # interleaved so that both see the same machine state
        for name, fn in (("hand", hand_loop), ("trainer", with_trainer)):
            start = time.perf_counter()
            fn(data, args.epochs)
            rates[name].append(images / (time.perf_counter() - start))
    hand, trainer = (statistics.median(rates[k]) for k in ("hand", "trainer"))
    ratio = statistics.median(t / h for t, h in zip(rates["trainer"], rates["hand"], strict=True))
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, {args.repeats} runs of {args.epochs} epochs, medians"
    )
    print("| benchmark | hand-written loop | diffsens.train | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| training throughput, simple_cnn depth 4 width 32, mnist5k, batch {BATCH} | "
        f"{hand:.0f} img/s | {trainer:.0f} img/s | {ratio:.2f}x | >= 0.9x |"
    )


if __name__ == "__main__":
    main()
