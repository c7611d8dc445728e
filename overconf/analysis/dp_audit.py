"""The ``dp_audit`` analysis: empirical epsilon lower bounds per (setting, attack, non-member source),
next to the accountant's epsilon with its delta (pure bounds: :mod:`overconf.metrics.epsilon_bounds`).

Two audits per (seed, model, setting):

1. ``clopper_pearson``: every attack's per-sample scores of the study (``per_sample.pt``: target
   members vs each source's non-members). The threshold is chosen on a random half of each side
   and the bound is computed on the other half (Jagielski et al. 2020's Clopper-Pearson bound;
   Bonferroni over the ``thresholds`` carried over): eps_lb = max(log((1 - delta - FPR_hi) /
   FNR_hi), log((1 - delta - FNR_hi) / FPR_hi)).
2. ``one_run`` (Steinke, Nasr and Jagielski 2023): ``canaries`` points of the target's training
   split, each included with probability 1/2 (:func:`overconf.analysis.one_run.design`, base
   ``rest``: every other training point is in), ONE model trained with the target's architecture,
   recipe and the setting's training-time defense (DP-SGD hooks re-derived for its training set),
   its scaled-logit scores on the canaries; the auditor guesses "in" on the k highest and "out" on
   the k lowest (k in ``guesses``, Bonferroni over them).

Per source, the same bounds with that source as the "out" side: for the one-run audit the
excluded canaries are replaced by as many of the source's points (scored by the same model). An
in-distribution "out" side (``test``, or the excluded canaries) audits DP; an OOD or GAN "out" side
also counts the distribution difference as leakage, and its bound can exceed the accountant's
epsilon: a false-positive-driven over-estimate, not a broken guarantee. A sound audit uses
in-distribution non-members; ``sound`` says which rows are.

The privacy parameter delta of every bound is the setting's DP-SGD delta (``delta`` when given;
1e-5 for a setting without DP). The accountant's epsilon is the defense's own report of the trained
target (opacus' accountant, :meth:`overconf.defenses.dp_sgd.DPSGD.info`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from overconf.core.errors import ConfigError
from overconf.core.seeding import derive_seed
from ..attacks.scores import scaled_logit
from ..defenses.dp_accounting import DEFAULT_DELTA
from ..defenses.training import training_defense, with_training_defense
from ..metrics.epsilon_bounds import heldout_threshold_bound, one_run_audit
from ..training.jobs import load_or_train
from overconf.signals.outputs import cached_outputs
from .base import ANALYSES, Analysis, AnalysisResult
from .one_run import design

IN_DISTRIBUTION = ("test", "canaries")
"""'out' sides drawn from the members' distribution: the sound audits"""


def accountant(ctx) -> dict[str, float]:
    """{'epsilon', 'delta'} of the setting's training-time defense on the trained target (empty without
    a DP defense)."""
    d = training_defense(ctx.setting_config.defense)
    if d is None or not hasattr(d, "describe"):
        return {}
    t = ctx.trained("target")
    info = d.info(t.job, t.history)
    return {"epsilon": float(info["epsilon"]), "delta": float(info["delta"])}


def canary_model(ctx, canaries: int, seed: int):
    """(trained one-run model, audit indices into the target's training split, included flags)."""
    job = ctx.jobs["target"]
    n = len(job.labels)
    if not 2 <= canaries <= n:
        raise ConfigError(f"analysis dp_audit: canaries = {canaries} must be in [2, {n}] (the target's training "
                          f"split); lower analysis.dp_audit.canaries")
    audit, included, mask = design(n, canaries, seed, base="rest")
    keep = torch.from_numpy(mask)
    plain = dataclasses.replace(job, images=job.images[keep], labels=job.labels[keep], hooks=None,
                                seed=derive_seed(seed, "dp_audit", "canary_model", canaries),
                                name=f"dp-audit canary model m={canaries}")
    ds, splits = ctx.context.dataset, ctx.context.splits
    trained = load_or_train(with_training_defense(plain, ctx.setting_config.defense,
                                                  splits.images(ds, "calibration")), ctx.cache, ctx.device,
                            progress=False)
    return trained, audit, included


def _scores(ctx, trained, x, y) -> np.ndarray:
    """Scaled-logit scores log p_y - log sum_{k != y} p_k of ``trained`` on ``x`` (cached outputs); a
    point without a label (y = -1: noise, unconditional GAN samples) is scored at its predicted class."""
    o = cached_outputs(ctx.cache, trained.key, trained.model, x, y, ctx.device)
    lp = torch.log_softmax(o.logits.double(), -1)
    return scaled_logit(lp, torch.where(y >= 0, y, lp.argmax(-1))).numpy()


@ANALYSES.register("dp_audit")
class DPAudit(Analysis):
    """Epsilon lower bounds per source beside the accountant's epsilon (module docstring).

    Parameters: ``confidence`` (0.95) of every bound; ``delta`` (null: the setting's DP-SGD delta,
    else 1e-5); ``thresholds`` (1) carried from the selection half to the evaluation half
    (Bonferroni); ``attacks`` (null: every attack with per-sample scores); ``one_run`` (true);
    ``canaries`` m (500); ``guesses`` k values (k "in" and k "out" guesses each, Bonferroni)."""

    name = "dp_audit"
    title = "DP audit: empirical epsilon lower bounds per source"
    defaults: dict[str, Any] = {"confidence": 0.95, "delta": None, "thresholds": 1, "attacks": None,
                                "one_run": True, "canaries": 500, "guesses": [10, 25, 50]}

    def check(self, params: dict[str, Any]) -> None:
        if not 0.5 < float(params["confidence"]) < 1:
            raise ConfigError(f"analysis dp_audit: confidence = {params['confidence']} must be in (0.5, 1), e.g. 0.95")
        if params["delta"] is not None and not 0 <= float(params["delta"]) < 1:
            raise ConfigError(f"analysis dp_audit: delta = {params['delta']} must be in [0, 1) or null (the "
                              f"setting's DP-SGD delta)")
        if int(params["thresholds"]) < 1:
            raise ConfigError("analysis dp_audit: thresholds must be >= 1 (Bonferroni over them), e.g. 1")
        g = params["guesses"]
        if not isinstance(g, (list, tuple)) or not g or min(int(k) for k in g) < 1:
            raise ConfigError(f"analysis dp_audit: guesses must be a list of k >= 1 (k 'in' and k 'out' guesses), "
                              f"got {g!r}; e.g. [10, 25, 50]")
        if 2 * max(int(k) for k in g) > int(params["canaries"]):
            raise ConfigError(f"analysis dp_audit: 2 x max(guesses) = {2 * max(int(k) for k in g)} exceeds "
                              f"canaries = {params['canaries']}; lower guesses or raise canaries")

    def run(self, ctx, params: dict[str, Any]) -> AnalysisResult:
        import pandas as pd

        acc = accountant(ctx)
        delta = float(params["delta"]) if params["delta"] is not None else acc.get("delta", DEFAULT_DELTA)
        alpha = 1 - float(params["confidence"])
        base = {"accountant_epsilon": acc.get("epsilon", float("inf")), "delta": delta,
                "confidence": float(params["confidence"])}
        rows = []
        scores = ctx.study_scores()
        chosen = params["attacks"] or list(scores)
        for attack in chosen:
            if attack not in scores:
                raise ConfigError(f"analysis dp_audit: attack '{attack}' has no per-sample scores in this run; "
                                  f"use one of {sorted(scores)}")
            members = scores[attack]["members"].double().numpy()
            for source, s_out in scores[attack].items():
                if source == "members":
                    continue
                rng = np.random.default_rng(ctx.seed_of("dp_audit", attack, source))
                b = heldout_threshold_bound(members, s_out.double().numpy(), alpha=alpha, delta=delta,
                                            n_thresholds=int(params["thresholds"]), rng=rng)
                rows.append(base | {"audit": "clopper_pearson", "attack": attack, "source": source,
                                    "sound": source in IN_DISTRIBUTION} | b)
        if params["one_run"]:
            rows += self.one_run_rows(ctx, params, delta, base)
        table = pd.DataFrame(rows)
        return AnalysisResult(rows=[{"metric": "eps_lb", "value": r["eps_lb"], **{k: v for k, v in r.items()
                                                                                  if k != "eps_lb"}} for r in rows],
                              tables={"dp_audit": table}, markdown=markdown(table), data={"table": table})

    def one_run_rows(self, ctx, params, delta: float, base: dict) -> list[dict]:
        m, guesses, conf = int(params["canaries"]), [int(k) for k in params["guesses"]], float(params["confidence"])
        trained, audit, included = canary_model(ctx, m, derive_seed(ctx.seed, "dp_audit", ctx.model, ctx.setting))
        job = ctx.jobs["target"]
        idx = torch.from_numpy(audit)
        x = ctx.context.dataset.normalize(job.images[idx])
        s = _scores(ctx, trained, x, job.labels[idx])
        out = [base | {"audit": "one_run", "attack": "scaled_logit", "source": "canaries", "sound": True}
               | one_run_audit(s, included, guesses=guesses, delta=delta, confidence=conf)]
        s_in = s[included]
        for label, src in ctx.sources.items():
            n_out = min(m - len(s_in), len(src.x))
            s_src = _scores(ctx, trained, src.x[:n_out], src.y[:n_out])
            k_ok = [k for k in guesses if 2 * k <= len(s_in) + n_out]
            if not k_ok or n_out < 2:
                continue
            mix = np.r_[s_in, s_src]
            flags = np.r_[np.ones(len(s_in), bool), np.zeros(n_out, bool)]
            out.append(base | {"audit": "one_run", "attack": "scaled_logit", "source": label,
                               "sound": label in IN_DISTRIBUTION}
                       | one_run_audit(mix, flags, guesses=k_ok, delta=delta, confidence=conf, m=len(mix)))
        return out

    def combine(self, results, params) -> AnalysisResult | None:
        import pandas as pd

        frames = []
        for (seed, model, setting), res in results.items():
            t = res.data.get("table")
            if t is not None and len(t):
                frames.append(t.assign(seed=seed, model=model, setting=setting))
        if not frames:
            return None
        table = pd.concat(frames, ignore_index=True)
        summary = ("## DP audit: empirical epsilon per source\n\n" + overview(table) + "\n\nDetails per setting: "
                   "[analysis/analysis.md](analysis/analysis.md); every bound: dp_audit.csv.")
        return AnalysisResult(tables={"dp_audit": table}, markdown=overview(table), summary=summary,
                              run_files={"dp_audit.csv": table})


def markdown(table) -> str:
    """One context's table: audit x attack rows, sources as columns (eps_lb)."""
    if not len(table):
        return ""
    eps, delta, conf = (table[c].iloc[0] for c in ("accountant_epsilon", "delta", "confidence"))
    head = (f"Accountant: epsilon {eps:.3g} at delta {delta:.0e}" if np.isfinite(eps)
            else f"No DP training (no accountant epsilon); bounds at delta {delta:.0e}")
    pivot = table.pivot_table(index=["audit", "attack"], columns="source", values="eps_lb", aggfunc="first")
    cols = list(pivot.columns)
    lines = [head + f". Empirical epsilon lower bounds at {conf:.0%} confidence per 'out' source (docs/dp-audit.md):", "",
             "| audit | attack | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for (audit, attack), row in pivot.iterrows():
        lines.append(f"| {audit} | {attack} | " + " | ".join("–" if not np.isfinite(row[c]) else f"{row[c]:.2f}"
                                                             for c in cols) + " |")
    return "\n".join(lines)


def overview(table) -> str:
    """The study's table: per (model, setting), the accountant's epsilon, the largest sound bound
    (in-distribution 'out' side) and the largest bound per other source, with a flag where an
    unsound bound exceeds the accountant's epsilon (distribution difference counted as leakage)."""
    lines = ["Largest epsilon lower bound over attacks and audits, per 'out' source (sound: in-distribution "
             "non-members `test` / excluded canaries; the others count distribution difference as leakage; "
             "`!` marks a bound above the accountant's epsilon).", ""]
    sources = [s for s in dict.fromkeys(table["source"]) if s not in IN_DISTRIBUTION]
    lines += ["| model | setting | accountant epsilon (delta) | sound bound | " + " | ".join(sources) + " |",
              "|---|---|---|---|" + "---|" * len(sources)]
    for (model, setting), t in table.groupby(["model", "setting"], sort=False):
        eps, delta = t["accountant_epsilon"].iloc[0], t["delta"].iloc[0]
        acc = f"{eps:.3g} ({delta:.0e})" if np.isfinite(eps) else f"none ({delta:.0e})"
        sound = t[t["sound"].astype(bool)]["eps_lb"].max()
        cells = []
        for s in sources:
            v = t[t["source"] == s]["eps_lb"].max()
            cells.append("–" if not np.isfinite(v) else f"{v:.2f}{' !' if np.isfinite(eps) and v > eps else ''}")
        lines.append(f"| {model} | {setting} | {acc} | {sound:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
