"""PyTorch ALBERT-ACT. Importing this registers `albert_act` with transformers' Auto classes."""

from ..configuration import AlbertActConfig
from .modeling import *  # noqa: F401,F403
from .modeling import __all__ as _modeling_all
from .outputs import (
    AlbertActEncoderOutput,
    AlbertActForPreTrainingOutput,
    AlbertActModelOutput,
    AlbertActQuestionAnsweringOutput,
    AlbertActTaskOutput,
)
from .registration import register_auto_classes

register_auto_classes()

__all__ = ["AlbertActConfig", *_modeling_all, "AlbertActEncoderOutput", "AlbertActForPreTrainingOutput",
           "AlbertActModelOutput", "AlbertActQuestionAnsweringOutput", "AlbertActTaskOutput"]
