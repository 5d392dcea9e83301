"""The projected cost of the run, as `diffsens cost` prints it (rule cost)."""

from pathlib import Path

from diffsens.runtime import start_job

start_job(snakemake)

import pandas as pd

from diffsens.cost import cost_markdown
from diffsens.io import write_atomically, write_table

settings = snakemake.params.settings
table = pd.DataFrame(settings["rows"])
write_table(table, snakemake.output.table)
text = cost_markdown(table) + f"\n{settings['total']}\n"
write_atomically(snakemake.output.markdown, lambda partial: Path(partial).write_text(text))
