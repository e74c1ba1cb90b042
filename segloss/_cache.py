"""Where segloss keeps what it computes once: compiled kernels and class counts."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SEGLOSS_CACHE"


def default_cache_dir() -> Path:
    """``$SEGLOSS_CACHE``, else ``$XDG_CACHE_HOME/segloss``, else ``~/.cache/segloss``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segloss"
