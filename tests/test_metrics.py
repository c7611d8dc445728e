import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torchmetrics.functional.classification import multiclass_calibration_error

from overconf.metrics import (expected_calibration_error, membership_metrics, mmps,
                              overconfidence_error)


@pytest.fixture
def scores():
    g = torch.Generator().manual_seed(0)
    s_in = torch.randn(800, generator=g, dtype=torch.float64) + 1.0
    s_out = torch.randn(1200, generator=g, dtype=torch.float64)
    return s_in, s_out


def test_membership_metrics_match_sklearn(scores):
    s_in, s_out = scores
    m = membership_metrics(s_in, s_out, 0.5, n_boot=200)
    y = np.r_[np.ones(800), np.zeros(1200)]
    s = np.r_[s_in.numpy(), s_out.numpy()]
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["aupr"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["tpr"] == pytest.approx(float((s_in >= 0.5).double().mean()))
    assert m["fpr"] == pytest.approx(float((s_out >= 0.5).double().mean()))
    tp, fp = int((s_in >= 0.5).sum()), int((s_out >= 0.5).sum())
    assert m["precision"] == pytest.approx(tp / (tp + fp))
    fpr, tpr, _ = roc_curve(y, s)
    assert m["fpr_at_95tpr"] == pytest.approx(fpr[tpr >= 0.95].min())
    ok = fpr <= 0.01
    assert m["tpr_at_fpr_0.01"] == pytest.approx(tpr[ok].max())
    assert m["fpr_reached_0.01"] <= 0.01
    assert m["fpr_reached_0.001"] <= 0.001
    assert m["fpr_ci_low"] <= m["fpr"] <= m["fpr_ci_high"]


def test_tpr_at_low_fpr_reports_reached_fpr():
    # 10 non-members: the lowest non-zero FPR is 0.1, so "TPR at 1% FPR" must be taken at FPR 0
    s_out = torch.arange(10, dtype=torch.float64)
    s_in = torch.tensor([5.5, 9.5, 20.0, 30.0], dtype=torch.float64)
    m = membership_metrics(s_in, s_out, 100.0, n_boot=10)
    assert m["fpr_reached_0.01"] == 0.0
    assert m["tpr_at_fpr_0.01"] == pytest.approx(0.75)  # 9.5, 20 and 30 beat every non-member


def test_mmps_per_confusion_cell():
    max_in = torch.tensor([0.9, 0.8, 0.5])
    max_out = torch.tensor([0.99, 0.6, 0.4, 0.3])
    r = mmps(max_in, max_out, torch.tensor([True, True, False]), torch.tensor([True, False, False, False]))
    assert r["mmps_tp"] == pytest.approx(0.85)
    assert r["mmps_fn"] == pytest.approx(0.5)
    assert r["mmps_fp"] == pytest.approx(0.99)
    assert r["mmps_tn"] == pytest.approx((0.6 + 0.4 + 0.3) / 3)


@pytest.mark.parametrize("n_bins", [5, 15])
def test_ece_equals_torchmetrics(n_bins):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2000, 10, generator=g, dtype=torch.float64) * 4
    probs = logits.softmax(1)
    probs[:50] = torch.nn.functional.one_hot(torch.arange(50) % 10, 10).double()  # confidence exactly 1
    labels = torch.randint(0, 10, (2000,), generator=g)
    ours = expected_calibration_error(probs, labels, n_bins)
    ref = multiclass_calibration_error(probs, labels, num_classes=10, n_bins=n_bins, norm="l1")
    assert ours == pytest.approx(float(ref), abs=1e-6)  # torchmetrics computes in float32


def test_overconfidence_error_by_hand():
    # two bins: conf 0.95 with accuracy 0.5 (overconfident), conf 0.55 with accuracy 1 (under)
    probs = torch.tensor([[0.95, 0.05]] * 4 + [[0.55, 0.45]] * 4, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 0, 0])
    assert overconfidence_error(probs, labels, 10) == pytest.approx(0.5 * 0.95 * (0.95 - 0.5))
    assert expected_calibration_error(probs, labels, 10) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)


# ------------------------------------------------------------------ intervals of the rates
def scores_with(k: int, n: int) -> torch.Tensor:
    """n scores of which exactly k are >= 0.5."""
    s = torch.zeros(n, dtype=torch.float64)
    s[:k] = 1.0
    return s


@pytest.mark.parametrize("confidence", [0.95, 0.9])
@pytest.mark.parametrize("k_in,k_out,n", [(0, 0, 40), (40, 40, 40), (37, 0, 40), (12, 40, 40), (1, 39, 40),
                                          (250, 3, 500)])
def test_rate_intervals_are_clopper_pearson(k_in, k_out, n, confidence):
    from scipy.stats import binomtest

    m = membership_metrics(scores_with(k_in, n), scores_with(k_out, n), 0.5, n_boot=50, confidence=confidence)
    for rate, k in (("tpr", k_in), ("fpr", k_out)):
        ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
        assert m[rate] == k / n
        assert m[f"{rate}_ci_low"] == pytest.approx(ref.low, abs=1e-12)
        assert m[f"{rate}_ci_high"] == pytest.approx(ref.high, abs=1e-12)
    # never collapsed at the ends: FPR 1 (the scaled source's headline) keeps a lower bound < 1
    if k_out == n:
        assert m["fpr_ci_low"] < 1 and m["fpr_ci_high"] == 1
    if k_out == 0:
        assert m["fpr_ci_low"] == 0 and m["fpr_ci_high"] > 0


def test_clopper_pearson_has_one_home():
    from overconf.gan.streaming import clopper_pearson as streamed
    from overconf.metrics.membership import clopper_pearson

    assert streamed is clopper_pearson


def test_tpr_at_fpr_reads_points_with_fpr_at_most_the_target():
    """TPR at 1% FPR with 100 non-members: the point flagging exactly one non-member (FPR = 0.01)
    counts (FPR <= x; Carlini et al.'s fig_fpr_tpr.py would take FPR < x, here 0)."""
    s_out = torch.arange(100, dtype=torch.float64)  # the largest is 99
    s_in = torch.tensor([98.5, 98.6, 98.7, 200.0], dtype=torch.float64)
    m = membership_metrics(s_in, s_out, 1000.0, n_boot=10)
    assert m["fpr_reached_0.01"] == pytest.approx(0.01)
    assert m["tpr_at_fpr_0.01"] == pytest.approx(1.0)  # threshold 98.5 flags 99 only
