"""Laplacian spectra of the filters of every variant of one experiment (rule plot_spectra)."""

from diffsens.runtime import start_job

start_job(snakemake.log[0])

from diffsens.plots import load_cubes, save, spectra

settings = snakemake.params.settings
figure = spectra(load_cubes(snakemake.input.spectra))
save(figure, snakemake.output.figures, dpi=settings["dpi"])
