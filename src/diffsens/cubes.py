"""Reading and writing sensitivity results as NetCDF files.

Files are written atomically: a reader (or a workflow manager deciding what to rerun) never sees a
half-written file under the final name, even if the writer is killed.
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from diffsens._io import write_atomically

__all__ = ["write_netcdf"]

ENGINE = "netcdf4"


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` atomically (a temporary file in the same directory, renamed)."""
    return write_atomically(path, lambda partial: ds.to_netcdf(partial, engine=ENGINE))
