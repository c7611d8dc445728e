"""summary.md of a run: per (model, setting) the model's accuracy and calibration, each attack's
TPR / FPR per source, attack strength, MMPS of false positives; the nominal vs realised FPR
section (overconf.report.nominal_report) and the GAN section."""
from __future__ import annotations

from .defense_report import epsilon_text
from .gan import gan_summary
from .nominal_report import nominal_summary
from .blind_report import blind_summary
from .tables import Table, markdown_table, ordered


def strength_table(t: Table, cfg, model: str, setting: str, attacks: list[str], ref: str) -> list[str]:
    """Attack strength against one source: AUROC, advantage (max TPR - FPR over the ROC), balanced
    accuracy and precision at each member prior (at the fitted threshold), TPR at each FPR target
    with its bootstrap interval."""
    priors, targets = cfg.metrics.priors, cfg.metrics.fpr_targets
    header = (["attack", "AUROC", "advantage", "bal. acc."] + [f"prec. pi={p:g}" for p in priors]
              + [f"TPR@{f:g}FPR [CI]" for f in targets])
    body = []
    for a in attacks:
        cells = [a] + [t.fmt(model, setting, a, ref, m) for m in ("auroc", "advantage", "balanced_accuracy")]
        cells += [t.fmt(model, setting, a, ref, f"precision_at_prior_{p:g}") for p in priors]
        for f in targets:
            lo, hi = (t.fmt(model, setting, a, ref, f"tpr_at_fpr_{f:g}_ci_{b}") for b in ("low", "high"))
            cells.append(f"{t.fmt(model, setting, a, ref, f'tpr_at_fpr_{f:g}')} [{lo}, {hi}]")
        body.append(cells)
    return [f"Attack strength against the {ref} source (advantage: max TPR - FPR over the ROC; balanced "
            f"accuracy and precision at member prior pi at the fitted threshold; TPR at x FPR: the best "
            f"TPR over ROC points with FPR <= x, with {cfg.metrics.confidence:.0%} exact-bootstrap "
            f"intervals):", "", markdown_table(header, body), ""]


def fpr_with_interval(t: Table, model: str, setting: str, attack: str, source: str) -> str:
    """The FPR on ``source`` with its Clopper-Pearson interval ("0.350 [0.284, 0.421]"; the FPR
    alone where the rows hold no interval)."""
    lo, hi = (t.fmt(model, setting, attack, source, f"fpr_ci_{b}") for b in ("low", "high"))
    value = t.fmt(model, setting, attack, source, "fpr")
    return value if "–" in (lo, hi) else f"{value} [{lo}, {hi}]"


def unlabelled_choices(cfg) -> dict[str, str]:
    """Attack label -> how it scores inputs without a task label, for the attacks that have the
    choice (LiRA, RMIA: ``unlabelled``)."""
    from ..attacks import ATTACKS

    out = {}
    for c in cfg.attacks:
        attack = ATTACKS[c.name](**c.params)
        if hasattr(attack, "unlabelled"):
            out[attack.label] = attack.unlabelled
    return out


def summary_markdown(rows: list[dict], cfg, result=None) -> str:
    t = Table(rows)
    models, settings = ordered(rows, "model"), ordered(rows, "setting")
    attacks = ordered(rows, "attack", exclude=("-",))
    sources = [s for s in ordered([r for r in rows if r["attack"] != "-"], "source") if s != "shadow"]
    seeds = ordered(rows, "seed")
    unlabelled = unlabelled_choices(cfg)
    out = [f"# overconf study: {cfg.name}", ""]
    if result is not None:
        out += [f"- run folder: `{result.run_dir}`",
                f"- cache: {result.cache_hits} entries reused, {result.cache_misses} computed"]
    out += [f"- dataset: {cfg.data.dataset}; seeds: {', '.join(map(str, seeds))} "
            f"(values are mean±sd over seeds where there are several)",
            f"- evaluation: {cfg.data.eval_size} target members vs {cfg.data.eval_size} non-members per source "
            f"(a source with fewer samples is compared with a seeded equal-size subset of the members); "
            f"attacks fitted on {cfg.data.fit_size} + {cfg.data.fit_size} shadow samples", ""]
    if result is not None and getattr(result, "warnings", None):
        out += ["**Warnings**", ""] + [f"- {w}" for w in result.warnings] + [""]
    for model in models:
        for setting in settings:
            out += [f"## {model} / {setting}", ""]
            out += ["Model: " + ", ".join(
                f"{name} {t.fmt(model, setting, '-', src, metric)}"
                for name, src, metric in (("train acc", "train", "accuracy"), ("test acc", "test", "accuracy"),
                                          ("ECE", "test", "ece"), ("OE", "test", "overconfidence_error"))), ""]
            privacy = epsilon_text(t, model, setting)
            if privacy:  # never an epsilon without its delta (issue 21)
                out += [f"DP-SGD: {privacy}, noise multiplier {t.fmt(model, setting, '-', 'defense', 'noise_multiplier')}"
                        f" (opacus' accountant for the sampling rate and the steps taken).", ""]
            if any(t.get(model, setting, "-", "defense", "dp_batchnorm_replaced")):
                out += ["DP-SGD: the model's BatchNorm layers were replaced by GroupNorm (opacus' "
                        "`ModuleValidator.fix`) to allow per-sample gradients.", ""]
            out += ["False-positive rate per non-member source (member iff the attack fires; TPR on "
                    "target members; AUROC and TPR at 1% FPR against the test source"
                    + ("; 'unlabelled': the class at which a reference attack scores inputs without a "
                       "task label (OOD, noise), each model's own predicted class or the target's"
                       if unlabelled else "")
                    + f"). FPR [interval]: {cfg.metrics.confidence:.0%} Clopper-Pearson (exact binomial) "
                    "interval, from the rows fpr_ci_low / fpr_ci_high (tpr_ci_* for TPR):", ""]
            header = ["attack", "TPR"] + [f"FPR {s}" for s in sources] + ["AUROC test", "TPR@1%FPR test"] \
                + (["unlabelled"] if unlabelled else [])
            body = []
            for a in attacks:
                ref = sources[0] if "test" not in sources else "test"
                body.append([a, t.fmt(model, setting, a, ref, "tpr")]
                            + [fpr_with_interval(t, model, setting, a, s) for s in sources]
                            + [t.fmt(model, setting, a, ref, "auroc"),
                               t.fmt(model, setting, a, ref, "tpr_at_fpr_0.01")]
                            + ([unlabelled.get(a, "–")] if unlabelled else []))
            out += [markdown_table(header, body), ""]
            if attacks and sources:
                out += strength_table(t, cfg, model, setting, attacks, "test" if "test" in sources else sources[0])
            out += ["Mean max prediction score (MMPS) of flagged non-members, i.e. false positives:", ""]
            body = [[a] + [t.fmt(model, setting, a, s, "mmps_fp", digits=4) for s in sources] for a in attacks]
            out += [markdown_table(["attack"] + sources, body), ""]
            out += ["Mean max score per input set:", ""]
            srcs = ["members"] + sources
            out += [markdown_table(srcs, [[t.fmt(model, setting, "-", s, "mean_max_score", digits=4)
                                           for s in srcs]]), ""]
    out += nominal_summary(rows, cfg)  # nominal vs realised FPR per source (overconf.report.nominal_report)
    out += gan_summary(rows, cfg)
    out += blind_summary(rows, cfg)  # memorised or different: the blind baseline (overconf.report.blind_report)
    return "\n".join(out)
