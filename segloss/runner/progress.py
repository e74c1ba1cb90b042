"""Progress bars that stay out of log files: every bar the project draws comes from ``progress_bar``, which
shows it only when asked for (``train.progress``, ``--no-progress``) and its stream is a terminal. Batch jobs,
pipes and ``nohup`` get the log lines alone (one per epoch from the run folder)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress_bar(iterable: Iterable[Any] | None = None, *, progress: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, disabled unless ``progress`` is true and the bar's stream (``file``,
    default stderr) is a terminal (tqdm's ``disable=None``).

    Args:
        iterable: what the bar wraps (or None with ``total=`` for a bar updated by hand).
        progress: False hides the bar everywhere.
        **kwargs: tqdm's other arguments (``desc``, ``unit``, ``total``, ``leave``, ``file`` ...).

    Returns:
        The bar (a plain iterator over ``iterable`` when disabled).
    """
    return tqdm(iterable, disable=None if progress else True, **kwargs)
