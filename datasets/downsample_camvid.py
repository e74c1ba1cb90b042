"""Write a 2× (or k×) downsampled copy of CamVid in the SegNet layout, for training on CPUs.

    python datasets/downsample_camvid.py data/CamVid data/CamVid_half            # 180×240
    python datasets/downsample_camvid.py data/CamVid data/CamVid_third --factor 3

Images are resized with area averaging (Pillow's ``Image.BOX`` filter), masks with nearest neighbour
(a class value is never blended with its neighbour's). File names, split folders and the void value (11)
stay as they are, so the copy is read by ``CamVid(root)`` like the original. Existing output files are
kept, so an interrupted run can be restarted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PIL import Image

SPLITS = ("train", "val", "test")


def downsample_pair(image_path: Path, mask_path: Path, out_root: Path, split: str, factor: int) -> None:
    """Write ``image_path`` and ``mask_path`` shrunk by ``factor`` under ``out_root/{split, splitannot}``."""
    with Image.open(image_path) as image, Image.open(mask_path) as mask:
        if image.size != mask.size:
            raise ValueError(f"{image_path}: image {image.size} and mask {mask.size} differ in size")
        size = (image.width // factor, image.height // factor)
        outputs = (
            (image.convert("RGB").resize(size, Image.BOX), out_root / split / image_path.name),
            (mask.resize(size, Image.NEAREST), out_root / f"{split}annot" / mask_path.name),
        )
        for picture, target in outputs:
            tmp = target.with_suffix(".tmp.png")
            picture.save(tmp)
            os.replace(tmp, target)  # a killed run never leaves a half-written file behind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path, help="CamVid in the SegNet layout (train/, trainannot/, ...)")
    parser.add_argument("out", type=Path, help="folder for the downsampled copy")
    parser.add_argument("--factor", type=int, default=2, help="integer shrink factor (default 2)")
    args = parser.parse_args(argv)
    if args.factor < 1:
        parser.error(f"--factor must be a positive integer, got {args.factor}")
    for split in SPLITS:
        images, masks = args.root / split, args.root / f"{split}annot"
        if not images.is_dir() or not masks.is_dir():
            print(f"error: {images} or {masks} is missing; expected the SegNet layout "
                  f"{{train,trainannot,val,valannot,test,testannot}}/NAME.png", file=sys.stderr)  # fmt: skip
            return 1
        (args.out / split).mkdir(parents=True, exist_ok=True)
        (args.out / f"{split}annot").mkdir(parents=True, exist_ok=True)
        names = sorted(path.name for path in images.glob("*.png"))
        for name in names:
            if not (args.out / f"{split}annot" / name).exists():
                downsample_pair(images / name, masks / name, args.out, split, args.factor)
        print(f"{split}: {len(names)} pairs -> {args.out / split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
