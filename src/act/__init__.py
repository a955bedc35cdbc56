"""ALBERT-ACT for PyTorch and Keras.

`import act` is cheap: it imports neither torch, tensorflow nor transformers. The framework classes are
imported on first access (module ``__getattr__``), e.g. ``from act import AlbertActModel`` loads PyTorch
and ``from act import TFAlbertActModel`` loads TensorFlow/Keras.
"""

from __future__ import annotations

import importlib

from . import _keras_lazy

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_LAZY = {
    "AlbertActConfig": ".configuration",
    "AlbertActPreTrainedModel": ".pt",
    "AlbertActModel": ".pt",
    "AlbertActModelOutput": ".pt",
    "AlbertActForPreTraining": ".pt",
    "AlbertActForMaskedLM": ".pt",
    "AlbertActForSequenceClassification": ".pt",
    "AlbertActForTokenClassification": ".pt",
    "AlbertActForQuestionAnswering": ".pt",
    "AlbertActForMultipleChoice": ".pt",
}
_TF_NAMES = ("TFAlbertActModel", "TFAlbertActForPreTraining", "TFAlbertActForMaskedLM",
             "TFAlbertActForSequenceClassification", "TFAlbertActForTokenClassification",
             "TFAlbertActForQuestionAnswering", "TFAlbertActForMultipleChoice",
             "TFAlbertActPreprocessor")
_LAZY.update({name: ".tf" for name in _TF_NAMES})

# keras.models.load_model finds act's Keras classes after a bare `import act` (either import order): stand-ins
# registered now or when keras is imported, which import act.tf when a .keras file needs them
_keras_lazy.install(_TF_NAMES)

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'act' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
