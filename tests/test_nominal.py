"""Nominal vs realised FPR: the exact binomial test against a direct sum and its duality with the
Clopper-Pearson interval, thresholds at requested FPR levels set on shadow non-members only,
Benjamini-Hochberg against the step-up rule written out, and the report (table, CSV, figure)."""
import csv
import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from overconf.attacks import ATTACKS, Fitted
from overconf.attacks.operating_point import at_levels
from overconf.core.errors import ConfigError
from overconf.metrics.membership import clopper_pearson
from overconf.metrics.nominal import binomial_p_value, declared_rows, level_rows, nominal_vs_realised
from overconf.report.multiplicity import benjamini_hochberg
from overconf.report.nominal_report import nominal_summary, records, write_nominal

G = torch.Generator


def _tail(k, n, p, upper):
    """P(X >= k) (upper) or P(X <= k) of Binomial(n, p), summed exactly in rationals."""
    p = Fraction(p)
    js = range(k, n + 1) if upper else range(0, k + 1)
    return float(sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in js))


@pytest.mark.parametrize("k, n, p0", [(0, 50, 0.01), (3, 50, 0.01), (41, 100, 0.01), (10, 100, 0.1),
                                      (12, 200, 0.05), (200, 200, 0.9)])
def test_binomial_p_value_is_the_doubled_smaller_tail(k, n, p0):
    expected = min(1.0, 2 * min(_tail(k, n, p0, upper=False), _tail(k, n, p0, upper=True)))
    assert binomial_p_value(k, n, p0) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_the_flag_and_the_p_value_agree_with_the_clopper_pearson_interval():
    rng = np.random.default_rng(0)
    for _ in range(400):
        n = int(rng.integers(1, 300))
        k = int(rng.integers(0, n + 1))
        p0 = float(rng.uniform(0, 1))
        lo, hi = (float(v) for v in clopper_pearson(k, n))
        outside = not lo <= p0 <= hi
        assert (binomial_p_value(k, n, p0) < 0.05) == outside, (k, n, p0)
        scores = torch.cat([torch.ones(k), torch.zeros(n - k)])
        m = nominal_vs_realised(scores, 0.5, p0)
        assert m["fpr"] == k / n and m["broken"] == float(outside) and (m["fpr_ci_low"], m["fpr_ci_high"]) == (lo, hi)


def test_declared_and_level_rows():
    s_out = torch.arange(100, dtype=torch.float64)  # scores 0..99: >= 59 flags 41
    rows = declared_rows(0.01, 59.0, s_out)
    assert rows["nominal_fpr"] == 0.01 and rows["nominal_fpr_broken"] == 1.0 and rows["nominal_fpr_p_value"] < 1e-40
    assert declared_rows(None, 59.0, s_out) == {}
    lv = level_rows(0.01, 99.0, torch.tensor([100.0, 98.0]), s_out)
    assert lv["level_0.01_fpr"] == 0.01 and lv["level_0.01_broken"] == 0.0 and lv["level_0.01_tpr"] == 0.5


def test_declared_fpr_is_the_requested_level_else_the_shadow_fpr():
    assert Fitted(lambda s: s, 0.0, {"shadow_fpr": 0.2}).declared_fpr == 0.2
    assert Fitted(lambda s: s, 0.0, {"shadow_fpr": 0.2}, nominal_fpr=0.01).declared_fpr == 0.01
    assert Fitted(lambda s: s, 0.0).declared_fpr is None


def test_level_thresholds_are_the_smallest_with_shadow_fpr_at_most_the_level():
    g = G().manual_seed(0)
    s_in, s_out = torch.randn(300, generator=g, dtype=torch.float64) + 1, torch.randn(2500, generator=g, dtype=torch.float64)
    levels = at_levels(lambda s: s, s_in, s_out, (0.01, 0.001))
    for level, f in levels.items():
        assert f.nominal_fpr == level and f.info["shadow_fpr"] <= level
        # brute force: every candidate threshold (the scores themselves) with FPR <= level is >= tau
        ok = [t for t in s_out.tolist() if float((s_out >= t).double().mean()) <= level]
        assert f.threshold <= min(ok) and float((s_out >= f.threshold).double().mean()) == f.info["shadow_fpr"]
        assert f.info["shadow_fpr"] == math.floor(level * 2500) / 2500


@pytest.mark.parametrize("name", ["lira", "rmia", "qmia"])
def test_fpr_levels_are_checked_and_default_to_one_and_a_tenth_percent(name):
    assert ATTACKS[name]().fpr_levels == (0.01, 0.001)
    with pytest.raises(ConfigError, match="fpr_levels"):
        ATTACKS[name](fpr_levels=[0.01, 1.5])
    with pytest.raises(ConfigError, match="fpr_levels"):
        ATTACKS[name](fpr_levels=["a"])


def test_benjamini_hochberg_is_the_step_up_rule():
    rng = np.random.default_rng(1)
    p = np.r_[rng.uniform(0, 0.01, 8), rng.uniform(0, 1, 40), [math.nan]]
    rejected, adjusted = benjamini_hochberg(p, 0.05)
    valid = p[~np.isnan(p)]
    m, order = len(valid), np.argsort(valid)
    k = max([i + 1 for i in range(m) if valid[order[i]] <= (i + 1) * 0.05 / m], default=0)
    expected = set(order[:k].tolist())
    assert {i for i, r in enumerate(rejected[:-1]) if r} == expected and not rejected[-1]
    for i in range(m):  # q_i = min_{j >= rank i} m p_(j) / j
        rank = int(np.where(order == i)[0][0])
        q = min(min(1.0, m * valid[order[j]] / (j + 1)) for j in range(rank, m))
        assert adjusted[i] == pytest.approx(q)
    assert math.isnan(adjusted[-1])


def _rows():
    """Rows of one cell: a shadow-fitted attack broken on 'ood', a requested level that holds."""
    rows = []
    base = {"model": "m", "seed": 0, "setting": "baseline"}
    rows.append(base | {"attack": "max_score", "source": "shadow", "metric": "shadow_fpr", "value": 0.1})
    for source, k in (("test", 110), ("ood", 410)):
        n = 1000
        lo, hi = (float(v) for v in clopper_pearson(k, n))
        vals = {"fpr": k / n, "fpr_ci_low": lo, "fpr_ci_high": hi, "n_nonmembers": n,
                "nominal_fpr": 0.1, "nominal_fpr_p_value": binomial_p_value(k, n, 0.1),
                "nominal_fpr_broken": float(not lo <= 0.1 <= hi)}
        lv = level_rows(0.01, 0.5, torch.ones(10), torch.cat([torch.ones(10), torch.zeros(990)]))
        rows += [base | {"attack": "max_score", "source": source, "metric": mt, "value": v} for mt, v in (vals | lv).items()]
    return rows


def test_records_summary_csv_and_figure(tmp_path):
    recs = records(_rows())
    by = {(r["rule"], r["source"]): r for r in recs}
    assert by[("threshold", "ood")]["broken_fdr"] == 1.0 and by[("threshold", "test")]["broken_fdr"] == 0.0
    assert by[("threshold", "ood")]["set_on"] == "shadow" and by[("level 0.01", "ood")]["set_on"] == "requested"
    assert by[("level 0.01", "test")]["broken_fdr"] == 0.0 and len(recs) == 4
    cfg = SimpleNamespace(metrics=SimpleNamespace(confidence=0.95), report=SimpleNamespace(figures=True))
    text = "\n".join(nominal_summary(_rows(), cfg))
    assert "over all 4 tests" in text and "**41.0 [37.9, 44.1]** ↑" in text and "11.0 [9.1, 13.1]" in text
    assert "`max_score` (nominal 10.0%): broken on ood 41.0% [37.9, 44.1]" in text
    assert "| max_score @ 1.00% | 1.0 (requested) |" in text and "| max_score | 10.0 (shadow) |" in text
    paths = write_nominal(SimpleNamespace(rows=_rows(), config=cfg), tmp_path)
    assert [p.name for p in paths] == ["nominal_vs_realised_m_baseline.png"] and paths[0].stat().st_size > 1000
    table = list(csv.DictReader((tmp_path / "nominal_fpr.csv").open()))
    assert len(table) == 4 and {r["broken_fdr"] for r in table} == {"1.0", "0.0"}


def test_a_level_equal_to_the_main_rule_is_reported_once():
    rows = [r | ({"value": 0.01} if r["metric"] == "nominal_fpr" else {}) for r in _rows()
            if r["source"] != "shadow"]
    # the main rule's nominal is 1% and it flags exactly what the 1% level flags
    rows = [r | ({"value": 0.01} if r["metric"] == "fpr" else {}) for r in rows]
    assert [r["rule"] for r in records(rows)] == ["threshold", "threshold"]
