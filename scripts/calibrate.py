"""Time the networks trained on one dataset on this job's device (rule calibrate)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.cost import calibrate
from diffsens.io import write_table

write_table(calibrate(snakemake.params.settings["networks"]), snakemake.output.table)
