"""Where the runs of a sweep train: here, ``jobs`` at a time in subprocesses (``run_local``), or as one
SLURM array job through submitit (``submit``); both execute a ``TrainJob``, which resumes a killed run."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tasks
from .config import load_config
from .logs import configure_logging

logger = logging.getLogger(__name__)

SWEEP_LOG = "sweep.log"
SUBMITIT_FOLDER = ".submitit"


@dataclass(frozen=True)
class Run:
    """One run of a sweep.

    Attributes:
        name: the run folder's name, made of the varying keys.
        varying: ``(key, value text)`` of every swept key.
        overrides: every override of the run (fixed and varying ones, ``train.out_dir`` included).
        config: the run's checked config.
    """

    name: str
    varying: tuple[tuple[str, str], ...]
    overrides: tuple[str, ...]
    config: Any = field(compare=False, repr=False)

    @property
    def run_dir(self) -> Path:
        """The run folder (``train.out_dir``)."""
        return Path(self.config.train.out_dir)


def train_config(config: Any) -> Any:
    """Train (resuming) the run of ``config`` with its task's trainer; ``None`` when it had finished."""
    return tasks.train_function(config.task)(config, resume=True)


class TrainJob:
    """One run as a picklable callable: what a local subprocess and a submitit job execute.

    ``checkpoint`` makes it requeueable under submitit: a preempted or timed-out job is submitted again
    and, started with resume semantics, continues from the run's last checkpoint.

    Args:
        config_path: the base config.
        overrides: the run's overrides (``train.out_dir`` included).
        threads: CPU threads for torch (``None``: torch's default).
    """

    def __init__(self, config_path: str | os.PathLike, overrides: Sequence[str], threads: int | None = None):
        self.config_path = str(config_path)
        self.overrides = list(overrides)
        self.threads = threads

    def __call__(self) -> str:
        """Train the run; returns its folder."""
        configure_logging()
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        config = load_config(self.config_path, self.overrides)
        train_config(config)
        return config.train.out_dir

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's requeue hook: the same call again (the run resumes from its checkpoint).

        Returns:
            A ``submitit.helpers.DelayedSubmission`` of this job.
        """
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def available_cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPUs local runs share out (``CUDA_VISIBLE_DEVICES``, else every GPU torch sees)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu for gpu in listed.split(",") if gpu.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def run_local(config_path: Path, runs: Sequence[Run], jobs: int) -> int:
    """Train ``runs`` here, ``jobs`` at a time, each in a subprocess with ``cores // jobs`` threads (and a
    GPU of its own while there are enough), its output appended to ``RUN/sweep.log``.

    Args:
        config_path: the base config.
        runs: the runs to train.
        jobs: how many run at once.

    Returns:
        The number of runs that failed.
    """
    threads = max(1, available_cores() // jobs)
    gpus = visible_gpus()
    pending = list(runs)
    running: dict[int, tuple[Run, subprocess.Popen, float]] = {}
    finished = failed = 0
    logger.info("training %d runs, %d at a time with %d threads each", len(runs), jobs, threads)
    try:
        while pending or running:
            for slot in range(jobs):
                if slot not in running and pending:
                    run = pending.pop(0)
                    running[slot] = (run, _start(config_path, run, threads, gpus, slot), time.monotonic())
            time.sleep(0.2)
            for slot, (run, process, start) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[slot]
                finished += 1
                seconds = time.monotonic() - start
                log = run.run_dir / SWEEP_LOG
                if process.returncode == 0:
                    logger.info("[%d/%d] finished %s in %.0f s", finished, len(runs), run.name, seconds)
                else:
                    failed += 1
                    logger.error(
                        "[%d/%d] FAILED %s (exit %d after %.0f s): see %s",
                        finished,
                        len(runs),
                        run.name,
                        process.returncode,
                        seconds,
                        log,
                    )
    finally:
        for _, process, _ in running.values():  # interrupted: stop the runs (their checkpoints stay)
            process.terminate()
            process.wait()
    return failed


def _start(config_path: Path, run: Run, threads: int, gpus: Sequence[str], slot: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep: other runs share the cores
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    command = [
        sys.executable,
        "-m",
        "segloss.runner.sweep",
        "--worker",
        "--config",
        str(config_path),
        *run.overrides,
    ]
    run.run_dir.mkdir(parents=True, exist_ok=True)
    with open(run.run_dir / SWEEP_LOG, "a") as log:
        log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n")
        log.flush()
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each run of a SLURM array job.

    Attributes:
        partition: the SLURM partition (``None``: the cluster's default).
        time_min: the time limit of one job in minutes (a requeued job gets it again).
        gpus_per_run: GPUs per run; with more than one, the run is one DDP group of a task per GPU.
        cpus_per_run: CPU cores per run (shared by its tasks).
        array_parallelism: how many runs SLURM may run at once.
        mem_gb: memory per run in GB (``None``: the partition's default).
    """

    partition: str | None = None
    time_min: int = 24 * 60
    gpus_per_run: int = 1
    cpus_per_run: int = 8
    array_parallelism: int = 32
    mem_gb: float | None = None


def submit(
    config_path: Path,
    runs: Sequence[Run],
    root: Path,
    options: SlurmOptions,
    *,
    cluster: str = "slurm",
    wait: bool = False,
) -> int:
    """Submit ``runs`` as one array job through submitit (``cluster="local"`` runs it on this machine).

    Args:
        config_path: the base config.
        runs: the runs to train.
        root: the sweep folder; submitit's files go to ``ROOT/.submitit``.
        options: resources per run.
        cluster: submitit's executor (``slurm``, or ``local`` for a check without a cluster).
        wait: wait for every job and report each as it ends.

    Returns:
        The number of runs that failed (0 when not waiting).
    """
    import submitit

    tasks = max(1, options.gpus_per_run)
    executor = submitit.AutoExecutor(folder=root / SUBMITIT_FOLDER, cluster=cluster)
    executor.update_parameters(
        name=f"sweep-{root.name}",
        timeout_min=options.time_min,
        nodes=1,
        tasks_per_node=tasks,
        gpus_per_node=options.gpus_per_run,
        cpus_per_task=max(1, options.cpus_per_run // tasks),
        mem_gb=options.mem_gb,
        slurm_partition=options.partition,
        slurm_array_parallelism=options.array_parallelism,
    )
    threads = max(1, options.cpus_per_run // tasks)
    with executor.batch():
        submitted = [executor.submit(TrainJob(config_path, run.overrides, threads)) for run in runs]
    by_job = {job.job_id: run for job, run in zip(submitted, runs, strict=True)}
    for job in submitted:
        logger.info("submitted %s as job %s", by_job[job.job_id].name, job.job_id)
    if not wait:
        logger.info("%d runs submitted; logs in %s", len(runs), root / SUBMITIT_FOLDER)
        return 0
    failed = 0
    for count, job in enumerate(submitit.helpers.as_completed(submitted, poll_frequency=1), start=1):
        name = by_job[job.job_id].name
        try:
            job.result()
            logger.info("[%d/%d] finished %s (job %s)", count, len(runs), name, job.job_id)
        except Exception as error:  # submitit re-raises the job's error wrapped in its own types
            failed += 1
            logger.error("[%d/%d] FAILED %s (job %s): %s", count, len(runs), name, job.job_id, error)
    return failed


def parse_minutes(text: str) -> int:
    """A SLURM time limit in whole minutes.

    Args:
        text: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM`` or ``D-HH:MM:SS``.

    Returns:
        The minutes, seconds rounded up.

    Raises:
        ValueError: ``text`` is none of those forms.
    """
    days, dash, clock = text.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    if len(parts) > 3 or min(parts) < 0:
        raise ValueError(text)
    if dash:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:  # HH:MM:SS
        hours, minutes, seconds = parts
    else:  # MM[:SS]
        hours, minutes, seconds = 0, parts[0], parts[1] if len(parts) == 2 else 0
    return 24 * 60 * int(days or 0) + 60 * hours + minutes + math.ceil(seconds / 60)
