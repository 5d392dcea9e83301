"""The headline numbers of every experiment in one table (rule summarise)."""

from pathlib import Path

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import CUBE_VARIABLES, open_netcdf, write_atomically, write_table
from diffsens.summary import summarise, summary_markdown

settings = snakemake.params.settings
cubes = iter(snakemake.input.cubes)  # every experiment's variants, in order
experiments = {
    experiment: (
        {v: open_netcdf(next(cubes), "cube", variables=CUBE_VARIABLES) for v in variants},
        open_netcdf(fits, "fits file", variables=("exponent", "law")),
    )
    for (experiment, variants), fits in zip(
        settings["experiments"].items(), snakemake.input.fits, strict=True
    )
}
table = summarise(experiments, delta=settings["delta"], ceilings=settings["error_ceilings"])
write_table(table, snakemake.output.table)
text = summary_markdown(table)
write_atomically(snakemake.output.markdown, lambda partial: Path(partial).write_text(text))
