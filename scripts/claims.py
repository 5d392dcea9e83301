"""The paper's claims tested on every experiment of the run (rule claims)."""

from pathlib import Path

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.claims import ExperimentResults, claims_markdown, evaluate_claims
from diffsens.io import CUBE_VARIABLES, open_netcdf, write_atomically, write_table

settings = snakemake.params.settings
cubes, spectra = iter(snakemake.input.cubes), iter(snakemake.input.spectra)  # in config order
experiments = {}
for experiment, variants in settings["experiments"].items():
    results = {v: (next(cubes), next(spectra)) for v in variants}
    experiments[experiment] = ExperimentResults(
        cubes={
            v: open_netcdf(c, "cube", variables=CUBE_VARIABLES) for v, (c, _) in results.items()
        },
        spectra={
            v: open_netcdf(s, "spectra file", variables=("fraction",))
            for v, (_, s) in results.items()
        },
        ceiling=settings["error_ceilings"][experiment],
    )
table = evaluate_claims(experiments, confidence=settings["confidence"])
write_table(table, snakemake.output.table)
text = claims_markdown(table, settings["delta"])
write_atomically(snakemake.output.markdown, lambda partial: Path(partial).write_text(text))
