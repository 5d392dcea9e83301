"""R_k of every variant of one experiment at every measured temperature (rule plot_temperatures)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import open_cubes
from diffsens.plots import save, temperatures

settings = snakemake.params.settings
figure = temperatures(
    open_cubes(snakemake.input.cubes),
    ceiling=settings["error_ceiling"],
    experiment=snakemake.wildcards.experiment,
)
save(figure, snakemake.output.figures, dpi=settings["dpi"])
