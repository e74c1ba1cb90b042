"""Training-step throughput (images/s) of FPN with CE and with HEM+, interleaved in one process.

Each loss trains its own copy of the same model (same initial weights) with the project's training loop
(``segloss.runner.loop.train_one_epoch``: forward, loss, backward, SGD step) on a CamVid-sized
batch; rounds alternate between the losses and the table shows medians and the ratio to CE. HEM+ uses
margins from CamVid's training pixel shares (docs/losses-and-margins.md). Target: HEM+ within 2 % of CE.

    python benchmarks/bench_train.py                                   # CPU: batch 2, 352×480
    python benchmarks/bench_train.py --device cuda --batch 12          # AMP (bf16/fp16) + channels_last

``--speedups`` instead trains CE six ways, eager fp32, through ``torch.compile`` (``train.compile``), in
channels-last memory, both, and in bf16 autocast (``train.amp=bf16``) without and with channels-last, to
see which makes a recipe faster on this machine (bf16 pays only on CPUs with bf16 instructions,
``amx_bf16`` or ``avx512_bf16``; the header names this CPU's); the CamVid CPU study's recipe is
``--encoder tu-mobilenetv3_small_100 --batch 8 --crop 160 224 --speedups``, IDD-Lite's ``--encoder resnet34
--batch 8 --crop 160 224 --speedups``.
"""

from __future__ import annotations

import argparse
import copy
import statistics

import numpy as np
import torch

import segloss
from segloss.runner.distributed import amp_dtype, resolve_device
from segloss.runner.environment import cpu_bf16_support, cpu_model
from segloss.runner.loop import train_one_epoch
from segloss.runner.optim import TrainingStep
from segloss.segmentation.models import build_model

# CamVid train pixel shares (%) of the 11 classes (docs/losses-and-margins.md); void (3.95 %) is ignored.
CAMVID_SHARES = [16.85, 23.26, 0.98, 31.66, 4.49, 9.72, 1.17, 1.13, 5.87, 0.64, 0.29]
CAMVID_PIXELS = 367 * 360 * 480
IGNORE = 255


def camvid_batch(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and masks drawn with CamVid's class shares, ~4 % void, in blocks of 8×8 pixels."""
    rng = np.random.default_rng(seed)
    shares = np.array([*CAMVID_SHARES, 3.95]) / 100
    blocks = rng.choice(len(shares), size=(batch, height // 8 + 1, width // 8 + 1), p=shares / shares.sum())
    mask = np.kron(blocks, np.ones((1, 8, 8), dtype=np.int64))[:, :height, :width]
    mask[mask == len(CAMVID_SHARES)] = IGNORE
    image = rng.standard_normal((batch, 3, height, width), dtype=np.float32)
    return torch.from_numpy(image), torch.from_numpy(mask)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="FPN")
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--crop", type=int, nargs=2, default=(352, 480), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per loss and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"))
    parser.add_argument("--speedups", action="store_true", help="CE eager vs torch.compile vs channels-last")
    args = parser.parse_args()

    device = resolve_device(args.device)
    dtype = amp_dtype(args.amp, device)
    torch.manual_seed(0)
    model = build_model(args.arch, args.encoder, len(CAMVID_SHARES), encoder_weights=None)
    counts = np.array(CAMVID_SHARES) / 100 * CAMVID_PIXELS
    ce = segloss.build_loss("ce", ignore_index=IGNORE)
    on_cuda = device.type == "cuda"
    # name -> (loss, torch.compile, channels-last, autocast dtype)
    if args.speedups:
        variants = {
            "eager": (ce, False, False, None),
            "compiled": (ce, True, False, None),
            "chlast": (ce, False, True, None),
            "both": (ce, True, True, None),
            "bf16": (ce, False, False, torch.bfloat16),
            "bf16+chlast": (ce, False, True, torch.bfloat16),
        }
    else:
        hem_plus = segloss.build_loss("hem+", class_counts=counts, ignore_index=IGNORE)
        variants = {"ce": (ce, False, on_cuda, dtype), "hem+": (hem_plus, False, on_cuda, dtype)}
    image, mask = camvid_batch(args.batch, *args.crop)
    runs = {}
    for name, (loss, compiled, channels_last, autocast_dtype) in variants.items():
        copy_ = copy.deepcopy(model).to(device)
        if channels_last:
            copy_ = copy_.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(copy_.parameters(), lr=1e-3, momentum=0.9)
        step = TrainingStep(optimizer, lambda update: 1.0, fp16=autocast_dtype == torch.float16)
        network = torch.compile(copy_) if compiled else copy_
        runs[name] = (network, loss.to(device), step, channels_last, autocast_dtype)

    def timed(name: str, steps: int) -> float:
        network, loss, step, channels_last, autocast_dtype = runs[name]
        stats = train_one_epoch(
            network, loss, step, [(image, mask)] * steps, device, desc="benchmark", dtype=autocast_dtype,
            channels_last=channels_last, progress=False,
        )  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize()
        return stats["images_per_s"]

    for name in runs:  # warm-up: allocator, kernels, cudnn autotuning, compilation
        timed(name, 2)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name in runs:
            rates[name].append(timed(name, args.steps))

    what = f"{args.arch}-{args.encoder}, batch {args.batch}×3×{args.crop[0]}×{args.crop[1]}"
    precision = {None: "fp32", torch.bfloat16: "bf16 AMP", torch.float16: "fp16 AMP"}[dtype]
    if args.speedups:
        precision = "precision per row"
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {cpu_model()} (bf16 instructions: {cpu_bf16_support()}), {torch.get_num_threads()} threads"
    )
    print(f"{what} on {name}, {precision}; {args.rounds} rounds × {args.steps} steps, medians")
    first = next(iter(rates))
    print(f"{'run':<12} {'images/s':>9} {'ms/step':>8} {'vs ' + first:>9}")
    reference = statistics.median(rates[first])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<12} {rate:>9.2f} {1000 * args.batch / rate:>8.1f} {rate / reference:>9.3f}")
    if not args.speedups:
        ratio = statistics.median(rates["hem+"]) / reference
        print(f"HEM+ throughput / CE throughput = {ratio:.3f} (target >= 0.98)")


if __name__ == "__main__":
    main()
