"""Every setting of diffsens, declared once: the JSON Schema ``config.schema.yaml`` in this package.

The schema holds each settings group (``training``, ``measure``, ``analysis``, ``theory``,
``figures``, one per dataset source, the model name) with every key's type, bounds, choices,
default and description. Everything else is derived from it: :func:`resolve` checks a group and
fills its defaults for the library (``diffsens.train.train``,
``diffsens.checkpoints.measure_run``), the ``diffsens`` command builds its options from it, and
the workflow validates its whole config against it. Adding a setting is a change to the schema
alone.

Errors name the offending key by its path (``experiments.mnist.training.lr``) and say what was
expected; every error of a config is reported at once. This module does not import torch.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator, Mapping
from importlib.resources import files

import jsonschema
import yaml

__all__ = [
    "SettingsError",
    "canonical",
    "check",
    "conflicts",
    "dataset_group",
    "defaults",
    "displacement_count",
    "given_conflicts",
    "group",
    "measure_conflicts",
    "problems_in",
    "resolve",
    "schema",
    "training_conflicts",
]


class SettingsError(ValueError):
    """Settings that break the schema or contradict each other; the message lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the settings:\n{lines}")


@functools.cache
def schema() -> dict:
    """The whole schema (a draft 2020-12 JSON Schema of the workflow config)."""
    return yaml.safe_load(files("diffsens").joinpath("config.schema.yaml").read_text())


def group(name: str) -> dict:
    """The schema of a settings group: ``training``, ``measure``, ``model``, ``analysis``,
    ``theory`` or ``figures``."""
    root = schema()
    if name in root["$defs"]:
        return root["$defs"][name]
    if name in root["properties"] and name not in ("datasets", "experiments"):
        return root["properties"][name]
    raise KeyError(f"no settings group {name!r}")


def dataset_group(source: str) -> dict:
    """The schema of the settings of one dataset ``source`` (its keys, with ``source`` itself)."""
    for branch in schema()["$defs"]["dataset"]["allOf"]:
        if source in branch["if"]["properties"]["source"]["enum"]:
            return {"type": "object", **branch["then"]}
    sources = schema()["$defs"]["dataset"]["properties"]["source"]["enum"]
    raise SettingsError([f"source: {source!r} is not one of {sources}"])


def defaults(group_schema: dict | str) -> dict:
    """The default of every key of a group (a group name or its schema)."""
    if isinstance(group_schema, str):
        group_schema = group(group_schema)
    return {
        key: spec["default"]
        for key, spec in group_schema.get("properties", {}).items()
        if isinstance(spec, dict) and "default" in spec
    }


def resolve(group_schema: dict | str, values: Mapping | None = None, where: str = "") -> dict:
    """``values`` checked against a group and completed with its defaults.

    ``where`` prefixes the key paths in the errors (e.g. ``"experiments.mnist.training"``).
    Raises :class:`SettingsError` listing every problem.
    """
    name = group_schema if isinstance(group_schema, str) else ""
    if isinstance(group_schema, str):
        group_schema = group(group_schema)
    values = dict(values or {})
    check(values, group_schema, where or name)
    resolved = {**defaults(group_schema), **values}
    problems = [f"{where or name}.{key}: {problem}" for key, problem in conflicts(name, resolved)]
    if problems:
        raise SettingsError(problems)
    return resolved


def canonical(value):
    """Same settings, same representation: sorted keys, JSON types only (tuples become lists)."""
    return json.loads(json.dumps(value, sort_keys=True))


def check(instance, schema_: dict, where: str = "") -> None:
    """Validate ``instance`` against ``schema_`` (refs resolved in the whole schema)."""
    problems = list(problems_in(instance, schema_, where))
    if problems:
        raise SettingsError(problems)


def problems_in(instance, schema_: dict, where: str = "") -> Iterator[str]:
    """Every schema violation of ``instance``, as ``"path: what is wrong"``, and every
    non-finite number (YAML's ``.nan`` and ``.inf`` pass JSON Schema bounds)."""
    validator = jsonschema.Draft202012Validator(
        {**schema_, "$defs": schema()["$defs"]},
    )
    flagged = set()
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        flagged.add(_path(where, error.absolute_path))
        yield f"{_path(where, error.absolute_path)}: {_message(error)}"
    for path, value in _non_finite(instance, where):
        if path not in flagged:
            yield f"{path}: {value!r} is not a finite number"


def without_schema_errors(instance):
    """A copy of ``instance`` without the keys and list items the schema refuses (unknown keys,
    bad values, NaN and infinities: their defaults apply), so that the checks that need a sound
    structure can still run and report their own problems beside the schema's; None if some
    error cannot be cut out that way."""
    validator = jsonschema.Draft202012Validator(schema())
    cleaned = _finite_only(json.loads(json.dumps(instance)))
    items = {}  # refused list items by (list, index), cut out last so indices stay valid
    for error in validator.iter_errors(instance):
        *parents, key = list(error.absolute_path) or [None]
        node = cleaned
        try:
            for part in parents:
                node = node[part]
            target = node if key is None else node[key]
        except (KeyError, IndexError, TypeError):  # already cut out with a parent
            continue
        if error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            for extra in [k for k in target if k not in known]:
                del target[extra]
        elif isinstance(node, dict) and isinstance(key, str):
            node.pop(key, None)
        elif isinstance(node, list) and isinstance(key, int):
            items[id(node), key] = node  # once, however many rules the item breaks
        else:
            return None
    for (_, index), node in sorted(items.items(), key=lambda item: item[0][1], reverse=True):
        del node[index]
    return cleaned if validator.is_valid(cleaned) else None


def conflicts(group_name: str, resolved: Mapping) -> list[tuple[str, str]]:
    """``(key, problem)`` for each contradiction between keys of one resolved group."""
    found = []
    if group_name == "theory":
        for index, network in enumerate(resolved["networks"]):
            lattice = network.get("inputs") == "lattice"
            if lattice and network["stride"] not in (1, network["filter_size"]):
                found.append(
                    (
                        f"networks[{index}].inputs",
                        "the lattice needs stride 1 or stride = filter size",
                    )
                )
    if group_name == "training":
        late = [e for e in resolved["save_epochs"] if e > resolved["epochs"]]
        if late:
            found.append(
                ("save_epochs", f"epochs {late} are after the last epoch ({resolved['epochs']})")
            )
        if resolved["zero_loss_multiple"] > 1 and not resolved["stop_at_zero_loss"]:
            found.append(("zero_loss_multiple", "has no effect without stop_at_zero_loss: true"))
    return found


def training_conflicts(training: Mapping, shape) -> list[tuple[str, str]]:
    """``(key, problem)`` for each training setting that the data (a ``DataShape``) rule out."""
    found = []
    binary = shape.num_classes == 1
    if binary != (training["loss"] == "hinge"):
        labels = "+1/-1 labels" if binary else f"{shape.num_classes} classes"
        expected = "hinge" if binary else "cross_entropy"
        found.append(("loss", f"the data have {labels}: expected {expected!r}"))
    if training["augmentation"] != "none" and shape.dims != 2:
        found.append(("augmentation", "random crops need images; the data are 1-D signals"))
    if training["validation"] >= shape.n_train:
        found.append(
            (
                "validation",
                f"{training['validation']} validation examples leave none of the "
                f"{shape.n_train} training examples to train on",
            )
        )
    return found


def displacement_count(measure: Mapping) -> int:
    """How many displacements a measurement makes: its ``deltas``, else its ``temperatures``
    (a count or values); one for the discrete moves."""
    if measure["deformation"] != "diffeo":
        return 1
    values = measure.get("deltas") or measure["temperatures"]
    return values if isinstance(values, int) else len(values)


def _fold_conflicts(measure: Mapping, n: int) -> list[tuple[str, str]]:
    """Displacements that fold images of ``n`` pixels onto themselves (above T_max), or a cut
    that leaves such images no smooth deformation at all."""
    from diffsens.diffeo import temperature_range, typical_displacement

    try:
        T_max = temperature_range(n, measure["cut"])[1]
    except ValueError as error:
        return [("cut", str(error))]
    largest = typical_displacement(T_max, measure["cut"], n)  # n / (pi cut)
    fold = f"they would fold {n} x {n} images onto themselves (T_max = {T_max:.4g})"
    if measure.get("deltas") is not None:
        above = [d for d in measure["deltas"] if d > largest * (1 + 1e-9)]
        if above:
            return [
                ("deltas", f"{above} px exceed {largest:.3g} px, the largest smooth one: {fold}")
            ]
    elif isinstance(measure.get("temperatures"), list):
        above = [T for T in measure["temperatures"] if T > T_max * (1 + 1e-9)]
        if above:
            return [("temperatures", f"{above} are above T_max: {fold}")]
    return []


def given_conflicts(measure: Mapping) -> list[tuple[str, str]]:
    """``(key, problem)`` for measure settings given together that exclude each other (the
    defaults filled in, one of them would be silently ignored)."""
    if all(measure.get(key) is not None for key in ("temperatures", "deltas")):
        return [("deltas", "set either temperatures or deltas, not both")]
    return []


def measure_conflicts(
    measure: Mapping, shape=None, training: Mapping | None = None
) -> list[tuple[str, str]]:
    """``(key, problem)`` for each measure setting that another rules out, or the data (a
    ``DataShape``, when given), or the checkpoints a training keeps (its resolved settings, when
    given)."""
    found = []
    moves_in_blocks = measure["block"] is None or measure["deformation"] == "pixel_move"
    if not moves_in_blocks:
        found.append(("block", "blocks apply to deformation 'pixel_move' only"))
    if shape is not None:
        if measure["probes"] > shape.n_test:
            found.append(
                (
                    "probes",
                    f"{measure['probes']} probes, but the test set has {shape.n_test} images",
                )
            )
        if measure["deformation"] == "diffeo" and shape.dims != 2:
            found.append(("deformation", "'diffeo' needs images; use 'pixel_move' on 1-D data"))
        elif measure["deformation"] == "diffeo":
            found += _fold_conflicts(measure, shape.input_size)
        if measure["block"] is not None and moves_in_blocks and shape.dims != 1:
            found.append(("block", "blocks of pixel moves apply to 1-D signals only"))
        if measure["deformation"] == "pixel_move" and not shape.sparse:
            found.append(
                (
                    "deformation",
                    "'pixel_move' moves every non-zero value, which suits inputs of a few active "
                    "pixels (the scale-detection tasks), not these images: use 'diffeo'",
                )
            )
    if training is not None:
        kept = {"init", "best", "last"} | {f"epoch_{e}" for e in training["save_epochs"]}
        missing = [c for c in measure["checkpoints"] if c not in kept]
        if missing:
            found.append(
                (
                    "checkpoints",
                    f"{missing} are not kept; list their epochs in training.save_epochs "
                    f"(kept: {sorted(kept)})",
                )
            )
        epochs = [c for c in measure["checkpoints"] if c.startswith("epoch_") and c in kept]
        if training["stop_at_zero_loss"] and epochs:
            found.append(
                (
                    "checkpoints",
                    f"{epochs}: training.stop_at_zero_loss may end the training before "
                    "these epochs; measure 'best' or 'last', or turn the stop off",
                )
            )
    return found


def _path(where: str, path) -> str:
    parts = [where] if where else []
    parts += [f"[{p}]" if isinstance(p, int) else str(p) for p in path]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, made specific where it is vague (unknown keys, failed branches)."""
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        return f"{error.message}; the keys here are {known}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        reasons = sorted({e.message for e in error.context})
        return f"{error.instance!r} is not valid here: " + "; or ".join(reasons)
    return error.message


_CUT = object()


def _finite_only(value):
    """``value`` without the keys holding a non-finite number, or a list holding one."""
    if isinstance(value, float) and not math.isfinite(value):
        return _CUT
    if isinstance(value, dict):
        kept = {key: _finite_only(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item is not _CUT}
    if isinstance(value, list):
        items = [_finite_only(item) for item in value]
        return _CUT if any(item is _CUT for item in items) else items
    return value


def _non_finite(instance, where: str, path=()) -> Iterator[tuple[str, float]]:
    if isinstance(instance, float) and not math.isfinite(instance):
        yield _path(where, path), instance
    elif isinstance(instance, Mapping):
        for key, value in instance.items():
            yield from _non_finite(value, where, (*path, key))
    elif isinstance(instance, list):
        for index, value in enumerate(instance):
            yield from _non_finite(value, where, (*path, index))
