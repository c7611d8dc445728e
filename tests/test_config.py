import pytest
import yaml

from overconf.config import config_from_dict, load_config
from overconf.errors import ConfigError


def test_shipped_experiments_are_valid():
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].glob("experiments/*.yaml")):
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


@pytest.mark.parametrize("path,value,match", [
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
])
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
