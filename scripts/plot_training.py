"""Training curves of every variant and seed of one experiment (rule plot_training)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import open_netcdf
from diffsens.plots import save, training_curves

settings = snakemake.params.settings
paths = iter(snakemake.input.histories)  # variant-major, as the rule lists them
histories = {
    variant: [open_netcdf(next(paths), "training history") for _ in settings["seeds"]]
    for variant in settings["variants"]
}
figure = training_curves(
    histories, ceiling=settings["error_ceiling"], experiment=snakemake.wildcards.experiment
)
save(figure, snakemake.output.figures, dpi=settings["dpi"])
