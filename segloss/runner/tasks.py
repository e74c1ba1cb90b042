"""The tasks a run can have (``task:`` in a config) and the module that implements each.

A task module imports only the standard library at the top (``segloss --help`` imports it) and provides:

- ``schema() -> type``: its config dataclass (``validate()``, ``resolve()``; sections ``loss``, ``optim`` and
  ``train`` built on ``segloss.runner.config``'s shared ones);
- ``TRAIN``: ``"module:function"`` of its ``train(config, *, resume)``, which trains the run of ``config``
  (``None`` when a resumed run had finished); commands call it directly (``train_function``);
- ``add_evaluate_arguments(group) -> list[str]``: its own ``segloss evaluate`` options (their ``dest``);
- ``evaluate(args) -> str``: evaluate ``args.checkpoint`` (with ``args.out``, ``args.device``,
  ``args.no_progress`` and its own options) and return the text to print;
- optionally ``REPORT``: ``"module:name"`` of its ``segloss.runner.report.ReportSpec``, what ``segloss
  report`` reads from its runs and adds to the tables; a task without one is left out of reports.

Adding a task is one module and one line in ``TASK_MODULES`` (docs/extending.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

DEFAULT_TASK = "segmentation"
TASK_MODULES = {
    "segmentation": "segloss.segmentation.task",
    "classification": "segloss.classification.task",
    "continual": "segloss.continual.task",
}


class UnknownTaskError(ValueError):
    """A task name that is not in ``TASK_MODULES``."""


def load_task(name: Any) -> ModuleType:
    """The module of the task ``name``; ``UnknownTaskError`` lists the valid names."""
    if not isinstance(name, str) or name not in TASK_MODULES:
        raise UnknownTaskError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_MODULES)}")
    return importlib.import_module(TASK_MODULES[name])


def train_function(name: str) -> Callable[..., Any]:
    """The ``train(config, *, resume)`` function of the task ``name`` (its module's ``TRAIN``)."""
    task = load_task(name)
    if not hasattr(task, "TRAIN"):
        raise AttributeError(
            f"{task.__name__} has no TRAIN, the 'module:function' of its train(config, *, resume)"
        )
    module, _, function = task.TRAIN.partition(":")
    return getattr(importlib.import_module(module), function)
