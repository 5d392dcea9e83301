"""Stack the seeds of one (experiment, variant) into its cube (rule collect)."""

import xarray as xr

from diffsens.runtime import start_job

start_job(snakemake.log[0])

from diffsens.cubes import collect, write_netcdf

settings = snakemake.params.settings
runs = {}
for seed, path in zip(settings["seeds"], snakemake.input.runs, strict=True):
    with xr.open_dataset(path) as run:
        runs[seed] = run.load()
write_netcdf(collect(runs, settings), snakemake.output.cube)
