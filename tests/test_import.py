"""``import segloss`` and the losses need torch alone (SPEC §2)."""

import subprocess
import sys
import textwrap

OPTIONAL = [
    "cv2",
    "albumentations",
    "segmentation_models_pytorch",
    "timm",
    "scipy",
    "sklearn",
    "yaml",
    "matplotlib",
    "torchmetrics",
    "cityscapesscripts",
    "torchattacks",
    "torchvision",
    "triton",
]

SCRIPT = textwrap.dedent(
    f"""
    import sys

    import torch  # torch itself probes for some of these; the blocker guards segloss's imports

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {OPTIONAL!r}:
                raise ImportError(f"blocked optional module {{name}}")

    sys.meta_path.insert(0, Block())
    import segloss
    from segloss import metrics

    logits, target = torch.randn(4, 3, 5, 5), torch.randint(0, 3, (4, 5, 5))
    for name in segloss.LOSS_NAMES:
        segloss.build_loss(name, class_counts=[5, 10, 20])(logits, target)
    print(metrics.auroc(torch.tensor([2.0, 3.0]), torch.tensor([1.0])))
    """
)


def test_loss_core_imports_and_runs_with_torch_alone():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "1.0"


SEGMENTATION_ONLY = ["cv2", "albumentations", "segmentation_models_pytorch", "cityscapesscripts"]
CLASSIFICATION_ONLY = textwrap.dedent(
    f"""
    import sys

    import torch

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {SEGMENTATION_ONLY!r}:
                raise ImportError(f"blocked segmentation-only module {{name}}")

    sys.meta_path.insert(0, Block())
    sys.path.insert(0, ".")
    import evaluate
    import train
    import segloss.classification.training
    print("ok")
    """
)


def test_classification_commands_need_no_segmentation_packages():
    """With the ``cls`` extra alone, train.py/evaluate.py import and reach the classification code."""
    root = __file__.rsplit("/tests/", 1)[0]
    result = subprocess.run(
        [sys.executable, "-c", CLASSIFICATION_ONLY], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
