"""Every variant of one experiment in one panel per quantity (rule plot_compare)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import open_cubes
from diffsens.plots import compare, save

settings = snakemake.params.settings
figure = compare(
    open_cubes(snakemake.input.cubes),
    delta=settings["delta"],
    ceiling=settings["error_ceiling"],
    grid=settings["grid"],
    experiment=snakemake.wildcards.experiment,
)
save(figure, snakemake.output.figures, dpi=settings["dpi"])
