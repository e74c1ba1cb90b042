"""What a finished segmentation run gives beyond its scores (docs/deployment-and-gpus.md): quiet logs off a
terminal, TensorBoard event files, ``RUN/model/`` for ``smp.from_pretrained``, ``segloss export --onnx`` and
``segloss predict`` on a folder of images of any size. One tiny run (``segloss train`` in a subprocess,
whose stderr is a pipe, not a terminal) serves all of them."""

import io
import json

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
from PIL import Image

from segloss.runner.checkpoint import load_checkpoint
from segloss.runner.config import config_from_dict
from segloss.runner.progress import progress_bar
from segloss.segmentation import export, predict
from segloss.segmentation.models import model_from_config

from ..helpers import read_metrics, run_cli, tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")

EPOCHS, STEPS_PER_EPOCH = 2, 2  # 8 training images, batch 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 2-epoch HEM+ run with TensorBoard, evaluated after every epoch, and its stderr."""
    root = tmp_path_factory.mktemp("deployment")
    run_dir = root / "run"
    overrides = tiny_overrides(
        run_dir,
        data__num_train=8,
        data__num_eval=2,
        train__epochs=EPOCHS,
        train__eval_every=1,
        train__progress="true",  # asked for, but stderr is no terminal here
        train__tensorboard="true",
        train__log_every=1,  # the loss of every update in TensorBoard
        loss__name="hem+",
    )
    (root / "cache").mkdir()
    trained = run_cli(["train", *overrides], root / "cache")
    assert trained.returncode == 0, trained.stderr[-3000:]
    return run_dir, trained.stderr


class _Stream(io.StringIO):
    def __init__(self, terminal: bool):
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


@pytest.mark.parametrize(
    ("terminal", "progress", "shown"), [(True, True, True), (False, True, False), (True, False, False)]
)
def test_progress_bars_only_on_a_terminal(terminal, progress, shown):
    stream = _Stream(terminal)
    for _ in progress_bar(range(3), progress=progress, file=stream, desc="bar"):
        pass
    assert ("bar" in stream.getvalue()) is shown


def test_logs_get_a_line_per_epoch_and_no_bars(run):
    run_dir, stderr = run
    assert "\r" not in stderr and "step/s" not in stderr and "it/s" not in stderr
    log = (run_dir / "train.log").read_text()
    for epoch in range(1, EPOCHS + 1):
        assert f"epoch {epoch}/{EPOCHS}: loss" in stderr
        assert f"epoch {epoch}/{EPOCHS}: loss" in log


def test_tensorboard_events_read_back(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = run
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [event.step for event in losses] == list(range(EPOCHS * STEPS_PER_EPOCH))
    assert [event.value for event in events.Scalars("train/lr")] == pytest.approx([0.01] * len(losses))
    records = read_metrics(run_dir)  # the source of truth: TensorBoard shows the same numbers
    for record in records:
        steps = losses[(record["epoch"] - 1) * STEPS_PER_EPOCH : record["epoch"] * STEPS_PER_EPOCH]
        assert np.mean([event.value for event in steps]) == pytest.approx(record["loss"], rel=1e-5)
    miou = events.Scalars("eval/miou")
    assert [event.step for event in miou] == [1, 2]
    assert [event.value for event in miou] == pytest.approx([record["miou"] for record in records], rel=1e-6)
    results = json.loads((run_dir / "results.json").read_text())
    pixels = results["train_pixels"]  # per class, for the report's rarest classes
    assert set(pixels) == {row["class"] for row in results["per_class"]} and sum(pixels.values()) > 0
    for entry in results["per_class"]:
        if entry["iou"] is not None:
            assert events.Scalars(f"iou/{entry['class']}")[-1].value == pytest.approx(entry["iou"], rel=1e-6)
    pictures = events.Images("predictions")
    assert [event.step for event in pictures] == [1, 2]
    assert (pictures[-1].height, pictures[-1].width) == (2 * 64, 3 * 64)  # 2 overlays: image | truth | pred
    hparams = events.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in hparams and "_hparams_/session_start_info" in hparams
    assert b"loss.name" in hparams["_hparams_/session_start_info"]
    assert b"hem+" in hparams["_hparams_/session_start_info"]
    assert b"eval/miou" in hparams["_hparams_/experiment"]


def test_model_folder_loads_with_smp_alone(run):
    run_dir, _ = run
    model_dir = run_dir / "model"
    assert {"config.json", "model.safetensors", "segloss.json"} <= {p.name for p in model_dir.iterdir()}
    assert "segloss" not in (model_dir / "config.json").read_text()
    state = load_checkpoint(run_dir / "checkpoint.pt")
    config = config_from_dict(state["config"])
    reference = model_from_config(config, len(state["classes"]), pretrained=False)
    reference.load_state_dict(state["model"])
    loaded = smp.from_pretrained(str(model_dir))
    image = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        assert torch.equal(loaded.eval()(image), reference.eval()(image))
    assert json.loads((model_dir / "segloss.json").read_text())["classes"] == state["classes"]


def test_onnx_export_matches_pytorch(run, tmp_path, capsys):
    run_dir, _ = run
    target = tmp_path / "model.onnx"
    assert export.main([str(run_dir), "--onnx", str(target), "--size", "64", "96"]) == 0
    assert "onnxruntime matches PyTorch within" in capsys.readouterr().out
    # Dynamic batch and sides: another shape than the one exported with.
    import onnxruntime

    model, _ = export.load_model(run_dir)
    image = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(1))
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"image": image.numpy()})
    with torch.inference_mode():
        difference = np.abs(logits - model(image).numpy()).max()
    print(f"ONNX vs PyTorch max abs difference: {difference:.2e}")
    assert difference <= 1e-4


def test_export_names_the_extra_when_onnx_is_missing(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export, "missing_onnx_packages", lambda: ["onnxruntime"])
    assert export.main([str(run[0]), "--onnx", str(tmp_path / "m.onnx")]) == 1
    assert "segloss-hem[export]" in capsys.readouterr().err


def test_predict_folder_of_mixed_sizes_with_a_corrupt_image(run, tmp_path, capsys):
    run_dir, _ = run
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"small": (40, 50), "wide": (64, 150), "large": (130, 100)}
    for name, size in sizes.items():
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(images / f"{name}.png")
    (images / "broken.jpg").write_bytes(b"not an image at all")
    (images / "notes.txt").write_text("not an image file: ignored")
    out = tmp_path / "out"
    argv = ["--model", str(run_dir), "--images", str(images), "--out", str(out), "--no-progress"]
    assert predict.main([*argv, "--tile", "64", "--overlap", "16", "--format", "trainid"]) == 1
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "wrote 3 predictions" in captured.out
    assert sorted(p.name for p in out.glob("*.png")) == ["large.png", "small.png", "wide.png"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["large.png", "small.png", "wide.png"]
    for name, size in sizes.items():
        prediction = np.asarray(Image.open(out / f"{name}.png"))
        assert prediction.shape == size and prediction.max() < 9
        assert np.asarray(Image.open(out / "overlays" / f"{name}.png")).shape == (*size, 3)
    # Whole images (padded) from the model folder, in colour; Cityscapes ids need a Cityscapes model.
    (images / "broken.jpg").unlink()
    colour = tmp_path / "colour"
    argv = ["--model", str(run_dir / "model"), "--images", str(images), "--out", str(colour), "--no-progress"]
    assert predict.main(argv) == 0
    assert np.asarray(Image.open(colour / "large.png")).shape == (130, 100, 3)
    assert predict.main([*argv, "--format", "cityscapes"]) == 1
    assert "Cityscapes" in capsys.readouterr().err


def test_sliding_windows_blend_to_the_whole_image():
    """A pixel-wise model gives the same logits in windows as on the whole image: the blending weights
    sum to one everywhere, whatever the overlap and however the last window is placed."""
    model = torch.nn.Conv2d(3, 5, 1)
    image = torch.randn(1, 3, 100, 150)
    with torch.inference_mode():
        whole = model(image)
        for tile, overlap in ((64, 16), (64, 0), (96, 40)):
            windows = predict.sliding_window_logits(model, image, tile, overlap)
            torch.testing.assert_close(windows, whole, rtol=1e-5, atol=1e-5)
    assert predict.window_starts(150, 64, 48) == [0, 48, 86]
