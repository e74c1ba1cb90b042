"""Train a segmentation model or an image classifier: ``segloss train`` for a source checkout.

    python train.py --config configs/camvid.yaml loss.name=hem+ model.encoder=resnet34 train.seed=1
    torchrun --nproc_per_node 4 train.py --config configs/cityscapes.yaml loss.name=hem+
    srun --ntasks-per-node 4 --gpus-per-node 4 python train.py --config configs/cityscapes.yaml loss.name=hem+

``python train.py --help`` lists the options; ``--help-keys`` the config keys.
"""

import sys

from segloss.runner.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]], prog="train.py"))  # as `segloss train`: logging, hints
