"""Process-wide settings and devices for the programs that drive the library (CLI, workflow
scripts, benchmarks).

Nothing here runs on ``import diffsens``: a library must not change its host process behind its
back. Workflow jobs call :func:`start_job` once at start-up, the CLI :func:`tune_allocator`.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import logging
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "claim_gpu",
    "describe_device",
    "device_problem",
    "made_stamp",
    "mark_settings",
    "pick_device",
    "settings_digest",
    "start_job",
    "terminal_progress",
    "tune_allocator",
]

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


def device_problem(name: str) -> str | None:
    """Why ``name`` (a device setting) cannot run here, or None."""
    import torch

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(name)):
        return f"device {name!r} is not one of auto, cpu, cuda or cuda:N"
    device = torch.device("cpu" if name == "auto" else name)
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        return f"device {name!r} was asked for, but CUDA is not available here"
    if device.index is not None and device.index >= torch.cuda.device_count():
        return f"device {name!r} was asked for, but this machine has {torch.cuda.device_count()}"
    return None


def pick_device(name: str = "auto"):
    """CUDA when asked or (``"auto"``) available, else CPU; asking for absent CUDA is an error.

    ``"auto"`` and ``"cuda"`` on a machine with several visible GPUs take one that no other
    diffsens process holds (:func:`claim_gpu`); ``"cuda:N"`` takes GPU N as asked.
    """
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    problem = device_problem(name)
    if problem:
        raise ValueError(problem)
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        device = torch.device("cuda", claim_gpu(torch.cuda.device_count()))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


_CLAIMED: dict[int, object] = {}  # GPU index -> its open lock file, held until the process ends


def claim_gpu(count: int, lock_dir: str | os.PathLike | None = None, poll_s: float = 0.5) -> int:
    """The index of one of ``count`` GPUs that no other diffsens process on this machine holds;
    this process holds it until it exits (an exclusive lock on a file per GPU, which the system
    releases even after a kill).

    Without it, concurrent jobs on a workstation with several GPUs would all take GPU 0. Where
    every GPU is held, it waits: the workflow's ``gpu`` resource lets at most as many GPU jobs
    run as there are GPUs. Lock files live in ``lock_dir``, else ``$DIFFSENS_GPU_LOCKS``, else
    a per-user folder of the temporary directory.
    """
    if _CLAIMED:
        return next(iter(_CLAIMED))
    default = Path(tempfile.gettempdir()) / f"diffsens-gpu-locks-{os.getuid()}"
    folder = Path(lock_dir or os.environ.get("DIFFSENS_GPU_LOCKS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    waiting = False
    while True:
        for index in range(count):
            handle = open(folder / f"gpu{index}.lock", "w")  # held until the process ends
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            _CLAIMED[index] = handle
            return index
        if not waiting:
            logging.getLogger(__name__).warning(
                "all %d GPUs are held by other diffsens processes (%s); waiting", count, folder
            )
            waiting = True
        time.sleep(poll_s)


def describe_device(device) -> str:
    """The device in words, for logs and provenance: ``cuda:0 (NVIDIA H100)``, ``cpu (2 thr.)``."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'' if threads == 1 else 's'})"


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
    log = logging.getLogger("diffsens.job")
    wildcards = ", ".join(f"{key} {value}" for key, value in snakemake.wildcards.items())
    log.info(
        "rule %s%s, %s thread(s)", snakemake.rule, f" ({wildcards})" if wildcards else "", threads
    )
    failed = []
    sys.excepthook = lambda kind, error, tb: failed.append(_report(kind, error, tb, inputs))
    atexit.register(lambda: failed or _finish(log, snakemake))


def terminal_progress(iterable, what: str, **options):
    """A progress bar on a terminal (tqdm, which shows rate and time left), nothing in a log
    file: jobs' logs say what each step did in lines of their own."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=what, disable=None, leave=False, dynamic_ncols=True, **options)


def settings_digest(params: Mapping) -> str:
    """The digest of a job's settings (its params, as Snakemake hands them on)."""
    from diffsens.io import digest

    return digest({str(name): value for name, value in params.items()})


def made_stamp(settings_file: str | os.PathLike) -> Path:
    """Where a job that succeeded records the digest of the settings it ran with."""
    return Path(settings_file).with_suffix(".made")


def mark_settings(settings_file: str | os.PathLike, expected: str) -> None:
    """Write a job's settings file (``expected``, the digest of its settings now) and date it:
    older than any output when the job last succeeded with these settings, so that nothing
    reruns; now when it did not, so that Snakemake reruns the job (by modification time, which
    needs no record of its own: a copied results tree, or one without ``.snakemake/``, reruns
    what it was not made with)."""
    from diffsens.io import write_atomically

    path = Path(settings_file)
    made = made_stamp(path)
    fresh = made.is_file() and made.read_text() == expected
    if not path.is_file() or path.read_text() != expected:
        write_atomically(path, lambda partial: partial.write_text(expected))
    os.utime(path, (0, 0) if fresh else None)


def _finish(log: logging.Logger, snakemake) -> None:
    """After a job that succeeded: log what it wrote, record the settings it ran with."""
    from diffsens.io import write_atomically

    _log_outputs(log, [Path(p) for p in snakemake.output])
    settings_file = dict(snakemake.input.items()).get("settings")
    if settings_file:
        digest = settings_digest(dict(snakemake.params.items()))
        write_atomically(made_stamp(settings_file), lambda partial: partial.write_text(digest))


def _log_outputs(log: logging.Logger, outputs: list[Path]) -> None:
    """The log's last lines: what the job wrote (a folder counts its files)."""
    for path in outputs:
        if path.is_dir():
            files = [f for f in path.rglob("*") if f.is_file()]
            size = sum(f.stat().st_size for f in files)
            log.info("wrote %s (%d files, %s)", path, len(files), _size(size))
        elif path.exists():
            log.info("wrote %s (%s)", path, _size(path.stat().st_size))


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


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
