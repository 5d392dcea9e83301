"""The constant-filter model networks and their depth laws (rule theory)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import write_netcdf, write_table
from diffsens.theory import theory_networks

networks, table = theory_networks(snakemake.params.settings)
write_netcdf(networks, snakemake.output.theory)
write_table(table, snakemake.output.table, snakemake.output.markdown)
