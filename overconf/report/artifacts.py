"""Content-keyed reuse of report artefacts (PNG figures, TensorBoard event records).

A fully cached rerun computes the same rows and tensors as the run before it, so drawing its
figures again would produce the same bytes. Each artefact is keyed by the content it shows (the
result rows and tensors it reads, its options), the drawing code (the bytes of the
``overconf/report`` and ``overconf/metrics`` sources) and the matplotlib / tensorboard versions;
the rendered bytes are stored in the run's cache under ``figures/`` and ``tensorboard/``, and a
rerun copies them instead of drawing. Editing the drawing code or changing any shown value
draws anew.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import io
from pathlib import Path
from typing import Any, Callable

from overconf.core.cache import Cache, atomic_write_bytes, content_key

ARTIFACTS_VERSION = 1


class _Pyplot:
    """``matplotlib.pyplot`` (Agg backend), imported on first use: a report whose figures all
    come from the cache skips the import (about a second on a small CPU)."""

    def __getattr__(self, name: str) -> Any:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot

        return getattr(pyplot, name)


plt = _Pyplot()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 over the sources of the report package and of the metrics it draws with (the ROC
    curve) and the drawing libraries' versions: a figure drawn by other code is never reused."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for path in sorted(here.glob("*.py")) + sorted((here.parent / "metrics").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for package in ("matplotlib", "tensorboard", "numpy", "torch"):
        h.update(f"{package}={_version(package)}\0".encode())
    return h.hexdigest()


def artifact_key(kind: str, content: Any) -> str:
    """The key of an artefact of ``kind`` showing ``content`` (rows, tensors, options)."""
    return content_key({"kind": kind, "version": ARTIFACTS_VERSION, "code": code_digest(), "content": content})


def report_cache(result) -> Cache | None:
    """The cache a run's report artefacts are reused from: the study's cache directory."""
    cfg = result.config
    return Cache(cfg.cache_dir) if cfg.cache_dir else None


def png_bytes(fig, dpi: int) -> bytes:
    """``fig`` rendered as ``savefig(path, dpi=dpi)`` would write it; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def is_bytes(data) -> bool:
    """The structure of a ``figures`` entry: a file's bytes."""
    return isinstance(data, bytes)


def cached_png(cache: Cache | None, path: Path, content: Any, draw: Callable[[], Any], dpi: int) -> Path:
    """Write the PNG of ``draw()`` (a figure showing ``content``) to ``path``: the stored bytes
    when the same content was drawn by the same code before, else drawn now and stored."""
    key = artifact_key(f"png:{path.name}", content)
    data = cache.load("figures", key, is_bytes) if cache is not None else None
    if data is None:
        data = png_bytes(draw(), dpi)
        if cache is not None:
            cache.save("figures", key, data)
    atomic_write_bytes(path, data)
    return path


def cached_file(cache: Cache | None, path: Path, content: Any, write: Callable[[Path], Any]) -> Path:
    """Like :func:`cached_png` for a drawing function that saves its figure itself: ``write(path)``
    runs only when no file of the same content by the same code is stored."""
    key = artifact_key(f"file:{path.name}", content)
    data = cache.load("figures", key, is_bytes) if cache is not None else None
    if data is not None:
        atomic_write_bytes(path, data)
        return path
    write(path)
    if cache is not None:
        cache.save("figures", key, path.read_bytes())
    return path
