"""The constant-filter networks against their predicted depth laws (rule plot_theory)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import open_netcdf
from diffsens.plots import save, theory

settings = snakemake.params.settings
networks = open_netcdf(snakemake.input.theory, "theory file", variables=("D", "G", "R"))
save(theory(networks), snakemake.output.figures, dpi=settings["dpi"])
