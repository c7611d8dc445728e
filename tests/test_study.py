"""A tiny end-to-end study on real Fashion-MNIST slices."""
import json

import pytest
import torch

from overconf.runner.validation import config_from_dict
from overconf.report.tables import Table
from overconf.runner.study import Study

ATTACK_METRICS = {"tpr", "fpr", "precision", "auroc", "aupr", "fpr_at_95tpr", "tpr_at_fpr_0.01",
                  "fpr_reached_0.01", "tpr_at_fpr_0.001", "fpr_reached_0.001", "fpr_ci_low", "fpr_ci_high",
                  "mmps_tp", "mmps_fp", "mmps_tn", "mmps_fn"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from tests.conftest import TINY
    import copy

    tmp = tmp_path_factory.mktemp("study")
    raw = copy.deepcopy(TINY)
    raw["cache_dir"] = str(tmp / "checkpoints")
    raw["report"] = {"figures": True, "tensorboard": True, "fp_grid": 8}
    cfg = config_from_dict(raw)
    return Study(cfg, tmp / "run").run(), raw


def test_results_table_is_complete(tiny_run):
    result, raw = tiny_run
    rows = result.rows
    sources = ["test", "digits", "scaled", "gaussian"]
    for attack in ("max_score", "entropy", "salem_top3"):
        for source in sources:
            got = {r["metric"] for r in rows if r["attack"] == attack and r["source"] == source}
            assert ATTACK_METRICS <= got, (attack, source, ATTACK_METRICS - got)
    model_metrics = {(r["source"], r["metric"]) for r in rows if r["attack"] == "-"}
    assert {("train", "accuracy"), ("test", "accuracy"), ("test", "ece"),
            ("test", "overconfidence_error"), ("members", "mean_max_score")} <= model_metrics
    assert {("test" if s == "test" else s, "mean_max_score") for s in sources} <= model_metrics
    # the tidy key and value columns first, then exactly the setting's parameter columns (issue 12)
    from overconf.config.row_columns import setting_columns
    assert all(list(r)[:7] == ["model", "seed", "setting", "attack", "source", "metric", "value"]
               and {k: r[k] for k in list(r)[7:]} == setting_columns(result.config, r["model"], r["setting"])
               for r in rows)


def test_member_and_nonmember_sets_are_equal_size_per_source(tiny_run):
    result, _ = tiny_run
    t = Table(result.rows)
    for source in ("test", "digits", "scaled", "gaussian"):
        n_in = t.get("small_resnet", "baseline", "max_score", source, "n_members")[0]
        n_out = t.get("small_resnet", "baseline", "max_score", source, "n_nonmembers")[0]
        assert n_in == n_out == 200, source


def test_a_smaller_source_is_compared_with_a_seeded_subset_of_members():
    from overconf.runner.study import Study

    a = Study.matched_members(0, "digits", 2500, 1797)
    assert len(a) == 1797 and len(torch.unique(a)) == 1797 and int(a.max()) < 2500
    assert torch.equal(a, Study.matched_members(0, "digits", 2500, 1797))
    assert not torch.equal(a, Study.matched_members(1, "digits", 2500, 1797))
    assert torch.equal(Study.matched_members(0, "test", 2500, 2500), torch.arange(2500))


def test_members_score_higher_than_unseen_test_images(tiny_run):
    result, _ = tiny_run
    t = Table(result.rows)
    members = t.get("small_resnet", "baseline", "-", "members", "mean_max_score")[0]
    test = t.get("small_resnet", "baseline", "-", "test", "mean_max_score")[0]
    assert members > test
    assert t.get("small_resnet", "baseline", "max_score", "test", "auroc")[0] > 0.5
    train_acc = t.get("small_resnet", "baseline", "-", "train", "accuracy")[0]
    assert train_acc > 0.6  # the model learned something in 4 epochs


def test_run_folder_holds_every_artefact(tiny_run):
    result, _ = tiny_run
    d = result.run_dir
    for name in ("config.yaml", "results.csv", "results.json", "summary.md", "per_sample.pt"):
        assert (d / name).is_file(), name
    rows = json.loads((d / "results.json").read_text())
    assert len(rows) == len(result.rows)
    assert (d / "results.csv").read_text().splitlines()[0] == ("model,seed,setting,attack,source,metric,value,"
                                                                "arch,arch.width,calibration,attacker,sweep,sweep_value")
    summary = (d / "summary.md").read_text()
    assert "FPR test" in summary and "FPR digits" in summary and "salem_top3" in summary
    figures = sorted(p.name for p in (d / "figures").glob("*.png"))
    assert figures == ["fp_grid_small_resnet_baseline_s0.png",  # confident false positives (issue 24)
                       "fpr_bars_small_resnet_baseline.png", "max_score_small_resnet_baseline_s0.png",
                       "nominal_vs_realised_small_resnet_baseline.png", "roc_small_resnet_baseline_s0.png"]


def test_tensorboard_has_scalars_histograms_images_and_hparams(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, _ = tiny_run
    run = result.run_dir / "tensorboard" / "small_resnet_baseline_s0"
    acc = EventAccumulator(str(run), size_guidance={"images": 0, "histograms": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert "max_score/fpr/test" in tags["scalars"] and "model/accuracy/test" in tags["scalars"]
    assert len(tags["scalars"]) >= len([r for r in result.rows])  * 0.9
    assert {"max_score/members", "max_score/test", "max_score/digits"} <= set(tags["histograms"])
    assert any(t.startswith("confident_false_positives/max_score/") for t in tags["images"])
    plugin_runs = list(run.rglob("events.out.tfevents*"))
    assert any(b"hparams" in p.read_bytes() for p in plugin_runs)


def test_second_run_reuses_models_and_a_changed_setting_retrains_only_its_models(tiny_run, tmp_path):
    result, raw = tiny_run
    cfg = config_from_dict(raw)
    again = Study(cfg, tmp_path / "again").run(report=False)
    assert again.cache_misses == 0 and again.cache_hits > 0
    assert json.dumps(again.rows) == json.dumps(result.rows)  # same models, outputs, seeded attacks

    raw2 = {**raw, "settings": {"baseline": {}, "ls": {"recipe": {"label_smoothing": 0.1}}},
            "attacks": ["max_score"]}
    import overconf.training.jobs as trained

    trained_jobs = []
    real = trained.train_classifier

    def spy(model, x, y, recipe, **kw):
        trained_jobs.append(recipe.label_smoothing)
        return real(model, x, y, recipe, **kw)

    trained.train_classifier = spy
    try:
        Study(config_from_dict(raw2), tmp_path / "ls").run(report=False)
    finally:
        trained.train_classifier = real
    assert trained_jobs == [0.1, 0.1]  # target and shadow of the new setting only


def test_temperature_setting_reuses_the_baseline_models(tiny_run, tmp_path):
    _, raw = tiny_run
    raw2 = {**raw, "settings": {"baseline": {}, "t10": {"calibration": {"name": "temperature", "T": 10}}},
            "attacks": ["max_score"], "sources": ["test"]}
    result = Study(config_from_dict(raw2), tmp_path / "t").run(report=False)
    assert result.cache_misses == 0
    t = Table(result.rows)
    base = t.get("small_resnet", "baseline", "-", "test", "mean_max_score")[0]
    hot = t.get("small_resnet", "t10", "-", "test", "mean_max_score")[0]
    assert hot < base
    assert t.get("small_resnet", "t10", "-", "target", "calibration_temperature") == [10.0]


def test_bad_source_fails_before_any_training(tiny_raw, tmp_path):
    from overconf.core.errors import DataNotFoundError

    tiny_raw["sources"] = ["test", "cifar100"]
    cfg = config_from_dict(tiny_raw)
    with pytest.raises(DataNotFoundError, match="data.root"):
        Study(cfg, tmp_path / "bad").run()
    assert not (tmp_path / "checkpoints" / "models").exists()
