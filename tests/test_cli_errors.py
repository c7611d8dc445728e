"""User errors through the CLI: one line naming the problem and the fix, exit code 2, no traceback."""
from __future__ import annotations

import copy
import errno
import gzip
import shutil
from pathlib import Path

import pytest
import yaml

from overconf.cli import main
from overconf.data.datasets import DEBIAN_FASHION_MNIST
from tests.conftest import TINY

STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.fixture
def study_yaml(tmp_path) -> Path:
    raw = copy.deepcopy(TINY)
    raw |= {"cache_dir": str(tmp_path / "checkpoints"), "output_dir": str(tmp_path / "runs"),
            "sources": ["test"], "attacks": ["max_score"]}
    raw["recipe"]["epochs"] = 0
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_cli(capsys, *argv) -> str:
    """Run the CLI; assert exit code 2 and a one-line error without traceback; return that line."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("overconf: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _fashion_root(tmp_path: Path, damage) -> Path:
    raw = tmp_path / "fm" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in STEMS:
        shutil.copy(DEBIAN_FASHION_MNIST / f"{stem}.gz", raw / f"{stem}.gz")
    damage(raw / "train-images-idx3-ubyte.gz")
    return tmp_path / "fm"


def _truncate_gzip(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20_000])


def _truncate_content(path: Path) -> None:  # a valid gzip stream whose IDX content is cut short
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:100_000]))


@pytest.mark.parametrize("damage", [_truncate_gzip, _truncate_content])
def test_truncated_fashion_mnist_file(tmp_path, study_yaml, capsys, damage):
    root = _fashion_root(tmp_path, damage)
    line = run_cli(capsys, "run", study_yaml, "--set", f"data.root={root}")
    assert "train-images-idx3-ubyte.gz" in line and ("truncated" in line or "damaged" in line)
    assert "reinstall" in line


def test_download_without_network(tmp_path, study_yaml, capsys, monkeypatch):
    import urllib.error

    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    line = run_cli(capsys, "run", study_yaml, "--set", f"data.root={tmp_path / 'empty'}",
                   "--set", "data.download=true")
    assert "downloading Fashion-MNIST" in line and "data.download: false" in line

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    line = run_cli(capsys, "run", study_yaml, "--set", f"data.root={tmp_path / 'empty'}",
                   "--set", "data.download=true", "--set", "data.dataset=cifar10")
    assert "downloading cifar10" in line and "data.download: false" in line


def test_cache_dir_that_is_a_file(tmp_path, study_yaml, capsys):
    (tmp_path / "afile").write_text("")
    line = run_cli(capsys, "run", study_yaml, "--set", f"cache_dir={tmp_path / 'afile'}")
    assert f"'{tmp_path / 'afile'}' is a file" in line and "cache_dir" in line


def test_output_dir_that_is_a_file(tmp_path, study_yaml, capsys):
    (tmp_path / "afile").write_text("")
    line = run_cli(capsys, "run", study_yaml, "--set", f"output_dir={tmp_path / 'afile'}")
    assert f"'{tmp_path / 'afile'}' is a file" in line and "output_dir" in line


@pytest.mark.parametrize("code,words", [(errno.EACCES, ["cannot write", "writable", "output_dir"]),
                                        (errno.EROFS, ["cannot write", "writable"]),
                                        (errno.ENOSPC, ["no space left", "free some space", "cached"])])
def test_read_only_folder_and_full_disk(tmp_path, study_yaml, capsys, monkeypatch, code, words):
    """The tests run as root, so a chmod-ed folder stays writable: the OS error is injected into the
    study's run."""
    import overconf.runner.study

    target = tmp_path / "runs" / "x" / "config.yaml"

    def fail(self, *args, **kwargs):
        raise OSError(code, "injected", str(target))

    monkeypatch.setattr(overconf.runner.study.Study, "run", fail)
    line = run_cli(capsys, "run", study_yaml)
    assert str(target) in line
    for w in words:
        assert w in line, (w, line)


def test_momentum_out_of_range(study_yaml, capsys):
    line = run_cli(capsys, "run", study_yaml, "--set", "recipe.optimizer=sgd", "--set", "recipe.momentum=-1")
    assert "recipe.momentum must be in [0, 1)" in line


def test_cache_command_on_a_missing_or_file_folder(tmp_path, capsys):
    line = run_cli(capsys, "cache", "--cache-dir", tmp_path / "nope")
    assert f"'{tmp_path / 'nope'}' does not exist" in line and "--cache-dir" in line
    (tmp_path / "f").write_text("")
    assert "is a file" in run_cli(capsys, "cache", "--cache-dir", tmp_path / "f")


def test_list_unknown_family_and_missing_config(tmp_path, capsys):
    assert "unknown family 'atacks'" in run_cli(capsys, "list", "atacks")
    assert "does not exist" in run_cli(capsys, "run", tmp_path / "nope.yaml")
    assert "does not exist" in run_cli(capsys, "sample", tmp_path / "nope.yaml", "--out", tmp_path / "s")
    (tmp_path / "bad.yaml").write_text("recipe: {epochs: 1\n")
    assert "is not valid YAML" in run_cli(capsys, "run", tmp_path / "bad.yaml")
    (tmp_path / "dir.yaml").mkdir()
    assert "is a folder, not a file" in run_cli(capsys, "run", tmp_path / "dir.yaml")


def test_sample_arguments(study_yaml, tmp_path, capsys):
    assert "--nrow must be >= 1" in run_cli(capsys, "sample", study_yaml, "--out", tmp_path / "s", "--nrow", "0")


def test_config_error_in_run_and_sample(study_yaml, capsys):
    assert "unknown config key 'recipe.lrr'" in run_cli(capsys, "run", study_yaml, "--set", "recipe.lrr=1")
    assert "unknown config key 'recipe.lrr'" in run_cli(capsys, "sample", study_yaml, "--out", "x",
                                                        "--set", "recipe.lrr=1")
