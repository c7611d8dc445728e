"""Issue 23: nothing runs that should not, nothing is lost, nothing is silently wrong. CLI cases
go through the real `overconf` entry point in a subprocess; each case failed before its fix."""
from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from overconf.core.cache import Cache
from overconf.core.errors import ConfigError
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def overconf_cli(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "overconf", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("overconf: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def study_yaml(tmp_path) -> Path:
    raw = copy.deepcopy(TINY)
    raw |= {"cache_dir": str(tmp_path / "checkpoints"), "output_dir": str(tmp_path / "runs"),
            "sources": ["test"], "attacks": ["max_score"], "progress": False}
    raw["recipe"]["epochs"] = 0
    raw["report"] = {"figures": False, "tensorboard": False}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class Exploit:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def forge(path: Path, marker: Path) -> None:
    """A file with a VALID checksum whose pickle would run code (torch.save's zip format)."""
    import io

    buf = io.BytesIO()
    torch.save({"format": "overconf-cache-entry/2", "kind": "outputs", "key": path.stem,
                "payload": Exploit(marker)}, buf, pickle_protocol=2)
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)


# ----------------------------------------------------------------------------- security

def test_a_forged_cache_entry_is_refused_and_never_executed(tmp_path):
    cache, marker = Cache(tmp_path / "c"), tmp_path / "pwned"
    forge(cache.path("outputs", "k1"), marker)
    assert cache.load("outputs", "k1") is None
    assert not marker.exists()  # no code ran
    assert not cache.path("outputs", "k1").exists()  # removed: it is rebuilt
    assert cache.get_or_create("outputs", "k1", lambda: {"x": torch.ones(2)})["x"].tolist() == [1.0, 1.0]


def test_a_forged_per_sample_file_is_one_error_and_never_executed(tmp_path, study_yaml):
    run = tmp_path / "run"
    assert overconf_cli("run", study_yaml, "--out", run).returncode == 0
    marker = tmp_path / "pwned"
    per_sample = run / "per_sample.pt"
    with open(per_sample, "wb") as f:
        pickle.dump(Exploit(marker), f)
    line = one_error_line(overconf_cli("compare", run))
    assert "per_sample.pt" in line and "damaged" in line
    assert not marker.exists()  # no code ran


def test_an_entry_read_under_another_key_is_refused(tmp_path):
    cache = Cache(tmp_path / "c")
    cache.save("models", "target", {"w": torch.zeros(3)})
    cache.save("models", "shadow", {"w": torch.ones(3)})
    a, b = cache.path("models", "target"), cache.path("models", "shadow")
    tmp = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(tmp)  # swapped by hand
    assert cache.load("models", "target") is None and cache.load("models", "shadow") is None


def test_a_valid_entry_of_another_structure_is_rebuilt_not_a_traceback(tmp_path):
    cache = Cache(tmp_path / "c")
    cache.save("outputs", "k", [1, 2, 3])  # plain data, right key, wrong structure
    made = cache.get_or_create("outputs", "k", lambda: {"logits": torch.zeros(1)},
                               valid=lambda p: isinstance(p["logits"], torch.Tensor))
    assert set(made) == {"logits"}
    assert cache.misses == 1


def test_storing_something_not_plain_fails_at_write_time(tmp_path):
    class Custom:
        pass

    with pytest.raises(TypeError, match="not plain data"):
        Cache(tmp_path / "c").save("x", "k", {"a": Custom()})


# ----------------------------------------------------------------------------- data lost

def test_overwrite_keeps_the_users_own_files(tmp_path, study_yaml):
    run = tmp_path / "run"
    assert overconf_cli("run", study_yaml, "--out", run).returncode == 0
    (run / "notes.md").write_text("my notes")
    line = one_error_line(overconf_cli("run", study_yaml, "--out", run, "--overwrite"))
    assert "notes.md" in line
    assert (run / "notes.md").read_text() == "my notes" and (run / "results.csv").exists()
    (run / "notes.md").unlink()
    assert overconf_cli("run", study_yaml, "--out", run, "--overwrite").returncode == 0


def test_a_failed_runs_folder_is_not_cleared_with_a_users_notebook_in_it(tmp_path, study_yaml):
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"status": "failed", "error": "x"}))
    (run / "analysis.ipynb").write_text("{}")
    line = one_error_line(overconf_cli("run", study_yaml, "--out", run))
    assert "analysis.ipynb" in line and (run / "analysis.ipynb").exists()


def test_a_folder_that_is_no_run_is_never_cleared(tmp_path, study_yaml):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.yaml").write_text("name: mine\n")
    one_error_line(overconf_cli("run", study_yaml, "--out", folder, "--overwrite"))
    assert (folder / "config.yaml").read_text() == "name: mine\n"


# ----------------------------------------------------------------------------- silently wrong

def test_compare_keeps_two_runs_with_the_same_folder_name_apart(tmp_path, study_yaml):
    a, b = tmp_path / "exp1" / "r", tmp_path / "exp2" / "r"
    for run in (a, b):
        assert overconf_cli("run", study_yaml, "--out", run).returncode == 0
    out = tmp_path / "cmp"
    proc = overconf_cli("compare", a, b, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (out / "comparison.md").read_text() if (out / "comparison.md").exists() else proc.stdout
    assert "exp1/r" in text and "exp2/r" in text


def test_labels_that_do_not_match_the_images_are_refused(tmp_path, study_yaml):
    from overconf.data.datasets import DEBIAN_FASHION_MNIST

    raw = tmp_path / "fm" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(DEBIAN_FASHION_MNIST / f"{stem}.gz", raw / f"{stem}.gz")
    # the test labels (10,000) in place of the training labels (60,000)
    shutil.copy(DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz", raw / "train-labels-idx1-ubyte.gz")
    line = one_error_line(overconf_cli("run", study_yaml, "--set", f"data.root={tmp_path / 'fm'}",
                                       "--set", "data.dataset=fashion_mnist"))
    assert "10000 labels" in line and "60000 images" in line


def test_a_one_dimensional_idx_file_in_place_of_the_images_is_refused(tmp_path, study_yaml):
    from overconf.data.datasets import DEBIAN_FASHION_MNIST

    raw = tmp_path / "fm" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(DEBIAN_FASHION_MNIST / f"{stem}.gz", raw / f"{stem}.gz")
    shutil.copy(DEBIAN_FASHION_MNIST / "train-labels-idx1-ubyte.gz", raw / "train-images-idx3-ubyte.gz")
    line = one_error_line(overconf_cli("run", study_yaml, "--set", f"data.root={tmp_path / 'fm'}",
                                       "--set", "data.dataset=fashion_mnist"))
    assert "does not hold images" in line or "images" in line


# ----------------------------------------------------------------------------- messages

def test_a_bad_ray_address_is_one_error(study_yaml):
    line = one_error_line(overconf_cli("run", study_yaml, "--executor", "ray", "--ray-address", "not-an-address"))
    assert "not a Ray address" in line


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_recipe_values_are_refused(value):
    from overconf.config import read_config

    with pytest.raises(ConfigError, match="finite"):
        read_config(ROOT / "experiments" / "tiny.yaml", [f"recipe.lr={value}"])


def test_the_divergence_message_never_suggests_a_non_finite_or_zero_lr():
    from overconf.config import Recipe
    from overconf.training.step import divergence_error

    import re

    msg = str(divergence_error("target", Recipe(lr=5e-324), "loss nan"))  # lr / 10 underflows to 0
    assert not re.search(r"--set recipe\.lr=(0|inf|nan)(?![0-9.e])", msg), msg
    assert "recipe.lr=0.001" in str(divergence_error("target", Recipe(lr=0.01), "loss nan"))


def test_a_too_long_run_name_is_named_as_such(study_yaml):
    line = one_error_line(overconf_cli("run", study_yaml, "--set", "name=" + "a" * 300))
    assert "too long" in line and "free space" not in line


def test_a_dangling_symlinked_out_is_named_as_such(tmp_path, study_yaml):
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "missing")
    line = one_error_line(overconf_cli("run", study_yaml, "--out", link))
    assert "symbolic link" in line and "free space" not in line


def test_an_empty_results_json_is_damaged_not_no_results(tmp_path, study_yaml):
    run = tmp_path / "run"
    assert overconf_cli("run", study_yaml, "--out", run).returncode == 0
    (run / "results.json").write_text("[]")
    line = one_error_line(overconf_cli("compare", run))
    assert "damaged" in line and "no attack results" not in line


def test_sigterm_marks_the_run_interrupted_and_resumable(tmp_path, study_yaml):
    raw = yaml.safe_load(study_yaml.read_text())
    raw["recipe"]["epochs"] = 200  # long enough to be terminated while training
    study_yaml.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "overconf", "run", str(study_yaml), "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    status = run / "status.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (status.exists() and "running" in status.read_text()):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err and "re-run to resume" in err
    assert json.loads(status.read_text())["status"] == "interrupted"
