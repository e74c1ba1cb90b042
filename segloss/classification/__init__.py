"""Image-level tracks (SPEC §5): classification with any segloss loss, unknown-class and adversarial
rejection, long-tailed data. Needs the ``cls`` extra (torchvision, scikit-learn, scipy, tqdm,
torchattacks)."""

from .config import ClassificationConfig
from .data import DATASETS, ImageData, build_image_data, class_counts, load_split, stack_images
from .engine import build_lr_scheduler, build_optimizer, evaluate_accuracy, fit, predict_logits
from .evaluation import ClassificationReport, evaluate_classifier
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
    "DATASETS",
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
    "build_lr_scheduler",
    "build_optimizer",
    "build_unknown_sets",
    "class_counts",
    "corruption_accuracy",
    "evaluate_accuracy",
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
