"""Run configuration: YAML files with dotted ``key=value`` overrides, checked against a typed schema
(``segloss.runner.schema``).

A config is a dataclass per task (``task: segmentation`` by default; ``segloss.runner.tasks`` names the
tasks and their schemas). Every section is a dataclass whose annotations give the accepted types; fields
with ``metadata={"choices": ...}`` accept only those values. Unknown keys and wrong types raise
``ConfigError`` listing the valid keys. The sections every task shares (``loss``, ``optim``, ``train``)
are defined here; ``loss`` derives from the loss registry (``segloss.registry``).

Recipes live in the repository's top-level ``configs/`` and ship in the package (``segloss/configs`` points
there): ``find_config("camvid")`` and a path to any YAML file both work.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..margins import CLASS_WEIGHTINGS, class_weights
from ..registry import HYPER_PARAMETERS, LOSSES, loss_hyper_parameter_names, loss_terms
from . import tasks
from .optim import OPTIMIZERS, SCHEDULES
from .schema import (
    ConfigError,
    build_dataclass,
    check_bounds,
    check_device,
    choices,
    dataclass_fields,
    flatten,
)

# Keys a resumed run may change; any other difference from the checkpoint's config is an error. Not
# ``train.num_workers``: the augmentation is seeded per DataLoader worker, so the worker count is part of the
# random stream. ``train.device`` may change, but a continuation on another kind of device (AMP,
# channels_last, other kernels) is not bit-identical to an uninterrupted run; RunFolder.restore warns.
RESUMABLE_KEYS = frozenset(
    {
        "train.epochs",
        "train.eval_every",
        "train.progress",
        "train.device",
        "train.tensorboard",
        "train.log_every",
        "train.compile",
        "train.keep_best",
    }
)
# ---------------------------------------------------------------------------------------------------
# The sections every task shares


def _is_loss_name(name: Any) -> bool:
    try:
        return len(loss_terms(name)) > 0
    except ValueError:
        return False


#: ``loss.class_weighting``: per-class weights of any loss from the training split's class counts.
CLASS_WEIGHTING_CHOICES = ("none", *CLASS_WEIGHTINGS)


def _loss_fields() -> list[tuple[str, type, Any]]:
    name = field(default="ce", metadata={"choices": lambda: LOSSES, "also_accepts": _is_loss_name})
    weighting = field(default="none", metadata={"choices": CLASS_WEIGHTING_CHOICES})
    fields: list[tuple[str, type, Any]] = [("name", str, name), ("class_weighting", str, weighting)]
    for key, parameter in HYPER_PARAMETERS.items():
        metadata: dict[str, Any] = {"choices": parameter.choices} if parameter.choices else {}
        metadata["taken_by"] = lambda key=key: [
            n for n, entry in LOSSES.items() if key in entry.hyper_parameters
        ]
        fields.append((key, parameter.type, field(default=parameter.default, metadata=metadata)))
    return fields


LossConfig = dataclasses.make_dataclass(
    "LossConfig",
    _loss_fields(),
    namespace={
        "__doc__": "A loss of ``segloss.registry.LOSSES`` (or a weighted sum of them, ``ce+dice``) by "
        "``name``, ``class_weighting`` (per-class weights from the class counts: ``none``, "
        "``median_frequency``, ``inverse`` or ``effective_number`` with ``beta``; ``loss_class_weights``) "
        "and one key per hyper-parameter of ``segloss.registry.HYPER_PARAMETERS`` (each loss uses its own; "
        "docs/losses-and-margins.md)."
    },
)
LossConfig.__module__ = __name__


def loss_hyper_parameters(loss: Any) -> dict[str, Any]:
    """The hyper-parameters of ``loss.name`` (its registry entry's) with their values in the section
    ``loss``, as keywords for ``segloss.build_loss``."""
    return {key: getattr(loss, key) for key in loss_hyper_parameter_names(loss.name)}


def loss_class_weights(
    loss: Any,
    counts: Sequence[float],
    presence_counts: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
) -> torch.Tensor | None:
    """The per-class ``weight`` of ``loss.class_weighting`` from the training counts (``None`` for
    ``none``), by the rule of ``wce`` (:func:`segloss.margins.class_weights`; ``effective_number`` uses
    ``loss.beta``, ``median_frequency`` needs ``presence_counts``)."""
    if loss.class_weighting == "none":
        return None
    return class_weights(
        counts, loss.class_weighting, beta=loss.beta, presence_counts=presence_counts, class_names=class_names
    )


@dataclass
class OptimConfig:
    """The optimizer and its per-update schedule (``segloss.runner.optim``): ``name`` SGD (with
    ``momentum``), Adam or AdamW; ``schedule`` ``constant``, ``poly`` (exponent ``power``), ``cosine`` or
    ``multistep`` (× ``gamma`` at each epoch of ``milestones``), after a linear warm-up of
    ``warmup_epochs``."""

    name: str = choices(*OPTIMIZERS, default="sgd")
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = choices(*SCHEDULES, default="constant")
    power: float = 0.9
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 0.0


@dataclass
class TrainConfig:
    """The training run. ``batch_size`` is global (split over DDP ranks); ``out_dir`` defaults to a folder
    per task, dataset, model, loss and seed; ``eval_every`` = k > 0 also evaluates every k epochs (the last
    epoch is always evaluated); ``device`` is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    ``progress`` shows progress bars when the output is a terminal (log files get one line per epoch either
    way); ``tensorboard`` also writes TensorBoard event files to ``RUN/tensorboard/`` (the ``tensorboard``
    extra). A resumed run may change only ``epochs``, ``eval_every``, ``progress``, ``device``,
    ``tensorboard``, ``log_every`` and ``compile`` (``RESUMABLE_KEYS``). ``num_workers`` is fixed because
    each worker seeds its own augmentation stream; a resume on another kind of device continues the run but
    not bit-identically (AMP, channels_last). ``clip_grad_norm`` > 0 clips the global gradient norm
    (``segloss.runner.optim``). ``log_every``: the loss is summed on the device and read (logged, checked
    for NaN) every that many updates and at the end of an epoch, never synchronising with the host in
    between. ``compile`` trains through ``torch.compile`` of the model (evaluation and checkpoints use the
    plain model). ``keep_best`` (a metric the task evaluates, e.g. ``miou``) also keeps ``best.pt``, the
    checkpoint of the evaluation with the highest value; the study recipes leave it off and report the last
    epoch."""

    batch_size: int = 8
    epochs: int = 10
    seed: int = 0
    num_workers: int = 2
    out_dir: str | None = None
    eval_every: int = 0
    device: str = "auto"
    amp: str = choices("auto", "bf16", "fp16", "off", default="auto")
    channels_last: bool = True
    progress: bool = True
    tensorboard: bool = False
    clip_grad_norm: float = 0.0
    log_every: int = 50
    compile: bool = False
    keep_best: str | None = None


#: One line per key of the shared sections, for ``segloss train --help-keys``.
SHARED_KEY_HELP: dict[str, str] = {
    "loss.name": "the loss (docs/losses-and-margins.md), or a weighted sum: ce+dice, 'hem+ + 0.5*dice'",
    "loss.class_weighting": "per-class weights of any loss from the training counts (none: unweighted)",
    **{f"loss.{key}": parameter.help for key, parameter in HYPER_PARAMETERS.items()},
    "optim.name": "the optimizer",
    "optim.lr": "learning rate (the peak, after warm-up)",
    "optim.momentum": "SGD momentum",
    "optim.weight_decay": "L2 weight decay (AdamW: decoupled)",
    "optim.schedule": "learning rate per update: constant, poly (1 - t/T)^power, cosine or multistep",
    "optim.power": "exponent of the poly schedule",
    "optim.milestones": "multistep: epochs after which the rate is multiplied by gamma",
    "optim.gamma": "multistep: the factor at each milestone",
    "optim.warmup_epochs": "linear warm-up from 0, in epochs (fractions allowed)",
    "train.batch_size": "images per update, over all DDP processes",
    "train.epochs": "epochs to train (may grow on --resume)",
    "train.seed": "seeds initialisation, data order and augmentation",
    "train.num_workers": "DataLoader workers (fixed for a run: each seeds its own augmentation)",
    "train.out_dir": "the run folder (default: runs/DATASET/ENCODER/LOSS/seedN)",
    "train.eval_every": "also evaluate every k epochs (0: only at the end)",
    "train.device": "auto, cpu, cuda, cuda:N or mps",
    "train.amp": "autocast: auto (CUDA bf16/fp16, CPU fp32), bf16 (also on CPUs with bf16 units), fp16, off",
    "train.channels_last": "channels-last memory for the network (CUDA and CPU)",
    "train.progress": "progress bars on a terminal",
    "train.tensorboard": "also write TensorBoard events to RUN/tensorboard/",
    "train.clip_grad_norm": "clip the global gradient norm to this (0: off)",
    "train.log_every": "read, log and check the loss every that many updates",
    "train.compile": "train through torch.compile of the model",
    "train.keep_best": "also keep best.pt, the checkpoint of the best evaluation of this metric (e.g. miou)",
}


def key_help(schema: type) -> dict[str, str]:
    """One line per key of ``schema``: the shared sections' and the task's own (its ``KEY_HELP``)."""
    return {**SHARED_KEY_HELP, **getattr(schema, "KEY_HELP", {})}


def check_shared_sections(config: Any) -> None:
    """The value checks of the shared sections ``loss``, ``optim`` and ``train`` of ``config``."""
    positive: dict[str, float] = {
        "train.batch_size": config.train.batch_size,
        "train.epochs": config.train.epochs,
        "train.log_every": config.train.log_every,
        "optim.lr": config.optim.lr,
        "optim.power": config.optim.power,
        "optim.gamma": config.optim.gamma,
    }
    non_negative: dict[str, float] = {
        "train.seed": config.train.seed,
        "train.num_workers": config.train.num_workers,
        "train.eval_every": config.train.eval_every,
        "optim.momentum": config.optim.momentum,
        "optim.weight_decay": config.optim.weight_decay,
        "optim.warmup_epochs": config.optim.warmup_epochs,
        "train.clip_grad_norm": config.train.clip_grad_norm,
    }
    for key, parameter in HYPER_PARAMETERS.items():
        bounds = {"positive": positive, "non_negative": non_negative}.get(parameter.bound or "")
        if bounds is not None:
            bounds[f"loss.{key}"] = getattr(config.loss, key)
    check_bounds(positive=positive, non_negative=non_negative)
    check_device("train.device", config.train.device)
    metrics = getattr(config, "BEST_METRICS", ())
    if config.train.keep_best is not None and config.train.keep_best not in metrics:
        choices = "|".join(metrics) if metrics else "none: this task does not support it"
        raise ConfigError(f"train.keep_best must be one of {choices}, got {config.train.keep_best!r}")
    if config.loss.class_weighting != "none" and any(t == "wce" for _, t in loss_terms(config.loss.name)):
        raise ConfigError(
            f"loss.class_weighting={config.loss.class_weighting} with loss.name={config.loss.name}: wce "
            f"weights its classes already (loss.weighting); use loss.name=ce with loss.class_weighting"
        )
    milestones = config.optim.milestones
    if milestones != sorted(set(milestones)) or any(m < 1 for m in milestones):
        raise ConfigError(f"optim.milestones must be increasing positive epochs, got {milestones}")


def run_folder_name(loss_name: str, seed: int) -> Path:
    """The last two folders of a default ``train.out_dir``: ``LOSS/seedSEED`` (``+`` spelt ``plus``)."""
    return Path(loss_name.replace("+", "plus")) / f"seed{seed}"


def task_schema(task: Any) -> type:
    """The config schema of ``task`` (a name of ``tasks.TASK_MODULES``), importing its module."""
    try:
        return tasks.load_task(task).schema()
    except tasks.UnknownTaskError as error:
        raise ConfigError(str(error)) from None


def all_task_schemas() -> dict[str, type]:
    """Every task's config schema (importing the optional ones)."""
    return {name: task_schema(name) for name in tasks.TASK_MODULES}


# ---------------------------------------------------------------------------------------------------
# Loading, overrides, saving


def parse_override(text: str, schema: type | None = None) -> tuple[str, Any]:
    """``"train.epochs=5"`` → ``("train.epochs", 5)``. The value is read as YAML (numbers, ``null``,
    ``[lists]``), except that a text key of ``schema`` (``str`` or ``str | None``) keeps the text as
    written (``data.root=2024`` is the folder ``"2024"``)."""
    import yaml

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.epochs=5)")
    if schema is not None and _is_text(_leaf_annotation(schema, key)) and raw.strip() not in ("null", "~"):
        return key, raw
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError:
        return key, raw


def _leaf_annotation(schema: type, key: str) -> Any:
    """The annotation of the dotted ``key`` in ``schema``, or None when it is not a key."""
    annotation: Any = schema
    for part in key.split("."):
        fields = dataclass_fields(annotation) if dataclasses.is_dataclass(annotation) else {}
        if part not in fields:
            return None
        annotation = fields[part][1]
    return annotation


def _is_text(annotation: Any) -> bool:
    options = (
        set(typing.get_args(annotation))
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else {annotation}
    )
    return str in options and options <= {str, type(None)}


def _apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    *sections, leaf = key.split(".")
    node = data
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key!r}: {section!r} is not a section")
        node = child
    node[leaf] = value


def config_from_dict(data: dict[str, Any], overrides: Iterable[str] = ()) -> Any:
    """The checked, resolved config of ``data`` (a nested mapping, e.g. parsed YAML) with overrides."""
    data = copy.deepcopy(data or {})
    overrides = list(overrides)
    for key, value in (parse_override(text) for text in overrides):
        if key == "task":
            data["task"] = value
    schema = task_schema(data.get("task", tasks.DEFAULT_TASK))
    for text in overrides:
        _apply_override(data, *parse_override(text, schema))
    config = build_dataclass(schema, data, "", schema)
    config.validate()
    config.resolve()
    return config


#: Loss options removed after the margin study (docs/studies/margins.md), with the behaviour that is left.
REMOVED_LOSS_OPTIONS = {"mean_over": "nonzero"}


def saved_config(data: dict[str, Any]) -> dict[str, Any]:
    """A run's saved config (``config.yaml`` or a checkpoint's) as the current schema reads it: the ``loss``
    section keeps ``name``, ``class_weighting``, ``count_unit`` and the hyper-parameters its loss takes
    (``save_config`` writes no others, older runs wrote every one). A removed option saved with the
    behaviour that is left is dropped; with another one it is a ``ConfigError`` (that run needs the segloss
    it was trained with)."""
    loss = dict(data.get("loss") or {})
    for key, left in REMOVED_LOSS_OPTIONS.items():
        if key in loss and loss[key] != left:
            raise ConfigError(
                f"loss.{key}={loss[key]!r} was removed after the margin study (docs/studies/margins.md; only "
                f"{left!r} is left): read this run with segloss at commit 819189f or earlier"
            )
    try:
        kept = {"name", "class_weighting", "count_unit", *loss_hyper_parameter_names(loss.get("name", "ce"))}
    except ValueError:  # a loss registered by code that is not imported here: keep what is known
        kept = set(loss) - set(REMOVED_LOSS_OPTIONS)
    return {**data, "loss": {key: value for key, value in loss.items() if key in kept}}


def with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """A saved config (e.g. a run's ``config.yaml``, read by ``saved_config``) completed with the current
    schema's defaults for the keys it lacks (keys added since it was written); types are checked, values
    are not validated. ``ConfigError`` for a key the schema no longer has."""
    data = saved_config(data)
    schema = task_schema(data.get("task", tasks.DEFAULT_TASK))
    return config_to_dict(build_dataclass(schema, copy.deepcopy(data), "", schema))


def packaged_configs() -> list[str]:
    """The names of the recipes that ship with the package (``configs/NAME.yaml``)."""
    folder = resources.files("segloss") / "configs"
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def find_config(name_or_path: str | os.PathLike) -> Path:
    """The YAML file of ``--config``: a file that exists, else a packaged recipe named ``NAME`` or
    ``NAME.yaml``. ``ConfigError`` names the packaged recipes otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name[: -len(".yaml")] if path.suffix == ".yaml" else path.name
    if str(path.parent) == "." and name in packaged_configs():
        with resources.as_file(resources.files("segloss") / "configs" / f"{name}.yaml") as packaged:
            return Path(packaged)
    raise ConfigError(f"config file not found: {path}; packaged recipes: {', '.join(packaged_configs())}")


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> Any:
    """The config in the YAML file or packaged recipe ``path`` (``find_config``; the defaults when
    ``None``) with ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        path = find_config(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"cannot parse {path}: {error}") from error
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return config_from_dict(data, overrides)


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as a plain nested dict (for YAML and checkpoints)."""
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML; the ``loss`` section holds only the hyper-parameters its loss
    takes (reading it back fills the others with their defaults)."""
    import yaml

    data = config_to_dict(config)
    unused = set(HYPER_PARAMETERS) - set(loss_hyper_parameter_names(config.loss.name))
    data["loss"] = {key: value for key, value in data["loss"].items() if key not in unused}
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def resume_config(saved: dict[str, Any], requested: Any) -> Any:
    """The config to resume with: the checkpoint's ``saved`` one, updated with the ``RESUMABLE_KEYS`` of
    ``requested``; any other difference (``train.num_workers`` included) is a ``ConfigError`` naming the
    keys."""
    saved = with_defaults(saved)
    old, new = flatten(saved), flatten(config_to_dict(requested))
    # the hyper-parameters its loss does not take are not part of a run (a saved config leaves them out)
    unused = {
        f"loss.{key}" for key in set(HYPER_PARAMETERS) - set(loss_hyper_parameter_names(old["loss.name"]))
    }
    changed = sorted(
        key for key in old.keys() | new.keys() if old.get(key) != new.get(key) and key not in unused
    )
    fixed = [key for key in changed if key not in RESUMABLE_KEYS]
    if fixed:
        details = ", ".join(f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in fixed)
        raise ConfigError(
            f"the config differs from the checkpoint's in {details}; resume with the same settings "
            f"(only {', '.join(sorted(RESUMABLE_KEYS))} may change) or use another train.out_dir"
        )
    data = copy.deepcopy(saved)
    for key in changed:
        _apply_override(data, key, new[key])
    return config_from_dict(data)
