"""Process-wide settings and devices for the programs that drive the library (CLI, workflow
scripts, benchmarks).

Nothing here runs on ``import diffsens``: a library must not change its host process behind its
back. Workflow jobs call :func:`start_job` once at start-up, the CLI :func:`tune_allocator`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import traceback
from pathlib import Path

__all__ = ["describe_device", "pick_device", "start_job", "tune_allocator"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def tune_allocator(threshold: int = 1 << 30) -> bool:
    """Keep freed multi-megabyte blocks in the process instead of handing them back to the OS.

    glibc serves large ``malloc`` calls with fresh ``mmap`` pages and unmaps them on ``free``, so
    every large CPU tensor pays page faults each time it is allocated; batched perturbations of a
    probe set allocate many such tensors (benchmarks/README.md: 1.6x slower). This is what a
    caching allocator does on the GPU. Returns False (and changes nothing) off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * threshold)
    )


def pick_device(name: str = "auto"):
    """CUDA when asked or (``"auto"``) available, else CPU; asking for absent CUDA is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but CUDA is not available here")
    return device


def describe_device(device) -> str:
    """The device in words, for logs and provenance: ``cuda:0 (NVIDIA H100)``, ``cpu (2 thr.)``."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def start_job(snakemake) -> None:
    """Start-up of a workflow job: log file, logging, thread count, allocator, error hints.

    Everything the process writes to stdout and stderr (file descriptors 1 and 2, so output from
    C code and tracebacks too) goes to the job's log; torch's intra-op threads are capped to what
    the scheduler granted. An input found corrupted ends the job with the command that rebuilds
    it.
    """
    if snakemake.log:
        sys.stdout.flush()
        sys.stderr.flush()
        fd = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    threads = str(max(1, int(snakemake.threads or 1)))
    os.environ.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)  # read when torch starts
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))
    tune_allocator()
    inputs = [Path(path) for path in snakemake.input]
    sys.excepthook = lambda kind, error, tb: _report(kind, error, tb, inputs)


def _report(kind, error, tb, inputs: list[Path]) -> None:
    """Print the traceback; for a corrupted input, also the Snakemake command that rebuilds it."""
    from diffsens.io import CorruptedFile

    traceback.print_exception(kind, error, tb)
    if isinstance(error, CorruptedFile):
        path = error.path
    elif isinstance(error, FileNotFoundError) and error.filename:
        path = Path(error.filename)
    else:
        return
    path = path.resolve()
    for target in inputs:  # the input (a file, or a folder holding the file) to produce again
        if path == target.resolve() or target.resolve() in path.parents:
            rerun = os.environ.get("DIFFSENS_RERUN_OPTIONS", "")
            print(
                f"\n{path} is missing or unusable. Produce it again with:\n"
                f"    snakemake --forcerun {target} {rerun}".rstrip()
                + "\n",
                file=sys.stderr,
            )
            return
