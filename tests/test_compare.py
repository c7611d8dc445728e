"""`overconf compare`, the comparison section of a study's summary, verdicts and the attacker option,
on two tiny runs that share one trained target/shadow pair (every setting here is post hoc)."""
import copy
import csv
import json

import pytest
import torch

from overconf.cli import main
from overconf.runner.validation import config_from_dict
from overconf.report.comparison import Comparison, Entry, SettingInfo
from overconf.report.verdicts import NOT_TESTED, verdicts
from overconf.runner.study import Study

FIGURES = ["fpr_vs_baseline_small_resnet.png", "max_score_density_small_resnet.png",
           "reliability_small_resnet.png", "tradeoff_small_resnet.png"]


def _small(tmp) -> dict:
    from tests.conftest import TINY

    raw = copy.deepcopy(TINY)
    raw |= {"cache_dir": str(tmp / "checkpoints"), "sources": ["test", "digits", "scaled"], "attacks": ["max_score"],
            "metrics": {"bootstrap": 50}, "report": {"figures": False, "tensorboard": False}}
    raw["recipe"]["epochs"] = 2
    return raw


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    raw = _small(tmp)
    raw_a = raw | {"settings": {"baseline": {}, "llla": {"calibration": {"name": "llla"}},
                                "t10_uncal": {"calibration": {"name": "temperature", "T": 10},
                                              "attacker": "uncalibrated"}},
                   "sweeps": {"temperature": [2, 10]}, "report": {"figures": False, "tensorboard": True}}
    raw_b = raw | {"settings": {"baseline": {}, "llla_ood": {"calibration": {
        "name": "llla", "method": "holdout", "ood_weight": 1.0, "link": "mc", "samples": 20, "grid_size": 9}}}}
    a = Study(config_from_dict(raw_a), tmp / "run_a").run()
    b = Study(config_from_dict(raw_b), tmp / "run_b").run()
    return a, b, tmp


def test_compare_writes_the_table_and_every_figure(two_runs, capsys):
    a, b, tmp = two_runs
    assert main(["compare", str(a.run_dir), str(b.run_dir), "--out", str(tmp / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "mean OOD FPR" in out and "Verdicts" in out
    md = (tmp / "cmp" / "comparison.md").read_text()
    for label in ("run_a/baseline", "run_a/llla", "run_a/t10_uncal", "run_a/temperature_2", "run_a/temperature_10",
                  "run_b/baseline", "run_b/llla_ood"):
        assert f"| {label} |" in md, label
    assert sorted(p.name for p in (tmp / "cmp" / "figures").glob("*.png")) == FIGURES
    assert all((tmp / "cmp" / "figures" / f).stat().st_size > 10_000 for f in FIGURES)

    rows = list(csv.DictReader((tmp / "cmp" / "comparison.csv").open()))
    assert len(rows) == 7
    t10 = next(r for r in rows if r["run"] == "run_a" and r["setting"] == "temperature_10")
    assert (t10["sweep"], t10["sweep_value"], t10["kind"]) == ("temperature", "10", "temperature")
    results = json.loads((a.run_dir / "results.json").read_text())

    def value(setting, source, metric, attack="max_score"):
        return next(r["value"] for r in results if (r["setting"], r["attack"], r["source"], r["metric"])
                    == (setting, attack, source, metric))

    assert float(t10["fpr_test"]) == pytest.approx(value("temperature_10", "test", "fpr"))
    assert float(t10["auroc"]) == pytest.approx(value("temperature_10", "test", "auroc"))
    assert float(t10["mean_ood_fpr"]) == pytest.approx(
        (value("temperature_10", "digits", "fpr") + value("temperature_10", "scaled", "fpr")) / 2)
    assert float(t10["ece"]) == pytest.approx(value("temperature_10", "test", "ece", attack="-"))
    from scipy.stats import wasserstein_distance

    cell = next(c for c in a.cells if c.setting == "temperature_10")
    w = wasserstein_distance(cell.members.max_score.float().double().numpy(),
                             cell.sources["scaled"].max_score.float().double().numpy())
    assert float(t10["wasserstein:scaled"]) == pytest.approx(w, rel=1e-6)


def test_study_with_several_settings_reports_the_comparison_and_verdicts(two_runs):
    a, b, _ = two_runs
    summary = (a.run_dir / "summary.md").read_text()
    assert "## Calibration comparison" in summary and "### Verdicts" in summary
    assert "T = 10 leaves scaled-input FPR high (>= 0.5): holds" in summary \
        or "T = 10 leaves scaled-input FPR high (>= 0.5): does not hold" in summary
    assert f"Label smoothing lowers OOD / fake FPR and raises AUROC: {NOT_TESTED}" in summary
    assert "temperature_10: FPR scaled baseline" in summary
    assert (a.run_dir / "comparison.csv").is_file() and (b.run_dir / "comparison.md").is_file()
    assert not (a.run_dir / "figures").exists()  # report.figures: false is honoured


def test_attacker_uncalibrated_shadow_is_the_baseline_shadow(two_runs):
    a, _, _ = two_runs
    cells = {c.setting: c for c in a.cells}
    uncal, t10, base = cells["t10_uncal"], cells["temperature_10"], cells["baseline"]
    assert uncal.calibration == {"target": {"temperature": 10.0}, "shadow": {}}
    assert uncal.thresholds["max_score"] == base.thresholds["max_score"]  # fitted on the same uncalibrated shadow
    assert uncal.thresholds["max_score"] != t10.thresholds["max_score"]
    assert torch.equal(uncal.members.log_probs, t10.members.log_probs)  # the target is calibrated alike


def test_attacker_uncalibrated_trains_the_shadow_with_the_study_recipe(tiny_raw):
    from overconf.data import load_dataset, make_splits

    tiny_raw["settings"] = {"baseline": {}, "ls": {"recipe": {"label_smoothing": 0.1}},
                            "ls_uncal": {"recipe": {"label_smoothing": 0.1}, "attacker": "uncalibrated"}}
    cfg = config_from_dict(tiny_raw)
    study = Study(cfg, "unused")
    study.dataset = load_dataset(cfg.data.dataset, cfg.data.root, False)
    study.splits = make_splits(study.dataset, cfg.data.splits, 0)
    base, ls, ls_uncal = cfg.settings
    model = cfg.models[0]

    def key(role, setting):
        s = setting if role == "target" else study.shadow_setting(setting)
        return study.job(0, role, model, s).key

    assert key("target", ls_uncal) == key("target", ls) != key("target", base)
    assert key("shadow", ls_uncal) == key("shadow", base) != key("shadow", ls)


def test_llla_noise_term_is_plumbed_and_recorded(two_runs):
    _, b, _ = two_runs
    cell = next(c for c in b.cells if c.setting == "llla_ood")
    for role in ("target", "shadow"):
        info = cell.calibration[role]
        assert info["method"] == "holdout" and info["link"] == "mc" and "noise_entropy" in info
        assert info["prior_precision"] > 0
    prior = [r for r in b.rows if r["setting"] == "llla_ood" and r["metric"] == "calibration_prior_precision"]
    assert {r["source"] for r in prior} == {"target", "shadow"}


def test_tensorboard_hparams_carry_the_sweep(two_runs):
    a, _, _ = two_runs
    runs = sorted(p.name for p in (a.run_dir / "tensorboard").iterdir())
    assert runs == sorted(f"small_resnet_{s}_s0" for s in ("baseline", "llla", "t10_uncal", "temperature_2",
                                                          "temperature_10"))
    run = a.run_dir / "tensorboard" / "small_resnet_temperature_2_s0"
    blob = b"".join(p.read_bytes() for p in run.rglob("events*"))
    for token in (b"sweep_value", b"calibration.T", b"attacker", b"hparam/max_score/mean_ood_fpr"):
        assert token in blob, token


def test_compare_errors_name_the_problem(two_runs, tmp_path, capsys):
    a, _, _ = two_runs
    assert main(["compare", str(tmp_path)]) == 2
    assert "holds no config.yaml" in capsys.readouterr().err
    assert main(["compare", str(a.run_dir), "--baseline", "nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--baseline 'nope'" in err and "temperature_10" in err
    assert main(["compare", str(a.run_dir), "--attack", "entropy", "--out", str(tmp_path / "y")]) == 2
    assert "attack 'entropy' is not in the runs" in capsys.readouterr().err
    assert main(["compare", str(a.run_dir), str(a.run_dir) + "/", "--out", str(tmp_path / "z")]) == 2
    assert "is given twice" in capsys.readouterr().err


# ----------------------------------------------------------------------------- verdict logic


def _entry(name, recipe=None, calibration=None, **values):
    base = {"auroc": 0.7, "mean_ood_fpr": 0.5, "fake_fpr": float("nan"), "fpr:scaled": 1.0}
    info = SettingInfo(name, recipe or {}, calibration or {"name": "none"})
    return Entry("run", "m", info, base | values, {})


def test_verdicts_hold_fail_and_report_what_is_missing():
    entries = [_entry("baseline"),
               _entry("ls_a", {"label_smoothing": 0.01}, auroc=0.8, mean_ood_fpr=0.3),
               _entry("ls_b", {"label_smoothing": 0.1}, auroc=0.6, mean_ood_fpr=0.3),
               _entry("llla", calibration={"name": "llla"}, **{"fpr:scaled": 0.01}),
               _entry("t10", calibration={"name": "temperature", "T": 10}, **{"fpr:scaled": 0.2}),
               _entry("t2", calibration={"name": "temperature", "T": 2}, **{"fpr:scaled": 0.9})]
    c = Comparison(entries, "max_score", ["test", "digits", "scaled"], "baseline", False)
    got = {v.key: v for v in verdicts(c)}
    assert got["label_smoothing"].status == "partly holds (1 of 2 settings)"
    assert "mean OOD FPR 0.500 -> 0.300 (lower), AUROC 0.700 -> 0.800 (higher)" in got["label_smoothing"].evidence[0][2]
    assert got["llla_scaled"].status == "holds"
    assert got["temperature_scaled"].status == "does not hold"  # only T = 10 is the reference setting
    assert [e[0] for e in got["temperature_scaled"].evidence] == ["m / t10"]
    assert got["l2_auroc"].status == NOT_TESTED and "weight_decay" in got["l2_auroc"].note

    entries.append(_entry("wd", {"weight_decay": 1e-3}, auroc=0.55))
    c = Comparison(entries, "max_score", ["test", "digits"], "baseline", False)  # no scaled source
    got = {v.key: v for v in verdicts(c)}
    assert got["l2_auroc"].status == "holds"
    assert got["llla_scaled"].status == NOT_TESTED and got["temperature_scaled"].status == NOT_TESTED
    # fake sources count separately: a label smoothing that raises the fake FPR does not hold
    entries = [_entry("baseline", fake_fpr=0.4), _entry("ls", {"label_smoothing": 0.1}, auroc=0.8, mean_ood_fpr=0.3,
                                                        fake_fpr=0.6)]
    c = Comparison(entries, "max_score", ["test", "digits", "fake_gan"], "baseline", False)
    assert verdicts(c)[0].status == "does not hold"


# ----------------------------------------------------------------------------- loading runs that differ or are damaged


def _copy_run(run_dir, dest):
    import shutil

    shutil.copytree(run_dir, dest)
    return dest


def test_compare_runs_with_different_sources_aligns_on_the_common_ones(two_runs, tmp_path, capsys):
    a, b, _ = two_runs
    c_dir = _copy_run(b.run_dir, tmp_path / "run_c")
    rows = [r for r in json.loads((c_dir / "results.json").read_text()) if r["source"] != "scaled"]
    (c_dir / "results.json").write_text(json.dumps(rows))
    per_sample = torch.load(c_dir / "per_sample.pt", weights_only=False)
    for cell in per_sample.values():
        del cell["sources"]["scaled"]
    torch.save(per_sample, c_dir / "per_sample.pt")

    assert main(["compare", str(a.run_dir), str(c_dir), "--out", str(tmp_path / "cmp"), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "dataset: fashion_mnist" in out
    assert "scaled (only in run_a)" in out and "left out" in out
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "Dataset: `fashion_mnist`" in md and "scaled (only in run_a)" in md
    assert "FPR scaled" not in md and "FPR digits" in md
    rows = list(csv.DictReader((tmp_path / "cmp" / "comparison.csv").open()))
    base_a = next(r for r in rows if r["run"] == "run_a" and r["setting"] == "baseline")
    assert float(base_a["mean_ood_fpr"]) == pytest.approx(float(base_a["fpr:digits"]))  # common sources only


def test_compare_refuses_to_pool_different_datasets(two_runs, tmp_path, capsys):
    a, _, _ = two_runs
    d_dir = _copy_run(a.run_dir, tmp_path / "run_d")
    text = (d_dir / "config.yaml").read_text()
    (d_dir / "config.yaml").write_text(text.replace("dataset: fashion_mnist", "dataset: digits", 1))
    assert main(["compare", str(a.run_dir), str(d_dir), "--out", str(tmp_path / "cmp"), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert "different datasets" in err and "run_d: digits" in err and "one dataset at a time" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name,content,why", [
    ("results.json", b'[{"model": "m", "setting"', "not valid JSON"),
    ("results.json", b'{"rows": 1}', "not a list of rows"),
    ("per_sample.pt", b"PK\x03\x04 damaged", "per_sample.pt' is damaged"),
    ("per_sample.pt", b"", "per_sample.pt' is damaged"),
    ("config.yaml", b"settings: {a: 1\n", "config.yaml' is damaged"),
    ("config.yaml", b"a: 1\na: 2\n", "duplicate key 'a'"),
])
def test_compare_damaged_run_files(two_runs, tmp_path, capsys, name, content, why):
    a, _, _ = two_runs
    e_dir = _copy_run(a.run_dir, tmp_path / "run_e")
    (e_dir / name).write_bytes(content)
    assert main(["compare", str(e_dir), "--out", str(tmp_path / "cmp"), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and why in err and "re-run the study" in err and str(e_dir / name) in err
