"""Image-level tracks (docs/image-level.md): classification with any segloss loss, unknown-class and
adversarial rejection, long-tailed data. Needs the ``cls`` extra (torchvision, scikit-learn, scipy, tqdm,
torchattacks).

The names below load their module on first use, so that ``segloss --help`` (which reads this
package's ``task`` module) imports none of the extra's packages."""

from __future__ import annotations

from .._lazy import lazy_exports

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "CLASSIFIERS": "models",
    "IMAGE_DATASETS": "data",
    "SYNTHETIC_UNKNOWN_SETS": "unknown",
    "AttackResult": "rejection",
    "ClassificationConfig": "config",
    "ClassificationReport": "evaluation",
    "CorruptionResult": "rejection",
    "ImageData": "data",
    "UnknownRejection": "rejection",
    "adversarial_rejection": "rejection",
    "attack_budget": "rejection",
    "attack_budgets": "rejection",
    "build_classifier": "models",
    "build_image_data": "data",
    "build_unknown_sets": "unknown",
    "count_labels": "data",
    "corruption_accuracy": "rejection",
    "evaluate_classifier": "evaluation",
    "format_attack_table": "rejection",
    "format_unknown_table": "rejection",
    "load_split": "data",
    "predict_logits": "loops",
    "predict_unknown_logits": "rejection",
    "stack_images": "data",
    "synthetic_unknown_set": "unknown",
    "unknown_rejection": "rejection",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
