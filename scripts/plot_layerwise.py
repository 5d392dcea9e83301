"""D_k, G_k, R_k of every variant of one experiment (rule plot_layerwise)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import open_cubes
from diffsens.plots import layerwise, save

settings = snakemake.params.settings
cubes = open_cubes(snakemake.input.cubes)
figure = layerwise(
    cubes,
    delta=settings["delta"],
    ceiling=settings["error_ceiling"],
    experiment=snakemake.wildcards.experiment,
)
save(figure, snakemake.output.figures, dpi=settings["dpi"])
