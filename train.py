"""Train a segmentation model or an image classifier with any segloss loss.

    python train.py --config configs/camvid.yaml loss.name=hem+ model.encoder=resnet34 train.seed=1
    python train.py --config configs/demo.yaml data.holdout_classes=[pedestrian] loss.name=hem+
    python train.py --config configs/cls_digits.yaml loss.name=hem+
    torchrun --nproc_per_node 4 train.py --config configs/cityscapes.yaml loss.name=hem+
    srun --ntasks-per-node 4 --gpus-per-node 4 python train.py --config configs/cityscapes.yaml loss.name=hem+

The config's ``task`` (segmentation or classification) picks the trainer. Overrides are dotted ``key=value``
pairs (see ``--help-keys``). The run directory ``train.out_dir`` gets ``config.yaml``, ``checkpoint.pt``
(after every epoch), ``metrics.jsonl``, ``train.log``, ``results.json`` and plots. ``--resume`` continues a
run from its checkpoint and does nothing for a finished run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from segloss.config import ConfigError, all_task_schemas, load_config, valid_keys_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="YAML config (default: built-in segmentation defaults)")
    parser.add_argument("--resume", action="store_true", help="continue the run in train.out_dir")
    parser.add_argument("--help-keys", action="store_true", help="list the config keys and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)
    if args.help_keys:
        for task, schema in all_task_schemas().items():
            print(f"task: {task}\n{valid_keys_text(schema)}")
        return 0

    # Under torchrun or srun only rank 0 reports progress.
    rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))
    level = logging.INFO if rank == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as error:
        parser.error(str(error))

    from tqdm.contrib.logging import logging_redirect_tqdm

    if config.task == "classification":
        from segloss.classification.training import train
    else:
        from segloss.training import train

    try:
        with logging_redirect_tqdm():
            result = train(config, resume=args.resume)
    # ConfigError, a run folder in the way, a NaN loss, missing weights offline, bad data, no CUDA...:
    # every error a run can reasonably meet is a ValueError, RuntimeError or OSError, told in one line.
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if result is not None:
        print(f"results in {config.train.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
