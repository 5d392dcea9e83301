"""D_k, G_k, R_k against k with fitted and predicted laws (rule plot_depth_laws)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import open_cubes, open_netcdf
from diffsens.plots import depth_laws, save

settings = snakemake.params.settings
fits = open_netcdf(snakemake.input.fits, "fits file", variables=("exponent", "law"))
figure = depth_laws(
    open_cubes(snakemake.input.cubes),
    fits,
    delta=settings["delta"],
    ceiling=settings["error_ceiling"],
    experiment=snakemake.wildcards.experiment,
)
save(figure, snakemake.output.figures, dpi=settings["dpi"])
