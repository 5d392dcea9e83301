"""D_k, G_k, R_k against k with fitted and predicted laws (rule plot_depth_laws)."""

import xarray as xr

from diffsens.runtime import start_job

start_job(snakemake.log[0])

from diffsens.plots import depth_laws, load_cubes, save

settings = snakemake.params.settings
cubes = load_cubes(snakemake.input.cubes)
with xr.open_dataset(snakemake.input.fits) as fits:
    fits = fits.load()
figure = depth_laws(cubes, fits, temperature=settings["temperature"])
save(figure, snakemake.output.figures, dpi=settings["dpi"])
