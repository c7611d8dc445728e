"""The evaluated signals of one grid cell (:class:`Cell`), a study's result, and the tidy rows
computed from a cell: (model, seed, setting, attack, source, metric, value)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from overconf.attacks import Attack, Fitted, Signals
from overconf.calibrations import Calibration
from overconf.config import MetricsConfig, StudyConfig
from overconf.metrics import accuracy, expected_calibration_error, membership_metrics, mmps, overconfidence_error
from overconf.metrics.nominal import declared_rows, level_rows
from overconf.core.seeding import generator
from overconf.training.jobs import TrainedClassifier

NO_ATTACK = "-"


@dataclass
class Cell:
    """The evaluated signals of one (seed, model, setting): what attacks and figures read."""

    seed: int
    model: str
    setting: str
    members: Signals
    sources: dict[str, Signals]
    scores: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    """attack -> {'members' | source: per-sample scores}"""
    thresholds: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    """fitted calibration parameters per role"""
    member_index: dict[str, torch.Tensor] = field(default_factory=dict)
    """source -> the members it is evaluated against (all members, or a seeded subset of the
    source's size when the source has fewer samples: member and non-member sets are equal-size)"""
    fitted: dict[str, Fitted] = field(default_factory=dict, repr=False)
    """attack label -> the attack fitted on the shadow (for streaming / search extensions)"""
    target: TrainedClassifier | None = field(default=None, repr=False)
    target_calibration: Calibration | None = field(default=None, repr=False)
    extensions: dict[str, Any] = field(default_factory=dict, repr=False)
    """results of post-evaluation hooks for the report (GAN 'stream' curve, latent 'search')"""


@dataclass
class StudyResult:
    run_dir: Path
    config: StudyConfig
    rows: list[dict[str, Any]]
    cells: list[Cell]
    images: dict[tuple[int, str], torch.Tensor]
    """(seed, source) -> uint8 images, for figures of confident false positives"""
    cache_hits: int = 0
    cache_misses: int = 0
    warnings: list[str] = field(default_factory=list)
    """problems the summary and the log point out (a model at chance level)"""


def row(cell: Cell, attack: str, source: str, metric: str, value: Any) -> dict:
    return {"model": cell.model, "seed": cell.seed, "setting": cell.setting, "attack": attack,
            "source": source, "metric": metric, "value": float(value)}

def model_rows(cell: Cell, out, cal_t: Calibration, cal_s: Calibration, ece_bins: int) -> list[dict]:
    """Accuracy, ECE and overconfidence error of target and shadow (calibrated), the target's training
    time (``train_seconds``, ``train_cpu_seconds``), mean max scores, and the fitted calibration parameters."""
    bins = ece_bins
    rows = []
    for role, cal, prefix in (("target", cal_t, ""), ("shadow", cal_s, "shadow_")):
        for split in ("train", "test"):
            o = out[role][split]
            p = cal.log_probs(o).exp()
            rows.append(row(cell, NO_ATTACK, split, f"{prefix}accuracy", accuracy(p, o.labels)))
            if split == "test":
                rows.append(row(cell, NO_ATTACK, split, f"{prefix}ece",
                                      expected_calibration_error(p, o.labels, bins)))
                rows.append(row(cell, NO_ATTACK, split, f"{prefix}overconfidence_error",
                                      overconfidence_error(p, o.labels, bins)))
    if cell.target is not None:  # utility: the target's training time (NaN: stored before it was recorded)
        rows += [row(cell, NO_ATTACK, "train", k, getattr(cell.target, k)) for k in ("train_seconds", "train_cpu_seconds")]
    rows.append(row(cell, NO_ATTACK, "members", "mean_max_score", cell.members.max_score.mean()))
    for label, s in cell.sources.items():
        rows.append(row(cell, NO_ATTACK, label, "mean_max_score", s.max_score.mean()))
    for role, params in cell.calibration.items():
        for k, v in params.items():
            if isinstance(v, (int, float)):
                rows.append(row(cell, NO_ATTACK, role, f"calibration_{k}", v))
    return rows

def attack_rows(cell: Cell, attack: Attack, shadow_in: Signals, shadow_out: Signals, m: MetricsConfig) -> list[dict]:
    """Fit ``attack`` on the shadow's members vs non-members, score the target's members and every
    source, and compute the membership metrics per source (equal-size member sets)."""
    g = generator(cell.seed, "attack", attack.label, cell.model, cell.setting)
    fitted = attack.fit(shadow_in, shadow_out, generator=g)
    cell.fitted[attack.label] = fitted
    cell.thresholds[attack.label] = fitted.threshold
    s_in = fitted.score(cell.members)
    cell.scores[attack.label] = {"members": s_in}
    rows = [row(cell, attack.label, "shadow", k, v) for k, v in fitted.info.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]
    rows += [row(cell, attack.label, "shadow", f"level_{lv:g}_{k}", v) for lv, f in fitted.levels.items()
             for k, v in f.info.items() if k in ("threshold", "shadow_tpr", "shadow_fpr")]
    level_in = {lv: s_in if f.score is fitted.score else f.score(cell.members) for lv, f in fitted.levels.items()}
    for label, sig in cell.sources.items():
        s_out = fitted.score(sig)
        cell.scores[attack.label][label] = s_out
        idx = cell.member_index[label]
        metrics = membership_metrics(s_in[idx], s_out, fitted.threshold, fpr_targets=m.fpr_targets,
                                     priors=m.priors, n_boot=m.bootstrap, confidence=m.confidence,
                                     generator=generator(cell.seed, "bootstrap", attack.label, label))
        metrics |= mmps(cell.members.max_score[idx], sig.max_score, s_in[idx] >= fitted.threshold,
                        s_out >= fitted.threshold)
        metrics |= declared_rows(fitted.declared_fpr, fitted.threshold, s_out, m.confidence)  # nominal vs realised
        for lv, f in fitted.levels.items():
            metrics |= level_rows(lv, f.threshold, level_in[lv][idx], s_out if f.score is fitted.score else f.score(sig),
                                  m.confidence)
        rows += [row(cell, attack.label, label, k, v) for k, v in metrics.items()]
    return rows
