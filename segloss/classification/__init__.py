"""Image-level tracks (docs/recipes.md): classification with any segloss loss, unknown-class and adversarial
rejection, long-tailed data. Needs the ``cls`` extra (torchvision, scikit-learn, scipy, tqdm,
torchattacks)."""

from .config import ClassificationConfig
from .data import IMAGE_DATASETS, ImageData, build_image_data, count_labels, load_split, stack_images
from .evaluation import ClassificationReport, evaluate_classifier
from .loops import accuracy, fit, predict_logits
from .models import CLASSIFIERS, build_classifier
from .rejection import (
    AttackResult,
    CorruptionResult,
    UnknownRejection,
    adversarial_rejection,
    attack_budget,
    corruption_accuracy,
    format_attack_table,
    format_unknown_table,
    predict_unknown_logits,
    unknown_rejection,
)
from .unknown import SYNTHETIC_UNKNOWN_SETS, build_unknown_sets, synthetic_unknown_set

__all__ = [
    "CLASSIFIERS",
    "IMAGE_DATASETS",
    "SYNTHETIC_UNKNOWN_SETS",
    "AttackResult",
    "ClassificationConfig",
    "ClassificationReport",
    "CorruptionResult",
    "ImageData",
    "UnknownRejection",
    "adversarial_rejection",
    "attack_budget",
    "build_classifier",
    "build_image_data",
    "build_unknown_sets",
    "count_labels",
    "corruption_accuracy",
    "accuracy",
    "evaluate_classifier",
    "fit",
    "format_attack_table",
    "format_unknown_table",
    "load_split",
    "predict_logits",
    "predict_unknown_logits",
    "stack_images",
    "synthetic_unknown_set",
    "unknown_rejection",
]
