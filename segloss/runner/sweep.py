"""Sweeps: the cartesian product of comma-separated override values, as independent, resumable runs.

    segloss sweep --config demo --jobs 2 loss.name=ce,hem+ loss.count_unit=pixels,images
    segloss sweep --config demo --dry-run loss.name=ce,hem+ train.seed=0,1,2 train.epochs=24
    segloss sweep --config configs/camvid.yaml --executor slurm --partition gpu --time 6:00:00 \\
        data.root=data/CamVid loss.name=ce,hem+ train.seed=0,1,2

``key=a,b`` sweeps ``key`` over ``a`` and ``b`` (a value in brackets, ``[a,b]``, is one value); a plain
``key=value`` is set in every run. Each run trains in its own folder ``OUT/<name>``, the name made of the
varying keys (``name=hem+,count_unit=images``: a key's last part, the whole dotted key where two last parts
clash). Every run is started with resume semantics: finished runs are skipped, killed ones continue from
their checkpoint. The config's ``task`` picks the trainer, as in ``train.py``.

``--executor local`` trains ``--jobs`` runs at a time here, each in a subprocess with ``cores // jobs``
threads and its output in ``OUT/<name>/sweep.log``. ``--executor slurm`` submits one array job through
submitit (``pip install "segloss-hem[slurm]"``); a preempted or timed-out run is requeued and resumes.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .config import ConfigError, find_config, load_config, resume_config
from .executors import Run, SlurmOptions, TrainJob, parse_minutes, run_local, submit
from .grouping import key_labels
from .logs import EXPECTED_ERRORS, configure_logging

logger = logging.getLogger(__name__)

# Keys a sweep sets itself.
OUT_DIR_KEY = "train.out_dir"
PROGRESS_KEY = "train.progress"


def split_values(text: str) -> list[str]:
    """The comma-separated values of an override; commas inside brackets do not separate.

    Args:
        text: the value part of ``key=value``, e.g. ``ce,hem+`` or ``[car,sign],[pole]``.

    Returns:
        The values as written, e.g. ``["ce", "hem+"]`` or ``["[car,sign]", "[pole]"]``.
    """
    values, depth, current = [], 0, ""
    for character in text:
        depth += {"[": 1, "]": -1}.get(character, 0)
        if character == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += character
    return [*values, current]


def parse_axes(overrides: Sequence[str]) -> dict[str, list[str]]:
    """The values of every key of ``key=a,b`` / ``key=value`` overrides, in the order given.

    Args:
        overrides: the sweep's overrides.

    Returns:
        Each key's values (one for a fixed override).

    Raises:
        ConfigError: a malformed override, a key given twice, an empty value or a swept ``train.out_dir``.
    """
    axes: dict[str, list[str]] = {}
    for text in overrides:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {text!r} is not of the form key=value or key=a,b")
        if key in axes:
            raise ConfigError(f"{key} is given twice; list its values once: {key}=a,b")
        if key == OUT_DIR_KEY:
            raise ConfigError(f"a sweep sets {OUT_DIR_KEY} itself (OUT/<name>); choose OUT with --out")
        values = split_values(raw)
        if any(not value.strip() for value in values):
            raise ConfigError(f"override {text!r} has an empty value")
        axes[key] = values
    return axes


def safe_value(value: str) -> str:
    """``value`` as part of a folder name: brackets, quotes and spaces dropped, the commas of a list as
    ``+``, anything else outside ``[A-Za-z0-9._+-]`` as ``_``; an empty list is ``none``."""
    value = re.sub(r"[\[\]'\"\s]", "", value).replace(",", "+")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", value) or "none"


def plan(config_path: Path, overrides: Sequence[str], root: Path) -> list[Run]:
    """Every run of the sweep, each config loaded and checked.

    Args:
        config_path: the base config.
        overrides: ``key=a,b`` (swept) and ``key=value`` (fixed) overrides.
        root: the folder of the run folders.

    Returns:
        The runs in the order of the cartesian product (the last key varies fastest).

    Raises:
        ConfigError: a bad override or value (naming the run), or two runs with one folder name.
    """
    axes = parse_axes(overrides)
    varying = [key for key, values in axes.items() if len(values) > 1]
    labels = key_labels(varying)
    extra = [] if PROGRESS_KEY in axes else [f"{PROGRESS_KEY}=false"]  # progress bars fill log files
    runs = []
    for values in itertools.product(*axes.values()):
        chosen = dict(zip(axes, values, strict=True))
        name = ",".join(f"{labels[key]}={safe_value(chosen[key])}" for key in varying) or "run"
        run_overrides = (
            *(f"{key}={value}" for key, value in chosen.items()),
            *extra,
            f"{OUT_DIR_KEY}={root / name}",
        )
        try:
            config = load_config(config_path, run_overrides)
        except ConfigError as error:
            raise ConfigError(f"run {name}: {error}") from None
        runs.append(Run(name, tuple((key, chosen[key]) for key in varying), run_overrides, config))
    clashes = [name for name, count in Counter(run.name for run in runs).items() if count > 1]
    if clashes:
        raise ConfigError(f"values that differ only in characters a folder name drops: {clashes[0]}")
    return runs


def run_status(run: Run) -> str:
    """Where a run stands.

    Args:
        run: a run of the sweep.

    Returns:
        ``new`` (no checkpoint), ``done`` (``train --resume`` would do nothing), ``partial`` (a checkpoint to
        resume, or one that cannot be read: the run will fail and say why) or ``changed`` (its checkpoint
        was trained with other settings than the run's, beyond those a resume may change).
    """
    from .checkpoint import load_checkpoint
    from .files import CHECKPOINT_FILE
    from .run_folder import run_finished, run_length

    checkpoint = run.run_dir / CHECKPOINT_FILE
    if not checkpoint.is_file():
        return "new"
    try:
        state = load_checkpoint(checkpoint, mmap=True)
    except ValueError as error:
        logger.warning("%s: %s", run.name, error)
        return "partial"
    try:
        resume_config(state["config"], run.config)
    except ConfigError as error:
        logger.warning("%s: %s", run.name, error)
        return "changed"
    return "done" if run_finished(state, run.run_dir, run_length(run.config)) else "partial"


def status_table(runs: Sequence[Run], statuses: Sequence[str]) -> str:
    """One line per run: name, status and its varying overrides."""
    width = max(len("name"), *(len(run.name) for run in runs))
    lines = [f"{'name':<{width}}  {'status':<7}  overrides"]
    for run, status in zip(runs, statuses, strict=True):
        overrides = " ".join(f"{key}={value}" for key, value in run.varying)
        lines.append(f"{run.name:<{width}}  {status:<7}  {overrides}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "segloss sweep") -> int:
    """The command line (see the module's docstring); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", required=True, help="a packaged recipe (demo, camvid, ...) or a YAML file"
    )
    parser.add_argument("--out", help="the folder of the run folders (default: runs/sweep/CONFIG)")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local")
    parser.add_argument("--jobs", type=int, default=1, help="local: runs at a time (default: 1)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their status, and exit")
    slurm = parser.add_argument_group("slurm executor (submitit)")
    slurm.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    slurm.add_argument("--time", default="24:00:00", help="time limit per job (default: %(default)s)")
    slurm.add_argument("--gpus-per-run", type=int, default=1, help="default: %(default)s")
    slurm.add_argument("--cpus-per-run", type=int, default=8, help="default: %(default)s")
    slurm.add_argument("--array-parallelism", type=int, default=32, help="default: %(default)s")
    slurm.add_argument("--mem", type=float, help="GB per run (default: the partition's)")
    slurm.add_argument("--wait", action="store_true", help="wait for the jobs and report each")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one run, in-process
    parser.add_argument("overrides", nargs="*", metavar="key=a,b", help="swept or fixed overrides")
    args = parser.parse_args(argv)
    configure_logging()
    if args.worker:
        try:
            TrainJob(args.config, args.overrides)()
        except EXPECTED_ERRORS as error:
            logger.error("%s", error)
            return 1
        return 0
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        time_min = parse_minutes(args.time)
    except ValueError:
        parser.error(f"--time {args.time!r} is not MM, MM:SS, HH:MM:SS or D-HH[:MM[:SS]]")
    try:
        config_path = find_config(args.config)
        root = Path(args.out or Path("runs") / "sweep" / config_path.stem)
        runs = plan(config_path, args.overrides, root)
    except ConfigError as error:
        parser.error(str(error))
    statuses = [run_status(run) for run in runs]
    counts = Counter(statuses)
    changed = f", {counts['changed']} changed" if counts["changed"] else ""
    sys.stdout.write(
        f"{len(runs)} runs in {root} ({counts['done']} done, {counts['partial']} partial, "
        f"{counts['new']} new{changed})\n"
    )
    if args.dry_run:
        sys.stdout.write(status_table(runs, statuses) + "\n")
        return 0
    if changed:
        logger.error(
            "%d run folders of %s hold runs with other settings (see above): choose another --out, or "
            "the settings they were trained with",
            counts["changed"],
            root,
        )
        return 1
    todo = [run for run, status in zip(runs, statuses, strict=True) if status != "done"]
    if not todo:
        return 0
    if args.executor == "local":
        failed = run_local(config_path, todo, args.jobs)
    else:
        options = SlurmOptions(
            args.partition, time_min, args.gpus_per_run, args.cpus_per_run, args.array_parallelism, args.mem
        )
        failed = submit(config_path, todo, root, options, wait=args.wait)
    if failed:
        logger.error("%d of %d runs failed; rerun the same command to retry them", failed, len(todo))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
