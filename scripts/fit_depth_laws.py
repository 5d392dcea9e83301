"""Depth-law fits of every variant of one experiment, with the predictions (rule fit_depth_laws)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.fits import fit_experiment, fit_table
from diffsens.io import open_cubes, write_netcdf, write_table

settings = snakemake.params.settings
fits = fit_experiment(
    open_cubes(snakemake.input.cubes),
    settings["law"],
    delta=settings["delta"],
    bootstrap=settings["bootstrap"],
    confidence=settings["confidence"],
    seed=settings["seed"],
)
write_netcdf(fits, snakemake.output.fits)
table = fit_table(fits, settings["error_ceiling"])
write_table(table, snakemake.output.table, snakemake.output.markdown)
