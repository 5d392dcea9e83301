"""Reading and writing sensitivity results as NetCDF files.

Files are written atomically: a reader (or a workflow manager deciding what to rerun) never sees a
half-written file under the final name, even if the writer is killed.
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

__all__ = ["write_netcdf"]

ENGINE = "netcdf4"


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` through a temporary file in the same directory, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        ds.to_netcdf(partial, engine=ENGINE)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
