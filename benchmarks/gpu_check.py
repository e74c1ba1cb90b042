"""The prepared GPU check: one script, sized for one 10-minute call on an H100/H200, writing its JSON and
markdown summary after every section (a killed run still leaves what finished).

    python benchmarks/gpu_check.py --out gpu-check           # on a CUDA machine
    python benchmarks/gpu_check.py --smoke --out /tmp/smoke  # everything at tiny sizes on the CPU

The header records the environment (torch, CUDA, driver, Triton, compute capability, C compiler).
Sections (each recorded as passed, failed with its error, or skipped with the reason):

1. ``kernels``: every loss on the GPU against the CPU, in float32/float16/bfloat16, for contiguous,
   channels-last and non-contiguous logits and a 3-D volume, with and without per-class weights, OHEM
   with ``min_kept`` below the valid pixels; one image of (1, 20, 10,900, 10,900) float16 logits, whose
   class offsets pass 2³¹, and a (70,000, 12, 1) batch, more images than a grid axis other than the first
   allows, both against the CPU.
2. ``fallback``: a Triton launch forced to fail under ``SEGLOSS_KERNEL=auto``: one warning, then the
   eager path with the same values and gradients.
3. ``sync_free``: every loss's forward and backward under ``torch.cuda.set_sync_debug_mode("error")``;
   the functional HEM+ with float64 margins held on the CPU (copied to the GPU once); the runner's
   ``train_one_epoch`` on bf16 channels-last batches, whose only synchronisation is its one loss read;
   a training step with HEM+ captured in a CUDA graph, replayed, equal to eager.
4. ``amp``: FPN-ResNet34 training steps under bf16 and fp16 autocast with finite float32 losses.
5. ``compiled``: conv → HEM+ → backward under ``torch.compile(fullgraph=True)`` is one graph, equal to
   eager (skipped with the reason where this torch lacks ``trace_autograd_ops``).
6. ``benchmark``: time and memory of every loss against ``F.cross_entropy`` at 4×19×512×1024 in float32
   and in bf16 channels-last (with the achieved GB/s of the least traffic), and at 128×100.
7. ``training``: FPN-ResNet34 from scratch, bf16 channels-last, 16 synthetic CamVid-sized images a step,
   HEM+ against CE for ``--train-seconds`` each: images/s.

``--smoke`` runs the same code on the CPU at tiny sizes, the CUDA path through Triton's interpreter
(``SEGLOSS_KERNEL=triton TRITON_INTERPRET=1``) and the sync checks with host conversions patched to raise
or count; the CUDA-graph capture and the large cases need a GPU and are skipped. It is part of the test
suite, so that a GPU's minutes are never lost to a typo. Exit status: 1 when any section failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if "--smoke" in sys.argv:  # before Triton is imported: the interpreter is chosen at import
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch

import segloss

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_losses  # noqa: E402
import bench_train  # noqa: E402

COUNTS = torch.logspace(0, 3, 12)
IGNORE = 255
FUSED = ("hem", "hem+", "mm")


def build(name: str, **options: Any) -> torch.nn.Module:
    return segloss.build_loss(
        name, class_counts=COUNTS, presence_counts=COUNTS * 4, ignore_index=IGNORE, **options
    )


@contextlib.contextmanager
def kernel_setting(value: str) -> Iterator[None]:
    old = os.environ.get("SEGLOSS_KERNEL")
    os.environ["SEGLOSS_KERNEL"] = value
    try:
        yield
    finally:
        os.environ.pop("SEGLOSS_KERNEL") if old is None else os.environ.__setitem__("SEGLOSS_KERNEL", old)


def problem(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator) * 2
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=generator)
    target[torch.rand(target.shape, generator=generator) < 0.1] = IGNORE
    return logits, target


def value_and_grad(
    loss: torch.nn.Module, logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    x = logits.detach().requires_grad_()
    value = loss(x, target)
    value.backward()
    return value.detach().float().cpu(), x.grad.float().cpu()


# ---------------------------------------------------------------------------------------------------


def check_kernels(device: torch.device, smoke: bool) -> dict:
    """Every loss on ``device`` (the CUDA path) against the CPU's eager/C path."""
    layouts: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "contiguous": lambda x: x,
        "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
        "non_contiguous": lambda x: x.transpose(2, 3).contiguous().transpose(2, 3)[..., ::2],
    }
    shape = (2, 12, 9, 14) if smoke else (4, 12, 96, 128)
    weight = torch.linspace(0.0, 2.0, 12)
    variants = {name: build(name) for name in segloss.LOSS_NAMES}
    variants["ohem, min_kept below the valid pixels"] = build("ohem", min_kept=50 if smoke else 10_000)
    variants.update(
        {f"{name}, weighted": build(name, weight=weight) for name in ("hem+", "mm", "ce", "dice")}
    )
    checked = 0
    for name, loss in variants.items():
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            for layout, arrange in layouts.items():
                logits, target = problem(shape)
                x = arrange(logits.to(dtype))
                t = target[..., ::2] if layout == "non_contiguous" else target
                expected = value_and_grad(loss, x.cpu(), t)
                with kernel_setting("auto" if device.type == "cuda" else "triton"):
                    got = value_and_grad(loss.to(device), x.to(device), t.to(device))
                tolerance = (
                    {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-3}
                )
                torch.testing.assert_close(got[0], expected[0], **tolerance, msg=f"{name} {dtype} {layout}")
                torch.testing.assert_close(got[1], expected[1], **tolerance, msg=f"{name} {dtype} {layout}")
                checked += 1
    volume = (1, 12, 4, 6, 7) if smoke else (2, 12, 32, 48, 48)
    for name in FUSED:
        logits, target = problem(volume, seed=1)
        expected = value_and_grad(build(name), logits, target)
        with kernel_setting("auto" if device.type == "cuda" else "triton"):
            got = value_and_grad(build(name).to(device), logits.to(device), target.to(device))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        checked += 1
    result = {
        "cases": checked,
        "64_bit_class_offsets": check_64_bit_indexing(device, smoke),
        "grid": check_many_images(device, smoke),
    }
    return result


def check_many_images(device: torch.device, smoke: bool) -> dict:
    """A batch of more images than CUDA allows programs on a second grid axis (65,535): (70,000, 12, 1)
    logits, every fused loss against the CPU."""
    logits, target = problem((700 if smoke else 70_000, 12, 1), seed=2)
    for name in FUSED:
        expected = value_and_grad(build(name), logits, target)
        with kernel_setting("auto" if device.type == "cuda" else "triton"):
            got = value_and_grad(build(name).to(device), logits.to(device), target.to(device))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    return {"images": logits.shape[0], "losses": list(FUSED)}


def check_64_bit_indexing(device: torch.device, smoke: bool) -> dict:
    """One image of (1, 20, 10,900, 10,900) float16 logits (4.75 GB): the class offset (C − 1)·H·W passes
    2³¹ inside the image. The per-sample losses and the gradient of its last rows against the CPU on that
    slice."""
    if smoke:
        return {"skipped": "needs a GPU with > 30 GB"}
    n, c, h, w = 1, 20, 10_900, 10_900
    logits = torch.empty((n, c, h, w), dtype=torch.float16, device=device).normal_(0, 2)
    target = torch.randint(0, c, (n, h, w), device=device)
    results = {}
    for name in FUSED:
        loss = build(name, reduction="none")
        x = logits.requires_grad_()
        values = loss(x, target)
        rows = slice(h - 4, h)
        values[-1, rows].sum().backward()
        expected_x = logits[-1:, :, rows].detach().cpu().float().requires_grad_()
        expected = loss(expected_x, target[-1:, rows].cpu())
        expected.sum().backward()
        torch.testing.assert_close(
            values[-1:, rows].detach().float().cpu(), expected.detach(), rtol=1e-3, atol=1e-3
        )
        torch.testing.assert_close(x.grad[-1:, :, rows].float().cpu(), expected_x.grad, rtol=1e-3, atol=1e-3)
        x.grad = None
        results[name] = "equal"
    del logits, target
    torch.cuda.empty_cache()
    return {"elements": n * c * h * w, "largest_class_offset": (c - 1) * h * w, **results}


def check_fallback(device: torch.device, smoke: bool) -> dict:
    """A Triton launch forced to fail under ``SEGLOSS_KERNEL=auto`` (as a missing compiler or a driver
    mismatch would): one warning, the call rerun eagerly, equal values and gradients."""
    import logging

    from segloss import _kernels
    from segloss._kernels import triton_gpu

    class Broken:
        def __getitem__(self, grid: Any) -> Callable[..., None]:
            def launch(*args: Any, **kwargs: Any) -> None:
                raise RuntimeError("forced launch failure (gpu_check)")

            return launch

    logits, target = problem((2, 12, 16, 24), seed=3)
    x, t = logits.to(device, torch.bfloat16), target.to(device)
    with kernel_setting("eager"):
        expected = value_and_grad(build("hem+").to(device), x, t)
    saved = triton_gpu._margin_forward, triton_gpu._margin_backward, _kernels._setting
    saved_interpreting = _kernels.interpreting_triton
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("segloss").addHandler(handler)
    try:
        triton_gpu._margin_forward = triton_gpu._margin_backward = Broken()
        _kernels._setting = lambda: "auto"
        if device.type != "cuda":  # smoke: CPU tensors take the interpreted CUDA path under auto
            _kernels.interpreting_triton = lambda: True
        got = [value_and_grad(build("hem+").to(device), x, t) for _ in range(2)]
    finally:
        triton_gpu._margin_forward, triton_gpu._margin_backward, _kernels._setting = saved
        _kernels.interpreting_triton = saved_interpreting
        _kernels._triton_failure = None
        logging.getLogger("segloss").removeHandler(handler)
    for value in got:
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)
    warned = [r.getMessage() for r in records if "failed to launch" in r.getMessage()]
    assert len(warned) == 1, warned
    return {"warning": warned[0][:160], "calls": len(got)}


@contextlib.contextmanager
def no_host_sync(device: torch.device) -> Iterator[None]:
    """CUDA: ``set_sync_debug_mode("error")``; CPU (smoke): tensor-to-host conversions raise."""
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return

    def host_sync(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a host synchronisation on the CUDA path")

    methods = ("item", "__bool__", "tolist", "__int__", "__float__")
    originals = {method: getattr(torch.Tensor, method) for method in methods}
    for method in methods:
        setattr(torch.Tensor, method, host_sync)
    try:
        yield
    finally:
        for method, original in originals.items():
            setattr(torch.Tensor, method, original)


@contextlib.contextmanager
def counted_host_syncs(device: torch.device) -> Iterator[list[str]]:
    """Count host synchronisations: CUDA's sync debug mode in ``warn`` (its warnings counted), or on the
    CPU (smoke) the tensor-to-host conversions. Yields the list that collects them."""
    found: list[str] = []
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield found
            finally:
                torch.cuda.set_sync_debug_mode("default")
        found += [str(w.message) for w in caught if "synchroniz" in str(w.message)]
        return
    methods = ("item", "__bool__", "tolist", "__int__", "__float__")
    originals = {method: getattr(torch.Tensor, method) for method in methods}

    def counting(method: str) -> Callable[..., Any]:
        def call(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            found.append(method)
            return originals[method](self, *args, **kwargs)

        return call

    for method in methods:
        setattr(torch.Tensor, method, counting(method))
    try:
        yield found
    finally:
        for method, original in originals.items():
            setattr(torch.Tensor, method, original)


def check_sync_free(device: torch.device, smoke: bool) -> dict:
    logits, target = problem((2, 12, 16, 24) if smoke else (4, 12, 256, 320))
    losses = {name: build(name).to(device) for name in segloss.LOSS_NAMES}
    x, t = logits.to(device).requires_grad_(), target.to(device)
    margins = segloss.hem_plus_margins(COUNTS)  # float64 on the CPU, as the README's functional call has
    path = "auto" if device.type == "cuda" else "triton"
    with kernel_setting(path):
        segloss.functional.hem_loss(x, t, margins, ignore_index=IGNORE).backward()  # warm-up: one copy
    with kernel_setting(path), no_host_sync(device):
        for loss in losses.values():
            loss(x, t).backward()
        for _ in range(3):
            segloss.functional.hem_loss(x, t, margins, ignore_index=IGNORE).backward()
    result: dict[str, Any] = {"losses": list(losses), "functional_hem+_with_cpu_margins": "no sync"}
    result["train_one_epoch"] = check_epoch_syncs(device, smoke)
    if device.type != "cuda":
        result["cuda_graph"] = "skipped: needs CUDA"
        return result
    result["cuda_graph"] = check_cuda_graph(device)
    return result


def check_epoch_syncs(device: torch.device, smoke: bool) -> dict:
    """``segloss.runner.loop.train_one_epoch`` (FPN-ResNet34, HEM+, bf16 autocast, channels-last) on
    synthetic batches: its one synchronisation is the loss read at the end of the epoch."""
    from segloss.runner.loop import train_one_epoch
    from segloss.runner.optim import TrainingStep

    smp = __import__("segmentation_models_pytorch")
    model = smp.FPN("resnet34", encoder_weights=None, classes=12).to(device)
    model = model.to(memory_format=torch.channels_last)
    step = TrainingStep(torch.optim.SGD(model.parameters(), lr=1e-3), lambda update: 1.0)
    size = (64, 64) if smoke else (256, 320)
    batches = [bench_train.camvid_batch(2 if smoke else 8, *size, seed=seed) for seed in range(3)]
    batches = [(images, mask.clamp(max=11).where(mask != IGNORE, IGNORE)) for images, mask in batches]
    loss = build("hem+", margin_on="target").to(device)
    path = "auto" if device.type == "cuda" else "triton"
    with kernel_setting(path):
        train_one_epoch(model, loss, step, batches[:1], device, desc="warm-up", dtype=torch.bfloat16,
                        channels_last=True, progress=False)  # fmt: skip
        with counted_host_syncs(device) as syncs:
            record = train_one_epoch(model, loss, step, batches, device, desc="check", dtype=torch.bfloat16,
                                     channels_last=True, progress=False, log_every=1000)  # fmt: skip
    assert len(syncs) == 1, syncs  # the epoch's one loss read
    return {"steps": record["steps"], "host_syncs": len(syncs), "loss": record["loss"]}


def check_cuda_graph(device: torch.device) -> str:
    """Training steps (conv → HEM+ → backward → SGD) captured in one CUDA graph and replayed on new
    batches give the losses and weights of the same steps run eagerly (torch.cuda.graph's recipe: warm-up
    on a side stream, then capture)."""

    def make() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 12, 1)
        ).to(device)
        return model, torch.optim.SGD(model.parameters(), lr=0.01)

    loss = build("hem+", margin_on="target").to(device)
    batches = [problem((4, 12, 64, 96), seed) for seed in range(6)]
    batches = [(torch.randn(4, 3, 64, 96, device=device), target.to(device)) for _, target in batches]

    def step(model, optimizer, images, target) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        value = loss(model(images), target)
        value.backward()
        optimizer.step()
        return value.detach()

    model, optimizer = make()
    eager = [step(model, optimizer, *batch).clone() for batch in batches]
    eager_weights = [p.detach().clone() for p in model.parameters()]

    model, optimizer = make()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        warm = [step(model, optimizer, *batch).clone() for batch in batches[:3]]
    torch.cuda.current_stream().wait_stream(side)
    static_images, static_target = (tensor.clone() for tensor in batches[3])
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_value = step(model, optimizer, static_images, static_target)
    replayed = []
    for images, target in batches[3:]:
        static_images.copy_(images)
        static_target.copy_(target)
        graph.replay()
        replayed.append(static_value.clone())
    torch.testing.assert_close(torch.stack(warm + replayed), torch.stack(eager), rtol=1e-4, atol=1e-5)
    for got, expected in zip(model.parameters(), eager_weights, strict=True):
        torch.testing.assert_close(got.detach(), expected, rtol=1e-4, atol=1e-5)
    return "3 training steps replayed from one CUDA graph: losses and weights equal to eager"


def check_amp(device: torch.device, smoke: bool) -> dict:
    """FPN-ResNet34 training steps under bf16 and fp16 autocast through the runner's ``TrainingStep``
    (fp16 with its gradient scaler): float32 losses, finite gradients, updated weights."""
    from segloss.runner.optim import TrainingStep

    smp = __import__("segmentation_models_pytorch")
    model = (
        smp.FPN("resnet34", encoder_weights=None, classes=12).to(device).to(memory_format=torch.channels_last)
    )
    loss = build("hem+", margin_on="target")
    size = (64, 64) if smoke else (256, 320)
    images = torch.randn(2 if smoke else 8, 3, *size, device=device).to(memory_format=torch.channels_last)
    target = torch.randint(0, 12, (images.shape[0], *size), device=device)
    values = {}
    for dtype in (torch.bfloat16, torch.float16):
        fp16 = dtype == torch.float16 and device.type == "cuda"
        step = TrainingStep(torch.optim.SGD(model.parameters(), lr=1e-3), lambda update: 1.0, fp16=fp16)
        before = [p.detach().clone() for p in model.parameters()]
        with torch.autocast(device.type, dtype=dtype):
            logits = model(images)
        value = loss(logits, target)
        assert value.dtype == torch.float32 and torch.isfinite(value), value
        step(value)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
        values[str(dtype)] = value.detach().item()
    return values


def check_compiled(device: torch.device, smoke: bool) -> dict:
    """``torch.compile(fullgraph=True)`` of conv → loss → backward: one graph (dynamo's explain) and the
    eager step's loss and gradients, for the three fused losses."""
    size = (16, 24) if smoke else (64, 96)
    images = torch.randn(2, 3, *size, device=device)
    target = torch.randint(0, 12, (2, *size), device=device)
    target[:, :2] = IGNORE
    if not hasattr(torch._dynamo.config, "trace_autograd_ops"):
        return {"skipped": f"torch {torch.__version__} has no torch._dynamo.config.trace_autograd_ops"}
    names = ("hem+",)  # the one the recipes train with; compiling costs ~15 s a loss
    for name in names:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 12, 1)
        ).to(device)
        loss = build(name)

        def step(images: torch.Tensor, target: torch.Tensor, model=model, loss=loss) -> torch.Tensor:
            value = loss(model(images), target)
            value.backward()
            return value.detach()

        results = []
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            torch._dynamo.reset()
            explanation = torch._dynamo.explain(step)(images, target)
            assert explanation.graph_break_count == 0, explanation.break_reasons
            for function in (step, torch.compile(step, fullgraph=True)):
                model.zero_grad(set_to_none=True)
                value = function(images, target)
                results.append((value, [p.grad.clone() for p in model.parameters()]))
        (expected, expected_grads), (value, grads) = results
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
        for grad, expected_grad in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-6)
    torch._dynamo.reset()
    return {"losses": list(names), "graphs": 1}


def check_benchmark(device: torch.device, smoke: bool) -> dict:
    shapes = {"tiny": (2, 19, 16, 32), "classification": (16, 10)} if smoke else {
        "cityscapes": (4, 19, 512, 1024), "cifar100": (128, 100)}  # fmt: skip
    tables = {}
    timing: dict[str, Any] = {"repeats": 2 if smoke else 5, "min_seconds": 0.0 if smoke else 0.2,
                              "min_calls": 2 if smoke else 200, "max_seconds": 0.5 if smoke else 3.0,
                              "compiled": False}  # fmt: skip
    for shape in shapes.values():
        tables["×".join(map(str, shape))] = bench_losses.bench_shape(shape, device, **timing)
    dense = next(iter(shapes.values()))
    only = ["ce", "hem+", "hem+ weighted", "mm", "dice"]
    tables["×".join(map(str, dense)) + " bf16 channels-last"] = bench_losses.bench_shape(
        dense, device, **timing, only=only, dtype=torch.bfloat16, channels_last=True
    )
    return tables


def check_training(device: torch.device, smoke: bool, seconds: float) -> dict:
    """FPN-ResNet34 from scratch, bf16 autocast, channels-last, batches of 16 synthetic CamVid-sized
    images (352×480, CamVid's class shares): CE, then HEM+, each trained for ``seconds`` after a warm-up;
    images/s and HEM+'s ratio to CE."""
    from segloss.runner.loop import train_one_epoch
    from segloss.runner.optim import TrainingStep

    smp = __import__("segmentation_models_pytorch")
    batch, size = (2, (64, 96)) if smoke else (16, (352, 480))
    counts = torch.tensor(bench_train.CAMVID_SHARES) / 100 * bench_train.CAMVID_PIXELS
    losses = {
        "ce": segloss.build_loss("ce", ignore_index=IGNORE),
        "hem+": segloss.build_loss("hem+", class_counts=counts, ignore_index=IGNORE, margin_on="target"),
    }
    data = bench_train.camvid_batch(batch, *size)
    rates = {}
    for name, loss in losses.items():
        torch.manual_seed(0)
        model = smp.FPN("resnet34", encoder_weights=None, classes=11).to(device)
        model = model.to(memory_format=torch.channels_last)
        step = TrainingStep(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), lambda update: 1.0)

        def epoch(steps: int, model=model, loss=loss, step=step, name=name) -> dict:
            record = train_one_epoch(model, loss.to(device), step, [data] * steps, device, desc=name,
                                     dtype=torch.bfloat16, channels_last=True, progress=False)  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize()
            return record

        epoch(1 if smoke else 5)  # warm-up: cudnn autotuning, Triton compilation
        images, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            images += epoch(1 if smoke else 10)["steps"] * batch
        rates[name] = images / (time.monotonic() - start)
    return {
        "batch": f"{batch}×3×{size[0]}×{size[1]}, bf16 channels-last",
        "images_per_s": {name: round(rate, 2) for name, rate in rates.items()},
        "hem+/ce": round(rates["hem+"] / rates["ce"], 3),
    }


def environment() -> dict:
    """torch, CUDA, driver, Triton, compute capability, the C compiler Triton's launcher builds with."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name()
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            info["driver"] = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
    compiler = next((c for c in (os.environ.get("CC"), "cc", "gcc", "clang") if c and shutil.which(c)), None)
    info["c_compiler"] = compiler
    return info


# ---------------------------------------------------------------------------------------------------


def run_section(name: str, function: Callable[[], Any], report: dict) -> None:
    start = time.monotonic()
    try:
        outcome = {"status": "passed", "result": function()}
    except Exception as error:  # record and go on: one failure must not cost the other sections
        outcome = {
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
            "trace": traceback.format_exc(),
        }
    outcome["seconds"] = round(time.monotonic() - start, 1)
    report["sections"][name] = outcome
    print(f"{name}: {outcome['status']} ({outcome['seconds']} s)", flush=True)


def markdown(report: dict) -> str:
    header = ", ".join(f"{key} {value}" for key, value in report["environment"].items())
    lines = [f"# GPU check: {report['device']}", "", f"{header}; smoke: {report['smoke']}", ""]
    lines += ["| section | status | seconds |", "|---|---|---:|"]
    lines += [f"| {name} | {s['status']} | {s['seconds']} |" for name, s in report["sections"].items()]
    for name, section in report["sections"].items():
        lines += ["", f"## {name}", ""]
        if section["status"] == "failed":
            lines += ["```", section["error"], "```"]
        elif name == "benchmark":
            for shape, rows in section["result"].items():
                header = (
                    "| loss | fwd+bwd ms | × CE time | GB/s (least traffic) | peak extra MiB | × CE memory |"
                )
                lines += [f"### {shape}", "", header, "|---|---:|---:|---:|---:|---:|"]
                for r in rows:
                    memory = f"{r.get('mib', float('nan')):.0f} | {r.get('memory_ratio', float('nan')):.2f}"
                    speed = f"{r['ms']:.3f} | {r['time_ratio']:.2f} | {r['gb_per_s']:.0f}"
                    lines.append(f"| {r['loss']} | {speed} | {memory} |")
                lines.append("")
        else:
            lines += ["```json", json.dumps(section["result"], indent=1, default=str), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (Triton interpreter)")
    parser.add_argument("--out", default="gpu-check", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--train-seconds", type=float, default=30.0, help="training time per loss")
    parser.add_argument("--only", nargs="+", help="run only these sections")
    args = parser.parse_args(argv)
    if args.smoke:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        parser.error("no CUDA device: run with --smoke on a CPU")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (smoke, Triton interpreter)"
    report: dict[str, Any] = {
        "device": name,
        "environment": environment(),
        "smoke": args.smoke,
        "sections": {},
    }
    sections = {
        "kernels": lambda: check_kernels(device, args.smoke),
        "fallback": lambda: check_fallback(device, args.smoke),
        "sync_free": lambda: check_sync_free(device, args.smoke),
        "amp": lambda: check_amp(device, args.smoke),
        "compiled": lambda: check_compiled(device, args.smoke),
        "benchmark": lambda: check_benchmark(device, args.smoke),
        "training": lambda: check_training(device, args.smoke, 2.0 if args.smoke else args.train_seconds),
    }
    for section, function in sections.items():
        if not args.only or section in args.only:
            run_section(section, function, report)
            (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
            (out / "gpu_check.md").write_text(markdown(report))
    return int(any(s["status"] == "failed" for s in report["sections"].values()))


if __name__ == "__main__":
    sys.exit(main())
