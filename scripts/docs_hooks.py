"""Pages of the documentation site generated from the code at build time, so they cannot drift.

mkdocs loads this file as a hook (``hooks:`` in mkdocs.yml); :func:`on_files` adds two pages that
exist in no folder:

- ``reference/config.md``: every section and key of the study config, read from the schema
  dataclasses (``overconf/config/*.py``): the dotted key, its type, its default and the docstring
  written under the field; the same for a ``study: causal_factors`` config.
- ``reference/catalogue.md``: every registered component (``overconf list``): each family, each
  member's docstring, module and the parameters a config may give it, with their defaults (read
  from the factory's signature, as ``overconf.runner.validation.check_params`` checks them).

``python scripts/docs_hooks.py config`` (or ``catalogue``) prints a page; tests/test_docs.py checks
that the config page names every key of the schema.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG_PAGE = "reference/config.md"
CATALOGUE_PAGE = "reference/catalogue.md"
SKIPPED_PARAMS = ("self", "ctx", "in_channels", "num_classes", "image_size", "channels")
"""filled in by overconf, never by a config (as in overconf.runner.validation)"""


def _import_overconf_from_tree() -> None:
    """Document the tree this file sits in, not another installed copy."""
    if str(ROOT) not in sys.path[:1]:
        sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------------- text
_ROLE = re.compile(r":(?:func|class|data|meth|mod|attr|obj):`~?([^`]+)`")


def markdown(text: str, *, in_table: bool = False) -> str:
    """A docstring (plain text with reST literals and roles) as Markdown: ``x`` and :func:`x` become
    code spans; outside code, characters Markdown or HTML would read (``<``, ``>``, ``*``, and ``|``
    in a table cell) are escaped."""
    text = _ROLE.sub(r"``\1``", inspect.cleandoc(text))
    parts = re.split(r"(``.+?``|`[^`]+`)", text, flags=re.S)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a code span
            out.append(f"`{part.strip('`')}`")  # a pipe in a code span never splits a cell
            continue
        part = part.replace("\\", "\\\\").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
        if in_table:
            part = part.replace("|", "\\|")
        out.append(part)
    text = "".join(out)
    return " ".join(text.split()) if in_table else text


def flow(value: Any) -> str:
    """A default as YAML flow text (what a user would write)."""
    from overconf.config.component import Component
    from overconf.config.schema import ModelSpec
    from overconf.config.settings import Setting

    if isinstance(value, Component):
        return value.name if not value.params else flow({"name": value.name, **value.params})
    if isinstance(value, ModelSpec):
        return value.arch if value == ModelSpec(value.arch) else flow(dataclasses.asdict(value))
    if isinstance(value, Setting):
        return f"{value.name}: {{}}" if value == Setting(value.name) else value.name
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Setting) for v in value):
            return "{" + ", ".join(flow(v) for v in value) + "}"
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    return str(value)


def _code(text: str) -> str:
    return f"`{text}`"


# ------------------------------------------------------------------------------ config reference
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field (``x: int = 1`` then ``\"\"\"doc\"\"\"``), over the MRO."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = after.value.value
    return docs


def class_doc(cls: type) -> str:
    """The class docstring written in the source (not the one dataclasses generates)."""
    doc = cls.__dict__.get("__doc__") or ""
    return "" if doc.startswith(cls.__name__ + "(") else inspect.cleandoc(doc)


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _element(tp: Any) -> type | None:
    """The dataclass a field holds: itself, or the element of a list of it."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) is list:
        (arg,) = typing.get_args(tp)
        return arg if dataclasses.is_dataclass(arg) else None
    return None


def sections(cls: type, path: str, seen: set[type] | None = None) -> list[tuple[str, type]]:
    """``(dotted path, dataclass)`` for the config class and every section below it, depth first.
    A list of a dataclass is written ``key[]``; ``settings`` (a mapping of names) ``settings.<name>``;
    a component (name + parameters) is described once."""
    from overconf.config.component import Component
    from overconf.config.settings import Setting

    seen = set() if seen is None else seen
    out = [(path, cls)]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        inner = _element(hints[f.name])
        if inner is None or inner is Component and Component in seen:
            continue
        if inner is Component:
            seen.add(Component)
            out.append(("component", Component))
            continue
        key = f"{path}.{f.name}" if path else f.name
        if inner is Setting:
            key = f"{key}.<name>"
        elif inner is not hints[f.name]:
            key = f"{key}[]"
        out += sections(inner, key, seen)
    return out


def keys_of(cls: type, path: str) -> list[str]:
    """Every dotted key of a config class (what the reference page must name)."""
    keys = []
    for key, klass in sections(cls, path):
        if klass.__name__ == "Component":
            continue
        keys += [f"{key}.{f.name}" if key else f.name for f in dataclasses.fields(klass)]
    return keys


def section_markdown(key: str, cls: type, level: int) -> str:
    from overconf.config.component import Component

    if cls is Component:
        return COMPONENT_SECTION.format(level="#" * level)
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    raw_types = {f.name: f.type for f in dataclasses.fields(cls)}
    title = f"`{key}`" if key else "top level"
    lines = [f"{'#' * level} {title}", ""]
    intro = class_doc(cls)
    if intro:
        lines += [markdown(intro), ""]
    lines += [f"Schema: `{cls.__module__}.{cls.__qualname__}`.", "",
              "| key | type | default | description |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        default = default_of(f)
        if default is dataclasses.MISSING:
            shown = "required"
        elif _element(hints[f.name]) not in (None, Component) and not isinstance(default, list):
            shown = "section below"
        else:
            shown = _code(flow(default))
        doc = docs.get(f.name) or (class_doc(_element(hints[f.name])).split("\n\n")[0]
                                   if _element(hints[f.name]) is not None else "")
        typ = raw_types[f.name] if isinstance(raw_types[f.name], str) else getattr(hints[f.name], "__name__", "")
        lines.append(f"| `{f.name}` | {_code(str(typ))} | {shown} | {markdown(doc, in_table=True)} |")
    return "\n".join(lines) + "\n"


COMPONENT_SECTION = """\
{level} Components (`sources[]`, `attacks[]`, `calibration`, `defense`)

A registered component is written as its name (`max_score`) or as a mapping with `name` and its
parameters inline (`{{name: salem, k: 10, with_label: true}}`); `label:` renames a source or an
attack in the results. Each component's parameters and their defaults are in the
[catalogue](catalogue.md); they are checked against the component's factory before anything
runs (`overconf.runner.validation`). Schema: `overconf.config.component.Component`.
"""

CONFIG_INTRO = """\
# Configuration reference

*Generated from the schema dataclasses in `overconf/config/` when the site is built (the hook
`scripts/docs_hooks.py`): every key below is read from the code, with its type, its default and
the docstring written under it, so this page cannot drift from the schema.* How configs are
written, overridden and checked: [Configuration](../configuration.md). The parameters of each
component (source, attack, calibration, defense, architecture, analysis): the
[catalogue](catalogue.md).

A study YAML sets any of these keys; a key left out takes its default. Unknown keys and values are
errors that name the key and the allowed values.
"""

FACTORS_INTRO = """\
## Causal-factors study (`study: causal_factors`)

A YAML with the top-level key `study: causal_factors` is a factor study
([Causal factors](../studies/causal-factors.md)), read by its own schema
(`overconf/config/factors.py`); the keys of the study config above do not apply to it.
"""


AUDIT_INTRO = """\
## Audit (`study: audit`)

A YAML with the top-level key `study: audit` audits a model you trained
([Audit your own model](../audit.md)), read by its own schema (`overconf/config/audit.py`). Its
`recipe`, `metrics`, `report`, `gan` and `ray` sections have the keys of the study config's sections
of the same names.
"""


def config_reference() -> str:
    """The configuration reference page (Markdown)."""
    _import_overconf_from_tree()
    from overconf.config.audit import AuditConfig
    from overconf.config.factors import FactorsConfig
    from overconf.config.schema import StudyConfig

    parts = [CONFIG_INTRO, "## Study config\n"]
    parts += [section_markdown(key, cls, 3) for key, cls in sections(StudyConfig, "")]
    parts.append(FACTORS_INTRO)
    parts += [section_markdown(key, cls, 3) for key, cls in sections(FactorsConfig, "")
              if cls.__name__ not in ("Recipe", "Component")]
    parts.append("The factor study's `recipe` has the keys of the study config's "
                 "[`recipe`](#recipe) (default `epochs: 15`).\n")
    shared = {cls for _, cls in sections(StudyConfig, "")}
    parts.append(AUDIT_INTRO)
    parts += [section_markdown(key, cls, 3) for key, cls in sections(AuditConfig, "")
              if cls not in shared or cls is AuditConfig]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------ catalogue
CATALOGUE_INTRO = """\
# Component catalogue

*Generated from the registries when the site is built (`overconf list` prints the same names with
the first line of each docstring).* Every member of a family is one config name; its parameters
(with their defaults) are what a config may give it, e.g. `{name: salem, k: 10}`. Formulas and
papers are in each module's docstring, and in the study pages: [attack suite](../studies/attack-suite.md),
[reference-model attacks](../studies/reference-attacks.md), [defenses](../studies/defenses.md),
[calibration](../studies/calibration.md), [GAN sources](../studies/gan.md),
[analyses](../analyses/vulnerability.md).
"""

FAMILY_TITLES = {
    "datasets": ("Datasets", "`data.dataset`"),
    "sources": ("Non-member sources", "`sources:`"),
    "architectures": ("Architectures", "`models:`, `reference.arch`, `gan.fid.classifier`"),
    "attacks": ("Attacks", "`attacks:`"),
    "calibrations": ("Calibrations", "`settings.<name>.calibration`"),
    "defenses": ("Defenses", "`settings.<name>.defense`"),
    "signals": ("Signals", "what attacks read besides the outputs (`Attack.requires`); not set in a config"),
    "gans": ("GANs", "`gan.arch`"),
    "analyses": ("Analyses", "`analysis:` or `overconf analyze --only`"),
}


NO_CONFIG_PARAMETERS = ("datasets", "signals")
"""families whose members a config names without parameters (a dataset's root and download are
``data.root`` and ``data.download``; signals are requested by attacks)"""


def parameters(obj: Any) -> dict[str, Any] | None:
    """The parameters a config may give a registered member, with their defaults (None: required);
    None when the member takes none that a config sets (signals)."""
    if isinstance(getattr(obj, "defaults", None), dict):
        return dict(obj.defaults)
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return {n: (None if p.default is p.empty else p.default) for n, p in sig.parameters.items()
            if n not in SKIPPED_PARAMS and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def catalogue() -> str:
    """The component catalogue page (Markdown); imports the registries (torch)."""
    _import_overconf_from_tree()
    from overconf.runner.catalog import ALL

    parts = [CATALOGUE_INTRO]
    for family, registry in ALL.items():
        title, where = FAMILY_TITLES.get(family, (family.capitalize(), ""))
        parts.append(f"## {title}\n\nSet in {where}. Registry `{registry.family}`: "
                     f"{len(registry)} members.\n" if where else f"## {title}\n")
        for name in registry.names():
            obj = registry[name]
            doc = inspect.getdoc(obj) or ""
            lines = [f"### `{name}`", "", markdown(doc) if doc else "(no docstring)", "",
                     f"Module: `{getattr(obj, '__module__', '?')}`."]
            params = parameters(obj) if family not in NO_CONFIG_PARAMETERS else None
            if params:
                lines.append("Parameters: " + ", ".join(f"`{k}: {flow(v)}`" for k, v in params.items()) + ".")
            elif params is not None:
                lines.append("Parameters: none.")
            parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------ the hook
def on_files(files, config):
    """mkdocs hook: add the generated pages to the site's files."""
    from mkdocs.structure.files import File

    for uri, make in ((CONFIG_PAGE, config_reference), (CATALOGUE_PAGE, catalogue)):
        files.append(File.generated(config, uri, content=make()))
    return files


if __name__ == "__main__":
    page = sys.argv[1] if len(sys.argv) > 1 else "config"
    print({"config": config_reference, "catalogue": catalogue}[page]())
