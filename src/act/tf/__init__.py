"""Keras 3 (TensorFlow backend) ALBERT-ACT: `TFAlbertActModel`, its building blocks and the task heads."""

from ..configuration import AlbertActConfig
from .modeling import *  # noqa: F401,F403
from .modeling import __all__ as _modeling_all
from .preprocessing import TFAlbertActPreprocessor

__all__ = ["AlbertActConfig", *_modeling_all, "TFAlbertActPreprocessor"]
