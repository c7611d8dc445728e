"""report.html: the report's blocks (``overconf.report.document``, the same blocks as summary.md)
rendered by a jinja2 template (``templates/report.html.j2``) into one self-contained file: CSS in
the page, every figure inline as a base64 PNG, no script, no external URL; then the configuration
(config.yaml) and the versions of Python and the packages the numbers came from."""
from __future__ import annotations

import base64
import html
import importlib.metadata
import platform
import re
from pathlib import Path

from overconf.core.cache import atomic_write_text
from .document import Block, Heading, Image, TableBlock, Text

PACKAGES = ("overconf", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "opacus", "laplace-torch",
            "matplotlib", "jinja2")
"""the packages whose versions report.html lists"""
_LIST = re.compile(r"^( *)(- |\d+\. )(.*)$")


def inline(text: str):
    """Markdown inline markup of a summary line as HTML: `code`, **bold**, [text](#anchor) links
    (links to a local file kept; a web address is shown as text, never linked)."""
    from markupsafe import Markup

    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)

    def link(m):
        label, target = m.group(1), m.group(2)
        if re.match(r"^[a-z]+:", target):
            return f"{label} ({target})"
        return f'<a href="{html.escape(target)}">{label}</a>'

    return Markup(re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", link, out))


def versions() -> list[list[str]]:
    """[name, version] of Python and of each of :data:`PACKAGES` that is installed."""
    out = [["python", platform.python_version()]]
    for name in PACKAGES:
        try:
            out.append([name, importlib.metadata.version(name)])
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _text_parts(lines: list[str]) -> list[dict]:
    """Paragraphs (consecutive lines) and lists (consecutive list items, indentation kept)."""
    parts: list[dict] = []
    for line in lines:
        m = _LIST.match(line)
        if not line.strip():
            parts.append({"kind": "break"})
        elif m:
            item = (len(m.group(1)) * 0.6, "•" if m.group(2) == "- " else m.group(2).strip(), m.group(3))
            if parts and parts[-1]["kind"] == "list":
                parts[-1]["items"].append(item)
            else:
                parts.append({"kind": "list", "items": [item]})
        elif parts and parts[-1]["kind"] == "paragraph":
            parts[-1]["text"] += " " + line.strip()
        elif parts and parts[-1]["kind"] == "list" and line.startswith(" "):
            indent, marker, text = parts[-1]["items"][-1]
            parts[-1]["items"][-1] = (indent, marker, text + " " + line.strip())
        else:
            parts.append({"kind": "paragraph", "text": line})
    return [p for p in parts if p["kind"] != "break"]


def _image(b: Image, base: Path) -> dict:
    path = base / b.path
    if not path.is_file():
        return {"kind": "missing_image", "alt": b.alt, "path": b.path}
    return {"kind": "image", "alt": b.alt, "data": base64.b64encode(path.read_bytes()).decode("ascii")}


def html_parts(blocks: list[Block], base: Path) -> list[dict]:
    """The template's parts of ``blocks``; image paths are relative to ``base``. 'The answer' (up
    to the next level-2 heading) is framed as a section."""
    parts: list[dict] = []
    in_answer = False
    for b in blocks:
        if isinstance(b, Heading):
            if in_answer and b.level <= 2:
                parts.append({"kind": "close_answer"})
                in_answer = False
            if b.anchor == "the-answer":
                parts.append({"kind": "open_answer"})
                in_answer = True
            parts.append({"kind": "heading", "level": b.level, "title": b.title, "anchor": b.anchor})
        elif isinstance(b, TableBlock):
            parts.append({"kind": "table", "header": b.header, "body": b.body, "key": b.key})
        elif isinstance(b, Image):
            parts.append(_image(b, base))
        elif isinstance(b, Text):
            parts += _text_parts(b.lines)
    if in_answer:
        parts.append({"kind": "close_answer"})
    return parts


def render_html(blocks: list[Block], base: Path, title: str, config_text: str | None = None) -> str:
    """The page: ``blocks``, then 'Configuration' (``config_text``, if given) and 'Versions'."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, keep_trailing_newline=True)
    env.filters["inline"] = inline
    parts = html_parts(blocks, base)
    if config_text is not None:
        parts += [{"kind": "heading", "level": 2, "title": "Configuration", "anchor": "configuration"},
                  {"kind": "pre", "text": config_text}]
    parts += [{"kind": "heading", "level": 2, "title": "Versions", "anchor": "versions"},
              {"kind": "table", "header": ["package", "version"], "body": versions(), "key": False}]
    return env.get_template("report.html.j2").render(title=title, parts=parts)


def write_html(blocks: list[Block], folder: Path, title: str, config_text: str | None = None) -> Path:
    """``folder``/report.html (images read relative to ``folder``)."""
    path = Path(folder) / "report.html"
    atomic_write_text(path, render_html(blocks, Path(folder), title, config_text))
    return path
