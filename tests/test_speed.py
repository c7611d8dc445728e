"""Fast feedback: a fully cached rerun trains nothing, draws nothing and writes the same report."""
import copy
import csv
import math

import pytest
import torch

from overconf.core.cache import Cache
from overconf.runner.validation import config_from_dict
from overconf.data.datasets import ImageDataset, load_dataset
from overconf.runner.study import Study


def event_records(path):
    """Every Event of an event file with its wall time zeroed and the hparams plugin payload
    decoded (protobuf map order in it is not deterministic), as comparable strings."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    out = []
    for event in EventFileLoader(str(path)).Load():
        if event.file_version:
            continue
        event.wall_time = 0
        for v in event.summary.value:
            if v.metadata.plugin_data.plugin_name == "hparams":
                data = HParamsPluginData.FromString(v.metadata.plugin_data.content)
                v.metadata.plugin_data.content = repr(sorted(str(data).splitlines())).encode()
        out.append(str(event))
    return out


def report_files(run_dir):
    """Relative paths of a run's files; event files (named by time, host and pid) as
    '<folder>/events#<i>' in the order they were opened."""
    files, events = {}, {}
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and p.name.startswith("events.out.tfevents"):
            events.setdefault(p.parent, []).append(p)
        elif p.is_file():
            files[str(p.relative_to(run_dir))] = p
    for folder, paths in events.items():
        for i, p in enumerate(sorted(paths, key=lambda p: int(p.name.rsplit(".", 1)[-1]))):
            files[f"{folder.relative_to(run_dir)}/events#{i}"] = p
    return files


def values(path):
    with open(path) as f:
        return [(r["model"], r["seed"], r["setting"], r["attack"], r["source"], r["metric"], r["value"])
                for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A tiny study with figures and TensorBoard, run twice on one cache; the rerun counts every
    training, figure rendering and TensorBoard histogram."""
    import matplotlib.figure
    import torch.utils.tensorboard

    import overconf.training.jobs as trained
    from tests.conftest import TINY

    tmp = tmp_path_factory.mktemp("speed")
    raw = copy.deepcopy(TINY)
    raw["cache_dir"] = str(tmp / "checkpoints")
    raw["recipe"]["epochs"] = 1
    raw["sources"] = ["test", "gaussian"]
    raw["report"] = {"figures": True, "tensorboard": True, "fp_grid": 8}
    raw["settings"] = {"baseline": {}, "t10": {"calibration": {"name": "temperature", "T": 10}}}  # comparison
    first = Study(config_from_dict(raw), tmp / "first").run()

    calls = {"train": 0, "savefig": 0, "histogram": 0}
    real = (trained.train_classifier, matplotlib.figure.Figure.savefig,
            torch.utils.tensorboard.SummaryWriter.add_histogram)

    def counted(name, fn):
        def wrapper(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapper

    trained.train_classifier = counted("train", real[0])
    matplotlib.figure.Figure.savefig = counted("savefig", real[1])
    torch.utils.tensorboard.SummaryWriter.add_histogram = counted("histogram", real[2])
    try:
        second = Study(config_from_dict(raw), tmp / "second").run()
    finally:
        (trained.train_classifier, matplotlib.figure.Figure.savefig,
         torch.utils.tensorboard.SummaryWriter.add_histogram) = real
    return first, second, calls


def test_cached_rerun_trains_and_draws_nothing(two_runs):
    _, second, calls = two_runs
    assert second.cache_misses == 0
    assert calls == {"train": 0, "savefig": 0, "histogram": 0}


def test_cached_rerun_writes_the_same_results_and_report_files(two_runs):
    first, second, _ = two_runs
    assert values(first.run_dir / "results.csv") == values(second.run_dir / "results.csv")
    a, b = report_files(first.run_dir), report_files(second.run_dir)
    assert sorted(a) == sorted(b)
    assert any(k.startswith("figures/fpr_bars") for k in a) and any("/events#" in k for k in a)
    assert any(k.startswith("figures/tradeoff") for k in a) and "comparison.csv" in a
    for name in a:
        if "/events#" in name:
            records = event_records(a[name])
            assert records and records == event_records(b[name]), name
        elif name.endswith(".png"):
            assert a[name].read_bytes() == b[name].read_bytes(), name


def test_figure_is_drawn_again_when_its_content_or_the_cache_changes(tmp_path):
    import matplotlib.pyplot as plt

    from overconf.report.artifacts import cached_png

    drawn = []

    def draw(value):
        def make():
            drawn.append(value)
            fig, ax = plt.subplots(figsize=(2, 2))
            ax.bar([0], [value])
            return fig
        return make

    cache = Cache(tmp_path / "cache")
    a = cached_png(cache, tmp_path / "a" / "fig.png", {"rows": [1.0]}, draw(1.0), dpi=50).read_bytes()
    b = cached_png(cache, tmp_path / "b" / "fig.png", {"rows": [1.0]}, draw(1.0), dpi=50).read_bytes()
    assert drawn == [1.0]  # the second figure of the same content came from the cache
    c = cached_png(cache, tmp_path / "b" / "fig.png", {"rows": [2.0]}, draw(2.0), dpi=50).read_bytes()
    assert drawn == [1.0, 2.0] and a != c
    cached_png(None, tmp_path / "d" / "fig.png", {"rows": [1.0]}, draw(1.0), dpi=50)
    cached_png(Cache(tmp_path / "off", enabled=False), tmp_path / "e" / "fig.png", {"rows": [1.0]}, draw(1.0), dpi=50)
    assert drawn == [1.0, 2.0, 1.0, 1.0]
    assert (tmp_path / "d" / "fig.png").read_bytes() == a == b == (tmp_path / "e" / "fig.png").read_bytes()
    # a damaged entry is drawn again, never copied into the run
    for entry in (tmp_path / "cache" / "figures").glob("*.pt"):
        entry.write_bytes(entry.read_bytes()[:-10])
    cached_png(cache, tmp_path / "f" / "fig.png", {"rows": [1.0]}, draw(1.0), dpi=50)
    assert drawn == [1.0, 2.0, 1.0, 1.0, 1.0] and (tmp_path / "f" / "fig.png").read_bytes() == a


def float64_moments(x: torch.Tensor):
    """The direct definition: mean and unbiased std of x / 255 per channel in float64."""
    y = x.double() / 255
    return y.mean(dim=(0, 2, 3)).float().view(-1, 1, 1), y.std(dim=(0, 2, 3)).float().view(-1, 1, 1)


@pytest.mark.parametrize("shape", [(50, 1, 8, 8), (200, 3, 32, 32), (7, 3, 5, 9), (1000, 1, 28, 28)])
def test_dataset_mean_and_std_equal_the_float64_definition(shape):
    g = torch.Generator().manual_seed(sum(shape))
    for high in (256, 17):  # full range and a skewed one
        x = torch.randint(0, high, shape, generator=g, dtype=torch.uint8)
        ds = ImageDataset("toy", x, torch.zeros(len(x), dtype=torch.long), x, torch.zeros(len(x), dtype=torch.long),
                          ["a"])
        mean, std = float64_moments(x)
        assert torch.equal(ds.mean, mean) and torch.equal(ds.std, std)
        assert ds.mean.dtype == torch.float32 and ds.mean.shape == (shape[1], 1, 1)


@pytest.mark.parametrize("name", ["digits", "fashion_mnist"])
def test_real_dataset_normalization_is_unchanged(name):
    ds = load_dataset(name)
    mean, std = float64_moments(ds.train_x)
    assert torch.equal(ds.mean, mean) and torch.equal(ds.std, std)
    assert math.isclose(float(ds.mean.flatten()[0]), float(ds.train_x.double().mean() / 255), rel_tol=1e-6)
