"""AutoAttack's cost per image on a trained classifier, to choose ``eval.attack_samples``.

    python benchmarks/bench_attack.py --checkpoint RUN/checkpoint.pt --samples 200
    python benchmarks/bench_attack.py --checkpoint RUN/checkpoint.pt --data-root data/mnist --threads 1

Loads the run on the CPU, attacks its first ``--samples`` test images with AutoAttack (torchattacks'
standard version, seed 0) at the run's budgets (``eval.attack_norms``, ε as the run uses them) and prints,
per norm, the seconds per image and the robust accuracy. The cost depends on the network: AutoAttack runs
its four attacks one after another on the images the earlier ones did not break, so a network the first
attack (APGD-CE) breaks completely is the cheap case and a robust one costs all four attacks on every
image.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import torch

from segloss.classification import recipe
from segloss.classification.constants import TASK
from segloss.classification.data import stack_images
from segloss.classification.rejection import adversarial_rejection, attack_budgets
from segloss.runner.checkpoint import load_run


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The command line; returns one row per norm: ``norm``, ``eps``, ``seconds_per_image``, ``robust``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt of a classification run")
    parser.add_argument("--samples", type=int, default=200, help="test images to attack (default 200)")
    parser.add_argument("--data-root", help="where the run's data is now (default: its data.root)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples must be at least 1, got {args.samples}")
    if args.threads:
        torch.set_num_threads(args.threads)
    moved = [f"data.root={args.data_root}"] if args.data_root else []
    state, config = load_run(args.checkpoint, TASK, overrides=moved)
    data = recipe.data_from_config(config)
    model = recipe.model_from_config(config, data)
    model.load_state_dict(state["model"])
    images, labels = stack_images(data.test)
    images, labels = images[: args.samples], labels[: args.samples]
    eps = attack_budgets(data.name, config.eval.attack_norms, config.eval.attack_eps)
    rows = []
    print(f"{args.checkpoint}: AutoAttack on {len(labels)} test images, {torch.get_num_threads()} threads")
    print(f"{'norm':6} {'eps':>6} {'s/image':>8} {'robust %':>9}")
    for norm, budget in zip(config.eval.attack_norms, eps, strict=True):
        start = time.perf_counter()
        result = adversarial_rejection(
            model,
            images,
            labels,
            norm=norm,
            eps=budget,
            num_classes=data.num_classes,
            device="cpu",
            progress=False,
        )
        seconds = (time.perf_counter() - start) / len(labels)
        rows.append(
            {"norm": norm, "eps": budget, "seconds_per_image": seconds, "robust": result.robust_accuracy}
        )
        print(f"{norm:6} {budget:6.3g} {seconds:8.3f} {100 * result.robust_accuracy:9.1f}")
    return rows


if __name__ == "__main__":
    main()
