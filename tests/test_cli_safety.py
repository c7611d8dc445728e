"""Nothing runs that should not, nothing is lost, each problem is named for what it is: through the
real ``overconf`` entry point in a subprocess (``python -m overconf``), on a tiny study.

Run folders (--overwrite, reuse of a failed run) lose no user file; SIGTERM marks a run
interrupted; ``overconf compare`` keys runs by path and reads run files as plain data; config,
Ray-address, name, symlink and dataset problems are one error line naming the problem."""
from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY
from overconf.data.datasets import DEBIAN_FASHION_MNIST, DataError, fashion_mnist
from test_cache_trust import Forged

ROOT = Path(__file__).resolve().parents[1]
STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def overconf(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m overconf ARGS`` with this checkout first on the path."""
    return subprocess.run([sys.executable, "-m", "overconf", *map(str, args)], capture_output=True, text=True,
                          env=_env(), timeout=timeout)


def _env() -> dict:
    """This checkout first on the path; one intra-op thread (as conftest.one_thread: tiny networks
    lose a lot to threads on shared cores)."""
    return os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                         "OMP_NUM_THREADS": "1"}


def one_error(r: subprocess.CompletedProcess) -> str:
    """The one 'overconf: error:' line of a command that failed cleanly (exit 2, no traceback)."""
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("overconf: error:")]
    assert len(lines) == 1, r.stderr[-2000:]
    return lines[0]


def study_yaml(tmp: Path, epochs: int = 0) -> Path:
    raw = copy.deepcopy(TINY) | {"cache_dir": str(tmp / "checkpoints"), "output_dir": str(tmp / "runs"),
                                 "sources": ["test"], "attacks": ["max_score"]}
    raw["recipe"]["epochs"] = epochs
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(study YAML, the folder of its finished run), run in-process once."""
    from overconf.runner.study import Study
    from overconf.runner.validation import load_config

    tmp = tmp_path_factory.mktemp("finished")
    config = study_yaml(tmp)
    Study(load_config(config), tmp / "run").run()
    return config, tmp / "run"


def names(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# ----------------------------------------------------------------------------- run folders
def test_overwrite_refuses_a_run_folder_holding_user_files_and_deletes_nothing(finished, tmp_path):
    config, run = finished
    r = shutil.copytree(run, tmp_path / "r")
    (r / "notes.txt").write_text("my notes")
    (r / "explore.ipynb").write_text("{}")
    before = names(r)
    line = one_error(overconf("run", config, "--out", r, "--overwrite"))
    assert "explore.ipynb, notes.txt" in line and "did not write" in line and "--out" in line
    assert names(r) == before  # not one file lost, the run included


def test_overwrite_never_clears_a_folder_that_is_no_run(tmp_path):
    """The user's config.yaml and notes in the folder given to --out --overwrite."""
    folder = tmp_path / "exp"
    folder.mkdir()
    config = study_yaml(tmp_path)
    shutil.copy(config, folder / "config.yaml")
    (folder / "notes.md").write_text("my notes")
    before = names(folder)
    line = one_error(overconf("run", folder / "config.yaml", "--out", folder, "--overwrite"))
    assert "not an overconf run folder" in line and "config.yaml, notes.md" in line
    assert names(folder) == before


def test_rerunning_a_failed_run_keeps_a_notebook_placed_beside_it(finished, tmp_path):
    config, run = finished
    r = shutil.copytree(run, tmp_path / "r")
    (r / "status.json").write_text(json.dumps({"status": "failed", "error": "ValueError: x"}))
    (r / "look.ipynb").write_text("{}")
    before = names(r)
    line = one_error(overconf("run", config, "--out", r))
    assert "look.ipynb" in line and "move them elsewhere" in line
    assert names(r) == before


def test_clearing_a_run_deletes_only_overconfs_files_and_follows_no_link(finished, tmp_path):
    """--overwrite on a run folder reached through a symlink, with a figures folder and a link to
    the user's folder: overconf's files go, the link target and the folder (a link) stay."""
    from overconf.runner.run_folder import create_run_dir
    from overconf.runner.validation import load_config

    config, run = finished
    real = shutil.copytree(run, tmp_path / "real")
    (real / "figures").mkdir()
    (real / "figures" / "roc.png").write_bytes(b"png")
    (real / ".results.csv.x1y2.tmp").write_bytes(b"half")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    (real / "tensorboard").symlink_to(mine)
    (tmp_path / "link").symlink_to(real)
    out = create_run_dir(load_config(config), tmp_path / "link", overwrite=True)
    assert out == tmp_path / "link" and out.is_symlink()
    assert sorted(p.name for p in real.iterdir()) == ["status.json"]  # claimed again, the rest cleared
    assert (mine / "keep.txt").read_text() == "mine"


def test_sigterm_marks_the_run_interrupted_and_a_rerun_completes(tmp_path):
    config = study_yaml(tmp_path, epochs=1)
    r = tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "overconf", "run", str(config), "--out", str(r), "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        try:
            if json.loads((r / "status.json").read_text())["status"] == "running":
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)  # what a batch scheduler or docker stop sends
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "terminated (SIGTERM)" in err and "re-run to resume" in err and "Traceback" not in err
    status = json.loads((r / "status.json").read_text())
    assert status["status"] == "interrupted" and "SIGTERM" in status["error"]
    again = overconf("run", config, "--out", r, "--no-progress")  # re-run to resume: no --overwrite
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((r / "status.json").read_text())["status"] == "complete"


def test_a_name_too_long_and_a_dangling_symlink_are_named_for_what_they_are(tmp_path):
    config = study_yaml(tmp_path)
    line = one_error(overconf("run", config, "--set", "name=" + "a" * 300))
    assert "too long" in line and "255" in line and "--set name=" in line and "free space" not in line
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    line = one_error(overconf("run", config, "--out", tmp_path / "link"))
    assert "symbolic link" in line and "nowhere" in line and "free space" not in line


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("setting,key", [("recipe.lr=.inf", "recipe.lr"), ("recipe.weight_decay=.nan", "recipe.weight_decay"),
                                         ("settings={big: {recipe: {lr: -.inf}}}", "settings.big.recipe.lr")])
def test_non_finite_recipe_values_are_rejected_at_config_time(tmp_path, setting, key):
    line = one_error(overconf("run", study_yaml(tmp_path), "--set", setting))
    assert f"'{key}' must be a finite number" in line


def test_the_divergence_message_never_suggests_a_non_finite_or_zero_lr():
    from overconf.config import Recipe
    from overconf.training.step import divergence_error

    assert "--set recipe.lr=0.01" in str(divergence_error("m", Recipe(lr=0.1), "loss nan"))
    for lr in (5e-324, 1e-323):  # lr / 10 underflows to 0
        message = str(divergence_error("m", Recipe(lr=lr), "loss nan"))
        assert "recipe.lr=0 " not in message and "recipe.lr=0," not in message and "recipe.lr=0.001" in message
    with pytest.raises(ValueError, match="recipe.lr must be a finite number, got inf"):
        Recipe(lr=float("inf"))


def test_a_ray_address_that_is_no_address(tmp_path):
    line = one_error(overconf("run", study_yaml(tmp_path), "--executor", "ray", "--ray-address", "not-an-address"))
    assert "ray.address = 'not-an-address' is not a Ray address" in line and "ray://" in line
    from overconf.config.executor import is_ray_address

    assert all(is_ray_address(a) for a in ("auto", "local", "ray://head:10001", "10.0.0.5:6379", "[::1]:6379"))
    assert not any(is_ray_address(a) for a in ("not-an-address", "head:", ":6379", "head:99999", "a b:1"))


# ----------------------------------------------------------------------------- compare
def _two(finished, tmp_path, dataset: str | None = None) -> tuple[Path, Path]:
    _, run = finished
    a = shutil.copytree(run, tmp_path / "exp1" / "r")
    b = shutil.copytree(run, tmp_path / "exp2" / "r")
    if dataset:
        text = (b / "config.yaml").read_text()
        (b / "config.yaml").write_text(text.replace("dataset: fashion_mnist", f"dataset: {dataset}", 1))
    return a, b


def test_compare_keys_runs_by_path_and_labels_them_by_a_distinguishing_suffix(finished, tmp_path):
    a, b = _two(finished, tmp_path)
    r = overconf("compare", a, b, "--no-figures", "--out", tmp_path / "cmp")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "cmp" / "comparison.csv").open()))
    assert sorted(row["run"] for row in rows) == ["exp1/r", "exp2/r"]
    assert "exp1/r/baseline" in r.stdout and "exp2/r/baseline" in r.stdout


def test_compare_refuses_runs_of_different_datasets_with_the_same_name(finished, tmp_path):
    a, b = _two(finished, tmp_path, dataset="digits")
    line = one_error(overconf("compare", a, b, "--no-figures", "--out", tmp_path / "cmp"))
    assert "different datasets" in line and "exp1/r: fashion_mnist" in line and "exp2/r: digits" in line


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("name,content,why", [
    ("per_sample.pt", _saved({"m/baseline/s0": {"model": "m"}}), "is not a mapping with keys"),
    ("results.json", b"[]", "holds no rows"),
])
def test_compare_names_a_run_file_of_the_wrong_structure_damaged(finished, tmp_path, name, content, why):
    _, run = finished
    r = shutil.copytree(run, tmp_path / "r")
    (r / name).write_bytes(content)
    line = one_error(overconf("compare", r, "--no-figures", "--out", tmp_path / "cmp"))
    assert f"'{r / name}' is damaged" in line and why in line and "no attack results" not in line


def test_compare_refuses_a_forged_per_sample_file_without_running_it(finished, tmp_path):
    _, run = finished
    r = shutil.copytree(run, tmp_path / "r")
    ran = tmp_path / "code_ran"
    (r / "per_sample.pt").write_bytes(_saved({"m/baseline/s0": Forged(ran)}))
    line = one_error(overconf("compare", r, "--no-figures", "--out", tmp_path / "cmp"))
    assert "per_sample.pt' is damaged" in line and "not loaded" in line
    assert not ran.exists()


# ----------------------------------------------------------------------------- data
def _idx(array: torch.Tensor) -> bytes:
    """uint8 IDX bytes (magic 0 0 8 ndim, big-endian dims, data), gzipped."""
    header = b"\x00\x00\x08" + bytes([array.dim()]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.to(torch.uint8).numpy().tobytes(), compresslevel=1)


def _fashion(tmp_path: Path, replace: dict[str, bytes]) -> Path:
    """A torchvision root: the good Fashion-MNIST files linked, the ones in ``replace`` written."""
    raw = tmp_path / "fm" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in STEMS:
        if stem in replace:
            (raw / f"{stem}.gz").write_bytes(replace[stem])
        else:
            (raw / f"{stem}.gz").symlink_to(DEBIAN_FASHION_MNIST / f"{stem}.gz")
    return tmp_path / "fm"


@pytest.mark.parametrize("stem,array,words", [
    ("train-labels-idx1-ubyte", torch.zeros(10_000), ["holds 10000 labels", "60000 images", "do not belong"]),
    ("t10k-labels-idx1-ubyte", torch.arange(10_000) % 12, ["holds label 11", "10 classes 0..9"]),
    ("t10k-images-idx3-ubyte", torch.zeros(10_000), ["does not hold images", "(10000,)"]),
])
def test_labels_that_do_not_match_the_images_are_refused(tmp_path, stem, array, words):
    root = _fashion(tmp_path, {stem: _idx(array)})
    with pytest.raises(DataError) as e:
        fashion_mnist(str(root))
    assert f"{stem}.gz'" in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


def test_a_one_dimensional_idx_file_in_place_of_the_images_through_the_cli(tmp_path):
    root = _fashion(tmp_path, {"train-images-idx3-ubyte": _idx(torch.zeros(60_000))})
    line = one_error(overconf("run", study_yaml(tmp_path), "--set", f"data.root={root}"))
    assert "train-images-idx3-ubyte.gz' does not hold images" in line
