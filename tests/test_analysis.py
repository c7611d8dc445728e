"""The analysis infrastructure (overconf.analysis, overconf analyze, the analysis: section) on a
tiny study with reference models, and the vulnerability analysis end to end."""
from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch

import overconf
from overconf.analysis import ANALYSES, AnalysisResult
from overconf.analysis.output import SUMMARY_LINK, write_result
from overconf.analysis.vulnerability import Vulnerability
from overconf.analysis.vulnerable import threshold_at_fpr
from overconf.attacks.scores import scaled_logit
from overconf.cli import main
from overconf.core.errors import ConfigError
from overconf.runner.run_analysis import contexts
from overconf.runner.study import Study
from overconf.runner.validation import config_from_dict, load_config

FAST = {"tsne_points": 80, "gradcam_points": 2, "grid_per_class": 2, "bootstrap": 20, "knn": 5}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    from tests.conftest import TINY

    tmp = tmp_path_factory.mktemp("analysis")
    raw = copy.deepcopy(TINY) | {
        "models": [{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}],
        "recipe": {"epochs": 2, "lr": 0.003, "batch_size": 64},
        "sources": ["test", "gaussian"], "attacks": ["max_score", "lira"],
        "reference": {"num_models": 4, "population": 100},
        "settings": {"baseline": {}, "t10": {"calibration": {"name": "temperature", "T": 10}}},
        "analysis": {"vulnerability": dict(FAST, protocol="both")},
        "cache_dir": str(tmp / "checkpoints"), "output_dir": str(tmp / "runs")}
    result = Study(config_from_dict(raw), tmp / "run").run()
    return result, raw, tmp


def test_a_study_with_an_analysis_section_writes_the_analysis(analysed):
    result, raw, _ = analysed
    out = result.run_dir / "analysis"
    assert SUMMARY_LINK in (result.run_dir / "summary.md").read_text()
    md = (out / "analysis.md").read_text()
    assert "## Vulnerable samples" in md and "salem_cnn / t10 / seed 0" in md
    rows = pd.read_csv(out / "rows.csv")
    frac = rows[(rows.metric == "vulnerable_fraction") & (rows.source == "members")]
    assert set(frac.setting) == {"baseline", "t10"} and set(frac.fpr) == {0.01, 0.005}
    assert set(frac.protocol) == {"overconf", "paper"}
    loo = rows[rows.metric == "highly_vulnerable_fraction"]
    assert len(loo) and (loo.protocol == "leave-one-out, Jebreel et al. 2025 (lira_analysis)").all()
    claim = rows[rows.metric == "outlier_claim_auroc"]
    assert set(claim.flag) >= {"vulnerable_paper_fpr0.01", "vulnerable_fpr0.01", "highly_vulnerable_fpr0.01"}
    assert set(claim.verdict) <= {"holds", "does not hold", "inconclusive", "not tested"}
    assert ((frac.value >= 0) & (frac.value <= 1)).all()
    per = pd.read_parquet(out / "vulnerability" / "salem_cnn_baseline_s0_per_sample.parquet")
    assert len(per) == raw["data"]["eval_size"]
    for col in ("scaled_logit", "vulnerable_fpr0.01", "vulnerable_paper_fpr0.005", "highly_vulnerable_fpr0.005",
                "loo_tp_fpr0.01",
                "score_max_score", "score_lira_online", "flag_lira_online", "centroid_distance", "knn_distance",
                "loss_rank", "misclassified_by_shadow", "misclassified_by_references"):
        assert col in per, col
    assert ((per.loo_in + per.loo_out) == 4).all()
    assert per.equals(pd.read_csv(out / "vulnerability" / "salem_cnn_baseline_s0_per_sample.csv")
                      .astype(per.dtypes.to_dict()))
    # figures only for the study's first setting (figures: first)
    names = {p.name for p in (out / "vulnerability").iterdir()}
    assert {"salem_cnn_baseline_s0_tsne.png", "salem_cnn_baseline_s0_gradcam.png",
            "salem_cnn_baseline_s0_most_vulnerable.png"} <= names
    assert not any(n.startswith("salem_cnn_t10_s0") and n.endswith(".png") for n in names)
    assert "Verdict on seed 003's claim" in md and "outliers within their classes" in md  # quoted
    assert "Jebreel et al. 2025" in md
    side = pd.read_csv(out / "vulnerability" / "all_protocols.csv")
    assert set(side.protocol) == {"overconf", "paper"} and set(side.setting) == {"baseline", "t10"}
    assert set(pd.read_csv(out / "vulnerability" / "all_verdicts.csv").setting) == {"baseline", "t10"}
    prot = pd.read_csv(out / "vulnerability" / "all_protection.csv")
    assert set(prot.setting) == {"baseline", "t10"}
    base = prot[(prot.setting == "baseline") & (prot.baseline_flagged > 0)]
    assert (base.tpr_baseline_vulnerable == 1.0).all()


def test_analyze_on_a_finished_run_retrains_nothing(analysed, monkeypatch):
    result, _, tmp = analysed
    import overconf.reference.manager as manager
    import overconf.training.jobs as jobs

    def refuse(*a, **k):
        raise AssertionError("analyze trained a model")

    monkeypatch.setattr(jobs, "_train_and_store", refuse)
    monkeypatch.setattr(manager, "train_batched", refuse)
    models = sorted((tmp / "checkpoints" / "models").iterdir())
    run = overconf.analyze(result.run_dir, only="vulnerability",
                           analysis__vulnerability={**FAST, "figures": "none"})
    assert sorted((tmp / "checkpoints" / "models").iterdir()) == models
    assert run.cache_misses == 0 and run.cache_hits > 0  # every model and output came from the cache
    assert set(run.results["vulnerability"]) == {(0, "salem_cnn", "baseline"), (0, "salem_cnn", "t10")}


def test_thresholds_never_read_the_evaluation_nonmembers(analysed):
    result, _, _ = analysed
    cfg = load_config(result.run_dir / "config.yaml")
    params = Vulnerability().params({**FAST, "figures": "none"})
    ctx = next(contexts(Study(cfg, result.run_dir)))
    res = Vulnerability().run(ctx, dict(params))
    phi_s = scaled_logit(ctx.log_probs("shadow", "nonmembers"), ctx.outputs("shadow", "nonmembers").labels)
    thr = {r["fpr"]: r["value"] for r in res.rows if r["metric"] == "threshold"}
    assert thr == {f: threshold_at_fpr(phi_s, f) for f in (0.01, 0.005)}
    assert {r.get("protocol") for r in res.rows if r["metric"] == "threshold"} == {"overconf"}  # the default

    ctx2 = next(contexts(Study(cfg, result.run_dir)))  # the evaluation non-members changed beyond recognition
    for label in ctx2.sources:
        ctx2._memo[("log_probs", "target", f"source:{label}")] = torch.full((len(ctx2.sources[label].x), 10), -2.3)
    ctx2._memo[("reference_logits", "target", "nonmembers")] = 100 * torch.randn(
        200, 4, 10, generator=torch.Generator().manual_seed(0))
    res2 = Vulnerability().run(ctx2, dict(params))
    assert [r for r in res2.rows if r["metric"] == "threshold"] == [r for r in res.rows if r["metric"] == "threshold"]
    a, b = res.tables["per_sample"], res2.tables["per_sample"]
    for col in a.columns:
        if col.startswith(("vulnerable_", "highly_vulnerable_", "loo_")):
            assert a[col].equals(b[col]), col


def test_paper_protocol_is_the_percentile_of_the_evaluation_nonmembers(analysed):
    import numpy as np

    result, _, _ = analysed
    cfg = load_config(result.run_dir / "config.yaml")
    params = Vulnerability().params({**FAST, "figures": "none", "protocol": "paper", "fprs": [0.01, 0.005, 0.001]})
    ctx = next(contexts(Study(cfg, result.run_dir)))
    res = Vulnerability().run(ctx, dict(params))
    lp_e = ctx.log_probs("target", "nonmembers").numpy()
    y_e = ctx.outputs("target", "nonmembers").labels.numpy()
    lp_m = ctx.log_probs("target", "members").numpy()
    y_m = ctx.outputs("target", "members").labels.numpy()

    def phi(lp, y):  # direct: log p_y - log sum_{k != y} p_k, one row at a time
        return np.array([lp[i, y[i]] - np.log(np.exp(np.delete(lp[i], y[i])).sum()) for i in range(len(y))])

    phi_e, phi_m = phi(lp_e, y_e), phi(lp_m, y_m)
    per = res.tables["per_sample"]
    n = len(phi_e)
    for fpr in (0.01, 0.005, 0.001):
        t = np.percentile(phi_e, 100 * (1 - fpr))  # the authors' call: numpy's default linear interpolation
        row = next(r for r in res.rows if r["metric"] == "threshold" and r["fpr"] == fpr)
        assert row["protocol"] == "paper" and row["source"] == "test" and row["value"] == pytest.approx(t, abs=1e-9)
        assert per[f"vulnerable_paper_fpr{fpr:g}"].tolist() == (phi_m >= t).tolist()
        ok = next(r for r in res.rows if r["metric"] == "fpr_resolved" and r["fpr"] == fpr)["value"]
        assert ok == float(fpr * n >= 1)
    assert "vulnerable_fpr0.01" not in per  # protocol: paper alone: no shadow threshold
    assert "Not resolved" in res.markdown and "FPR 0.001" in res.markdown
    at_chance = [r for r in res.data["protocols"] if r["members_flagged"] <= r["eval_nonmembers_flagged"]]
    assert ("At chance" in res.markdown) == bool(at_chance)


def test_cli_analyze_and_its_errors(analysed, tmp_path, capsys):
    result, _, _ = analysed
    assert main(["analyze", str(result.run_dir), "--only", "vulnerability",
                 "--set", "analysis.vulnerability.figures=none", "--set", "analysis.vulnerability.bootstrap=10",
                 "--set", "analysis.vulnerability.tsne_points=10"]) == 0
    assert "Vulnerable samples" in capsys.readouterr().out
    assert main(["analyze", str(tmp_path)]) == 2
    assert "not an overconf run folder" in capsys.readouterr().err
    assert main(["analyze", str(result.run_dir), "--only", "vulnerabilty"]) == 2
    assert "unknown analysis 'vulnerabilty'" in capsys.readouterr().err
    assert main(["analyze", str(result.run_dir), "--set", "analysis.vulnerability.fprs=[2]"]) == 2
    assert "fprs must be a non-empty list of FPRs in (0, 1)" in capsys.readouterr().err


def test_analysis_section_errors_name_the_key_and_the_fix(tiny_raw):
    from overconf.config import parse_config

    with pytest.raises(ConfigError, match="unknown analysis 'vulnerable'.*allowed: .*vulnerability"):
        parse_config(tiny_raw | {"analysis": {"vulnerable": {}}})
    with pytest.raises(ConfigError, match="'analysis' must be a mapping"):
        parse_config(tiny_raw | {"analysis": ["vulnerability"]})
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) fpr of analysis 'vulnerability'.*allowed: .*fprs"):
        config_from_dict(tiny_raw | {"analysis": {"vulnerability": {"fpr": 0.01}}})
    with pytest.raises(ConfigError, match="loo_score = 'rmia' is not allowed"):
        config_from_dict(tiny_raw | {"analysis": {"vulnerability": {"loo_score": "rmia"}}})
    with pytest.raises(ConfigError, match="protocol = 'seed003' is not allowed; use one of: overconf, paper, both"):
        config_from_dict(tiny_raw | {"analysis": {"vulnerability": {"protocol": "seed003"}}})
    cfg = config_from_dict(tiny_raw | {"analysis": {"vulnerability": None}})
    assert cfg.analysis == {"vulnerability": {}}
    assert "analysis" not in config_from_dict(tiny_raw).to_dict()  # no section: config.yaml as before
    assert "vulnerability" in ANALYSES.names()


def test_figures_go_to_png_and_tensorboard(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    res = AnalysisResult(tables={"t": pd.DataFrame({"a": [1, 2]})}, per_sample=("t",), figures={"f": fig})
    written = write_result(tmp_path, "demo", "m_s_s0", res, tensorboard=True)
    assert {p.name for p in written} == {"m_s_s0_t.csv", "m_s_s0_t.parquet", "m_s_s0_f.png"}
    assert list((tmp_path / "tensorboard" / "analysis" / "demo" / "m_s_s0").glob("events.out.tfevents.*"))
    assert pd.read_parquet(tmp_path / "analysis" / "demo" / "m_s_s0_t.parquet").a.tolist() == [1, 2]
