# Configuration checks and input functions. The config is validated before any job starts;
# every job receives only its own settings, as a canonical dict, so Snakemake's params trigger
# reruns exactly the jobs whose settings changed.
import json
import os
import shutil
from pathlib import Path

import jsonschema
import yaml
from snakemake.utils import validate

SCHEMA_PATH = workflow.source_path("../schemas/config.schema.yaml")
validate(config, SCHEMA_PATH, set_default=False)
SCHEMA = yaml.safe_load(Path(SCHEMA_PATH).read_text())

# Jobs import the diffsens library of this checkout, whatever environment runs them (the
# project's .venv, a conda env made from environment.yml, a cluster node). The variable is set
# here, never read, so it needs no envvars assertion.
os.environ.update(PYTHONPATH=str(Path(workflow.basedir).parent / "src"))

RESULTS = "results"
NAME = r"[A-Za-z0-9_.\-]+"  # dataset, experiment and variant names (the schema checks them too)
CHECKPOINTS = f"{RESULTS}/train/{{experiment}}/{{variant}}/seed~{{seed}}/checkpoints"
HISTORY = f"{RESULTS}/train/{{experiment}}/{{variant}}/seed~{{seed}}/history.nc"
SENSITIVITY = (
    f"{RESULTS}/measure/{{experiment}}/{{variant}}/seed~{{seed}}/sensitivity.nc"
)
CUBE = f"{RESULTS}/cubes/{{experiment}}/{{variant}}.nc"
# Rules that use a GPU ask for one only where this machine has one; the default profile makes
# `gpu` a semaphore of 1, the SLURM profile asks every training and measuring job for a GPU.
LOCAL_GPU = int(shutil.which("nvidia-smi") is not None)


wildcard_constraints:
    experiment=NAME,
    variant=NAME,
    dataset=NAME,
    seed=r"\d+",


class ConfigError(ValueError):
    """A config that passes the schema but contradicts itself."""


def defaults(section):
    """The schema's default of every key of a section (training, measure)."""
    properties = SCHEMA["$defs"][section]["properties"]
    return {key: spec["default"] for key, spec in properties.items()}


def canonical(value):
    """Same settings, same representation: sorted keys, JSON types only."""
    return json.loads(json.dumps(value, sort_keys=True))


def dataset_settings(name):
    """The dataset's source and every setting, defaults filled in from the schema."""
    entry = config["datasets"][name]
    for branch in SCHEMA["$defs"]["dataset"]["allOf"]:
        if jsonschema.Draft202012Validator(branch["if"]).is_valid(entry):
            properties = branch["then"]["properties"]
            filled = {
                k: s["default"] for k, s in properties.items() if isinstance(s, dict)
            }
            return canonical({**filled, **entry})
    raise ConfigError(f"dataset {name!r}: unknown source {entry.get('source')!r}")


def resolve_variant(experiment, variant):
    """Schema defaults <- experiment settings <- variant overrides, checked for consistency."""
    exp = config["experiments"][experiment]
    overrides = exp["variants"][variant] or {}
    where = f"experiments.{experiment}.variants.{variant}"
    settings = {
        "model": {**exp.get("model", {}), **overrides.get("model", {})},
        "training": {
            **defaults("training"),
            **exp.get("training", {}),
            **overrides.get("training", {}),
        },
        "measure": {
            **defaults("measure"),
            **exp.get("measure", {}),
            **overrides.get("measure", {}),
        },
    }
    if "name" not in settings["model"]:
        raise ConfigError(
            f"{where}: no model name (set model.name in the experiment or the variant)"
        )
    source = config["datasets"][exp["dataset"]]["source"]
    binary = source.startswith("scale_detection")
    if binary != (settings["training"]["loss"] == "hinge"):
        raise ConfigError(
            f"{where}: training.loss must be 'hinge' for the +1/-1 labels of scale_detection "
            f"datasets and 'cross_entropy' for class labels; dataset {exp['dataset']!r} is {source}"
        )
    measure = settings["measure"]
    if source == "scale_detection_1d" and measure["deformation"] != "pixel_move":
        raise ConfigError(f"{where}: 1-D inputs need measure.deformation 'pixel_move'")
    if measure["deformation"] == "pixel_move":
        measure["temperatures"] = None  # one fixed move: no temperature axis to sweep
    saved = {f"epoch_{e}" for e in settings["training"]["save_epochs"]} | {
        "init",
        "best",
        "last",
    }
    missing = [c for c in measure["checkpoints"] if c not in saved]
    if missing:
        raise ConfigError(
            f"{where}: measure.checkpoints {missing} are not kept; list their epochs in "
            f"training.save_epochs (kept: {sorted(saved)})"
        )
    return canonical(settings)


for _experiment, _exp in config["experiments"].items():
    if _exp["dataset"] not in config["datasets"]:
        raise ConfigError(
            f"experiments.{_experiment}.dataset: {_exp['dataset']!r} is not one of the datasets "
            f"{sorted(config['datasets'])}"
        )
    for _variant in _exp["variants"]:
        resolve_variant(_experiment, _variant)


def top_level(section):
    """A top-level section of the config with the schema's defaults filled in."""
    properties = SCHEMA["properties"][section]["properties"]
    return canonical(
        {key: spec["default"] for key, spec in properties.items()}
        | config.get(section, {})
    )


FIGURES = top_level("figures")
ANALYSIS = top_level("analysis")
THEORY = top_level("theory")
SPECTRA = f"{RESULTS}/spectra/{{experiment}}/{{variant}}.nc"
FITS = f"{RESULTS}/fits/{{experiment}}"
EXPERIMENT_FIGURES = (
    "layerwise",
    "temperatures",
    "error_vs_sensitivity",
    "spectra",
    "depth_laws",
)


def seeds(experiment):
    return config["experiments"][experiment].get("seeds", [0])


def variants(experiment):
    return list(config["experiments"][experiment]["variants"])


def dataset_file(wildcards):
    return f"{RESULTS}/data/{config['experiments'][wildcards.experiment]['dataset']}.pt"


def train_settings(wildcards):
    settings = resolve_variant(wildcards.experiment, wildcards.variant)
    training = {**settings["training"], "seed": int(wildcards.seed)}
    return canonical({"model": settings["model"], "training": training})


def measure_settings(wildcards):
    settings = resolve_variant(wildcards.experiment, wildcards.variant)["measure"]
    return canonical({**settings, "seed": int(wildcards.seed)})


def collect_inputs(wildcards):
    return expand(
        SENSITIVITY,
        experiment=wildcards.experiment,
        variant=wildcards.variant,
        seed=seeds(wildcards.experiment),
    )


def collect_settings(wildcards):
    exp = config["experiments"][wildcards.experiment]
    return canonical(
        {
            "experiment": wildcards.experiment,
            "variant": wildcards.variant,
            "dataset": dataset_settings(exp["dataset"]),
            "seeds": seeds(wildcards.experiment),
            **resolve_variant(wildcards.experiment, wildcards.variant),
        }
    )


def experiment_cubes(wildcards):
    return expand(
        CUBE, experiment=wildcards.experiment, variant=variants(wildcards.experiment)
    )


def experiment_spectra(wildcards):
    return expand(
        SPECTRA, experiment=wildcards.experiment, variant=variants(wildcards.experiment)
    )


def spectra_inputs(wildcards):
    return expand(
        CHECKPOINTS,
        experiment=wildcards.experiment,
        variant=wildcards.variant,
        seed=seeds(wildcards.experiment),
    )


def spectra_settings(wildcards):
    settings = resolve_variant(wildcards.experiment, wildcards.variant)
    return canonical(
        {
            "seeds": seeds(wildcards.experiment),
            "checkpoints": settings["measure"]["checkpoints"],
        }
    )


def fit_settings(wildcards):
    law = config["experiments"][wildcards.experiment].get("law", "auto")
    return canonical(
        {**ANALYSIS, "law": law, "variants": variants(wildcards.experiment)}
    )


def figure_files(name, folder="{experiment}"):
    """Figure paths in every configured format; folder "" for the experiment-free figures."""
    prefix = f"{RESULTS}/figures/{folder}/" if folder else f"{RESULTS}/figures/"
    return [f"{prefix}{name}.{fmt}" for fmt in FIGURES["formats"]]


def figure_output(name, caption, category, folder="{experiment}"):
    caption = f"../report/{caption}.rst"
    paths = figure_files(name, folder)
    return [report(p, caption=caption, category=category) for p in paths]


def figure_settings(wildcards):
    return canonical({**FIGURES, "temperature": ANALYSIS["temperature"]})


def final_outputs():
    outputs = []
    for experiment in config["experiments"]:
        outputs += expand(CUBE, experiment=experiment, variant=variants(experiment))
        outputs += [FITS.format(experiment=experiment) + ".csv"]
        for name in EXPERIMENT_FIGURES:
            outputs += [f.format(experiment=experiment) for f in figure_files(name)]
    outputs += [f"{RESULTS}/theory/fits.csv"]
    outputs += figure_files("constant_filters", "") + figure_files("examples", "")
    return outputs
