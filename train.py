"""Train a segmentation model with any segloss loss.

    python train.py --config configs/camvid.yaml loss.name=hem+ model.encoder=resnet34 train.seed=1
    torchrun --nproc_per_node 4 train.py --config configs/cityscapes.yaml loss.name=hem+

Overrides are dotted ``key=value`` pairs (see ``--help-keys``). The run directory ``train.out_dir`` gets
``config.yaml``, ``checkpoint.pt`` (after every epoch), ``metrics.jsonl``, ``train.log``, ``results.json``
and plots. ``--resume`` continues a run from its checkpoint and does nothing for a finished run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from segloss.config import TASKS, ConfigError, load_config, valid_keys_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="YAML config (default: built-in defaults)")
    parser.add_argument("--resume", action="store_true", help="continue the run in train.out_dir")
    parser.add_argument("--help-keys", action="store_true", help="list the config keys and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)
    if args.help_keys:
        for task, schema in TASKS.items():
            print(f"task: {task}\n{valid_keys_text(schema)}")
        return 0

    # Under torchrun only rank 0 reports progress.
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as error:
        parser.error(str(error))

    from tqdm.contrib.logging import logging_redirect_tqdm

    from segloss.engine import NonFiniteLossError
    from segloss.models import WeightsUnavailableError
    from segloss.training import RunExistsError, train

    try:
        with logging_redirect_tqdm():
            scores = train(config, resume=args.resume)
    except (
        ConfigError,
        RunExistsError,
        WeightsUnavailableError,
        NonFiniteLossError,
        FileNotFoundError,
        ValueError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if scores is not None:
        print(f"results in {config.train.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
