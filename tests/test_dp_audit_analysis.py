"""The dp_audit analysis end to end on a tiny study with a DP-SGD setting: bounds per source beside
the accountant's epsilon (with its delta), the held-out threshold's bound recomputed independently
from the run's per-sample scores, and the one-run canary model trained once (cached)."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from overconf.analysis.dp_audit import DPAudit
from overconf.core.errors import ConfigError
from overconf.metrics.epsilon_bounds import epsilon_lower_bound
from overconf.runner.study import Study
from overconf.runner.validation import config_from_dict


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    from tests.conftest import TINY

    tmp = tmp_path_factory.mktemp("dp_audit")
    raw = copy.deepcopy(TINY) | {
        "models": [{"arch": "salem_cnn", "params": {"width": 4, "hidden": 16}}],
        "recipe": {"epochs": 2, "lr": 0.003, "batch_size": 64},
        "sources": ["test", "gaussian"], "attacks": ["max_score", "loss"],
        "settings": {"baseline": {}, "dp": {"defense": {"name": "dp_sgd", "epsilon": 2, "delta": 1e-3}}},
        "analysis": {"dp_audit": {"canaries": 200, "guesses": [10, 40]}},
        "cache_dir": str(tmp / "checkpoints"), "output_dir": str(tmp / "runs")}
    result = Study(config_from_dict(raw), tmp / "run").run()
    return result, raw


def test_bounds_per_source_beside_the_accountant(audited):
    result, _ = audited
    t = pd.read_csv(result.run_dir / "analysis" / "dp_audit" / "all_dp_audit.csv")
    assert set(t.setting) == {"baseline", "dp"}
    assert set(t[t.audit == "clopper_pearson"].attack) == {"max_score", "loss"}
    assert set(t.source) == {"test", "gaussian", "canaries"}
    dp = t[t.setting == "dp"]
    assert (dp.delta == 1e-3).all() and np.isfinite(dp.accountant_epsilon).all()
    assert dp.accountant_epsilon.iloc[0] == pytest.approx(2.0, abs=0.05)
    base = t[t.setting == "baseline"]
    assert (base.delta == 1e-5).all() and np.isinf(base.accountant_epsilon).all()
    assert (t.eps_lb >= 0).all()
    assert set(t[t.sound].source) == {"test", "canaries"}
    # a sound audit of DP-SGD at epsilon 2 never exceeds 2 (a bound above it is a bug or a broken DP)
    assert (dp[dp.sound].eps_lb <= dp.accountant_epsilon.iloc[0]).all()
    md = (result.run_dir / "analysis" / "analysis.md").read_text()
    assert "DP audit" in md and "accountant epsilon (delta)" in md
    top = pd.read_csv(result.run_dir / "dp_audit.csv")
    assert len(top) == len(t)
    summary = (result.run_dir / "summary.md").read_text()
    assert summary.count("## DP audit: empirical epsilon per source") == 1
    assert "| salem_cnn | dp | 2 (1e-03) |" in summary


def test_a_reanalysis_replaces_the_summary_section(audited, tmp_path):
    from overconf.analysis.output import SUMMARY_LINK, write_markdown

    result, _ = audited
    run = result.run_dir
    before = (run / "summary.md").read_text()
    write_markdown(run, ["## x"], ("## DP audit: empirical epsilon per source\n\nnew",))
    after = (run / "summary.md").read_text()
    assert after.count("## DP audit") == 1 and "\nnew\n" in after and after.count(SUMMARY_LINK) == 1
    assert after.split("<!-- analysis summary: start -->")[0] == before.split("<!-- analysis summary: start -->")[0]


def test_the_clopper_pearson_row_is_the_bound_at_its_own_counts(audited):
    result, _ = audited
    t = pd.read_csv(result.run_dir / "analysis" / "dp_audit" / "all_dp_audit.csv")
    for _, r in t[t.audit == "clopper_pearson"].iterrows():
        assert r.n_in == 100 and r.n_out in (100, 150)  # the evaluation half of 200 members / the source
        want = float(epsilon_lower_bound(r.tp, r.fp, int(r.n_in), int(r.n_out), 0.05, r.delta))
        assert r.eps_lb == pytest.approx(want)


def test_bad_parameters_are_one_clear_error():
    a = DPAudit()
    with pytest.raises(ConfigError, match="guesses"):
        a.check(a.params({"guesses": [300], "canaries": 200}))
    with pytest.raises(ConfigError, match="confidence"):
        a.check(a.params({"confidence": 1.5}))
    with pytest.raises(ConfigError, match="allowed"):
        a.params({"canary": 3})
