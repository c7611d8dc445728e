import pytest
import torch

from overconf.core.cache import Cache
from overconf.config import Recipe
from overconf.signals.outputs import compute_outputs
from overconf.training.jobs import ClassifierJob, load_or_train

from conftest import both, slow_counting


def make_job(seed=0, epochs=3, dropout=0.2) -> ClassifierJob:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 1, 12, 12), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 3, (96,), generator=g)
    return ClassifierJob("salem_cnn", Recipe(epochs=epochs, batch_size=32, lr=1e-3, dropout=dropout), seed,
                         images, labels, torch.tensor([[[0.5]]]), torch.tensor([[[0.25]]]), 3,
                         params={"width": 4, "hidden": 16})


def test_training_is_reproducible_and_leaves_global_rng_alone(tmp_path):
    state = torch.get_rng_state()
    a = load_or_train(make_job(), Cache(tmp_path / "a"), torch.device("cpu"), progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    b = load_or_train(make_job(), Cache(tmp_path / "b"), torch.device("cpu"), progress=False)
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(v, w), k
    c = load_or_train(make_job(seed=1), Cache(tmp_path / "c"), torch.device("cpu"), progress=False)
    assert not torch.equal(a.model.head.weight, c.model.head.weight)


def test_killed_training_resumes_where_it_stopped(tmp_path, monkeypatch):
    full = load_or_train(make_job(epochs=4), Cache(tmp_path / "full"), torch.device("cpu"), progress=False)

    import overconf.training.jobs as trained

    cache = Cache(tmp_path / "killed")
    real = trained.train_classifier

    def killed_after_two_epochs(*args, on_epoch, **kw):
        def hook(state):
            on_epoch(state)
            if state.epoch == 2:
                raise KeyboardInterrupt

        return real(*args, on_epoch=hook, **kw)

    monkeypatch.setattr(trained, "train_classifier", killed_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        load_or_train(make_job(epochs=4), cache, torch.device("cpu"), progress=False, checkpoint_every=0)
    assert cache.load("partial", make_job(epochs=4).key)["epoch"] == 2
    monkeypatch.setattr(trained, "train_classifier", real)

    epochs_run = []
    resumed = load_or_train(make_job(epochs=4), cache, torch.device("cpu"), progress=False)
    epochs_run = [h["epoch"] for h in resumed.history]
    assert epochs_run == [1, 2, 3, 4]
    for (k, v), w in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(v.float(), w.float(), atol=1e-6), k
    assert cache.load("partial", make_job(epochs=4).key) is None  # cleaned up once finished


def test_outputs_are_computed_in_eval_mode():
    job = make_job(dropout=0.5)
    model = job.build()
    model.train()
    x = job.inputs()
    a, _ = compute_outputs(model, x, torch.device("cpu"))
    b, _ = compute_outputs(model, x, torch.device("cpu"))
    assert torch.equal(a, b)  # dropout off
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize("eps", [0.0, 0.0083, 0.1])
def test_training_loss_is_label_smoothed_cross_entropy(eps):
    from overconf.training import classification_loss

    z = torch.randn(20, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 5, (20,), generator=torch.Generator().manual_seed(1))
    logp = z.log_softmax(1)
    expected = (1 - eps) * torch.nn.functional.nll_loss(logp, y) + eps * (-logp.mean(1)).mean()
    got = classification_loss(Recipe(label_smoothing=eps))(z, y)
    assert got.item() == pytest.approx(expected.item(), abs=1e-12)


def test_two_runs_sharing_a_cache_train_a_model_once(tmp_path, monkeypatch):
    """Two threads (as two runs would) ask for the same key: one trains, the other waits and loads."""
    import overconf.training.jobs as trained

    calls = slow_counting(monkeypatch, trained, "train_classifier")
    results = both(lambda: load_or_train(make_job(), Cache(tmp_path), torch.device("cpu"), progress=False))
    assert len(calls) == 1
    for v, w in zip(results[0].model.state_dict().values(), results[1].model.state_dict().values()):
        assert torch.equal(v, w)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_diverging_training_stops_with_a_clear_error_and_caches_nothing(tmp_path, optimizer):
    import dataclasses

    from overconf.core.errors import TrainingDivergedError

    job = make_job(epochs=3)
    job.recipe = dataclasses.replace(job.recipe, lr=1000.0, optimizer=optimizer, dropout=0.0)
    cache = Cache(tmp_path)
    with pytest.raises(TrainingDivergedError, match=r"diverged.*lr=1000.*recipe\.lr"):
        load_or_train(job, cache, torch.device("cpu"), progress=False, checkpoint_every=0)
    assert cache.load("models", job.key) is None
    assert not list((tmp_path / "models").glob("*.pt"))


def test_a_non_finite_model_is_never_stored(tmp_path, monkeypatch):
    import overconf.training.jobs as trained
    from overconf.core.errors import TrainingDivergedError

    def nan_weights(model, *args, **kw):
        with torch.no_grad():
            model.head.weight.fill_(float("nan"))
        return []

    monkeypatch.setattr(trained, "train_classifier", nan_weights)
    job = make_job()
    with pytest.raises(TrainingDivergedError, match="non-finite weights in head.weight"):
        load_or_train(job, Cache(tmp_path), torch.device("cpu"), progress=False)
    assert Cache(tmp_path).load("models", job.key) is None


def test_batched_reference_training_stops_on_divergence():
    import dataclasses

    from overconf.core.errors import TrainingDivergedError
    from overconf.training.batched import train_batched

    job = make_job(dropout=0.0)
    recipe = dataclasses.replace(job.recipe, lr=1000.0, optimizer="sgd")
    keep = torch.zeros(len(job.labels), 2, dtype=torch.bool)
    keep[::2, 0] = keep[1::2, 1] = True
    with pytest.raises(TrainingDivergedError, match="model 0.*lr=1000"):
        train_batched([job.build(), job.build()], job.inputs(), job.labels, keep, recipe, seeds=[0, 1],
                      dropout_seed=0, device=torch.device("cpu"), progress=False)


def test_a_non_finite_generator_is_never_stored(tmp_path, monkeypatch):
    import overconf.gan.training as gan_training
    from overconf.data import load_dataset
    from overconf.core.errors import TrainingDivergedError
    from tests.test_gan import job

    def nan_generator(gen, *args, **kw):
        with torch.no_grad():
            next(gen.parameters()).fill_(float("nan"))
        return [], 0.0

    monkeypatch.setattr(gan_training, "train_gan", nan_generator)
    j = job(load_dataset("fashion_mnist"), steps=2)
    with pytest.raises(TrainingDivergedError, match="gan.lr"):
        gan_training.load_or_train_generator(j, Cache(tmp_path), torch.device("cpu"), progress=False)
    assert Cache(tmp_path).load("generators", j.key) is None


def test_a_cached_non_finite_model_is_discarded_and_retrained(tmp_path):
    """Caches written before the check may hold NaN models: they are not used."""
    job = make_job(epochs=1)
    cache = Cache(tmp_path)
    good = load_or_train(job, cache, torch.device("cpu"), progress=False)
    stored = cache.load("models", job.key)
    stored["state_dict"] = {k: v.clone().fill_(float("nan")) if v.is_floating_point() else v
                            for k, v in stored["state_dict"].items()}
    cache.save("models", job.key, stored)
    again = load_or_train(job, cache, torch.device("cpu"), progress=False)
    assert all(torch.isfinite(v).all() for v in again.model.state_dict().values() if v.is_floating_point())
    assert torch.equal(again.model.head.weight, good.model.head.weight)  # retrained, reproducibly
    assert torch.isfinite(cache.load("models", job.key)["state_dict"]["head.weight"]).all()
