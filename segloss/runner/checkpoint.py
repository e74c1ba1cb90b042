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


def load_run(
    checkpoint: str | os.PathLike, task: str, classes: Sequence[str] | None = None, source: str = ""
) -> tuple[dict[str, Any], Any]:
    """A run's checkpoint and config, for evaluating it: ``ValueError`` unless it is a ``task`` run and,
    when ``classes`` are given, trained on those classes (of ``source``, named in the message).

    Returns:
        ``(state, config)``: the checkpoint (``load_checkpoint``) and its config object.
    """
    from .config import config_from_dict, saved_config

    state = load_checkpoint(checkpoint)
    config = config_from_dict(saved_config(state["config"]))
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
