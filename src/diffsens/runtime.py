"""Process-wide settings for the programs that drive the library (CLI, workflow scripts, demo).

Nothing here runs on ``import diffsens``: a library must not change its host process behind its
back. Entry points call :func:`start_job` (or :func:`tune_allocator`) once at start-up.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["start_job", "tune_allocator"]

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


def start_job(log: str | os.PathLike | None = None, threads: int | None = None) -> None:
    """Start-up of a workflow job or command: log file, thread count, allocator.

    ``log`` receives everything the process writes to stdout and stderr (file descriptors 1 and
    2, so output from C code and tracebacks too); ``threads`` caps torch's intra-op threads to
    what the scheduler granted.
    """
    if log is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, int(threads)))
    tune_allocator()
