"""The task-free pieces of every report: the finished runs below some folders (with a warning when they
trained in different environments), the config keys that vary between them and their order, the groups of
runs they make, and the pairing of a group with the baseline loss's group by seed (a paired t-test)."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from ..registry import LOSSES, loss_hyper_parameter_names, loss_needs_counts
from . import tasks
from .config import ConfigError, flatten, with_defaults
from .environment import DECIDING_FIELDS, environment_key
from .files import CONFIG_FILE, RESULTS_FILE

logger = logging.getLogger(__name__)

SEED_KEY = "train.seed"
LOSS_KEY = "loss.name"
# Settings that do not change what a run learns (or that no one compares): never a grouping key.
BOOKKEEPING_KEYS = frozenset(
    {
        "data.root",
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
    used = {f"loss.{name}" for name in parameters} | {LOSS_KEY, "loss.class_weighting"}
    weighting = settings.get("loss.class_weighting", "none")
    if loss_needs_counts(settings[LOSS_KEY]) or weighting != "none":
        used.add("loss.count_unit")
    if weighting == "effective_number":
        used.add("loss.beta")
    return {
        key: None if key.startswith("loss.") and key not in used else value for key, value in settings.items()
    }


def value_order(key: str, value: Any) -> tuple[int, float, str]:
    """A sort key for a group's value of ``key``: losses in registry order, numbers by value, the rest
    by text."""
    names = list(LOSSES)  # registration order, losses registered after the built-in ones included
    if key == LOSS_KEY and value in names:
        return (0, names.index(value), "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


class SeededRun(Protocol):
    """What grouping needs of a finished run: its flat settings and its seed."""

    @property
    def settings(self) -> dict[str, Any]: ...

    @property
    def seed(self) -> int: ...

    @property
    def path(self) -> Path: ...


Run = TypeVar("Run", bound=SeededRun)
GroupKey = tuple[tuple[str, Any], ...]


def group_runs(runs: Sequence[Run]) -> tuple[list[str], list[tuple[GroupKey, list[Run]]]]:
    """The varying keys (``varying_keys``) and the groups of runs that share their values, ordered by value
    (``value_order``), each group's runs by seed. A seed found twice in a group (a copied run folder?) is
    logged as a warning and counted once (the first run folder).

    Args:
        runs: finished runs.

    Returns:
        ``(varying keys, [(((key, value), ...), runs), ...])``.
    """
    varying = varying_keys([run.settings for run in runs])
    members: dict[GroupKey, list[Run]] = defaultdict(list)
    for run in runs:
        members[tuple((key, run.settings.get(key)) for key in varying)].append(run)
    groups = []
    for key, found in sorted(members.items(), key=lambda item: [value_order(k, v) for k, v in item[0]]):
        for seed, count in Counter(run.seed for run in found).items():
            if count > 1:
                copies = [run for run in found if run.seed == seed]
                paths = ", ".join(str(run.path) for run in copies)
                logger.warning(
                    "%s has seed %d %d times (%s): copies of one run? counting %s only",
                    describe(key),
                    seed,
                    count,
                    paths,
                    copies[0].path,
                )
                found = [run for run in found if run.seed != seed or run is copies[0]]
        groups.append((key, sorted(found, key=lambda run: run.seed)))
    return varying, groups


def value_text(value: Any) -> str:
    """A config value in a report: lists (tuples) as ``[a, b]``, ``None`` (not set, or not used by the
    run's loss) as ``—``."""
    if isinstance(value, tuple):
        return "[" + ", ".join(map(value_text, value)) + "]"
    return "—" if value is None else str(value)


def describe(key: GroupKey) -> str:
    """A group's key as ``name=value, ...`` (``all runs`` when nothing varies)."""
    return ", ".join(f"{name}={value_text(value)}" for name, value in key) or "all runs"


def baseline_group(key: GroupKey, keys: Sequence[GroupKey], baseline: str) -> GroupKey | str:
    """The key among ``keys`` of the group ``key`` is compared with: ``loss.name=baseline`` and the same value
    of every other varying key or, when there is none, the unique such group that differs only in
    ``loss.*`` options (which the baseline does not use).

    Returns:
        The baseline group's key, or why there is none (``"no ce"``, ``"2 ce groups"``).
    """
    values = dict(key)

    def same(other: GroupKey, skip: Callable[[str], bool]) -> bool:
        return all(values[name] == value for name, value in other if not skip(name))

    candidates = [
        other
        for other in keys
        if dict(other).get(LOSS_KEY) == baseline and same(other, lambda name: name.startswith("loss."))
    ]
    exact = [other for other in candidates if same(other, lambda name: name == LOSS_KEY)]
    if exact or len(candidates) == 1:
        return (exact or candidates)[0]
    return f"{len(candidates)} {baseline} groups" if candidates else f"no {baseline}"


@dataclass(frozen=True)
class Comparison:
    """One group's values against the baseline group's, paired by seed.

    Attributes:
        seeds: the paired seeds.
        differences: group minus baseline, per paired seed.
        p_value: two-sided paired t-test (NaN below two pairs or without spread).
        note: why there is no comparison (then ``seeds`` is empty), e.g. ``"no ce"``.
    """

    seeds: tuple[int, ...] = ()
    differences: tuple[float, ...] = ()
    p_value: float = math.nan
    note: str = ""

    @property
    def mean(self) -> float:
        """The mean difference (NaN without pairs, or when a value is NaN)."""
        return float(np.mean(self.differences)) if self.differences else math.nan

    @property
    def std(self) -> float:
        """The sample standard deviation of the differences (NaN below two pairs, or when a value is NaN)."""
        return float(np.std(self.differences, ddof=1)) if len(self.differences) > 1 else math.nan


def compare_by_seed(
    ours: Mapping[int, float], theirs: Mapping[int, float], baseline: str = "ce"
) -> Comparison:
    """``ours`` against ``theirs`` (values per seed) on their common seeds, with a two-sided paired t-test
    (scipy) from two pairs with some spread on."""
    seeds = tuple(seed for seed in sorted(ours) if seed in theirs)
    differences = tuple(ours[seed] - theirs[seed] for seed in seeds)
    p_value = math.nan
    if len(seeds) > 1 and np.ptp(differences) > 0:
        from scipy.stats import ttest_rel

        p_value = float(ttest_rel([ours[s] for s in seeds], [theirs[s] for s in seeds]).pvalue)
    return Comparison(seeds, differences, p_value, "" if seeds else f"no common seed with {baseline}")


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

    When the runs trained in different environments (``segloss.runner.environment``: device, CPU model,
    precision, torch version), a warning names what differs: such runs compare statistically, not bit for
    bit.
    """

    environments: dict[tuple[Any, ...], list[Path]] = {}
    for run_dir, settings, results in _finished_runs(folders, task, results_name):
        environments.setdefault(_trained_in(run_dir), []).append(run_dir)
        yield run_dir, settings, results
    if len(environments) > 1:
        logger.warning(mixed_environments_note(environments))


def _trained_in(run_dir: Path) -> tuple[Any, ...]:
    """The deciding fields of the environment(s) ``run_dir``'s ``results.json`` records (``None`` each when
    it records none: runs trained before segloss recorded them)."""
    try:
        recorded = json.loads((run_dir / RESULTS_FILE).read_text()).get("environment") or [{}]
    except (OSError, ValueError):
        recorded = [{}]
    return tuple(dict.fromkeys(environment_key(environment) for environment in recorded))


def mixed_environments_note(environments: Mapping[tuple[Any, ...], Sequence[Path]]) -> str:
    """One paragraph saying that the runs trained in ``len(environments)`` environments and how they
    differ (``DECIDING_FIELDS``), with the number of runs in each."""
    lines = [
        f"these runs trained in {len(environments)} different environments; CPU training is reproducible "
        f"bit for bit on one CPU model only, so compare across them statistically:"
    ]
    for key, runs in environments.items():
        described = "; ".join(
            " + ".join(
                f"{name} {value}"
                for name, value in zip(DECIDING_FIELDS, fields, strict=True)
                if value is not None
            )
            or "not recorded"
            for fields in key
        )
        lines.append(f"  {len(runs)} run(s): {described} (e.g. {runs[0]})")
    return "\n".join(lines)


def _finished_runs(
    folders: Iterable[str | Path], task: str, results_name: str
) -> Iterator[tuple[Path, dict[str, Any], dict[str, Any]]]:
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
