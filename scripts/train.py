"""Train one (experiment, variant, seed), resuming from its saved state (rule train)."""

from pathlib import Path

from diffsens.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)

from diffsens.data import PreparedData
from diffsens.train import train

settings = snakemake.params.settings
train(
    settings["model"],
    PreparedData.load(snakemake.input.data),
    settings["training"],
    Path(snakemake.output.history).parent,
    restart_on_change=True,  # a retry resumes; changed settings start over
)
