"""Tidy result rows (model, seed, setting, attack, source, metric, value) and summary tables."""
from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from overconf.core.cache import atomic_write_text

COLUMNS = ["model", "seed", "setting", "attack", "source", "metric", "value"]
"""the key and value columns; rows carry the setting's parameters after them (overconf.config.row_columns)"""


def write_csv(rows: list[dict], path: Path, columns: list[str], **options) -> Path:
    """``rows`` as a CSV file with ``columns`` (``csv.DictWriter`` ``options``), written atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, **options)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return path


def write_rows(rows: list[dict], run_dir: Path) -> None:
    """results.csv (the columns of every row; empty where a row lacks one), results.json and its
    schema, results.schema.json (overconf.report.results_schema)."""
    from overconf.config.row_columns import column_order
    from .results_schema import write_schema

    write_csv(rows, run_dir / "results.csv", column_order(rows), restval="")
    atomic_write_text(run_dir / "results.json", json.dumps(rows, indent=1, allow_nan=True))
    write_schema(run_dir)


def load_rows(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        from overconf.core.errors import OverconfError

        raise OverconfError(f"'{run_dir}' holds no results.json: pass the folder of a finished 'overconf run'")
    return json.loads(path.read_text())


class Table:
    """Index over rows: ``t.get(model, setting, attack, source, metric)`` averaged over seeds."""

    def __init__(self, rows: Iterable[dict]):
        self.values: dict[tuple, list[float]] = defaultdict(list)
        for r in rows:
            self.values[(r["model"], r["setting"], r["attack"], r["source"], r["metric"])].append(r["value"])

    def get(self, *key) -> list[float]:
        return self.values.get(tuple(key), [])

    def fmt(self, *key, digits: int = 3) -> str:
        return fmt(self.get(*key), digits)


def fmt(values: list[float], digits: int = 3) -> str:
    vals = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{mean:.{digits}f}"
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    return f"{mean:.{digits}f}±{sd:.{digits}f}"


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def ordered(rows: list[dict], field: str, exclude: tuple = ()) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        if r[field] not in exclude:
            seen.setdefault(r[field], None)
    return list(seen)
