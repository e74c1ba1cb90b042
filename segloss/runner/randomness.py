"""Seeds and random states: seeding a run, deriving independent seeds, and saving/restoring every random
state in a checkpoint so that a resumed run continues exactly."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def derive_seed(*numbers: int) -> int:
    """A 32-bit seed that is a function of ``numbers`` (e.g. run seed, epoch, rank), for generators that must
    not depend on how many random numbers were drawn before (an epoch after a resume)."""
    return int(np.random.SeedSequence([int(n) for n in numbers]).generate_state(1)[0])


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
