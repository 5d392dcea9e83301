"""The claims of the run at a glance (rule plot_claims)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.claims import COLUMNS
from diffsens.io import read_table
from diffsens.plots import claims, save

settings = snakemake.params.settings
table = read_table(snakemake.input.table, "claims table", columns=COLUMNS)
figure = claims(table, delta=settings["delta"], confidence=settings["confidence"])
save(figure, snakemake.output.figures, dpi=settings["dpi"])
