"""The constant-filter networks against their predicted depth laws (rule plot_theory)."""

import xarray as xr

from diffsens.runtime import start_job

start_job(snakemake.log[0])

from diffsens.plots import save, theory

settings = snakemake.params.settings
with xr.open_dataset(snakemake.input.theory) as networks:
    save(theory(networks.load()), snakemake.output.figures, dpi=settings["dpi"])
