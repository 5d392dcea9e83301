"""Devices: each concurrent GPU job gets its own GPU (checked with processes and lock files,
no GPU); names that are no device are refused."""

import subprocess
import sys
import time

import pytest

from diffsens.runtime import device_problem, pick_device

CLAIM = """
import sys, time
from diffsens.runtime import claim_gpu, device_problem, pick_device
print(claim_gpu(int(sys.argv[1]), sys.argv[2], poll_s=0.05), flush=True)
time.sleep(float(sys.argv[3]))
"""


def start(count, folder, hold_s):
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM, str(count), str(folder), str(hold_s)],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_concurrent_jobs_get_distinct_gpus_and_wait_for_a_free_one(tmp_path):
    jobs = [start(3, tmp_path, 3.0) for _ in range(3)]
    given = sorted(int(job.stdout.readline()) for job in jobs)
    assert given == [0, 1, 2]  # three jobs, three GPUs, none shared
    waiting = start(3, tmp_path, 0.0)
    time.sleep(0.5)
    assert waiting.poll() is None  # every GPU is held: it waits
    for job in jobs:
        job.wait()
    assert int(waiting.stdout.readline()) in {0, 1, 2}  # a released GPU is taken
    assert waiting.wait() == 0


def test_a_killed_job_releases_its_gpu(tmp_path):
    first = start(1, tmp_path, 60.0)
    assert int(first.stdout.readline()) == 0
    first.kill()
    first.wait()
    second = start(1, tmp_path, 0.0)
    assert int(second.stdout.readline()) == 0 and second.wait() == 0


def test_a_device_name_torch_does_not_know_is_refused_in_a_sentence():
    for name in ("tpu", "cuda:x", "gpu"):
        assert device_problem(name) == f"device {name!r} is not one of auto, cpu, cuda or cuda:N"
        with pytest.raises(ValueError, match="is not one of auto, cpu, cuda or cuda:N"):
            pick_device(name)
    assert device_problem("cpu") is None and device_problem("auto") is None
