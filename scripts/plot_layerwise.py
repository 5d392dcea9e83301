"""D_k, G_k, R_k of every variant of one experiment (rule plot_layerwise)."""

from diffsens.runtime import start_job

start_job(snakemake.log[0])

from diffsens.plots import layerwise, load_cubes, save

settings = snakemake.params.settings
figure = layerwise(load_cubes(snakemake.input.cubes), temperature=settings["temperature"])
save(figure, snakemake.output.figures, dpi=settings["dpi"])
