"""Run folders and their status: never two runs in one folder, --overwrite, complete / failed
markers read by `overconf compare`, writable folders checked before training, diverging training
and chance-level models reported."""
import copy
import datetime
import json

import pytest
import yaml

import overconf.runner.study as study_mod
import overconf.training.jobs as trained
from overconf.cli import main
from overconf.runner.validation import config_from_dict
from overconf.core.errors import (ConfigError, IncompleteRunError, RunFolderError, StorageError,
                             TrainingDivergedError)
from overconf.report.comparison import load_run
from overconf.runner.study import Study


def _raw(tmp, **recipe) -> dict:
    from tests.conftest import TINY

    raw = copy.deepcopy(TINY)
    raw |= {"cache_dir": str(tmp / "checkpoints"), "output_dir": str(tmp / "runs"), "sources": ["test"],
            "attacks": ["max_score"], "metrics": {"bootstrap": 20}}
    raw["recipe"] |= {"epochs": 1} | recipe
    return raw


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A folder whose cache holds the tiny models (trained once for the module)."""
    tmp = tmp_path_factory.mktemp("runs")
    Study(config_from_dict(_raw(tmp)), tmp / "warm").run(report=False)
    return tmp


@pytest.fixture
def count_trainings(monkeypatch):
    calls = []
    real = trained.train_classifier

    def spy(*args, **kw):
        calls.append(kw.get("desc"))
        return real(*args, **kw)

    monkeypatch.setattr(trained, "train_classifier", spy)
    return calls


def _status(run_dir) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def test_runs_started_in_the_same_second_get_their_own_folders(shared, monkeypatch):
    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(study_mod.datetime, "datetime", Frozen)
    raw = _raw(shared) | {"output_dir": str(shared / "same_second")}
    a = Study(config_from_dict(raw | {"seeds": [0]})).run()
    b = Study(config_from_dict(raw | {"seeds": [1]})).run()
    assert a.run_dir.name == "tiny-20260102-030405" and b.run_dir.name == "tiny-20260102-030405-2"
    for result, seed in ((a, "0"), (b, "1")):
        seeds = {line.split(",")[1] for line in (result.run_dir / "results.csv").read_text().splitlines()[1:]}
        assert seeds == {seed}
        assert _status(result.run_dir)["status"] == "complete"


def test_out_onto_an_existing_run_is_refused_unless_overwrite(shared, count_trainings, capsys):
    cfg = shared / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_raw(shared)))
    out = shared / "fixed"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 0
    first = (out / "results.csv").read_text()
    (out / "tensorboard").mkdir()
    (out / "tensorboard" / "stale").write_text("old")
    capsys.readouterr()

    assert main(["run", str(cfg), "--out", str(out), "--no-progress", "--set", "seeds=[1]"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err
    assert (out / "results.csv").read_text() == first and (out / "tensorboard" / "stale").exists()

    assert main(["run", str(cfg), "--out", str(out), "--no-progress", "--overwrite", "--set", "seeds=[1]"]) == 0
    assert not (out / "tensorboard" / "stale").exists()  # cleared, not merged
    assert (out / "results.csv").read_text() != first
    assert _status(out)["status"] == "complete"


def test_overwrite_clears_only_run_folders(shared, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="not an overconf run folder"):
        Study(config_from_dict(_raw(shared)), tmp_path, overwrite=True).run()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_failed_run_is_marked_and_compare_refuses_it(shared, tmp_path):
    from overconf.core.errors import DataNotFoundError

    raw = _raw(shared) | {"sources": ["test", "cifar100"]}
    with pytest.raises(DataNotFoundError):
        Study(config_from_dict(raw), tmp_path / "failed").run()
    status = _status(tmp_path / "failed")
    assert status["status"] == "failed" and "cifar100" in status["error"]
    with pytest.raises(IncompleteRunError, match="failed.*cifar100"):
        load_run(tmp_path / "failed")


def test_a_run_interrupted_while_writing_its_report_is_refused_by_compare(shared, tmp_path, monkeypatch, capsys):
    import overconf.report as report

    real = report.write_report

    def killed_at_the_end(result):
        real(result)  # every file written ...
        raise KeyboardInterrupt  # ... but the run did not finish

    monkeypatch.setattr(report, "write_report", killed_at_the_end)
    with pytest.raises(KeyboardInterrupt):
        Study(config_from_dict(_raw(shared)), tmp_path / "cut").run()
    assert _status(tmp_path / "cut")["status"] == "interrupted"
    assert main(["compare", str(tmp_path / "cut"), "--no-figures"]) == 2
    assert "not a finished run" in capsys.readouterr().err
    # a run killed outright (SIGKILL) leaves status 'running'
    (tmp_path / "cut" / "status.json").write_text(json.dumps({"status": "running", "started": "x", "pid": 1}))
    with pytest.raises(IncompleteRunError, match="still running or killed"):
        load_run(tmp_path / "cut")


def test_unwritable_cache_or_output_folder_fails_before_any_training(tmp_path, count_trainings):
    (tmp_path / "a_file").write_text("")
    raw = _raw(tmp_path) | {"cache_dir": str(tmp_path / "a_file" / "checkpoints")}
    with pytest.raises(StorageError, match=r"cache folder '.*a_file/checkpoints'.*cache_dir"):
        Study(config_from_dict(raw), tmp_path / "run1").run()
    raw = _raw(tmp_path) | {"output_dir": str(tmp_path / "a_file" / "runs")}
    with pytest.raises(StorageError, match=r"output folder.*a_file.*output_dir"):
        Study(config_from_dict(raw)).run()
    assert count_trainings == []


def test_diverging_study_stops_with_the_recipe_to_change_and_caches_no_model(tmp_path):
    raw = _raw(tmp_path, lr=1000.0, epochs=2)
    with pytest.raises(TrainingDivergedError, match=r"target small_resnet baseline s0 diverged.*lr=1000.*recipe\.lr"):
        Study(config_from_dict(raw), tmp_path / "run").run()
    assert not list((tmp_path / "checkpoints").glob("models/*.pt"))
    assert _status(tmp_path / "run")["status"] == "failed"


def test_a_model_at_chance_level_is_flagged_in_summary_and_log(tmp_path, caplog):
    raw = _raw(tmp_path, epochs=0)
    with caplog.at_level("WARNING", logger="overconf"):
        result = Study(config_from_dict(raw), tmp_path / "run").run()
    summary = (result.run_dir / "summary.md").read_text()
    assert "target model small_resnet / baseline / seed 0 is at chance level" in summary
    assert "chance level" in caplog.text
    assert _status(result.run_dir)["warnings"] == result.warnings != []


def test_a_failed_run_folder_is_reused_by_the_rerun(shared, tmp_path):
    """'re-run to resume' needs no --overwrite: only complete (or running) runs are protected."""
    raw = _raw(shared)
    with pytest.raises(ConfigError):
        Study(config_from_dict(raw | {"data": raw["data"] | {"eval_size": 10**6}}), tmp_path / "r").run()
    assert _status(tmp_path / "r")["status"] == "failed"
    result = Study(config_from_dict(raw), tmp_path / "r").run()
    assert _status(result.run_dir)["status"] == "complete"
    (tmp_path / "r" / "status.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(RunFolderError, match="still running or was killed.*--overwrite"):
        Study(config_from_dict(raw), tmp_path / "r").run()
