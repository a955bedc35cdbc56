"""The ONE place that spells parameter names, and the readers/writers of every checkpoint format.

Canonical names are the PyTorch `state_dict` names of CHECKPOINT_FORMATS.md section 2 (layouts too: a
Linear weight is (out, in)). Every other naming is derived here from a canonical name:

- Keras 3 variable path (our `TFAlbertActModel`): the module path with '.' -> '/', and the leaf renamed by
  the kind of module: Linear weight -> `kernel` (transposed, (in, out)), Linear bias -> `bias`,
  Embedding weight -> `embeddings`, LayerNorm weight/bias -> `gamma`/`beta`.
- legacy `tf_model.h5` of transformers 4 (section 3): `<outer>/albert/...:0` names, same leaf rules, except
  that the research port's `word_embeddings` kept the leaf `weight`.
- original TF1 pre-training checkpoints (section 4): an explicit table.

Nothing else in the package spells a parameter name: models and converters map through these functions.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
PT_WEIGHTS_NAME = "pytorch_model.bin"
TF_WEIGHTS_NAME = "tf_model.h5"

# The prefix of the encoder inside a model with a task head (transformers' `base_model_prefix`).
BASE_PREFIX = "albert"

# Module (canonical path without the leaf) -> kind. Paths of the bare model; heads add their own below.
EMBEDDINGS = ("embeddings.word_embeddings", "embeddings.position_embeddings", "embeddings.token_type_embeddings")
LAYER_NORMS = ("embeddings.LayerNorm", "encoder.albert_layer.LayerNorm", "encoder.albert_layer.full_layer_layer_norm")
LINEARS = (
    "encoder.embedding_hidden_mapping_in",
    "encoder.albert_layer.attention.query",
    "encoder.albert_layer.attention.key",
    "encoder.albert_layer.attention.value",
    "encoder.albert_layer.attention.dense",
    "encoder.albert_layer.ffn",
    "encoder.albert_layer.ffn_output",
    "encoder.albert_layer.act.dense",
    "pooler",
)
# Head modules (outside the encoder, no `albert.` prefix) and plain vectors.
HEAD_LAYER_NORMS = ("predictions.LayerNorm",)
HEAD_LINEARS = (
    "predictions.dense",
    "predictions.decoder",
    "sop_classifier.classifier",
    "classifier",
    "qa_outputs",
)
VECTORS = ("predictions.bias",)  # a bare parameter: same name and layout everywhere

# Canonical names that may appear in a checkpoint but are not weights (buffers, tied copies).
IGNORED = (
    re.compile(r"^(albert\.)?embeddings\.position_ids$"),
    re.compile(r"^(albert\.)?embeddings\.token_type_ids$"),
)

KERAS_LEAF = {"linear": {"weight": "kernel", "bias": "bias"},
              "embedding": {"weight": "embeddings"},
              "layer_norm": {"weight": "gamma", "bias": "beta"}}


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not match the model. The message names the file."""


def split_prefix(name: str) -> tuple[str, str]:
    """'albert.encoder.x.weight' -> ('albert.', 'encoder.x.weight'); 'classifier.weight' -> ('', ...)."""
    if name.startswith(BASE_PREFIX + "."):
        return BASE_PREFIX + ".", name[len(BASE_PREFIX) + 1:]
    return "", name


def module_kind(module: str) -> str:
    """The kind of a module path (without `albert.` prefix): linear, embedding, layer_norm or vector."""
    if module in EMBEDDINGS:
        return "embedding"
    if module in LAYER_NORMS or module in HEAD_LAYER_NORMS:
        return "layer_norm"
    if module in LINEARS or module in HEAD_LINEARS:
        return "linear"
    raise KeyError(module)


def canonical_to_keras(name: str) -> tuple[str, bool]:
    """Canonical name -> (Keras variable path below the model, transpose?).

    'encoder.albert_layer.attention.query.weight' -> ('encoder/albert_layer/attention/query/kernel', True)
    """
    prefix, rest = split_prefix(name)
    if rest in VECTORS:
        return (prefix + rest).replace(".", "/"), False
    module, _, leaf = rest.rpartition(".")
    try:
        kind = module_kind(module)
        keras_leaf = KERAS_LEAF[kind][leaf]
    except KeyError:
        raise KeyError(f"no Keras name for parameter {name!r}") from None
    return f"{prefix}{module}".replace(".", "/") + "/" + keras_leaf, kind == "linear" and leaf == "weight"


def keras_to_canonical(path: str) -> tuple[str, bool]:
    """Inverse of `canonical_to_keras`: Keras variable path (below the model) -> (canonical name, transpose?)."""
    dotted = path.replace("/", ".")
    prefix, rest = split_prefix(dotted)
    if rest in VECTORS:
        return prefix + rest, False
    module, _, keras_leaf = rest.rpartition(".")
    try:
        kind = module_kind(module)
    except KeyError:
        raise KeyError(f"no canonical name for Keras variable {path!r}") from None
    for leaf, candidate in KERAS_LEAF[kind].items():
        if candidate == keras_leaf:
            return f"{prefix}{module}.{leaf}", kind == "linear" and leaf == "weight"
    raise KeyError(f"no canonical name for Keras variable {path!r}")


def is_ignored(name: str) -> bool:
    return any(pattern.match(name) for pattern in IGNORED)


# ----------------------------------------------------------------------------------------------------------
# Checking a state dict against what a model expects
# ----------------------------------------------------------------------------------------------------------


def check_state_dict(state: Mapping[str, np.ndarray], expected: Mapping[str, tuple], source: str,
                     allow_missing: tuple[str, ...] = ()) -> None:
    """Raise `CheckpointError` naming `source` and every missing, unexpected or mis-shaped tensor."""
    problems = []
    missing = [k for k in expected if k not in state and k not in allow_missing]
    unexpected = [k for k in state if k not in expected and not is_ignored(k)]
    if missing:
        problems.append("missing tensors: " + ", ".join(sorted(missing)))
    if unexpected:
        problems.append("unexpected tensors: " + ", ".join(sorted(unexpected)))
    for key, shape in expected.items():
        if key in state and tuple(state[key].shape) != tuple(shape):
            problems.append(f"{key} has shape {tuple(state[key].shape)} in the checkpoint but the model "
                            f"expects {tuple(shape)}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


# ----------------------------------------------------------------------------------------------------------
# Canonical format: config.json + model.safetensors
# ----------------------------------------------------------------------------------------------------------


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from error


def read_config(directory: str | os.PathLike) -> dict:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (a model directory needs {CONFIG_NAME})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from error


def find_weights(directory: str | os.PathLike) -> Path:
    """The weights file of a model directory, in order of preference: safetensors, bin, legacy h5."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such directory")
    for name in (SAFE_WEIGHTS_NAME, PT_WEIGHTS_NAME, TF_WEIGHTS_NAME):
        if (directory / name).is_file():
            return directory / name
    raise CheckpointError(
        f"{directory}: no weights found (looked for {SAFE_WEIGHTS_NAME}, {PT_WEIGHTS_NAME}, {TF_WEIGHTS_NAME})"
    )


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one weights file of any supported format into canonical names and layouts (NumPy arrays)."""
    path = Path(path)
    if path.name.endswith(".safetensors"):
        return read_safetensors(path)
    if path.suffix == ".bin":
        return read_pytorch_bin(path)
    if path.suffix == ".h5":
        return read_legacy_h5(path)
    raise CheckpointError(f"{path}: unknown weights format (expected .safetensors, .bin or .h5)")


def read_pytorch_bin(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """`pytorch_model.bin` (a pickled state_dict), read with `weights_only=True`: a pickle may carry code."""
    raise CheckpointError(f"{path}: reading pytorch_model.bin is not implemented yet")


def read_legacy_h5(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Legacy transformers-4 `tf_model.h5` (CHECKPOINT_FORMATS.md section 3)."""
    raise CheckpointError(f"{path}: reading tf_model.h5 is not implemented yet")


def atomic_directory(destination: str | os.PathLike):
    """Context manager: yields a temporary sibling directory, renamed to `destination` on success only."""
    import contextlib
    import shutil

    @contextlib.contextmanager
    def manager():
        destination_path = Path(destination)
        destination_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{destination_path.name}.", dir=destination_path.parent))
        try:
            yield temporary
            if destination_path.is_dir():
                # save_pretrained semantics: replace our files in an existing directory, keep the others.
                for item in temporary.iterdir():
                    os.replace(item, destination_path / item.name)
                temporary.rmdir()
            else:
                os.replace(temporary, destination_path)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise

    return manager()


def write_canonical(directory: str | os.PathLike, config_dict: dict, state: Mapping[str, np.ndarray]) -> Path:
    """Write `config.json` + `model.safetensors` (canonical names and layouts), atomically."""
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v) for k, v in state.items() if not is_ignored(k)}
    with atomic_directory(directory) as temporary:
        save_file(tensors, str(temporary / SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
        (temporary / CONFIG_NAME).write_text(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")
    return Path(directory)
