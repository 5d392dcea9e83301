"""Reading and writing every file diffsens makes: checked torch files, NetCDF, tables.

* Every write is atomic: a file appears under its final name complete, or not at all, so a
  reader (or a workflow manager deciding what to rerun) never takes a half-written file for a
  result. A full disk is reported as such, with the path.
* Every torch file (checkpoint, training state, prepared dataset) carries a SHA-256 checksum of
  its contents, verified on load: a corrupted file is refused by name, never half-used.
* Every NetCDF file carries a SHA-256 checksum of its variables and attributes (the attribute
  ``sha256``), verified on read: a flipped bit in a cube is refused by name, never read as a
  number. NetCDF files are read into memory and closed; a truncated or foreign file is refused
  by name.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "CHECKSUM",
    "CUBE_VARIABLES",
    "CorruptedFile",
    "digest",
    "load_torch",
    "markdown",
    "netcdf_digest",
    "open_cubes",
    "open_netcdf",
    "open_netcdfs",
    "read_table",
    "save_torch",
    "write_atomically",
    "write_netcdf",
    "write_table",
]

CUBE_VARIABLES = ("D", "G", "R", "num_D", "num_G", "den", "test_error")
"""What every cube holds (docs/formats.md); a file without them is not a cube."""

CHECKSUM = "sha256"
"""Key of a saved dict that holds the digest of everything else in it."""


class CorruptedFile(ValueError):
    """A file exists but cannot be used: truncated, corrupted, or not what was expected.

    ``problem`` says what is wrong, ``advice`` what to do: by default, for a damaged result,
    make it again; for a file of another kind (``advice`` given), give the right one.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        what: str,
        problem: str,
        advice: str = "delete it and run again what wrote it",
    ):
        self.path, self.what, self.problem, self.advice = Path(path), what, problem, advice
        super().__init__(f"{what} {os.fspath(path)!r} {problem}; {advice}")


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)`` in the target's directory, then rename onto ``path``.

    A killed writer leaves at most a hidden ``.partial`` file, never a truncated ``path``; a
    failing writer leaves an existing ``path`` untouched. A full disk raises ``OSError(ENOSPC)``
    naming ``path`` and the space left, whatever error the writer made of it (NetCDF and torch
    report it as their own errors); so does a file size limit (``ulimit -f``), and any other
    error of the writer carries a note naming ``path``.
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, path)
    except BaseException as error:
        full = _disk_full(path.parent, error)  # asked while the partial file holds its space
        size = partial.stat().st_size if partial.exists() else 0
        partial.unlink(missing_ok=True)
        limit = _size_limit()
        if full is None and limit is not None and size >= limit:
            raise OSError(
                errno.EFBIG,
                f"the file size limit ({limit:,} bytes, ulimit -f) was reached while writing "
                f"{os.fspath(path)!r}; raise the limit (ulimit -f unlimited) and run again",
            ) from error
        if full is None:
            if isinstance(error, Exception):  # whatever the writer says, the file is named
                error.add_note(f"(while writing {os.fspath(path)!r})")
            raise
        raise OSError(
            errno.ENOSPC,
            f"no space left on the device while writing {os.fspath(path)!r} ({full:,} bytes "
            "free there); free some space (or point the results elsewhere) and run again",
        ) from error
    return path


def _size_limit() -> int | None:
    """The largest file this process may write (``ulimit -f``), or None if unlimited."""
    try:
        import resource
    except ImportError:  # not on this system
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


_NEARLY_FULL = 1 << 20
"""Free bytes below which a failed write is put down to a full disk."""


def _disk_full(folder: Path, error: BaseException) -> int | None:
    """The free bytes where ``folder`` lies if ``error`` came from a full disk, else None."""
    if not isinstance(error, Exception):  # KeyboardInterrupt and the like
        return None
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if getattr(error, "errno", None) == errno.ENOSPC or free < _NEARLY_FULL:
        return free
    return None


def digest(obj) -> str:
    """SHA-256 of a nest of dicts, lists, tensors, arrays and plain values, by content."""
    sha = hashlib.sha256()
    _feed(sha, obj)
    return sha.hexdigest()


def _feed(sha, obj) -> None:
    torch = sys.modules.get("torch")  # not imported here: readers of NetCDF need not load it
    if torch is not None and isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous()
        sha.update(f"tensor {tensor.dtype} {tuple(tensor.shape)}:".encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        sha.update(f"array {array.dtype} {array.shape}:".encode())
        sha.update(array.tobytes())
    elif isinstance(obj, dict):
        sha.update(b"{")
        for key in sorted(obj, key=repr):
            _feed(sha, key)
            _feed(sha, obj[key])
        sha.update(b"}")
    elif isinstance(obj, list | tuple):
        sha.update(b"[")
        for item in obj:
            _feed(sha, item)
        sha.update(b"]")
    else:
        sha.update(f"{type(obj).__name__} {obj!r};".encode())


def save_torch(obj: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` of ``obj`` plus its checksum, through :func:`write_atomically`."""
    import torch

    payload = {**obj, CHECKSUM: digest(obj)}
    return write_atomically(path, lambda partial: torch.save(payload, partial))


def load_torch(path: str | os.PathLike, what: str, *, state_dict: bool = False) -> dict:
    """Load a file of :func:`save_torch` (plain tensors and containers), checksum verified.

    ``state_dict=True`` also accepts a file of tensors alone without a checksum: a plain
    ``torch.save(model.state_dict(), path)``. Errors name the file: missing
    (``FileNotFoundError``), unreadable or corrupted (:class:`CorruptedFile`).
    """
    import torch

    path = _existing(path, what)
    kind = _kind(path)
    if kind != "torch":
        raise CorruptedFile(path, what, f"is not a torch file ({_which(kind)})", f"give a {what}")
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:
        raise CorruptedFile(
            path, what, f"is unreadable or corrupted ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(obj, dict):
        raise CorruptedFile(path, what, f"holds a {type(obj).__name__}, not a dict")
    saved = obj.pop(CHECKSUM, None)
    if saved is None:
        if state_dict and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        advice = "give a diffsens " + what
        if state_dict:
            advice += " or a plain state_dict (torch.save(model.state_dict(), path))"
        raise CorruptedFile(path, what, "has no checksum (it was not written by diffsens)", advice)
    if saved != digest(obj):
        raise CorruptedFile(path, what, "is corrupted: its contents do not match its checksum")
    return obj


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` with the netCDF4 engine and its checksum (verified by
    :func:`open_netcdf`), through :func:`write_atomically`."""
    ds = ds.copy()
    ds.attrs = {key: value for key, value in ds.attrs.items() if key != CHECKSUM}
    ds.attrs[CHECKSUM] = netcdf_digest(ds)
    return write_atomically(path, lambda partial: ds.to_netcdf(partial, engine="netcdf4"))


def netcdf_digest(ds: xr.Dataset) -> str:
    """SHA-256 of a dataset's variables (names, dimensions, values, attributes) and attributes,
    but its checksum, in a form that a NetCDF round trip keeps (numbers as float64, text as
    str with missing items empty, a number attribute as a list of one)."""

    def attrs(mapping):
        return {
            str(key): value if isinstance(value, str) else np.atleast_1d(value).tolist()
            for key, value in mapping.items()
            if key != CHECKSUM
        }

    def values(array: np.ndarray):
        if array.dtype.kind in "biuf":
            return array.astype(np.float64)
        if array.dtype.kind in "mM":
            return array.astype(np.int64)
        return [_text(item) for item in array.ravel().tolist()]

    return digest(
        {
            "attrs": attrs(ds.attrs),
            "variables": {
                str(name): [
                    list(map(str, var.dims)),
                    values(np.asarray(var.values)),
                    attrs(var.attrs),
                ]
                for name, var in ds.variables.items()
            },
        }
    )


def _text(item) -> str:
    """An item of a text array as NetCDF stores it: a missing one (``None``, NaN, left by an
    outer join of labelled layers) becomes the empty string."""
    if item is None or (isinstance(item, float) and np.isnan(item)):
        return ""
    return str(item)


def open_netcdf(
    path: str | os.PathLike, what: str = "NetCDF file", *, variables: Iterable[str] = ()
) -> xr.Dataset:
    """Read a NetCDF file into memory (and close it), checking it holds ``variables``."""
    path = _existing(path, what)
    kind = _kind(path)
    if kind != "NetCDF":
        raise CorruptedFile(path, what, f"is not a NetCDF file ({_which(kind)})", f"give a {what}")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.load()
    except Exception as error:
        raise CorruptedFile(
            path, what, f"is truncated or corrupted ({type(error).__name__}: {error})"
        ) from error
    saved = ds.attrs.pop(CHECKSUM, None)  # files of other tools have none
    if saved is not None and saved != netcdf_digest(ds):
        raise CorruptedFile(
            path,
            what,
            f"is corrupted: its contents do not match its checksum (attribute {CHECKSUM})",
            "delete it and run again what wrote it; if you changed it on purpose, save it with "
            "diffsens.io.write_netcdf (or without that attribute)",
        )
    missing = [name for name in variables if name not in ds.variables]
    if missing:
        raise CorruptedFile(
            path,
            what,
            f"is a NetCDF file but not a {what}: it lacks {missing} and holds "
            f"{sorted(map(str, ds.data_vars))}",
            f"give a {what}",
        )
    return ds


def _existing(path: str | os.PathLike, what: str) -> Path:
    """``path`` if it is a file; else ``FileNotFoundError`` saying what is there instead."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(errno.ENOENT, f"{what} {problem}", str(path))
    return path


_MAGIC = {b"\x89HDF\r\n\x1a\n": "NetCDF", b"CDF\x01": "NetCDF", b"CDF\x02": "NetCDF"}


def _kind(path: Path) -> str:
    """What a file is, by its first bytes: "NetCDF", "torch" (a zip archive), or a description
    for the message that refuses it."""
    with path.open("rb") as f:
        head = f.read(8)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    if head.startswith(b"PK\x03\x04"):
        return "torch"
    return "empty" if not head else f"first bytes {head!r}"


def _which(kind: str) -> str:
    return f"it is a {kind} file" if kind in ("NetCDF", "torch") else kind


def open_netcdfs(
    paths: Iterable[str | os.PathLike], what: str = "NetCDF file", variables: Iterable[str] = ()
) -> dict[str, xr.Dataset]:
    """:func:`open_netcdf` of each path, by file stem (the variant, for per-variant files)."""
    return {Path(path).stem: open_netcdf(path, what, variables=variables) for path in paths}


def open_cubes(paths: Iterable[str | os.PathLike]) -> dict[str, xr.Dataset]:
    """Cubes by file stem, each checked to hold :data:`CUBE_VARIABLES`."""
    return open_netcdfs(paths, "cube", CUBE_VARIABLES)


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table of ``table``, numbers rounded (no extra dependency)."""

    def cell(value) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.{digits}g}"
        return str(value)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


def read_table(
    path: str | os.PathLike, what: str = "table", *, columns: Mapping[str, type] | None = None
) -> pd.DataFrame:
    """Read a CSV table written by :func:`write_table`, checking it holds ``columns`` (name ->
    type) and giving them their types: the empty cells of a text column are empty strings, those
    of a number column NaN."""
    path = _existing(path, what)
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except Exception as error:
        raise CorruptedFile(
            path, what, f"cannot be read as a CSV table ({type(error).__name__}: {error})"
        ) from error
    columns = columns or {}
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise CorruptedFile(path, what, f"lacks the column(s) {missing}")
    try:
        for column, kind in columns.items():
            values = table[column].fillna("") if kind is str else table[column]
            table[column] = values.astype(kind)
    except (TypeError, ValueError) as error:
        raise CorruptedFile(path, what, f"has a column of the wrong type ({error})") from error
    return table


def write_table(
    table: pd.DataFrame, csv: str | os.PathLike, markdown_path: str | os.PathLike | None = None
) -> None:
    """Write ``table`` as CSV and, optionally, as a markdown pipe table, both atomically."""
    write_atomically(csv, lambda partial: table.to_csv(partial, index=False))
    if markdown_path is not None:
        text = markdown(table)
        write_atomically(markdown_path, lambda partial: partial.write_text(text))
