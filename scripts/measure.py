"""Measure every kept checkpoint of one run under every condition (rule measure)."""

from pathlib import Path

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.checkpoints import measure_run
from diffsens.data import PreparedData
from diffsens.io import write_netcdf

settings = snakemake.params.settings
folder = Path(snakemake.input.checkpoints)
checkpoints = {name: folder / f"{name}.pt" for name in settings["measure"]["checkpoints"]}
data = PreparedData.load(snakemake.input.data)
run = measure_run(checkpoints, data, settings["measure"], seed=settings["seed"])
write_netcdf(run, snakemake.output.sensitivity)
