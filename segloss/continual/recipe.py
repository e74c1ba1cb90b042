"""The builders of a continual run: its stream and its strategy (the model and the task loss are the
classification track's, ``segloss.classification.recipe``)."""

from __future__ import annotations

from .benchmarks import Stream, build_stream
from .config import ContinualConfig
from .strategies import (
    EWC,
    STRATEGY_NAMES,
    LessForgetful,
    LwF,
    Replay,
    Strategy,
    SynapticIntelligence,
)


def stream_from_config(config: ContinualConfig) -> Stream:
    """The stream of ``config.data`` in the order drawn from ``train.seed``."""
    data = config.data
    return build_stream(
        data.name,
        data.root,
        scenario=data.scenario,
        experiences=data.experiences,
        seed=config.train.seed,
        download=data.download,
        augment=data.augment,
    )


def strategy_from_config(config: ContinualConfig, stream: Stream) -> Strategy:
    """The strategy ``strategy.name`` with its hyper-parameters from the ``strategy`` section.

    Args:
        config: a continual config (``train.seed`` seeds replay's sampling).
        stream: the run's stream (replay keeps indices into its experiences).

    Returns:
        A fresh strategy.
    """
    strategy, seed = config.strategy, config.train.seed
    if strategy.name == "naive":
        return Strategy()
    if strategy.name == "replay":
        return Replay(strategy.memory_size, stream.experiences, seed)
    if strategy.name == "ewc":
        return EWC(strategy.ewc_lambda, strategy.fisher_batch_size)
    if strategy.name == "si":
        return SynapticIntelligence(strategy.si_lambda, strategy.si_xi)
    if strategy.name == "lwf":
        return LwF(strategy.lwf_alpha, strategy.lwf_temperature)
    if strategy.name == "lfl":
        return LessForgetful(strategy.lfl_lambda)
    raise ValueError(f"unknown strategy {strategy.name!r}; valid names: {', '.join(STRATEGY_NAMES)}")
