"""D_k, G_k, R_k of every variant of one experiment (rule plot_layerwise)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import open_cubes
from diffsens.plots import layerwise, save

settings = snakemake.params.settings
figure = layerwise(open_cubes(snakemake.input.cubes), temperature=settings["temperature"])
save(figure, snakemake.output.figures, dpi=settings["dpi"])
