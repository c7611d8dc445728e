"""The study config layer (torch-free, the bottom of the package above overconf.core.errors/names).

``schema`` (the typed sections, one definition of each key), ``gan`` (the ``gan:`` section),
``convert`` (raw YAML data -> typed dataclasses), ``sweeps`` (sweep expansion) and ``loader``
(YAML files and ``--set`` overrides -> a validated :class:`StudyConfig`). Checks against the real
registries (component parameters) belong to the runner layer: ``overconf.runner.validation``.
"""
from .gan import FidConfig, GanConfig, GanRecipe, SearchConfig, StreamConfig
from .loader import PATH_SAFE_HINT, apply_overrides, check_not_empty, parse_config, read_config
from .schema import (ATTACKERS, OVERLAP, Component, DataConfig, MetricsConfig, ModelSpec, Recipe,
                     ReferenceConfig, ReportConfig, Setting, SplitSizes, StudyConfig, parse_settings,
                     source_label)

__all__ = ["FidConfig", "GanConfig", "GanRecipe", "SearchConfig", "StreamConfig", "PATH_SAFE_HINT",
           "apply_overrides", "check_not_empty", "parse_config", "read_config", "ATTACKERS", "OVERLAP",
           "Component", "DataConfig", "MetricsConfig", "ModelSpec", "Recipe", "ReferenceConfig",
           "ReportConfig", "Setting", "SplitSizes", "StudyConfig", "parse_settings", "source_label"]
