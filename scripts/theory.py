"""The constant-filter model networks and their depth laws (rule theory)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import write_netcdf, write_table
from diffsens.theory import theory_networks

settings = snakemake.params.settings
networks, table = theory_networks(
    settings["networks"], sites=settings["sites"], repeats=settings["repeats"]
)
write_netcdf(networks, snakemake.output.theory)
write_table(table, snakemake.output.table, snakemake.output.markdown)
