"""The compiled CPU backend: ``margin_cpu.c`` built with the system C compiler on first use and cached.

Calls go through ctypes, which releases the GIL, so a batch is split over ``torch.get_num_threads()``
Python threads. Set ``SEGLOSS_KERNEL=eager`` to bypass it, ``CC`` to choose the compiler.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .._cache import default_cache_dir
from .._checks import raise_bad_target

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("margin_cpu.c")
CFLAGS = ("-O3", "-std=c99", "-fPIC", "-shared", "-fno-math-errno")
MIN_SAMPLES_PER_THREAD = 16384
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_C_TYPE = {torch.float32: ctypes.c_float, torch.float64: ctypes.c_double}
_I64 = ctypes.c_int64
_PTR = ctypes.c_void_p
_INT = ctypes.c_int

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_load_error: str | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _forget_pool() -> None:
    """A forked child inherits the pool object but not its threads: start afresh there."""
    global _pool, _pool_size
    _pool, _pool_size = None, 0


os.register_at_fork(after_in_child=_forget_pool)


def cache_dir() -> Path:
    return default_cache_dir() / "kernels"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _build(compiler: str) -> Path:
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join((compiler, *CFLAGS, platform.machine())).encode()).hexdigest()[:16]
    target = cache_dir() / f"margin_cpu-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run(
            [compiler, *CFLAGS, SOURCE.name, "-o", tmp],
            cwd=SOURCE.parent,  # the source includes itself by its own name
            check=True,
            capture_output=True,
            timeout=120,
        )
        os.replace(tmp, target)  # atomic: concurrent builders (DDP ranks) never see a half-written file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _declare(lib: ctypes.CDLL) -> None:
    for suffix in _SUFFIX.values():
        forward = getattr(lib, f"margin_forward_{suffix}")
        forward.restype = _I64
        forward.argtypes = [_PTR, _I64, _I64, _I64, _I64, _I64, _PTR, _I64, _PTR, _PTR, _INT, _INT, _I64,
                            _I64, _PTR, _PTR, _PTR]  # fmt: skip
        backward = getattr(lib, f"margin_backward_{suffix}")
        backward.restype = None
        backward.argtypes = [_PTR, _I64, _I64, _I64, _I64, _I64, _PTR, _I64, _PTR, _PTR, _INT, _INT, _I64,
                             _I64, _PTR, _I64, _PTR]  # fmt: skip


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, building it if needed; ``None`` (logged once) when it cannot be built."""
    global _library, _load_error
    if _library is not None or _load_error is not None:
        return _library
    with _lock:
        if _library is None and _load_error is None:
            compiler = _compiler()
            try:
                if compiler is None:
                    raise RuntimeError("no C compiler found (set CC)")
                lib = ctypes.CDLL(str(_build(compiler)))
                _declare(lib)
                _library = lib
            except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                detail = getattr(error, "stderr", b"") or b""
                _load_error = f"{error} {detail.decode(errors='replace')}".strip()
                logger.warning(
                    "segloss: compiled CPU kernel unavailable, using the eager backend (%s)", _load_error
                )
    return _library


def available() -> bool:
    return library() is not None


def _kernel(direction: str, dtype: torch.dtype):
    """The loaded ``margin_{direction}`` kernel for ``dtype`` (float32 or float64)."""
    return getattr(library(), f"margin_{direction}_{_SUFFIX[dtype]}")


def _ranges(total: int) -> list[tuple[int, int]]:
    parts = max(1, min(torch.get_num_threads(), total // MIN_SAMPLES_PER_THREAD))
    bounds = [total * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _map(function, total: int) -> list:
    """``function(start, stop)`` over ``[0, total)``, split across threads when large enough; results in
    order."""
    global _pool, _pool_size
    ranges = _ranges(total)
    if len(ranges) == 1:
        return [function(*ranges[0])]
    with _lock:
        if _pool is None or _pool_size < len(ranges):
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix="segloss")
            _pool_size = len(ranges)
        pool = _pool
    return list(pool.map(lambda bounds: function(*bounds), ranges))


def _arguments(x, target, margins, class_weight, hard: bool, ignore_index: int, on_target: bool) -> tuple:
    """The kernels' leading arguments: logits, their (C, S, sn, sc, ss) layout, target, margins, class
    weights (or NULL), flags."""
    _, num_classes, size = x.shape
    cw_ptr = None if class_weight is None else class_weight.data_ptr()
    return (x.data_ptr(), num_classes, size, *x.stride(), target.data_ptr(), ignore_index, margins.data_ptr(),
            cw_ptr, int(hard), int(on_target))  # fmt: skip


def margin_forward(x, target, margins, hard: bool, ignore_index: int, need_losses: bool, *,
                   on_target: bool = False, class_weight: torch.Tensor | None = None):  # fmt: skip
    """Per-sample losses ``(N, S)`` (or ``None``), their sum (a float) and the count a mean divides by (an
    int): the samples with a loss above zero for HEM, the valid samples for MM. With ``class_weight``
    (``(C,)``, ``x``'s dtype) each sample's loss and its share of the count are times its class's weight (the
    count is a float then). Plain numbers, not tensors: at small sizes every tensor created costs as much
    as the kernel."""
    kernel = _kernel("forward", x.dtype)
    losses = torch.empty(target.shape, dtype=x.dtype) if need_losses else None
    head = _arguments(x, target, margins, class_weight, hard, ignore_index, on_target)
    l_ptr = losses.data_ptr() if need_losses else None

    def run(start: int, stop: int) -> tuple[float, float]:
        total, count = ctypes.c_double(), ctypes.c_double()
        bad = kernel(*head, start, stop, l_ptr, ctypes.byref(total), ctypes.byref(count))
        if bad:
            raise_bad_target(int(target.view(-1)[bad - 1]), x.shape[1], ignore_index)
        return total.value, count.value

    results = _map(run, target.numel())
    count = sum(r[1] for r in results)
    return losses, sum(r[0] for r in results), count if class_weight is not None else round(count)


def margin_backward(x, target, margins, hard: bool, ignore_index: int, weight: torch.Tensor | float, *,
                    on_target: bool = False, class_weight: torch.Tensor | None = None):  # fmt: skip
    """Gradient of ``sum(weight * losses)`` w.r.t. ``x`` (the losses times their class weights with
    ``class_weight``); ``weight`` is ``(N, S)``, a single value or a float."""
    kernel = _kernel("backward", x.dtype)
    grad = torch.empty_like(x)
    if isinstance(weight, float):
        weight_value = _C_TYPE[x.dtype](weight)
        w_ptr, step = ctypes.addressof(weight_value), 0
    else:
        weight = weight.to(x.dtype).contiguous()
        w_ptr, step = weight.data_ptr(), 0 if weight.numel() == 1 else 1
    head = _arguments(x, target, margins, class_weight, hard, ignore_index, on_target)
    g_ptr = grad.data_ptr()
    _map(lambda start, stop: kernel(*head, start, stop, w_ptr, step, g_ptr), target.numel())
    return grad
