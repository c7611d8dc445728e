import pytest
import yaml

from overconf.runner.validation import config_from_dict, load_config
from overconf.core.errors import ConfigError


def test_shipped_experiments_are_valid():
    from pathlib import Path

    from overconf.config.factors import is_factors, read_factors

    for path in sorted(Path(__file__).parents[1].glob("experiments/*.yaml")):
        if is_factors(path):  # study: causal_factors has its own schema (overconf.config.factors)
            factors = read_factors(path)
            assert factors.name and factors.sources and factors.configurations(), path
            continue
        cfg = load_config(path)
        assert cfg.name and cfg.attacks and cfg.sources, path


def test_unknown_key_names_the_key_and_the_allowed_ones(tiny_raw):
    tiny_raw["recipe"]["epoch"] = 3
    with pytest.raises(ConfigError, match=r"unknown config key 'recipe.epoch'.*epochs"):
        config_from_dict(tiny_raw)
    tiny_raw["recipe"].pop("epoch")
    tiny_raw["dta"] = {}
    with pytest.raises(ConfigError, match=r"unknown config key 'dta'.*data"):
        config_from_dict(tiny_raw)


BAD_VALUES = [
    (("attacks",), ["max_scor"], r"unknown attack 'max_scor'.*allowed:.*max_score"),
    (("sources",), ["tset"], r"unknown source 'tset'.*allowed:.*test"),
    (("models",), ["resnet19"], r"unknown architecture 'resnet19'.*resnet18"),
    (("data", "dataset"), "cifar11", r"unknown dataset 'cifar11'.*cifar10"),
    (("recipe", "optimizer"), "adamw", r"recipe.optimizer = 'adamw'.*adam, sgd"),
    (("recipe", "epochs"), "ten", r"'recipe.epochs' must be an integer"),
    (("attacks",), [{"name": "salem", "kk": 3}], r"unknown parameter 'kk'.*allowed: k, with_label"),
    (("settings",), {"t": {"calibration": {"name": "temperature", "T": -1}}}, r"T must be a positive"),
    (("settings",), {"x": {"recipe": {"label_smooth": 0.1}}}, r"settings.x.recipe.label_smooth"),
    (("seeds",), [], r"at least one seed"),
]


MORE_BAD_VALUES = [
    (("metrics", "bootstrap"), 0, r"metrics.bootstrap must be >= 1"),
    (("metrics", "bootstrap"), -5, r"metrics.bootstrap must be >= 1"),
    (("metrics", "ece_bins"), 0, r"metrics.ece_bins must be >= 1"),
    (("recipe", "momentum"), -1, r"recipe.momentum must be in \[0, 1\)"),
    (("name",), "../escape", r"name = '../escape' cannot be used in a file name"),
    (("name",), "a/b", r"cannot be used in a file name"),
    (("name",), "..", r"cannot be used in a file name"),
    (("name",), "", r"cannot be used in a file name"),
    (("settings",), {"x/../../y": {}}, r"settings.x/../../y = .* cannot be used in a file name"),
    (("models",), [{"arch": "small_resnet", "name": "../m"}], r"models\[0\].name = '../m'"),
    (("sources",), [{"name": "scaled", "factor": "big"}], r"sources\[0\]\(scaled\).factor must be a number"),
    (("attacks",), [{"name": "salem", "k": 2.5}], r"attacks\[0\]\(salem\).k must be an integer"),
    (("models",), [{"arch": "small_resnet", "params": {"width": 0}}], r"models\[0\].params.width .* >= 1"),
    (("models",), [{"arch": "small_resnet", "recipe": {"lr": -1}}], r"models\[0\].recipe: recipe.lr must be > 0"),
    (("settings",), {"a": 5}, r"'settings.a' must be a mapping"),
]
"""bad values added with the fast config checks"""


@pytest.mark.parametrize("path,value,match", BAD_VALUES + MORE_BAD_VALUES)
def test_bad_values_are_explained(tiny_raw, path, value, match):
    node = tiny_raw
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=match):
        config_from_dict(tiny_raw)


def test_set_overrides_parse_yaml_values(tmp_path, tiny_raw):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    cfg = load_config(path, ["recipe.epochs=7", "seeds=[1,2]", "recipe.lr=0.1", "data.root=/x"])
    assert cfg.recipe.epochs == 7 and cfg.seeds == [1, 2] and cfg.recipe.lr == 0.1
    assert cfg.data.root == "/x"
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path, ["recipe.epochs"])
    with pytest.raises(ConfigError, match="unknown config key 'recipe.epohcs'"):
        load_config(path, ["recipe.epohcs=3"])


def test_recipe_layers_model_and_setting_overrides(tiny_raw):
    tiny_raw["models"] = [{"arch": "salem_cnn", "recipe": {"lr": 0.01}}]
    tiny_raw["settings"] = {"base": {}, "ls": {"recipe": {"label_smoothing": 0.1}}}
    cfg = config_from_dict(tiny_raw)
    base, ls = (cfg.recipe_for(cfg.models[0], s) for s in cfg.settings)
    assert base.lr == 0.01 and base.label_smoothing == 0.0
    assert ls.lr == 0.01 and ls.label_smoothing == 0.1


def test_resolved_config_round_trips(tiny_cfg):
    again = config_from_dict(tiny_cfg.to_dict())
    assert again == tiny_cfg


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------- YAML 1.2 numbers, duplicate keys


def test_yaml_12_floats_in_files_and_overrides(tmp_path, tiny_raw):
    path = tmp_path / "study.yaml"
    text = yaml.safe_dump(tiny_raw) + ("settings:\n  baseline: {}\n  l2: {recipe: {weight_decay: 3e-4}}\n"
                                       "  llla: {calibration: {name: llla, prior_range: [1e-4, 1e4]}}\n")
    text = text.replace("settings:\n  baseline: {}\n", "", 1)
    path.write_text(text)
    cfg = load_config(path, ["recipe.lr=1e-3", "recipe.weight_decay=1.0e-5", "metrics.confidence=9.5e-1"])
    assert cfg.recipe.lr == 1e-3 and cfg.recipe.weight_decay == 1e-5 and cfg.metrics.confidence == 0.95
    l2 = next(s for s in cfg.settings if s.name == "l2")
    assert cfg.recipe.updated(l2.recipe, "x").weight_decay == pytest.approx(3e-4)
    llla = next(s for s in cfg.settings if s.name == "llla")
    assert llla.calibration.params["prior_range"] == [1e-4, 1e4]
    cfg = load_config(path, ["sweeps={weight_decay: [3e-4, 1e-3]}"])
    assert [s.sweep_value for s in cfg.settings if s.sweep] == [3e-4, 1e-3]


def test_duplicate_keys_are_errors_naming_key_and_line(tmp_path, tiny_raw):
    text = yaml.safe_dump(tiny_raw, sort_keys=False)
    path = tmp_path / "study.yaml"
    path.write_text(text + "recipe: {epochs: 1}\n")
    first = text.splitlines().index("recipe:") + 1
    last = len(text.splitlines()) + 1
    with pytest.raises(ConfigError, match=rf"duplicate key 'recipe' at line {last} \(first written at line {first}\)"):
        load_config(path)
    path.write_text("recipe:\n  epochs: 1\n  lr: 0.1\n  epochs: 2\n")
    with pytest.raises(ConfigError, match=r"study.yaml.*duplicate key 'epochs' at line 4"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"--set recipe.*duplicate key 'lr'"):
        load_config(None, ["recipe={lr: 0.1, lr: 0.2}"])


# ----------------------------------------------------------------------------- values that used to pass


def test_empty_config_is_an_error_naming_what_to_add(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match=r"no sources and no attacks.*'sources: \[.*'attacks: \[.*experiments/"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"no attacks.*'attacks: \["):
        load_config(path, ["sources=[test]"])
