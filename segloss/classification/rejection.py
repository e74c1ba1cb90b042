"""Rejection evaluation (docs/image-level.md): unknown-class AUROC, AutoAttack robustness with DAR, and
accuracy under corruptions (CIFAR-10-C layout)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..metrics import auroc, dar, mls, msp
from ..runner.progress import progress_bar
from .loops import predict_logits

logger = logging.getLogger(__name__)

__all__ = [
    "ATTACK_BUDGETS",
    "ATTACK_NORMS",
    "SCORES",
    "AttackResult",
    "CorruptionResult",
    "UnknownRejection",
    "adversarial_rejection",
    "attack_budget",
    "attack_budgets",
    "check_corruptions_root",
    "corruption_accuracy",
    "format_attack_table",
    "format_unknown_table",
    "import_torchattacks",
    "predict_unknown_logits",
    "unknown_rejection",
]

SCORES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"msp": msp, "mls": mls}
ATTACK_NORMS = ("Linf", "L2")
# The paper's ε (docs/image-level.md) for L∞ and L2 on MNIST-like (1-channel) and CIFAR-like data.
ATTACK_BUDGETS: dict[str, dict[str, float]] = {
    "mnist": {"Linf": 0.3, "L2": 2.0},
    "cifar": {"Linf": 8 / 255, "L2": 0.5},
}
MNIST_LIKE_DATASETS = frozenset({"digits", "mnist", "fashionmnist"})
CORRUPTION_SEVERITIES = 5


@dataclass
class UnknownRejection:
    """AUROC (known = positive) per unknown set and score, and its mean over the sets."""

    per_set: dict[str, dict[str, float]]  # set name -> score name -> AUROC
    mean: dict[str, float]  # score name -> mean AUROC over the sets


@dataclass
class AttackResult:
    """AutoAttack on ``num_samples`` test images: accuracies and DAR per confidence score."""

    norm: str
    eps: float
    num_samples: int
    clean_accuracy: float
    robust_accuracy: float
    dar: dict[str, float]  # score name -> DAR


@dataclass
class CorruptionResult:
    """Accuracy per corruption and severity (1..5), and the mean over all of them."""

    per_corruption: dict[str, list[float]]
    mean_accuracy: float


def predict_unknown_logits(
    model: nn.Module,
    unknown_sets: Mapping[str, Dataset],
    device: torch.device | str,
    *,
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """The logits of every image of every unknown set."""
    return {
        name: predict_logits(model, dataset, device, batch_size=batch_size, desc=name, progress=progress)[0]
        for name, dataset in unknown_sets.items()
    }


def unknown_rejection(
    known_logits: torch.Tensor,
    unknown_logits: Mapping[str, torch.Tensor],
    scores: Sequence[str] = ("msp", "mls"),
) -> UnknownRejection:
    """AUROC of known-test against each unknown set's confidence, for each score of ``SCORES``."""
    if not unknown_logits:
        raise ValueError("unknown_rejection needs at least one unknown set")
    bad = [s for s in scores if s not in SCORES]
    if bad:
        raise ValueError(f"unknown scores {bad}; valid scores: {', '.join(SCORES)}")
    known = {score: SCORES[score](known_logits) for score in scores}
    per_set = {
        name: {score: auroc(known[score], SCORES[score](logits)) for score in scores}
        for name, logits in unknown_logits.items()
    }
    mean = {score: float(np.mean([values[score] for values in per_set.values()])) for score in scores}
    return UnknownRejection(per_set, mean)


def _check_norm(norm: str) -> None:
    if norm not in ATTACK_NORMS:
        raise ValueError(f"unknown attack norm {norm!r}; valid norms: {', '.join(ATTACK_NORMS)}")


def import_torchattacks() -> ModuleType:
    """The ``torchattacks`` package (AutoAttack), or an ``ImportError`` that says how to install it."""
    try:
        import torchattacks
    except ImportError as error:
        raise ImportError(
            f"AutoAttack needs the torchattacks package, which cannot be imported ({error}); install it with "
            f"pip install torchattacks (or the segloss-hem[cls] extra)"
        ) from error
    return torchattacks


def attack_budget(dataset: str, norm: str) -> float:
    """The paper's ε (docs/image-level.md) for ``norm`` (``Linf`` or ``L2``) on ``dataset``: MNIST's for
    digits, MNIST and FashionMNIST, CIFAR's for the others."""
    _check_norm(norm)
    return ATTACK_BUDGETS["mnist" if dataset in MNIST_LIKE_DATASETS else "cifar"][norm]


def attack_budgets(dataset: str, norms: Sequence[str], eps: Sequence[float] | None = None) -> list[float]:
    """One ε per norm of ``norms``: ``eps`` when given (``ValueError`` unless one per norm), else the
    paper's budgets for ``dataset`` (``attack_budget``)."""
    if eps is None:
        return [attack_budget(dataset, norm) for norm in norms]
    if len(eps) != len(norms):
        raise ValueError(f"attack_eps needs one budget per norm of {list(norms)}, got {eps}")
    return list(eps)


def adversarial_rejection(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    norm: str,
    eps: float,
    num_classes: int,
    device: torch.device | str,
    reference_logits: torch.Tensor | None = None,
    reference_labels: torch.Tensor | None = None,
    batch_size: int = 100,
    version: str = "standard",
    seed: int = 0,
    accept_rate: float = 0.95,
    progress: bool = True,
) -> AttackResult:
    """torchattacks' AutoAttack (``seed``, ``version``) on ``images`` (in [0, 1]) with budget ``eps`` in
    ``norm``; robust accuracy and DAR for each score of ``SCORES``.

    DAR's threshold comes from the correctly classified clean samples of ``reference_logits`` /
    ``reference_labels`` (e.g. the whole test set), by default from the clean ``images`` themselves.
    """
    torchattacks = import_torchattacks()
    _check_norm(norm)
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if images.dim() != 4 or labels.shape != images.shape[:1] or images.shape[0] == 0:
        raise ValueError(
            f"images must be (N, C, H, W) with N > 0 and labels (N,), got {tuple(images.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if images.min() < 0 or images.max() > 1:
        raise ValueError("AutoAttack needs images in [0, 1] (models normalise their input themselves)")
    if (reference_logits is None) != (reference_labels is None):
        raise ValueError("give both reference_logits and reference_labels, or neither")
    device = torch.device(device)
    model.eval()
    attack = torchattacks.AutoAttack(
        model, norm=norm, eps=eps, version=version, n_classes=num_classes, seed=seed
    )
    clean_logits, adv_logits = [], []
    starts = range(0, images.shape[0], batch_size)
    for start in progress_bar(
        starts, progress=progress, desc=f"AutoAttack {norm} eps={eps:.4g}", unit="batch"
    ):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        adversarial = attack(x, y)
        with torch.no_grad():
            clean_logits.append(model(x).float().cpu())
            adv_logits.append(model(adversarial).float().cpu())
    clean, adv = torch.cat(clean_logits), torch.cat(adv_logits)
    labels = labels.cpu()
    if reference_logits is None:
        reference_logits, reference_labels = clean, labels
    reference_correct = reference_logits.argmax(1) == reference_labels.cpu()
    adv_correct = adv.argmax(1) == labels
    result = AttackResult(
        norm=norm,
        eps=float(eps),
        num_samples=len(labels),
        clean_accuracy=(clean.argmax(1) == labels).double().mean().item(),
        robust_accuracy=adv_correct.double().mean().item(),
        dar={
            name: dar(score(reference_logits), reference_correct, score(adv), adv_correct, accept_rate)
            for name, score in SCORES.items()
        },
    )
    logger.info("AutoAttack %s eps=%.4g: %s", norm, eps, result)
    return result


def _corruption_layout(root: Path) -> str:
    return (
        f"expected a CIFAR-10-C-style folder {root}/ with CORRUPTION.npy files (5 severities × N images, "
        f"uint8 N×H×W×C, severity 1 first) and labels.npy (5·N or N labels)"
    )


def check_corruptions_root(root: str | os.PathLike) -> list[Path]:
    """The corruption files of a CIFAR-10-C-style folder; ``FileNotFoundError`` showing the layout when
    ``labels.npy`` or every corruption file is missing."""
    root = Path(root)
    labels_path = root / "labels.npy"
    if not labels_path.is_file():
        raise FileNotFoundError(f"{labels_path} not found; {_corruption_layout(root)}")
    files = sorted(p for p in root.glob("*.npy") if p.name != "labels.npy")
    if not files:
        raise FileNotFoundError(f"no corruption files in {root}; {_corruption_layout(root)}")
    return files


@torch.no_grad()
def corruption_accuracy(
    model: nn.Module,
    root: str | os.PathLike,
    device: torch.device | str,
    *,
    image_shape: Sequence[int] | None = None,
    batch_size: int = 500,
    progress: bool = True,
) -> CorruptionResult:
    """Accuracy on every ``CORRUPTION.npy`` of ``root`` at each of its 5 severities, and the mean over all."""
    root = Path(root)
    files = check_corruptions_root(root)
    labels_path = root / "labels.npy"
    labels = torch.from_numpy(np.load(labels_path).astype(np.int64))
    device = torch.device(device)
    model.eval()
    per_corruption: dict[str, list[float]] = {}
    for path in progress_bar(files, progress=progress, desc="corruptions", unit="file"):
        images = np.load(path, mmap_mode="r")
        if images.ndim == 3:  # grayscale N×H×W
            images = images[..., None]
        count = images.shape[0]
        if images.ndim != 4 or count % CORRUPTION_SEVERITIES:
            raise ValueError(f"{path} has shape {images.shape}; {_corruption_layout(root)}")
        if image_shape is not None and (images.shape[3], *images.shape[1:3]) != tuple(image_shape):
            raise ValueError(
                f"{path} holds {images.shape[1:]} (H, W, C) images, the model takes {image_shape}"
            )
        if len(labels) not in (count, count // CORRUPTION_SEVERITIES):
            raise ValueError(f"{labels_path} has {len(labels)} labels for the {count} images of {path}")
        targets = labels if len(labels) == count else labels.repeat(CORRUPTION_SEVERITIES)
        correct = torch.zeros(count, dtype=torch.bool)
        for start in range(0, count, batch_size):
            stop = start + batch_size
            batch = torch.from_numpy(np.array(images[start:stop])).to(device).permute(0, 3, 1, 2)
            correct[start:stop] = model(batch.float().div_(255)).argmax(1).cpu() == targets[start:stop]
        per_corruption[path.stem] = correct.view(CORRUPTION_SEVERITIES, -1).double().mean(1).tolist()
    mean_accuracy = float(np.mean(list(per_corruption.values())))
    return CorruptionResult(per_corruption, mean_accuracy)


def format_unknown_table(result: UnknownRejection) -> str:
    """A text table of AUROC (%) per unknown set and score, with the mean last."""
    scores = list(result.mean)
    rows = [*result.per_set.items(), ("mean", result.mean)]
    width = max(len("unknown set"), *(len(name) for name, _ in rows))
    lines = [f"{'unknown set':<{width}}" + "".join(f"  {'AUROC ' + s.upper():>9}" for s in scores)]
    for name, values in rows:
        lines.append(f"{name:<{width}}" + "".join(f"  {100 * values[s]:8.2f}%" for s in scores))
    return "\n".join(lines)


def format_attack_table(results: Sequence[AttackResult]) -> str:
    """A text table of clean and robust accuracy and DAR (%) per attack."""
    scores = list(results[0].dar) if results else list(SCORES)
    lines = [
        f"{'attack':<16}  {'n':>6}  {'clean':>7}  {'robust':>7}"
        + "".join(f"  {'DAR ' + s.upper():>7}" for s in scores)
    ]
    for r in results:
        lines.append(
            f"{f'{r.norm} eps={r.eps:.4g}':<16}  {r.num_samples:>6}  {100 * r.clean_accuracy:6.2f}%  "
            f"{100 * r.robust_accuracy:6.2f}%" + "".join(f"  {100 * r.dar[s]:6.2f}%" for s in scores)
        )
    return "\n".join(lines)
