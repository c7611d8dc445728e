"""Self-describing rows: every row carries its setting's parameters (overconf.config.row_columns)."""
from __future__ import annotations

import copy

from conftest import TINY
from overconf.config import parse_config
from overconf.config.row_columns import column_order, setting_columns, study_columns


def _cfg(**extra):
    raw = copy.deepcopy(TINY) | extra
    return parse_config(raw)


SETTINGS = {"baseline": {},
            "label_smoothing": {"recipe": {"label_smoothing": 0.1}},
            "temperature_10": {"calibration": {"name": "temperature", "T": 10}},
            "naive": {"recipe": {"weight_decay": 0.001}, "attacker": "uncalibrated"}}


def test_setting_columns_name_the_recipe_calibration_attacker_and_arch():
    cfg = _cfg(settings=SETTINGS)
    base = setting_columns(cfg, "small_resnet", "baseline")
    ls = setting_columns(cfg, "small_resnet", "label_smoothing")
    t10 = setting_columns(cfg, "small_resnet", "temperature_10")
    naive = setting_columns(cfg, "small_resnet", "naive")
    assert base["arch"] == "small_resnet" and base["arch.width"] == 8
    # only the recipe keys some setting overrides, with each setting's effective value
    assert [k for k in base if k.startswith("recipe.")] == ["recipe.weight_decay", "recipe.label_smoothing"]
    assert base["recipe.label_smoothing"] == 0.0 and ls["recipe.label_smoothing"] == 0.1
    assert naive["recipe.weight_decay"] == 0.001 and ls["recipe.weight_decay"] == 0.0
    assert base["calibration"] == "none" and base["calibration.T"] is None
    assert t10["calibration"] == "temperature" and t10["calibration.T"] == 10
    assert naive["attacker"] == "uncalibrated" and base["attacker"] == "same"
    # every (model, setting) has the same columns: a rectangular CSV
    assert len({tuple(c) for c in study_columns(cfg).values()}) == 1


def test_sweep_and_model_recipe_columns():
    models = [{"arch": "small_resnet", "params": {"width": 8}, "name": "fast", "recipe": {"lr": 0.01}},
              {"arch": "small_resnet", "params": {"width": 4}, "name": "thin"}]
    cfg = _cfg(models=models, settings={"baseline": {}}, sweeps={"temperature": [2, "fit"]})
    fast = setting_columns(cfg, "fast", "temperature_2")
    thin = setting_columns(cfg, "thin", "temperature_fit")
    assert fast["recipe.lr"] == 0.01 and thin["recipe.lr"] == 0.003  # the study recipe's lr
    assert fast["arch.width"] == 8 and thin["arch.width"] == 4
    assert (fast["sweep"], fast["sweep_value"], fast["calibration.T"]) == ("temperature", 2, 2)
    assert thin["calibration.T"] == "fit" and setting_columns(cfg, "thin", "baseline")["sweep"] is None


def test_columns_follow_a_config_changed_in_place():
    cfg = _cfg(settings=SETTINGS)
    assert setting_columns(cfg, "small_resnet", "label_smoothing")["recipe.label_smoothing"] == 0.1
    cfg.settings[1].recipe["label_smoothing"] = 0.2
    assert setting_columns(cfg, "small_resnet", "label_smoothing")["recipe.label_smoothing"] == 0.2


def test_column_order_starts_with_the_tidy_keys():
    rows = [{"model": "m", "seed": 0, "setting": "s", "attack": "-", "source": "test", "metric": "x",
             "value": 1.0, "arch": "a", "recipe.lr": 0.1}]
    assert column_order(rows) == ["model", "seed", "setting", "attack", "source", "metric", "value",
                                  "arch", "recipe.lr"]


def _run_folder(tmp_path, cfg_dict):
    import json

    import torch
    import yaml

    d = tmp_path / "run"
    d.mkdir()
    (d / "config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
    (d / "results.json").write_text(json.dumps([{"model": "m", "seed": 0, "setting": "baseline", "attack": "-",
                                                 "source": "test", "metric": "accuracy", "value": 0.5}]))
    (d / "status.json").write_text(json.dumps({"status": "complete"}))
    torch.save({}, d / "per_sample.pt")
    return d


def test_compare_reads_the_typed_config(tmp_path):
    """load_run parses config.yaml with overconf.config (no second parser): typed settings, sweeps
    with their values, and a config.yaml the schema rejects is an error naming the key."""
    import pytest

    from overconf.config import StudyConfig
    from overconf.core.errors import DataError
    from overconf.report.runs import load_run, setting_infos

    cfg = _cfg(settings=SETTINGS, sweeps={"label_smoothing": [0.2]})
    d = _run_folder(tmp_path, cfg.to_dict())
    run = load_run(d)
    assert isinstance(run.config, StudyConfig) and run.dataset == "fashion_mnist"
    infos = setting_infos(run.config)
    assert {n: i.kind for n, i in infos.items()} == {
        "baseline": "baseline", "label_smoothing": "label_smoothing", "temperature_10": "temperature",
        "naive": "attacker_uncalibrated", "label_smoothing_0.2": "label_smoothing"}
    assert infos["temperature_10"].calibration == {"name": "temperature", "T": 10}
    assert (infos["label_smoothing_0.2"].sweep, infos["label_smoothing_0.2"].sweep_value) == ("label_smoothing", 0.2)
    bad = cfg.to_dict()
    bad["settings"]["label_smoothing"]["recipe"] = {"label_smothing": 0.1}  # a typo the old reader passed
    (tmp_path / "bad").mkdir()
    with pytest.raises(DataError, match="label_smothing"):
        load_run(_run_folder(tmp_path / "bad", bad))
