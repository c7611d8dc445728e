"""The package's import graph: no cycle, and no import from a layer above (ARCHITECTURE.md).

Every module of overconf/ is parsed with ``ast``; every import counts, including the ones inside
functions (a lazy import that runs upward is still an upward dependency). Importing a submodule
from outside its package also runs the package's ``__init__``, so that is an edge too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "overconf"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # (layer, its folders under overconf/), bottom first; a module may import its own layer and those below.
    ("base", ("core",)),
    ("config", ("config",)),
    ("data", ("data",)),
    ("models", ("models",)),
    ("training", ("training",)),
    ("outputs/signals", ("signals",)),
    ("components", ("attacks", "calibrations", "defenses", "gan", "reference", "metrics")),
    ("analysis", ("analysis",)),  # analyses of a study's cached models (overconf analyze)
    ("report", ("report",)),
    ("runner", ("runner",)),
    ("entry", ()),  # the modules at the package root: ENTRY_POINTS
]
"""The layers of ARCHITECTURE.md, by folder: a module's layer is the layer of the folder it sits in."""

ENTRY_POINTS = ("overconf", "overconf.__main__", "overconf.api", "overconf.cli", "overconf.byo")
"""the only modules at the package root: the command line and the public Python API"""


def module_files() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _known(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """Package modules ``module`` imports (anywhere in the file) -> first line."""
    is_package = path.name == "__init__.py"
    found: dict[str, int] = {}

    def add(target: str | None, line: int) -> None:
        if target is None or not target.startswith("overconf") or target == module:
            return
        found.setdefault(target, line)
        parent = target.rpartition(".")[0]  # importing a.b.c from outside runs a/__init__ and a/b/__init__
        while parent and not module.startswith(parent + ".") and module != parent:
            found.setdefault(parent, line)
            parent = parent.rpartition(".")[0]

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(_known(a.name, modules), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            for a in node.names:
                full = f"{stem}.{a.name}"
                add(_known(full if full in modules else stem, modules), node.lineno)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    modules = module_files()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def layer_of(module: str) -> int | None:
    """The layer of ``module``, read from its folder (``overconf.<folder>...``); root modules are
    entry points; a root module that is not an entry point has no layer."""
    if module in ENTRY_POINTS:
        return len(LAYERS) - 1
    parts = module.split(".")
    if len(parts) < 3:  # a module at the package root that is not an entry point, or a bare folder name
        return next((i for i, (_, folders) in enumerate(LAYERS) if len(parts) == 2 and parts[1] in folders), None)
    return next((i for i, (_, folders) in enumerate(LAYERS) if parts[1] in folders), None)


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a cycle path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    sccs: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [cycle_in(graph, set(c)) for c in sccs]


def cycle_in(graph: dict[str, dict[str, int]], comp: set[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component (a -> b -> ... -> a)."""
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in comp)
        back = [w for w in nxt if w in seen]
        if back:
            return path[path.index(back[0]):] + [back[0]]
        w = nxt[0]
        path.append(w)
        seen.add(w)


def test_every_module_has_a_layer():
    missing = [m for m, p in module_files().items() if layer_of(m) is None]
    assert not missing, f"modules without a layer: put them in a layer's folder (LAYERS in tests/test_layers.py, " \
                        f"ARCHITECTURE.md); only entry points sit at the package root: {missing}"


def test_the_package_root_holds_only_entry_points_and_folders():
    root = {p.stem for p in PACKAGE.glob("*.py")}
    assert root == {m.rpartition(".")[2] if m != "overconf" else "__init__" for m in ENTRY_POINTS}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {f for _, fs in LAYERS for f in fs}, "every package folder belongs to exactly one layer"


def test_no_two_layers_share_a_file_name_for_different_things():
    """Same base name in two layers only where it is the same concept (listed here)."""
    same_concept = {
        "base",        # each family's base class (models, attacks, calibrations, defenses, analyses)
        "cell_hooks",  # CELL_HOOKS and the GAN's member of it
        "gan",         # the GAN part of the config schema and of the report
        "sources",     # SOURCES and the GAN sources registered in it
        "verdicts",    # verdicts of the study report and of the causal-factors study
    }
    by_name: dict[str, set[int]] = {}
    for m, p in module_files().items():
        if p.name != "__init__.py":
            by_name.setdefault(p.stem, set()).add(layer_of(m))
    clash = {n: sorted(ls) for n, ls in by_name.items() if len(ls) > 1 and n not in same_concept}
    assert not clash, f"the same file name in different layers for different things (rename one): {clash}"


def test_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_from_a_layer_above():
    graph = import_graph()
    up = []
    for m, targets in sorted(graph.items()):
        for t, line in targets.items():
            if layer_of(t) > layer_of(m):
                up.append(f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]}) at line {line}")
    assert not up, "imports from a layer above:\n" + "\n".join(up)


MAX_LINES = 320
"""issue 12: the largest module is at most ~300 lines (split by what the parts hold)"""


def test_no_module_is_much_longer_than_300_lines():
    long = {m: n for m, p in module_files().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them into modules named for what they hold): {long}"


def test_the_config_schema_is_a_leaf():
    """overconf.config.schema imports only the config package's own modules and overconf.core.errors/names."""
    graph = import_graph()
    allowed = ("overconf.config", "overconf.core.errors", "overconf.core.names")
    assert not graph["overconf.core"], "overconf/core/__init__.py imports nothing (it runs on every config import)"
    for m in ("overconf.config.schema", "overconf.config.gan", "overconf.config.convert"):
        bad = [t for t in graph[m] if t != "overconf.core" and not any(t == a or t.startswith(a + ".") for a in allowed)]
        assert not bad, f"{m} imports {bad}"


@pytest.mark.parametrize("source, expected", [
    ("from .b import x\n", {"overconf.pkg.b"}),
    ("def f():\n    from ..top import y\n", {"overconf.top"}),
    ("def f():\n    import overconf.other.deep\n", {"overconf.other.deep", "overconf.other"}),
])
def test_the_walker_sees_function_level_and_relative_imports(tmp_path, source, expected):
    names = ("overconf", "overconf.pkg", "overconf.pkg.a", "overconf.pkg.b", "overconf.top", "overconf.other",
             "overconf.other.deep")
    path = tmp_path / "a.py"
    path.write_text(source)
    assert set(imports_of("overconf.pkg.a", path, {m: tmp_path for m in names})) == expected


def test_a_cycle_is_found_and_named():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 3}, "d": {"a": 1}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
