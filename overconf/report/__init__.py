"""Reports of a study run: tidy tables, a Markdown summary, figures and TensorBoard logs."""
from __future__ import annotations

import logging
from pathlib import Path

from overconf.core.cache import atomic_write_text
from .mimicry_report import mimicry_section
from .summary import summary_markdown
from .tables import load_rows, write_rows

log = logging.getLogger("overconf")


def write_report(result) -> None:
    """Write every artefact of ``result`` (a :class:`~overconf.runner.study.StudyResult`) to its run dir.
    Figures and TensorBoard records whose content was drawn before come from the cache
    (``report/artifacts.py``): a fully cached rerun draws nothing."""
    from .artifacts import report_cache
    from .per_sample import write_per_sample

    run_dir = result.run_dir
    cache = report_cache(result)
    write_rows(result.rows, run_dir)
    write_per_sample(result, run_dir / "per_sample.pt")
    if result.config.report.figures:
        from .figures import study_figures

        from .fp_grids import fp_grid_figures

        study_figures(result, run_dir / "figures", cache)
        fp_grid_figures(result, run_dir / "figures", cache)  # confident false positives, for report.html
    if result.config.report.tensorboard:
        from .tensorboard import write_tensorboard

        write_tensorboard(result, run_dir / "tensorboard", cache)
    from .gan import write_gan_report
    from .nominal_report import write_nominal

    write_nominal(result, run_dir, cache)  # nominal_fpr.csv and its figure
    from .blind_report import write_blind_csv

    write_blind_csv(result.rows, run_dir / "blind_baseline.csv")  # the blind baseline's rows, if any

    write_gan_report(result, run_dir)
    text = summary_markdown(result.rows, result.config, result)
    text += mimicry_section(result.rows)  # an audit's mimicry check (overconf.runner.audit); else nothing
    text += _defense_report(result, run_dir, cache)
    if len(result.config.settings) > 1 and any(r["attack"] != "-" for r in result.rows):
        from .comparison_report import write_comparison
        from .runs import load_run

        run = load_run(run_dir, require_complete=False)  # being written: marked complete after the report
        _, section = write_comparison([run], run_dir, figures=result.config.report.figures,
                                      figures_dir=run_dir / "figures", level=2, cache=cache, html=False)
        text += "\n" + section
    write_documents(text, run_dir, result.config.name)


def write_documents(text: str, run_dir, name: str) -> None:
    """summary.md and report.html from the same blocks (overconf.report.document): the answer first,
    contents, the sections of ``text``, the run's figures; report.html adds config.yaml and versions."""
    from .document import arrange, parse, to_markdown
    from .html_report import write_html

    blocks = arrange(parse(text.rstrip("\n") + "\n" + figures_section(text, run_dir / "figures", run_dir)))
    atomic_write_text(run_dir / "summary.md", to_markdown(blocks) + "\n")
    config = run_dir / "config.yaml"
    write_html(blocks, run_dir, f"overconf study: {name}", config.read_text() if config.is_file() else None)


FIGURE_ORDER = ("roc_", "fp_grid_", "fpr_bars_", "max_score_")
"""the run's figures in summary.md / report.html: log-log ROC curves, confident false positives,
FPR bars and max-score histograms first, then the others by name"""


def figures_section(text: str, folder, relative_to) -> str:
    """'## Figures': every PNG in ``folder`` that ``text`` does not show yet (empty if none)."""
    import os

    pngs = sorted(folder.glob("*.png"), key=lambda p: (next((i for i, x in enumerate(FIGURE_ORDER)
                                                             if p.name.startswith(x)), len(FIGURE_ORDER)), p.name))
    rel = [Path(os.path.relpath(p, relative_to)).as_posix() for p in pngs]
    lines = [f"- ![{Path(r).stem}]({r})" for r in rel if f"]({r})" not in text]
    return "\n".join(["## Figures", ""] + lines + [""]) if lines else ""


def _defense_report(result, run_dir, cache) -> str:
    """A study with defense settings: defense_fpr.csv, the defense figures (and TensorBoard images),
    and summary.md's defense section with the verdicts on the seeds' claims (else nothing)."""
    from .defense_report import defense_section, write_fpr_csv

    section, records = defense_section(result.rows)
    if not section:
        return ""
    from .defense_verdicts import defense_verdicts_markdown

    write_fpr_csv(records, run_dir / "defense_fpr.csv")
    if result.config.report.figures:
        from .defense_figures import defense_figures, defense_tensorboard

        paths = defense_figures(result.rows, records, run_dir / "figures", cache)
        if result.config.report.tensorboard:
            defense_tensorboard(paths, run_dir / "tensorboard" / "defenses")
    return "\n" + section + "\n" + defense_verdicts_markdown(result, level=3)


__all__ = ["write_report", "write_rows", "load_rows", "summary_markdown"]
