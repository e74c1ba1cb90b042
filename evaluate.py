"""Evaluate a trained checkpoint: ``segloss evaluate`` for a source checkout.

    python evaluate.py --checkpoint RUN/checkpoint.pt --split test --out results.json

``python evaluate.py --help`` lists the options.
"""

import sys

from segloss.runner.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main(prog="evaluate.py"))
