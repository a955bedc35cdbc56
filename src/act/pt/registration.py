"""Register ALBERT-ACT with transformers' Auto classes (for `model_type` "albert_act", never over "albert")."""

from __future__ import annotations

from transformers import AutoConfig, AutoModel

from ..configuration import AlbertActConfig
from . import modeling

# Auto class -> name of our class in act.pt.modeling (task heads are added here as they exist)
AUTO_CLASSES = {AutoModel: "AlbertActModel"}


def register_auto_classes() -> None:
    """Idempotent: registering twice is a no-op rather than transformers' 'already used' error."""
    try:
        AutoConfig.register(AlbertActConfig.model_type, AlbertActConfig)
    except ValueError:
        pass  # already registered by an earlier import
    for auto_class, name in AUTO_CLASSES.items():
        model_class = getattr(modeling, name, None)
        if model_class is None:
            continue
        try:
            auto_class.register(AlbertActConfig, model_class)
        except ValueError:
            pass
