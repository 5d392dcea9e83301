"""Layer-wise R_k of every variant of one experiment (rule plot_layerwise)."""

from pathlib import Path

import xarray as xr

from diffsens.runtime import start_job

start_job(snakemake.log[0])

from diffsens.plots import layerwise, save

settings = snakemake.params.settings
cubes = {}
for path in snakemake.input.cubes:
    with xr.open_dataset(path) as cube:
        cubes[Path(path).stem] = cube.load()
figure = layerwise(cubes, temperature=settings["temperature"])
save(figure, snakemake.output.figures, dpi=settings["dpi"])
