"""Training ALBERT-ACT: `act pretrain`, `act finetune`, the halting-statistics callbacks and the step timer.

Imported lazily: `HaltingStatsCallback` (transformers Trainer; imports torch and transformers) and
`KerasHaltingStatsCallback` (Keras `fit`; imports Keras/TensorFlow) load their framework on first access.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "HaltingStatsCallback": ".callbacks",
    "StepTimeCallback": ".callbacks",
    "KerasHaltingStatsCallback": ".keras_callbacks",
    "ActTrainer": ".trainer",
    "Lamb": ".lamb",
    "HaltingAccumulator": ".halting_stats",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'act.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value
