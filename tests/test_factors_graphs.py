"""Graphs per loss and per weight decay with the paper's domain knowledge (Baluta et al. 2022;
teobaluta/etio code/analyze/infer_graph.R, create_wl_bl): the 8 white-listed edges are in every
learned graph, no black-listed edge ever is, and each group's graph is learned only on its rows."""
import numpy as np
import pandas as pd
import pytest

from overconf.config.factors import CausalAnalysis, parse_factors
from overconf.core.errors import ConfigError
from overconf.runner.factors import causal
from overconf.runner.factors.knowledge import expert_lists, paper_nodes

# the authors' white list in their own names (infer_graph.R, create_wl_bl's wl), and our columns for them
PAPER_WL = [("TrainAcc", "AccDiff"), ("TrainLoss", "LossDiff"), ("TrainLoss", "TrainBias2"), ("TrainVar", "TrainBias2"),
            ("TestLoss", "LossDiff"), ("TestLoss", "TestBias2"), ("TestVar", "TestBias2"), ("TestAcc", "AccDiff")]
COLUMN = {"TrainAcc": "train_acc", "TestAcc": "test_acc", "AccDiff": "acc_gap", "TrainLoss": "train_loss",
          "TestLoss": "test_loss", "LossDiff": "loss_gap", "TrainVar": "variance_train", "TestVar": "variance",
          "TrainBias2": "bias2_train", "TestBias2": "bias2", "NumParams": "num_params", "TrainSize": "train_size",
          "CentroidDistance": "centroid_distance", "WeightDecay": "weight_decay"}
ROOTS = ["NumParams", "TrainSize", "WeightDecay"]


def paper_black(outcome: str) -> set:
    """create_wl_bl's black list restated rule by rule, in the paper's names (then mapped)."""
    feats = [k for k in COLUMN]
    non_root = [f for f in feats if f not in ROOTS]
    bl = {(outcome, f) for f in feats}  # tiers2blacklist(list(features, attack))
    only_roots_plus = {"TrainVar": [], "TrainBias2": ["TrainVar", "TrainLoss"], "TrainLoss": [], "TrainAcc": [],
                       "TestVar": [], "TestBias2": ["TestVar", "TestLoss"]}
    for node, extra in only_roots_plus.items():
        bl |= {(x, node) for x in non_root if x != node and x not in extra}
    for root in ROOTS:
        bl |= {(x, root) for x in non_root}
    for node in ("TestLoss", "TestAcc"):
        bl |= {(x, node) for x in non_root if x != node and not x.startswith(("Train", "Test"))}
    bl |= {("TestVar", "TestLoss"), ("TrainVar", "TrainLoss")}
    return {(COLUMN.get(u, u), COLUMN.get(v, v)) for u, v in bl}


def test_paper_lists_are_the_authors_white_list_and_black_lists():
    an = CausalAnalysis(knowledge="paper", exogenous=["num_params", "train_size", "weight_decay"])
    nodes = paper_nodes("attack_loss", an)
    assert sorted(nodes) == sorted(COLUMN.values())
    white, black = expert_lists(nodes, "attack_loss", an)
    assert sorted(white) == sorted((COLUMN[u], COLUMN[v]) for u, v in PAPER_WL) and len(white) == 8
    assert set(black) == paper_black("attack_loss")
    assert ("num_params", "train_size") not in black  # root -> root is not forbidden by the paper
    assert ("loss_gap", "bias2") in black and ("test_loss", "bias2") not in black
    # sorted_3 centroid for the top-3 and MemGuard attacks (get_features)
    assert "centroid_distance_sorted3" in paper_nodes("attack_top3_label", an)
    assert "centroid_distance_sorted3" in paper_nodes("attack_loss_memguard", an)
    assert "centroid_distance" not in paper_nodes("attack_top3", an)


def hand_made_grid(seed: int = 0) -> pd.DataFrame:
    """2 losses x 2 weight decays x 8 configurations, every paper column; on the CE rows the attack
    follows test_loss, on the MSE rows variance_train is constant (TrainVar = 0)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, (loss, wd) in enumerate([(lo, w) for lo in ("cross_entropy", "mse") for w in (0.0, 5e-4) for _ in range(8)]):
        r = {c: rng.normal() for c in COLUMN.values()}
        r |= {"config": i, "loss": loss, "loss_mse": float(loss == "mse"), "weight_decay": wd,
              "label_smoothing": 0.0, "num_params": float(rng.choice([1e3, 4e3, 9e3])),
              "train_size": float(rng.choice([500, 1000]))}
        r["acc_gap"] = r["train_acc"] - r["test_acc"]
        r["loss_gap"] = r["test_loss"] - r["train_loss"]
        r["bias2"] = r["test_loss"] - 0.3 * r["variance"] + 0.1 * rng.normal()
        if loss == "mse":
            r["variance_train"] = 0.0
        r["attack_loss"] = (2 * r["test_loss"] if loss == "cross_entropy" else r["acc_gap"]) + 0.1 * rng.normal()
        rows.append(r)
    return pd.DataFrame(rows)


def test_graphs_per_loss_and_weight_decay_with_the_papers_lists(monkeypatch):
    frame = hand_made_grid()
    an = CausalAnalysis(knowledge="paper", graph_by=["loss", "weight_decay"], outcomes=["attack_loss"], bootstrap=3,
                        refute_simulations=1, folds=2)
    seen = {}
    original = causal.analyse_outcome

    def spy(rows, outcome, an_, seed):
        seen[tuple(sorted(set(zip(rows["loss"], rows["weight_decay"]))))] = sorted(rows["config"])
        return original(rows, outcome, an_, seed)

    monkeypatch.setattr(causal, "analyse_outcome", spy)
    result = causal.analyse(frame, an, seed=0)
    # one graph per (loss, weight decay), each on only its 8 rows
    expected = {((lo, w),): list(range(8 * j, 8 * j + 8))
                for j, (lo, w) in enumerate([(lo, w) for lo in ("cross_entropy", "mse") for w in (0.0, 5e-4)])}
    assert seen == expected
    assert sorted(result["outcomes"]) == ["attack_loss (loss=cross_entropy weight_decay=0.0)",
                                          "attack_loss (loss=cross_entropy weight_decay=0.0005)",
                                          "attack_loss (loss=mse weight_decay=0.0)",
                                          "attack_loss (loss=mse weight_decay=0.0005)"]
    black_all = paper_black("attack_loss")
    for key, res in result["outcomes"].items():
        assert res["rows"] == 8 and res["outcome"] == "attack_loss"
        # constant within the group: weight decay and loss; TrainVar on the MSE rows only
        assert ("variance_train" in res["constant"]) == ("mse" in key)
        present = set(res["white"]) | {n for e in res["strengths"] for n in e}
        white = {(COLUMN[u], COLUMN[v]) for u, v in PAPER_WL}
        if "mse" in key:
            white = {e for e in white if "variance_train" not in e}
        assert set(res["white"]) == white and present
        # every bootstrap graph holds each white-listed edge, and the averaged graph too
        assert all(res["strengths"].get(e) == 1.0 for e in white), key
        assert white <= set(res["edges"])
        assert not (set(res["strengths"]) | set(res["edges"])) & black_all, key
        assert set(res["black"]) <= black_all
    # the CE graphs find the CE rows' cause of the attack (test_loss), which the MSE rows lack
    ce = result["outcomes"]["attack_loss (loss=cross_entropy weight_decay=0.0)"]
    assert ("test_loss", "attack_loss") in ce["edges"]


def test_pooled_is_the_default_and_bad_values_are_config_errors():
    raw = {"study": "causal_factors"}
    an = parse_factors(raw).analysis
    assert an.graph_by == [] and an.knowledge == "overconf"
    frame = hand_made_grid()
    assert [label for label, _ in causal.graph_groups(frame, [])] == [""]
    assert [len(r) for _, r in causal.graph_groups(frame, ["loss"])] == [16, 16]
    assert parse_factors(raw | {"analysis": {"graph_by": ["loss", "weight_decay"], "knowledge": "paper"}}).analysis.knowledge \
        == "paper"
    with pytest.raises(ConfigError, match="analysis.graph_by"):
        parse_factors(raw | {"analysis": {"graph_by": ["optimizer"]}})
    with pytest.raises(ConfigError, match="analysis.knowledge"):
        parse_factors(raw | {"analysis": {"knowledge": "bnlearn"}})


def test_a_group_with_too_few_rows_is_skipped_not_a_crash():
    frame = hand_made_grid().iloc[:11]  # CE wd 0: 8 rows, CE wd 5e-4: 3 rows
    an = CausalAnalysis(knowledge="paper", graph_by=["weight_decay"], outcomes=["attack_loss"], bootstrap=1,
                        refute_simulations=1, folds=2)
    result = causal.analyse(frame, an, seed=0)
    assert "3 rows" in result["outcomes"]["attack_loss (weight_decay=0.0005)"]["skipped"]
    assert "edges" in result["outcomes"]["attack_loss (weight_decay=0.0)"]
