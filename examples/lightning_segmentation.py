"""A segloss loss in a PyTorch Lightning pipeline: an smp FPN trained with HEM+ (or any segloss loss) in a
``LightningModule``, under ``strategy="ddp"`` with ``sync=True``, and per-class IoU from torchmetrics'
``MulticlassConfusionMatrix`` (ignore index 255, summed over processes) scored with segloss's rule (NaN for
a class with neither ground truth nor prediction, left out of the mean).

    pip install "segloss-hem[seg,lightning]"
    python examples/lightning_segmentation.py --devices 2 --accelerator cpu   # 2 gloo processes
    python examples/lightning_segmentation.py --devices 4 --accelerator gpu   # 4 GPUs, NCCL, SyncBatchNorm

It trains on segloss's synthetic scenes (offline); swap ``datasets()`` for your own data: any dataset of
``(image 3×H×W float, mask H×W int64 with 255 = ignore)``. ``--batch-size`` is global (split over the
processes), as in ``segloss train``. Rank 0 writes ``OUT/summary.json`` (the global loss of every step,
the validation confusion matrix, mIoU and per-class IoU) and ``OUT/model/`` (smp's ``save_pretrained``).

``--no-shuffle --no-augment --freeze-bn --dropout 0`` make a run with N processes see the same batches as
one process with the same global batch and compute the same model (BatchNorm statistics cannot be
synchronised on CPUs, so they are frozen); the tests compare such runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import lightning as L
import segmentation_models_pytorch as smp
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from torchmetrics.classification import MulticlassConfusionMatrix

import segloss
from segloss.segmentation.data import IGNORE_INDEX, SyntheticScenes, class_statistics, presets
from segloss.segmentation.evaluation import predict
from segloss.segmentation.iou import SegmentationScores


class SegmentationModule(L.LightningModule):
    """An smp model, a segloss criterion (built with ``sync=True``) and a synchronised confusion matrix."""

    def __init__(
        self, model: nn.Module, criterion: nn.Module, classes: list[str], lr: float, freeze_bn: bool = False
    ):
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.classes = list(classes)
        self.lr = lr
        self.freeze_bn = freeze_bn
        # compute() sums the matrix over all processes (torchmetrics' dist_reduce_fx="sum").
        self.confusion = MulticlassConfusionMatrix(num_classes=len(classes), ignore_index=IGNORE_INDEX)
        self.step_losses: list[float] = []
        self.scores: SegmentationScores | None = None
        self.confusion_matrix: torch.Tensor | None = None

    def on_train_batch_start(self, batch: object, batch_index: int) -> None:
        if self.freeze_bn:  # BatchNorm uses its running statistics, whatever the batch split
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        image, mask = batch
        # With sync=True each process returns its share of the global mean: DDP's gradient averaging then
        # gives the gradients of one process on the whole batch, and the mean over processes is the loss.
        loss = self.criterion(self.model(image), mask.long())
        global_loss = self.all_gather(loss.detach()).mean()
        self.step_losses.append(global_loss.item())
        self.log("train/loss", global_loss, prog_bar=True, rank_zero_only=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        image, mask = batch
        logits = predict(self.model, image)  # full resolution: padded to a multiple of 32, cropped back
        self.confusion.update(logits.argmax(dim=1), mask.long())

    def on_validation_epoch_end(self) -> None:
        matrix = self.confusion.compute()  # the same on every process
        self.confusion.reset()
        self.confusion_matrix = matrix.cpu()
        self.scores = SegmentationScores.from_confusion(self.confusion_matrix, self.classes)
        values = {"val/miou": self.scores.miou, "val/pixel_accuracy": self.scores.pixel_accuracy}
        iou = self.scores.iou.tolist()
        values.update({f"val/iou/{name}": value for name, value in zip(self.classes, iou, strict=True)})
        self.log_dict({key: value for key, value in values.items() if not math.isnan(value)})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=0.9)


def datasets(args: argparse.Namespace) -> tuple[SyntheticScenes, SyntheticScenes]:
    """Training and validation scenes, normalised with ImageNet statistics."""
    mean, std = presets.IMAGENET_MEAN, presets.IMAGENET_STD
    evaluation = presets.eval_transform(mean, std)
    training = evaluation if args.no_augment else presets.train_transform(args.size, mean, std)
    return (
        SyntheticScenes("train", args.num_train, args.size, seed=args.seed, transform=training),
        SyntheticScenes("val", args.num_eval, args.size, seed=args.seed, transform=evaluation),
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loss", default="hem+", help="a segloss loss name (default hem+)")
    parser.add_argument("--encoder", default="tu-mobilenetv3_small_100", help="smp or tu-timm encoder")
    parser.add_argument("--encoder-weights", default=None, help="e.g. imagenet (default: none, offline)")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto")
    parser.add_argument("--batch-size", type=int, default=8, help="global batch, split over the processes")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--num-eval", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.2, help="FPN decoder dropout")
    parser.add_argument("--no-augment", action="store_true", help="no random crops, flips or colour jitter")
    parser.add_argument("--no-shuffle", action="store_true", help="training batches in dataset order")
    parser.add_argument("--freeze-bn", action="store_true", help="BatchNorm with fixed statistics")
    parser.add_argument("--out", default="runs/lightning", help="summary.json and model/ go here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train, validate after every epoch, and return (rank 0: also write) the summary."""
    args = parse_args(argv)
    L.seed_everything(args.seed, workers=True)
    if args.batch_size % args.devices:
        raise SystemExit(f"--batch-size {args.batch_size} is not divisible by --devices {args.devices}")
    train_set, val_set = datasets(args)
    train_scenes = SyntheticScenes("train", args.num_train, args.size, seed=args.seed)
    stats = class_statistics(train_scenes, progress=False)
    criterion = segloss.build_loss(  # the segmentation defaults: image-equivalent counts, target margins
        args.loss,
        class_counts=stats.counts / stats.pixels_per_image,
        presence_counts=stats.presence / stats.pixels_per_image,
        ignore_index=IGNORE_INDEX,
        sync=True,
        **({"margin_on": "target"} if args.loss == "hem+" else {}),
    )
    model = smp.FPN(
        args.encoder,
        encoder_weights=args.encoder_weights,
        classes=len(train_set.classes),
        decoder_dropout=args.dropout,
    )
    module = SegmentationModule(model, criterion, list(train_set.classes), args.lr, freeze_bn=args.freeze_bn)
    distributed = args.devices > 1
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        strategy="ddp" if distributed else "auto",
        # SyncBatchNorm needs GPUs; on CPUs freeze BatchNorm (--freeze-bn) or keep per-process statistics.
        sync_batchnorm=distributed and args.accelerator != "cpu" and not args.freeze_bn,
        max_epochs=args.epochs,
        default_root_dir=args.out,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=sys.stderr.isatty(),
        num_sanity_val_steps=0,
        deterministic=True,
        use_distributed_sampler=False,  # the samplers below
    )
    # Each process takes its share of the data through a DistributedSampler made here, so the order is
    # the documented one (seeded per epoch; in dataset order with --no-shuffle) and not Lightning's choice.
    world, rank = trainer.world_size, trainer.global_rank
    train_sampler = DistributedSampler(
        train_set, world, rank, shuffle=not args.no_shuffle, seed=args.seed, drop_last=True
    )
    # Validation: every image once when their number divides by the processes (else some count twice).
    val_sampler = DistributedSampler(val_set, world, rank, shuffle=False)
    trainer.fit(
        module,
        DataLoader(train_set, batch_size=args.batch_size // world, sampler=train_sampler, drop_last=True),
        DataLoader(val_set, batch_size=1, sampler=val_sampler),
    )
    scores = module.scores
    summary = {
        "world_size": trainer.world_size,
        "losses": module.step_losses,
        "confusion": module.confusion_matrix.tolist(),
        "miou": scores.miou,
        "per_class_iou": dict(zip(scores.classes, scores.iou.tolist(), strict=True)),
    }
    if trainer.is_global_zero:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        model.save_pretrained(str(out / "model"))  # loadable with smp.from_pretrained
        print(scores.format_table(f"validation after {args.epochs} epochs, {trainer.world_size} process(es)"))
    return summary


if __name__ == "__main__":
    main()
