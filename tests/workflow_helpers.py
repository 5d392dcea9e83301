"""Run the real Snakemake workflow on a config, in a scratch directory, as a user would."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake(
    workdir: Path, config: dict | None, *args: str, check: bool = True, env: dict | None = None
):
    """``snakemake ARGS`` on ``config`` (written to workdir/config.yaml) with the default
    profile, in this environment and ``env``."""
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
    ]
    if config is not None:
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        command.append(f"--configfile={path}")  # with "=", targets after it stay targets
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **(env or {}),
    }
    result = subprocess.run(
        [*command, *args], cwd=workdir, capture_output=True, text=True, env=env, timeout=1200
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def planned_jobs(workdir: Path, config: dict, *targets: str) -> set[tuple]:
    """The jobs a dry run (of ``targets``, else of everything) would execute, as
    ``(rule, (("wildcard", "value"), ...))``, without `all`; jobs of a group job (the short
    trainings, which a dry run lists indented under the group) included."""
    profile = ("--workflow-profile", str(REPO / "profiles" / "default"))
    result = snakemake(workdir, config, *targets, "--dry-run", *profile)
    jobs = set()
    for block in re.split(r"\n\s*(?=rule \w+:)", result.stdout):
        match = re.match(r"rule (\w+):", block)
        if not match or match.group(1) == "all":
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.MULTILINE)
        pairs = (
            tuple(sorted(tuple(p.split("=", 1)) for p in wildcards.group(1).split(", ")))
            if wildcards
            else ()
        )
        jobs.add((match.group(1), pairs))
    return jobs


def job(rule: str, **wildcards) -> tuple:
    """A job as :func:`planned_jobs` reports it."""
    return rule, tuple(sorted((key, str(value)) for key, value in wildcards.items()))


def variant_count(experiment: dict) -> int:
    """Variants of a raw experiment entry, counted by hand: the named ones, and every combination
    of its grid."""
    made = (
        math.prod(len(values) for values in experiment["grid"].values())
        if "grid" in experiment
        else 0
    )
    return len(experiment.get("variants", {})) + made
