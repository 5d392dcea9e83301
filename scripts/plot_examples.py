"""Scale-detection inputs, their pixel moves, and two pixels spreading through constant-filter
nets (rule plot_examples)."""

import torch

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.data import scale_detection_2d
from diffsens.perturb import move_pixels
from diffsens.plots import examples, save
from diffsens.theory import propagate

settings = snakemake.params.settings
(images, labels), _ = scale_detection_2d(n_train=2, n_test=2, seed=0)
moved = move_pixels(images[:1], generator=torch.Generator().manual_seed(0))
two_pixels = torch.zeros(1, 1, 64)
two_pixels[0, 0, [20, 40]] = 1.0
spreading = {
    "F = 5, s = 1": propagate(two_pixels, dim=1, filter_size=5, stride=1, depth=8),
    "F = 2, s = 2": propagate(two_pixels, dim=1, filter_size=2, stride=2, depth=6),
}
pair = "close" if labels[0] > 0 else "far"
task = f"2-D scale detection ({images.shape[-2]} x {images.shape[-1]}, a {pair} pair)"
figure = examples(images[0, 0].numpy(), moved[0, 0].numpy(), spreading, task)
save(figure, snakemake.output.figures, dpi=settings["dpi"])
