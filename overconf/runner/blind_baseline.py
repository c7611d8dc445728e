"""The blind baseline per source (``metrics.blind_baseline``; docs/memorised-or-different.md): is an
attack's "leakage" on a source memorisation, or only that the source differs from the training data?

For each source, a blind classifier (overconf.metrics.blind: logistic regression on pixels; it never
queries the target) is trained to tell member-distribution images from the source's images:

* member distribution: the last ``BLIND_FIT`` + ``BLIND_HOLDOUT`` images of the reserve (no target,
  shadow or reference model trains on the reserve's tail; the GAN and the FID classifier take its
  head): the first ``BLIND_FIT`` to train, the rest held out to set thresholds;
* the source: the same source drawn again with its own seeded generator from images disjoint from the
  evaluated non-members (test-derived sources from the test pool outside ``target_test``, then
  ``shadow_test``; any image equal in content to an evaluated one is dropped). A source that cannot
  give ``BLIND_FIT / 2`` such images (``digits``: all 1,797 are evaluated) is cross-fitted instead:
  two folds of its evaluation images, each scored by the classifier trained on the other fold
  (members and held-out images get the mean of both log-odds); row ``blind_crossfit`` = 1.

It is then scored like an attack on the target's members vs the source's evaluation non-members
(the same matched members as every attack). Rows (attack '-'): ``blind_auc`` with DeLong's
interval, ``blind_crossfit``, ``blind_train_size``, and ``propensity_auc``: the zero-run
propensity AUC of the causal memorisation analysis (overconf.analysis.zero_run: cross-fitted
logistic regression on the shadow's penultimate features, the analysis' default covariates) on
the same members and non-members. Per attack: ``auc_minus_blind`` (paired DeLong interval,
``_lo`` / ``_hi``): its AUROC minus the blind one; ``blind_tpr_at_attack_fpr``: the blind
classifier's TPR at the FPR the attack realises on the source; ``blind_fpr_at_declared``: the
blind classifier's FPR on the source with its threshold set on the held-out member-distribution
images at the attack's declared FPR.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
import weakref

import numpy as np
import torch

from overconf.analysis.zero_run import _folds, cross_fit_propensity
from overconf.analysis.weighted import weighted_auc
from overconf.config import MetricsConfig, source_label
from overconf.core.cache import tensor_digest
from overconf.core.errors import ConfigError
from overconf.core.seeding import derive_seed, generator
from overconf.data import SOURCES, SourceContext, SourceData
from overconf.data.sources import image_digests
from overconf.gan.generators import seed_generator
from overconf.metrics.blind import BlindClassifier, load_or_fit_blind
from overconf.metrics.delong import delong_auc, delong_difference
from overconf.metrics.functional import ranked
from overconf.metrics.membership import roc, tpr_at_fpr
from overconf.runner.cells import NO_ATTACK
from overconf.signals.outputs import cached_outputs

log = logging.getLogger("overconf")

BLIND_FIT = 2000
"""member-distribution and source images the blind classifier trains on (each)"""
BLIND_HOLDOUT = 2000
"""held-out member-distribution images that set its thresholds"""


def member_distribution(jobs) -> tuple[torch.Tensor, torch.Tensor]:
    """(training inputs, held-out inputs) from the reserve's tail (model inputs, normalised)."""
    ds, reserve = jobs.dataset, jobs.splits.reserve
    n_fit, n_hold = blind_sizes(len(reserve))
    idx = reserve[len(reserve) - n_fit - n_hold:]
    x = ds.normalize(ds.train_x[idx])
    return x[:n_fit], x[n_fit:]


def blind_sizes(n_reserve: int) -> tuple[int, int]:
    """(fit, holdout) sizes from a reserve of ``n_reserve`` images: the defaults, or halves of it."""
    if n_reserve < 40:
        raise ConfigError(f"metrics.blind_baseline needs at least 40 reserve images (member-distribution images "
                          f"no model trains on), the splits leave {n_reserve}; lower data.splits sizes or set "
                          f"metrics.blind_baseline: false")
    if n_reserve >= BLIND_FIT + BLIND_HOLDOUT:
        return BLIND_FIT, BLIND_HOLDOUT
    return n_reserve // 2, n_reserve - n_reserve // 2


def fresh_source(jobs, comp, n: int, evaluated: SourceData) -> SourceData:
    """The source ``comp`` drawn again (its own generator, test-pool images outside ``target_test``),
    without any image equal to one of ``evaluated``'s: at most ``n`` inputs."""
    cfg, ds, splits, seed = jobs.cfg, jobs.dataset, jobs.splits, jobs.seed
    used = torch.cat([splits.target_test, splits.shadow_test])
    rest = torch.from_numpy(np.setdiff1d(np.arange(len(ds.test_y)), used.numpy()))
    held = dataclasses.replace(splits, target_test=torch.cat([rest, splits.shadow_test]))
    label = source_label(comp)
    params = {k: v for k, v in comp.params.items() if k != "label"}
    ctx = SourceContext(ds, held, n, generator(seed, "blind_baseline", label), seed, cfg.data.root, cfg.data.download,
                        jobs.device, jobs.cache, False, gan=cfg.gan,
                        generator_for=functools.partial(seed_generator, jobs.context))
    data = SOURCES[comp.name](ctx, **params)
    seen = set(image_digests(evaluated.images))
    if not evaluated.derived:  # derived inputs share their images with the originals: compare the originals
        keep = torch.tensor([d not in seen for d in image_digests(data.images)], dtype=torch.bool)
        data = SourceData(data.x[keep], data.y[keep], data.images[keep])
    return data


_SEED_MEMO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
"""SeedContext -> {(source, members digest, source inputs digest): blind_scores(...)}: the blind classifier depends on the seed's
data only, not on the model or setting, so a study's cells share it (and its fresh GAN samples)"""


def blind_scores(jobs, comp, evaluated: SourceData, members_x: torch.Tensor):
    """(member scores, source scores, held-out member-distribution scores, cross-fitted?, train size),
    computed once per seed, source and member set."""
    memo = _SEED_MEMO.setdefault(jobs.context, {})
    key = (source_label(comp), tensor_digest(members_x), tensor_digest(evaluated.x))
    if key not in memo:
        memo[key] = _blind_scores(jobs, comp, evaluated, members_x)
    return memo[key]


def _blind_scores(jobs, comp, evaluated: SourceData, members_x: torch.Tensor):
    fit_x, hold_x = member_distribution(jobs)
    fresh = fresh_source(jobs, comp, len(fit_x), evaluated)
    if len(fresh) >= max(len(fit_x) // 2, 1):
        clf = load_or_fit_blind(fit_x[:len(fresh)], fresh.x, jobs.cache)
        return clf.score(members_x), clf.score(evaluated.x), clf.score(hold_x), False, len(fresh)
    n = len(evaluated)
    if n < 4:
        raise ConfigError(f"metrics.blind_baseline: source '{source_label(comp)}' has {n} evaluation samples and no "
                          f"fresh ones; it needs at least 4 to cross-fit")
    perm = torch.randperm(n, generator=generator(jobs.seed, "blind_baseline", "folds", source_label(comp)))
    halves = (perm[: n // 2], perm[n // 2:])
    out = torch.empty(n, dtype=torch.float64)
    clfs: list[BlindClassifier] = []
    for k, part in enumerate(halves):
        other = halves[1 - k]
        clf = load_or_fit_blind(fit_x[: min(len(fit_x), len(other))], evaluated.x[other], jobs.cache)
        out[part] = clf.score(evaluated.x[part])
        clfs.append(clf)
    mean = lambda x: torch.stack([c.score(x) for c in clfs]).mean(0)  # noqa: E731
    return mean(members_x), out, mean(hold_x), True, n - n // 2


def propensity_auc(x_in, x_out, seed: int) -> float:
    """The zero-run propensity AUC (overconf.analysis.zero_run): AUC of the 5-fold cross-fitted
    e(X) = P(member | X), standardised logistic regression on covariates X, members vs non-members."""
    x = np.r_[np.asarray(x_in, dtype=np.float64), np.asarray(x_out, dtype=np.float64)]
    t = np.r_[np.ones(len(x_in), int), np.zeros(len(x_out), int)]
    e = cross_fit_propensity(x, t, _folds(t, 5, seed))
    return weighted_auc(e[t == 1], e[t == 0])


def blind_rows(jobs, cell, sources: dict[str, SourceData], shadow, members_x: torch.Tensor,
               metrics: MetricsConfig) -> list[tuple[str, str, str, float]]:
    """Rows ``(attack, source, metric, value)`` of the blind baseline of one evaluated cell (the
    attacks' scores in ``cell.scores``); ``shadow``: the trained shadow (covariates of the propensity)."""
    comps = {source_label(c): c for c in jobs.cfg.sources}
    conf, rows = metrics.confidence, []
    wall, cpu = time.perf_counter(), time.process_time()
    for label, data in sources.items():
        idx = cell.member_index[label]
        b_in, b_out, b_hold, crossfit, n_train = blind_scores(jobs, comps[label], data, members_x[idx])
        auc, lo, hi = delong_auc(b_in, b_out, conf)
        feats = [cached_outputs(jobs.cache, shadow.key, shadow.model, x, torch.full((len(x),), -1), jobs.device).features
                 for x in (members_x[idx], data.x)]
        rows += [(NO_ATTACK, label, "blind_auc", auc), (NO_ATTACK, label, "blind_auc_lo", lo),
                 (NO_ATTACK, label, "blind_auc_hi", hi), (NO_ATTACK, label, "blind_crossfit", float(crossfit)),
                 (NO_ATTACK, label, "blind_train_size", float(n_train)),
                 (NO_ATTACK, label, "propensity_auc",
                  propensity_auc(feats[0].numpy(), feats[1].numpy(), derive_seed(jobs.seed, "blind_propensity", label)))]
        fpr_b, tpr_b, _ = roc(b_in, b_out)
        for attack, scores in cell.scores.items():
            s_in, s_out = scores["members"][idx], scores.get(label)
            if s_out is None or bool(torch.isnan(s_in).any() or torch.isnan(s_out).any()):
                continue
            d, d_lo, d_hi = delong_difference(s_in, s_out, b_in, b_out, conf)
            fitted = cell.fitted[attack]
            realised = float((torch.from_numpy(ranked(s_out, "s_out")) >= fitted.threshold).double().mean())
            rows += [(attack, label, "auc_minus_blind", d), (attack, label, "auc_minus_blind_lo", d_lo),
                     (attack, label, "auc_minus_blind_hi", d_hi),
                     (attack, label, "blind_tpr_at_attack_fpr", tpr_at_fpr(fpr_b, tpr_b, realised)[0])]
            declared = fitted.declared_fpr
            if declared is not None and 0 < declared < 1:
                t = float(torch.quantile(b_hold, 1 - declared))
                rows.append((attack, label, "blind_fpr_at_declared", float((b_out >= t).double().mean())))
    log.info("blind baseline of %s / %s / seed %d: %d sources in %.1f s (%.1f s CPU)", cell.model, cell.setting,
             cell.seed, len(sources), time.perf_counter() - wall, time.process_time() - cpu)
    return rows
