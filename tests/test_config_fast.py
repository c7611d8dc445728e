"""Configs are validated before torch is imported: errors within a second."""
from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest

from overconf.config import parse_config
from overconf.core.errors import ConfigError
from overconf.runner.validation import config_from_dict, load_config
from overconf.core.yamlio import load_yaml

ROOT = Path(__file__).parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_config_module_and_parsing_do_not_import_torch():
    code = """
import sys
import overconf, overconf.config, overconf.cli, overconf.core.errors, overconf.config.sweeps, overconf.config.gan
assert 'torch' not in sys.modules, 'import'
from overconf.config import read_config
from overconf.core.errors import ConfigError
read_config('experiments/fashion_mnist.yaml', ['recipe.lr=3e-4'])
for bad in (['recipe.lrr=1'], ['recipe.lr=abc'], ['attacks=[max_scor]'], ['models=[resnet19]']):
    try:
        read_config('experiments/fashion_mnist.yaml', bad)
        raise SystemExit('no error for %s' % bad)
    except ConfigError:
        pass
assert 'torch' not in sys.modules, 'parse'
print('ok')
"""
    r = _python(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_cli_config_error_does_not_import_torch():
    """`overconf run` with a bad key fails before torch is imported (what made errors take 7-13 s)."""
    code = """
import sys
import overconf.cli
real_import = __builtins__.__import__
def guard(name, *a, **k):
    if name == 'torch' or name.startswith('torch.'):
        raise SystemExit('torch imported')
    return real_import(name, *a, **k)
__builtins__.__import__ = guard
for bad in ('recipe.lrr=1', 'recipe.lr=abc', 'attacks=[max_scor]'):
    assert overconf.cli.main(['run', 'experiments/fashion_mnist.yaml', '--set', bad]) == 2
    assert overconf.cli.main(['sample', 'experiments/fashion_mnist.yaml', '--out', 'x', '--set', bad]) == 2
print('ok')
"""
    r = _python(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    assert "unknown config key 'recipe.lrr'" in r.stderr and "unknown attack 'max_scor'" in r.stderr


def test_names_table_matches_the_registries():
    from overconf.core.names import NAMES
    from overconf.runner.catalog import ALL

    registries = {r.family: r for r in ALL.values()}
    for family, names in NAMES.items():
        assert sorted(names) == registries[family].names(), (
            f"overconf/core/names.py NAMES['{family}'] is out of date; registered: {registries[family].names()}")
    config_visible = {"dataset", "source", "architecture", "attack", "calibration", "defense", "gan", "analysis"}
    assert set(NAMES) == config_visible


@pytest.mark.parametrize("family,where,name", [
    ("dataset", ("data", "dataset"), "cifar11"), ("source", ("sources",), ["tset"]),
    ("attack", ("attacks",), ["max_scor"]), ("architecture", ("models",), ["resnet19"]),
    ("calibration", ("settings",), {"x": {"calibration": "platt"}}), ("gan", ("gan", "arch"), "stylegan"),
])
def test_fast_name_errors_match_the_registry_errors(tiny_raw, family, where, name):
    node = tiny_raw
    for p in where[:-1]:
        node = node.setdefault(p, {})
    node[where[-1]] = name
    with pytest.raises(ConfigError) as fast:
        parse_config(copy.deepcopy(tiny_raw))
    assert f"unknown {family} " in str(fast.value) and "allowed:" in str(fast.value)


def _doc_yaml_blocks(root: Path = ROOT) -> list[tuple[str, str]]:
    """(file, block) for every ```yaml block of README.md and of every page under docs/."""
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [(p.relative_to(root).as_posix(), block) for p in pages
            for block in re.findall(r"```yaml\n(.*?)```", p.read_text(), re.S)]


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _check_doc_snippets(root: Path = ROOT) -> int:
    """A full study validates as it stands; a fragment (gan:, reference:, sweeps:, ...) is merged into
    the default study and validated with it. Returns the number of blocks checked."""
    blocks = _doc_yaml_blocks(root)
    base = load_yaml((ROOT / "experiments" / "fashion_mnist.yaml").read_text(), "fashion_mnist.yaml")
    for where, block in blocks:
        snippet = load_yaml(block, f"yaml snippet of {where}")
        assert isinstance(snippet, dict), (where, block)
        raw = snippet if {"sources", "attacks"} <= set(snippet) else _merge(base, snippet)
        try:
            config_from_dict(raw)
        except ConfigError as e:
            raise AssertionError(f"a ```yaml block of {where} is not a valid study config ({e}); fix it, "
                                 f"or mark it ```text if it is not a config:\n{block}") from None
    return len(blocks)


def test_every_docs_yaml_snippet_validates():
    """Every ```yaml block of README.md and docs/**/*.md."""
    assert any(f.startswith("docs/") for f, _ in _doc_yaml_blocks())
    assert _check_doc_snippets() >= 4


def test_a_broken_docs_yaml_snippet_is_caught(tmp_path):
    """A docs page (in a subfolder too) with an invalid config block fails the check, named."""
    (tmp_path / "docs" / "studies").mkdir(parents=True)
    (tmp_path / "README.md").write_text("```yaml\nrecipe: {epochs: 1}\n```\n")
    (tmp_path / "docs" / "studies" / "page.md").write_text("text\n```yaml\nrecipe: {epoch: 1}\n```\n")
    with pytest.raises(AssertionError, match=r"docs/studies/page.md .*epoch"):
        _check_doc_snippets(tmp_path)
    (tmp_path / "docs" / "studies" / "page.md").write_text("```text\nrecipe: {epoch: 1}\n```\n")
    assert _check_doc_snippets(tmp_path) == 1


def test_calibration_table_snippets_are_numbers():
    """The calibration page's table: `recipe: {weight_decay: 3e-4}` and LLLA `prior_range: [1e-4, 1e4]`."""
    text = (ROOT / "docs" / "studies" / "calibration.md").read_text()
    assert "`recipe: {weight_decay: 3e-4}`" in text and "prior_range: [1e-4, 1e4]" in text
    cfg = load_config(ROOT / "experiments" / "fashion_mnist.yaml", [
        "settings={base: {}, l2: {recipe: {weight_decay: 3e-4}}, "
        "llla: {calibration: {name: llla, prior_range: [1e-4, 1e4]}}}"])
    assert cfg.settings[1].recipe == {"weight_decay": 3e-4}
    assert cfg.settings[2].calibration.params["prior_range"] == [1e-4, 1e4]
