"""``segloss report``: the report of the task whose finished runs lie below the folders given, and the
task-free pieces of every report (the config keys that vary between runs, their order).

    segloss report runs/paper --out report                # segmentation runs: mIoU paired against CE
    segloss report runs/sweep/cl_digits --out cl_report   # continual runs: accuracy and forgetting

A task reports through its module's ``report(argv, prog)`` (``segloss.runner.tasks``). ``--task NAME``
picks it; without it, the task of the finished runs (``config.yaml`` next to ``results.json``) below the
folders, among the tasks that have a report; the default task when there are none. Runs of several such
tasks below the folders need ``--task``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..registry import LOSS_NAMES, loss_hyper_parameter_names, loss_needs_counts
from . import tasks
from .config import ConfigError, flatten, with_defaults
from .files import CONFIG_FILE, RESULTS_FILE

logger = logging.getLogger(__name__)

SEED_KEY = "train.seed"
LOSS_KEY = "loss.name"
# Settings that do not change what a run learns (or that no one compares): never a grouping key.
BOOKKEEPING_KEYS = frozenset(
    {
        "train.out_dir",
        "train.progress",
        "train.tensorboard",
        "train.device",
        "train.num_workers",
        "train.channels_last",
        "eval.num_overlays",
    }
)


def key_labels(keys: Sequence[str]) -> dict[str, str]:
    """The label of each key in run names: its last dotted part, or the whole key where last parts clash.

    Args:
        keys: dotted config keys.

    Returns:
        ``{key: label}``.
    """
    last = Counter(key.rsplit(".", 1)[-1] for key in keys)
    return {key: key if last[key.rsplit(".", 1)[-1]] > 1 else key.rsplit(".", 1)[-1] for key in keys}


def varying_keys(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """The config keys with more than one value among the runs, except the seed and ``BOOKKEEPING_KEYS``, in
    config order. ``None`` (a key a run lacks, or a loss option its loss does not use: ``used_settings``)
    is not a value of its own: ``loss.M`` with 2000 for HEM runs and ``None`` for CE runs does not vary.

    Args:
        settings: each run's config as flat dotted keys (``segloss.runner.config.flatten``).

    Returns:
        The keys to group the runs by.
    """
    keys = list(dict.fromkeys(key for run in settings for key in run))
    return [
        key
        for key in keys
        if key != SEED_KEY
        and key not in BOOKKEEPING_KEYS
        and len({run.get(key) for run in settings} - {None}) > 1
    ]


def used_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A run's saved config as flat dotted keys, read through ``saved_config`` and completed with the
    current schema's defaults, with ``None`` for the ``loss.*`` hyper-parameters its loss does not take
    (and ``loss.count_unit`` unless the loss derives something from class counts)."""
    settings = flatten(with_defaults(config))
    try:
        parameters = loss_hyper_parameter_names(settings[LOSS_KEY])
    except ValueError:  # a loss registered by the user's code that is not imported here: keep everything
        return settings
    used = {f"loss.{name}" for name in parameters} | {LOSS_KEY}
    if loss_needs_counts(settings[LOSS_KEY]):
        used.add("loss.count_unit")
    return {
        key: None if key.startswith("loss.") and key not in used else value for key, value in settings.items()
    }


def value_order(key: str, value: Any) -> tuple[int, float, str]:
    """A sort key for a group's value of ``key``: losses in registry order, numbers by value, the rest
    by text."""
    if key == LOSS_KEY and value in LOSS_NAMES:
        return (0, LOSS_NAMES.index(value), "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def reporting_tasks() -> list[str]:
    """The tasks whose module has a ``report``."""
    return [name for name in tasks.TASK_MODULES if hasattr(tasks.load_task(name), "report")]


def run_tasks(folders: Iterable[str | Path]) -> set[str]:
    """The tasks of the finished runs (``config.yaml`` next to ``results.json``) at or below ``folders``."""
    import yaml

    found = set()
    for folder in folders:
        for config_file in Path(folder).rglob(CONFIG_FILE):
            if config_file.with_name(RESULTS_FILE).is_file():
                config = yaml.safe_load(config_file.read_text()) or {}
                found.add(config.get("task", tasks.DEFAULT_TASK))
    return found


def finished_runs(
    folders: Iterable[str | Path], task: str, results_name: str = RESULTS_FILE
) -> Iterator[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """Every finished run of ``task`` (``config.yaml`` next to ``results_name``) at or below ``folders``.

    Args:
        folders: run folders or folders holding runs.
        task: the runs' ``task``; runs of other tasks are skipped with a logged note.
        results_name: the results file to read in each run folder.

    Yields:
        The run folder, its settings (``used_settings``, lists as tuples so that runs can be grouped by
        them) and its results. Unfinished runs and configs that no longer fit the schema are skipped with
        a logged warning.

    Raises:
        FileNotFoundError: a folder does not exist.
    """
    import yaml

    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(f"run folder not found: {folder}")
        for config_file in sorted(folder.rglob(CONFIG_FILE)):
            run_dir = config_file.parent
            results_file = config_file.with_name(results_name)
            if not results_file.is_file():
                logger.warning("skipping %s: no %s (the run has not finished)", run_dir, results_name)
                continue
            config = yaml.safe_load(config_file.read_text()) or {}
            run_task = config.get("task", tasks.DEFAULT_TASK)
            if run_task != task:
                logger.info("skipping %s: a %s run (this report is for %s runs)", run_dir, run_task, task)
                continue
            try:
                settings = {key: _hashable(value) for key, value in used_settings(config).items()}
            except ConfigError as error:
                logger.warning("skipping %s: its config.yaml does not fit this version (%s)", run_dir, error)
                continue
            yield run_dir, settings, json.loads(results_file.read_text())


def _hashable(value: Any) -> Any:
    return tuple(_hashable(item) for item in value) if isinstance(value, list) else value


def _folders(argv: Sequence[str]) -> list[str]:
    """The arguments that name folders (not options, nor an option's value)."""
    return [
        arg
        for previous, arg in zip([None, *argv], argv, strict=False)
        if not arg.startswith("-") and not (previous or "").startswith("-") and Path(arg).is_dir()
    ]


def report_task(folders: Iterable[str | Path]) -> str:
    """The task to report on for ``folders``: that of their finished runs among the tasks with a report
    (the default task when there are none); ``ValueError`` when there are several."""
    found = sorted(run_tasks(folders) & set(reporting_tasks()))
    if len(found) > 1:
        raise ValueError(
            f"runs of several tasks ({', '.join(found)}) below the folders: choose one with --task"
        )
    return found[0] if found else tasks.DEFAULT_TASK


def main(argv: Sequence[str] | None = None, prog: str = "segloss report") -> int:
    """Run the report of ``--task`` or of the task of the runs found; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, add_help=False)
    parser.add_argument("--task", choices=reporting_tasks())
    known, rest = parser.parse_known_args(argv)
    try:
        task = known.task or report_task(_folders(rest))
    except ValueError as error:
        parser.error(str(error))
    return tasks.load_task(task).report(rest, prog)
