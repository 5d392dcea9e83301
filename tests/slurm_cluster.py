"""A throwaway single-node SLURM cluster on loopback, for testing the SLURM profile for real.

Debian's slurmctld and slurmd run in the foreground as children of the test process, with all
state under a scratch directory, and are stopped by PID when the test ends, also on failure.
The configuration must sit at /etc/slurm (the executor plugin's job step drops SLURM_CONF);
an existing configuration that this module did not write is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

CONF_DIR = Path("/etc/slurm")
MARKER = "# written by diffsens tests/slurm_cluster.py"
DAEMONS = ("slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "srun")


def unavailable() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root"
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        return (
            f"SLURM is not installed ({', '.join(missing)} missing; .ci/run installs it with apt)"
        )
    conf = CONF_DIR / "slurm.conf"
    if conf.exists() and MARKER not in conf.read_text():
        return f"{conf} belongs to a real SLURM installation; not overwriting it"
    return None


def _config(scratch: Path) -> str:
    return f"""{MARKER}
ClusterName=diffsens-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
SlurmdParameters=config_overrides
StateSaveLocation={scratch}/state
SlurmdSpoolDir={scratch}/spool
SlurmctldPidFile={scratch}/slurmctld.pid
SlurmdPidFile={scratch}/slurmd.pid
SlurmctldLogFile={scratch}/slurmctld.log
SlurmdLogFile={scratch}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=32000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def slurm_cluster(scratch: Path):
    """Run a one-node cluster (8 CPUs, 32 GB and one fake GPU declared) until the block exits."""
    for sub in ("state", "spool"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    (CONF_DIR / "slurm.conf").write_text(_config(scratch))
    # A GPU with a device file, so that gpu=1 jobs schedule; it is not a real GPU (CPU fallback).
    (CONF_DIR / "gres.conf").write_text(
        f"{MARKER}\nAutoDetect=off\nNodeName=localhost Name=gpu File=/dev/null\n"
    )
    daemons: list[subprocess.Popen] = []
    try:
        for command in (["slurmctld", "-D", "-i"], ["slurmd", "-D", "-N", "localhost"]):
            with open(scratch / f"{command[0]}.out", "w") as log:  # the daemon keeps its own copy
                daemons.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        _wait_until_idle(scratch, daemons)
        yield
    finally:
        for daemon in reversed(daemons):
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        for name in ("slurm.conf", "gres.conf"):
            path = CONF_DIR / name
            if path.exists() and MARKER in path.read_text():
                path.unlink()


def _wait_until_idle(scratch: Path, daemons, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for daemon in daemons:
            if daemon.poll() is not None:
                raise RuntimeError(f"{daemon.args[0]} exited: {_logs(scratch)}")
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
        if state.stdout.strip() == "idle":
            return
        time.sleep(0.5)
    raise TimeoutError(f"the SLURM node did not become idle: {_logs(scratch)}")


def _logs(scratch: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text()[-2000:]}"
        for p in sorted(scratch.glob("*.out")) + sorted(scratch.glob("*.log"))
    )
