"""Depth-law fits of every variant of one experiment, with the predictions (rule fit_depth_laws)."""

from pathlib import Path

from diffsens.runtime import start_job

start_job(snakemake.log[0])

from diffsens._io import write_netcdf
from diffsens.fits import fit_experiment, fit_table, markdown
from diffsens.plots import load_cubes

settings = snakemake.params.settings
fits = fit_experiment(
    load_cubes(snakemake.input.cubes),
    settings["law"],
    temperature=settings["temperature"],
    bootstrap=settings["bootstrap"],
    confidence=settings["confidence"],
    seed=settings["seed"],
)
write_netcdf(fits, snakemake.output.fits)
table = fit_table(fits.drop_vars("predicted"), fits.predicted).merge(
    fits.law.to_dataframe().reset_index()
)
table.to_csv(snakemake.output.table, index=False)
Path(snakemake.output.markdown).write_text(markdown(table))
