"""Stack the seeds of one (experiment, variant) into its cube (rule collect)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.cubes import collect
from diffsens.io import CUBE_VARIABLES, open_netcdf, write_netcdf

settings = snakemake.params.settings
runs = {
    seed: open_netcdf(path, "sensitivity file", variables=CUBE_VARIABLES)
    for seed, path in zip(settings["seeds"], snakemake.input.runs, strict=True)
}
cube = collect(runs, experiment=settings["experiment"], variant=settings["variant"])
write_netcdf(cube, snakemake.output.cube)
