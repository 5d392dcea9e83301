"""The conda environment lists the software pyproject.toml installs, at the same versions."""

import re
import tomllib

import yaml

from tests.workflow_helpers import REPO


def requirement(text: str) -> tuple[str, str]:
    """``(name, version spec)`` of ``"name>=1.0"``, the name as conda and pip both accept it."""
    name, spec = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", text.strip()).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_the_conda_environment_lists_what_pyproject_installs():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = dict(
        map(requirement, project["dependencies"] + project["optional-dependencies"]["dev"])
    )
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    listed = {}
    for entry in environment["dependencies"]:
        for item in entry["pip"] if isinstance(entry, dict) else [entry]:
            name, spec = requirement(item)
            listed[name] = spec.replace("=", "==", 1) if re.fullmatch(r"=[^=].*", spec) else spec
    assert {name: listed.get(name) for name in wanted} == wanted
    assert listed["python"] == "==3.11"
