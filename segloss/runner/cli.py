"""The ``segloss`` command (also ``python -m segloss``): one subcommand per entry of ``COMMANDS``.

    segloss train --config camvid loss.name=hem+ model.encoder=resnet34 train.seed=1 data.root=data/CamVid
    segloss evaluate --checkpoint RUN/checkpoint.pt --split test --out results.json
    segloss report runs/ --out report
    segloss train --config cl_digits strategy.name=ewc loss.name=hem
    segloss stats --dataset camvid --root data/CamVid
    segloss demo
    segloss export RUN --onnx model.onnx
    segloss predict --model RUN --images DIR --out DIR

Only the standard library is imported until a subcommand runs (``segloss --help`` needs no torch
packages beyond ``import segloss``). A subcommand is a ``main(argv, prog) -> int`` function named by its
module path: the runner's own are ``RUNNER_COMMANDS``, and each task module adds its own in its
``COMMANDS`` table (``segloss.segmentation.task``: stats, demo, export, predict).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from . import tasks
from .files import CHECKPOINT_FILE, CONFIG_FILE
from .logs import EXPECTED_ERRORS, configure_logging

#: The runner's subcommands: name -> (``module:function`` of its ``main(argv, prog)``, one line of help).
RUNNER_COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("segloss.runner.cli:train_main", "train a model from a recipe config (--help-keys: every key)"),
    "evaluate": ("segloss.runner.cli:evaluate_main", "evaluate a checkpoint of a training run"),
    "sweep": ("segloss.runner.sweep:main", "the product of comma-separated overrides as resumable runs"),
    "report": (
        "segloss.runner.report:main",
        "finished runs of any task compared by what varies, paired by seed",
    ),
}
MISSING_EXTRA_HINT = "pip install 'segloss-hem[seg]' (segmentation) or 'segloss-hem[cls]' (classification)"

TRAIN_DESCRIPTION = """Train a segmentation model or an image classifier (also continually, on a stream of
experiences) with any segloss loss.

The config's ``task`` (segmentation, classification or continual) picks the trainer. --config takes a
packaged recipe by name (camvid, cityscapes, idd_lite, sbd, demo, cls_digits, cl_digits, ...) or a YAML file.
Overrides are dotted key=value pairs (see --help-keys). The run directory train.out_dir gets config.yaml,
checkpoint.pt (after every epoch), metrics.jsonl, train.log, results.json and plots. --resume continues a
run from its checkpoint and does nothing for a finished run. Under torchrun every process runs this command
(DDP, global loss).
"""

EVALUATE_DESCRIPTION = """Evaluate a trained checkpoint: per-class IoU, pixel accuracy and mIoU for
segmentation (at full resolution), the run's full evaluation for classification (accuracy, unknown-set
AUROC, AutoAttack), or the accuracy matrix with its last row re-tested for continual learning.

--unknown-classes reports how well the per-pixel confidence (MSP, MLS) tells the pixels of those classes
from the other classes' pixels (AUROC); by default for the classes the run held out of training
(data.holdout_classes). The logits of those classes are left out of the scores.

The run's own settings apply, except where key=value overrides of data.root, eval.* or (classification,
continual) data.download change them: data.root=DIR for data that moved, eval.attack_samples=5000 or
eval.unknown_sets=[kmnist,phase] to measure more or other things. What the checkpoint was trained on and
with cannot change.
"""


def all_commands() -> dict[str, tuple[str, str]]:
    """Every subcommand: the runner's, then each task's ``COMMANDS``."""
    found = dict(RUNNER_COMMANDS)
    for name in tasks.TASK_MODULES:
        found.update(getattr(tasks.load_task(name), "COMMANDS", {}))
    return found


def _run_command(target: str, argv: Sequence[str], prog: str) -> int:
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)(list(argv), prog=prog)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: it lists the subcommands (each parses its own arguments)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="segloss",
        description="HEM+ margin loss toolkit: train, evaluate, report.",
        epilog="`segloss COMMAND --help` describes a command.",
    )
    parser.add_argument("--version", action="version", version=f"segloss {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for name, (_, help_text) in all_commands().items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run ``segloss COMMAND ARGS`` and return the exit status; ``prog`` names the command in its usage line
    (default ``segloss COMMAND``; the ``train.py`` and ``evaluate.py`` scripts pass their own names)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0].startswith("-"):
        parser.parse_args(argv)  # --help, --version or an error
        parser.print_help()
        return 2
    parser.parse_args(argv[:1])  # an unknown command stops here, listing the valid ones
    configure_logging()  # once, for every command
    try:
        return _run_command(all_commands()[argv[0]][0], argv[1:], prog=prog or f"{parser.prog} {argv[0]}")
    except ModuleNotFoundError as error:  # an optional dependency: `pip install .` gives the loss core alone
        if (error.name or "segloss").split(".")[0] == "segloss":
            raise
        print(
            f"error: segloss {argv[0]} needs {error.name!r}, which is not installed: {MISSING_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 1


def train_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``segloss train``: train (or ``--resume``) the run of a config; ``--help-keys`` lists the keys."""
    parser = argparse.ArgumentParser(
        prog=prog, description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="recipe name or YAML file (default: built-in segmentation defaults)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        metavar="RUN",
        help="continue the run RUN (a run folder; its config.yaml is the config, key=value overrides change "
        "what a resume may change, e.g. train.epochs), or the run in train.out_dir",
    )
    parser.add_argument(
        "--help-keys",
        nargs="?",
        const=True,
        metavar="TASK",
        help="list the config keys of TASK (default: the --config's task, else segmentation) and exit",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (anywhere)")
    args = parser.parse_intermixed_args(argv)
    if isinstance(args.resume, str) and "=" in args.resume and not Path(args.resume).exists():
        # `--resume key=value`: an override, not a run folder
        args.overrides.insert(0, args.resume)
        args.resume = True

    from .config import key_help, load_config, task_schema
    from .schema import ConfigError, valid_keys_text

    if args.help_keys:
        task = args.help_keys if isinstance(args.help_keys, str) else None
        try:
            if task is None and args.config:
                task = load_config(args.config, []).task
            schema = task_schema(task or tasks.DEFAULT_TASK)
        except ConfigError as error:
            parser.error(str(error))
        others = ", ".join(name for name in tasks.TASK_MODULES if name != (task or tasks.DEFAULT_TASK))
        print(f"task: {task or tasks.DEFAULT_TASK} (others: --help-keys {others})")
        print(valid_keys_text(schema, key_help(schema)))
        return 0
    try:
        config_source, overrides = resumed_run_config(args.config, args.resume, args.overrides)
        config = load_config(config_source, overrides)
    except (ConfigError, FileNotFoundError) as error:
        parser.error(str(error))

    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        with logging_redirect_tqdm():
            result = tasks.train_function(config.task)(config, resume=bool(args.resume))
    except EXPECTED_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if result is not None:
        print(f"results in {config.train.out_dir}")
    return 0


def resumed_run_config(
    config: str | None, resume: str | bool | None, overrides: Sequence[str]
) -> tuple[str | None, list[str]]:
    """The config source and overrides of ``segloss train``: with ``--resume RUN`` (or ``--resume`` and a
    ``train.out_dir=RUN`` override) and no ``--config``, the run's own ``RUN/config.yaml``, its folder as
    ``train.out_dir``; otherwise ``config`` and ``overrides`` as given."""
    overrides = list(overrides)
    run = resume if isinstance(resume, str) else None
    if run is None and resume:
        run = next((o.split("=", 1)[1] for o in overrides if o.startswith("train.out_dir=")), None)
    if run is None:
        return config, overrides
    run_dir = Path(run)
    run_dir = run_dir.parent if run_dir.name == CHECKPOINT_FILE else run_dir
    if not any(o.startswith("train.out_dir=") for o in overrides):
        overrides.append(f"train.out_dir={run_dir}")
    if config is not None:
        return config, overrides
    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        raise FileNotFoundError(f"--resume {run}: no {CONFIG_FILE} in {run_dir} (is it a run folder?)")
    return str(saved), overrides


def _flags(dests: Sequence[str]) -> list[str]:
    return [f"--{dest.replace('_', '-')}" for dest in dests]


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def evaluate_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``segloss evaluate``: evaluate a checkpoint with the evaluation of its run's task."""
    parser = argparse.ArgumentParser(
        prog=prog, description=EVALUATE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", nargs="?", metavar="RUN", help="a run folder (or its checkpoint.pt)")
    parser.add_argument("--checkpoint", help="the run's checkpoint.pt (the same as RUN)")
    parser.add_argument("--out", help="write the results JSON here (docs/outputs.md)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="changes of data.root, data.download and eval.* (e.g. eval.attack_samples=5000)",
    )
    common = ["--out", "--device", "--no-progress", "key=value"]
    task_options = {
        name: tasks.load_task(name).add_evaluate_arguments(parser.add_argument_group(f"{name} only"))
        for name in tasks.TASK_MODULES
    }
    args = parser.parse_intermixed_args(argv)
    if args.run is not None and "=" in args.run and not Path(args.run).exists():  # an override there
        args.overrides.insert(0, args.run)
        args.run = None
    if (args.run is None) == (args.checkpoint is None):
        parser.error(
            "give the run to evaluate once: segloss evaluate RUN (a run folder) or --checkpoint FILE"
        )
    checkpoint = Path(args.checkpoint or args.run)
    args.checkpoint = str(checkpoint / CHECKPOINT_FILE if checkpoint.is_dir() else checkpoint)

    from .checkpoint import load_checkpoint

    try:
        task = load_checkpoint(args.checkpoint)["config"].get("task", tasks.DEFAULT_TASK)
        module = tasks.load_task(task)
        for owner, dests in task_options.items():
            given = [dest for dest in dests if owner != task and getattr(args, dest) is not None]
            if given:
                flags = ", ".join(_flags(given))
                raise ValueError(
                    f"{flags}: options for {owner} runs only; {args.checkpoint} is a {task} "
                    f"run (its evaluation takes {_listed(common + _flags(task_options.get(task, [])))})"
                )
        text = module.evaluate(args)
    except EXPECTED_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(text)
    if args.out:
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
