"""Continual learning (the paper's fifth task): streams of experiences (split and permuted), the strategies
naive, Replay, EWC, SI, LwF and LFL on plain torch, any segloss loss as the task loss, the accuracy matrix
with average accuracy and forgetting. Needs the ``cls`` extra."""

from .benchmarks import SCENARIOS, Experience, PermutedImages, Stream, build_stream, experience_order
from .config import ContinualConfig
from .metrics import average_accuracy, forgetting, stream_accuracy, summarize
from .plots import plot_accuracy_matrix
from .strategies import STRATEGY_NAMES, Strategy, build_strategy
from .training import evaluate_checkpoint, evaluate_stream, format_results, train, train_experience

__all__ = [
    "SCENARIOS",
    "STRATEGY_NAMES",
    "ContinualConfig",
    "Experience",
    "PermutedImages",
    "Strategy",
    "Stream",
    "average_accuracy",
    "build_strategy",
    "build_stream",
    "evaluate_checkpoint",
    "evaluate_stream",
    "experience_order",
    "forgetting",
    "format_results",
    "plot_accuracy_matrix",
    "stream_accuracy",
    "summarize",
    "train",
    "train_experience",
]
