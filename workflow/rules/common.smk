# The config, checked and resolved by the library before any job starts (every problem at once,
# each named by its path in the config), and the input functions. Every job receives only its
# own settings, as a canonical dict, so Snakemake's params trigger reruns of exactly the jobs
# whose settings changed.
import functools
import hashlib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

from snakemake.utils import update_config

# The workflow and its jobs import the diffsens library of this checkout, whatever environment
# runs them (the project's .venv, a conda env made from environment.yml, a cluster node), and
# keep the user's own PYTHONPATH after it (their model modules, package.module:function).
SOURCE = str(Path(workflow.basedir).parent / "src")
sys.path.insert(0, SOURCE)
USER_PATHS = [
    p for p in os.getenv("PYTHONPATH", "").split(os.pathsep) if p and p != SOURCE
]
os.environ.update(PYTHONPATH=os.pathsep.join([SOURCE, *USER_PATHS]))

from diffsens.config import Config, command_line_config, read_yaml
from diffsens.runtime import mark_settings, settings_digest
from diffsens.settings import SettingsError, displacement_count

# The embedded default, unless a config file was given on the command line (--configfile);
# `--config KEY=VALUE` alone edits the default. A YAML error names its line (Snakemake's own
# message does not).
if not workflow.overwrite_configfiles:
    read_yaml("config/config.yaml")

    configfile: "config/config.yaml"


# `--config KEY=VALUE` values read as YAML, as in a config file (Snakemake's own reading drops
# quotes, "007" becoming 7, and leaves nested values strings).
update_config(config, command_line_config(workflow.config_settings.config_args or []))
# The options a job's advice must repeat for `snakemake --forcerun FILE` to mean this config.
RERUN = [f"--configfile={path}" for path in workflow.overwrite_configfiles]
if workflow.config_settings.config_args:
    RERUN += ["--config", *workflow.config_settings.config_args]
os.environ.update(DIFFSENS_RERUN_OPTIONS=shlex.join(RERUN))
# Checked whole by the process that builds the DAG; a process running one of its jobs (on a
# cluster node, say) re-reads it without building every network again. The calibration table
# the config names may be missing until `snakemake calibration` makes it: only the jobs whose
# time limits come from it (job_costs) need it.
CONFIG = Config(config, against_data=workflow.is_main_process, calibration_made=False)

RESULTS = CONFIG.results
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
    "training",
    "layerwise",
    "compare",
    "temperatures",  # only for experiments measured at several temperatures
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


def settings_file(rule):
    """The input function of a rule's settings file: a file per job holding the digest of the
    job's settings (its params), dated so that the job reruns when it last succeeded with other
    settings, or never did (`diffsens.runtime.mark_settings`). What a result was made with
    travels with the results tree: without `.snakemake/`, or copied, it still reruns what its
    settings no longer match."""

    def path(wildcards):
        parts = [f"{key}~{value}" for key, value in sorted(wildcards.items())] or [
            "job"
        ]
        file = Path(RESULTS, ".settings", rule, *parts[:-1], f"{parts[-1]}.json")
        if workflow.is_main_process:
            params = workflow.get_rule(rule).params.items()
            settings = {k: v(wildcards) if callable(v) else v for k, v in params}
            mark_settings(file, settings_digest(settings))
        return str(file)

    return path


def variants(experiment):
    return CONFIG.variants(experiment)


# Each job's `upstream` param digests every setting its inputs were made from. A job thus reruns
# when any of them changes, even where Snakemake would not look: when an upstream job failed
# after a settings change and its outputs were removed, the old downstream results must not pass
# for results of the new settings.
def fingerprint(*settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[
        :16
    ]


def made_by_train(experiment, variant, seed):
    settings = CONFIG.variant(experiment, variant)
    dataset = CONFIG.data_identity(CONFIG.dataset_of(experiment))
    return [dataset, settings["model"], settings["training"], int(seed)]


def made_by_measure(experiment, variant, seed):
    measure = CONFIG.variant(experiment, variant)["measure"]
    return [made_by_train(experiment, variant, seed), measure]


def made_by_collect(experiment, variant):
    return [made_by_measure(experiment, variant, s) for s in CONFIG.seeds(experiment)]


def made_by_spectra(experiment, variant):
    checkpoints = CONFIG.variant(experiment, variant)["measure"]["checkpoints"]
    trainings = [
        made_by_train(experiment, variant, s) for s in CONFIG.seeds(experiment)
    ]
    return [trainings, checkpoints]


def made_by_cubes(experiment):
    return [made_by_collect(experiment, v) for v in variants(experiment)]


def upstream_of_train(wildcards):
    return fingerprint(CONFIG.data_identity(CONFIG.dataset_of(wildcards.experiment)))


def upstream_of_measure(wildcards):
    return fingerprint(
        made_by_train(wildcards.experiment, wildcards.variant, wildcards.seed)
    )


def upstream_of_collect(wildcards):
    return fingerprint(made_by_collect(wildcards.experiment, wildcards.variant))


def upstream_of_spectra(wildcards):
    return fingerprint(made_by_spectra(wildcards.experiment, wildcards.variant))


def upstream_of_cubes(wildcards):
    return fingerprint(made_by_cubes(wildcards.experiment))


def upstream_of_depth_laws(wildcards):
    e = wildcards.experiment
    return fingerprint(made_by_cubes(e), fits_of(e))


def experiment_histories(wildcards):
    e = wildcards.experiment
    return [
        HISTORY.format(experiment=e, variant=v, seed=s)
        for v in variants(e)
        for s in CONFIG.seeds(e)
    ]


def training_figure_settings(wildcards):
    e = wildcards.experiment
    return {
        **figure_settings(wildcards),
        "variants": variants(e),
        "seeds": CONFIG.seeds(e),
    }


def upstream_of_histories(wildcards):
    e = wildcards.experiment
    return fingerprint(
        [made_by_train(e, v, s) for v in variants(e) for s in CONFIG.seeds(e)]
    )


def upstream_of_spectra_figure(wildcards):
    e = wildcards.experiment
    return fingerprint([made_by_spectra(e, v) for v in variants(e)])


def upstream_of_summary(wildcards):
    experiments = CONFIG.raw["experiments"]
    fits = [fits_of(e) for e in experiments]
    return fingerprint([made_by_cubes(e) for e in experiments], fits)


def upstream_of_claims(wildcards):
    experiments = CONFIG.raw["experiments"]
    spectra = [[made_by_spectra(e, v) for v in variants(e)] for e in experiments]
    return fingerprint([made_by_cubes(e) for e in experiments], spectra)


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


def fits_of(experiment):
    return {
        **CONFIG.analysis,
        "law": CONFIG.law(experiment),
        "variants": variants(experiment),
        "error_ceiling": CONFIG.error_ceiling(experiment),
    }


def fit_settings(wildcards):
    return fits_of(wildcards.experiment)


def figure_files(name, folder="{experiment}"):
    """Figure paths in every configured format; folder "" for the experiment-free figures."""
    prefix = f"{RESULTS}/figures/{folder}/" if folder else f"{RESULTS}/figures/"
    return [f"{prefix}{name}.{fmt}" for fmt in CONFIG.figures["formats"]]


# The report groups its files by experiment (the claims, the rest of the run as a whole and the
# constant-filter theory have a group each), then by kind (figures, tables); labels say what
# each file shows. The report's menu sorts the groups: the claims come first.
REPORT_CLAIMS = "Claims"
REPORT_RUN = "Whole run"
REPORT_THEORY = "Constant-filter theory"
REPORT_EXPERIMENT = "Experiment {experiment}"


def figure_output(name, caption, what, folder="{experiment}", category=None):
    """A figure's paths marked for the report: in its experiment's group (or ``category``, for
    the experiment-free figures), among the figures, labelled by ``what`` it shows."""
    caption = f"../report/{caption}.rst"
    group = {"category": category or REPORT_EXPERIMENT, "subcategory": "Figures"}
    formats = CONFIG.figures["formats"]
    labels = [{"figure": what, "format": fmt} for fmt in formats]
    paths = figure_files(name, folder)
    return [report(p, caption, labels=l, **group) for p, l in zip(paths, labels)]


def figure_settings(wildcards):
    """Figure keys and the experiment's error ceiling (if any)."""
    settings = dict(CONFIG.figures)
    if "experiment" in wildcards.keys():
        settings["error_ceiling"] = CONFIG.error_ceiling(wildcards.experiment)
    return settings


def figure_settings_at_delta(wildcards):
    """The figure settings and the analysis displacement, for figures that read the cubes at it
    (so that editing it redraws only those)."""
    return {**figure_settings(wildcards), "delta": CONFIG.analysis["delta"]}


def compare_settings(wildcards):
    """The settings at delta and the keys of the experiment's grid, which lay out the figure."""
    grid = CONFIG.raw["experiments"][wildcards.experiment].get("grid") or {}
    return {**figure_settings_at_delta(wildcards), "grid": list(grid)}


def summary_inputs(wildcards):
    return {
        "cubes": [
            CUBE.format(experiment=e, variant=v)
            for e in CONFIG.raw["experiments"]
            for v in variants(e)
        ],
        "fits": [FITS.format(experiment=e) + ".nc" for e in CONFIG.raw["experiments"]],
    }


def summary_settings(wildcards):
    experiments = CONFIG.raw["experiments"]
    return {
        "delta": CONFIG.analysis["delta"],
        "experiments": {e: variants(e) for e in experiments},
        "error_ceilings": {e: CONFIG.error_ceiling(e) for e in experiments},
    }


def claims_inputs(wildcards):
    experiments = CONFIG.raw["experiments"]
    every = [(e, v) for e in experiments for v in variants(e)]
    return {
        "cubes": [CUBE.format(experiment=e, variant=v) for e, v in every],
        "spectra": [FILTER_ENERGY.format(experiment=e, variant=v) for e, v in every],
    }


def claims_analysis():
    """The analysis settings the claims read: the intervals' level, and the displacement at
    which their table at a glance and their figure show them."""
    return {key: CONFIG.analysis[key] for key in ("delta", "confidence")}


def claims_settings(wildcards):
    """The experiments' variants (in the order of the inputs) and error ceilings."""
    experiments = CONFIG.raw["experiments"]
    return {
        "experiments": {e: variants(e) for e in experiments},
        "error_ceilings": {e: CONFIG.error_ceiling(e) for e in experiments},
        **claims_analysis(),
    }


def claims_figure_settings(wildcards):
    return {**figure_settings(wildcards), **claims_analysis()}


@functools.cache
def job_costs():
    """The seconds of every training and measurement, for the time limits a cluster asks for:
    from the config's calibration table, else from the conservative model (docs/cluster.md).
    """
    from diffsens.cost import Costs, read_calibration

    if CONFIG.calibration_problem():
        raise SettingsError([CONFIG.calibration_problem()])
    path = CONFIG.calibration
    return Costs(CONFIG, read_calibration(path) if path else None)


def train_runtime(wildcards, attempt):
    """Minutes for one training: every epoch up to the cap (docs/cluster.md)."""
    from diffsens.cost import minutes

    return minutes(
        job_costs().training_s(wildcards.experiment, wildcards.variant), attempt
    )


def measure_runtime(wildcards, attempt):
    """Minutes for measuring one training's checkpoints in every condition."""
    from diffsens.cost import minutes

    job = job_costs().variant(wildcards.experiment, wildcards.variant)
    return minutes(job["measurements"] * job["measure_s"], attempt)


def job_memory(wildcards, attempt):
    """Megabytes of host memory for one training or measurement: its dataset's size."""
    from diffsens.cost import memory_mb

    job = job_costs().variant(wildcards.experiment, wildcards.variant)
    return memory_mb(job["data_mb"], attempt)


def calibration_memory(wildcards, attempt):
    """Megabytes of host memory for calibrating on one dataset (random inputs of its shape)."""
    from diffsens.cost import data_mb, memory_mb

    return memory_mb(data_mb(CONFIG.shape(wildcards.dataset)), attempt)


# On a cluster, short trainings share allocations: the SLURM profile puts up to a set number
# of this group in one job (group-components), run one after another on its one GPU.
SHORT_TRAININGS = "short_trainings"


def train_group(wildcards):
    """SHORT_TRAININGS for a training estimated at most SHORT_TRAINING_S, else none."""
    from diffsens.cost import SHORT_TRAINING_S

    seconds = job_costs().training_s(wildcards.experiment, wildcards.variant)
    return SHORT_TRAININGS if seconds <= SHORT_TRAINING_S else None


def cost_settings(wildcards=None):
    """The projected cost of the run, one row per network (what `diffsens cost` prints)."""
    from diffsens.cost import cost_line

    costs = job_costs()
    table = costs.table()
    return {
        "rows": table.to_dict("records"),
        "total": cost_line(table, costs.calibration),
    }


def log_cost():
    """Say what the run costs, or that the calibration it is costed from is still to make."""
    if CONFIG.calibration_problem():
        logger.info(
            f"diffsens: the calibration table {CONFIG.calibration!r} is not made yet: "
            "`snakemake calibration` makes it; a run that needs it stops before its first job"
        )
    else:
        logger.info(f"diffsens: this run costs {cost_settings()['total']}")


def calibrated_datasets():
    """The datasets that some experiment trains on, each calibrated by one job."""
    return sorted({CONFIG.dataset_of(e) for e in CONFIG.raw["experiments"]})


def calibration_settings(wildcards):
    """The networks trained on one dataset, with their batch sizes and its shape."""
    from diffsens.cost import calibration_networks

    return {"networks": calibration_networks(CONFIG, [wildcards.dataset])}


def swept(experiment):
    """Whether some variant is measured at several temperatures (smooth diffeomorphisms)."""
    return any(
        displacement_count(CONFIG.variant(experiment, v)["measure"]) > 1
        for v in variants(experiment)
    )


def final_outputs():
    outputs = []
    for experiment in CONFIG.raw["experiments"]:
        outputs += expand(CUBE, experiment=experiment, variant=variants(experiment))
        outputs += [FITS.format(experiment=experiment) + ".csv"]
        for name in EXPERIMENT_FIGURES:
            if name != "temperatures" or swept(experiment):
                outputs += [f.format(experiment=experiment) for f in figure_files(name)]
    outputs += [
        f"{RESULTS}/summary.csv",
        f"{RESULTS}/claims.csv",
        f"{RESULTS}/cost.csv",
    ]
    outputs += figure_files("claims", "")
    if CONFIG.theory[
        "networks"
    ]:  # the constant-filter model, and the figure illustrating it
        outputs += [f"{RESULTS}/theory/fits.csv"]
        outputs += figure_files("constant_filters", "") + figure_files("examples", "")
    return outputs
