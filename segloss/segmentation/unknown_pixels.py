"""Pixel-level unknown rejection for segmentation (beyond the paper).

Classes named in ``data.holdout_classes`` are held out of training: their pixels are ignored in the
training masks, the loss sees the logits of the other classes only (so the held-out classes get no count,
margin or gradient), and their never-trained logits are left out of predictions and confidence scores.
The evaluation then measures how well MSP and MLS tell their pixels (unknown) from the pixels of the other
classes (known).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..metrics import auroc, mls, msp
from ..runner.randomness import derive_seed
from .data import IGNORE_INDEX, SegmentationDataset

logger = logging.getLogger(__name__)

# Pixel-level rejection scores at most this many known and as many unknown pixels (a uniform sample).
MAX_SCORED_PIXELS = 2_000_000
PIXEL_SCORES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"msp": msp, "mls": mls}


# ---------------------------------------------------------------------------------------------------
# Classes held out of training


def class_indices(classes: Sequence[str], names: Sequence[str]) -> list[int]:
    """The indices in ``classes`` of the class ``names`` (sorted)."""
    return sorted(classes.index(name) for name in names)


class HeldOutClasses(SegmentationDataset):
    """``dataset`` with the pixels of the ``held_out`` class indices ignored (255) in every mask; images,
    classes and palette are unchanged. ``transform`` applies to the result."""

    def __init__(self, dataset: SegmentationDataset, held_out: Sequence[int], transform: Any = None):
        super().__init__(dataset.split, transform)
        self.dataset = dataset
        self.classes = tuple(dataset.classes)
        self.palette = dataset.palette
        self.image_files = dataset.image_files
        self.held_out = tuple(held_out)
        self.lookup = np.arange(256, dtype=np.uint8)
        self.lookup[list(self.held_out)] = IGNORE_INDEX

    def load_image(self, index: int) -> np.ndarray:
        return self.dataset.load_image(index)

    def load_mask(self, index: int) -> np.ndarray:
        return self.lookup[self.dataset.load_mask(index)]

    def load_sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.dataset.load_sample(index)
        return image, self.lookup[mask]

    def fingerprint(self) -> dict[str, Any]:
        return {**self.dataset.fingerprint(), "held_out": list(self.held_out)}

    def __repr__(self) -> str:
        return f"{self.dataset!r} without {', '.join(self.classes[i] for i in self.held_out)}"


class KnownClassesLoss(nn.Module):
    """``loss`` on the logits of the ``known`` class indices only, with targets renumbered to them. Targets
    are train ids below 256: a known class or ``ignore_index`` (held-out classes must already be ignored in
    the masks); any other value is a ``ValueError``."""

    def __init__(self, loss: nn.Module, known: Sequence[int], ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.loss = loss
        renumber = torch.full((256,), -1)
        renumber[torch.tensor(known)] = torch.arange(len(known))
        renumber[ignore_index] = ignore_index
        self.register_buffer("known", torch.tensor(known), persistent=False)
        self.register_buffer("renumber", renumber, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        renumbered = self.renumber[target]
        if bool((renumbered < 0).any()):
            value = target[renumbered < 0][0].item()
            raise ValueError(
                f"target value {value} is neither a known class {self.known.tolist()} nor ignored; classes "
                f"held out of training must be ignored in the masks"
            )
        return self.loss(logits.index_select(1, self.known), renumbered)


class ExcludedClassLogits(nn.Module):
    """``model`` with the logits of the ``excluded`` class indices set to -inf: classes that were never
    trained are never predicted and take no probability."""

    def __init__(self, model: nn.Module, excluded: Sequence[int]):
        super().__init__()
        self.model = model
        self.excluded = tuple(excluded)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.model(image)
        excluded = torch.tensor(self.excluded, device=logits.device)
        return logits.index_fill(1, excluded, float("-inf"))


def prediction_model(model: nn.Module, held_out: Sequence[int]) -> nn.Module:
    """``model`` as it predicts: without the logits of the classes held out of its training."""
    return ExcludedClassLogits(model, held_out) if held_out else model


# ---------------------------------------------------------------------------------------------------
# Pixel-level unknown rejection


@dataclass(frozen=True)
class PixelRejection:
    """AUROC (known pixels positive) of MSP and MLS for telling the pixels of the ``unknown_classes`` from
    the valid pixels of the other classes, with the logits of ``excluded_logits`` left out of the scores.
    ``*_pixels`` count the split's pixels, ``scored_*`` those in the uniform sample that was scored."""

    unknown_classes: tuple[str, ...]
    excluded_logits: tuple[str, ...]
    known_pixels: int
    unknown_pixels: int
    scored_known: int
    scored_unknown: int
    auroc: dict[str, float | None]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values (AUROC as fractions, ``null`` when a group has no pixels)."""
        return {
            "unknown_classes": list(self.unknown_classes),
            "excluded_logits": list(self.excluded_logits),
            **{f"auroc_{score}": value for score, value in self.auroc.items()},
            "known_pixels": self.known_pixels,
            "unknown_pixels": self.unknown_pixels,
            "scored_known_pixels": self.scored_known,
            "scored_unknown_pixels": self.scored_unknown,
        }

    def format_table(self) -> str:
        """AUROC % per score, and the pixel counts behind it."""

        def pixels(total: int, scored: int) -> str:
            return f"{total:,}" + ("" if scored == total else f" ({scored:,} scored: a uniform sample)")

        lines = [
            f"pixel-level unknown rejection: {', '.join(self.unknown_classes)} (unknown) vs the other "
            f"classes (known); logits left out of the scores: {', '.join(self.excluded_logits)}",
            f"{'score':<6}  {'AUROC %':>7}",
        ]
        for score, value in self.auroc.items():
            lines.append(f"{score.upper():<6}  {'—' if value is None else f'{100 * value:.2f}':>7}")
        lines.append(
            f"known pixels {pixels(self.known_pixels, self.scored_known)}, "
            f"unknown pixels {pixels(self.unknown_pixels, self.scored_unknown)}"
        )
        return "\n".join(lines)


class _ScoreSample:
    """A uniform random sample without replacement of at most ``size`` rows: the rows with the ``size``
    smallest random priorities, so the sample is deterministic for a seeded ``generator``."""

    def __init__(self, size: int, generator: torch.Generator):
        self.size = size
        self.generator = generator
        self.seen = 0
        self.priorities: list[torch.Tensor] = [torch.empty(0)]
        self.rows: list[torch.Tensor] = [torch.empty(0, len(PIXEL_SCORES))]

    def add(self, rows: torch.Tensor) -> None:
        """Offer ``rows`` (one per pixel) to the sample."""
        self.merge(len(rows), torch.rand(len(rows), generator=self.generator), rows)

    def merge(self, seen: int, priorities: torch.Tensor, rows: torch.Tensor) -> None:
        """Add the ``state()`` of another sample (or prioritised rows)."""
        self.seen += seen
        self.priorities.append(priorities)
        self.rows.append(rows)
        if sum(len(p) for p in self.priorities) > 2 * self.size:  # compact now and then, not every time
            self._compact()

    def state(self) -> tuple[int, torch.Tensor, torch.Tensor]:
        """``(rows seen, priorities, rows)`` of the sample."""
        self._compact()
        return self.seen, self.priorities[0], self.rows[0]

    def _compact(self) -> None:
        priorities, rows = torch.cat(self.priorities), torch.cat(self.rows)
        if len(priorities) > self.size:
            keep = priorities.topk(self.size, largest=False).indices
            priorities, rows = priorities[keep], rows[keep]
        self.priorities, self.rows = [priorities], [rows]


class UnknownPixelScores:
    """Confidence scores (MSP, MLS) of the known and unknown pixels of a split, batch by batch.

    Unknown pixels are those of the ``unknown`` class indices, known pixels the other valid ones. The scores
    leave out the logits of the ``excluded`` classes (the unknown ones and any never trained), so that a
    pixel is not judged by the class it belongs to. Each group keeps a uniform sample of at most
    ``max_pixels`` pixels, deterministic from ``seed`` and the DDP ``rank``.
    """

    def __init__(
        self,
        classes: Sequence[str],
        unknown: Sequence[int],
        excluded: Sequence[int],
        *,
        max_pixels: int = MAX_SCORED_PIXELS,
        seed: int = 0,
        rank: int = 0,
        ignore_index: int = IGNORE_INDEX,
    ):
        left_out = sorted(set(excluded) | set(unknown))
        scored = [c for c in range(len(classes)) if c not in left_out]
        if not unknown or len(scored) < 2:
            raise ValueError(
                f"pixel-level rejection needs at least one unknown class and two classes left to score, got "
                f"unknown {[classes[c] for c in unknown]} and scored {[classes[c] for c in scored]}"
            )
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {max_pixels}")
        self.classes = tuple(classes)
        self.unknown = torch.tensor(sorted(unknown))
        self.excluded = left_out
        self.scored = torch.tensor(scored)
        self.ignore_index = ignore_index
        self.known_sample, self.unknown_sample = (
            _ScoreSample(max_pixels, torch.Generator().manual_seed(derive_seed(seed, rank, group)))
            for group in range(2)
        )

    def update(self, logits: torch.Tensor, mask: torch.Tensor) -> None:
        """Add the pixels of a batch: logits ``N×C×H×W`` and mask ``N×H×W`` (train ids, 255 ignored)."""
        logits = logits.index_select(1, self.scored.to(logits.device))
        scores = torch.stack([score(logits) for score in PIXEL_SCORES.values()], dim=-1)
        unknown = torch.isin(mask, self.unknown.to(mask.device))
        known = (mask != self.ignore_index) & ~unknown
        self.known_sample.add(scores[known].cpu())
        self.unknown_sample.add(scores[unknown].cpu())

    def gather(self) -> None:
        """Merge the samples of all DDP ranks, so that every rank holds the sample of the whole split."""
        if dist.is_available() and dist.is_initialized():
            self.known_sample, self.unknown_sample = map(_gathered, (self.known_sample, self.unknown_sample))

    def result(self) -> PixelRejection:
        """AUROC of each score over the pixels seen so far (``None`` when a group has no pixels)."""
        known_seen, _, known = self.known_sample.state()
        unknown_seen, _, unknown = self.unknown_sample.state()
        if known_seen and unknown_seen:
            values = {
                name: auroc(known[:, column], unknown[:, column]) for column, name in enumerate(PIXEL_SCORES)
            }
        else:
            logger.warning(
                "pixel-level rejection: the split has %d known and %d unknown pixels; AUROC is undefined",
                known_seen,
                unknown_seen,
            )
            values = dict.fromkeys(PIXEL_SCORES)
        return PixelRejection(
            unknown_classes=tuple(self.classes[c] for c in self.unknown.tolist()),
            excluded_logits=tuple(self.classes[c] for c in self.excluded),
            known_pixels=known_seen,
            unknown_pixels=unknown_seen,
            scored_known=len(known),
            scored_unknown=len(unknown),
            auroc=values,
        )


def _gathered(sample: _ScoreSample) -> _ScoreSample:
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, sample.state())
    merged = _ScoreSample(sample.size, sample.generator)
    for state in states:
        merged.merge(*state)
    return merged
