"""The folder of one training run, as a context manager every task's ``train`` opens: ``RunFolder``.

It owns what is the same for every task: the device and the ``torchrun`` process group, the refusal to
overwrite a run, the resumed config and checkpoint, ``config.yaml``, ``train.log``, atomic
``checkpoint.pt`` after every epoch, ``metrics.jsonl``, TensorBoard, and the final checkpoint marked
``finished`` after the results are written. Each task writes its loop out in its ``train`` function,
inside ``with RunFolder(config, resume=resume) as run:`` (docs/extending.md shows the shape).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch.distributed as dist

from .checkpoint import load_checkpoint, save_checkpoint
from .config import config_to_dict, flatten, resume_config, save_config
from .distributed import amp_dtype, distributed_initialized, init_distributed, resolve_device
from .environment import run_environment
from .files import (
    BEST_CHECKPOINT_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOG_FILE,
    METRICS_FILE,
    RESULTS_FILE,
    add_log_file,
    write_metrics,
    write_text_atomically,
)
from .loop import NonFiniteLossError
from .progress import progress_bar
from .randomness import rng_states, set_rng_states
from .tensorboard import TENSORBOARD_DIR, TensorBoardWriter

logger = logging.getLogger(__name__)

__all__ = ["RunExistsError", "RunFolder", "run_finished", "run_length"]


class RunExistsError(RuntimeError):
    """The run directory already holds a checkpoint and ``resume`` was not asked for."""


class RunFolder:
    """The run of ``config`` in ``config.train.out_dir``: open it with ``with``.

    On entry it joins the process group (``torchrun``/``srun``), picks the device, loads the checkpoint of a
    resumed run (``RunExistsError`` when there is one and ``resume`` is false), writes ``config.yaml`` and
    copies the log to ``train.log`` (rank 0). ``finished`` is true when a resumed run has nothing left to
    do. On exit it closes the log file, TensorBoard and a process group it started, removes a run folder it
    made when the run failed before its first checkpoint, and turns a ``NonFiniteLossError`` into one
    that names the checkpoint kept and what to try.

    Args:
        config: a checked config of any task (``train.out_dir``, ``train.device``, ``train.epochs``, ...).
        resume: continue the run from its checkpoint.
        unit: what a checkpoint counts (``epoch``; continual learning: ``experience``), for messages.
        one_process: refuse ``torchrun`` with several processes, naming the task (``classification``).

    Attributes:
        config: the run's config (a resumed run's, with the overrides that may change on resume).
        world, device, dir: the process group, the device, the run folder.
        state: the checkpoint of a resumed run, else ``None``.
        history: one record per finished epoch (restored on resume).
        environments: where the run trained (``segloss.runner.environment.run_environment``): one entry, or
            one more for each resume in a different environment; ``results.json`` gets them as
            ``environment``.
        dtype: the autocast dtype of ``train.amp``; ``channels_last``, ``progress``: the train settings as
            they apply on this device and rank.
        tensorboard: the writer of ``train.tensorboard`` (rank 0), else ``None``.
    """

    def __init__(self, config: Any, *, resume: bool = False, unit: str = "epoch", one_process: str = ""):
        self.config = config
        self.resume = resume
        self.unit = unit
        self.one_process = one_process
        self.state: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.environments: list[dict[str, Any]] = []
        self.finished = False
        self.tensorboard: TensorBoardWriter | None = None
        self._log_handler: logging.Handler | None = None
        self._rng: dict[str, Any] | None = None
        self._updates = 0  # optimizer updates so far: TensorBoard's step axis
        self._created = False  # this process made the run folder (removed again if the start fails)

    # Opening and closing -------------------------------------------------------------------------

    def __enter__(self) -> RunFolder:
        self._joined_group = distributed_initialized()
        self.world = init_distributed(self.config.train.device)
        try:
            self._open()
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, traceback: object
    ) -> None:
        self._close()
        if exc_type is not None and self._created and not (self.dir / CHECKPOINT_FILE).exists():
            shutil.rmtree(self.dir, ignore_errors=True)  # a failed start leaves no half-made run folder
            logger.info("removed %s: the run failed before its first checkpoint", self.dir)
        if isinstance(error, NonFiniteLossError):  # the same advice for every task's loop
            kept = (
                f"the checkpoint of {self.unit} {len(self.history)} is kept in {self.dir / CHECKPOINT_FILE}"
                if self.history
                else "no checkpoint was written"
            )
            raise NonFiniteLossError(
                f"{error}: training stopped; {kept}. Try a lower optim.lr (now {self.config.optim.lr}) or "
                f"check the data and loss settings."
            ) from None

    def _open(self) -> None:
        config, world = self.config, self.world
        if self.one_process and world.world_size > 1:
            raise ValueError(f"{self.one_process} runs use one process: start segloss train without torchrun")
        self.device = resolve_device(config.train.device, world.local_rank)
        self.dir = Path(config.train.out_dir)
        checkpoint = self.dir / CHECKPOINT_FILE
        if checkpoint.is_file():
            if not self.resume:
                raise RunExistsError(
                    f"{self.dir} already holds a checkpoint; pass --resume to continue it or choose another "
                    f"train.out_dir"
                )
            self.state = load_checkpoint(checkpoint)
            config = self.config = resume_config(self.state["config"], config)
            self.history = list(self.state["history"])
            self.environments = list(self.state.get("environments", []))
            self._updates = sum(record.get("steps", 0) for record in self.history)
        elif self.resume:
            logger.info("no checkpoint in %s: starting a new run", self.dir)
        if config.train.batch_size % world.world_size:
            raise ValueError(
                f"train.batch_size={config.train.batch_size} is not divisible by {world.world_size} processes"
            )
        self.dtype = amp_dtype(config.train.amp, self.device)
        self.channels_last = config.train.channels_last and self.device.type in ("cuda", "cpu")
        environment = run_environment(self.device, self.dtype, self.channels_last)
        if not self.environments or self.environments[-1] != environment:
            self.environments.append(environment)
        self.progress = config.train.progress and world.is_main
        if world.is_main:
            self._created = not self.dir.exists()
            self.dir.mkdir(parents=True, exist_ok=True)
            self._log_handler = add_log_file(self.dir / LOG_FILE)
            if self.state is not None:
                write_metrics(self.dir / METRICS_FILE, self.history)
        length = run_length(config)
        if self.state is not None and self.state["epoch"] >= length:
            self.finished = run_finished(self.state, self.dir, length)
            if self.finished:
                logger.info(
                    "%s finished %d %ss and its final evaluation already; nothing to do",
                    self.dir,
                    self.state["epoch"],
                    self.unit,
                )
                return
            logger.info(
                "%s trained %d %ss but its final evaluation (%s) is missing: running only that evaluation",
                self.dir,
                self.state["epoch"],
                self.unit,
                RESULTS_FILE,
            )
        if world.is_main:
            save_config(config, self.dir / CONFIG_FILE)
            if config.train.tensorboard:
                self.tensorboard = TensorBoardWriter(self.dir / TENSORBOARD_DIR)
                self.tensorboard.text(
                    "config", "\n".join(f"    {k}: {v}" for k, v in self._flat_config().items())
                )
        logger.info(
            "%s run %s on %s (%d process%s)",
            "resuming" if self.state else "starting",
            self.dir,
            self.device,
            world.world_size,
            "es" if world.world_size > 1 else "",
        )

    def _close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        if self._log_handler is not None:
            logging.getLogger("segloss").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        if self.world.world_size > 1 and not self._joined_group:
            dist.destroy_process_group()

    # Before the loop ------------------------------------------------------------------------------

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder (rank 0)."""
        return self.world.is_main

    @property
    def start_epoch(self) -> int:
        """The epochs (experiences) the checkpoint had finished: 0 for a new run."""
        return len(self.history)

    def restore(self, **objects: Any) -> None:
        """Load ``objects`` (``model=...``, ``step=...``: anything with ``load_state_dict``) and the RNG
        states from the checkpoint of a resumed run; nothing for a new run."""
        if self.state is None:
            return
        for name, target in objects.items():
            target.load_state_dict(self.state[name])
        set_rng_states(self.state["rng"])
        self._rng = self.state["rng"]
        logger.info("resumed from %s after %s %d", self.dir / CHECKPOINT_FILE, self.unit, self.start_epoch)
        saved_device = self.state.get("device")
        if saved_device is not None and saved_device != self.device.type:
            logger.warning(
                "the checkpoint was written on %s and the run continues on %s: mixed precision, "
                "channels_last and kernels differ, so the result will not be bit-identical to an "
                "uninterrupted run",
                saved_device,
                self.device.type,
            )

    # The loop -------------------------------------------------------------------------------------

    def epochs(self) -> Iterator[int]:
        """The epochs (0-based) left to train, with a progress bar."""
        total = run_length(self.config)
        yield from progress_bar(
            range(self.start_epoch, total),
            progress=self.progress,
            desc="training",
            unit=self.unit,
            initial=self.start_epoch,
            total=total,
        )

    def evaluate_now(self, epoch: int) -> bool:
        """Whether ``train.eval_every`` asks for an evaluation after ``epoch`` (0-based); never after the
        last, which the final evaluation follows."""
        every = self.config.train.eval_every
        return bool(every and (epoch + 1) % every == 0) and epoch + 1 < self.config.train.epochs

    def loop_settings(self, desc: str = "") -> dict[str, Any]:
        """The keyword arguments of ``segloss.runner.loop.train_one_epoch`` that come from the run: device,
        precision, memory format, progress bar, ``train.log_every``, and ``on_log``, which writes the loss of
        every read to TensorBoard (``train.tensorboard``) on a step axis that runs on over epochs and
        resumes. ``desc`` names the pass (default: ``epoch N``)."""
        on_log = None
        if self.tensorboard is not None:
            writer, first = self.tensorboard, self._updates

            def on_log(update: int, loss: float, lr: float) -> None:
                self._updates = first + update + 1
                writer.step(first + update, loss, lr)

        return {
            "device": self.device,
            "desc": desc or f"{self.unit} {len(self.history) + 1}",
            "dtype": self.dtype,
            "channels_last": self.channels_last,
            "progress": self.progress,
            "log_every": self.config.train.log_every,
            "on_log": on_log,
        }

    def end_epoch(
        self,
        record: dict[str, Any],
        checkpoint: dict[str, Any],
        evaluation: dict[str, Any] | None = None,
        note: str = "",
    ) -> None:
        """Finish an epoch: log ``record`` (``loss`` and ``images_per_s``, then ``note``) with the
        ``evaluation`` of this epoch if there was one, append them to the history and ``metrics.jsonl``, and
        write the checkpoint (rank 0): the task's ``checkpoint`` entries (``model``, ``step``, ...) with the
        epoch, history, RNG states and config."""
        self.history.append({**record, **(evaluation or {})})
        epoch, total = len(self.history), run_length(self.config)
        logger.info(
            "%s %d/%d: loss %.4f, %.1f images/s%s",
            self.unit,
            epoch,
            total,
            record["loss"],
            record["images_per_s"],
            note,
        )
        self._rng = rng_states()
        if not self.is_main:
            return
        self._log_to_tensorboard(self.history[-1], evaluation)
        self._save(checkpoint, finished=False)
        self._keep_if_best(checkpoint, evaluation)
        with open(self.dir / METRICS_FILE, "a") as metrics:
            metrics.write(json.dumps(self.history[-1]) + "\n")

    def finish(
        self, checkpoint: dict[str, Any], summary: str, evaluation: dict[str, Any], note: str = ""
    ) -> None:
        """After the final evaluation and the task's results files: add ``evaluation`` to the last record,
        log it (with ``note``) and ``summary``, and rewrite the checkpoint marked ``finished`` (with the RNG
        states of the end of training, whatever the evaluation drew); ``--resume`` has nothing left to do
        after this."""
        self.history[-1].update(evaluation)
        logger.info("final evaluation after %s %d%s", self.unit, len(self.history), note)
        if self.is_main:
            stamp_environment(self.dir / RESULTS_FILE, self.environments)
            self._save(checkpoint, finished=True)
            self._keep_if_best(checkpoint, evaluation)
            write_metrics(self.dir / METRICS_FILE, self.history)
            self._log_to_tensorboard(self.history[-1], evaluation)
            if self.tensorboard is not None:
                self.tensorboard.hyper_parameters(
                    self._flat_config(), {f"eval/{key}": value for key, value in evaluation.items()}
                )
        logger.info("final evaluation:\n%s", summary)

    # Internals ------------------------------------------------------------------------------------

    def _flat_config(self) -> dict[str, Any]:
        return flatten(config_to_dict(self.config))

    def _log_to_tensorboard(self, record: dict[str, Any], evaluation: dict[str, Any] | None) -> None:
        if self.tensorboard is None:
            return
        epoch = len(self.history)
        self.tensorboard.scalars({k: v for k, v in record.items() if k != "epoch"}, epoch, "epoch")
        if evaluation is not None:
            self.tensorboard.scalars(evaluation, epoch, "eval")
        self.tensorboard.flush()

    def _keep_if_best(self, entries: dict[str, Any], evaluation: dict[str, Any] | None) -> None:
        """With ``train.keep_best=METRIC``: write ``best.pt`` when this evaluation's METRIC beats every
        earlier one of the run (its history, so a resumed run compares with what it had)."""
        metric = self.config.train.keep_best
        value = (evaluation or {}).get(metric) if metric else None
        if value is None:
            return
        earlier = [r[metric] for r in self.history[:-1] if r.get(metric) is not None]
        if earlier and value <= max(earlier):
            return
        self._save(entries, finished=False, path=self.dir / BEST_CHECKPOINT_FILE)
        logger.info("best %s so far (%.4f after %s %d): %s", metric, value, self.unit, len(self.history),
                    self.dir / BEST_CHECKPOINT_FILE)  # fmt: skip

    def _save(self, entries: dict[str, Any], *, finished: bool, path: Path | None = None) -> None:
        save_checkpoint(
            {
                **entries,
                "epoch": len(self.history),
                "history": self.history,
                "rng": self._rng if self._rng is not None else rng_states(),
                "config": config_to_dict(self.config),
                "device": self.device.type,
                "environments": self.environments,
                "finished": finished,  # the final evaluation's results were written
            },
            path or self.dir / CHECKPOINT_FILE,
        )


def stamp_environment(results_file: Path, environments: list[dict[str, Any]]) -> None:
    """Add ``environment`` (the environments a run trained in) to the task's ``results_file``."""
    results = json.loads(results_file.read_text())
    write_text_atomically(results_file, json.dumps({**results, "environment": environments}, indent=2))


def run_length(config: Any) -> int:
    """The ``epoch`` of the checkpoint of a run of ``config`` (any task) that has trained in full:
    ``train.epochs``, or what the config's own ``run_length()`` says (a continual run counts experiences)."""
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
