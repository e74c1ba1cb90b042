"""Constants and input checks shared by every loss."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch

REDUCTIONS = ("mean", "sum", "none")
DEFAULT_IGNORE_INDEX = -100
LOW_PRECISION = (torch.float16, torch.bfloat16)


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_shapes(logits: torch.Tensor, target: torch.Tensor) -> None:
    """Logits ``(N, C, d1..dk)`` and target ``(N, d1..dk)`` of an integer dtype, like cross-entropy."""
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(
            f"logits and target must be tensors, got {type(logits).__name__} and {type(target).__name__}"
        )
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if logits.dim() < 2:
        raise ValueError(f"logits must have shape (N, C) or (N, C, d1, ...), got shape {tuple(logits.shape)}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape {tuple(logits.shape)}: "
            f"expected target shape {expected}"
        )
    if logits.shape[1] < 2:
        raise ValueError(f"logits need at least 2 classes along dim 1, got shape {tuple(logits.shape)}")


def check_target_values(target: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Every target is in ``[0, num_classes)`` or equals ``ignore_index``: a ``ValueError`` naming the first
    bad value, at once (reads the target on the host: the CPU path)."""
    if target.numel() == 0:
        return
    low, high = torch.aminmax(target)
    if low.item() >= 0 and high.item() < num_classes:
        return
    bad = target[(target != ignore_index) & ((target < 0) | (target >= num_classes))]
    if bad.numel():
        raise_bad_target(int(bad[0]), num_classes, ignore_index)


def assert_target_values_on_device(target: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """The same check queued on the target's device (``torch._assert_async``), without a host
    synchronisation: the CUDA path. A bad target fails the next synchronising call with this message (on
    CUDA a device-side assertion, which ends the process's CUDA context, as an out-of-range index in
    ``F.cross_entropy`` does)."""
    valid = (target == ignore_index) | ((target >= 0) & (target < num_classes))
    torch._assert_async(
        valid.all(),
        f"segloss: a target value is outside [0, {num_classes}) and is not ignore_index ({ignore_index})",
    )


def raise_bad_target(value: int, num_classes: int, ignore_index: int) -> None:
    hint = ""
    if value == 255 and ignore_index != 255:
        hint = "; segmentation masks (segloss's readers, most datasets) mark void 255: pass ignore_index=255"
    raise ValueError(
        f"target value {value} is outside [0, {num_classes}) and is not ignore_index ({ignore_index}){hint}"
    )


def per_class_tensor(
    values: float | Sequence[float] | torch.Tensor,
    num_classes: int,
    name: str,
    like: torch.Tensor,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """A ``(C,)`` tensor on ``like``'s device in ``dtype`` (default ``like``'s) from a float or a length-C
    sequence or tensor. A tensor held elsewhere (margins on the CPU for CUDA logits) is copied once and
    the copy reused while the tensor is unchanged (:func:`device_copy`)."""
    dtype = dtype or like.dtype
    if isinstance(values, (int, float)):
        return torch.full((num_classes,), float(values), dtype=dtype, device=like.device)
    values = torch.as_tensor(values)
    if values.dim() != 1 or values.shape[0] != num_classes:
        raise ValueError(
            f"the logits have {num_classes} classes but the {name} has shape {tuple(values.shape)}: a loss "
            f"built from class counts needs one count per class of the logits (class_counts of length "
            f"{num_classes}); a {name} given directly is a float or a ({num_classes},) tensor"
        )
    return device_copy(values, like.device, dtype)


# (id, version, device, dtype) of a per-class tensor -> its copy; an entry goes with its tensor
_COPIES: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}


def device_copy(values: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``values`` on ``device`` in ``dtype``: itself when it already is, else a copy made once (without
    blocking the host) and reused for as long as ``values`` lives unchanged (an in-place change makes a new
    copy). So a loss called every step with CPU-held margins, priors or weights copies them to the GPU once,
    not once a step (a blocking host-to-device copy per call would synchronise and break CUDA graphs)."""
    if values.device == device and values.dtype == dtype:
        return values
    version = _version(values)
    if version is None:  # an inference-mode tensor has no version counter: convert without caching
        return values.to(device=device, dtype=dtype, non_blocking=True)
    key = (id(values), version, device, dtype)
    copy = _COPIES.get(key)
    if copy is None:
        if not any(k[0] == key[0] for k in _COPIES):
            weakref.finalize(values, _forget_copies, key[0])
        else:  # an older version of the same tensor: drop it
            for stale in [k for k in _COPIES if k[0] == key[0] and k[1] != key[1]]:
                del _COPIES[stale]
        copy = _COPIES[key] = values.to(device=device, dtype=dtype, non_blocking=True)
    return copy


def _version(tensor: torch.Tensor) -> int | None:
    """The tensor's in-place version counter, or ``None`` for an inference-mode tensor (it has none)."""
    try:
        return tensor._version
    except RuntimeError:
        return None


def _forget_copies(identity: int) -> None:
    for key in [k for k in _COPIES if k[0] == identity]:
        del _COPIES[key]


def prepare_logits(logits: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """The checks every loss starts with (reduction, shapes, dtypes); the logits in their compute dtype."""
    check_reduction(reduction)
    check_shapes(logits, target)
    return logits.to(compute_dtype(logits.dtype))


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half precision is computed in float32; float32 and float64 stay as they are."""
    return torch.float32 if dtype in LOW_PRECISION else dtype


ClassWeight = Sequence[float] | torch.Tensor | None


def check_weight_values(weight: torch.Tensor, num_classes: int | None = None) -> None:
    """``ValueError`` naming the problem when the per-class ``weight`` (on the host) is not a
    ``(num_classes,)`` vector of finite, non-negative numbers; ``num_classes=None`` checks only the values."""
    if weight.dim() != 1 or (num_classes is not None and weight.shape[0] != num_classes):
        expected = "(C,) tensor of per-class weights"
        if num_classes is not None:
            expected = f"({num_classes},) tensor of per-class weights for {num_classes} classes"
        raise ValueError(f"weight must be a {expected}, got shape {tuple(weight.shape)}")
    bad = ~torch.isfinite(weight) | (weight < 0)
    if bool(bad.any()):
        index = int(bad.nonzero()[0])
        raise ValueError(
            f"weight must be finite and non-negative for each of the {weight.shape[0]} classes, got "
            f"{weight[index].item()} for class {index} (a zero weight is allowed: the class adds nothing)"
        )


def class_weight_tensor(
    weight: ClassWeight,
    num_classes: int,
    like: torch.Tensor,
    on_device: bool,
    dtype: torch.dtype | None = None,
) -> torch.Tensor | None:
    """The per-class ``weight`` as a ``(C,)`` tensor on ``like``'s device and dtype, or ``None``.

    The length is checked at once; the values (finite, non-negative) too on the CPU path, and on the device
    path (``on_device``) by a queued assertion, without a host synchronisation, as the targets are."""
    if weight is None:
        return None
    weight = torch.as_tensor(weight)
    if weight.dim() != 1 or weight.shape[0] != num_classes:
        check_weight_values(weight, num_classes)  # raises, naming the shape
    if not on_device:
        check_weight_values(weight, num_classes)
    copy = device_copy(weight, like.device, like.dtype if dtype is None else dtype)
    version = _version(copy)
    if on_device and (version is None or getattr(copy, "_segloss_checked", None) != version):
        # queued once per tensor (and version), not once a step
        torch._assert_async(
            (torch.isfinite(copy) & (copy >= 0)).all(),
            f"segloss: weight must be finite and non-negative for each of the {num_classes} classes",
        )
        if version is not None:
            copy._segloss_checked = version
    return copy


def sample_weights(weight: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``w_l`` of every sample, shaped like ``target``: the weight of its true class, 0 where ignored."""
    valid = target != ignore_index
    return torch.where(valid, weight[torch.where(valid, target, 0).long()], 0)
