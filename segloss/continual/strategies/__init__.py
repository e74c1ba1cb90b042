"""Continual-learning strategies on plain torch, each following its paper: naive fine-tuning, Replay, EWC,
Synaptic Intelligence, LwF and Less-Forgetful Learning."""

from __future__ import annotations

from .base import Strategy, frozen_copy, head_inputs, last_linear
from .ewc import EWC, diagonal_fisher
from .lfl import LessForgetful
from .lwf import LwF
from .quadratic import QuadraticPenalty
from .replay import Replay
from .si import SynapticIntelligence

__all__ = [
    "EWC",
    "STRATEGY_NAMES",
    "LessForgetful",
    "LwF",
    "QuadraticPenalty",
    "Replay",
    "Strategy",
    "SynapticIntelligence",
    "diagonal_fisher",
    "frozen_copy",
    "head_inputs",
    "last_linear",
]

STRATEGY_NAMES = ("naive", "replay", "ewc", "si", "lwf", "lfl")
