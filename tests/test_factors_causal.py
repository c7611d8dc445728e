"""Causal-factors study (issue 15): structure learning respects the white and black lists, the
least-squares BIC equals pgmpy's, effects recover a known linear SCM and pass the refuters, the
averaged graph is acyclic, and a tiny grid runs end to end (one row per configuration and repeat)."""
import json

import numpy as np
import pandas as pd
import pytest

from overconf.config.factors import CausalAnalysis, parse_factors
from overconf.runner.factors.causal import (_fast_bic, averaged_graph, bootstrap_structure, estimate_effect, expert_lists,
                                     learn_structure, standardise)


def scm(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """x0 -> x1 -> y, x0 -> y, x2 -> y (linear, Gaussian noise)."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n)
    x1 = 0.8 * x0 + rng.normal(size=n)
    x2 = rng.normal(size=n)
    y = 1.5 * x1 - 0.5 * x0 + 0.7 * x2 + 0.5 * rng.normal(size=n)
    return pd.DataFrame({"x0": x0, "x1": x1, "x2": x2, "y": y})


def test_least_squares_bic_equals_pgmpys_bic_gauss():
    from pgmpy.estimators import BICGauss

    df = scm(60)
    ours, theirs = _fast_bic()(df), BICGauss(df)
    for var, parents in [("y", []), ("y", ["x1"]), ("x1", ["x0", "x2"]), ("y", ["x0", "x1", "x2"])]:
        assert ours.local_score(var, parents) == pytest.approx(theirs.local_score(var, parents), rel=1e-9)


def test_structure_learner_respects_white_and_black_lists():
    df = scm()
    free = set(learn_structure(df, [], []))
    assert {("x1", "y"), ("x2", "y")} <= free | {(v, u) for u, v in free}  # strong links are found
    black = [("x1", "y"), ("y", "x1"), ("x2", "y"), ("y", "x2")]
    white = [("x2", "x0")]  # no dependence in the data: only the white list puts it there
    edges = set(learn_structure(df, white, black))
    assert ("x2", "x0") in edges
    assert not edges & set(black)
    strengths = bootstrap_structure(df, white, black, 4, seed=0)
    assert strengths[("x2", "x0")] == 1.0 and not set(strengths) & set(black)


def test_expert_lists_forbid_edges_into_knobs_and_out_of_the_attack():
    an = CausalAnalysis(nodes=["train_size", "acc_gap", "mms_ood"], exogenous=["train_size"],
                        white_list=[["train_size", "acc_gap"], ["acc_gap", "attack"]], black_list=[["mms_ood", "attack"]])
    white, black = expert_lists(an.nodes, "attack_loss", an)
    assert white == [("train_size", "acc_gap"), ("acc_gap", "attack_loss")]
    assert ("acc_gap", "train_size") in black and ("attack_loss", "train_size") in black
    assert ("attack_loss", "acc_gap") in black and ("mms_ood", "attack_loss") in black
    assert not set(white) & set(black)


def test_averaged_graph_thresholds_orients_and_breaks_cycles():
    s = {("a", "b"): 0.9, ("b", "c"): 0.7, ("c", "a"): 0.6, ("c", "b"): 0.2, ("a", "d"): 0.3}
    g = averaged_graph(s, ["a", "b", "c", "d"], 0.5, white=[])
    assert set(g.edges()) == {("a", "b"), ("b", "c")}  # the cycle's weakest edge c -> a dropped; a -> d too weak
    g = averaged_graph(s, ["a", "b", "c", "d"], 0.5, white=[("d", "a")])
    assert ("d", "a") in g.edges()


def test_effects_recover_a_known_linear_scm_and_refuters_pass():
    import networkx as nx

    df = scm(600, seed=1)
    graph = nx.DiGraph([("x0", "x1"), ("x1", "y"), ("x0", "y"), ("x2", "y")])
    e1 = estimate_effect(df, "x1", "y", graph=graph, simulations=10, seed=0)
    assert e1["effect"] == pytest.approx(1.5, abs=0.1) and e1["ci_low"] < 1.5 < e1["ci_high"]
    assert e1["adjusted_for"] == "x0"
    assert e1["random_common_cause_passes"] and e1["data_subset_passes"]
    e0 = estimate_effect(df, "x0", "y", graph=graph, simulations=10, seed=0)  # total: -0.5 + 0.8 * 1.5
    assert e0["effect"] == pytest.approx(0.7, abs=0.15)
    e2 = estimate_effect(df, "x2", "y", common_causes=["x0"], simulations=10, seed=0)
    assert e2["effect"] == pytest.approx(0.7, abs=0.1) and e2["random_common_cause_passes"]
    data, constant = standardise(df.assign(k=1.0), ["x0", "y", "k"])
    assert constant == ["k"] and np.allclose(data.std(ddof=0), 1.0)


def test_tiny_grid_end_to_end(tmp_path):
    import overconf

    raw = {"study": "causal_factors", "name": "tiny_factors", "device": "cpu", "progress": False,
           "data": {"test_size": 60, "eval_size": 40, "calibration_size": 40, "source_size": 30},
           "grid": {"widths": [4], "params": {"hidden": 16}, "train_sizes": [60, 100],
                    "losses": ["cross_entropy", "mse"], "weight_decays": [0.0], "label_smoothings": [0.0],
                    "repeats": 2},
           "recipe": {"epochs": 1, "lr": 0.003},
           "sources": ["gaussian", "permuted"],
           "attacks": {"mlp_epochs": 2, "shokri_epochs": 2, "memguard": {"steps": 3, "epochs": 5},
                       "memguard_attacks": ["loss", "max_score"]},
           "analysis": {"outcomes": ["attack_loss", "fpr_ood"], "bootstrap": 2, "refute_simulations": 2, "folds": 2},
           "figures": True, "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "runs")}
    result = overconf.run(raw)
    frame = result.frame
    assert len(frame) == 4 * 2  # one row per configuration and repeat
    assert sorted(zip(frame["config"], frame["repeat"])) == [(c, r) for c in range(4) for r in range(2)]
    for col in ("acc_gap", "loss_gap", "bias2", "variance", "num_params", "centroid_distance", "ece",
                "centroid_distance_sorted3", "centroid_distance_classwise",
                "overconfidence", "mms_gaussian", "attack_top10_label", "attack_shokri", "fpr_ood",
                "attack_loss_memguard", "fpr_ood_memguard"):
        assert col in frame.columns and frame[col].notna().all(), col
    assert "attack_top3_memguard" not in frame.columns
    assert (frame["acc_gap"] - (frame["train_acc"] - frame["test_acc"])).abs().max() < 1e-12
    assert (frame.groupby("config")["bias2"].nunique() == 1).all()  # one decomposition per configuration
    out = result.run_dir
    for name in ("factors.csv", "effects.csv", "edges.csv", "summary.md", "analysis.json", "figures/predictive_power.png",
                 "figures/graph_attack_loss.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "status.json").read_text())["status"] == "complete"
    summary = (out / "summary.md").read_text()
    assert "largest" not in summary and "Overconfidence causes" in summary
    for claim in ("High predictive power (0.90)", "imperfect generalization only", "share causal factors"):
        assert claim in summary, claim
    assert "one row per configuration" in summary
    assert all("beside_gap" in r for r in result.analysis["outcomes"].values() if "effects" in r)
    assert len(pd.read_csv(out / "factors.csv")) == 8
    again = overconf.run(raw)  # everything cached: the same table
    pd.testing.assert_frame_equal(again.frame.drop(columns="train_seconds"), frame.drop(columns="train_seconds"))
    with pytest.raises(Exception, match="analysis.outcomes"):
        overconf.run(raw | {"analysis": {"outcomes": ["attack_lira"]}})
    assert parse_factors(raw).grid.repeats == 2


def test_structure_learning_is_the_same_in_every_process(tmp_path):
    """pgmpy breaks ties in set order (string hashing differs per process): ours sorts them."""
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(5)  # a 10-variable chain: pgmpy's own order gave 3 graphs for 3 hash seeds
    x = {"a": rng.normal(size=72)}
    names = "abcdefghij"
    for i, c in enumerate(names[1:], 1):
        x[c] = 0.6 * x[names[i - 1]] + (0.4 * x[names[i - 2]] if i > 1 else 0) + rng.normal(size=72)
    pd.DataFrame(x).to_csv(tmp_path / "d.csv", index=False)
    code = ("import pandas as pd; from overconf.runner.factors.causal import bootstrap_structure; "
            f"print(sorted(bootstrap_structure(pd.read_csv({str(tmp_path / 'd.csv')!r}), [], [], 4, 0).items()))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=os.environ | {"PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}).stdout
            for seed in ("1", "2", "3")}
    assert len(outs) == 1
    out = outs.pop()
    assert "'b', 'c'" in out or "'c', 'b'" in out  # the chain's links are found
