"""Regenerate the study tables and plots in README.md and docs/ from the runs committed under studies/.

A table in a document sits between a marker that names the report command and a closing marker:

    <!-- segloss report studies/camvid/losses --results test.json (table 2) -->
    | ... the second table that command prints ... |
    <!-- /segloss report -->

(``(table K)`` is optional: the first table.) This script runs each such ``segloss report`` on the committed
runs and pastes its table between the markers, and redraws the plots listed in ``PLOTS`` and
``CURVES``. ``--check``
changes nothing and exits with 1 when a table differs from what the report prints (a test runs it).

    python studies/update_docs.py            # rewrite the tables and plots
    python studies/update_docs.py --check    # are they what the reports print?
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/**/*.md")  # docs/ and its subfolders (docs/studies/)
# a marked table; its body is optional and lazy, so an empty one never reaches the next table's closing marker
MARKER = re.compile(
    r"(<!-- segloss report (?P<command>[^>]*?)(?: \(table (?P<table>\d+)\))? -->\n)(?P<body>.*?\n)??"
    r"(<!-- /segloss report -->)",
    re.S,
)
# the five-seed confirmation of the CamVid study: CE, HEM+ and the three best alternatives on val
CONFIRMATION = " ".join(
    f"studies/camvid/losses/{name}-s?" for name in ("ce", "hemplus", "dice", "ce+dice", "lovasz")
)
# plot in the repository -> the report command (from the repository root) whose PNG it is
PLOTS = {
    "docs/images/camvid-confirmation-test.png": f"{CONFIRMATION} --results test.json",
    "docs/images/camvid-loss-screen-test.png": "studies/camvid/losses/*-s[01] --results test.json",
    "docs/images/camvid-ce-recipe-val.png": "studies/camvid/ce-recipe",
    "docs/images/two-datasets-test.png": "studies/camvid/precision/fp32-* studies/idd_lite/losses "
    "studies/idd_lite/ce-recipe/lr0.01-s? --results test.json --by-dataset --rare-below 3",
}
# plot in the repository -> the run folders (shell patterns) whose val curves it shows (did they plateau?)
CURVES = {
    "docs/images/idd-lite-ce-recipe-curves.png": "studies/idd_lite/ce-recipe",
    "docs/images/idd-lite-losses-curves.png": "studies/idd_lite/losses studies/idd_lite/ce-recipe/lr0.01-s?",
}


def report(command: str, out: Path) -> str:
    """Run ``segloss report COMMAND --out OUT`` from the repository root (quietly; folder patterns such as
    ``studies/camvid/losses/ce-s?`` expanded as a shell would); returns ``OUT.md``."""
    from segloss.runner.report import main

    argv = []
    for arg in shlex.split(command):
        if any(char in arg for char in "*?[") and not arg.startswith("-"):
            argv += sorted(str(path) for path in REPO.glob(arg) if path.is_dir())  # as a shell expands it
        else:
            argv.append(str(REPO / arg) if (REPO / arg).is_dir() else arg)
    with contextlib.redirect_stdout(io.StringIO()):
        status = main([*argv, "--out", str(out)])
    if status != 0:
        raise RuntimeError(f"segloss report {command} failed ({status})")
    return out.with_suffix(".md").read_text()


def plot_val_curves(folders: str, path: Path) -> None:
    """Val mIoU (%) after each evaluated epoch of every run at or below ``folders`` (space-separated, with
    shell patterns; each run's ``metrics.jsonl``): a colour per setting of the config keys that vary between
    the runs (the learning rate, the loss), each seed a faint line, the mean over the seeds a bold one."""
    import json

    import yaml
    from matplotlib.figure import Figure

    from segloss.runner.grouping import LOSS_KEY, key_labels, used_settings, value_text, varying_keys

    runs = sorted(
        {
            metrics.parent
            for pattern in folders.split()
            for folder in sorted(REPO.glob(pattern))
            for metrics in [*folder.glob("metrics.jsonl"), *folder.glob("*/metrics.jsonl")]
        }
    )
    settings = [  # lists as tuples, so that varying_keys can compare them
        {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in used_settings(yaml.safe_load(c.read_text())).items()
        }
        for c in (run / "config.yaml" for run in runs)
    ]
    keys = varying_keys(settings)
    labels = key_labels(keys)
    curves: dict[str, list[dict[int, float]]] = {}  # setting -> val mIoU per epoch of each seed
    for run, setting in zip(runs, settings, strict=True):
        name = ", ".join(
            value_text(setting[key]) if key == LOSS_KEY else f"{labels[key]} {value_text(setting[key])}"
            for key in keys
            if setting[key] is not None
        )
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
        evaluated = {r["epoch"]: 100 * r["miou"] for r in records if r.get("miou") is not None}
        curves.setdefault(name or "runs", []).append(evaluated)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for index, (name, seeds) in enumerate(curves.items()):
        color = f"C{index}"
        for curve in seeds:  # each seed faint, the mean over the seeds bold
            ax.plot(list(curve), list(curve.values()), color=color, alpha=0.3, linewidth=0.8)
        epochs = sorted(set.intersection(*(set(curve) for curve in seeds)))
        means = [sum(curve[epoch] for curve in seeds) / len(seeds) for epoch in epochs]
        ax.plot(
            epochs,
            means,
            color=color,
            marker="o",
            label=f"{name} ({len(seeds)} seed{'s' * (len(seeds) > 1)})",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("val mIoU (%)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def tables(markdown: str) -> list[str]:
    """The markdown tables of a report, in order (each its ``|`` lines joined)."""
    found, current = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append("\n".join(current))
            current = []
    return found


def update(check: bool = False) -> list[str]:
    """Refresh every marked table and redraw the plots of ``PLOTS``; with ``check``, only compare the tables
    (plots are not compared). Returns the documents whose tables differ (``check``) or were rewritten."""
    changed = []
    with tempfile.TemporaryDirectory() as scratch:
        printed: dict[str, list[str]] = {}

        def table(match: re.Match) -> str:
            command, index = match["command"], int(match["table"] or 1)
            if command not in printed:
                printed[command] = tables(report(command, Path(scratch) / f"r{len(printed)}"))
            found = printed[command]
            if index > len(found):
                raise ValueError(f"segloss report {command} prints {len(found)} tables, not {index}")
            return match.group(1) + found[index - 1] + "\n" + match.group(5)

        for pattern in DOCUMENTS:
            for document in sorted(REPO.glob(pattern)):
                text = document.read_text()
                new = MARKER.sub(table, text)
                if new != text:
                    changed.append(str(document.relative_to(REPO)))
                    if not check:
                        document.write_text(new)
        if not check:
            for plot, command in PLOTS.items():
                out = Path(scratch) / "plot"
                report(command, out)
                shutil.copyfile(out.with_suffix(".png"), REPO / plot)
            for plot, folders in CURVES.items():
                plot_val_curves(folders, REPO / plot)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module's docstring); returns the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table is stale")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    changed = update(check=args.check)
    if args.check:
        if changed:
            sys.stderr.write(
                f"stale study tables in {', '.join(changed)}: run python studies/update_docs.py\n"
            )
        return 1 if changed else 0
    sys.stdout.write(
        f"tables updated in {', '.join(changed) or 'no document'}; "
        f"plots redrawn: {', '.join([*PLOTS, *CURVES])}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
