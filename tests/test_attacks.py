"""Attacks on synthetic score distributions with known answers."""
import math

import pytest
import torch

from overconf.attacks import ATTACKS, Signals
from overconf.attacks.thresholds import accuracy_threshold, fpr_threshold, youden_threshold


def signals_with_max_score(max_score: torch.Tensor, k: int = 10) -> Signals:
    """Probability vectors whose top class has ``max_score`` and the rest share the remainder."""
    p = ((1 - max_score) / (k - 1)).unsqueeze(1).repeat(1, k)
    p[:, 0] = max_score
    return Signals(p.log(), torch.zeros(len(p), dtype=torch.long))


def logit_gaussians(n: int, mu_in: float, mu_out: float, seed: int = 0):
    """Max scores sigmoid(N(mu, 1)) for members and non-members."""
    g = torch.Generator().manual_seed(seed)
    z_in = torch.randn(n, generator=g, dtype=torch.float64) + mu_in
    z_out = torch.randn(n, generator=g, dtype=torch.float64) + mu_out
    return torch.sigmoid(z_in), torch.sigmoid(z_out)


def test_youden_threshold_of_equal_variance_gaussians_is_the_midpoint():
    g = torch.Generator().manual_seed(0)
    s_in = torch.randn(40000, generator=g, dtype=torch.float64) + 2.0
    s_out = torch.randn(40000, generator=g, dtype=torch.float64)
    assert youden_threshold(s_in, s_out) == pytest.approx(1.0, abs=0.08)
    assert accuracy_threshold(s_in, s_out) == pytest.approx(1.0, abs=0.08)


def test_accuracy_threshold_with_unequal_sizes_shifts_towards_the_rarer_class():
    g = torch.Generator().manual_seed(1)
    s_in = torch.randn(5000, generator=g, dtype=torch.float64) + 2.0
    s_out = torch.randn(45000, generator=g, dtype=torch.float64)
    # Bayes rule with priors 0.1 / 0.9: t = 1 + ln(9) / 2
    assert accuracy_threshold(s_in, s_out) == pytest.approx(1 + math.log(9) / 2, abs=0.12)


def test_fpr_threshold_reaches_at_most_the_target():
    s_out = torch.arange(1000, dtype=torch.float64)
    t = fpr_threshold(s_out, 0.01)
    assert float((s_out >= t).double().mean()) <= 0.01
    assert float((s_out >= t - 1).double().mean()) > 0.01


def test_max_score_attack_recovers_threshold_and_transfers():
    s_in, s_out = logit_gaussians(20000, 2.0, 0.0)
    fitted = ATTACKS["max_score"]().fit(signals_with_max_score(s_in), signals_with_max_score(s_out),
                                        generator=torch.Generator().manual_seed(0))
    # optimal cut at logit 1 -> max score sigmoid(1); the attack scores log max p
    assert math.exp(fitted.threshold) == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item(), abs=0.02)
    t_in, t_out = logit_gaussians(20000, 2.0, 0.0, seed=1)
    tpr = fitted.decide(signals_with_max_score(t_in)).double().mean()
    fpr = fitted.decide(signals_with_max_score(t_out)).double().mean()
    # Phi(1) = 0.841 and 1 - Phi(1) = 0.159 at the optimal threshold
    assert tpr == pytest.approx(0.841, abs=0.02)
    assert fpr == pytest.approx(0.159, abs=0.02)


def test_entropy_attack_flags_low_entropy():
    s_in, s_out = logit_gaussians(10000, 3.0, 0.0)
    a_in, a_out = signals_with_max_score(s_in), signals_with_max_score(s_out)
    fitted = ATTACKS["entropy"]().fit(a_in, a_out, generator=torch.Generator().manual_seed(0))
    # entropy is monotone decreasing in max score here, so the rule equals a max-score threshold
    flagged = fitted.decide(a_in)
    assert flagged.double().mean() == pytest.approx(0.933, abs=0.03)  # Phi(1.5)
    assert fitted.decide(a_out).double().mean() == pytest.approx(0.067, abs=0.03)
    # the flagged inputs are exactly those above a max-score cut
    cut = s_in[flagged].min()
    assert bool((s_in[~flagged] < cut).all())


def test_salem_mlp_separates_top_k_distributions():
    s_in, s_out = logit_gaussians(3000, 2.0, -1.0)
    attack = ATTACKS["salem"](k=3, epochs=30)
    assert attack.label == "salem_top3"
    fitted = attack.fit(signals_with_max_score(s_in), signals_with_max_score(s_out),
                        generator=torch.Generator().manual_seed(0))
    t_in, t_out = logit_gaussians(3000, 2.0, -1.0, seed=2)
    tpr = fitted.decide(signals_with_max_score(t_in)).double().mean()
    fpr = fitted.decide(signals_with_max_score(t_out)).double().mean()
    # the Bayes-optimal rule reaches TPR - FPR = 2 Phi(1.5) - 1 = 0.866
    assert tpr - fpr > 0.8


def test_salem_is_reproducible_from_the_generator():
    s_in, s_out = logit_gaussians(500, 1.0, 0.0)
    a, b = (ATTACKS["salem"](k=3, epochs=5).fit(signals_with_max_score(s_in), signals_with_max_score(s_out),
                                                generator=torch.Generator().manual_seed(7)) for _ in range(2))
    probe = signals_with_max_score(torch.linspace(0.2, 0.99, 50, dtype=torch.float64))
    assert torch.equal(a.score(probe), b.score(probe))
