"""The task-independent run engine: devices, AMP and DDP, the loop of one training epoch, and
``TrainingRun`` / ``run_training``: a training run in its run folder (checkpoints, resume, the epoch loop,
the final evaluation). A task subclasses ``TrainingRun`` (``segloss.segmentation.training``,
``segloss.classification.training``)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, check_device, config_to_dict, flatten, resume_config, save_config
from .files import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOG_FILE,
    METRICS_FILE,
    RESULTS_FILE,
    add_log_file,
    write_metrics,
)
from .progress import progress_bar
from .randomness import rng_states, seed_everything, set_rng_states
from .tensorboard import TENSORBOARD_DIR, TensorBoardWriter

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class RunExistsError(RuntimeError):
    """The run directory already holds a checkpoint and ``resume`` was not asked for."""


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp``: ``auto`` = bf16 on CUDA where supported, else fp16; CPU: none."""
    if device.type != "cuda" or setting == "off":
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]


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


def resolve_device(setting: str, local_rank: int = 0) -> torch.device:
    """``auto`` → this process's GPU when there is one, else the CPU; ``cuda`` takes the local rank's GPU.

    Raises ``ConfigError`` for a malformed setting or a device this machine does not have.
    """
    check_device("train.device", setting)
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
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


def optimizer_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> None:
    """One step on ``loss``: zero the gradients, backward, step; through ``scaler`` (fp16 AMP) if given,
    which unscales the gradients before the step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def train_one_epoch(
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    *,
    epoch: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float, float], Any] | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns the mean loss, images/s (all ranks), seconds and the last lr.
    ``on_step(step, loss, lr)`` receives every step's index in the epoch (from 0), loss (the mean over
    ranks) and learning rate.

    Raises ``NonFiniteLossError`` before the update when the loss is NaN or infinite (on any rank).
    """
    model.train()
    world_size = dist.get_world_size() if distributed_initialized() else 1
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    total_loss, steps, images = 0.0, 0, 0
    start = time.perf_counter()
    bar = progress_bar(loader, progress=progress, desc=f"epoch {epoch}", unit="step", leave=False)
    for image, mask in bar:
        image = image.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        mask = mask.to(device, non_blocking=True).long()
        with autocast(device, dtype):
            logits = model(image)
        loss = loss_fn(logits, mask)  # outside autocast: segloss computes half-precision logits in float32

        reported = loss.detach().clone()
        if world_size > 1:
            dist.all_reduce(reported)
            reported /= world_size
        value = reported.item()
        if not math.isfinite(value):
            raise NonFiniteLossError(f"the loss is {value} at epoch {epoch}, step {steps + 1}")

        lr = optimizer.param_groups[0]["lr"]
        optimizer_step(loss, optimizer, scaler)
        if scheduler is not None:
            scheduler.step()

        if on_step is not None:
            on_step(steps, value, lr)
        total_loss += value
        steps += 1
        images += image.shape[0] * world_size
        bar.set_postfix(loss=f"{value:.4f}", img_s=f"{images / (time.perf_counter() - start):.1f}")
    seconds = time.perf_counter() - start
    return {
        "loss": total_loss / max(steps, 1),
        "images_per_s": images / seconds,
        "seconds": seconds,
        "lr": optimizer.param_groups[0]["lr"],
    }


# ---------------------------------------------------------------------------------------------------
# A training run


class TrainingRun:
    """The task-independent part of a training run in ``config.train.out_dir``.

    It writes ``config.yaml``, an atomic ``checkpoint.pt`` after every epoch (model, optimizer, LR scheduler,
    gradient scaler, epoch, history, RNG states, config, device type and the task's ``checkpoint_extras``),
    ``metrics.jsonl`` (one record per epoch) and ``train.log``; continues exactly from the checkpoint; shows
    progress bars; stops on a NaN or infinite loss keeping the last good checkpoint; wraps the model for DDP.
    The last epoch's checkpoint is written before the final evaluation and rewritten, marked ``finished``,
    after its results: a run whose final evaluation failed resumes with that evaluation, not with training.

    A task subclasses it: ``setup`` builds ``model`` (on ``device``), ``loss_fn``, ``optimizer`` and
    ``scheduler``; ``train_loader``, ``evaluate``, ``write_results``, ``summary`` and ``result`` supply the
    data and the outputs. ``run_training`` creates and runs it.
    """

    #: When the LR scheduler steps: after every optimizer ``"step"``, or after every ``"epoch"``.
    scheduler_interval = "step"

    def __init__(self, config: Any, world: Distributed, device: torch.device, run_dir: Path):
        self.config = config
        self.world = world
        self.device = device
        self.run_dir = run_dir
        self.progress = config.train.progress and world.is_main
        self.dtype = amp_dtype(config.train.amp, device)
        self.channels_last = config.train.channels_last and device.type == "cuda"
        self.model: nn.Module
        self.loss_fn: nn.Module
        self.optimizer: torch.optim.Optimizer
        self.scheduler: torch.optim.lr_scheduler.LRScheduler
        self.tensorboard: TensorBoardWriter | None = None

    # The task's part ---------------------------------------------------------------------------

    def setup(self, resuming: bool) -> None:
        """Build the data, ``model`` (on ``device``), ``loss_fn``, ``optimizer`` and ``scheduler``. When
        ``resuming``, the weights are about to be replaced by the checkpoint's (skip pretrained ones)."""
        raise NotImplementedError

    def train_loader(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch`` (0-based): the same whether or not the run was resumed before it."""
        raise NotImplementedError

    def evaluate(self, final: bool) -> dict[str, Any]:
        """Evaluate the model (in full when ``final``) without touching the global random state; returns
        JSON-ready metrics for the epoch's record."""
        raise NotImplementedError

    def describe_evaluation(self) -> str:
        """The last evaluation in a few words, appended to the epoch's log line."""
        return ""

    def write_results(self) -> None:
        """Write the final evaluation's files to ``run_dir`` (rank 0, before the checkpoint is marked
        finished)."""

    def summary(self) -> str:
        """The final evaluation as text, logged at the end."""
        raise NotImplementedError

    def result(self) -> Any:
        """What ``run_training`` returns after the last epoch."""
        raise NotImplementedError

    def checkpoint_extras(self) -> dict[str, Any]:
        """Task-specific entries of every checkpoint."""
        return {}

    def plot_history(self, history: list[dict[str, Any]]) -> None:
        """Redraw the training curves from the epoch records (rank 0, after every epoch)."""

    def log_evaluation(self, writer: TensorBoardWriter, epoch: int) -> None:
        """Add the last evaluation's task-specific views (per-class scores, pictures) to TensorBoard at
        ``epoch`` (rank 0, ``train.tensorboard=true``); the record's numbers are written already."""

    # The loop ---------------------------------------------------------------------------------

    def run(self, state: dict[str, Any] | None) -> Any:
        """Train from scratch, or from the checkpoint ``state`` of an unfinished run, then evaluate (only
        evaluate when the checkpoint's training is complete)."""
        if self.config.train.tensorboard and self.world.is_main:
            self.tensorboard = TensorBoardWriter(self.run_dir / TENSORBOARD_DIR)
            self.tensorboard.text(
                "config", "\n".join(f"    {k}: {v}" for k, v in self._flat_config().items())
            )
        try:
            return self._run(state)
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()

    def _flat_config(self) -> dict[str, Any]:
        return flatten(config_to_dict(self.config))

    def _log_record(self, record: dict[str, Any], evaluation: dict[str, Any] | None) -> None:
        """The epoch's record (and its evaluation, with the task's views) in TensorBoard."""
        if self.tensorboard is None:
            return
        epoch = record["epoch"]
        self.tensorboard.scalars({k: v for k, v in record.items() if k != "epoch"}, epoch, "epoch")
        if evaluation is not None:
            self.tensorboard.scalars(evaluation, epoch, "eval")
            self.log_evaluation(self.tensorboard, epoch)
        self.tensorboard.flush()

    def _run(self, state: dict[str, Any] | None) -> Any:
        config = self.config
        seed_everything(config.train.seed)
        logger.info(
            "%s run %s on %s (%d process%s)",
            "resuming" if state else "starting",
            self.run_dir,
            self.device,
            self.world.world_size,
            "es" if self.world.world_size > 1 else "",
        )
        self.setup(resuming=state is not None)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)  # in place: the optimizer keeps its parameters
        scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        history: list[dict[str, Any]] = []
        start_epoch = 0
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            set_rng_states(state["rng"])
            history, start_epoch = list(state["history"]), state["epoch"]
            logger.info("resumed from %s after epoch %d", self.run_dir / CHECKPOINT_FILE, start_epoch)
            saved_device = state.get("device")
            if saved_device is not None and saved_device != self.device.type:
                logger.warning(
                    "the checkpoint was written on %s and the run continues on %s: mixed precision, "
                    "channels_last and kernels differ, so the result will not be bit-identical to an "
                    "uninterrupted run",
                    saved_device,
                    self.device.type,
                )

        network = self._distributed_model()
        epochs = progress_bar(
            range(start_epoch, config.train.epochs),
            progress=self.progress,
            desc="training",
            unit="epoch",
            initial=start_epoch,
            total=config.train.epochs,
        )
        for epoch in epochs:
            record = {"epoch": epoch + 1, **self._train_epoch(network, epoch, history, scaler)}
            if self.scheduler_interval == "epoch":
                self.scheduler.step()
            every = config.train.eval_every
            evaluated = bool(every and (epoch + 1) % every == 0) and epoch + 1 < config.train.epochs
            evaluation = self.evaluate(final=False) if evaluated else None  # the last: final evaluation
            record.update(evaluation or {})
            history.append(record)
            logger.info(
                "epoch %d/%d: loss %.4f, %.1f images/s%s",
                epoch + 1,
                config.train.epochs,
                record["loss"],
                record["images_per_s"],
                self.describe_evaluation() if evaluated else "",
            )
            if self.world.is_main:
                self._log_record(record, evaluation)
                self._save_checkpoint(epoch + 1, history, scaler, rng_states(), finished=False)
                with open(self.run_dir / METRICS_FILE, "a") as metrics:
                    metrics.write(json.dumps(record) + "\n")
                self.plot_history(history)
        return self._final_evaluation(history, scaler)

    def _final_evaluation(self, history: list[dict[str, Any]], scaler: torch.amp.GradScaler | None) -> Any:
        """Evaluate the trained model in full, write the results, and mark the last checkpoint finished (with
        the RNG states of the end of training, whatever the evaluation drew)."""
        rng = rng_states()
        evaluation = self.evaluate(final=True)
        history[-1].update(evaluation)
        logger.info("final evaluation after epoch %d%s", history[-1]["epoch"], self.describe_evaluation())
        if self.world.is_main:
            self.write_results()
            self._save_checkpoint(history[-1]["epoch"], history, scaler, rng, finished=True)
            write_metrics(self.run_dir / METRICS_FILE, history)
            self.plot_history(history)
            self._log_record(history[-1], evaluation)
            if self.tensorboard is not None:
                self.tensorboard.hyper_parameters(
                    self._flat_config(), {f"eval/{key}": value for key, value in evaluation.items()}
                )
        logger.info("final evaluation:\n%s", self.summary())
        return self.result()

    def _distributed_model(self) -> nn.Module:
        if self.world.world_size == 1:
            return self.model
        network = self.model
        if self.device.type == "cuda":
            network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(network, device_ids=device_ids)

    def _train_epoch(
        self,
        network: nn.Module,
        epoch: int,
        history: list[dict[str, Any]],
        scaler: torch.amp.GradScaler | None,
    ) -> dict[str, float]:
        loader = self.train_loader(epoch)
        on_step = None
        if self.tensorboard is not None:
            writer, first = self.tensorboard, epoch * len(loader)  # type: ignore[arg-type]

            def on_step(step: int, loss: float, lr: float) -> None:
                writer.step(first + step, loss, lr)

        try:
            return train_one_epoch(
                network,
                self.loss_fn,
                self.optimizer,
                loader,
                self.device,
                epoch=epoch + 1,
                scheduler=self.scheduler if self.scheduler_interval == "step" else None,
                scaler=scaler,
                dtype=self.dtype,
                channels_last=self.channels_last,
                progress=self.progress,
                on_step=on_step,
            )
        except NonFiniteLossError as error:
            kept = (
                f"the checkpoint of epoch {history[-1]['epoch']} is kept in {self.run_dir / CHECKPOINT_FILE}"
                if history
                else "no checkpoint was written"
            )
            raise NonFiniteLossError(
                f"{error}: training stopped; {kept}. Try a lower optim.lr (now {self.config.optim.lr}) or "
                f"check the data and loss settings."
            ) from None

    def _save_checkpoint(
        self,
        epoch: int,
        history: list[dict[str, Any]],
        scaler: torch.amp.GradScaler | None,
        rng: dict[str, Any],
        *,
        finished: bool,
    ) -> None:
        save_checkpoint(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch,
                "history": history,
                "rng": rng,
                "config": config_to_dict(self.config),
                "device": self.device.type,
                "finished": finished,  # the final evaluation's results were written
                **self.checkpoint_extras(),
            },
            self.run_dir / CHECKPOINT_FILE,
        )


def run_training(run_class: type[TrainingRun], config: Any, *, resume: bool = False) -> Any:
    """Train (or, with ``resume``, continue) the run of ``config`` in ``config.train.out_dir`` as the task's
    ``run_class``. Returns its ``result()``, or ``None`` when a resumed run had already finished (trained for
    ``train.epochs`` and written ``results.json``). A resumed run that finished training but not its final
    evaluation runs only that evaluation.

    Under ``torchrun`` every rank calls this; rank 0 writes the run directory.
    """
    joined_group = dist.is_available() and dist.is_initialized()
    world = init_distributed(config.train.device)
    handler = None
    try:
        device = resolve_device(config.train.device, world.local_rank)
        run_dir = Path(config.train.out_dir)
        checkpoint_path = run_dir / CHECKPOINT_FILE
        state = None
        if checkpoint_path.is_file():
            if not resume:
                raise RunExistsError(
                    f"{run_dir} already holds a checkpoint; pass --resume to continue it or choose another "
                    f"train.out_dir"
                )
            state = load_checkpoint(checkpoint_path)
            config = resume_config(state["config"], config)
        elif resume:
            logger.info("no checkpoint in %s: starting a new run", run_dir)
        if config.train.batch_size % world.world_size:
            raise ValueError(
                f"train.batch_size={config.train.batch_size} is not divisible by {world.world_size} processes"
            )
        if world.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            handler = add_log_file(run_dir / LOG_FILE)
            if state is not None:
                write_metrics(run_dir / METRICS_FILE, state["history"])
        if state is not None and state["epoch"] >= run_length(config):
            if run_finished(state, run_dir, run_length(config)):
                logger.info(
                    "%s finished %d epochs and its final evaluation already; nothing to do",
                    run_dir,
                    state["epoch"],
                )
                return None
            logger.info(
                "%s trained %d epochs but its final evaluation (%s) is missing: running only that evaluation",
                run_dir,
                state["epoch"],
                RESULTS_FILE,
            )
        if world.is_main:
            save_config(config, run_dir / CONFIG_FILE)
        return run_class(config, world, device, run_dir).run(state)
    finally:
        if handler is not None:
            logging.getLogger("segloss").removeHandler(handler)
            handler.close()
        if world.world_size > 1 and not joined_group:
            dist.destroy_process_group()


def run_length(config: Any) -> int:
    """How many steps a run of ``config`` checkpoints in all, the unit of a checkpoint's ``epoch``:
    ``train.epochs``, or what the config's own ``run_length()`` says (a continual run counts experiences).

    Args:
        config: a checked config of any task.

    Returns:
        The ``epoch`` of the checkpoint of a run that has trained in full.
    """
    own = getattr(config, "run_length", None)
    return own() if callable(own) else config.train.epochs


def run_finished(state: dict[str, Any], run_dir: Path, epochs: int) -> bool:
    """Whether the run in ``run_dir`` with the checkpoint ``state`` is finished: it trained ``epochs``
    epochs and wrote ``results.json`` after its final evaluation (``train --resume`` does nothing then).

    Args:
        state: the run's checkpoint (``load_checkpoint``).
        run_dir: the run directory.
        epochs: the epochs the run should train (``run_length(config)``: ``train.epochs`` for most tasks).

    Returns:
        True when resuming the run would have nothing to do.
    """
    # Checkpoints from before the "finished" flag were written after the final evaluation.
    return state["epoch"] >= epochs and state.get("finished", True) and (run_dir / RESULTS_FILE).is_file()
