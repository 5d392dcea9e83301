"""Train one (experiment, variant, seed), resuming from its saved state (rule train)."""

from pathlib import Path

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.data import PreparedData
from diffsens.train import train

settings = snakemake.params.settings
train(
    settings["model"],
    PreparedData.load(snakemake.input.data),
    settings["training"],
    Path(snakemake.output.history).parent,
    seed=settings["seed"],
)
