"""The files of a run folder, and the one way they are written: atomically (a temporary file in the same
folder, flushed to disk, then renamed over the target), so a reader never sees half a file."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The files of a run folder, for every task.
CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"
BEST_CHECKPOINT_FILE = "best.pt"  # with train.keep_best
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
RESULTS_FILE = "results.json"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` to write to; when the block ends without an error the file is
    flushed to disk and renamed to ``path``. The temporary file never outlives the block.

    Args:
        path: the file to (re)place.

    Returns:
        A context manager yielding the temporary path (unique per process).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through ``atomic_path``."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` from a checkpoint's history (one JSON object per epoch)."""
    write_text_atomically(path, "".join(json.dumps(record) + "\n" for record in history))


def write_results_json(run_dir: Path, results: dict[str, Any]) -> None:
    """Write ``run_dir/results.json`` (docs/outputs.md)."""
    write_text_atomically(run_dir / RESULTS_FILE, json.dumps(results, indent=2))


def add_log_file(path: Path) -> logging.Handler:
    """Copy the ``segloss`` log records of level INFO and above to ``path``; returns the handler (remove
    and close it at the end of the run)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger("segloss").addHandler(handler)
    return handler
