"""The comparison of settings as tables, comparison.md (with the verdicts of overconf.report.verdicts)
and comparison.csv, plus its figures (overconf.report.comparison_figures)."""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path



from overconf.core.cache import atomic_write_text
from .comparison import Comparison, Entry, build_comparison
from .runs import RunData
from .tables import markdown_table


def _f(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def model_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    sets = ["members"] + c.sources
    header = ["model", "setting", "sweep", "test acc", "ECE", "OE"] + [f"MMC {s}" for s in sets]
    body = [[e.model, c.label(e), _sweep(e), _f(e.values["test_accuracy"]), _f(e.values["ece"]),
             _f(e.values["overconfidence_error"])] + [_f(e.values[f"mmc:{s}"], 4) for s in sets]
            for e in c.entries]
    return header, body


def attack_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    others = [s for s in c.sources if s != "test"]
    header = (["model", "setting", "TPR", "FPR test", "AUROC", "TPR@1%FPR"] + [f"FPR {s}" for s in others]
              + ["mean OOD FPR"] + (["fake FPR"] if c.fake_sources else []))
    body = []
    for e in c.entries:
        v = e.values
        body.append([e.model, c.label(e), _f(v["tpr"]), _f(v["fpr_test"]), _f(v["auroc"]), _f(v["tpr_at_1pct_fpr"])]
                    + [_f(v[f"fpr:{s}"]) for s in others] + [_f(v["mean_ood_fpr"])]
                    + ([_f(v["fake_fpr"])] if c.fake_sources else []))
    return header, body


def wasserstein_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["model", "setting"] + [f"W1 {s}" for s in c.sources]
    return header, [[e.model, c.label(e)] + [_f(e.values[f"wasserstein:{s}"], 4) for s in c.sources]
                    for e in c.entries]


def _sweep(e: Entry) -> str:
    if e.info.sweep is None:
        return ""
    return f"{e.info.sweep}={e.info.sweep_value}" if e.info.sweep_value is not None else e.info.sweep


def comparison_markdown(c: Comparison, figures: list[Path] = (), relative_to: Path | None = None,
                        level: int = 1) -> str:
    from .verdicts import verdicts_markdown

    h = "#" * level
    out = [f"{h} Calibration comparison: overconfidence vs leakage", "",
           (f"Dataset: `{c.dataset}`. " if c.dataset else "")
           + f"Attack: `{c.attack}` (fitted on each setting's shadow model, applied to its target). "
           f"Mean OOD FPR = mean over {', '.join(c.ood_sources) or '(no OOD sources)'}"
           + (f"; fake FPR = mean over {', '.join(c.fake_sources)}" if c.fake_sources else "")
           + (f". Baseline: `{c.baseline}`." if c.baseline else ". No baseline setting."), "",
           *[x for note in c.notes for x in (f"Note: {note}", "")],
           f"{h}# Settings", ""]
    seen = {}
    for e in c.entries:
        seen.setdefault(c.label(e), e.info.describe())
    out += [markdown_table(["setting", "what it changes"], [[k, v] for k, v in seen.items()]), ""]
    out += [f"{h}# Model calibration and confidence (MMC: mean max confidence)", "",
            markdown_table(*model_table(c)), "",
            f"{h}# Membership inference ({c.attack}); FPR per non-member source", "",
            markdown_table(*attack_table(c)), "",
            f"{h}# Wasserstein-1 distance between the max-score distributions of members and each source", "",
            markdown_table(*wasserstein_table(c)), "",
            verdicts_markdown(c, level + 1), ""]
    if figures:
        out += [f"{h}# Figures", ""]
        for p in figures:
            rel = Path(os.path.relpath(p, relative_to)) if relative_to is not None else p
            out.append(f"- ![{p.stem}]({rel.as_posix()})")
        out.append("")
    return "\n".join(out)


def comparison_csv(c: Comparison) -> str:
    keys = list(dict.fromkeys(k for e in c.entries for k in e.values))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", "model", "setting", "kind", "sweep", "sweep_value", "attack"] + keys)
    for e in c.entries:
        w.writerow([e.run, e.model, e.setting, e.info.kind, e.info.sweep or "", "" if e.info.sweep_value is None
                    else e.info.sweep_value, c.attack] + [e.values.get(k, float("nan")) for k in keys])
    return buf.getvalue()


def write_comparison(runs: list[RunData], out_dir: str | Path, *, attack: str | None = None,
                     baseline: str | None = None, figures: bool = True,
                     figures_dir: str | Path | None = None, level: int = 1,
                     cache=None, html: bool = True) -> tuple[Comparison, str]:
    """comparison.md, comparison.csv, the comparison figures and (``html``) report.html, which opens
    with the verdicts and the FPR-per-source table (overconf.report.document); returns the comparison
    and its Markdown. Figures already drawn with the same content come from ``cache`` (a Cache)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    c = build_comparison(runs, attack, baseline)
    paths: list[Path] = []
    if figures:
        from .comparison_figures import comparison_figures

        paths = comparison_figures(c, Path(figures_dir) if figures_dir is not None else out_dir / "figures", cache)
    text = comparison_markdown(c, paths, relative_to=out_dir, level=level)
    atomic_write_text(out_dir / "comparison.md", text)
    atomic_write_text(out_dir / "comparison.csv", comparison_csv(c))
    if html:
        from .document import arrange, parse
        from .html_report import write_html

        write_html(arrange(parse(text)), out_dir, "overconf comparison")
    return c, text
