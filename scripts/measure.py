"""Measure every kept checkpoint of one run under every condition (rule measure)."""

from pathlib import Path

from diffsens.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)

from diffsens.cubes import measure_run, write_netcdf
from diffsens.data import PreparedData
from diffsens.train import describe_device, pick_device

settings = dict(snakemake.params.settings)
folder = Path(snakemake.input.checkpoints)
checkpoints = {name: folder / f"{name}.pt" for name in settings.pop("checkpoints")}
device = pick_device(settings.pop("device"))
run = measure_run(checkpoints, PreparedData.load(snakemake.input.data), device=device, **settings)
run.attrs["device"] = describe_device(device)
write_netcdf(run, snakemake.output.sensitivity)
