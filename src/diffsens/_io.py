"""Atomic file writes: a file appears under its final name complete, or not at all."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import xarray as xr


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)`` in the target's directory, then rename onto ``path``.

    A killed writer leaves at most a hidden ``.partial`` file, never a truncated ``path``; a
    failing writer leaves an existing ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def save_torch(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`write_atomically`."""
    return write_atomically(path, lambda partial: torch.save(obj, partial))


def load_torch(path: str | os.PathLike, what: str):
    """``torch.load`` of plain tensors and containers, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {os.fspath(path)!r} does not exist")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:
        raise ValueError(
            f"{what} {os.fspath(path)!r} is unreadable or corrupted ({type(error).__name__}: "
            f"{error}); delete it and produce it again"
        ) from error


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` with the netCDF4 engine, through :func:`write_atomically`."""
    return write_atomically(path, lambda partial: ds.to_netcdf(partial, engine="netcdf4"))
