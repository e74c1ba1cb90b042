"""The paper's comparison over finished runs: mIoU mean ± std over seeds per (dataset, encoder, loss).

    segloss report runs/ [more run folders] --out report

finds every segmentation run folder (``config.yaml`` + ``results.json``) below the given folders and writes
``report.md`` (a row per dataset and encoder, one column per loss), ``report.csv`` and ``report.png``.
Runs with held-out classes (``data.holdout_classes``) form their own dataset row ("camvid without car");
runs of other tasks (classification) are skipped with a note.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..registry import LOSSES
from .task import TASK as SEGMENTATION

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """One finished run: its condition (``dataset`` names any held-out classes), seed and mIoU (fraction)."""

    dataset: str
    encoder: str
    loss: str
    seed: int
    miou: float
    path: Path


@dataclass(frozen=True)
class Condition:
    """mIoU (%) over the seeds of one (dataset, encoder, loss)."""

    dataset: str
    encoder: str
    loss: str
    seeds: tuple[int, ...]
    mean: float
    std: float  # sample standard deviation; NaN for a single seed


def dataset_label(name: str, holdout_classes: Sequence[str] = ()) -> str:
    """The dataset of a condition: ``name``, or ``"NAME without A, B"`` when classes were held out of
    training (those runs are not comparable with the normal ones)."""
    return f"{name} without {', '.join(holdout_classes)}" if holdout_classes else name


def find_runs(folders: Iterable[str | Path]) -> list[RunResult]:
    """Every finished segmentation run (``config.yaml`` next to ``results.json``) at or below ``folders``;
    unfinished runs and runs of other tasks are skipped with a logged note."""
    runs = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"run folder not found: {folder}")
        for config_file in sorted(folder.rglob("config.yaml")):
            results_file = config_file.with_name("results.json")
            if not results_file.is_file():
                logger.warning("skipping %s: no results.json (the run has not finished)", config_file.parent)
                continue
            config = yaml.safe_load(config_file.read_text())
            task = config.get("task", SEGMENTATION)
            if task != SEGMENTATION:
                logger.info(
                    "skipping %s: a %s run (this report compares segmentation mIoU)", config_file.parent, task
                )
                continue
            results = json.loads(results_file.read_text())
            if "miou" not in results:
                logger.warning("skipping %s: its results.json has no miou", config_file.parent)
                continue
            miou = results["miou"]
            runs.append(
                RunResult(
                    dataset_label(config["data"]["name"], config["data"].get("holdout_classes") or ()),
                    config["model"]["encoder"],
                    config["loss"]["name"],
                    config["train"]["seed"],
                    math.nan if miou is None else miou,
                    config_file.parent,
                )
            )
    return runs


def summarise(runs: Sequence[RunResult]) -> list[Condition]:
    """Mean and sample std of mIoU (%) over seeds per condition, ordered by dataset, encoder, loss. A seed
    found twice in a condition (a copied run folder?) is logged as a warning; both runs count."""
    groups: dict[tuple[str, str, str], list[RunResult]] = defaultdict(list)
    for run in runs:
        groups[(run.dataset, run.encoder, run.loss)].append(run)
    conditions = []
    for (dataset, encoder, loss), members in groups.items():
        for seed, count in Counter(run.seed for run in members).items():
            if count > 1:
                paths = ", ".join(str(run.path) for run in members if run.seed == seed)
                logger.warning(
                    "%s / %s / %s has seed %d %d times (%s): copies of one run?",
                    dataset,
                    encoder,
                    loss,
                    seed,
                    count,
                    paths,
                )
        values = 100 * np.array([run.miou for run in members])
        std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        seeds = tuple(sorted(run.seed for run in members))
        conditions.append(Condition(dataset, encoder, loss, seeds, float(values.mean()), std))
    return sorted(conditions, key=lambda c: (c.dataset, c.encoder, _loss_order(c.loss)))


def _loss_order(loss: str) -> int:
    names = list(LOSSES)
    return names.index(loss) if loss in names else len(names)


def _cell(condition: Condition | None) -> str:
    if condition is None:
        return "—"
    spread = "" if math.isnan(condition.std) else f" ± {condition.std:.2f}"
    return f"{condition.mean:.2f}{spread} ({len(condition.seeds)})"


def markdown_table(conditions: Sequence[Condition]) -> str:
    """Rows (dataset, encoder), columns losses: ``mean ± std (seeds)``; a last row averages each loss's
    means over the rows that have every loss (the best average in bold), and a note names the rows left
    out of it."""
    losses = sorted({c.loss for c in conditions}, key=_loss_order)
    rows = sorted({(c.dataset, c.encoder) for c in conditions})
    by_key = {(c.dataset, c.encoder, c.loss): c for c in conditions}
    lines = [
        "| dataset | encoder | " + " | ".join(losses) + " |",
        "|---|---|" + "---|" * len(losses),
    ]
    for dataset, encoder in rows:
        cells = [_cell(by_key.get((dataset, encoder, loss))) for loss in losses]
        lines.append(f"| {dataset} | {encoder} | " + " | ".join(cells) + " |")
    absent = {row: [loss for loss in losses if (*row, loss) not in by_key] for row in rows}
    complete = [row for row in rows if not absent[row]]
    if complete:
        averages = [float(np.mean([by_key[(*row, loss)].mean for row in complete])) for loss in losses]
        best = max(averages)
        cells = [f"**{value:.2f}**" if value == best else f"{value:.2f}" for value in averages]
    else:
        cells = ["—"] * len(losses)
    lines.append("| average | | " + " | ".join(cells) + " |")
    left_out = [
        f"{dataset} / {encoder} (no {', '.join(absent[dataset, encoder])})"
        for dataset, encoder in rows
        if absent[dataset, encoder]
    ]
    if left_out:
        lines.append(
            f"\nThe average is over the rows with every loss ({len(complete)} of {len(rows)}); left "
            f"out: {'; '.join(left_out)}."
        )
    return "\n".join(lines)


def write_csv(conditions: Sequence[Condition], path: Path) -> None:
    """One row per condition: dataset, encoder, loss, runs, seeds, mIoU mean and std (%)."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["dataset", "encoder", "loss", "runs", "seeds", "miou_mean", "miou_std"])
        for c in conditions:
            std = "" if math.isnan(c.std) else f"{c.std:.4f}"
            seeds = " ".join(map(str, c.seeds))
            writer.writerow([c.dataset, c.encoder, c.loss, len(c.seeds), seeds, f"{c.mean:.4f}", std])


def plot_conditions(conditions: Sequence[Condition], path: Path) -> None:
    """Grouped bars: one group per (dataset, encoder), one bar per loss, std as error bars."""
    from matplotlib.figure import Figure

    losses = sorted({c.loss for c in conditions}, key=_loss_order)
    rows = sorted({(c.dataset, c.encoder) for c in conditions})
    by_key = {(c.dataset, c.encoder, c.loss): c for c in conditions}
    width = 0.8 / len(losses)
    fig = Figure(figsize=(max(6.0, 0.6 * len(rows) * len(losses) + 2), 4))
    ax = fig.subplots()
    positions = np.arange(len(rows))
    for offset, loss in enumerate(losses):
        found = [by_key.get((dataset, encoder, loss)) for dataset, encoder in rows]
        means = [c.mean if c else 0.0 for c in found]
        errors = [0.0 if c is None or math.isnan(c.std) else c.std for c in found]
        ax.bar(
            positions + (offset - (len(losses) - 1) / 2) * width,
            means,
            width,
            yerr=errors,
            capsize=2,
            label=loss,
        )
    ax.set_xticks(positions, [f"{dataset}\n{encoder}" for dataset, encoder in rows])
    ax.set_ylabel("mIoU (%)")
    ax.legend(ncols=min(len(losses), 7), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Write the report of the runs below the given folders; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="+", help="run folders or folders holding runs")
    parser.add_argument(
        "--out", default="report", help="output prefix for .md, .csv and .png (default: report)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        runs = find_runs(args.folders)
    except (OSError, KeyError, ValueError, yaml.YAMLError) as error:
        parser.error(str(error))
    if not runs:
        parser.error(f"no finished runs (config.yaml with results.json) below {', '.join(args.folders)}")
    conditions = summarise(runs)
    table = markdown_table(conditions)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    header = f"mIoU (%) mean ± std over seeds (number of seeds), {len(runs)} runs\n\n"
    Path(f"{args.out}.md").write_text(header + table + "\n")
    write_csv(conditions, Path(f"{args.out}.csv"))
    plot_conditions(conditions, Path(f"{args.out}.png"))
    sys.stdout.write(header + table + f"\n\nwrote {args.out}.md, {args.out}.csv, {args.out}.png\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
