"""TensorBoard logs: one run per (model, setting, seed) with every metric as a scalar, hparams,
max-score histograms per source, grids of the most confident false positives per source and
log-log ROC figures (every attack, members vs each ``report.roc_sources`` source) and the
nominal vs realised FPR heat map (overconf.report.nominal_report).

A run whose logged content (rows, tensors, images, hparams) and report code are unchanged
replays the event records stored in the cache by the run that first wrote them, with fresh wall
times, instead of computing histograms, image grids and figures again (``report/artifacts.py``).

The hparams of a run hold the setting (recipe, calibration and its parameters, attacker, sweep
and sweep value) and its headline metrics (TPR, FPR, AUROC, TPR at 1% FPR on test, mean FPR over
OOD and fake sources per attack, accuracy, ECE, OE), so the HPARAMS view compares settings."""
from __future__ import annotations

import dataclasses
import struct
import time
from pathlib import Path

from .artifacts import artifact_key
from .comparison import source_group
from .figures import cell_rows, pairs, roc_figure, roc_sources, slug
from .fp_grids import confident_false_positives

HPARAM_METRICS = ("tpr", "fpr", "auroc", "tpr_at_fpr_0.01")
HPARAM_MODEL_METRICS = ("accuracy", "ece", "overconfidence_error", "mean_max_score")


def _hparam(value) -> str:
    """As a string: values that may be numbers in one run and strings in another (T: 10 / fit)
    must keep one type for the HPARAMS view."""
    from ..config.sweeps import value_label

    return "none" if value is None else value_label(value)


def run_name(cell) -> str:
    return f"{slug(cell.model)}_{slug(cell.setting)}_s{cell.seed}"


def write_tensorboard(result, folder: Path, cache=None) -> None:
    """One TensorBoard run per cell under ``folder``; the event records of a cell come from
    ``cache`` (a :class:`~overconf.core.cache.Cache`) when a run with the same content wrote them."""
    cfg = result.config
    for cell in result.cells:
        logdir = folder / run_name(cell)
        rows = cell_rows(result, cell)
        hparams, metrics = run_hparams(cfg, cell, rows)
        content = {"rows": rows, "hparams": pairs(hparams), "metrics": pairs(metrics),
                   "members": cell.members.max_score,
                   "sources": [[k, v.max_score, result.images.get((cell.seed, k))] for k, v in cell.sources.items()],
                   "scores": pairs(cell.scores), "thresholds": pairs(cell.thresholds),
                   "fp_grid": cfg.report.fp_grid, "roc_sources": roc_sources(cell, cfg)}
        key = artifact_key("tensorboard", content)
        files = cache.load("tensorboard", key, is_recorded_events) if cache is not None else None
        if files is not None:
            replay_events(logdir, files)
            continue
        before = set(logdir.glob("events.out.tfevents.*")) if logdir.is_dir() else set()
        write_run(result, cell, rows, hparams, metrics, logdir)
        if cache is not None:
            new = sorted(set(logdir.glob("events.out.tfevents.*")) - before, key=_writer_order)
            cache.save("tensorboard", key, [recorded_events(p) for p in new])


def _writer_order(path: Path) -> tuple:
    """Event files in the order their writers were opened (the name ends with a global counter)."""
    last = path.name.rsplit(".", 1)[-1]
    return (int(last) if last.isdigit() else 0, path.name)


def is_recorded_events(files) -> bool:
    """The structure of a ``tensorboard`` entry: per event file, the list of its records (bytes)."""
    return isinstance(files, list) and all(isinstance(f, list) and all(isinstance(r, bytes) for r in f) for f in files)


def recorded_events(path: Path) -> list[bytes]:
    """The serialized ``Event`` records of an event file (TFRecord framing: u64 length, u32
    length CRC, data, u32 data CRC), without the ``file_version`` header a writer adds itself."""
    from tensorboard.compat.proto.event_pb2 import Event

    data, i, out = path.read_bytes(), 0, []
    while i + 12 <= len(data):
        (n,) = struct.unpack("<Q", data[i: i + 8])
        record = data[i + 12: i + 12 + n]
        i += 12 + n + 4
        if not Event.FromString(record).file_version:
            out.append(record)
    return out


def replay_events(logdir: Path, files: list[list[bytes]]) -> None:
    """Write each recorded file's events to a new event file in ``logdir``, stamped now."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    for records in files:
        writer = EventFileWriter(str(logdir))
        for record in records:
            event = Event.FromString(record)
            event.wall_time = time.time()
            writer.add_event(event)
        writer.close()


def run_hparams(cfg, cell, rows: list[dict]) -> tuple[dict, dict]:
    """The hparams of a cell's run and its headline metrics (module docstring)."""
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
    return hparams, metrics


def write_run(result, cell, rows: list[dict], hparams: dict, metrics: dict, logdir: Path) -> None:
    """Every scalar, histogram, image grid, ROC figure and the hparams of one cell."""
    from torch.utils.tensorboard import SummaryWriter
    from torchvision.utils import make_grid

    cfg = result.config
    writer = SummaryWriter(log_dir=str(logdir))
    for r in rows:
        tag = f"model/{r['metric']}/{r['source']}" if r["attack"] == "-" else \
            f"{r['attack']}/{r['metric']}/{r['source']}"
        writer.add_scalar(tag, r["value"], 0)
    writer.add_histogram("max_score/members", cell.members.max_score.float(), 0)
    for label, s in cell.sources.items():
        writer.add_histogram(f"max_score/{label}", s.max_score.float(), 0)
    if cell.scores:
        attack = next(iter(cell.scores))
        for label, top, _ in confident_false_positives(cell, result.images, cfg.report.fp_grid):
            writer.add_image(f"confident_false_positives/{attack}/{label}",
                             make_grid(top.float() / 255, nrow=min(8, len(top)), padding=1, pad_value=1.0), 0)
    sources = roc_sources(cell, cfg)
    if cell.scores and sources:
        for source in sources:
            fig = roc_figure(cell, rows, [source])
            writer.add_figure(f"roc_loglog/{source}", fig, 0, close=True)
    from .nominal_report import nominal_figure, records

    recs = records(rows)  # nominal vs realised FPR (BH over this cell's tests)
    if recs:
        writer.add_figure("nominal_vs_realised", nominal_figure(recs, cell.model, cell.setting), 0, close=True)
    writer.add_hparams(hparams, metrics, run_name=".")
    writer.close()
