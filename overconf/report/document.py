"""The report as data: a list of blocks (headings, tables, text, images) that renders to summary.md
(:func:`to_markdown`) and to report.html (``overconf.report.html_report``) - one source for both.

The sections of the report (``summary.py``, the nominal, GAN, defense, mimicry and comparison
sections) write Markdown whose tables come from ``tables.markdown_table``; :func:`parse` reads that
Markdown once into blocks, each table back into its header and body cells (``markdown_table``'s
rows: ``| a | b |``), so both renderers show the same cells. :func:`arrange` then puts the answer
first: the verdicts' headline lines and the one table that matters (the comparison's FPR-per-source
table, else the first (model, setting)'s FPR-per-source table), then a table of contents, then
every section as before.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .tables import markdown_table


@dataclass
class Heading:
    level: int
    title: str
    anchor: str = ""


@dataclass
class TableBlock:
    header: list[str]
    body: list[list[str]]
    key: bool = False
    """the one table that matters (shown in the answer)"""


@dataclass
class Text:
    lines: list[str] = field(default_factory=list)
    """Markdown lines (paragraphs, list items), rendered verbatim in summary.md"""


@dataclass
class Image:
    alt: str
    path: str
    """relative to the report's folder"""


Block = Heading | TableBlock | Text | Image
_IMAGE = re.compile(r"^\s*(?:- )?!\[([^\]]*)\]\(([^)]+)\)\s*$")
_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip()[1:-1].split(" | ")]


def parse(text: str) -> list[Block]:
    """Blocks of the Markdown ``text`` (headings, tables, image lines, other text between them)."""
    blocks: list[Block] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        heading, image = _HEADING.match(line), _IMAGE.match(line)
        if heading:
            blocks.append(Heading(len(heading.group(1)), heading.group(2)))
        elif image:
            blocks.append(Image(image.group(1), image.group(2)))
        elif line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(---\|)+", lines[i + 1]):
            header, body, i = _cells(line), [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                body.append(_cells(lines[i]))
                i += 1
            blocks.append(TableBlock(header, body))
            continue
        elif blocks and isinstance(blocks[-1], Text):
            blocks[-1].lines.append(line)
        else:
            blocks.append(Text([line]))
        i += 1
    return blocks


def slug(title: str, seen: dict[str, int]) -> str:
    """GitHub's heading anchor (lower case, punctuation dropped, spaces to '-', '-1', '-2'... for
    repeats), so summary.md's table of contents links work on GitHub and in report.html alike."""
    base = re.sub(r"[^\w\- ]", "", title.lower().replace("`", "")).replace(" ", "-")
    n = seen.get(base, 0)
    seen[base] = n + 1
    return base if n == 0 else f"{base}-{n}"


def is_fpr_table(t: TableBlock) -> bool:
    """The per-source FPR table: a (model, setting)'s (``attack | TPR | FPR <source> ...``) or the
    comparison's (``model | setting | TPR | FPR test ...``)."""
    h = t.header
    return (h[:2] == ["attack", "TPR"] and len(h) > 2 and h[2].startswith("FPR ")) or \
        h[:4] == ["model", "setting", "TPR", "FPR test"]


def _verdict_sections(blocks: list[Block]) -> list[tuple[str, list[str]]]:
    """(title, the numbered headline lines) of every 'Verdicts' section."""
    found, current = [], None
    for b in blocks:
        if isinstance(b, Heading):
            current = (b.title, []) if b.title.startswith("Verdicts") else None
            if current:
                found.append(current)
        elif isinstance(b, Text) and current is not None:
            current[1].extend(x for x in b.lines if re.match(r"^\d+\. ", x))
    return found


def arrange(blocks: list[Block]) -> list[Block]:
    """The title and its lines, then 'The answer' (verdict headlines, the key table), 'Contents'
    (links to every level-2 and level-3 heading), then the blocks as they came, with anchors."""
    seen: dict[str, int] = {"the-answer": 1, "contents": 1}
    for b in blocks:
        if isinstance(b, Heading):
            b.anchor = slug(b.title, seen)
    start = next((i for i, b in enumerate(blocks) if isinstance(b, Heading) and b.level > 1), len(blocks))
    head, rest = blocks[:start], blocks[start:]
    tables = [b for b in rest if isinstance(b, TableBlock) and is_fpr_table(b)]
    key = next((t for t in tables if t.header[0] == "model"), tables[0] if tables else None)
    answer: list[Block] = [Heading(2, "The answer", "the-answer"), Text([""])]
    for title, lines in _verdict_sections(rest):
        anchor = next(b.anchor for b in rest if isinstance(b, Heading) and b.title == title)
        answer += [Text([f"{title} ([evidence](#{anchor})):", ""] + lines + [""])]
    if key is not None:
        where = _section_of(rest, key)
        answer += [Text([f"False-positive rate per non-member source ([{where.title}](#{where.anchor})):", ""]),
                   TableBlock(key.header, key.body, key=True), Text([""])]
    if len(answer) == 2:
        answer.append(Text(["No attack was evaluated in this run: see the sections below.", ""]))
    toc = [Heading(2, "Contents", "contents"), Text(
        [""] + ["  " * (b.level - 2) + f"- [{b.title}](#{b.anchor})" for b in rest
         if isinstance(b, Heading) and b.level in (2, 3)] + [""])]
    return head + answer + toc + rest


def _section_of(blocks: list[Block], target: TableBlock) -> Heading:
    heading = None
    for b in blocks:
        if isinstance(b, Heading) and b.level <= 3:
            heading = b
        if b is target:
            return heading
    raise ValueError("table not in the blocks")


def to_markdown(blocks: list[Block]) -> str:
    """summary.md: every block as Markdown (tables through ``markdown_table``)."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.title)
        elif isinstance(b, TableBlock):
            out.append(markdown_table(b.header, b.body))
        elif isinstance(b, Image):
            out.append(f"- ![{b.alt}]({b.path})")
        else:
            out.extend(b.lines)
    return "\n".join(out)
