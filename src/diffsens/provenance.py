"""What a result was made from and with: the contract between diffsens's files and their readers.

:class:`RunSettings` is the structure every training history and cube carries in its NetCDF
attributes (docs/formats.md): the model spec, the training settings, the dataset (name, settings,
fingerprint of its contents), the measure settings (cubes), and the workflow's experiment and
variant names ("" outside the workflow). Writers make it with :meth:`RunSettings.to_attrs`,
readers get it back with :meth:`RunSettings.from_attrs`; nothing else parses those attributes.
:func:`software` adds the code version, package versions and date; :func:`code_digest` tells
one version of the library's code from another, git or not.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["RunSettings", "code_digest", "software"]

_PACKAGES = ("diffsens", "torch", "torchvision", "numpy", "xarray", "netCDF4")


@dataclass(frozen=True)
class RunSettings:
    """The settings a result was made with; each field is one JSON attribute of the file."""

    model: dict
    training: dict
    dataset: dict
    measure: dict = field(default_factory=dict)
    experiment: str = ""
    variant: str = ""

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping) -> RunSettings:
        """The settings recorded in a checkpoint (or in the description a training writes)."""
        return cls(
            model=dict(checkpoint["model"]),
            training=dict(checkpoint["training"]),
            dataset=dict(checkpoint["dataset"]),
        )

    def to_attrs(self) -> dict[str, str]:
        return {f.name: json.dumps(getattr(self, f.name), sort_keys=True) for f in fields(self)}

    @classmethod
    def from_attrs(cls, attrs: Mapping, source: str = "this file") -> RunSettings:
        """Read the settings back; a file without them is refused by name."""
        missing = [f.name for f in fields(cls) if f.name not in attrs]
        if missing:
            raise ValueError(
                f"{source} does not say what it was made from (no attribute(s) {missing}): it "
                "is not a diffsens result, or one written by an older version"
            )
        return cls(**{f.name: json.loads(attrs[f.name]) for f in fields(cls)})


def software() -> dict[str, str]:
    """Attributes that say which code made a result: git commit, package versions, date."""
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "git_commit": _git_commit(),
        "versions": json.dumps(versions),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _git_commit() -> str:
    """The commit of the diffsens source tree in use, with ``-dirty`` for local changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + ("-dirty" if dirty else "")


@functools.cache
def code_digest() -> str:
    """SHA-256 of the diffsens package's Python sources (their paths and contents): what a
    training's resumable state is tied to, so that code changes retrain."""
    package = Path(__file__).resolve().parent
    sha = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        sha.update(f"{path.relative_to(package).as_posix()}\n".encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()
