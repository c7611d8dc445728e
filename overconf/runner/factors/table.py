"""The factor table: one row per (configuration, repeat) with the grid's knobs, the generalisation
and overconfidence factors and the attack accuracies (Baluta et al. 2022; analyses.md).

Each configuration's R models are trained (or loaded) once; their outputs on their own members,
on every repeat's test block and on the sources are cached by content
(:func:`overconf.signals.outputs.cached_outputs`); the measures are pure functions of those outputs, and
a configuration's rows are cached too (``factor_rows``: keyed by the models' keys, the blocks and
every option that enters them), so a rerun trains, scores and fits nothing.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import torch

from overconf.core.cache import Cache, content_key, tensor_digest
from overconf.config.factors import FactorsConfig
from overconf.data import ImageDataset, SourceData
from overconf.defenses import DEFENSES
from overconf.defenses.base import DefenseContext
from overconf.core.seeding import derive_seed
from overconf.runner.factors.attacks import ModelView, attack_row, make_attacks, released, signals
from overconf.runner.factors.grid import Blocks, job_for, outputs, train_configuration
from overconf.runner.factors.measures import (bias_variance, generalisation, mean_max_score, repeat_bias_variance,
                                              train_side)

log = logging.getLogger(__name__)
ROWS_VERSION = 2


def configuration_rows(cfg: FactorsConfig, ds: ImageDataset, blocks: Blocks, sources: dict[str, SourceData],
                       conf: dict, cache: Cache, device: torch.device) -> list[dict]:
    """The R rows of configuration ``conf`` (cached)."""
    r_count, m_count = cfg.grid.repeats, cfg.grid.models_per_repeat
    jobs = [job_for(cfg, ds, blocks, conf, r) for r in range(r_count)]
    extra = [job_for(cfg, ds, blocks, conf, r, m) for r in range(r_count) for m in range(1, m_count)]
    parts = {"kind": "factor_rows", "version": ROWS_VERSION, "models": [j.key for j in jobs],
             "test": [tensor_digest(b) for b in blocks.test], "cal": tensor_digest(blocks.calibration),
             "sources": {k: tensor_digest(v.x) for k, v in sources.items()}, "conf": conf,
             "eval_size": cfg.data.eval_size, "attacks": dataclasses.asdict(cfg.attacks), "seed": cfg.seed}
    key = content_key(parts | ({"extra_models": [j.key for j in extra]} if extra else {}))
    found = cache.load("factor_rows", key, lambda rows: isinstance(rows, list) and len(rows) == r_count
                       and all(isinstance(r, dict) for r in rows))
    if found is not None:
        cache.hits += 1
        return found
    t0 = time.perf_counter()
    trained_all = train_configuration(jobs + extra, cache, device, progress=cfg.progress)
    trained = trained_all[:r_count]
    seconds = time.perf_counter() - t0
    test_x = torch.cat([ds.normalize(ds.test_x[b]) for b in blocks.test])
    test_y = torch.cat([ds.test_y[b] for b in blocks.test])
    cal_x, cal_y = ds.normalize(ds.train_x[blocks.calibration]), ds.train_y[blocks.calibration]
    own, on_test, on_cal, on_src = [], [], [], []
    for job, t in zip(jobs, trained):
        own.append(outputs(cache, t, job.inputs(), job.labels, device).logits)
        on_test.append(outputs(cache, t, test_x, test_y, device).logits)
        on_cal.append(outputs(cache, t, cal_x, cal_y, device).logits if cfg.attacks.memguard is not None else None)
        on_src.append({k: outputs(cache, t, v.x, v.y, device).logits for k, v in sources.items()})
    size = cfg.data.test_size
    block = [slice(r * size, (r + 1) * size) for r in range(r_count)]
    # bias-variance: test version over each repeat's models on its block (grid.models_per_repeat >= 2, the
    # paper's), else over the configuration's models on every test block; train version on every training
    # point (per point, the models that trained on it: one with disjoint splits, several with random ones)
    n = conf["train_size"]
    extra_own = [outputs(cache, t, j.inputs(), j.labels, device).logits for j, t in zip(extra, trained_all[r_count:])]
    if extra:  # the paper's: test-side bias / variance over each repeat's models, on its test block
        extra_test = [outputs(cache, t, test_x[block[i // (m_count - 1)]], test_y[block[i // (m_count - 1)]],
                              device).logits for i, t in enumerate(trained_all[r_count:])]
        per_repeat = repeat_bias_variance(on_test, extra_test, test_y, block)
    else:
        per_repeat = [bias_variance(torch.stack(on_test), test_y)] * r_count
    order = [(r, 0) for r in range(r_count)] + [(r, m) for r in range(r_count) for m in range(1, m_count)]
    train_lp, mask, points = train_side(own + extra_own, [blocks.train[r * m_count + m][:n] for r, m in order])
    all_train_y = ds.train_y[points]
    bias2_train, variance_train = bias_variance(train_lp, all_train_y, mask)
    views = [ModelView(signals(own[r], jobs[r].labels), signals(on_test[r][block[r]], test_y[block[r]]),
                       {k: signals(v, sources[k].y) for k, v in on_src[r].items()}) for r in range(r_count)]
    if cfg.attacks.memguard is not None:
        defended = []
        for r in range(r_count):
            d = DEFENSES["memguard"](**cfg.attacks.memguard).fit(DefenseContext(
                views[r].members.log_probs, jobs[r].labels, on_cal[r].double().log_softmax(-1), cal_y,
                derive_seed(cfg.seed, "factors", "memguard", conf["config"], r)))
            defended.append(released(views[r], d.release, cfg.data.eval_size))
    attacks = make_attacks(cfg.attacks.mlp_epochs, cfg.attacks.shokri_epochs, cfg.attacks.shokri_hidden, conf["loss"])
    num_params = sum(p.numel() for p in trained[0].model.parameters())
    rows = []
    for r in range(r_count):
        row = {"config": conf["config"], "repeat": r, "width": conf["width"], "train_size": n,
               "loss": conf["loss"], "loss_mse": float(conf["loss"] == "mse"),
               "weight_decay": conf["weight_decay"], "label_smoothing": conf["label_smoothing"],
               "num_params": num_params}
        row |= generalisation(own[r], jobs[r].labels, on_test[r][block[r]], test_y[block[r]])
        row |= {"bias2": per_repeat[r][0], "variance": per_repeat[r][1], "bias2_train": bias2_train,
                "variance_train": variance_train}
        for k, v in on_src[r].items():
            row[f"mms_{k}"] = mean_max_score(v)
        if on_src[r]:
            row["mms_ood"] = sum(row[f"mms_{k}"] for k in on_src[r]) / len(on_src[r])
        shadow_ids = [(r + 1 + i) % r_count for i in range(cfg.attacks.shokri_shadows or r_count - 1)]
        tag = (conf["config"], r)
        row |= attack_row(views[r], [views[s] for s in shadow_ids], cfg.data.eval_size, attacks, cfg.seed, tag)
        if cfg.attacks.memguard is not None:
            guarded = {k: v for k, v in attacks.items() if k in cfg.attacks.memguard_attacks}
            row |= attack_row(defended[r], [defended[s] for s in shadow_ids], cfg.data.eval_size, guarded,
                              cfg.seed, tag + ("memguard",), suffix="_memguard")
        row["train_seconds"] = seconds / r_count
        rows.append(row)
    cache.save("factor_rows", key, rows)
    log.info("configuration %d: %s", conf["config"], ", ".join(f"{k}={conf[k]}" for k in conf if k != "config"))
    return rows
