"""Issue 23: results do not depend on the intra-op thread count. Training and every cached forward
pass run with overconf.core.device.COMPUTE_THREADS threads whatever torch.set_num_threads says (1 and
2 threads reduce in different orders: weights differ in the last bits, which small studies' OOD
false-positive rates amplify)."""
from __future__ import annotations

import torch

from overconf.core.device import COMPUTE_THREADS, fixed_threads
from overconf.signals.outputs import compute_outputs
from overconf.training import train_classifier
from tests.test_training import make_job

CPU = torch.device("cpu")


def trained_under(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        job = make_job(dropout=0.2, epochs=3)
        model = job.build()
        train_classifier(model, job.inputs(), job.labels, job.recipe, seed=0, device=CPU, progress=False)
        logits, _ = compute_outputs(model, job.inputs(), CPU)
        assert torch.get_num_threads() == threads  # the caller's count is restored
        return torch.cat([p.detach().flatten() for p in model.parameters()]), logits
    finally:
        torch.set_num_threads(before)


def test_training_and_outputs_are_bit_identical_under_one_and_two_threads():
    w1, z1 = trained_under(1)
    w2, z2 = trained_under(2)
    assert torch.equal(w1, w2) and torch.equal(z1, z2)


def test_fixed_threads_runs_with_the_compute_thread_count_and_restores():
    seen = []
    f = fixed_threads(lambda: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        f()
        assert seen == [COMPUTE_THREADS] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
