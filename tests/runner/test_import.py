"""``import segloss``, the losses and ``segloss --help`` need torch alone; the classification commands need no
segmentation packages."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
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
    "tqdm",
    "PIL",
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

        def run_command(*argv):
            # segloss ARGV as python -m segloss runs it; True when it exits with status 0
            import runpy

            sys.argv = ["segloss", *argv]
            try:
                runpy.run_module("segloss", run_name="__main__", alter_sys=True)
            except SystemExit as exit:
                return exit.code in (0, None)
            return True
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
            loss = segloss.build_loss(name, class_counts=[5, 10, 20], presence_counts=[50, 50, 50])
            loss(logits.requires_grad_(), target).backward()
        # the custom ops (and dynamo, seconds to import) load only under torch.compile
        assert "torch._dynamo" not in sys.modules and "segloss._kernels.ops" not in sys.modules
        print(metrics.auroc(torch.tensor([2.0, 3.0]), torch.tensor([1.0])))
        """,
    )
    assert output == "1.0"


def test_segloss_command_help_needs_torch_alone():
    output = run_without(
        OPTIONAL,
        """
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()) as text:
            ok = run_command("--help") and run_command("train", "--help")
        print(ok, "demo" in text.getvalue(), "--help-keys" in text.getvalue())
        """,
    )
    assert output == "True True True"


def test_classification_commands_need_no_segmentation_packages():
    """With the ``cls`` extra alone, the command and train.py/evaluate.py import and reach the
    classification code, and the classification recipes load."""
    output = run_without(
        SEGMENTATION_ONLY,
        """
        import contextlib
        import io

        import evaluate
        import train
        import segloss.classification.training
        from segloss.runner.config import load_config

        with contextlib.redirect_stdout(io.StringIO()):
            assert run_command("evaluate", "--help")
        print(load_config("cls_digits").task)
        """,
    )
    assert output == "classification"
