"""The grid-cost tool of benchmarks/ counts a config's work by hand-checkable rules."""

import importlib.util

from diffsens.config import Config
from tests.workflow_helpers import REPO, variant_count

spec = importlib.util.spec_from_file_location("grid_cost", REPO / "benchmarks" / "grid_cost.py")
grid_cost = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grid_cost)

CONFIG = {
    "datasets": {"digits": {"source": "mnist5k"}},
    "experiments": {
        "e": {
            "dataset": "digits",
            "seeds": [0, 1, 2],
            "model": {"name": "simple_cnn", "depth": 2},
            "training": {"epochs": 4},
            "measure": {"checkpoints": ["init", "best", "last"], "conditions": ["original"]},
            "variants": {"a": {}, "b": {"training": {"epochs": 10}}, "c": {"model": {"width": 8}}},
        }
    },
}


def test_counts_and_hours_follow_the_config():
    counts = grid_cost.grid_counts(Config(CONFIG, against_data=False))
    plain, narrow = "digits:simple_cnn(depth=2)", "digits:simple_cnn(depth=2, width=8)"
    assert counts == {  # a and b share a network; 3 seeds each; 3 checkpoints x 1 condition
        plain: {"trainings": 6, "epochs": 3 * 4 + 3 * 10, "measurements": 18},
        narrow: {"trainings": 3, "epochs": 12, "measurements": 9},
    }
    table = grid_cost.cost_table(counts, {plain: {"epoch_s": 60.0, "measure_s": 100.0}})
    hours = (42 * 60 + 18 * 100) / 3600
    assert f"| {hours:.2f} |" in table and f"| {hours:.1f} |" in table.splitlines()[-1]
    assert table.splitlines()[-1].startswith("| **total** | 9 | 54 | 27 |")


def test_the_paper_grid_is_counted_without_its_data():
    from diffsens.config import read_yaml

    raw = read_yaml(REPO / "config" / "paper.yaml")
    counts = grid_cost.grid_counts(Config(raw, against_data=False))

    expected = sum(len(e.get("seeds", [0])) * variant_count(e) for e in raw["experiments"].values())
    assert sum(row["trainings"] for row in counts.values()) == expected
