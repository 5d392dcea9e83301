"""The constant-filter model networks and their depth laws (rule theory)."""

from pathlib import Path

from diffsens.runtime import start_job

start_job(snakemake.log[0])

from diffsens._io import write_netcdf
from diffsens.fits import markdown
from diffsens.theory import theory_networks

settings = snakemake.params.settings
networks, table = theory_networks(
    settings["networks"], sites=settings["sites"], repeats=settings["repeats"]
)
write_netcdf(networks, snakemake.output.theory)
table.to_csv(snakemake.output.table, index=False)
Path(snakemake.output.markdown).write_text(markdown(table))
