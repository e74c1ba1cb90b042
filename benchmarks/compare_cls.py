"""Compare losses on an image classification recipe: accuracy, unknown-class AUROC (MSP, MLS) and DAR.

Trains one run per loss with the same seed, data and recipe through ``train.py``'s machinery (run folders
``OUT/LOSS`` with a checkpoint after every epoch: a finished run is reused, an interrupted one resumed),
evaluates each (test accuracy, AUROC against every unknown set, AutoAttack L∞/L2 robust accuracy and DAR,
corruptions when configured) and prints one table. Writes ``results.json`` and confidence histograms
(``hist_msp.png``, ``hist_mls.png``: known test images against all unknown sets pooled, one panel per loss)
to ``OUT``.

    python benchmarks/compare_cls.py                                    # digits, CPU, about a minute
    python benchmarks/compare_cls.py --config configs/cls_cifar10.yaml --losses ce hem ln \\
        data.root=data/cifar eval.attack_samples=1000                  # the paper's CIFAR-10 ResNet18 runs

Config overrides (``key=value``) may stand anywhere, after ``--losses`` too: a word with ``=`` is an
override, any other word after ``--losses`` a loss name (``--`` also ends the loss list).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from segloss.classification.plots import plot_confidence_histograms
from segloss.classification.rejection import SCORES
from segloss.classification.training import evaluate_checkpoint, train
from segloss.registry import LOSSES
from segloss.runner.config import load_config
from segloss.runner.files import CHECKPOINT_FILE, METRICS_FILE


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with the ``key=value`` words of ``--losses`` moved to ``overrides`` and every loss
    name checked (before anything trains)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="cls_digits", help="recipe name or YAML file")
    parser.add_argument(
        "--losses", nargs="+", default=["ce", "hem", "hem+", "ln"], help=f"of {', '.join(LOSSES)}"
    )
    parser.add_argument("--out", help="output folder (default: runs/cls_compare/DATASET)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_intermixed_args(argv)
    args.overrides += [word for word in args.losses if "=" in word]
    args.losses = [word for word in args.losses if "=" not in word]
    unknown = [name for name in args.losses if name not in LOSSES]
    if unknown:
        parser.error(
            f"--losses: unknown loss {unknown[0]!r}; valid losses: {', '.join(LOSSES)}. Config overrides "
            f"are key=value words (before --losses or after --)"
        )
    if not args.losses or len(set(args.losses)) != len(args.losses):
        parser.error(f"--losses needs distinct loss names, got {args.losses}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    base = load_config(args.config, args.overrides)
    out = Path(args.out or Path("runs") / "cls_compare" / base.data.name)
    print(
        f"{base.data.name}, {base.model.arch}, {base.train.epochs} epochs, losses {', '.join(args.losses)}, "
        f"unknown sets: {', '.join(base.eval.unknown_sets) or 'none'}; runs in {out}"
    )

    reports, results = {}, {}
    for loss_name in args.losses:
        run_dir = out / loss_name.replace("+", "plus")
        config = load_config(
            args.config, [*args.overrides, f"loss.name={loss_name}", f"train.out_dir={run_dir}"]
        )
        report = train(config, resume=True) or evaluate_checkpoint(
            run_dir / CHECKPOINT_FILE, progress=config.train.progress
        )
        history = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]
        train_seconds = sum(record["seconds"] for record in history)
        reports[loss_name] = report
        results[loss_name] = {**report.to_dict(), "train_seconds": train_seconds}
        print(f"\n== {loss_name} (trained in {train_seconds:.1f} s)\n{report.format()}")

    print("\n" + summary_table(reports))
    (out / "results.json").write_text(json.dumps(results, indent=2))
    for name, score in SCORES.items():
        if base.eval.unknown_sets:
            pooled = {
                loss: (score(r.test_logits), score(torch.cat(list(r.unknown_logits.values()))))
                for loss, r in reports.items()
            }
            plot_confidence_histograms(
                pooled, out / f"hist_{name}.png", score_name=name.upper(), unknown_label="unknown (all sets)"
            )
    print(f"\nwrote {out / 'results.json'} and histograms to {out}")


def summary_table(reports: dict) -> str:
    """One row per loss: accuracy, mean AUROC (MSP, MLS), and robust accuracy and DAR per attack (%)."""
    header = ["loss", "acc", "AUROC MSP", "AUROC MLS"]
    first = next(iter(reports.values()))
    for attack in first.attacks:
        header += [f"{attack.norm} robust", f"{attack.norm} DAR MSP", f"{attack.norm} DAR MLS"]
    rows = []
    for loss, report in reports.items():
        row = [loss, report.accuracy]
        row += (
            [report.unknown.mean["msp"], report.unknown.mean["mls"]] if report.unknown else [float("nan")] * 2
        )
        for attack in report.attacks:
            row += [attack.robust_accuracy, attack.dar["msp"], attack.dar["mls"]]
        rows.append(row)
    widths = [max(len(h), 6) for h in header]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    for row in rows:
        cells = [row[0].rjust(widths[0])] + [
            f"{100 * v:.2f}".rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
