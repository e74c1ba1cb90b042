"""The segmentation task's shared names, with the standard library only (``task.py``, the CLI adapter,
imports them without loading torch)."""

TASK = "segmentation"
#: ``segloss evaluate --format`` / ``segloss predict --format``: palette colours, train ids, Cityscapes ids.
PREDICTION_FORMATS = ("color", "trainid", "cityscapes")
