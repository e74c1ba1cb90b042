"""``examples/huggingface_segformer.py``: a few ``Trainer`` steps with HEM+ through ``compute_loss_func``,
and the ``Trainer``'s loss on one batch equal to the same loss computed by hand."""

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

import segloss

from ..helpers import REPO

EXAMPLE = REPO / "examples" / "huggingface_segformer.py"
TINY = ["--num-train", "8", "--size", "64", "--batch-size", "4", "--steps", "3"]


def load_example():
    spec = importlib.util.spec_from_file_location("huggingface_segformer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # On the test path the repository's datasets/ folder (pages and scripts) is a namespace package named
    # like Hugging Face's `datasets`, which the Trainer would then take for the real one.
    monkeypatch.setattr("transformers.trainer.is_datasets_available", lambda: False)
    return load_example()


def one_batch(trainer):
    return trainer.data_collator([trainer.train_dataset[index] for index in range(4)])


@pytest.mark.usefixtures("one_thread")
def test_the_trainer_trains_with_hem_plus_and_its_loss_is_the_hand_computed_one(example, tmp_path):
    trainer = example.build(example.parse_args([*TINY, "--out", str(tmp_path / "run")]))
    trainer.train()
    losses = [record["loss"] for record in trainer.state.log_history if "loss" in record]
    assert len(losses) == 3 and all(math.isfinite(value) and value > 0 for value in losses)

    model = trainer.model.eval()  # no dropout: both computations see the same logits
    batch = one_batch(trainer)
    assert batch["labels"].shape == (4, 64, 64)
    batch["labels"][:, :8] = 255  # an ignored band, whatever the random crop held
    with torch.no_grad():
        got = trainer.compute_loss(model, dict(batch))
        logits = model(pixel_values=batch["pixel_values"]).logits
        assert logits.shape[-2:] == (16, 16)  # SegFormer predicts at a quarter of the input size
        upsampled = F.interpolate(logits, size=(64, 64), mode="bilinear", align_corners=False)
        hem_plus = trainer.compute_loss_func.__closure__  # the loss the example built, reached by hand:
        loss = next(
            cell.cell_contents for cell in hem_plus if isinstance(cell.cell_contents, torch.nn.Module)
        )
        assert (
            isinstance(loss, segloss.HEMPlusLoss) and loss.margin_on == "target" and loss.ignore_index == 255
        )
        torch.testing.assert_close(got, loss(upsampled, batch["labels"]))


@pytest.mark.usefixtures("one_thread")
def test_the_example_evaluates_with_segloss_iou_and_saves_the_model(example, tmp_path):
    from transformers import SegformerForSemanticSegmentation

    from segloss.segmentation.iou import SegmentationScores, confusion_matrix

    out = tmp_path / "run"
    metrics = example.main([*TINY, "--num-val", "4", "--out", str(out)])
    assert 0 <= metrics["eval_miou"] <= 1 and "eval_iou_road" in metrics
    # the saved model reloads and gives the reported mIoU on the same scenes
    model = SegformerForSemanticSegmentation.from_pretrained(out).eval()
    trainer = example.build(example.parse_args([*TINY, "--num-val", "4", "--out", str(tmp_path / "x")]))
    batch = trainer.data_collator([trainer.eval_dataset[index] for index in range(4)])
    with torch.no_grad():
        predicted = example.predictions(model(pixel_values=batch["pixel_values"]).logits, batch["labels"])
    classes = tuple(trainer.train_dataset.dataset.classes)
    scores = SegmentationScores.from_confusion(
        confusion_matrix(predicted, batch["labels"], len(classes)), classes
    )
    assert scores.miou == pytest.approx(metrics["eval_miou"])


@pytest.mark.usefixtures("one_thread")
def test_cross_entropy_through_the_example_is_segformers_own_loss(example, tmp_path):
    """The upsampling matches the model's: with ``ce`` the example's loss is SegFormer's built-in one, and
    gradient accumulation divides it by the accumulation steps."""
    args = example.parse_args([*TINY, "--loss", "ce", "--gradient-accumulation", "2", "--out", str(tmp_path)])
    trainer = example.build(args)
    model = trainer.model.eval()
    batch = one_batch(trainer)
    with torch.no_grad():
        ours = trainer.compute_loss(model, dict(batch))
        theirs = model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss
    torch.testing.assert_close(ours * 2, theirs)
