"""Where a run executes: the device (``train.device``), mixed precision (``train.amp``), and the process
group of a ``torchrun`` or multi-task ``srun`` job, and the model as it trains there (``wrap_model``: DDP,
SyncBatchNorm, channels-last, ``torch.compile``)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .environment import cpu_bf16_support, cpu_model
from .schema import ConfigError, check_device

logger = logging.getLogger(__name__)


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device``.

    ``auto``: on CUDA bf16 where the GPU supports it, else fp16; on the CPU none (fp32), because bf16 is
    fast only on CPUs with bf16 units (``amx_bf16``, ``avx512_bf16``) and a config that changed precision
    with the machine would train differently on each (docs/training.md). ``bf16`` works on CUDA and the
    CPU (a warning on a CPU without native bf16, where it is slower than fp32); ``fp16`` is CUDA only.

    Raises:
        ConfigError: ``fp16`` on a device other than CUDA.
    """
    if setting == "off" or device.type not in ("cuda", "cpu"):
        return None
    if device.type == "cpu":
        if setting == "fp16":
            raise ConfigError(
                "train.amp=fp16 trains on CUDA only; on the CPU use train.amp=bf16 (fast on CPUs with "
                "amx_bf16 or avx512_bf16) or train.amp=off"
            )
        if setting == "bf16":
            _warn_without_native_bf16()
            return torch.bfloat16
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]


def _warn_without_native_bf16() -> None:
    support = cpu_bf16_support()
    if support == "none":
        logger.warning(
            "train.amp=bf16 on a CPU without bf16 instructions (%s has neither amx_bf16 nor avx512_bf16): "
            "bf16 is emulated there and trains slower than fp32; train.amp=off is faster",
            cpu_model(),
        )
    elif support is None:
        logger.warning(
            "train.amp=bf16 on the CPU, which does not say whether it has bf16 instructions: measure with "
            "benchmarks/bench_train.py --speedups, as bf16 is slower than fp32 where it is emulated"
        )


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision for ``dtype``, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def distributed_initialized() -> bool:
    """Whether a torch.distributed process group is running."""
    return dist.is_available() and dist.is_initialized()


@dataclass(frozen=True)
class Distributed:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# torchrun's process variables; SLURM's are read only when none of these is set.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
SLURM_FIX = (
    "start one task per process with srun (e.g. srun --ntasks-per-node=4 python train.py ...), or unset "
    "the SLURM_* variables and use torchrun"
)


def slurm_process_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """torchrun's variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)
    for a process that ``srun`` started as one of several tasks, so that the tasks form one process group
    instead of each being a run of its own.

    ``MASTER_ADDR`` is the first host of ``SLURM_STEP_NODELIST`` (or ``SLURM_JOB_NODELIST``/
    ``SLURM_NODELIST``; compressed lists such as ``gpu[01-04,07]`` are read without ``scontrol``) and
    ``MASTER_PORT`` is derived from ``SLURM_JOB_ID``; both are kept when already set.

    Args:
        environ: the process environment.

    Returns:
        The variables to set; empty when torchrun's variables are present or fewer than two tasks run.

    Raises:
        RuntimeError: the SLURM variables contradict each other (the message names the fix).
    """
    tasks = environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS", "1")
    if any(name in environ for name in TORCHRUN_VARIABLES) or tasks == "1":
        return {}
    rank, local_rank = environ.get("SLURM_PROCID", ""), environ.get("SLURM_LOCALID", "")
    names = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
    nodes = next((environ[name] for name in names if environ.get(name)), None)
    if not (tasks.isdigit() and rank.isdigit() and local_rank.isdigit()):
        raise RuntimeError(
            f"SLURM describes {tasks} tasks, but SLURM_PROCID={rank} and SLURM_LOCALID={local_rank} do not "
            f"place this process among them: {SLURM_FIX}"
        )
    if int(rank) >= int(tasks):
        raise RuntimeError(f"SLURM_PROCID={rank} is not below the number of tasks ({tasks}): {SLURM_FIX}")
    variables = {"RANK": rank, "WORLD_SIZE": tasks, "LOCAL_RANK": local_rank}
    if "MASTER_ADDR" not in environ:
        if nodes is None:
            raise RuntimeError(f"SLURM runs {tasks} tasks but names no nodes (SLURM_NODELIST): {SLURM_FIX}")
        first = re.split(r",(?![^\[]*\])", nodes)[0]  # commas inside brackets separate numbers
        variables["MASTER_ADDR"] = re.sub(r"\[([^\]]*)\]", lambda m: re.split("[,-]", m.group(1))[0], first)
    if "MASTER_PORT" not in environ:
        job = environ.get("SLURM_JOB_ID", "")
        variables["MASTER_PORT"] = str(15000 + (int(job) % 20000 if job.isdigit() else 0))
    return variables


def init_distributed(device_setting: str) -> Distributed:
    """Join the process group ``torchrun``, or ``srun`` with several tasks, describes in the environment
    (NCCL on CUDA, else gloo).

    Args:
        device_setting: ``train.device``.

    Returns:
        This process's place in the group (rank 0 of 1 without one).
    """
    slurm = slurm_process_variables(os.environ)
    if slurm:
        os.environ.update(slurm)
        logger.info(
            "forming one process group of the %s SLURM tasks (this is rank %s; master %s:%s)",
            slurm["WORLD_SIZE"],
            slurm["RANK"],
            os.environ["MASTER_ADDR"],
            os.environ["MASTER_PORT"],
        )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_setting != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank)


def nvidia_gpu_visible() -> bool:
    """Whether an NVIDIA driver is installed here (``nvidia-smi`` on the PATH or ``/proc/driver/nvidia``)."""
    return shutil.which("nvidia-smi") is not None or os.path.exists("/proc/driver/nvidia")


def resolve_device(setting: str, local_rank: int = 0) -> torch.device:
    """``auto`` → this process's GPU when there is one, else the CPU; ``cuda`` takes the local rank's GPU.

    Raises ``ConfigError`` for a malformed setting or a device this machine does not have.
    """
    check_device("train.device", setting)
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
        if setting == "cpu" and nvidia_gpu_visible():
            logger.warning(
                "train.device=auto trains on the CPU although this machine shows an NVIDIA GPU: this torch "
                "(%s, built for CUDA %s) cannot use it, most often because the driver supports an older "
                "CUDA than the wheel (nvidia-smi prints the driver's CUDA version). Install the torch wheel "
                "built for it, e.g. pip install torch --index-url https://download.pytorch.org/whl/cu126, "
                "or set train.device=cpu to silence this",
                torch.__version__,
                torch.version.cuda or "none: a CPU-only build",
            )
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device={setting}, but CUDA is not available on this machine (torch "
                f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); use train.device=cpu or "
                f"train.device=auto"
            )
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device={setting} asks for GPU {device.index}, but this machine has "
                f"{torch.cuda.device_count()} (indices from 0); use train.device=cuda or auto"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device={setting}, but MPS is not available; use train.device=cpu or auto")
    return device


def wrap_model(
    model: nn.Module, world: Distributed, device: torch.device, *, channels_last: bool, compile: bool
) -> nn.Module:
    """``model`` as it trains: in channels-last memory (in place, so an optimizer built on it keeps its
    parameters), with SyncBatchNorm and DistributedDataParallel under ``torchrun`` (SyncBatchNorm on CUDA
    only), through ``torch.compile`` when asked. ``model`` itself stays the unwrapped module to save and
    evaluate."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    network = model
    if world.world_size > 1:
        if device.type == "cuda":
            network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        device_ids = [device.index] if device.type == "cuda" else None
        network = nn.parallel.DistributedDataParallel(network, device_ids=device_ids)
    if compile:
        logger.info("training through torch.compile of the model")
        network = torch.compile(network)
    return network
