"""Semantic segmentation with any segloss loss (needs the ``seg`` extra): the recipe's config, dataset
readers, smp models, training and evaluation runs, IoU scores, pixel-level unknown rejection, plots, the
report over runs and the demo. ``task`` connects it to the ``segloss`` command."""
