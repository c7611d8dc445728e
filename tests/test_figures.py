"""FPR bar figure: attacks grouped by family (reference study's three first), legend outside the
axes, written for many attacks."""
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np

from overconf.report.figures import attack_family, fpr_bars_figure, group_attacks, study_figures
from overconf.report.tables import Table

MANY = ["loss", "shokri", "gap", "salem_top10", "entropy", "lira_online", "local_variation", "true_class_confidence",
        "modified_entropy", "rmia", "scaled_logit", "salem_top3_label", "max_score", "salem_top10_label",
        "label_only_augmentation", "loss_mean_train_loss", "adversarial_distance", "salem_top3", "my_custom",
        "label_only_noise", "lira_offline_global", "max_score_accuracy"]
SOURCES = ["test", "digits", "scaled", "gaussian", "fake", "fake_conditional"]


def test_group_attacks_orders_by_family_reference_first():
    order, groups = group_attacks(MANY)
    assert [g for g, _ in groups] == ["reference study", "threshold", "ML-Leaks", "label-only", "white-box",
                                      "reference models", "other"]
    assert dict(groups) == {
        "reference study": ["max_score", "entropy", "salem_top3"],
        "threshold": ["loss", "true_class_confidence", "modified_entropy", "scaled_logit", "loss_mean_train_loss",
                      "max_score_accuracy"],
        "ML-Leaks": ["salem_top10", "salem_top3_label", "salem_top10_label"],
        "label-only": ["gap", "label_only_augmentation", "label_only_noise"],
        "white-box": ["local_variation", "adversarial_distance"],
        "reference models": ["shokri", "lira_online", "rmia", "lira_offline_global"],
        "other": ["my_custom"]}
    assert order == [a for _, g in groups for a in g] and sorted(order) == sorted(MANY)
    # empty families are left out; the reference study's attacks keep their order whatever the input order
    assert group_attacks(["salem", "gap", "entropy", "max_score"]) == (
        ["max_score", "entropy", "salem", "gap"], [("reference study", ["max_score", "entropy", "salem"]),
                                                   ("label-only", ["gap"])])
    assert attack_family("modified_entropy") == "threshold" and attack_family("entropy") == "reference study"


def _rows(attacks, sources, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for a in attacks:
        rows.append({"model": "m", "seed": 0, "setting": "baseline", "attack": a, "source": "test", "metric": "tpr",
                     "value": 0.9})
        for s in sources:
            v = float(rng.uniform(0.05, 0.95))
            rows += [{"model": "m", "seed": 0, "setting": "baseline", "attack": a, "source": s, "metric": m,
                      "value": v + d} for m, d in (("fpr", 0.0), ("fpr_ci_low", -0.03), ("fpr_ci_high", 0.03))]
    return rows


def test_fpr_bars_for_many_attacks_legend_outside_and_gaps_between_families(tmp_path):
    fig = fpr_bars_figure(Table(_rows(MANY, SOURCES)), "m", "baseline", MANY, SOURCES)
    ax = fig.axes[0]
    fig.canvas.draw()
    legend = ax.get_legend()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # outside the axes, on the right
    texts = [t.get_text() for t in legend.get_texts()]
    order, groups = group_attacks(MANY)
    expected = [x for family, members in groups for x in [family] + members]
    assert texts == expected
    # bars of the first cluster (members' TPR), left to right, follow the grouped order, with a wider
    # gap between two families than between two attacks of one family
    from matplotlib.container import BarContainer

    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    firsts = sorted((c.patches[0].get_x(), c.get_label()) for c in bars)
    assert [label for _, label in firsts] == order
    xs = np.array([x for x, _ in firsts])
    steps = np.diff(xs)
    width = bars[0].patches[0].get_width()
    boundaries = np.cumsum([len(g) for _, g in groups])[:-1] - 1
    assert np.allclose(np.delete(steps, boundaries), width)
    assert np.all(steps[boundaries] > 1.5 * width)
    plt.close(fig)

    result = SimpleNamespace(rows=_rows(MANY, SOURCES), cells=[], config=None)
    written = study_figures(result, tmp_path / "figures")
    assert [p.name for p in written] == ["fpr_bars_m_baseline.png"]
    assert written[0].stat().st_size > 20_000


def test_gan_report_names_queried_attacks_it_cannot_stream():
    """The default study combines GAN sources with queried attacks, whose requirements are
    SignalRequests (not names): the GAN summary's list of skipped attacks must not crash on them."""
    from overconf.attacks import ATTACKS
    from overconf.gan.cell_hooks import unstreamable

    attacks = [ATTACKS["max_score"](), ATTACKS["label_only_augmentation"](flip=True, shift=1),
               ATTACKS["local_variation"]()]
    skipped = unstreamable(attacks)
    assert list(skipped) == ["label_only_augmentation", "local_variation"]
    assert all(text.startswith("needs extra signals (") and "SignalRequest" not in text for text in skipped.values())
