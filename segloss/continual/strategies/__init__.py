"""Continual-learning strategies on plain torch, each following its paper: naive fine-tuning, Replay, EWC,
Synaptic Intelligence, LwF and Less-Forgetful Learning."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Strategy, frozen_copy, head_inputs, last_linear
from .ewc import EWC, diagonal_fisher
from .lfl import LessForgetful
from .lwf import LwF
from .quadratic import QuadraticPenalty
from .replay import Replay
from .si import SynapticIntelligence

if TYPE_CHECKING:
    from ..benchmarks import Stream
    from ..config import StrategyConfig

__all__ = [
    "EWC",
    "STRATEGY_NAMES",
    "LessForgetful",
    "LwF",
    "QuadraticPenalty",
    "Replay",
    "Strategy",
    "SynapticIntelligence",
    "build_strategy",
    "diagonal_fisher",
    "frozen_copy",
    "head_inputs",
    "last_linear",
]

STRATEGY_NAMES = ("naive", "replay", "ewc", "si", "lwf", "lfl")


def build_strategy(config: StrategyConfig, stream: Stream, seed: int) -> Strategy:
    """The strategy ``config.name`` with its hyper-parameters from ``config``.

    Args:
        config: the ``strategy`` section of a continual config.
        stream: the run's stream (replay keeps indices into its experiences).
        seed: the run seed (replay's sampling).

    Returns:
        A fresh strategy.
    """
    if config.name == "naive":
        return Strategy()
    if config.name == "replay":
        return Replay(config.memory_size, stream.experiences, seed)
    if config.name == "ewc":
        return EWC(config.ewc_lambda, config.fisher_batch_size)
    if config.name == "si":
        return SynapticIntelligence(config.si_lambda, config.si_xi)
    if config.name == "lwf":
        return LwF(config.lwf_alpha, config.lwf_temperature)
    if config.name == "lfl":
        return LessForgetful(config.lfl_lambda)
    raise ValueError(f"unknown strategy {config.name!r}; valid names: {', '.join(STRATEGY_NAMES)}")
