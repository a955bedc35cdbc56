"""Keras 3 (TensorFlow backend) ALBERT-ACT: `TFAlbertActModel` and its building blocks."""

from ..configuration import AlbertActConfig
from .modeling import *  # noqa: F401,F403
from .modeling import (
    TFAlbertActAttention,
    TFAlbertActEmbeddings,
    TFAlbertActEncoder,
    TFAlbertActHaltingUnit,
    TFAlbertActLayer,
    TFAlbertActModel,
    TFAlbertActPreTrainedModel,
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
]
