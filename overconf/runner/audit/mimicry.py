"""The mimicry check of an audit: do the shadow and reference models train like the target?

Reference-model attacks (LiRA, RMIA, Shokri) assume that the reference models are drawn from the
target's training distribution: same architecture, recipe and training-set size (Carlini et al.
2022, sec. IV; Zarifzadeh et al. 2024). The most common failure of users of MIA tools is reference
models that do not mimic the target (another optimizer, loss, data size or number of epochs), so
the audit reports, next to the target's, the train / test accuracy and mean cross-entropy of

- the shadow model (single-model attacks are fitted on it): on its training and held-out splits;
- the K reference models (mean and sd over k): model k on the reference points it trained on
  (``keep[:, k]``) and on those it did not;

and warns (log, summary, rows ``mimicry / shadow_mismatch`` and ``reference_mismatch`` = 1) when a
mean differs from the target's by more than the tolerance (``mimicry.accuracy``, ``mimicry.loss``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from overconf.config import ModelSpec, Setting
from overconf.config.audit import MimicryConfig
from overconf.reference.manager import reference_set
from overconf.runner.executor.plan import uses_references
from overconf.runner.seed_jobs import SeedJobs
from overconf.signals.outputs import cached_outputs
from overconf.training.jobs import TrainedClassifier, load_or_train

SPLITS = ("train", "test")


@dataclass
class Fit:
    """Accuracy and mean cross-entropy on the training and held-out data (means over models, with
    their sd for the reference models)."""

    accuracy: dict[str, float]
    loss: dict[str, float]
    train_size: int
    accuracy_sd: dict[str, float] | None = None
    loss_sd: dict[str, float] | None = None


def accuracy_and_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(mean of argmax_k z_k = y, mean of -log softmax(z)_y) in float64."""
    log_p = torch.log_softmax(logits.double(), 1)
    return float((log_p.argmax(1) == labels).double().mean()), float(-log_p.gather(1, labels[:, None]).mean())


def model_fit(jobs: SeedJobs, trained: TrainedClassifier, role: str) -> Fit:
    """The target's or shadow's fit on its ``<role>_train`` and ``<role>_test`` splits (cached outputs)."""
    ds, out = jobs.dataset, {}
    for split in SPLITS:
        images, labels = jobs.splits.images(ds, f"{role}_{split}")
        o = cached_outputs(jobs.cache, trained.key, trained.model, ds.normalize(images), labels, jobs.device)
        out[split] = accuracy_and_loss(o.logits, o.labels)
    return Fit({s: out[s][0] for s in SPLITS}, {s: out[s][1] for s in SPLITS}, len(trained.job.labels))


def reference_fit(jobs: SeedJobs, shadow: TrainedClassifier) -> Fit:
    """Mean (sd) over the reference models of their fit on their IN and OUT reference points."""
    rs = reference_set(jobs.context, shadow.job)
    logits = rs.logits(rs.inputs(), jobs.cache, jobs.device, jobs.context.progress)  # [N, K, C], cached
    per = {s: [] for s in SPLITS}
    for k in range(rs.num_models):
        for split, sel in (("train", rs.keep[:, k]), ("test", ~rs.keep[:, k])):
            per[split].append(accuracy_and_loss(logits[sel, k], rs.labels[sel]))
    stats = {s: torch.tensor(per[s], dtype=torch.float64) for s in SPLITS}  # [K, 2]
    sd = {s: stats[s].std(0) if rs.num_models > 1 else torch.zeros(2, dtype=torch.float64) for s in SPLITS}
    return Fit({s: float(stats[s][:, 0].mean()) for s in SPLITS}, {s: float(stats[s][:, 1].mean()) for s in SPLITS},
               int(rs.keep[:, 0].sum()), {s: float(sd[s][0]) for s in SPLITS}, {s: float(sd[s][1]) for s in SPLITS})


def mismatches(fit: Fit, target: Fit, tol: MimicryConfig) -> list[str]:
    """What differs from the target beyond the tolerance, in words."""
    out = []
    for split in SPLITS:
        for what, values, limit in (("accuracy", fit.accuracy, tol.accuracy), ("loss", fit.loss, tol.loss)):
            mine, theirs = values[split], getattr(target, what)[split]
            if abs(mine - theirs) > limit:
                out.append(f"{split} {what} {mine:.3f} vs the target's {theirs:.3f} (tolerance {limit:g})")
    return out


def mimicry(jobs: SeedJobs, model: ModelSpec, setting: Setting, target: TrainedClassifier,
            tol: MimicryConfig) -> tuple[list[tuple[str, str, str, float]], list[str]]:
    """Rows ``(attack, source, metric, value)`` of the check and its warnings."""
    shadow = load_or_train(jobs.job("shadow", model, jobs.shadow_setting(setting)), jobs.cache, jobs.device,
                           progress=False)  # cached: the study has just loaded or trained it
    fits = {"target": model_fit(jobs, target, "target"), "shadow": model_fit(jobs, shadow, "shadow")}
    if uses_references(jobs.attacks):
        fits["reference"] = reference_fit(jobs, shadow)
    rows = [("-", s, "loss", fits["target"].loss[s]) for s in SPLITS]
    rows += [("-", s, "shadow_loss", fits["shadow"].loss[s]) for s in SPLITS]
    rows += [("-", "train", f"{p}train_size", f.train_size) for p, f in
             (("", fits["target"]), ("shadow_", fits["shadow"]), ("reference_", fits.get("reference"))) if f is not None]
    if "reference" in fits:
        f = fits["reference"]
        for s in SPLITS:
            rows += [("-", s, "reference_accuracy", f.accuracy[s]), ("-", s, "reference_accuracy_sd", f.accuracy_sd[s]),
                     ("-", s, "reference_loss", f.loss[s]), ("-", s, "reference_loss_sd", f.loss_sd[s])]
    rows += [("-", "mimicry", "tolerance_accuracy", tol.accuracy), ("-", "mimicry", "tolerance_loss", tol.loss)]
    warnings = []
    for family in ("shadow", "reference"):
        if family not in fits:
            continue
        found = mismatches(fits[family], fits["target"], tol)
        rows.append(("-", "mimicry", f"{family}_mismatch", float(bool(found))))
        if found:
            what = "the shadow model of {} does" if family == "shadow" else \
                f"the reference models of {{}} (mean over {jobs.cfg.reference.num_models}) do"
            warnings.append(
                f"mimicry: {what.format(model.label)} not train like the target: {'; '.join(found)}. Trained on "
                f"{fits[family].train_size} images (the target on {fits['target'].train_size}) with the audit's factory "
                f"and recipe: check the recipe (optimizer, lr, epochs, batch_size, augmentation, loss) and the data "
                f"sizes against how the target was trained; attack rates from models that do not mimic the target "
                f"misstate its risk")
    return rows, warnings
