"""DP-SGD's privacy accounting (Abadi et al. 2016; Mironov 2017, RDP; Gopi et al. 2021, PRV), through
opacus' accountants used on their own.

One step of DP-SGD is the Poisson-subsampled Gaussian mechanism with sampling rate q = batch_size / n
and noise multiplier sigma; T steps compose to (epsilon, delta)-DP, epsilon from opacus'
``RDPAccountant`` / ``PRVAccountant`` with the history ``[(sigma, q, T)]`` (the same as calling
``step(noise_multiplier=sigma, sample_rate=q)`` T times). Every epsilon is reported with its delta.

The delta convention: ``DEFAULT_DELTA`` = 1e-5, and delta must be < 1/n (a mechanism that releases
one random record verbatim is (0, 1/n)-DP, so delta >= 1/n promises nothing); the epsilon at
delta = 1/n, seed 003's convention (Khalil et al. 2025: CIFAR-10, sigma 1, C 1, batch 64:
epsilon 4.95 at delta 1/n), is an extra row for comparison only.
"""
from __future__ import annotations

from overconf.core.errors import ConfigError

ACCOUNTANTS = ("rdp", "prv")
DEFAULT_DELTA = 1e-5


def accountant(name: str):
    """A fresh opacus accountant: ``rdp`` (RDPAccountant) or ``prv`` (PRVAccountant)."""
    from opacus.accountants import PRVAccountant, RDPAccountant
    if name not in ACCOUNTANTS:
        raise ConfigError(f"dp_sgd accountant '{name}' is not allowed; use one of {', '.join(ACCOUNTANTS)}")
    return RDPAccountant() if name == "rdp" else PRVAccountant()


def sample_rate(n: int, batch_size: int) -> float:
    """q = batch_size / n (capped at 1)."""
    return min(1.0, batch_size / n)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """n // batch_size Poisson draws an epoch (at least 1), as opacus' DPDataLoader (len = 1 / q)."""
    return max(1, n // batch_size)


def epsilon_reached(noise_multiplier: float, q: float, steps: int, delta: float, accountant_name: str = "rdp") -> float:
    """Epsilon of ``steps`` Poisson-subsampled Gaussian steps at ``delta`` (opacus' RDP / PRV
    accountant); inf without noise."""
    if noise_multiplier <= 0:
        return float("inf")
    acc = accountant(accountant_name)
    acc.history = [(float(noise_multiplier), float(q), int(steps))]
    return float(acc.get_epsilon(delta=delta))


def noise_for(epsilon: float, delta: float, q: float, steps: int, accountant_name: str = "rdp") -> float:
    """sigma reaching ``epsilon`` at ``delta`` after ``steps`` steps of rate ``q`` (opacus'
    ``get_noise_multiplier``)."""
    from opacus.accountants.utils import get_noise_multiplier
    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=q, steps=steps,
                                      accountant=accountant_name))


def check_delta(delta: float, n: int, where: str = "defense dp_sgd") -> None:
    """delta must be in (0, 1/n) for a training set of n points: a clear error otherwise."""
    if not 0 < delta < 1.0 / n:
        raise ConfigError(f"{where}: delta = {delta:g} must be > 0 and below 1/n = 1/{n} = {1.0 / n:.3g} (n: the "
                          f"model's training points; releasing one record verbatim is already (0, 1/n)-DP); use "
                          f"the default {DEFAULT_DELTA:g} or a smaller delta")
