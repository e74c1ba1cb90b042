"""``sync=True`` under DDP (2 gloo processes on CPU) reproduces one process on the concatenated batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import segloss

COUNTS = [50.0, 20.0, 10.0, 5.0]
PRESENCE = [80.0, 60.0, 40.0, 30.0]
# the margin options change what a synced mean divides by (valid samples) and which margins apply
VARIANTS = {
    "hem+ on target": ("hem+", {"margin_on": "target"}),
    # per-class weights: every weighted denominator is global
    **{
        f"{name} weighted": (name, {"weight": [1.0, 0.5, 2.0, 0.0]})
        for name in segloss.LOSS_NAMES
        if name != "wce"
    },
}
CASES = [(name, reduction) for name in (*segloss.LOSS_NAMES, *VARIANTS) for reduction in ("mean", "sum")]


def make_problem():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(5, 3, 6, 6, generator=generator)
    target = torch.randint(0, 4, (5, 6, 6), generator=generator)
    target[0, :4] = 255  # uneven ignored pixels across ranks
    target[3] = 255
    return images, target


def make_model():
    torch.manual_seed(1)
    return torch.nn.Conv2d(3, 4, 3, padding=1)


def loss_for(name, reduction, sync):
    name, options = VARIANTS.get(name, (name, {}))
    if name.startswith("hem"):
        options = {"M": 5.0, **options}
    if name == "ohem":
        options = {"min_kept": 20, **options}  # fewer than the valid pixels: the threshold is a quantile
    return segloss.build_loss(
        name,
        class_counts=COUNTS,
        presence_counts=PRESENCE,
        ignore_index=255,
        reduction=reduction,
        sync=sync,
        **options,
    )


def worker(rank, world, init_file, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    images, target = make_problem()
    shard = slice(0, 3) if rank == 0 else slice(3, 5)  # uneven shards: 3 and 2 images
    results = {}
    for name, reduction in CASES:
        model = DistributedDataParallel(make_model())
        value = loss_for(name, reduction, True)(model(images[shard]), target[shard])
        value.backward()
        values = [torch.zeros(()) for _ in range(world)]
        dist.all_gather(values, value.detach())
        results[name, reduction] = torch.stack(values), [p.grad.clone() for p in model.parameters()]
    if rank == 0:
        torch.save(results, out_file)
    dist.barrier()  # neither rank tears down gloo while the other still talks to it
    dist.destroy_process_group()
    # Leave without the interpreter's teardown: gloo's threads can abort a worker while static objects are
    # destroyed ("terminate called without an active exception", SIGABRT; seen once in CI). Its work is done.
    os._exit(0)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_synced_losses_reproduce_single_process_gradients(tmp_path):
    out_file = tmp_path / "results.pt"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(out_file)), nprocs=2, join=True)
    results = torch.load(out_file)
    images, target = make_problem()
    for name, reduction in CASES:
        model = make_model()
        value = loss_for(name, reduction, True)(model(images), target)  # no process group: sync is a no-op
        value.backward()
        rank_values, grads = results[name, reduction]
        for got, expected in zip(grads, [p.grad for p in model.parameters()], strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6, msg=f"{name} {reduction}")
        # HEM/mean-style values are each rank's share times the world size: their mean is the global value;
        # dice's value is global on every rank
        torch.testing.assert_close(rank_values.mean(), value.detach(), rtol=1e-4, atol=1e-6)
        if name == "dice":
            torch.testing.assert_close(rank_values[0], rank_values[1])
