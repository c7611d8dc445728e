"""Registered names of every config-visible family, without importing torch.

Configs are validated before torch is imported (errors within a second), so unknown dataset /
source / architecture / attack / calibration / GAN names are checked against this table;
parameters are checked against the real factories afterwards (``overconf.config.validate_components``).
tests/test_config_fast.py keeps this table equal to the registries: a new registered member is
added here too.
"""
from __future__ import annotations

from overconf.core.errors import ConfigError

NAMES: dict[str, tuple[str, ...]] = {
    "dataset": ("cifar10", "cifar100", "digits", "fashion_mnist", "stl10", "svhn"),
    "source": ("cifar10", "cifar100", "digits", "fake", "fake_conditional", "fashion_mnist", "gaussian",
               "permuted", "scaled", "stl10", "svhn", "test", "uniform", "unnormalized"),
    "architecture": ("efficientnet_b0", "fast_cifar", "resnet18", "salem_cnn", "small_resnet"),
    "attack": ("adversarial_distance", "entropy", "gap", "label_only_augmentation", "label_only_noise", "lira",
               "local_variation", "loss", "max_score", "modified_entropy", "qmia", "rmia", "rmia_paper", "salem",
               "scaled_logit", "shokri", "true_class_confidence"),
    "calibration": ("llla", "none", "temperature"),
    "defense": ("adversarial_regularisation", "dp_sgd", "dropout", "early_stopping", "l2", "label_only",
                "label_smoothing", "logit_reweighting", "memguard", "none", "rounding", "top_k"),
    "gan": ("dcgan",),
    "analysis": ("causal_memorization", "dp_audit", "vulnerability"),
}
"""registry family (``Registry.family``) -> registered names"""


def check_name(family: str, name, where: str) -> None:
    """The same error as ``Registry.get`` for an unknown name, without importing the registry."""
    names = NAMES[family]
    if name not in names:
        raise ConfigError(f"unknown {family} '{name}' (at '{where}'); allowed: {', '.join(sorted(names))}")
