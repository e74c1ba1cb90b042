"""Training checkpoints written atomically, and the random states that make a resumed run identical."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` through a temporary file in the same folder and an atomic rename,
    so that ``path`` always holds a complete checkpoint."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, temporary)
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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


def rng_states() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and python random states, in types ``torch.load`` reads safely."""
    version, mt_state, gauss = random.getstate()
    # The legacy global numpy generator is the one that user and library code may draw from.
    name, keys, position, has_gauss, cached_gauss = np.random.get_state()  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gauss],
        "python": [version, list(mt_state), gauss],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore the states returned by ``rng_states``."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, position, has_gauss, cached_gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))  # noqa: NPY002
    version, mt_state, gauss = states["python"]
    random.setstate((version, tuple(mt_state), gauss))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    torch.manual_seed(seed)
