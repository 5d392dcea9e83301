"""Laplacian spectra of the measured checkpoints of every seed of one variant (rule spectra)."""

from pathlib import Path

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.io import write_netcdf
from diffsens.pooling import checkpoint_spectra

settings = snakemake.params.settings
checkpoints = {
    (seed, name): Path(folder) / f"{name}.pt"
    for seed, folder in zip(settings["seeds"], snakemake.input.checkpoints, strict=True)
    for name in settings["checkpoints"]
}
write_netcdf(checkpoint_spectra(checkpoints), snakemake.output.spectra)
