"""Training from Python: ``segloss.runner.train``, what ``segloss train`` does, for notebooks and scripts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from . import tasks
from .config import load_config
from .logs import configure_logging


def train(
    config: str | os.PathLike | Any = None,
    overrides: Sequence[str] = (),
    *,
    resume: bool = False,
    log: bool = True,
) -> Any:
    """Train the run of a recipe, as ``segloss train --config CONFIG KEY=VALUE ...`` does.

    Args:
        config: a packaged recipe's name (``"folder"``, ``"camvid_cpu"``, ...), a YAML file, a config object
            from ``segloss.runner.config.load_config``, or ``None`` for the segmentation defaults.
        overrides: dotted ``key=value`` overrides (``["data.root=my_data", "loss.name=hem+"]``).
        resume: continue the run in ``train.out_dir`` from its checkpoint.
        log: log to the terminal as the command does (INFO; the run's ``train.log`` is written either way).

    Returns:
        The final evaluation (segmentation: ``SegmentationResults`` with ``miou``, ``iou``, ...), or ``None``
        when a resumed run had already finished.

    Example::

        from segloss.runner import train
        results = train("folder", ["data.root=my_data", "data.classes=[background,road]", "train.epochs=5"])
        print(results.miou)
    """
    if log:
        configure_logging()
    if not hasattr(config, "task"):
        config = load_config(None if config is None else os.fspath(config), list(overrides))
    elif overrides:
        raise ValueError("overrides apply to a recipe name or file; change a config object's fields instead")
    return tasks.train_function(config.task)(config, resume=resume)
