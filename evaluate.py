"""Evaluate a trained checkpoint: ``segloss evaluate`` for a source checkout.

    python evaluate.py --checkpoint RUN/checkpoint.pt --split test --out results.json

``python evaluate.py --help`` lists the options.
"""

import sys

from segloss.runner.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]], prog="evaluate.py"))  # as `segloss evaluate`: logging, hints
