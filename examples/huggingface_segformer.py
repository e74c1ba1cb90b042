"""A segloss loss in a Hugging Face ``Trainer``: SegFormer trained with HEM+ instead of the model's own
cross-entropy, through ``Trainer(compute_loss_func=...)``.

    pip install "segloss-hem[seg,hf]"
    python examples/huggingface_segformer.py                              # synthetic scenes, offline, CPU
    python examples/huggingface_segformer.py --pretrained nvidia/mit-b0 --steps 4000   # ImageNet encoder

SegFormer's logits come at a quarter of the input size; the loss upsamples them to the label size
(bilinear, as the model's own loss does) and ignores 255. HEM+ takes per-class margins from the training
split's class counts in image-equivalents, with the margin on the target class (the segmentation defaults
of ``segloss train``; docs/losses-and-margins.md). Without ``--pretrained`` the model is built from a small
config with random weights, so nothing is downloaded. The data are segloss's synthetic scenes; any dataset
that yields ``{"pixel_values": 3×H×W float, "labels": H×W int64 with 255 = ignore}`` works the same way.

Gradient accumulation: with ``compute_loss_func`` the ``Trainer`` leaves the scaling to the function
(it expects a loss normalised by ``num_items_in_batch``, a token count), so ``segloss_compute_loss`` divides
the batch mean by the accumulation steps itself. Under DDP build the loss with ``sync=True`` and set
``average_tokens_across_devices=False``: each process then returns its share of the global mean.

Evaluation: the ``Trainer`` evaluates the val scenes with segloss's per-class IoU (``compute_metrics`` on
the logits upsampled to the labels and reduced to predictions in ``preprocess_logits_for_metrics``, so a
split never holds all its logits), and the trained model is saved with ``save_pretrained`` in ``--out``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from transformers import SegformerConfig, SegformerForSemanticSegmentation, Trainer, TrainingArguments

import segloss
from segloss.segmentation.data import IGNORE_INDEX, SyntheticScenes, class_statistics, presets
from segloss.segmentation.iou import SegmentationScores, confusion_matrix


def segloss_compute_loss(
    loss: nn.Module, gradient_accumulation_steps: int = 1
) -> Callable[..., torch.Tensor]:
    """A ``compute_loss_func`` for ``Trainer``: ``loss`` of the logits upsampled to the label size.

    Args:
        loss: a segloss loss (``segloss.build_loss(...)``) with ``ignore_index=255``.
        gradient_accumulation_steps: the ``TrainingArguments`` value; the batch mean is divided by it.

    Returns:
        ``compute_loss(outputs, labels, num_items_in_batch=None)``.
    """

    def compute_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = F.interpolate(outputs.logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        return loss(logits, labels) / gradient_accumulation_steps

    return compute_loss


class HuggingFaceBatches(Dataset):
    """A segloss dataset as the dicts a Hugging Face model takes."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, mask = self.dataset[index]
        return {"pixel_values": image, "labels": mask.long()}


def small_segformer(num_labels: int) -> SegformerForSemanticSegmentation:
    """A SegFormer of about 0.4 M parameters (MiT-b0's layout, narrower and shallower), random weights."""
    config = SegformerConfig(
        num_labels=num_labels,
        depths=[1, 1, 1, 1],
        hidden_sizes=[16, 32, 64, 128],
        num_attention_heads=[1, 2, 4, 8],
        decoder_hidden_size=64,
        semantic_loss_ignore_index=IGNORE_INDEX,
    )
    return SegformerForSemanticSegmentation(config)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loss", default="hem+", help="a segloss loss name (default hem+)")
    parser.add_argument("--pretrained", help="a SegFormer checkpoint, e.g. nvidia/mit-b0 (downloads)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--gradient-accumulation", type=int, default=1)
    parser.add_argument("--lr", type=float, default=6e-4, help="AdamW, SegFormer's recipe scaled up")
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--num-val", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/huggingface")
    return parser.parse_args(argv)


def predictions(logits: Any, labels: torch.Tensor) -> torch.Tensor:
    """``preprocess_logits_for_metrics``: the predicted class of every labelled pixel (logits upsampled to
    the labels, as the loss does), so that evaluation keeps predictions, not logits."""
    logits = logits[0] if isinstance(logits, tuple) else logits
    upsampled = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return upsampled.argmax(dim=1)


def iou_metrics(classes: tuple[str, ...]) -> Callable[[Any], dict[str, float]]:
    """``compute_metrics``: mIoU, pixel accuracy and per-class IoU from segloss's confusion matrix."""

    def compute(evaluation: Any) -> dict[str, float]:
        predicted, labels = (
            torch.as_tensor(array) for array in (evaluation.predictions, evaluation.label_ids)
        )
        scores = SegmentationScores.from_confusion(confusion_matrix(predicted, labels, len(classes)), classes)
        per_class = {f"iou_{name}": float(value) for name, value in zip(classes, scores.iou, strict=True)}
        return {"miou": scores.miou, "pixel_accuracy": scores.pixel_accuracy, **per_class}

    return compute


def build(args: argparse.Namespace) -> Trainer:
    """The ``Trainer`` with the segloss loss and the synthetic training scenes."""
    mean, std = presets.IMAGENET_MEAN, presets.IMAGENET_STD
    scenes = SyntheticScenes(
        "train",
        args.num_train,
        args.size,
        seed=args.seed,
        transform=presets.train_transform(args.size, mean, std),
    )
    stats = class_statistics(
        SyntheticScenes("train", args.num_train, args.size, seed=args.seed), progress=False
    )
    loss = segloss.build_loss(
        args.loss,
        class_counts=stats.counts / stats.pixels_per_image,  # image-equivalents
        presence_counts=stats.presence / stats.pixels_per_image,
        ignore_index=IGNORE_INDEX,
        **({"margin_on": "target"} if args.loss == "hem+" else {}),
    )
    if args.pretrained:
        model = SegformerForSemanticSegmentation.from_pretrained(
            args.pretrained, num_labels=len(scenes.classes)
        )
    else:
        model = small_segformer(len(scenes.classes))
    training_args = TrainingArguments(
        output_dir=args.out,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation,
        learning_rate=args.lr,
        lr_scheduler_type="polynomial",
        logging_steps=max(1, args.steps // 10),
        save_strategy="no",
        eval_strategy="no",
        per_device_eval_batch_size=args.batch_size,
        report_to=[],
        seed=args.seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),  # pinned memory serves only a GPU
        average_tokens_across_devices=False,
        remove_unused_columns=False,
    )
    val = SyntheticScenes(
        "val", args.num_val, args.size, seed=args.seed, transform=presets.eval_transform(mean, std)
    )
    return Trainer(
        model=model,
        args=training_args,
        train_dataset=HuggingFaceBatches(scenes),
        eval_dataset=HuggingFaceBatches(val),
        compute_loss_func=segloss_compute_loss(loss, args.gradient_accumulation),
        compute_metrics=iou_metrics(tuple(scenes.classes)),
        preprocess_logits_for_metrics=predictions,
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train, evaluate on the val scenes, save the model in ``--out``; returns the evaluation."""
    args = parse_args(argv)
    trainer = build(args)
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(args.out)  # save_pretrained: SegformerForSemanticSegmentation.from_pretrained(out)
    return metrics


if __name__ == "__main__":
    evaluation = main()
    miou, accuracy = evaluation["eval_miou"], evaluation["eval_pixel_accuracy"]
    print(f"val mIoU {100 * miou:.2f} %, pixel accuracy {100 * accuracy:.2f} %")
