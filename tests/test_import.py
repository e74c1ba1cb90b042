"""``import segloss`` and the losses need torch alone (SPEC §2); the classification commands need no
segmentation packages."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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
SEGMENTATION_ONLY = ["cv2", "albumentations", "segmentation_models_pytorch", "cityscapesscripts"]


def run_without(blocked: list[str], body: str) -> str:
    """The output of ``body`` run in a fresh interpreter (repo root) where importing ``blocked`` fails."""
    script = textwrap.dedent(
        f"""
        import sys

        import torch  # torch itself probes for some of these; the blocker guards what comes after

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError(f"blocked module {{name}}")

        sys.meta_path.insert(0, Block())
        sys.path.insert(0, ".")
        """
    ) + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_loss_core_imports_and_runs_with_torch_alone():
    output = run_without(
        OPTIONAL,
        """
        import segloss
        from segloss import metrics

        logits, target = torch.randn(4, 3, 5, 5), torch.randint(0, 3, (4, 5, 5))
        for name in segloss.LOSS_NAMES:
            segloss.build_loss(name, class_counts=[5, 10, 20])(logits, target)
        print(metrics.auroc(torch.tensor([2.0, 3.0]), torch.tensor([1.0])))
        """,
    )
    assert output == "1.0"


def test_classification_commands_need_no_segmentation_packages():
    """With the ``cls`` extra alone, train.py/evaluate.py import and reach the classification code."""
    output = run_without(
        SEGMENTATION_ONLY,
        """
        import evaluate
        import train
        import segloss.classification.training
        print("ok")
        """,
    )
    assert output == "ok"
