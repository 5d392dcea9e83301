"""The workflow's config: read, checked, and resolved into each job's settings.

Everything a config can get wrong is found by :class:`Config`, which the workflow builds while
Snakemake makes its DAG, before the first job: unknown keys and bad values (the schema of
:mod:`diffsens.settings`), settings that contradict each other or their data (a hinge loss on
classes, more probes than test images, a checkpoint that is not kept, a checkpoint epoch after
the last one), and networks that do not build for their data (an unknown option, a 1-D net on
images, a net too deep for its input). Each problem is named by its path in the config, and all
of them are reported at once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence

import yaml

from diffsens.settings import (
    SettingsError,
    canonical,
    conflicts,
    dataset_group,
    defaults,
    given_conflicts,
    measure_conflicts,
    problems_in,
    schema,
    training_conflicts,
    without_schema_errors,
)

__all__ = ["Config", "command_line_config", "read_yaml"]

SECTIONS = ("model", "training", "measure")
"""The settings an experiment shares with its variants, which override them key by key."""


def read_yaml(path: str | os.PathLike) -> dict:
    """A YAML config file as a dict; a syntax error names the file, line and column."""
    try:
        with open(path, encoding="utf-8") as stream:
            content = yaml.safe_load(stream)
    except OSError as error:
        raise SettingsError([f"{os.fspath(path)}: cannot be read ({error.strerror})"]) from None
    except yaml.MarkedYAMLError as error:
        mark, start = error.problem_mark, error.context_mark
        context = ""
        if error.context:
            context = f" ({error.context}" + (f" at line {start.line + 1})" if start else ")")
        raise SettingsError(
            [
                f"{os.fspath(path)}, line {mark.line + 1}, column {mark.column + 1}: YAML syntax "
                f"error: {error.problem}{context}"
            ]
        ) from None
    if not isinstance(content, dict):
        raise SettingsError([f"{os.fspath(path)}: a config is a mapping of keys, got {content!r}"])
    return content


def command_line_config(args: Sequence[str]) -> dict:
    """The settings of ``snakemake --config KEY=VALUE ...``, each VALUE read as YAML, as in a
    config file (Snakemake's own reading drops quotes and leaves nested values strings)."""
    found = {}
    for arg in args:
        key, given, value = arg.partition("=")
        if not given or not key:
            raise SettingsError([f"--config {arg!r}: expected KEY=VALUE"])
        try:
            found[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise SettingsError([f"--config {arg!r}: the value is not YAML ({error})"]) from None
    return found


def with_grid_variants(raw: dict) -> dict:
    """``raw`` with each experiment's ``grid`` spelled out as named variants (schema: ``grid``).

    A grid variant's name is its values joined by ``_`` in the grid's key order (a model name as
    itself, any other setting as its key then its value, a list's items joined by ``-``), so
    adding a value to a grid leaves the names, and the results, of the other variants alone.
    """
    problems = []
    valid = re.compile(schema()["$defs"]["name"]["pattern"])
    for experiment, entry in raw["experiments"].items():
        grid = entry.get("grid") or {}
        variants = dict(entry.get("variants") or {})
        for values in itertools.product(*grid.values()):
            overrides: dict = {}
            parts = []
            for key, value in zip(grid, values, strict=True):
                section, option = key.split(".")
                overrides.setdefault(section, {})[option] = value
                model = key == "model.name"  # a function's name alone (torchvision:resnet18)
                text = "-".join(map(str, value)) if isinstance(value, list) else str(value)
                part = text.rpartition(":")[2] if model else f"{option}{text}"
                if not valid.match(part):
                    problems.append(
                        f"experiments.{experiment}.grid.{key}: the value {value!r} cannot name a "
                        f"variant ({part!r}; names take letters, digits, '_', '.' and '-'): "
                        "write that variant under variants, with a name of your own"
                    )
                parts.append(part)
            name = "_".join(parts)
            if name in variants:  # a variant of the same name, or values that print alike
                problems.append(f"experiments.{experiment}.grid: variant {name!r} is named twice")
            variants[name] = overrides
        if grid:
            entry["variants"] = variants
    if problems:
        raise SettingsError(problems)
    return raw


def listing_digest(folders) -> str:
    """A digest of the path, size and modification time of every file under ``folders``: it
    changes when a file is added, removed or replaced, without reading any."""
    entries = []
    for top in folders:
        for folder, subfolders, names in os.walk(top):
            subfolders.sort()
            for name in sorted(names):
                stat = os.stat(os.path.join(folder, name))
                entries.append((os.path.join(folder, name), stat.st_size, stat.st_mtime_ns))
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


class Config:
    """A workflow config, validated and resolved; raises :class:`SettingsError` listing every
    problem.

    ``datasets[name]`` holds each dataset's complete settings (``source`` included),
    :meth:`variant` each variant's model, training and measure settings, and ``analysis``,
    ``theory`` and ``figures`` the top-level sections, defaults filled in throughout.
    ``against_data=False`` skips what needs the data's shapes and the networks (and torch): for
    the processes that run single jobs of a config already checked whole.
    ``calibration_made=False`` accepts that the calibration table is not made yet (the workflow,
    whose ``calibration`` target makes it, asks :meth:`calibration_problem` where it needs it).
    """

    def __init__(self, raw: Mapping, *, against_data: bool = True, calibration_made: bool = True):
        problems = list(problems_in(raw, schema()))
        if problems:  # checked again without the refused keys, for every problem at once
            cleaned = without_schema_errors(raw)
            if cleaned is not None and not list(problems_in(cleaned, schema())):
                try:
                    Config(cleaned, against_data=against_data, calibration_made=calibration_made)
                except SettingsError as error:
                    problems += [p for p in error.problems if p not in problems]
            raise SettingsError(problems)
        raw = with_grid_variants(json.loads(json.dumps(raw)))  # plain types, the config's order
        problems = list(problems_in(raw, schema()))  # of the variants the grids made
        if problems:
            raise SettingsError(problems)
        self.raw = raw
        top = {**defaults(schema()), **self.raw}
        self.results, self.calibration = top["results"], top["calibration"]
        if against_data and calibration_made and self.calibration_problem():
            problems.append(self.calibration_problem())
        self.analysis = self._section("analysis")
        self.theory = self._section("theory")
        problems += [
            f"theory.{key}: {problem}" for key, problem in conflicts("theory", self.theory)
        ]
        self.figures = self._section("figures")
        self.datasets = {
            name: canonical({**defaults(dataset_group(entry["source"])), **entry})
            for name, entry in self.raw["datasets"].items()
        }
        self.shapes = {}
        self._listings: dict[str, str] = {}
        for name, settings in self.datasets.items() if against_data else ():
            problems += self._shape(name, settings)
        self._variants = {}
        located = []  # (experiment, variant, path, problem)
        for experiment, entry in self.raw["experiments"].items():
            if entry["dataset"] not in self.datasets:
                problems.append(
                    f"experiments.{experiment}.dataset: {entry['dataset']!r} is not one of the "
                    f"datasets {sorted(self.datasets)}"
                )
                continue
            for variant in entry["variants"]:
                located += self._resolve(experiment, variant)
        if against_data:
            located += self._check_models()
        problems += self._locate(located)
        if problems:
            raise SettingsError(problems)

    def data_identity(self, name: str) -> dict:
        """What results made from dataset ``name`` depend on: its settings and, for your own
        images (which can change under the same settings), a digest of their files."""
        settings = self.datasets[name]
        if settings["source"] != "image_folder":
            return settings
        if name not in self._listings:
            splits = [os.path.join(settings["root"], settings[s]) for s in ("train", "test")]
            self._listings[name] = listing_digest(splits)
        return {**settings, "files": self._listings[name]}

    def shape(self, dataset: str):
        """The ``DataShape`` of ``dataset`` (worked out here where the config was read without
        its data)."""
        if dataset not in self.shapes:
            problems = self._shape(dataset, self.datasets[dataset])
            if problems:
                raise SettingsError(problems)
        return self.shapes[dataset]

    def dataset_of(self, experiment: str) -> str:
        return self.raw["experiments"][experiment]["dataset"]

    def seeds(self, experiment: str) -> list[int]:
        return self.raw["experiments"][experiment].get("seeds", [0])

    def variants(self, experiment: str) -> list[str]:
        return list(self.raw["experiments"][experiment]["variants"])

    def law(self, experiment: str) -> str:
        return self._experiment(experiment)["law"]

    def error_ceiling(self, experiment: str) -> float:
        return self._experiment(experiment)["error_ceiling"]

    def _experiment(self, experiment: str) -> dict:
        """An experiment's own keys (not its sections), defaults filled in."""
        return {**defaults("experiment"), **self.raw["experiments"][experiment]}

    def variant(self, experiment: str, variant: str) -> dict:
        """``{"model", "training", "measure"}`` of one variant, complete and canonical."""
        return self._variants[experiment, variant]

    def calibration_problem(self) -> str | None:
        """What is wrong with the ``calibration`` setting: a table that does not exist yet."""
        if self.calibration and not os.path.isfile(self.calibration):
            return (
                f"calibration: no file {self.calibration!r}; make the table with `snakemake "
                "calibration` or `diffsens calibrate CONFIG --out TABLE` (docs/cluster.md), or "
                "set null for the conservative model"
            )
        return None

    def _section(self, name: str) -> dict:
        return canonical({**defaults(name), **self.raw.get(name, {})})

    def _shape(self, name: str, settings: dict) -> list[str]:
        from diffsens.data import data_shape

        options = {key: value for key, value in settings.items() if key != "source"}
        try:
            self.shapes[name] = data_shape(settings["source"], **options)
        except (ValueError, FileNotFoundError) as error:  # bad settings, data absent offline
            return [f"datasets.{name}: {error}"]
        return []

    def _where(self, experiment: str, variant: str, section: str, key: str | None = None) -> str:
        """The config path that sets ``section.key`` (or the ``section``) for this variant: the
        variant's, else the experiment's, else the schema default."""
        base = f"experiments.{experiment}"
        entry = self.raw["experiments"][experiment]
        own = (entry["variants"][variant] or {}).get(section, {})
        if key is None:
            return f"{base}.variants.{variant}.{section}" if own else f"{base}.{section}"
        if key in own:
            return f"{base}.variants.{variant}.{section}.{key}"
        if key in entry.get(section, {}):
            return f"{base}.{section}.{key}"
        return f"{base}.{section}.{key} (the default)"

    def _locate(self, problems: list[tuple[str, str, str, str]]) -> list[str]:
        """``(experiment, variant, path, problem)`` as lines, one per distinct problem: one that
        an experiment-level setting causes in some of its variants only names them."""
        by_problem: dict[tuple[str, str, str], list[str]] = {}
        for experiment, variant, path, problem in problems:
            by_problem.setdefault((experiment, path, problem), []).append(variant)
        lines = []
        for (experiment, path, problem), affected in by_problem.items():
            every = ".variants." in path or len(affected) == len(self.variants(experiment))
            lines.append(f"{path}: {problem}" + ("" if every else f" (in {', '.join(affected)})"))
        return lines

    def _resolve(self, experiment: str, variant: str) -> list[tuple[str, str, str, str]]:
        entry = self.raw["experiments"][experiment]
        overrides = entry["variants"][variant] or {}
        merged = {s: {**entry.get(s, {}), **overrides.get(s, {})} for s in SECTIONS}
        settings = {
            "model": merged["model"],
            "training": {**defaults("training"), **merged["training"]},
            "measure": {**defaults("measure"), **merged["measure"]},
        }
        if settings["measure"]["deformation"] != "diffeo":
            for key in ("temperatures", "deltas"):  # one fixed move: no temperature to edit
                del settings["measure"][key]
        self._variants[experiment, variant] = canonical(settings)
        shape = self.shapes.get(self.dataset_of(experiment))
        training, measure = settings["training"], settings["measure"]
        found = [("training", key, problem) for key, problem in conflicts("training", training)]
        if shape is not None:
            found += [("training", k, p) for k, p in training_conflicts(training, shape)]
        found += [("measure", k, p) for k, p in measure_conflicts(measure, shape, training)]
        found += [("measure", k, p) for k, p in given_conflicts(merged["measure"])]
        if "name" not in settings["model"]:
            found.append(("model", None, "no model name (set model.name in the experiment)"))
        return [
            (experiment, variant, self._where(experiment, variant, section, key), problem)
            for section, key, problem in found
        ]

    def check_devices(self) -> None:
        """Raise :class:`SettingsError` naming each device that trainings and measurements ask
        for and this machine lacks: for runs whose jobs run here."""
        from diffsens.runtime import device_problem

        found = []
        for (experiment, variant), settings in self._variants.items():
            for section in ("training", "measure"):
                problem = device_problem(settings[section]["device"])
                if problem:
                    where = self._where(experiment, variant, section, "device")
                    found.append((experiment, variant, where, f"{problem}; use 'auto' or 'cpu'"))
        if found:
            raise SettingsError(self._locate(found))

    def _check_models(self) -> list[tuple[str, str, str, str]]:
        """Every model option exists, and every distinct (model, data) pair builds and runs
        (each pair checked once)."""
        from diffsens.models import check_spec, is_external, model_options
        from diffsens.train import learning_rate

        checked: dict[str, str] = {}
        problems = []
        for (experiment, variant), settings in self._variants.items():
            spec = settings["model"]
            shape = self.shapes.get(self.dataset_of(experiment))
            if "name" not in spec:
                continue
            if is_external(spec["name"]):  # its options are checked by building it
                options, unknown = {}, []
            else:
                options = model_options(spec["name"])
                unknown = [key for key in spec if key not in ("name", *options)]
            for key in unknown:
                where = self._where(experiment, variant, "model", key)
                problem = f"model {spec['name']!r} has no option {key!r}; its options are "
                problems.append((experiment, variant, where, problem + str(sorted(options))))
            try:
                learning_rate(spec, settings["training"])
            except SettingsError as error:  # lr_per_width of a model without a width
                where = self._where(experiment, variant, "training", "lr_per_width")
                problems += [
                    (experiment, variant, where, p.split(": ", 1)[1]) for p in error.problems
                ]
            if unknown or shape is None:
                continue
            key = repr((spec, shape))
            if key not in checked:
                try:
                    check_spec(spec, dims=shape.dims, **shape.network)
                    checked[key] = ""
                except (TypeError, ValueError, RuntimeError) as error:  # (too big to allocate)
                    checked[key] = str(error)
            if checked[key]:
                named = [k for k in spec if k != "name" and re.search(rf"\b{k}\b", checked[key])]
                where = self._where(experiment, variant, "model", named[0] if named else None)
                problems.append((experiment, variant, where, checked[key]))
        return problems
