"""Laplacian spectra of the filters of every variant of one experiment (rule plot_spectra)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import open_netcdfs
from diffsens.plots import save, spectra

settings = snakemake.params.settings
by_variant = open_netcdfs(snakemake.input.spectra, "spectra file", variables=("fraction",))
figure = spectra(
    by_variant, ceiling=settings["error_ceiling"], experiment=snakemake.wildcards.experiment
)
save(figure, snakemake.output.figures, dpi=settings["dpi"])
