"""Logging of the command line, set up once per process (``segloss`` and the sweep workers)."""

from __future__ import annotations

import logging
import os

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The errors a command reports in one line (exit status 1) instead of a traceback.
EXPECTED_ERRORS = (OSError, ValueError, RuntimeError)


def configure_logging() -> None:
    """INFO to stderr, WARNING only on the ranks other than 0 of a ``torchrun`` or ``srun`` job; does
    nothing when the process has set up logging already."""
    rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))
    logging.basicConfig(level=logging.INFO if rank == "0" else logging.WARNING, format=LOG_FORMAT)
