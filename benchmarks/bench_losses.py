"""Forward+backward time and peak extra memory of every segloss loss against F.cross_entropy.

All losses run on the same tensors in one process, interleaved round by round; the table shows medians
and ratios to ``torch.nn.functional.cross_entropy``. Every loss is warmed up first; each measurement then
runs at least ``--min-seconds`` and, in all rounds together, at least ``--min-calls`` calls (capped at
``--max-seconds`` per measurement), so that the small shapes, where per-call overhead dominates, are
timed over thousands of calls. The ``(torch.compile)`` rows compile the loss with ``fullgraph=True``
(the fused losses run as the custom ops ``torch.ops.segloss.margin_forward``/``margin_backward``) and
call ``backward()`` on its result. Peak extra memory is the growth of the resident set (CPU, Linux:
VmHWM after resetting it through /proc/self/clear_refs) or of CUDA's peak allocation, over what the
inputs already hold; the gradient of the logits is included for every loss.

    python benchmarks/bench_losses.py                       # the three shapes of the issue, CPU
    python benchmarks/bench_losses.py --shapes 4x19x512x1024 --repeats 9
    python benchmarks/bench_losses.py --device cuda
    python benchmarks/bench_losses.py --shapes cifar100 --no-compile
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F

import segloss
from segloss._kernels import cpu as cpu_kernel

SHAPES = {
    "cityscapes": "4x19x512x1024",
    "camvid": "12x12x360x480",  # CamVid's batch of 12; its 11 classes and void
    "cifar100": "128x100",
}
IGNORE = 255


@contextlib.contextmanager
def kernel_backend(name: str | None):
    old = os.environ.get("SEGLOSS_KERNEL")
    if name is not None:
        os.environ["SEGLOSS_KERNEL"] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SEGLOSS_KERNEL", None)
        else:
            os.environ["SEGLOSS_KERNEL"] = old


COMPILED = ("F.cross_entropy", "hem", "hem+", "mm")


def make_losses(num_classes: int, device: torch.device, compiled: bool) -> dict:
    """``{row name: (loss function, SEGLOSS_KERNEL setting or None)}``."""
    counts = torch.logspace(0, 3, num_classes) * 1000  # 1000× imbalance, like street scenes
    presence = counts * 4  # each class in about a quarter of the pixels of the images that hold it
    losses = {"F.cross_entropy": (lambda x, t: F.cross_entropy(x, t, ignore_index=IGNORE), None)}
    for name in (*segloss.LOSS_NAMES, "ce+dice"):
        module = segloss.build_loss(name, class_counts=counts, presence_counts=presence, ignore_index=IGNORE)
        losses[name] = (module.to(device), None)
    weights = segloss.margins.class_weights(counts, "median_frequency", presence_counts=presence)
    weighted = segloss.build_loss("hem+", class_counts=counts, weight=weights, ignore_index=IGNORE)
    losses["hem+ weighted"] = (weighted.to(device), None)  # median-frequency per-class weights
    ce_weights = weights.float().to(device)
    losses["F.cross_entropy weighted"] = (
        lambda x, t: F.cross_entropy(x, t, weight=ce_weights, ignore_index=IGNORE),
        None,
    )
    if device.type == "cpu":
        losses["hem+ (eager)"] = (losses["hem+"][0], "eager")
    with contextlib.suppress(ImportError):  # the reference implementations, where smp is installed
        import segmentation_models_pytorch as smp

        lovasz = smp.losses.LovaszLoss("multiclass", per_image=False, ignore_index=IGNORE)
        losses["smp LovaszLoss"] = (lovasz, None)
    if compiled:
        torch._dynamo.reset()  # a fresh cache for every shape
        for name in COMPILED:
            losses[f"{name} (torch.compile)"] = (torch.compile(losses[name][0], fullgraph=True), None)
    return losses


def rss_mb() -> tuple[float, float]:
    """Current and peak resident set size, MiB."""
    with open("/proc/self/status") as handle:
        status = dict(line.split(":", 1) for line in handle)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def can_measure_cpu_memory() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def step(loss, logits, target) -> None:
    leaf = logits.detach().requires_grad_()
    loss(leaf, target).backward()


def measure_time(loss, backend, logits, target, iterations: int) -> float:
    with kernel_backend(backend):
        if logits.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iterations):
            step(loss, logits, target)
        if logits.is_cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / iterations


def measure_memory(loss, backend, logits, target) -> float | None:
    """Peak extra MiB of one forward+backward."""
    with kernel_backend(backend):
        gc.collect()
        if logits.is_cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step(loss, logits, target)
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - base) / 2**20
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        base, _ = rss_mb()
        step(loss, logits, target)
        gc.collect()
        return rss_mb()[1] - base


def calls_per_measurement(
    loss, backend, logits, target, repeats: int, min_seconds: float, min_calls: int, max_seconds: float
) -> int:
    """Warm the loss up (first calls build kernels and compiled graphs), then size a measurement."""
    for _ in range(3):
        measure_time(loss, backend, logits, target, 1)
    one = measure_time(loss, backend, logits, target, 3)
    wanted = max(math.ceil(min_seconds / one), math.ceil(min_calls / repeats))
    return max(1, min(wanted, int(max_seconds / one)))


def bench_shape(
    shape: tuple[int, ...],
    device: torch.device,
    repeats: int,
    min_seconds: float,
    *,
    min_calls: int = 2000,
    max_seconds: float = 5.0,
    compiled: bool = True,
    only: list[str] | None = None,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> list[dict]:
    """One table: every loss (or ``only`` these, with ``F.cross_entropy``) on logits of ``shape`` in
    ``dtype`` (channels-last memory with ``channels_last``): time and peak extra memory, their ratios to
    cross-entropy, and ``gb_per_s``, the least memory traffic of a fused margin loss's forward + backward
    (the logits read twice and the gradient written, the targets read twice) divided by the time."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=generator).to(device=device, dtype=dtype)
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=generator)
    target[torch.rand(target.shape, generator=generator) < 0.05] = IGNORE
    target = target.to(device)
    losses = make_losses(shape[1], device, compiled)
    if only:
        losses = {name: loss for name, loss in losses.items() if name == "F.cross_entropy" or name in only}
    memory_ok = device.type == "cuda" or (can_measure_cpu_memory() and logits.numel() * 4 >= 16 * 2**20)

    iterations = {
        name: calls_per_measurement(
            loss, backend, logits, target, repeats, min_seconds, min_calls, max_seconds
        )
        for name, (loss, backend) in losses.items()
    }
    times = {name: [] for name in losses}
    memory = {name: [] for name in losses}
    for _ in range(repeats):
        for name, (loss, backend) in losses.items():
            times[name].append(measure_time(loss, backend, logits, target, iterations[name]))
            if memory_ok:
                memory[name].append(measure_memory(loss, backend, logits, target))
    base_time = statistics.median(times["F.cross_entropy"])
    base_memory = statistics.median(memory["F.cross_entropy"]) if memory_ok else None
    rows = []
    for name in losses:
        seconds = statistics.median(times[name])
        row = {"loss": name, "ms": seconds * 1e3, "time_ratio": seconds / base_time}
        traffic = 3 * logits.numel() * logits.element_size() + 2 * target.numel() * target.element_size()
        row["gb_per_s"] = traffic / seconds / 1e9
        row["calls"] = iterations[name] * repeats
        if memory_ok:
            peak = statistics.median(memory[name])
            row.update(mib=peak, memory_ratio=peak / base_memory if base_memory > 0 else float("nan"))
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    has_memory = "mib" in rows[0]
    print(
        "| loss | fwd+bwd ms | × CE time | timed calls |"
        + (" peak extra MiB | × CE memory |" if has_memory else "")
    )
    print("|---|---:|---:|---:|" + ("---:|---:|" if has_memory else ""))
    for row in rows:
        line = f"| {row['loss']} | {row['ms']:.3f} | {row['time_ratio']:.2f} | {row['calls']} |"
        if has_memory:
            line += f" {row['mib']:.0f} | {row['memory_ratio']:.2f} |"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), help="names or NxCxHxW / NxC")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds; medians are shown")
    parser.add_argument("--min-seconds", type=float, default=0.05, help="least time per measurement")
    parser.add_argument("--min-calls", type=int, default=2000, help="least timed calls per loss, all rounds")
    parser.add_argument("--max-seconds", type=float, default=5.0, help="most time per measurement")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--losses", nargs="+", help="only these rows (and F.cross_entropy)")
    args = parser.parse_args()
    device = torch.device(args.device)
    kernel = "compiled C" if cpu_kernel.available() else "eager (no C compiler)"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}, CPU kernel: {kernel}")
    for spec in args.shapes:
        shape = tuple(int(v) for v in SHAPES.get(spec, spec).split("x"))
        print(f"\n### {spec} {'×'.join(map(str, shape))}, median of {args.repeats}, {load()}\n")
        rows = bench_shape(
            shape,
            device,
            args.repeats,
            args.min_seconds,
            min_calls=args.min_calls,
            max_seconds=args.max_seconds,
            compiled=not args.no_compile,
            only=args.losses,
        )
        print_table(rows)
        print(f"\nafter: {load()}")


def load() -> str:
    """The 1-minute load average against the CPU count: timings taken under load are noisier."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


if __name__ == "__main__":
    main()
