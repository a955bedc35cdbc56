"""Checkpoints: the parameter-name table, the file formats, the one loading pipeline, crash-safe writing.

- `names`: the ONE parameter-name table (canonical PyTorch names <-> Keras <-> legacy `tf_model.h5` <-> TF1; the
  tied copies `TIED`; renaming a checkpoint for the model that loads it).
- `files`: the ONE format detector (`detect`) and each format's reader/writer; `CheckpointError`.
- `loading`: any source -> the checked canonical state of one model (names, shapes, dtypes; what was skipped and
  why): the only path by which PyTorch `from_pretrained`, Keras `from_pretrained` and `act convert` load weights.
- `atomic`: crash-safe writing of a model directory or file (lock, staging, journaled commit, recovery).

Importing this package imports neither torch, tensorflow nor transformers.
"""

from __future__ import annotations

from .atomic import DestinationBusy, InterruptedCommit, pending_commit, recover
from .files import (
    CONFIG_NAME,
    MODEL_FILES,
    PT_WEIGHTS_NAME,
    SAFE_WEIGHTS_NAME,
    TF_WEIGHTS_NAME,
    Checkpoint,
    CheckpointError,
    ShapeMismatchError,
    detect,
    is_model_file,
    read_config,
    read_weights,
    write_canonical,
    write_legacy_h5,
)
from .loading import CheckpointWarning, LoadReport, check_state
from .names import TIED

__all__ = [
    "CONFIG_NAME",
    "MODEL_FILES",
    "PT_WEIGHTS_NAME",
    "SAFE_WEIGHTS_NAME",
    "TF_WEIGHTS_NAME",
    "TIED",
    "Checkpoint",
    "CheckpointError",
    "ShapeMismatchError",
    "CheckpointWarning",
    "DestinationBusy",
    "InterruptedCommit",
    "LoadReport",
    "check_state",
    "detect",
    "is_model_file",
    "pending_commit",
    "read_config",
    "read_weights",
    "recover",
    "write_canonical",
    "write_legacy_h5",
]
