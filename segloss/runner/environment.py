"""Where a run really ran: the CPU and its bf16 support, the device, the precision and memory layout used,
the threads and the versions of segloss and the libraries that decide its numbers.

CPU training is deterministic for one CPU model only: the same config and seed trained on another CPU
moves a CamVid run by more than the spread between seeds. Every run's ``results.json`` therefore records
``environment`` (docs/outputs.md), and ``segloss report`` says when a table mixes environments.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

# CPU flags (Linux /proc/cpuinfo) of native bf16 arithmetic, best first: Intel AMX tiles, AVX-512 BF16
# (Intel Cooper Lake and later, AMD Zen 4 and later).
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# Fields of an environment that decide a run's numbers; runs that differ in one of them are not
# bit-for-bit comparable (``segloss report`` names the fields that differ).
DECIDING_FIELDS = ("device", "cpu", "precision", "torch")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo``, or ``None`` where that file does not exist."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``platform.processor()``), or ``"unknown"``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_bf16_support() -> str | None:
    """The native bf16 instructions of this CPU (``"amx_bf16"``, ``"avx512_bf16"``), ``"none"`` when it
    has neither, or ``None`` when this system does not tell (no ``/proc/cpuinfo``)."""
    flags = cpu_flags()
    if flags is None:
        return None
    return next((flag for flag in BF16_FLAGS if flag in flags), "none")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the segloss checkout this process imports (``+dirty`` with uncommitted changes), or
    ``None`` for an installed copy or where git is unavailable."""
    source = Path(__file__).resolve().parents[2]
    if not (source / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no", "--", "segloss"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode:
        return None
    return commit.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def precision_name(dtype: torch.dtype | None) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: the autocast dtype of a run in words (``None``: fp32)."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def run_environment(device: torch.device, dtype: torch.dtype | None, channels_last: bool) -> dict[str, Any]:
    """The environment of a run on ``device`` with autocast ``dtype`` and ``channels_last`` memory.

    Returns:
        ``segloss`` (version), ``commit`` (``git_commit()``), ``torch``, ``smp``, ``timm`` (versions, ``None``
        when not installed), ``device`` (``cpu``, or the GPU's name), ``cpu`` (model), ``cpu_bf16``
        (``cpu_bf16_support()``), ``threads``, ``precision`` (``fp32``/``bf16``/``fp16``: what autocast
        used) and ``memory_format`` (``channels_last`` or ``contiguous``).
    """
    from .. import __version__

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return {
        "segloss": __version__,
        "commit": git_commit(),
        "torch": str(torch.__version__),
        "smp": _version("segmentation_models_pytorch"),
        "timm": _version("timm"),
        "device": name,
        "cpu": cpu_model(),
        "cpu_bf16": cpu_bf16_support(),
        "threads": torch.get_num_threads(),
        "precision": precision_name(dtype),
        "memory_format": "channels_last" if channels_last else "contiguous",
    }


def environment_key(environment: dict[str, Any]) -> tuple[Any, ...]:
    """The fields of ``environment`` that decide a run's numbers (``DECIDING_FIELDS``)."""
    return tuple(environment.get(name) for name in DECIDING_FIELDS)
