"""The workflow config as the library reads it: YAML, command-line overrides, checks."""

import copy
import math

import pytest
import yaml

from diffsens.config import Config, command_line_config, read_yaml
from diffsens.settings import SettingsError
from tests.image_folder_fixture import write_image_folder
from tests.test_workflow import TINY


def test_command_line_values_get_their_yaml_types():
    # what snakemake --config "analysis={bootstrap: 200, confidence: 0.9}" x=true ... hands on
    args = ["analysis={bootstrap: 200, confidence: 0.9}", "x=true", "n=3", "names=[a, 1]"]
    assert command_line_config(args) == {
        "analysis": {"bootstrap": 200, "confidence": 0.9},
        "x": True,
        "n": 3,
        "names": ["a", 1],
    }
    assert command_line_config(['results="007"']) == {"results": "007"}  # quotes kept
    with pytest.raises(SettingsError, match="expected KEY=VALUE"):
        command_line_config(["bootstrap"])


def test_yaml_errors_name_file_line_and_column(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("datasets:\n  a: {source: mnist5k\nexperiments: {}\n")
    with pytest.raises(SettingsError, match=r"c\.yaml, line 3, column \d+: YAML syntax error"):
        read_yaml(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(SettingsError, match="a config is a mapping of keys"):
        read_yaml(path)


def test_resolved_variants_fill_defaults_and_merge_overrides():
    config = Config(TINY)
    b = config.variant("tiny", "b")
    assert b["model"] == {"name": "simple_cnn", "depth": 2, "width": 16, "pooling": "max"}
    assert b["training"]["lr"] == 0.005 and b["training"]["momentum"] == 0.9  # a default
    assert config.datasets["digits"] == {"source": "mnist5k", "n_test": 100, "seed": 0}
    assert config.shapes["digits"].n_test == 100 and config.seeds("tiny") == [0]
    assert config.figures["formats"] == ["png"] and config.analysis["confidence"] == 0.95


def test_checks_against_the_data_can_be_left_to_the_process_that_built_the_dag():
    broken = copy.deepcopy(TINY)
    broken["experiments"]["tiny"]["model"]["widht"] = 8
    broken["experiments"]["tiny"]["measure"]["probes"] = 500
    with pytest.raises(SettingsError, match="2 problem"):
        Config(broken)
    assert Config(broken, against_data=False).shapes == {}  # no torch, no networks built
    broken["experiments"]["tiny"]["training"]["lr"] = "fast"  # the schema is always checked
    with pytest.raises(SettingsError, match=r"training\.lr: 'fast' is not of type 'number'"):
        Config(broken, against_data=False)


def test_contradicting_measure_and_theory_settings_are_named():
    broken = copy.deepcopy(TINY)
    broken["experiments"]["tiny"]["measure"].update(deformation="shift", block=4)
    broken["theory"] = {"networks": [{"dim": 1, "filter_size": 2, "stride": 3, "depth": 2}]}
    broken["theory"]["networks"][0]["inputs"] = "lattice"
    with pytest.raises(SettingsError) as error:
        Config(broken, against_data=False)
    assert error.value.problems == [
        "theory.networks[0].inputs: the lattice needs stride 1 or stride = filter size",
        "experiments.tiny.measure.block: blocks apply to deformation 'pixel_move' only",
    ]


def test_the_authors_training_settings_are_checked_before_any_job():
    broken = copy.deepcopy(TINY)
    broken["experiments"]["tiny"].update(model={"name": "lenet"}, variants={"a": {}})
    broken["experiments"]["tiny"]["training"].update(
        lr_per_width=True, zero_loss_multiple=500, validation=4900
    )
    with pytest.raises(SettingsError) as error:
        Config(broken)
    assert error.value.problems == [
        "experiments.tiny.training.zero_loss_multiple: has no effect without "
        "stop_at_zero_loss: true",
        "experiments.tiny.training.validation: 4900 validation examples leave none of the 4900 "
        "training examples to train on",
        "experiments.tiny.training.lr_per_width: model 'lenet' has no width option",
    ]


def test_the_shipped_configs_are_valid():
    from tests.workflow_helpers import REPO

    for name in ("config.yaml", "paper.yaml"):
        Config(read_yaml(REPO / "config" / name))
    assert yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_the_own_data_example_is_valid_on_a_folder_of_images(tmp_path):
    from tests.workflow_helpers import REPO

    own = read_yaml(REPO / "config" / "own.yaml")
    with pytest.raises(SettingsError, match=r"datasets\.digits: image folder .* does not exist"):
        Config(
            {**own, "datasets": {"digits": {**own["datasets"]["digits"], "root": str(tmp_path)}}}
        )
    own["datasets"]["digits"]["root"] = str(write_image_folder(tmp_path / "images"))
    own["experiments"]["own"]["measure"]["probes"] = 6  # the folder's test images
    config = Config(own)
    assert config.variant("own", "resnet18")["model"]["name"] == "torchvision:resnet18"
    assert config.shapes["digits"].in_channels == 3 and config.shapes["digits"].input_size == 28


def test_variants_keep_the_order_of_the_config():
    config = copy.deepcopy(TINY)
    config["experiments"]["tiny"]["variants"] = {"z": {}, "a": {}, "m": {}}
    assert Config(config).variants("tiny") == ["z", "a", "m"]


KEYWORDS = {
    "$schema",
    "$defs",
    "$ref",
    "description",
    "default",
    "type",
    "enum",
    "const",
    "properties",
    "additionalProperties",
    "required",
    "items",
    "minItems",
    "uniqueItems",
    "minProperties",
    "propertyNames",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "oneOf",
    "anyOf",
    "allOf",
    "if",
    "then",
}


def test_every_schema_node_uses_only_json_schema_keywords():
    """An unquoted comma in a YAML flow mapping silently cuts a description into stray keys."""
    from diffsens.settings import schema

    def walk(node, path):
        if isinstance(node, dict):
            named = path.endswith(("properties", "$defs"))
            for key, value in node.items():
                assert named or key in KEYWORDS, f"{path}: stray key {key!r}"
                if key != "default":
                    walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(schema(), "schema")


def test_a_grid_spells_out_its_variants_by_name():
    raw = {
        "datasets": {"d": {"source": "mnist5k"}},
        "experiments": {
            "e": {
                "dataset": "d",
                "model": {"name": "simple_cnn", "depth": 2},
                "grid": {"model.pooling": ["max", "avg"], "training.training_noise": [0, 0.1]},
                "variants": {"plain": {}},
            }
        },
    }
    config = Config(raw, against_data=False)
    assert config.variants("e") == [
        "plain",
        "poolingmax_training_noise0",
        "poolingmax_training_noise0.1",
        "poolingavg_training_noise0",
        "poolingavg_training_noise0.1",
    ]
    made = config.variant("e", "poolingavg_training_noise0.1")
    assert made["model"]["pooling"] == "avg" and made["training"]["training_noise"] == 0.1
    assert made["model"]["depth"] == 2  # the experiment's settings still apply
    raw["experiments"]["e"]["variants"] = {"poolingmax_training_noise0": {}}
    with pytest.raises(SettingsError, match="'poolingmax_training_noise0' is named twice"):
        Config(raw, against_data=False)
    raw["experiments"]["e"]["grid"] = {"training.epochs": [0]}
    with pytest.raises(SettingsError, match=r"variants\.epochs0\.training\.epochs: 0 is less"):
        Config(raw, against_data=False)
    # a grid over a list-valued setting: its items name the variant
    raw["experiments"]["e"]["grid"] = {"measure.deltas": [[0.5, 1], [2]]}
    config = Config(raw, against_data=False)
    assert config.variants("e")[1:] == ["deltas0.5-1", "deltas2"]
    assert config.variant("e", "deltas0.5-1")["measure"]["deltas"] == [0.5, 1]
    # a value that cannot name a variant is blamed on the grid, not on variants never written
    raw["experiments"]["e"]["grid"] = {"model.name": ["vgg11", "torchvision:resnet 18"]}
    with pytest.raises(SettingsError) as error:
        Config(raw, against_data=False)
    assert error.value.problems[0].startswith(
        "experiments.e.grid.model.name: the value 'torchvision:resnet 18' cannot name a variant"
    )


def test_outside_models_are_checked_against_their_data_and_named_in_grids(tmp_path):
    write_image_folder(tmp_path / "images")
    raw = {
        "datasets": {
            "own": {"source": "image_folder", "root": str(tmp_path / "images")},
            "digits": {"source": "mnist5k"},
        },
        "experiments": {
            "e": {
                "dataset": "own",
                "measure": {"probes": 4},
                "grid": {"model.name": ["torchvision:resnet18", "vgg11"]},
            },
            "f": {
                "dataset": "digits",
                "variants": {"tv": {"model": {"name": "torchvision:resnet18", "widht": 2}}},
            },
        },
    }
    with pytest.raises(SettingsError) as caught:
        Config(raw)
    assert caught.value.problems == [
        "experiments.f.variants.tv.model.widht: model 'torchvision:resnet18' with options "
        "{'widht': 2}: ResNet.__init__() got an unexpected keyword argument 'widht'"
    ]
    raw["experiments"]["f"]["variants"]["tv"]["model"] = {"name": "torchvision:resnet18"}
    with pytest.raises(SettingsError, match=r"cannot take inputs of shape \(1, 1, 28, 28\)"):
        Config(raw)
    del raw["experiments"]["f"]
    config = Config(raw)
    assert config.variants("e") == ["resnet18", "vgg11"]
    assert config.variant("e", "resnet18")["model"] == {"name": "torchvision:resnet18"}
    raw["experiments"]["e"]["grid"]["model.name"] = ["torchvision:x"]
    with pytest.raises(SettingsError, match="torchvision has no classification model 'x'"):
        Config(raw)


def test_the_identity_of_your_own_images_follows_their_files(tmp_path):
    root = write_image_folder(tmp_path)
    raw = {
        "datasets": {
            "own": {"source": "image_folder", "root": str(root)},
            "d": {"source": "mnist5k"},
        },
        "experiments": {"e": {"dataset": "own", "model": {"name": "fc2"}, "variants": {"a": {}}}},
    }

    def identity():
        return Config(raw, against_data=False).data_identity("own")

    before = identity()
    assert before == {**Config(raw, against_data=False).datasets["own"], "files": before["files"]}
    assert identity() == before  # the same files
    (root / "train" / "cat" / "9.png").write_bytes((root / "train" / "cat" / "0.png").read_bytes())
    added = identity()
    assert added != before
    (root / "train" / "cat" / "0.png").write_bytes(b"replaced")
    assert identity() != added
    assert Config(raw, against_data=False).data_identity("d") == {
        "source": "mnist5k",
        "n_test": 1000,
        "seed": 0,
    }


def test_settings_that_would_measure_or_prepare_wrongly_are_refused_before_any_job(tmp_path):
    """Three silent failures a user met, now config errors naming the key and the fix."""
    from tests.workflow_helpers import REPO

    own = read_yaml(REPO / "config" / "own.yaml")
    own["datasets"]["digits"].update(root=str(write_image_folder(tmp_path / "images")))
    own["experiments"]["own"]["measure"]["probes"] = 6
    # a centre crop larger than the resized images pads them with constant borders
    own["datasets"]["digits"].update(resize=10, crop=28)
    with pytest.raises(SettingsError, match=r"datasets\.digits: crop 28 is larger than resize 10"):
        Config(own)
    # images of 4 pixels have no smooth deformations (T_min > T_max)
    own["datasets"]["digits"].update(resize=4, crop=4)
    with pytest.raises(SettingsError) as error:
        Config(own)
    assert error.value.problems[0].startswith(
        "experiments.own.measure.cut (the default): images of 4 x 4 pixels have no smooth "
        "deformations at cut-off 3.0"
    )
    # displacements that fold the images onto themselves: above n / (pi cut) px, or T_max
    folding = copy.deepcopy(TINY)
    folding["experiments"]["tiny"]["measure"].pop("temperatures", None)
    folding["experiments"]["tiny"]["measure"]["deltas"] = [1, 28 / (3 * math.pi), 3.5]
    with pytest.raises(SettingsError) as error:
        Config(folding)
    assert error.value.problems == [
        "experiments.tiny.measure.deltas: [3.5] px exceed 2.97 px, the largest smooth one: they "
        "would fold 28 x 28 images onto themselves (T_max = 0.01305)"
    ]
    folding["experiments"]["tiny"]["measure"] = {"temperatures": [0.001, 0.02], "probes": 20}
    with pytest.raises(SettingsError, match=r"measure\.temperatures: \[0\.02\] are above T_max"):
        Config(folding)
    # a measured epoch that a stop at zero loss may never reach
    broken = copy.deepcopy(TINY)
    broken["experiments"]["tiny"]["training"].update(stop_at_zero_loss=True, save_epochs=[2])
    broken["experiments"]["tiny"]["measure"]["checkpoints"] = ["init", "epoch_2"]
    with pytest.raises(SettingsError) as error:
        Config(broken, against_data=False)
    assert set(error.value.problems) == {
        "experiments.tiny.measure.checkpoints: ['epoch_2']: training.stop_at_zero_loss may end "
        "the training before these epochs; measure 'best' or 'last', or turn the stop off"
    }


def test_schema_errors_do_not_hide_the_other_problems():
    broken = copy.deepcopy(TINY)
    broken["datasets"]["digits"]["chanels"] = 3  # unknown key: cut out, the rest checked
    broken["experiments"]["tiny"]["training"]["lr"] = "fast"  # bad value: checked at its default
    broken["experiments"]["tiny"]["model"]["widht"] = 8
    broken["experiments"]["tiny"]["measure"]["probes"] = 500
    with pytest.raises(SettingsError) as error:
        Config(broken)
    assert [p.split(":")[0] for p in error.value.problems] == [
        "datasets.digits",
        "experiments.tiny.training.lr",
        "experiments.tiny.measure.probes",
        "experiments.tiny.model.widht",
    ]
    nan = copy.deepcopy(TINY)  # a NaN is cut out too
    nan["experiments"]["tiny"]["training"]["lr"] = float("nan")
    nan["experiments"]["tiny"]["model"]["widht"] = 8
    with pytest.raises(SettingsError) as error:
        Config(nan)
    assert [p.split(":")[0] for p in error.value.problems] == [
        "experiments.tiny.training.lr",
        "experiments.tiny.model.widht",
    ]
    listed = copy.deepcopy(TINY)  # a bad list item is cut out too
    listed["experiments"]["tiny"]["measure"].pop("temperatures", None)
    listed["experiments"]["tiny"]["measure"]["deltas"] = [0.5, -1.0, -2.0]
    listed["experiments"]["tiny"]["model"]["widht"] = 8
    with pytest.raises(SettingsError) as error:
        Config(listed)
    assert [p.split(":")[0] for p in error.value.problems] == [
        "experiments.tiny.measure.deltas[1]",
        "experiments.tiny.measure.deltas[2]",
        "experiments.tiny.model.widht",
    ]
    listed["experiments"]["tiny"]["seeds"] = [0, -1.5]  # an item breaking two rules: cut once
    with pytest.raises(SettingsError) as error:
        Config(listed)
    assert [p.split(":")[0] for p in error.value.problems][-1] == "experiments.tiny.model.widht"
    assert sum("seeds[1]" in p for p in error.value.problems) == 2
    broken["experiments"]["tiny"]["dataset"] = 7  # a required key refused: nothing more to check
    with pytest.raises(SettingsError) as error:
        Config(broken)
    assert len(error.value.problems) == 3
