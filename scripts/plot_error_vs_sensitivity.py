"""Test error against the output's D, G, R for the variants of one experiment."""

import json

from diffsens.runtime import start_job

start_job(snakemake.log[0])

from diffsens.plots import error_vs_sensitivity, load_cubes, save

settings = snakemake.params.settings
cubes = load_cubes(snakemake.input.cubes)
noise = {v: json.loads(c.attrs["settings"])["training"]["training_noise"] for v, c in cubes.items()}
varied = len(set(noise.values())) > 1  # colour by training noise when the grid varies it
figure = error_vs_sensitivity(
    cubes,
    temperature=settings["temperature"],
    colour_by=noise if varied else None,
    colour_label="training noise (norm)",
)
save(figure, snakemake.output.figures, dpi=settings["dpi"])
