"""One trainer with defense hooks: the single and the batched loop call the same hooks, loss
function and step; toy hooks (stop after one epoch, zero gradients, record the loss calls) show
that each hook point is honoured in both loops."""
import dataclasses

import torch

from overconf.training import (DEFAULT_HOOKS, SmoothedCrossEntropy, TrainingHooks, classification_loss,
                               train_batched, train_classifier)
from overconf.training.jobs import ClassifierJob
from tests.test_training import make_job

CPU = torch.device("cpu")


def two_models(dropout=0.0, epochs=3):
    """A tiny job and a balanced 2-model keep matrix over its points."""
    job = make_job(epochs=epochs, dropout=dropout)
    keep = torch.zeros(len(job.labels), 2, dtype=torch.bool)
    keep[::2, 0] = keep[1::2, 1] = True
    return job, keep


def single(job, hooks=DEFAULT_HOOKS, recipe=None):
    model = job.build()
    history = train_classifier(model, job.inputs(), job.labels, recipe or job.recipe, seed=job.seed, device=CPU,
                               progress=False, hooks=hooks)
    return model, history


def batched(job, keep, hooks=DEFAULT_HOOKS, recipe=None):
    return train_batched([job.build(), job.build()], job.inputs(), job.labels, keep, recipe or job.recipe,
                         seeds=[0, 1], dropout_seed=0, device=CPU, progress=False, hooks=hooks)


class StopAfterOneEpoch(TrainingHooks):
    def __init__(self):
        self.seen = []

    def stop(self, state):
        self.seen.append(state.epoch)
        return state.epoch >= 1


class ZeroGradients(TrainingHooks):
    def gradient(self, loss, params, batch):
        super().gradient(loss, params, batch)
        for p in params:
            p.grad.zero_()


class RecordLoss(TrainingHooks):
    """Records every loss object it hands out and every call made to it."""

    def __init__(self):
        self.handed, self.calls = [], []

    def loss(self, recipe):
        fn = super().loss(recipe)
        self.handed.append(fn)

        def recorded(logits, labels, reduction="mean"):
            self.calls.append((type(fn), reduction, tuple(logits.shape)))
            return fn(logits, labels, reduction=reduction)

        return recorded


class RecordBatches(TrainingHooks):
    """Default sampling, but checks that the gradient hook sees the rows it sampled."""

    def __init__(self, x, members=None):
        self.x, self.members, self.sampled, self.checked = x, members, [], 0

    def batches(self, n, batch_size, generator, device):
        out = super().batches(n, batch_size, generator, device)
        self.sampled.append(out)
        return out

    def gradient(self, loss, params, batch):
        assert torch.equal(batch.x, self.x[batch.index])
        self.checked += 1
        super().gradient(loss, params, batch)


def test_a_stopping_hook_stops_after_one_epoch_in_both_loops():
    job, keep = two_models(epochs=3)
    hooks = StopAfterOneEpoch()
    model, history = single(job, hooks)
    assert [h["epoch"] for h in history] == [1] and hooks.seen == [1]
    one_epoch, _ = single(job, recipe=dataclasses.replace(job.recipe, epochs=1))
    for (k, v), w in zip(model.state_dict().items(), one_epoch.state_dict().values()):
        assert torch.equal(v, w), k  # stopped after epoch 1 = trained for one epoch
    sds, histories = batched(job, keep, StopAfterOneEpoch())
    assert [[h["epoch"] for h in hist] for hist in histories] == [[1], [1]]
    one_sds, _ = batched(job, keep, recipe=dataclasses.replace(job.recipe, epochs=1))
    for sd, one in zip(sds, one_sds):
        assert all(torch.equal(sd[k], one[k]) for k in sd)


def test_a_gradient_hook_that_zeroes_gradients_leaves_the_weights_unchanged():
    job, keep = two_models(epochs=2)
    for optimizer in ("adam", "sgd"):
        recipe = dataclasses.replace(job.recipe, optimizer=optimizer)
        model, history = single(job, ZeroGradients(), recipe)
        initial = job.build()
        assert len(history) == 2
        for (k, v), w in zip(model.state_dict().items(), initial.state_dict().values()):
            assert torch.equal(v, w), (optimizer, k)
        trained, _ = single(job, recipe=recipe)
        assert not torch.equal(trained.head.weight, initial.head.weight)  # the default hook does train
        sds, _ = batched(job, keep, ZeroGradients(), recipe)
        for sd in sds:
            assert all(torch.equal(sd[k], v) for k, v in initial.state_dict().items())


def test_the_batched_loop_uses_the_loss_function_of_the_single_loop():
    job, keep = two_models(epochs=1)
    hooks = RecordLoss()
    single(job, hooks)
    batched(job, keep, hooks)
    assert len(hooks.handed) == 2 and all(isinstance(f, SmoothedCrossEntropy) for f in hooks.handed)
    kinds = {(t, reduction) for t, reduction, _ in hooks.calls}
    assert kinds == {(SmoothedCrossEntropy, "mean"), (SmoothedCrossEntropy, "none")}
    assert (SmoothedCrossEntropy, "none", (2 * 32, 3)) in hooks.calls  # G * B rows per batched step
    assert type(classification_loss(job.recipe)) is SmoothedCrossEntropy
    # and the per-sample losses the batched loop averages are the single loop's mean loss
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    fn = SmoothedCrossEntropy(0.1)
    assert torch.allclose(fn(z, y, reduction="none").mean(), fn(z, y))


def test_the_gradient_hook_sees_the_batches_the_sampling_hook_drew():
    job, keep = two_models(epochs=2)
    x = job.inputs()
    hooks = RecordBatches(x)
    model, _ = single(job, hooks)
    reference, _ = single(job)
    assert all(torch.equal(v, w) for v, w in zip(model.state_dict().values(), reference.state_dict().values()))
    assert len(hooks.sampled) == 2 and hooks.checked == 2 * 3  # 96 points, batches of 32
    assert torch.equal(torch.cat(hooks.sampled[0]).sort().values, torch.arange(96))  # each point once an epoch
    hooks = RecordBatches(x)
    batched(job, keep, hooks)
    assert len(hooks.sampled) == 2 * 2 and hooks.checked == 2 * 2  # per epoch one list per model; 48 points


def test_hooks_enter_the_model_key_only_when_set():
    class Noisy(TrainingHooks):
        def describe(self):
            return {"kind": "toy", "sigma": 1.0}

    job = make_job()
    assert dataclasses.replace(job, hooks=None).key == job.key
    assert dataclasses.replace(job, hooks=Noisy()).key != job.key
    assert ClassifierJob.__dataclass_fields__["hooks"].default is None


def test_reference_models_train_with_their_hooks_in_both_modes(tmp_path):
    """A ReferenceSet's hooks reach sequential and batched training, and enter the model keys."""
    from overconf.core.cache import Cache
    from tests.test_reference import reference_set

    for mode in ("sequential", "batched"):
        plain = reference_set(mode, k=2, epochs=3)
        rs = dataclasses.replace(plain, hooks=StopAfterOneEpoch())
        assert set(rs.model_keys).isdisjoint(plain.model_keys)
        cache = Cache(tmp_path / mode)
        rs.state_dicts([0, 1], cache, CPU)
        for key in rs.model_keys:
            assert [h["epoch"] for h in cache.load("models", key)["history"]] == [1], mode
