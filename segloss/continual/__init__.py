"""Continual learning (the paper's fifth task): streams of experiences (split and permuted), the strategies
naive, Replay, EWC, SI, LwF and LFL on plain torch, any segloss loss as the task loss, the accuracy matrix
with average accuracy and forgetting. Needs the ``cls`` extra.

The names below load their module on first use, so that ``segloss --help`` (which reads this
package's ``task`` module) imports none of the extra's packages."""

from __future__ import annotations

from .._lazy import lazy_exports

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "SCENARIOS": "benchmarks",
    "STRATEGY_NAMES": "strategies",
    "ContinualConfig": "config",
    "Experience": "benchmarks",
    "PermutedImages": "benchmarks",
    "Strategy": "strategies",
    "Stream": "benchmarks",
    "average_accuracy": "metrics",
    "build_stream": "benchmarks",
    "evaluate_checkpoint": "evaluation",
    "evaluate_stream": "evaluation",
    "experience_order": "benchmarks",
    "forgetting": "metrics",
    "format_results": "evaluation",
    "plot_accuracy_matrix": "plots",
    "strategy_from_config": "recipe",
    "stream_accuracy": "metrics",
    "stream_from_config": "recipe",
    "summarize": "metrics",
    "train": "training",
    "train_experience": "training",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
