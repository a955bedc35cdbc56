"""Keras 3 (TensorFlow backend) ALBERT-ACT: `TFAlbertActModel`, its building blocks and the task heads."""

from ..configuration import AlbertActConfig
from .modeling import *  # noqa: F401,F403
from .modeling import (
    TFAlbertActAttention,
    TFAlbertActEmbeddings,
    TFAlbertActEncoder,
    TFAlbertActForMaskedLM,
    TFAlbertActForMultipleChoice,
    TFAlbertActForPreTraining,
    TFAlbertActForQuestionAnswering,
    TFAlbertActForSequenceClassification,
    TFAlbertActForTokenClassification,
    TFAlbertActHaltingUnit,
    TFAlbertActLayer,
    TFAlbertActMLMHead,
    TFAlbertActModel,
    TFAlbertActPreTrainedModel,
    TFAlbertActSOPHead,
)

__all__ = [
    "AlbertActConfig",
    "TFAlbertActEmbeddings",
    "TFAlbertActAttention",
    "TFAlbertActHaltingUnit",
    "TFAlbertActLayer",
    "TFAlbertActEncoder",
    "TFAlbertActPreTrainedModel",
    "TFAlbertActModel",
    "TFAlbertActMLMHead",
    "TFAlbertActSOPHead",
    "TFAlbertActForPreTraining",
    "TFAlbertActForMaskedLM",
    "TFAlbertActForSequenceClassification",
    "TFAlbertActForTokenClassification",
    "TFAlbertActForQuestionAnswering",
    "TFAlbertActForMultipleChoice",
]
