"""``segloss stats``: per-class pixel counts, shares and HEM / HEM+ margins of a split."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..._cache import CACHE_ENV
from ...margins import hem_margin, hem_plus_margins
from .counts import ClassStatistics, class_statistics
from .registry import DATASETS, build_dataset


def margins_report(stats: ClassStatistics, M: float) -> dict[str, Any]:
    """Counts, shares of all pixels and HEM / HEM+ margins, counting samples in pixels and in
    image-equivalents (pixels ÷ pixels per image). Margins are ``None`` when a class has no pixels."""
    counts = stats.counts
    all_pixels = int(counts.sum()) + stats.ignored
    per_image = stats.pixels_per_image
    report: dict[str, Any] = {
        "num_images": stats.num_images,
        "pixels_per_image": per_image,
        "labelled_pixels": int(counts.sum()),
        "ignored_pixels": stats.ignored,
        "ignored_share": stats.ignored / all_pixels,
        "M": M,
        "hem_margin": None,
        "hem_margin_images": None,
        "error": None,
    }
    plus, plus_images = [None] * len(counts), [None] * len(counts)
    try:
        report["hem_margin"] = hem_margin(counts, M, class_names=stats.classes)
        report["hem_margin_images"] = hem_margin(counts / per_image, M, class_names=stats.classes)
        plus = hem_plus_margins(counts, M, class_names=stats.classes).tolist()
        plus_images = hem_plus_margins(counts / per_image, M, class_names=stats.classes).tolist()
    except ValueError as error:
        report["error"] = str(error)
    report["classes"] = [
        {
            "class": name,
            "pixels": int(count),
            "share": int(count) / all_pixels,
            "hem_plus_margin": margin,
            "hem_plus_margin_images": margin_images,
        }
        for name, count, margin, margin_images in zip(stats.classes, counts, plus, plus_images, strict=True)
    ]
    return report


def format_report(report: dict[str, Any], title: str) -> str:
    """The report of ``margins_report`` as a readable text table."""

    def number(value: float | None) -> str:
        return "—" if value is None else f"{value:.4g}"

    name_width = max(len("ignored"), *(len(row["class"]) for row in report["classes"]))
    lines = [
        f"{title}: {report['num_images']} images, {report['pixels_per_image']:,.0f} pixels per image, "
        f"{100 * report['ignored_share']:.2f} % ignored",
        f"{'class':<{name_width}}  {'pixels':>15}  {'share %':>8}  {'HEM+ margin':>12}  {'(image-eq.)':>12}",
    ]
    for row in report["classes"]:
        lines.append(
            f"{row['class']:<{name_width}}  {row['pixels']:>15,}  {100 * row['share']:>8.2f}  "
            f"{number(row['hem_plus_margin']):>12}  {number(row['hem_plus_margin_images']):>12}"
        )
    lines.append(
        f"{'ignored':<{name_width}}  {report['ignored_pixels']:>15,}  {100 * report['ignored_share']:>8.2f}"
    )
    lines.append(
        f"HEM margin (M = {report['M']:g}): {number(report['hem_margin'])} counting pixels, "
        f"{number(report['hem_margin_images'])} counting image-equivalents"
    )
    if report["error"]:
        lines.append(f"margins undefined: {report['error']}")
    return "\n".join(lines)


def _parse_args(
    argv: Sequence[str] | None, prog: str | None
) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Per-class pixel counts, shares and HEM / HEM+ margins of a segmentation split.",
    )
    parser.add_argument("--dataset", required=True, choices=list(DATASETS))
    parser.add_argument("--root", help="dataset folder (not needed for synthetic)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--M", type=float, default=2000.0, help="margin constant M (default 2000)")
    parser.add_argument("--out", type=Path, help="also write the table as JSON to this file")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help=f"count cache (default ${CACHE_ENV}, else $XDG_CACHE_HOME/segloss or ~/.cache/segloss)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    folder = parser.add_argument_group("folder dataset")
    folder.add_argument("--classes", nargs="+", help="class names in index order")
    folder.add_argument("--ignore-index", type=int, help="void value in the mask files (default 255)")
    synthetic = parser.add_argument_group("synthetic dataset")
    synthetic.add_argument("--num-samples", type=int)
    synthetic.add_argument("--size", type=int, nargs="+", help="H W, or one number for square images")
    synthetic.add_argument("--seed", type=int)
    return parser, parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Print the per-class table of a split (and, with ``--out``, write it as JSON)."""
    parser, args = _parse_args(argv, prog)
    if not args.M > 0:
        parser.error(f"--M must be positive, got {args.M:g}")
    options = {
        "classes": args.classes,
        "ignore_index": args.ignore_index,
        "num_samples": args.num_samples,
        "size": (args.size[0] if len(args.size) == 1 else tuple(args.size)) if args.size else None,
        "seed": args.seed,
    }
    try:
        dataset = build_dataset(
            args.dataset, args.root, args.split, **{k: v for k, v in options.items() if v is not None}
        )
        stats = class_statistics(dataset, cache_dir=args.cache_dir, progress=not args.no_progress)
    except (OSError, ValueError, TypeError) as error:
        parser.error(str(error))
    report = {
        "dataset": args.dataset,
        "root": args.root,
        "split": args.split,
        **margins_report(stats, args.M),
    }
    sys.stdout.write(format_report(report, f"{type(dataset).__name__} {args.split}"))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
        sys.stdout.write(f"\nwrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
