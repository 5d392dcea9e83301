"""Test error against the output's D, G, R for the variants of one experiment."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import open_cubes
from diffsens.plots import error_vs_sensitivity, save
from diffsens.provenance import RunSettings

settings = snakemake.params.settings
cubes = open_cubes(snakemake.input.cubes)
made = {v: RunSettings.from_attrs(c.attrs) for v, c in cubes.items()}
noise = {v: m.training["training_noise"] for v, m in made.items()}
varied = len(set(noise.values())) > 1  # colour by training noise when the grid varies it
figure = error_vs_sensitivity(
    cubes,
    delta=settings["delta"],
    ceiling=settings["error_ceiling"],
    colour_by=noise if varied else None,
    colour_label="training noise",
    shape_by={v: m.model["name"] for v, m in made.items()} if varied else None,
    experiment=snakemake.wildcards.experiment,
)
save(figure, snakemake.output.figures, dpi=settings["dpi"])
