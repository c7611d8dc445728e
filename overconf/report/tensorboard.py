"""TensorBoard logs: one run per (model, setting, seed) with every metric as a scalar, hparams,
max-score histograms per source, grids of the most confident false positives per source and
log-log ROC figures (every attack, members vs each ``report.roc_sources`` source).

The hparams of a run hold the setting (recipe, calibration and its parameters, attacker, sweep
and sweep value) and its headline metrics (TPR, FPR, AUROC, TPR at 1% FPR on test, mean FPR over
OOD and fake sources per attack, accuracy, ECE, OE), so the HPARAMS view compares settings."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid

from .comparison import source_group
from .figures import roc_figure, roc_sources, slug

HPARAM_METRICS = ("tpr", "fpr", "auroc", "tpr_at_fpr_0.01")
HPARAM_MODEL_METRICS = ("accuracy", "ece", "overconfidence_error", "mean_max_score")


def _hparam(value) -> str:
    """As a string: values that may be numbers in one run and strings in another (T: 10 / fit)
    must keep one type for the HPARAMS view."""
    from ..sweeps import value_label

    return "none" if value is None else value_label(value)


def run_name(cell) -> str:
    return f"{slug(cell.model)}_{slug(cell.setting)}_s{cell.seed}"


def write_tensorboard(result, folder: Path) -> None:
    cfg = result.config
    for cell in result.cells:
        writer = SummaryWriter(log_dir=str(folder / run_name(cell)))
        rows = [r for r in result.rows
                if (r["model"], r["setting"], r["seed"]) == (cell.model, cell.setting, cell.seed)]
        for r in rows:
            tag = f"model/{r['metric']}/{r['source']}" if r["attack"] == "-" else \
                f"{r['attack']}/{r['metric']}/{r['source']}"
            writer.add_scalar(tag, r["value"], 0)
        writer.add_histogram("max_score/members", cell.members.max_score.float(), 0)
        for label, s in cell.sources.items():
            writer.add_histogram(f"max_score/{label}", s.max_score.float(), 0)
        if cell.scores:
            attack = next(iter(cell.scores))
            threshold = cell.thresholds[attack]
            for label, s in cell.sources.items():
                scores = cell.scores[attack][label]
                flagged = torch.nonzero(scores >= threshold).flatten()
                if len(flagged) == 0:
                    continue
                top = flagged[torch.argsort(scores[flagged], descending=True)[: cfg.report.fp_grid]]
                images = result.images[(cell.seed, label)][top].float() / 255
                writer.add_image(f"confident_false_positives/{attack}/{label}",
                                 make_grid(images, nrow=min(8, len(top)), padding=1, pad_value=1.0), 0)
        sources = roc_sources(cell, cfg)
        if cell.scores and sources:
            for source in sources:
                fig = roc_figure(cell, rows, [source])
                writer.add_figure(f"roc_loglog/{source}", fig, 0, close=True)
        model_spec = next((m for m in cfg.models if m.label == cell.model), None)
        setting = next((s for s in cfg.settings if s.name == cell.setting), None)
        hparams = {"model": cell.model, "setting": cell.setting, "seed": cell.seed,
                   "calibration": setting.calibration.name if setting else "none"}
        if model_spec is not None and setting is not None:
            hparams |= {f"recipe.{k}": v for k, v in dataclasses.asdict(cfg.recipe_for(model_spec, setting)).items()}
            hparams |= {f"calibration.{k}": _hparam(v) for k, v in setting.calibration.params.items()}
            hparams |= {"attacker": setting.attacker, "sweep": setting.sweep or "none",
                        "sweep_value": _hparam(setting.sweep_value)}
        metrics = {}
        ref = "test" if any(r["source"] == "test" for r in rows) else None
        fprs: dict[str, dict[str, list[float]]] = {}
        for r in rows:
            if r["attack"] != "-" and r["source"] == ref and r["metric"] in HPARAM_METRICS:
                metrics[f"hparam/{r['attack']}/{r['metric']}"] = r["value"]
            if r["attack"] == "-" and r["metric"] in HPARAM_MODEL_METRICS and r["source"] == "test":
                metrics[f"hparam/model/{r['metric']}"] = r["value"]
            if r["attack"] != "-" and r["metric"] == "fpr" and source_group(r["source"]) != "test":
                fprs.setdefault(r["attack"], {}).setdefault(source_group(r["source"]), []).append(r["value"])
        for attack, groups in fprs.items():
            for group, values in groups.items():
                metrics[f"hparam/{attack}/mean_{group}_fpr"] = sum(values) / len(values)
        writer.add_hparams(hparams, metrics, run_name=".")
        writer.close()
