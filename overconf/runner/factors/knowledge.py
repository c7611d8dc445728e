"""Domain knowledge of the causal graph: the nodes, the white list (required edges) and the black
list (forbidden edges), overconf's or the paper's (Baluta et al., CCS 2022, seed 000).

overconf's (``analysis.knowledge: overconf``): the graph over ``analysis.nodes``; black list =
every edge into a grid knob (``exogenous``), every edge out of the attack, plus ``black_list``;
white list ``white_list`` ('attack' names the outcome).

The paper's (``analysis.knowledge: paper``), as in the authors' code (teobaluta/etio,
code/analyze/infer_graph.R: ``get_features``, ``get_root_nodes``, ``create_wl_bl``), with its
node names mapped to the factor table's columns (:data:`PAPER_NAMES`):

- nodes: TrainAcc, TestAcc, AccDiff, TrainLoss, TestLoss, LossDiff, TrainVar, TestVar,
  TrainBias2, TestBias2, NumParams, CentroidDistance (``sorted_3`` for the Top3 ML-Leaks and
  MemGuard attacks, else ``origin``), TrainSize (and WeightDecay when the weight decays are
  pooled); overconf adds its other grid knobs (``exogenous``), roots like the paper's NumParams,
  WeightDecay and TrainSize.
- white list (8 edges): TrainAcc -> AccDiff, TrainLoss -> LossDiff, TrainLoss -> TrainBias2,
  TrainVar -> TrainBias2, TestLoss -> LossDiff, TestLoss -> TestBias2, TestVar -> TestBias2,
  TestAcc -> AccDiff.
- black list: no edge out of the attack; no edge from a non-root node into a root (edges between
  roots are not forbidden there); TrainVar, TrainLoss, TrainAcc and TestVar take parents only
  among the roots; TrainBias2 only among the roots, TrainVar and TrainLoss; TestBias2 only among
  the roots, TestVar and TestLoss; TestLoss and TestAcc only among the roots and the Train* /
  Test* nodes; no TestVar -> TestLoss and no TrainVar -> TrainLoss.
"""
from __future__ import annotations

from overconf.config.factors import CausalAnalysis

PAPER_NAMES = {"TrainAcc": "train_acc", "TestAcc": "test_acc", "AccDiff": "acc_gap", "TrainLoss": "train_loss",
               "TestLoss": "test_loss", "LossDiff": "loss_gap", "TrainVar": "variance_train", "TestVar": "variance",
               "TrainBias2": "bias2_train", "TestBias2": "bias2", "NumParams": "num_params",
               "CentroidDistance.origin.": "centroid_distance", "CentroidDistance.sorted_3.": "centroid_distance_sorted3",
               "TrainSize": "train_size", "WeightDecay": "weight_decay"}
"""the paper's node (etio's column) -> the factor table's column"""
P = PAPER_NAMES
PAPER_WHITE_LIST = [(P["TrainAcc"], P["AccDiff"]), (P["TrainLoss"], P["LossDiff"]), (P["TrainLoss"], P["TrainBias2"]),
                    (P["TrainVar"], P["TrainBias2"]), (P["TestLoss"], P["LossDiff"]), (P["TestLoss"], P["TestBias2"]),
                    (P["TestVar"], P["TestBias2"]), (P["TestAcc"], P["AccDiff"])]
"""the paper's 8 required edges (etio create_wl_bl's ``wl``)"""
TRAIN_TEST = {P[k] for k in ("TrainAcc", "TestAcc", "TrainLoss", "TestLoss", "TrainVar", "TestVar", "TrainBias2",
                             "TestBias2")}
"""the paper's Train* / Test* nodes"""
ONLY_FROM = {P["TrainVar"]: set(), P["TrainLoss"]: set(), P["TrainAcc"]: set(), P["TestVar"]: set(),
             P["TrainBias2"]: {P["TrainVar"], P["TrainLoss"]}, P["TestBias2"]: {P["TestVar"], P["TestLoss"]}}
"""node -> the non-root nodes it may take parents from"""


def paper_nodes(outcome: str, an: CausalAnalysis) -> list[str]:
    """The paper's features for ``outcome`` (etio get_features), then overconf's other grid knobs."""
    sorted3 = outcome in ("attack_top3", "attack_top3_label") or outcome.endswith("_memguard")
    centroid = P["CentroidDistance.sorted_3." if sorted3 else "CentroidDistance.origin."]
    nodes = [P[k] for k in ("TrainAcc", "TestAcc", "AccDiff", "TrainLoss", "TestLoss", "LossDiff", "TrainVar",
                            "TestVar", "TrainBias2", "TestBias2", "NumParams")] + [centroid, P["TrainSize"]]
    return list(dict.fromkeys([*nodes, P["WeightDecay"], *an.exogenous]))


def graph_nodes(outcome: str, an: CausalAnalysis) -> list[str]:
    """The graph's nodes besides the outcome."""
    return paper_nodes(outcome, an) if an.knowledge == "paper" else list(an.nodes)


def paper_lists(nodes: list[str], outcome: str, roots: list[str]) -> tuple[list, list]:
    """(white, black) of the paper (module docstring) over ``nodes + [outcome]``."""
    roots = [r for r in roots if r in nodes]
    others = [x for x in nodes if x not in roots]
    black = {(outcome, x) for x in nodes}
    black |= {(x, r) for r in roots for x in others}
    for node, allowed in ONLY_FROM.items():
        black |= {(x, node) for x in others if x != node and x not in allowed}
    for node in (P["TestLoss"], P["TestAcc"]):
        black |= {(x, node) for x in others if x != node and x not in TRAIN_TEST}
    black |= {(P["TestVar"], P["TestLoss"]), (P["TrainVar"], P["TrainLoss"])}
    white = [(u, v) for u, v in PAPER_WHITE_LIST if u in nodes and v in nodes]
    black = sorted((u, v) for u, v in black if u in nodes + [outcome] and v in nodes and (u, v) not in white)
    return white, black


def expert_lists(nodes: list[str], outcome: str, an: CausalAnalysis) -> tuple[list, list]:
    """(white, black) edge lists over ``nodes + [outcome]``: the paper's (:func:`paper_lists`, the
    ``exogenous`` knobs as roots) or overconf's ('attack' in the user lists is the outcome)."""
    if an.knowledge == "paper":
        return paper_lists(nodes, outcome, list(an.exogenous))
    every = nodes + [outcome]
    name = {"attack": outcome}
    white = [(name.get(u, u), name.get(v, v)) for u, v in an.white_list]
    white = [(u, v) for u, v in white if u in every and v in every]
    black = {(x, e) for e in an.exogenous if e in every for x in every if x != e}
    black |= {(outcome, x) for x in nodes}
    black |= {(name.get(u, u), name.get(v, v)) for u, v in an.black_list}
    black = sorted((u, v) for u, v in black if u in every and v in every and (u, v) not in white)
    return white, black
