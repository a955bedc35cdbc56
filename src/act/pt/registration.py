"""Register ALBERT-ACT with transformers' Auto classes (for `model_type` "albert_act", never over "albert")."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForPreTraining,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from ..configuration import AlbertActConfig
from . import modeling

# Auto class -> name of our class in act.pt.modeling
AUTO_CLASSES = {
    AutoModel: "AlbertActModel",
    AutoModelForPreTraining: "AlbertActForPreTraining",
    AutoModelForMaskedLM: "AlbertActForMaskedLM",
    AutoModelForSequenceClassification: "AlbertActForSequenceClassification",
    AutoModelForTokenClassification: "AlbertActForTokenClassification",
    AutoModelForQuestionAnswering: "AlbertActForQuestionAnswering",
    AutoModelForMultipleChoice: "AlbertActForMultipleChoice",
}


def register_auto_classes() -> None:
    """Idempotent: registering twice is a no-op rather than transformers' 'already used' error."""
    try:
        AutoConfig.register(AlbertActConfig.model_type, AlbertActConfig)
    except ValueError:
        pass  # already registered by an earlier import
    for auto_class, name in AUTO_CLASSES.items():
        try:
            auto_class.register(AlbertActConfig, getattr(modeling, name))
        except ValueError:
            pass
