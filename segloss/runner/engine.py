"""A training run in its run folder: ``TrainingRun`` (checkpoints, resume, the epoch loop, the final
evaluation) and ``run_training``. A task subclasses ``TrainingRun`` (``segloss.segmentation.training``,
``segloss.classification.training``); the loop of one epoch is ``segloss.runner.loop``, devices and DDP
``segloss.runner.distributed``, the update ``segloss.runner.optim``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .config import config_to_dict, flatten, resume_config, save_config
from .distributed import Distributed, amp_dtype, init_distributed, resolve_device
from .files import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOG_FILE,
    METRICS_FILE,
    RESULTS_FILE,
    add_log_file,
    write_metrics,
)
from .loop import NonFiniteLossError, train_one_epoch
from .optim import TrainingStep
from .progress import progress_bar
from .randomness import rng_states, seed_everything, set_rng_states
from .tensorboard import TENSORBOARD_DIR, TensorBoardWriter

logger = logging.getLogger(__name__)


class RunExistsError(RuntimeError):
    """The run directory already holds a checkpoint and ``resume`` was not asked for."""


# ---------------------------------------------------------------------------------------------------
# A training run


class TrainingRun:
    """The task-independent part of a training run in ``config.train.out_dir``.

    It writes ``config.yaml``, an atomic ``checkpoint.pt`` after every epoch (model, the training step's
    optimizer, schedule and gradient scaler, epoch, history, RNG states, config, device type and the task's
    ``checkpoint_extras``), ``metrics.jsonl`` (one record per epoch) and ``train.log``; continues exactly
    from the checkpoint; shows progress bars; stops on a NaN or infinite loss keeping the last good
    checkpoint; wraps the model for DDP.
    The last epoch's checkpoint is written before the final evaluation and rewritten, marked ``finished``,
    after its results: a run whose final evaluation failed resumes with that evaluation, not with training.

    A task subclasses it: ``setup`` builds ``model`` (on ``device``), ``loss_fn`` and ``step`` (a
    ``TrainingStep``: ``self.training_step(steps_per_epoch)``); ``train_loader``, ``evaluate``,
    ``write_results``, ``summary`` and ``result`` supply the data and the outputs. ``run_training`` creates
    and runs it.
    """

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
        self.step: TrainingStep
        self.tensorboard: TensorBoardWriter | None = None

    # The task's part ---------------------------------------------------------------------------

    def setup(self, resuming: bool) -> None:
        """Build the data, ``model`` (on ``device``), ``loss_fn`` and ``step``. When ``resuming``, the weights
        are about to be replaced by the checkpoint's (skip pretrained ones)."""
        raise NotImplementedError

    def training_step(self, steps_per_epoch: int) -> TrainingStep:
        """The ``TrainingStep`` of the config for the model's trainable parameters."""
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        fp16 = self.dtype == torch.float16
        return TrainingStep.from_config(parameters, self.config, steps_per_epoch, fp16=fp16)

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
        history: list[dict[str, Any]] = []
        start_epoch = 0
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.step.load_state_dict(state["step"])
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
            record = {"epoch": epoch + 1, **self._train_epoch(network, epoch, history)}
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
                self._save_checkpoint(epoch + 1, history, rng_states(), finished=False)
                with open(self.run_dir / METRICS_FILE, "a") as metrics:
                    metrics.write(json.dumps(record) + "\n")
                self.plot_history(history)
        return self._final_evaluation(history)

    def _final_evaluation(self, history: list[dict[str, Any]]) -> Any:
        """Evaluate the trained model in full, write the results, and mark the last checkpoint finished (with
        the RNG states of the end of training, whatever the evaluation drew)."""
        rng = rng_states()
        evaluation = self.evaluate(final=True)
        history[-1].update(evaluation)
        logger.info("final evaluation after epoch %d%s", history[-1]["epoch"], self.describe_evaluation())
        if self.world.is_main:
            self.write_results()
            self._save_checkpoint(history[-1]["epoch"], history, rng, finished=True)
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
        """The model as trained: DDP-wrapped under ``torchrun``, compiled with ``train.compile``."""
        network = self.model
        if self.world.world_size > 1:
            if self.device.type == "cuda":
                network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            network = nn.parallel.DistributedDataParallel(network, device_ids=device_ids)
        if self.config.train.compile:
            logger.info("training through torch.compile of the model")
            network = torch.compile(network)
        return network

    def _train_epoch(self, network: nn.Module, epoch: int, history: list[dict[str, Any]]) -> dict[str, float]:
        loader = self.train_loader(epoch)
        on_log = None
        if self.tensorboard is not None:
            writer, first = self.tensorboard, epoch * len(loader)  # type: ignore[arg-type]

            def on_log(update: int, loss: float, lr: float) -> None:
                writer.step(first + update, loss, lr)

        try:
            return train_one_epoch(
                network,
                self.loss_fn,
                self.step,
                loader,
                self.device,
                epoch=epoch + 1,
                dtype=self.dtype,
                channels_last=self.channels_last,
                progress=self.progress,
                log_every=self.config.train.log_every,
                on_log=on_log,
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
        rng: dict[str, Any],
        *,
        finished: bool,
    ) -> None:
        save_checkpoint(
            {
                "model": self.model.state_dict(),
                "step": self.step.state_dict(),
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
    return state["epoch"] >= epochs and state["finished"] and (run_dir / RESULTS_FILE).is_file()
