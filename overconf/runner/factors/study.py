"""Run a causal-factors study: the factor table, the causal analysis, the run folder
(``overconf run FILE`` with ``study: causal_factors``, or ``overconf.run``)."""
from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from overconf.core.device import fixed_threads
from overconf.core.cache import Cache, atomic_write_text
from overconf.config.factors import FactorsConfig
from overconf.core.device import resolve_device
from overconf.runner.run_folder import create_run_dir, write_status

log = logging.getLogger(__name__)


@dataclass
class FactorsResult:
    """The factor table (``frame``: one row per configuration and repeat), the causal analysis
    and the run folder."""

    frame: Any
    analysis: dict = field(default_factory=dict, repr=False)
    run_dir: Path | None = None
    config: FactorsConfig | None = field(default=None, repr=False)
    seconds: float = 0.0


def factor_table(cfg: FactorsConfig, cache: Cache, device) -> "Any":
    """The factor table as a pandas DataFrame (models trained or loaded, rows cached)."""
    import pandas as pd

    from overconf.runner import catalog  # noqa: F401  (registers every attack, source and defense)
    from overconf.data import load_dataset
    from overconf.runner.factors.grid import build_sources, make_blocks
    from overconf.runner.factors.table import configuration_rows

    ds = load_dataset(cfg.data.dataset, cfg.data.root, cfg.data.download)
    blocks = make_blocks(ds, cfg)
    sources = build_sources(cfg, ds, blocks, cache, device)
    rows = []
    confs = cfg.configurations()
    for i, conf in enumerate(confs):
        rows += configuration_rows(cfg, ds, blocks, sources, conf, cache, device)
        log.info("factor table: %d of %d configurations", i + 1, len(confs))
    return pd.DataFrame(rows)


@fixed_threads  # results independent of torch.set_num_threads
def run_factors(cfg: FactorsConfig, run_dir: str | Path | None = None, *, overwrite: bool = False,
                write_report: bool = True) -> FactorsResult:
    """Train (or load) the grid's models, build the factor table, run the causal analysis and write
    the run folder (factors.csv, effects.csv, graph and predictive-power figures, summary.md)."""
    from overconf.runner.factors.causal import analyse
    from overconf.runner.factors.report import write_report as write
    from overconf.runner.factors.rows import analysis_rows

    start = time.perf_counter()
    out = create_run_dir(cfg, run_dir, overwrite=overwrite)
    write_status(out, "running", started=datetime.datetime.now().isoformat(timespec="seconds"))
    try:
        atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        cache = Cache(cfg.cache_dir)
        frame = factor_table(cfg, cache, resolve_device(cfg.device))
        analysis = analyse(analysis_rows(frame, cfg.analysis.rows), cfg.analysis, seed=cfg.seed)
        result = FactorsResult(frame, analysis, out, cfg, time.perf_counter() - start)
        if write_report:
            write(result, out)
        else:
            frame.to_csv(out / "factors.csv", index=False)
    except BaseException as e:
        write_status(out, "interrupted" if isinstance(e, KeyboardInterrupt) else "failed", error=str(e))
        raise
    write_status(out, "complete", finished=datetime.datetime.now().isoformat(timespec="seconds"),
                 seconds=round(time.perf_counter() - start, 1))
    return result
