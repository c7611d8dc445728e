"""TensorBoard logs: one run per (model, setting, seed) with every metric as a scalar, hparams,
max-score histograms per source, grids of the most confident false positives per source and
log-log ROC figures (every attack, members vs each ``report.roc_sources`` source)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid

from .figures import roc_figure, roc_sources, slug

HPARAM_METRICS = ("tpr", "fpr", "auroc", "tpr_at_fpr_0.01")


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
        metrics = {}
        ref = "test" if any(r["source"] == "test" for r in rows) else None
        for r in rows:
            if r["attack"] != "-" and r["source"] == ref and r["metric"] in HPARAM_METRICS:
                metrics[f"hparam/{r['attack']}/{r['metric']}"] = r["value"]
            if r["attack"] == "-" and r["metric"] in ("accuracy", "ece") and r["source"] == "test":
                metrics[f"hparam/model/{r['metric']}"] = r["value"]
        writer.add_hparams(hparams, metrics, run_name=".")
        writer.close()
