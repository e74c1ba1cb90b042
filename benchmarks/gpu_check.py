"""The prepared GPU check: one script, about 10 minutes on one GPU, one JSON and one markdown summary.

    python benchmarks/gpu_check.py --out gpu-check           # on a CUDA machine
    python benchmarks/gpu_check.py --smoke --out /tmp/smoke  # everything at tiny sizes on the CPU

Sections (each recorded as passed, failed with its error, or skipped with the reason):

1. ``kernels``: the fused losses (``hem``, ``hem+``, ``mm``; Triton on CUDA) and every other loss against
   the CPU, in float32/float16/bfloat16, for channels-last and non-contiguous logits and a 3-D volume;
   logits of more than 2³¹ elements (64-bit indexing) against the CPU on the last image's last rows.
2. ``sync_free``: a forward and backward of every loss under ``torch.cuda.set_sync_debug_mode("error")``,
   and a training step with HEM+ captured in a CUDA graph (``torch.cuda.graph``), replayed, equal to eager.
3. ``amp``: FPN-ResNet34 training steps under bf16 and fp16 autocast with finite float32 losses.
4. ``compiled``: conv → loss → backward under ``torch.compile(fullgraph=True)`` is one graph, equal to eager.
5. ``benchmark``: time and memory of every loss against ``F.cross_entropy`` at 4×19×512×1024 and 128×100.
6. ``training``: FPN-ResNet34 from scratch on the ½-resolution CamVid copy (``data/CamVid_half``), CE
   against HEM+ with the segmentation defaults, two seeds, as many epochs as ``--train-minutes`` allow;
   val mIoU of each run.

``--smoke`` runs the same code on the CPU at tiny sizes, the CUDA path through Triton's interpreter
(``SEGLOSS_KERNEL=triton TRITON_INTERPRET=1``) and the sync check with host conversions patched to raise;
the CUDA-graph capture needs a GPU and is skipped. It is part of the test suite, so that a GPU's minutes
are never lost to a typo. Exit status: 1 when any section failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if "--smoke" in sys.argv:  # before Triton is imported: the interpreter is chosen at import
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch

import segloss

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_losses  # noqa: E402

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
    checked = 0
    for name in segloss.LOSS_NAMES:
        loss = build(name)
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
    result = {"cases": checked, "large": check_64_bit_indexing(device, smoke)}
    return result


def check_64_bit_indexing(device: torch.device, smoke: bool) -> dict:
    """Logits of more than 2³¹ elements (float16; 4.3 GB): the per-sample losses and the gradient of the
    last image's last rows, where the offsets exceed 2³¹, against the CPU on that slice."""
    if smoke:
        return {"skipped": "needs a GPU with > 12 GB"}
    n, c, h, w = 2, 19, 7552, 7552  # 2.17e9 elements
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
    return {"elements": n * c * h * w, **results}


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


def check_sync_free(device: torch.device, smoke: bool) -> dict:
    logits, target = problem((2, 12, 16, 24) if smoke else (4, 12, 256, 320))
    losses = {name: build(name).to(device) for name in segloss.LOSS_NAMES}
    x, t = logits.to(device).requires_grad_(), target.to(device)
    with kernel_setting("auto" if device.type == "cuda" else "triton"), no_host_sync(device):
        for loss in losses.values():
            loss(x, t).backward()
    result: dict[str, Any] = {"losses": list(losses)}
    if device.type != "cuda":
        result["cuda_graph"] = "skipped: needs CUDA"
        return result
    result["cuda_graph"] = check_cuda_graph(device)
    return result


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
    names = ("hem+",) if smoke else FUSED  # compiling on two CPU cores takes ~15 s a loss
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
    for shape in shapes.values():
        rows = bench_losses.bench_shape(
            shape, device, repeats=2 if smoke else 5, min_seconds=0.0 if smoke else 0.2,
            min_calls=2 if smoke else 200, max_seconds=0.5 if smoke else 3.0, compiled=False,
        )  # fmt: skip
        tables["×".join(map(str, shape))] = rows
    return tables


def check_training(device: torch.device, smoke: bool, minutes: float, out: Path) -> dict:
    """FPN-ResNet34 from scratch, CE vs HEM+ (defaults), two seeds, via ``segloss train``."""
    if smoke:
        base = ["--config", "demo", "data.num_train=4", "data.num_eval=2", "data.size=64",
                "train.crop_size=64", "train.batch_size=4", "train.eval_every=0"]  # fmt: skip
    else:
        if not Path("data/CamVid_half").is_dir():
            return {"skipped": "no data/CamVid_half (datasets/downsample_camvid.py writes it)"}
        base = ["--config", "camvid_cpu", "train.num_workers=4"]  # the CPU study's recipe, on the GPU
    base += ["model.encoder=resnet34", f"train.device={'cuda' if device.type == 'cuda' else 'cpu'}",
             "train.progress=false"]  # fmt: skip
    runs = [(loss, seed) for seed in (0, 1) for loss in ("ce", "hem+")]
    epochs = 1
    if not smoke:  # time one epoch first, then size every run to the budget
        probe = train(base + ["train.epochs=1"], out / "probe")
        epoch_seconds = probe["seconds"]
        epochs = max(1, int(minutes * 60 / len(runs) / (epoch_seconds * 1.15)))
    results = {"epochs": epochs, "runs": []}
    for loss, seed in runs:
        run = train(base + [f"loss.name={loss}", f"train.seed={seed}", f"train.epochs={epochs}"],
                    out / f"{loss.replace('+', 'plus')}-seed{seed}")  # fmt: skip
        results["runs"].append({"loss": loss, "seed": seed, **run})
    return results


def train(arguments: list[str], run_dir: Path) -> dict:
    """``segloss train ARGUMENTS train.out_dir=RUN_DIR`` in this process: its seconds and val mIoU."""
    from segloss.runner import cli

    start = time.monotonic()
    resume = ["--resume"] if (run_dir / "checkpoint.pt").exists() else []  # a rerun continues or skips
    command = ["train", *resume, *arguments, f"train.out_dir={run_dir}"]
    if cli.main(command) != 0:
        raise RuntimeError(f"segloss {' '.join(command)} failed (its log: {run_dir / 'train.log'})")
    results = json.loads((run_dir / "results.json").read_text())
    return {"seconds": round(time.monotonic() - start, 1), "val_miou": results["miou"]}


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
    lines = [f"# GPU check: {report['device']}", "", f"torch {report['torch']}, smoke: {report['smoke']}", ""]
    lines += ["| section | status | seconds |", "|---|---|---:|"]
    lines += [f"| {name} | {s['status']} | {s['seconds']} |" for name, s in report["sections"].items()]
    for name, section in report["sections"].items():
        lines += ["", f"## {name}", ""]
        if section["status"] == "failed":
            lines += ["```", section["error"], "```"]
        elif name == "benchmark":
            for shape, rows in section["result"].items():
                header = "| loss | fwd+bwd ms | × CE time | peak extra MiB | × CE memory |"
                lines += [f"### {shape}", "", header, "|---|---:|---:|---:|---:|"]
                for r in rows:
                    memory = f"{r.get('mib', float('nan')):.0f} | {r.get('memory_ratio', float('nan')):.2f}"
                    lines.append(f"| {r['loss']} | {r['ms']:.3f} | {r['time_ratio']:.2f} | {memory} |")
                lines.append("")
        else:
            lines += ["```json", json.dumps(section["result"], indent=1, default=str), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (Triton interpreter)")
    parser.add_argument("--out", default="gpu-check", help="folder for gpu_check.json, gpu_check.md and runs")
    parser.add_argument("--train-minutes", type=float, default=4.0, help="budget of the training section")
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
    report: dict[str, Any] = {"device": name, "torch": torch.__version__, "smoke": args.smoke, "sections": {}}
    sections = {
        "kernels": lambda: check_kernels(device, args.smoke),
        "sync_free": lambda: check_sync_free(device, args.smoke),
        "amp": lambda: check_amp(device, args.smoke),
        "compiled": lambda: check_compiled(device, args.smoke),
        "benchmark": lambda: check_benchmark(device, args.smoke),
        "training": lambda: check_training(device, args.smoke, args.train_minutes, out / "runs"),
    }
    for section, function in sections.items():
        if not args.only or section in args.only:
            run_section(section, function, report)
            (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
            (out / "gpu_check.md").write_text(markdown(report))
    return int(any(s["status"] == "failed" for s in report["sections"].values()))


if __name__ == "__main__":
    sys.exit(main())
