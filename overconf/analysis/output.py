"""Writing analysis results: ``RUN_DIR/analysis/`` holds ``analysis.md`` (every analysis' markdown,
linked from summary.md), ``rows.csv`` (every row), and per analysis ``<name>/<tag>_<table>.csv``
(per-sample tables also ``.parquet``) and ``<name>/<tag>_<figure>.png``; figures also go to
TensorBoard under ``RUN_DIR/tensorboard/analysis/<name>/<tag>`` (one run per context). Writes are
atomic (overconf.core.cache)."""
from __future__ import annotations

import io
from pathlib import Path

from overconf.core.cache import atomic_write_bytes, atomic_write_text
from .base import AnalysisResult

ANALYSIS_DIR = "analysis"
SUMMARY_START, SUMMARY_END = "<!-- analysis summary: start -->", "<!-- analysis summary: end -->"
SUMMARY_LINK = "Analyses (vulnerable samples, ...): [analysis/analysis.md](analysis/analysis.md)"


def write_result(run_dir: Path, name: str, tag: str, result: AnalysisResult, tensorboard: bool = True) -> list[Path]:
    """Tables, per-sample Parquet files and figures of one result; returns the paths written."""
    out = Path(run_dir) / ANALYSIS_DIR / name
    written = []
    for file, frame in result.run_files.items():
        atomic_write_text(Path(run_dir) / file, frame.to_csv(index=False))
        written.append(Path(run_dir) / file)
    for table, frame in result.tables.items():
        path = out / f"{tag}_{table}.csv"
        atomic_write_text(path, frame.to_csv(index=False))
        written.append(path)
        if table in result.per_sample:
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            atomic_write_bytes(out / f"{tag}_{table}.parquet", buf.getvalue())
            written.append(out / f"{tag}_{table}.parquet")
    if result.figures:
        import matplotlib.pyplot as plt

        writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(Path(run_dir) / "tensorboard" / ANALYSIS_DIR / name / tag))
        for fig_name, fig in result.figures.items():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
            atomic_write_bytes(out / f"{tag}_{fig_name}.png", buf.getvalue())
            written.append(out / f"{tag}_{fig_name}.png")
            if writer is not None:
                writer.add_figure(f"{name}/{fig_name}", fig, close=False)
            plt.close(fig)
        if writer is not None:
            writer.close()
    return written


def write_rows(run_dir: Path, rows: list[dict]) -> Path:
    import pandas as pd

    path = Path(run_dir) / ANALYSIS_DIR / "rows.csv"
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return path


def write_markdown(run_dir: Path, sections: list[str], summary_sections: tuple[str, ...] = ()) -> Path:
    """analysis.md, and a link to it at the end of summary.md (once); ``summary_sections`` (the
    analyses' :attr:`AnalysisResult.summary`) go into summary.md between markers, replacing the
    block an earlier analysis of the run wrote."""
    path = Path(run_dir) / ANALYSIS_DIR / "analysis.md"
    atomic_write_text(path, "# Analyses\n\n" + "\n\n".join(s.strip() for s in sections if s.strip()) + "\n")
    summary = Path(run_dir) / "summary.md"
    if summary.exists():
        text = summary.read_text()
        if SUMMARY_START in text and SUMMARY_END in text:
            head, _, rest = text.partition(SUMMARY_START)
            text = head.rstrip("\n") + rest.partition(SUMMARY_END)[2]
        body = "\n\n".join(s.strip() for s in summary_sections if s.strip())
        if body:
            text = text.replace("\n\n" + SUMMARY_LINK, "").rstrip("\n")
            text += f"\n\n{SUMMARY_START}\n{body}\n{SUMMARY_END}\n"
        if SUMMARY_LINK not in text:
            text = text.rstrip("\n") + "\n\n" + SUMMARY_LINK + "\n"
        atomic_write_text(summary, text)
    return path
