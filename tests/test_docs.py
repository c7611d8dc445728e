"""The documentation: the README's links, the site's navigation, the generated reference pages and
the strict mkdocs build (mkdocs.yml, docs/, scripts/docs_hooks.py)."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages(nav) -> list[str]:
    """Every page named in an mkdocs ``nav`` (nested sections of ``{title: page}`` entries)."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in nav_pages(value)]
    return []


def test_nav_pages_of_nested_sections():
    assert nav_pages([{"Home": "index.md"}, {"S": [{"a": "s/a.md"}, "b.md", {"T": [{"c": "c.md"}]}]}]) == [
        "index.md", "s/a.md", "b.md", "c.md"]


def test_every_docs_page_is_in_the_nav_and_every_nav_page_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = nav_pages(config["nav"])
    assert len(listed) == len(set(listed)), "a page is listed twice in mkdocs.yml nav"
    hooks = _hooks()
    generated = {hooks.CONFIG_PAGE, hooks.CATALOGUE_PAGE}
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    missing = sorted(pages - set(listed))
    assert not missing, (f"pages of docs/ missing from mkdocs.yml nav: {missing}; add each under the section "
                         f"it belongs to (Studies, Analyses, Defenses, Reliability, ...)")
    absent = sorted(set(listed) - pages - generated)
    assert not absent, f"mkdocs.yml nav names pages that do not exist: {absent}"
    assert generated <= set(listed)


def markdown_links(text: str) -> list[str]:
    """Targets of inline Markdown links ``[text](target)``, outside code blocks."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text)


def test_readme_links_resolve_to_existing_pages():
    readme = (ROOT / "README.md").read_text()
    links = [t for t in markdown_links(readme) if not re.match(r"[a-z]+://", t)]
    docs_links = [t for t in links if t.startswith("docs/")]
    assert len(docs_links) >= 10, "the README links into the documentation pages"
    for target in links:
        path = target.split("#")[0]
        assert (ROOT / path).is_file(), f"README.md links to {target}, which does not exist"
        if path.startswith("docs/"):
            assert path.endswith(".md"), f"README.md: link to the page's .md file, not {target}"


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 260, f"README.md has {len(lines)} lines; move details into a docs/ page"
    head = "\n".join(lines[:8])
    assert "scripts/demo.sh" in head and "scripts/test.sh" in head


def test_markdown_links_skip_code_blocks():
    assert markdown_links("[a](x.md) `c`\n```\n[b](y.md)\n```\n[c](z.md#s)") == ["x.md", "z.md#s"]


def _config_tables(page: str) -> dict[str, list[tuple[str, str]]]:
    """Section heading -> [(key, default)] of the configuration reference's tables."""
    out: dict[str, list[tuple[str, str]]] = {}
    heading = None
    for line in page.splitlines():
        if line.startswith("### "):
            heading = line[4:].strip()
            out[heading] = []
        m = re.match(r"\| `([^`]+)` \| `[^|]*(?:\|[^|`]*)*` \| ([^|]*) \|", line)
        if m and heading is not None:
            out[heading].append((m.group(1), m.group(2).strip()))
    return out


def test_config_reference_names_every_key_with_its_default():
    from overconf.config.audit import AuditConfig
    from overconf.config.factors import FactorsConfig
    from overconf.config.schema import StudyConfig

    hooks = _hooks()
    study_part, rest = hooks.config_reference().split("## Causal-factors study")
    factors_part, audit_part = rest.split("## Audit (")
    shared = {cls for _, cls in hooks.sections(StudyConfig, "")}
    for top, part in ((StudyConfig, study_part), (FactorsConfig, factors_part), (AuditConfig, audit_part)):
        tables = _config_tables(part)
        for key, cls in hooks.sections(top, ""):
            if cls.__name__ == "Component" or (top is FactorsConfig and cls.__name__ == "Recipe") \
                    or (top is AuditConfig and cls in shared and cls is not AuditConfig):
                continue  # components: one paragraph; the factor study's recipe and the audit's shared sections: the study config's
            rows = tables[f"`{key}`" if key else "top level"]
            assert [k for k, _ in rows] == [f.name for f in dataclasses.fields(cls)], (key, cls)
    tables = _config_tables(study_part)
    top, recipe = dict(tables["top level"]), dict(tables["`recipe`"])
    assert top["seeds"] == "`[0]`" and top["settings"] == "`{baseline: {}}`" and top["models"] == "`[salem_cnn]`"
    assert recipe["lr"] == "`0.001`" and recipe["optimizer"] == "`adam`" and top["data"] == "section below"
    assert dict(tables["`data.splits`"])["target_train"] == "`5000`"
    assert dict(tables["`settings.<name>`"])["name"] == "required"


def test_every_config_key_has_a_docstring():
    """The reference shows each key's docstring: a new key of overconf/config/*.py gets one (a
    docstring under the field, or for a section the section class's docstring)."""
    from overconf.config.audit import AuditConfig
    from overconf.config.factors import FactorsConfig
    from overconf.config.schema import StudyConfig

    hooks = _hooks()
    undocumented = []
    for top in (StudyConfig, FactorsConfig, AuditConfig):
        for key, cls in hooks.sections(top, ""):
            if cls.__name__ == "Component":
                continue
            docs = hooks.field_docs(cls)
            for f in dataclasses.fields(cls):
                section = hooks._element(typing.get_type_hints(cls)[f.name])
                if f.name not in docs and not (section is not None and hooks.class_doc(section)):
                    undocumented.append(f"{cls.__module__}.{cls.__name__}.{f.name}")
    assert not undocumented, (f"config keys without a docstring (write one under the field, it is the "
                              f"key's description in the configuration reference): {undocumented}")


def test_field_docs_read_the_docstring_under_each_field():
    @dataclasses.dataclass
    class Section:
        """A section."""

        a: int = 1
        """doc of a"""
        b: str = "x"
        c: list = dataclasses.field(default_factory=list)
        """doc of c,
        two lines"""

    hooks = _hooks()
    docs = hooks.field_docs(Section)
    assert set(docs) == {"a", "c"} and docs["a"] == "doc of a"
    assert hooks.markdown(docs["c"]) == "doc of c,\ntwo lines"
    assert hooks.class_doc(Section) == "A section."
    assert hooks.markdown("``x | y`` a <b> * c | d", in_table=True) == "`x | y` a &lt;b&gt; \\* c \\| d"


def test_catalogue_lists_every_registered_member_with_its_parameters():
    from overconf.runner.catalog import ALL

    page = _hooks().catalogue()
    for family, registry in ALL.items():
        for name in registry.names():
            assert f"### `{name}`\n" in page, (family, name)
    salem = page[page.index("### `salem`"):]
    assert "`k: 3`" in salem.split("###")[1] and "`with_label: false`" in salem.split("###")[1]
    assert "Parameters: none." in page[page.index("### `gap`"):].split("###")[1]


def _docs_tools_missing() -> str | None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            return module
    return None


def test_mkdocs_build_strict(tmp_path):
    """`mkdocs build --strict`: fails on a broken link or anchor, a missing page, a page left out of
    the nav, a failed snippet or a docstring mkdocstrings cannot render. Skipped only where the docs
    tools are not installed and OVERCONF_REQUIRE_DOCS is unset (scripts/test.sh, hence CI, sets it)."""
    missing = _docs_tools_missing()
    if missing:
        if os.environ.get("OVERCONF_REQUIRE_DOCS"):
            pytest.fail(f"{missing} is not installed but OVERCONF_REQUIRE_DOCS is set: pip install -e '.[docs]'")
        pytest.skip(f"{missing} is not installed (pip install -e '.[docs]'); the strict docs build is not run")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    config = (site / "reference" / "config" / "index.html").read_text()
    assert "label_smoothing" in config and "inception_weights" in config
    assert "max_score" in (site / "reference" / "catalogue" / "index.html").read_text()
    assert "binary_auroc" in (site / "api" / "metrics" / "index.html").read_text()
    assert "Where does a new X go" in (site / "architecture" / "index.html").read_text()


MACHINE_PATHS = re.compile("|".join(("/" + "work/", "/" + "root/", "/" + "home/[a-z]")))
"""paths of the development machines (written in pieces, so this file does not match itself)"""


def test_no_project_file_names_a_path_of_the_development_machines():
    skip = {".git", ".venv", "checkpoints", "runs", "site", "node_modules", ".whl", "shared-data"}
    offenders = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if (rel.parts and (rel.parts[0] in skip or rel.parts[0].startswith(".") and rel.parts[0] != ".ci")
                or not path.is_file() or path.suffix not in {"", ".py", ".md", ".yaml", ".yml", ".sh", ".cfg",
                                                             ".toml", ".txt", ".ini"}
                or any(p.endswith(".egg-info") or p == "__pycache__" for p in rel.parts)):
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        offenders += [f"{rel}:{i}" for i, line in enumerate(text.splitlines(), 1) if MACHINE_PATHS.search(line)]
    assert not offenders, f"paths of a development machine in project files: {offenders}"
