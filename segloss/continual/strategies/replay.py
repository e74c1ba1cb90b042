"""Experience replay with a balanced memory (as Avalanche's ``ReplayPlugin`` with a class-balanced buffer,
the Continual Learning Baselines' replay recipe).

The memory holds at most ``memory_size`` training samples of the past experiences, split equally over the
(experience, class) groups seen so far: in a split stream that is one group per class, in a permuted
stream one per class and permutation. A group's samples are a uniform random subset of its data; when new
groups arrive the old ones shrink by dropping the end of their random order, which keeps them uniform
random subsets (what reservoir sampling per group would hold). Every training batch of the current
experience is joined by an equally large batch drawn with replacement from the memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, RandomSampler, Subset

from ...classification.data import dataset_targets
from ...runner.randomness import derive_seed
from ..benchmarks import Experience
from .base import Batches, Strategy

__all__ = ["Replay"]

MEMORY_STREAM = 2  # mixed into the run seed for the memory's sampling
FIELDS = ("experience", "index", "target")


def _joined(batches: DataLoader, memory: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for (images, targets), (old_images, old_targets) in zip(batches, memory, strict=True):
        yield torch.cat([images, old_images]), torch.cat([targets, old_targets])


class Replay(Strategy):
    """Replay from a memory balanced over (experience, class) groups; see the module docstring.

    Args:
        memory_size: samples the memory holds at most.
        experiences: the stream's experiences (the memory stores indices into their training data).
        seed: run seed of the memory's random choices.
    """

    name = "replay"

    def __init__(self, memory_size: int, experiences: Sequence[Experience], seed: int):
        self.memory_size = memory_size
        self.experiences = experiences
        self.seed = seed
        self.memory = {field: np.zeros(0, dtype=np.int64) for field in FIELDS}

    def memory_dataset(self) -> ConcatDataset:
        """The remembered ``(image, target)`` samples, experience by experience."""
        parts = [
            Subset(self.experiences[e].train, self.memory["index"][self.memory["experience"] == e].tolist())
            for e in np.unique(self.memory["experience"])
        ]
        return ConcatDataset(parts)

    def training_batches(self, batches: DataLoader, seed: int) -> Batches:
        if not len(self.memory["index"]):
            return batches
        memory = self.memory_dataset()
        sampler = RandomSampler(
            memory,
            replacement=True,
            num_samples=len(batches) * batches.batch_size,
            generator=torch.Generator().manual_seed(seed),
        )
        memory_batches = DataLoader(
            memory, batch_size=batches.batch_size, sampler=sampler, num_workers=batches.num_workers
        )
        return _joined(batches, memory_batches)

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        targets = dataset_targets(experience.train)
        rng = np.random.default_rng(derive_seed(self.seed, MEMORY_STREAM, experience.index))
        order = rng.permutation(len(targets))
        candidates = {
            "experience": np.full(len(order), experience.index, dtype=np.int64),
            "index": order.astype(np.int64),
            "target": targets[order].astype(np.int64),
        }
        pool = {field: np.concatenate([self.memory[field], candidates[field]]) for field in FIELDS}
        groups, group_of = np.unique(
            np.stack([pool["experience"], pool["target"]]), axis=1, return_inverse=True
        )
        group_of = group_of.ravel()
        num_groups = groups.shape[1]
        quota = np.full(num_groups, self.memory_size // num_groups)
        quota[: self.memory_size % num_groups] += 1
        by_group = np.argsort(group_of, kind="stable")  # within a group: memory first, then random order
        sizes = np.bincount(group_of, minlength=num_groups)
        rank = np.arange(len(by_group)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        keep = by_group[rank < quota[group_of[by_group]]]
        self.memory = {field: pool[field][keep] for field in FIELDS}

    def state_dict(self) -> dict[str, Any]:
        return {field: torch.from_numpy(values) for field, values in self.memory.items()}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.memory = {field: state[field].numpy() for field in FIELDS}
