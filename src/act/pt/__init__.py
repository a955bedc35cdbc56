"""PyTorch ALBERT-ACT. Importing this registers `albert_act` with transformers' Auto classes."""

from ..configuration import AlbertActConfig
from .modeling import *  # noqa: F401,F403
from .modeling import AlbertActModel, AlbertActPreTrainedModel
from .outputs import AlbertActEncoderOutput, AlbertActModelOutput
from .registration import register_auto_classes

register_auto_classes()
