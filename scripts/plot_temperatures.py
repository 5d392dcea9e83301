"""R_k of every variant of one experiment at every measured temperature (rule plot_temperatures)."""

from diffsens.runtime import start_job

start_job(snakemake.log[0])

from diffsens.plots import load_cubes, save, temperatures

settings = snakemake.params.settings
save(temperatures(load_cubes(snakemake.input.cubes)), snakemake.output.figures, dpi=settings["dpi"])
