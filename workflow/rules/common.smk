# The config, checked and resolved by the library before any job starts (every problem at once,
# each named by its path in the config), and the input functions. Every job receives only its
# own settings, as a canonical dict, so Snakemake's params trigger reruns of exactly the jobs
# whose settings changed.
import os
import shutil
import sys
from pathlib import Path

from snakemake.utils import update_config

# The workflow and its jobs import the diffsens library of this checkout, whatever environment
# runs them (the project's .venv, a conda env made from environment.yml, a cluster node). The
# variable is set here, never read, so it needs no envvars assertion.
SOURCE = str(Path(workflow.basedir).parent / "src")
sys.path.insert(0, SOURCE)
os.environ.update(PYTHONPATH=SOURCE)

from diffsens.config import Config, read_yaml, typed

# The embedded default, unless a config file was given on the command line (--configfile);
# `--config KEY=VALUE` alone edits the default. A YAML error names its line (Snakemake's own
# message does not).
if not workflow.overwrite_configfiles:
    read_yaml("config/config.yaml")

    configfile: "config/config.yaml"


# Snakemake reads `--config` values nested in mappings as strings: give them their YAML types.
update_config(config, typed(workflow.config_settings.config))
# Checked whole by the process that builds the DAG; a process running one of its jobs (on a
# cluster node, say) re-reads it without building every network again.
CONFIG = Config(config, against_data=workflow.is_main_process)

RESULTS = "results"
NAME = r"[A-Za-z0-9_.\-]+"  # dataset, experiment and variant names (the schema checks them too)
CHECKPOINTS = f"{RESULTS}/train/{{experiment}}/{{variant}}/seed~{{seed}}/checkpoints"
HISTORY = f"{RESULTS}/train/{{experiment}}/{{variant}}/seed~{{seed}}/history.nc"
SENSITIVITY = (
    f"{RESULTS}/measure/{{experiment}}/{{variant}}/seed~{{seed}}/sensitivity.nc"
)
CUBE = f"{RESULTS}/cubes/{{experiment}}/{{variant}}.nc"
FILTER_ENERGY = f"{RESULTS}/spectra/{{experiment}}/{{variant}}.nc"
FITS = f"{RESULTS}/fits/{{experiment}}"
EXPERIMENT_FIGURES = (
    "layerwise",
    "temperatures",
    "error_vs_sensitivity",
    "spectra",
    "depth_laws",
)
# Rules that use a GPU ask for one only where this machine has one; the default profile makes
# `gpu` a semaphore of 1, the SLURM profile asks every training and measuring job for a GPU.
LOCAL_GPU = int(shutil.which("nvidia-smi") is not None)


wildcard_constraints:
    experiment=NAME,
    variant=NAME,
    dataset=NAME,
    seed=r"\d+",


def variants(experiment):
    return CONFIG.variants(experiment)


def dataset_file(wildcards):
    return f"{RESULTS}/data/{CONFIG.dataset_of(wildcards.experiment)}.pt"


def train_settings(wildcards):
    settings = CONFIG.variant(wildcards.experiment, wildcards.variant)
    return {
        "model": settings["model"],
        "training": settings["training"],
        "seed": int(wildcards.seed),
    }


def measure_settings(wildcards):
    settings = CONFIG.variant(wildcards.experiment, wildcards.variant)
    return {"measure": settings["measure"], "seed": int(wildcards.seed)}


def collect_inputs(wildcards):
    return expand(
        SENSITIVITY,
        experiment=wildcards.experiment,
        variant=wildcards.variant,
        seed=CONFIG.seeds(wildcards.experiment),
    )


def collect_settings(wildcards):
    return {
        "experiment": wildcards.experiment,
        "variant": wildcards.variant,
        "seeds": CONFIG.seeds(wildcards.experiment),
    }


def experiment_cubes(wildcards):
    return expand(
        CUBE, experiment=wildcards.experiment, variant=variants(wildcards.experiment)
    )


def experiment_spectra(wildcards):
    return expand(
        FILTER_ENERGY,
        experiment=wildcards.experiment,
        variant=variants(wildcards.experiment),
    )


def spectra_inputs(wildcards):
    return expand(
        CHECKPOINTS,
        experiment=wildcards.experiment,
        variant=wildcards.variant,
        seed=CONFIG.seeds(wildcards.experiment),
    )


def spectra_settings(wildcards):
    settings = CONFIG.variant(wildcards.experiment, wildcards.variant)
    return {
        "seeds": CONFIG.seeds(wildcards.experiment),
        "checkpoints": settings["measure"]["checkpoints"],
    }


def fit_settings(wildcards):
    return {
        **CONFIG.analysis,
        "law": CONFIG.law(wildcards.experiment),
        "variants": variants(wildcards.experiment),
    }


def figure_files(name, folder="{experiment}"):
    """Figure paths in every configured format; folder "" for the experiment-free figures."""
    prefix = f"{RESULTS}/figures/{folder}/" if folder else f"{RESULTS}/figures/"
    return [f"{prefix}{name}.{fmt}" for fmt in CONFIG.figures["formats"]]


def figure_output(name, caption, category, folder="{experiment}"):
    caption = f"../report/{caption}.rst"
    paths = figure_files(name, folder)
    return [report(p, caption=caption, category=category) for p in paths]


def figure_settings(wildcards):
    return {**CONFIG.figures, "temperature": CONFIG.analysis["temperature"]}


def final_outputs():
    outputs = []
    for experiment in CONFIG.raw["experiments"]:
        outputs += expand(CUBE, experiment=experiment, variant=variants(experiment))
        outputs += [FITS.format(experiment=experiment) + ".csv"]
        for name in EXPERIMENT_FIGURES:
            outputs += [f.format(experiment=experiment) for f in figure_files(name)]
    outputs += [f"{RESULTS}/theory/fits.csv"]
    outputs += figure_files("constant_filters", "") + figure_files("examples", "")
    return outputs
