"""One calibration table of every dataset's networks (rule calibration)."""

from diffsens.runtime import start_job

start_job(snakemake)

import pandas as pd

from diffsens.cost import CALIBRATION_COLUMNS
from diffsens.io import read_table, write_table

tables = [
    read_table(path, "calibration table", columns=CALIBRATION_COLUMNS)
    for path in snakemake.input.tables
]
write_table(pd.concat(tables, ignore_index=True), snakemake.output.table)
