"""Training checkpoints: a ``torch.save`` dict written atomically, read back with ``weights_only=True``.

A checkpoint holds plain data only (tensors, numbers, strings, lists and dicts: the config as a nested dict,
never a pickled class), so checkpoints stay readable when modules move. ``format`` is 1 since the first
release."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .files import atomic_path

CHECKPOINT_FORMAT = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` through a temporary file in the same folder and an atomic rename,
    so that ``path`` always holds a complete checkpoint."""
    with atomic_path(path) as temporary:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, temporary)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, mmap: bool = False
) -> dict[str, Any]:
    """A checkpoint written by ``save_checkpoint``; ``FileNotFoundError``/``ValueError`` naming the file.
    ``mmap`` maps the tensors instead of reading them (cheap when only the bookkeeping entries are needed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a segloss checkpoint (format {CHECKPOINT_FORMAT})")
    return state


#: What ``segloss evaluate`` may override: where the data is and what is measured. The other data keys, the
#: model, the loss and the train settings describe what the checkpoint was trained on and with.
EVALUATION_OVERRIDES = ("data.root", "data.download", "eval.*")


def _evaluation_override(key: str) -> bool:
    return any(
        key.startswith(allowed[:-1]) if allowed.endswith(".*") else key == allowed
        for allowed in EVALUATION_OVERRIDES
    )


def load_run(
    checkpoint: str | os.PathLike,
    task: str,
    classes: Sequence[str] | None = None,
    source: str = "",
    overrides: Sequence[str] = (),
) -> tuple[dict[str, Any], Any]:
    """A run's checkpoint and config, for evaluating it: ``ValueError`` unless it is a ``task`` run and,
    when ``classes`` are given, trained on those classes (of ``source``, named in the message).

    Args:
        overrides: ``key=value`` changes of ``data.root``, ``data.download`` and the ``eval`` section
            (``EVALUATION_OVERRIDES``; e.g. ``data.root=DIR`` for data that moved); ``ConfigError`` for
            another key.

    Returns:
        ``(state, config)``: the checkpoint (``load_checkpoint``) and its config object.
    """
    from .config import config_from_dict, parse_override, saved_config
    from .schema import ConfigError

    for text in overrides:
        if not _evaluation_override(parse_override(text)[0]):
            raise ConfigError(
                f"override {text!r}: an evaluation may change only {', '.join(EVALUATION_OVERRIDES)}; the "
                f"other settings are those {checkpoint} was trained with"
            )
    state = load_checkpoint(checkpoint)
    config = config_from_dict(saved_config(state["config"]), overrides)
    if config.task != task:
        raise ValueError(f"{checkpoint} is a {config.task} checkpoint, not a {task} one")
    if classes is not None:
        check_trained_classes(checkpoint, state, classes, source)
    return state, config


def check_trained_classes(
    checkpoint: str | os.PathLike, state: dict[str, Any], classes: Sequence[str], source: str
) -> None:
    """``ValueError`` unless the run (``state``) was trained on ``classes`` of ``source``."""
    if list(classes) != list(state["classes"]):
        raise ValueError(
            f"{checkpoint} was trained on classes {state['classes']}, but {source} has {classes}"
        )
