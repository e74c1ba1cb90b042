"""Segmentation models from segmentation_models_pytorch by name, with pretrained weights that never hang."""

from __future__ import annotations

import contextlib
import difflib
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

logger = logging.getLogger(__name__)

# The encoders of the published experiments (docs/training.md).
PAPER_ENCODERS = ("resnet34", "efficientnet-b4", "densenet201", "resnext50_32x4d")
HUB_PROBE_TIMEOUT_S = 3.0


class WeightsUnavailableError(RuntimeError):
    """Pretrained encoder weights are neither cached nor downloadable."""


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub (where smp and timm keep their weights) answers within ``timeout``."""
    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False
    return True


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Make huggingface_hub read only its local cache (no network retries) inside the block."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def check_names(arch: str, encoder: str) -> None:
    """``ValueError`` listing the valid names when ``arch`` or ``encoder`` is not an smp model/encoder."""
    if arch.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        valid = ", ".join(a.__name__ for a in smp.MODEL_ARCHITECTURES_MAPPING.values())
        raise ValueError(f"unknown model.arch {arch!r}; smp architectures: {valid}")
    if encoder.startswith("tu-"):
        import timm

        if not timm.is_model(encoder[3:]):
            close = difflib.get_close_matches(encoder[3:], timm.list_models(), n=3)
            hint = f"; did you mean {', '.join('tu-' + name for name in close)}?" if close else ""
            raise ValueError(f"unknown model.encoder {encoder!r}: timm has no model {encoder[3:]!r}{hint}")
    elif encoder not in smp.encoders.get_encoder_names():
        close = difflib.get_close_matches(encoder, smp.encoders.get_encoder_names(), n=3)
        hint = f"did you mean {', '.join(close)}? Otherwise " if close else ""
        raise ValueError(
            f"unknown model.encoder {encoder!r}; {hint}use an smp encoder (e.g. {', '.join(PAPER_ENCODERS)}) "
            f"or a timm model as 'tu-NAME'"
        )


def build_model(arch: str, encoder: str, num_classes: int, encoder_weights: str | None = None) -> nn.Module:
    """The smp model ``arch`` (e.g. ``"FPN"``) with ``encoder`` and ``num_classes`` output channels.

    ``encoder_weights`` (e.g. ``"imagenet"``) come from the local cache or are downloaded; when the hub is
    unreachable and they are not cached, ``WeightsUnavailableError`` says to use ``encoder_weights=None``.
    """
    check_names(arch, encoder)

    def create() -> nn.Module:
        return smp.create_model(
            arch, encoder_name=encoder, encoder_weights=encoder_weights, in_channels=3, classes=num_classes
        )

    if encoder_weights is None:
        return create()
    online = hub_reachable()
    try:
        if online:
            return create()
        with _hub_offline():
            return create()
    except OSError as error:
        where = "could not be downloaded" if online else "are not cached and the hub is unreachable (offline)"
        raise WeightsUnavailableError(
            f"pretrained weights {encoder_weights!r} for encoder {encoder!r} {where}: {error}\n"
            f"Train from scratch with model.encoder_weights=null, or download them once online "
            f"(they are cached in ~/.cache/huggingface)."
        ) from error


def model_from_config(config: Any, num_classes: int, pretrained: bool = True) -> nn.Module:
    """The smp model of ``config.model``; ``pretrained=False`` skips the encoder weights (they are about
    to be replaced by a checkpoint's)."""
    weights = config.model.encoder_weights if pretrained else None
    return build_model(config.model.arch, config.model.encoder, num_classes, weights)
