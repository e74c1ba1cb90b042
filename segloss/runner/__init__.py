"""The task-free run machinery shared by the applications (``segloss.segmentation``,
``segloss.classification``, ``segloss.continual``): typed configs with the shared ``loss``/``optim``/``train``
sections (``config``), the task table (``tasks``), the run folder every task's loop runs in (``run_folder``),
the epoch loop (``loop``) and the update (``optim``), devices and DDP (``distributed``), checkpoints, seeds,
the files of a run folder, and the ``segloss`` command (``cli``).
It imports the loss core and no application module statically; the applications are found by name at
run time, through the task table (``tasks.TASK_MODULES``) and the command table (``cli``).

``segloss.runner.train(config, overrides)`` trains from Python what ``segloss train`` trains."""

from typing import Any

__all__ = ["train"]


def __getattr__(name: str) -> Any:
    """``train`` on first use: importing the runner package stays as light as the command needs."""
    if name == "train":
        from .api import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
