"""The ``study: causal_factors`` config (torch-free): the factor grid of Baluta et al. (CCS 2022,
"Membership Inference Attacks and Generalization: A Causal Perspective", seed 000).

A YAML with the top-level key ``study: causal_factors`` is a factor study, not a seeds x models x
settings study; :func:`is_factors` tells the two apart (``overconf run`` and ``overconf.run``
dispatch on it), so existing configs parse and key exactly as before. Every unknown key or bad
value is a ConfigError naming the key and the fix.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from overconf.core.errors import ConfigError
from overconf.core.names import check_name
from overconf.core.yamlio import load_yaml
from .convert import build, check
from .study_kind import study_kind
from .schema import Component, Recipe

STUDY_KIND = "causal_factors"
LOSSES = ("cross_entropy", "mse")
ROW_UNITS = ("configuration", "repeat")
SPLITS = ("disjoint", "random")
KNOWLEDGE = ("overconf", "paper")
GRAPH_BY = ("loss", "weight_decay", "label_smoothing", "width", "train_size")
ATTACK_NAMES = ("loss", "top3", "top3_label", "top10", "top10_label", "shokri", "max_score")
"""the factor table's attacks: attack_<name> (Baluta et al.'s six variants plus the max-score threshold)"""


@dataclass
class FactorData:
    dataset: str = "fashion_mnist"
    """a registered dataset (as the study config's ``data.dataset``)"""
    root: str | None = None
    """torchvision root (null: Fashion-MNIST from the Debian package)"""
    download: bool = False
    """let torchvision download missing files into ``root``"""
    test_size: int = 1000
    """non-members per repeat (disjoint test-pool blocks): the repeat's test set"""
    eval_size: int = 500
    """members and non-members per attack evaluation (at most the training-set size)"""
    calibration_size: int = 500
    """held-out train-pool block (MemGuard's defender non-members), disjoint from every training set"""
    source_size: int = 500
    """inputs per non-member source"""


@dataclass
class FactorGrid:
    arch: str = "salem_cnn"
    """architecture of every configuration"""
    width_param: str = "width"
    """the architecture parameter the widths set"""
    widths: list[int] = field(default_factory=lambda: [8, 16, 32])
    """values of ``width_param``"""
    params: dict[str, Any] = field(default_factory=dict)
    """fixed architecture parameters"""
    train_sizes: list[int] = field(default_factory=lambda: [500, 1500])
    """training-set sizes (images per model)"""
    losses: list[str] = field(default_factory=lambda: list(LOSSES))
    """cross_entropy | mse (the recipe's ``loss``)"""
    weight_decays: list[float] = field(default_factory=lambda: [0.0, 5e-4])
    """values of the recipe's ``weight_decay``"""
    label_smoothings: list[float] = field(default_factory=lambda: [0.0, 0.1])
    """values of the recipe's ``label_smoothing``"""
    configurations: int | None = None
    """a seeded subset of this many configurations of the Cartesian product (None: all)"""
    repeats: int = 3
    """models per configuration, each on its own disjoint training subset (>= 2: the other
    repeats are the attacker's shadow models)"""

    splits: str = "disjoint"
    """disjoint: repeat r trains on its own block (shadows on disjoint data; TrainVar is 0) |
    random: the paper's, each repeat a different random draw from one pool of 2 x max(train_sizes)
    images, so each point is trained on by several models (TrainVar > 0)"""

    models_per_repeat: int = 1
    """models per repeat, on disjoint training sets of the repeat's split (the paper: 10-50); with
    >= 2 the test-side bias / variance of a repeat is over its models (each row: its repeat's),
    with 1 over the configuration's repeats. Attacks and the other factors use each repeat's first model"""

    def product(self) -> list[dict[str, Any]]:
        """Every configuration of the Cartesian product, in a fixed order."""
        keys = ("width", "train_size", "loss", "weight_decay", "label_smoothing")
        values = (self.widths, self.train_sizes, self.losses, self.weight_decays, self.label_smoothings)
        return [dict(zip(keys, v)) for v in itertools.product(*values)]


@dataclass
class FactorAttacks:
    mlp_epochs: int = 50
    """epochs of the ML-Leaks attack MLPs (top-3 / top-10, with and without the label)"""
    shokri_epochs: int = 30
    """epochs of Shokri et al.'s per-class attack MLPs"""
    shokri_hidden: int = 64
    """hidden units of those MLPs"""
    memguard: dict[str, Any] | None = None
    """MemGuard's parameters (``{budget: 0.5, steps: 100, epochs: 300}``), or None: no defended
    versions. The attacker is aware: the shadows are released through MemGuard too."""
    shokri_shadows: int | None = None
    """shadow models of Shokri et al.'s attack: the next this many repeats (the paper: 49; None: every
    other repeat, grid.repeats - 1)"""
    memguard_attacks: list[str] = field(default_factory=lambda: list(ATTACK_NAMES))
    """the attacks also run against MemGuard (columns attack_<name>_memguard)"""


@dataclass
class CausalAnalysis:
    nodes: list[str] = field(default_factory=lambda: [
        "train_size", "num_params", "loss_mse", "weight_decay", "label_smoothing", "acc_gap", "loss_gap",
        "bias2", "variance", "centroid_distance", "test_acc", "overconfidence", "mms_ood"])
    """factor-table columns in the graph (besides the attack); no column may be a deterministic
    function of others (train_acc and test_acc with acc_gap would be)"""
    exogenous: list[str] = field(default_factory=lambda: [
        "train_size", "num_params", "loss_mse", "weight_decay", "label_smoothing"])
    """the grid's knobs: no edge may point into them (black list)"""
    white_list: list[list[str]] = field(default_factory=lambda: [["train_size", "acc_gap"]])
    """edges every learned graph holds (bnlearn's whitelist)"""
    black_list: list[list[str]] = field(default_factory=list)
    """edges no learned graph holds, besides those into exogenous nodes and out of the attack"""
    bootstrap: int = 20
    """resamples of the factor table's rows; an edge's strength is the fraction of their graphs holding it"""
    edge_threshold: float = 0.5
    """an edge enters the averaged graph when at least this fraction of bootstrap graphs hold it"""
    outcomes: list[str] | None = None
    """factor-table columns analysed as outcomes (None: every attack_* column and fpr_ood, with
    their MemGuard versions)"""
    refute_simulations: int = 20
    """simulations of each DoWhy refuter"""
    folds: int = 5
    """predictive power: held-out configurations (K-fold by configuration)"""
    rows: str = "configuration"
    """configuration: one row per configuration, its factors and attack accuracies averaged over
    its repeats' models (the paper's table; bootstraps and folds resample configurations) |
    repeat: one row per (configuration, repeat)"""
    graph_by: list[str] = field(default_factory=list)
    """[] (overconf's): one pooled graph, the grid's knobs as its roots | grid columns (of loss,
    weight_decay, label_smoothing, width, train_size) to learn one graph per value of, each on only
    its rows: [loss, weight_decay] is the paper's (one graph per loss function and per weight decay)"""
    knowledge: str = "overconf"
    """overconf: the graph over ``nodes`` with ``white_list`` / ``black_list`` and no edge into an
    ``exogenous`` knob | paper: the authors' nodes (TrainAcc ... TrainSize, CentroidDistance or its
    sorted_3 for top-3 and MemGuard), 8-edge white list and black lists (etio create_wl_bl), the
    ``exogenous`` knobs as roots; ``nodes``, ``white_list`` and ``black_list`` are then unused"""


@dataclass
class FactorsConfig:
    study: str = STUDY_KIND
    """``causal_factors``: selects this schema (a YAML without ``study`` is a seeds x models x settings study)"""
    name: str = "causal_factors"
    """names the run folder ``<output_dir>/<name>-<timestamp>``"""
    seed: int = 0
    """the one seed of the splits, data blocks, models and the configuration subset"""
    device: str = "auto"
    """auto | cpu | cuda[:N]"""
    data: FactorData = field(default_factory=FactorData)
    """dataset, test blocks and evaluation sizes"""
    grid: FactorGrid = field(default_factory=FactorGrid)
    """the factor grid: its configurations and repeats"""
    recipe: Recipe = field(default_factory=lambda: Recipe(epochs=15))
    """how every model trains (the grid's losses, weight decays and label smoothings override it)"""
    sources: list[Component] = field(default_factory=lambda: [Component(n) for n in
                                                              ("digits", "permuted", "gaussian", "uniform")])
    """non-member sources: mean max score and max-score-threshold FPR on each"""
    attacks: FactorAttacks = field(default_factory=FactorAttacks)
    """attack MLPs and MemGuard"""
    analysis: CausalAnalysis = field(default_factory=CausalAnalysis)
    """structure learning, effects, refuters and predictive power"""
    figures: bool = True
    """draw the graph and predictive-power figures"""
    cache_dir: str = "checkpoints"
    """content-keyed cache (shared with studies)"""
    output_dir: str = "runs"
    """folder of the run folders"""
    progress: bool = True
    """progress bars"""

    def configurations(self) -> list[dict[str, Any]]:
        """The grid's configurations (all, or the seeded subset), each with its id ``config``."""
        import random

        every = self.grid.product()
        if self.grid.configurations is not None and self.grid.configurations < len(every):
            pick = sorted(random.Random(self.seed).sample(range(len(every)), self.grid.configurations))
            every = [every[i] for i in pick]
        return [{"config": i, **c} for i, c in enumerate(every)]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sources"] = [{"name": c.name, **c.params} for c in self.sources]
        return d


def is_factors(raw: Any) -> bool:
    """True for a factor-study config: a mapping, a YAML path or a FactorsConfig whose ``study`` is
    ``causal_factors``. A ``study`` value that names no study type is an error naming the allowed ones
    (overconf.config.study_kind)."""
    return isinstance(raw, FactorsConfig) or study_kind(raw) == STUDY_KIND


def read_factors(path: str | Path | None = None, overrides: list[str] = (),
                 raw: Mapping[str, Any] | None = None) -> FactorsConfig:
    """A validated :class:`FactorsConfig` from a YAML file or a mapping, with ``--set`` overrides."""
    from .loader import apply_overrides

    if raw is None:
        raw = load_yaml(Path(path).read_text(), f"config file '{path}'") or {}
    return parse_factors(apply_overrides(dict(raw), list(overrides)))


def parse_factors(raw: Mapping[str, Any]) -> FactorsConfig:
    cfg = build(FactorsConfig, dict(raw), "")
    _validate(cfg)
    return cfg


def _validate(cfg: FactorsConfig) -> None:
    from .loader import _check_path_safe

    check(cfg.study == STUDY_KIND, f"study must be '{STUDY_KIND}'")
    _check_path_safe(cfg.name, "name")
    check_name("dataset", cfg.data.dataset, "data.dataset")
    check_name("architecture", cfg.grid.arch, "grid.arch")
    for i, c in enumerate(cfg.sources):
        check_name("source", c.name, f"sources[{i}]")
    labels = [c.params.get("label", c.name) for c in cfg.sources]
    check(len(set(labels)) == len(labels), f"sources has duplicates: {labels}")
    check(not any(c.name.startswith("fake") for c in cfg.sources),
          "sources: GAN sources (fake, fake_conditional) are not supported in a causal-factors study; remove them")
    check(all(c.name != "test" for c in cfg.sources),
          "sources: 'test' is each repeat's own test split already; list only other sources")
    d, g = cfg.data, cfg.grid
    for key in ("test_size", "eval_size", "calibration_size", "source_size"):
        check(getattr(d, key) >= 1, f"data.{key} must be >= 1, got {getattr(d, key)}")
    for key in ("widths", "train_sizes", "losses", "weight_decays", "label_smoothings"):
        values = getattr(g, key)
        check(len(values) >= 1, f"grid.{key} must list at least one value")
        check(len(set(values)) == len(values), f"grid.{key} has duplicates: {values}")
    check(all(w >= 1 for w in g.widths), f"grid.widths must be >= 1, got {g.widths}")
    check(all(n >= 10 for n in g.train_sizes), f"grid.train_sizes must be >= 10, got {g.train_sizes}")
    for v in g.losses:
        check(v in LOSSES, f"grid.losses: '{v}' is not a loss; use some of: {', '.join(LOSSES)}")
    check(all(w >= 0 for w in g.weight_decays), "grid.weight_decays must be >= 0")
    check(all(0 <= e < 1 for e in g.label_smoothings), "grid.label_smoothings must lie in [0, 1)")
    check(g.repeats >= 2, f"grid.repeats must be >= 2 (each repeat's shadows are the other repeats), got {g.repeats}")
    check(g.models_per_repeat >= 1, f"grid.models_per_repeat must be >= 1, got {g.models_per_repeat}")
    check(g.splits in SPLITS, f"grid.splits: '{g.splits}' is not a split design; use one of: {', '.join(SPLITS)}")
    check(g.width_param not in g.params, f"grid.params sets '{g.width_param}', which grid.widths varies; remove it")
    n = len(g.product())
    if g.configurations is not None:
        check(2 <= g.configurations, f"grid.configurations must be >= 2, got {g.configurations}")
        check(g.configurations <= n, f"grid.configurations = {g.configurations} but the grid has only {n}; "
                                     f"lower it or leave it out")
    a = cfg.attacks
    check(a.mlp_epochs >= 1 and a.shokri_epochs >= 1 and a.shokri_hidden >= 1,
          "attacks.mlp_epochs, shokri_epochs and shokri_hidden must be >= 1")
    if a.shokri_shadows is not None:
        check(1 <= a.shokri_shadows <= g.repeats - 1, f"attacks.shokri_shadows must lie in [1, grid.repeats - 1 = "
                                                      f"{g.repeats - 1}], got {a.shokri_shadows}; raise grid.repeats or lower it")
    bad = [v for v in a.memguard_attacks if v not in ATTACK_NAMES]
    check(not bad, f"attacks.memguard_attacks: {bad} are not attacks of the factor table; use some of: "
                   f"{', '.join(ATTACK_NAMES)}")
    if a.memguard is not None:
        unknown = set(a.memguard) - {"budget", "steps", "c3_rounds", "epochs"}
        check(not unknown, f"attacks.memguard: unknown key(s) {sorted(unknown)}; allowed: budget, steps, c3_rounds, epochs")
    _validate_analysis(cfg.analysis)


def _validate_analysis(an: CausalAnalysis) -> None:
    check(an.bootstrap >= 1, "analysis.bootstrap must be >= 1")
    check(0 < an.edge_threshold <= 1, "analysis.edge_threshold must lie in (0, 1]")
    check(an.refute_simulations >= 1, "analysis.refute_simulations must be >= 1")
    check(an.folds >= 2, "analysis.folds must be >= 2")
    check(an.knowledge in KNOWLEDGE, f"analysis.knowledge: '{an.knowledge}' is not known; use one of: {', '.join(KNOWLEDGE)}")
    bad = [v for v in an.graph_by if v not in GRAPH_BY]
    check(not bad and len(set(an.graph_by)) == len(an.graph_by),
          f"analysis.graph_by: {an.graph_by} must list distinct grid columns of: {', '.join(GRAPH_BY)}")
    check(an.rows in ROW_UNITS, f"analysis.rows: '{an.rows}' is not a row unit; use one of: {', '.join(ROW_UNITS)}")
    check(len(set(an.nodes)) == len(an.nodes) and len(an.nodes) >= 2, "analysis.nodes must list >= 2 distinct columns")
    for key in ("exogenous",):
        bad = [v for v in getattr(an, key) if v not in an.nodes]
        check(not bad, f"analysis.{key} names {bad}, which are not in analysis.nodes")
    for key in ("white_list", "black_list"):
        for e in getattr(an, key):
            check(isinstance(e, list) and len(e) == 2 and all(isinstance(v, str) for v in e),
                  f"analysis.{key}: each edge is [from, to], got {e!r}")
            bad = [v for v in e if v not in an.nodes and v != "attack"]
            check(not bad, f"analysis.{key}: {e} names {bad}, not in analysis.nodes (or 'attack')")
    clash = {tuple(e) for e in an.white_list} & {tuple(e) for e in an.black_list}
    check(not clash, f"analysis: edges {sorted(clash)} are in both white_list and black_list")
    into_exo = [e for e in an.white_list if e[1] in an.exogenous]
    check(not into_exo, f"analysis.white_list: {into_exo} point into exogenous grid knobs, which have no causes")
