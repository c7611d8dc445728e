"""The run folder of a causal-factors study: factors.csv (one row per configuration and repeat),
edges.csv (bootstrap edge strengths), effects.csv (effects per factor and attack with
refutations), figures/graph_<outcome>.png (learned graph, edge widths = strengths),
figures/predictive_power.png, analysis.json and summary.md with the verdicts."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from overconf.core.cache import atomic_write_text
from overconf.runner.factors.verdicts import (gap_not_alone_verdict, overconfidence_verdict, predictive_verdict,
                                             shared_factors_verdict)


def effects_frame(analysis: dict) -> pd.DataFrame:
    rows = [e | ({"graph": res["group"]} if res.get("group") else {}) for res in analysis["outcomes"].values()
            for e in res.get("effects", [])]
    rows += [e | {"analysis": "overconfidence"} for e in analysis.get("overconfidence", [])]
    return pd.DataFrame(rows)


def edges_frame(analysis: dict) -> pd.DataFrame:
    rows = []
    for outcome, res in analysis["outcomes"].items():
        kept = set(map(tuple, res.get("edges", [])))
        white = set(map(tuple, res.get("white", [])))
        for (u, v), s in res.get("strengths", {}).items():
            rows.append({"outcome": outcome, "from": u, "to": v, "strength": s, "in_averaged_graph": (u, v) in kept,
                         "white_listed": (u, v) in white})
        for u, v in kept - set(res.get("strengths", {})):
            rows.append({"outcome": outcome, "from": u, "to": v, "strength": 0.0, "in_averaged_graph": True,
                         "white_listed": (u, v) in white})
    return pd.DataFrame(rows, columns=["outcome", "from", "to", "strength", "in_averaged_graph", "white_listed"])


def draw_graph(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    g = nx.DiGraph()
    nodes = sorted({n for e in res["edges"] for n in e} | {res["outcome"]})
    g.add_nodes_from(nodes)
    for u, v in res["edges"]:
        s = res["strengths"].get((u, v), 0.0) + res["strengths"].get((v, u), 0.0)
        g.add_edge(u, v, strength=min(s, 1.0))
    for layer, names in enumerate(nx.topological_generations(g)):
        for n in names:
            g.nodes[n]["layer"] = layer
    pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal", scale=-1)
    fig, ax = plt.subplots(figsize=(10, 7))
    widths = [0.5 + 4 * g.edges[e]["strength"] for e in g.edges]
    colors = ["tab:red" if n == res["outcome"] else "lightsteelblue" for n in g.nodes]
    nx.draw_networkx(g, pos, ax=ax, node_color=colors, node_size=1400, font_size=8, width=widths,
                     arrowsize=14, edge_color="dimgray")
    nx.draw_networkx_edge_labels(g, pos, ax=ax, font_size=7,
                                 edge_labels={e: f"{g.edges[e]['strength']:.2f}" for e in g.edges})
    ax.set_title(f"learned graph for {res['outcome']} (edge: bootstrap strength)")
    ax.axis("off")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def draw_predictive(analysis: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [(o, r["predictive"]) for o, r in analysis["outcomes"].items() if "predictive" in r]
    cols = min(4, max(1, len(done)))
    rows = max(1, math.ceil(len(done) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax, (outcome, p) in zip(axes.flat, done):
        ax.scatter(p["observed"], p["predicted"], s=10)
        lo = min(p["observed"] + p["predicted"])
        hi = max(p["observed"] + p["predicted"])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(f"{outcome}\nr = {p['r']:.2f}", fontsize=8)
        ax.set_xlabel("observed", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
    for ax in list(axes.flat)[len(done):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(frame: pd.DataFrame, columns: list[str]) -> str:
    cols = [c for c in columns if c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in frame[cols].iterrows():
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def write_report(result, out: Path) -> None:
    cfg, frame, analysis = result.config, result.frame, result.analysis
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    frame.to_csv(out / "factors.csv", index=False)
    effects = effects_frame(analysis)
    effects.to_csv(out / "effects.csv", index=False)
    edges_frame(analysis).to_csv(out / "edges.csv", index=False)
    if cfg.figures:
        for outcome, res in analysis["outcomes"].items():
            if "edges" in res:
                draw_graph(res, figures / f"graph_{re.sub(r'[^A-Za-z0-9_.=-]+', '_', outcome).strip('_')}.png")
        draw_predictive(analysis, figures / "predictive_power.png")
    plain = {"outcomes": {o: {k: ([[*e, s] for e, s in v.items()] if k == "strengths" else v) for k, v in r.items()}
                          for o, r in analysis["outcomes"].items()}, "overconfidence": analysis.get("overconfidence", [])}
    atomic_write_text(out / "analysis.json", json.dumps(plain, indent=1, default=float) + "\n")
    claims = [("High predictive power (0.90) on unseen experiments (held-out configurations, Pearson r >= 0.90)",
               predictive_verdict(analysis)),
              ("MI attacks are not a consequence of imperfect generalization only (a factor keeps an effect "
               "with the accuracy gap adjusted for)", gap_not_alone_verdict(analysis)),
              ("Generalization and MI attacks share causal factors (common ancestors of acc_gap and the attack)",
               shared_factors_verdict(analysis))]
    oc, oc_lines = overconfidence_verdict(analysis)
    n_conf = frame["config"].nunique()
    lines = [f"# {cfg.name}: causal factors of membership leakage",
             f"{n_conf} configurations x {cfg.grid.repeats} repeats = {len(frame)} models; the analysis reads "
             f"one row per {cfg.analysis.rows} "
             f"({cfg.grid.arch}, {cfg.data.dataset}); wall time {result.seconds / 60:.1f} min "
             f"(trainings, factor table and analysis; cached models and rows are reused).",
             f"Training splits: {cfg.grid.splits}; graphs: "
             f"{'one per ' + ' and '.join(cfg.analysis.graph_by) if cfg.analysis.graph_by else 'one pooled graph'}; "
             f"domain knowledge (nodes, white and black lists): {cfg.analysis.knowledge}'s.", "",
             "## Verdicts",
             *[x for claim, (v, ls) in claims for x in (f"**{claim} (Baluta et al.): {v}.**", *ls, "")],
             f"**Overconfidence causes false positives on OOD / noise inputs independently of the gap: {oc}.**",
             *oc_lines, "",
             "Effects are total effects by back-door adjustment (DoWhy, linear regression) on standardised columns: "
             "standard deviations of the outcome per standard deviation of the factor.", "",
             "## Predictive power (Pearson r of held-out predictions)",
             "| outcome | overconf: K-fold by configuration | paper: 20% of the rows held out |", "|---|---|---|",
             *[f"| {o} | {r['predictive']['r']:.3f} | {r['predictive_holdout']['r']:.3f} |"
               for o, r in analysis["outcomes"].items() if "predictive" in r], "",
             "## Effects per factor and attack (factors with a causal path)"]
    if len(effects):
        on_path = effects[effects["adjusted_for"] != "no causal path"] if "adjusted_for" in effects else effects
        on_path = on_path.fillna({"graph": "pooled"}) if "graph" in on_path else on_path
        lines.append(_table(on_path, ["outcome", "graph", "factor", "effect", "ci_low", "ci_high", "effect_min_to_max",
                                      "random_common_cause_passes",
                                      "data_subset_passes", "adjusted_for"]))
    lines += ["", "## Factor table (means over repeats, first rows)",
              _table(frame.groupby("config").mean(numeric_only=True).reset_index().head(12),
                     ["config", "width", "train_size", "loss_mse", "weight_decay", "label_smoothing", "train_acc",
                      "test_acc", "acc_gap", "bias2", "variance", "overconfidence", "mms_ood", "attack_loss",
                      "attack_shokri", "attack_max_score", "fpr_ood"]), "",
              "Files: factors.csv, effects.csv, edges.csv, analysis.json, figures/graph_*.png, "
              "figures/predictive_power.png."]
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
