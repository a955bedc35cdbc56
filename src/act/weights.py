"""The ONE place that spells parameter names, and the readers/writers of every checkpoint format.

Canonical names are the PyTorch `state_dict` names of CHECKPOINT_FORMATS.md section 2 (layouts too: a
Linear weight is (out, in)). Every other naming is derived here from a canonical name:

- Keras 3 variable path (our `TFAlbertActModel`): the module path with '.' -> '/', and the leaf renamed by
  the kind of module: Linear weight -> `kernel` (transposed, (in, out)), Linear bias -> `bias`,
  Embedding weight -> `embeddings`, LayerNorm weight/bias -> `gamma`/`beta`.
- legacy `tf_model.h5` of transformers 4 (section 3): `<outer>/albert/...:0` names, same leaf rules, except
  that the research port's `word_embeddings` kept the leaf `weight`.
- original TF1 pre-training checkpoints (section 4): an explicit table (`TF1_MODULES`, `TF1_TENSORS`), with the
  variables that are not weights (global step, optimizer slots) skipped and reported.

Readers return canonical names and layouts as NumPy arrays and raise `CheckpointError` (a `ValueError`) naming
the file and every unknown, missing or mis-shaped tensor. `TIED` lists the tied copies a checkpoint may omit;
`infer_architecture` picks the model class from the head tensors. `act.convert` builds on these.

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

# Tied copies in a model with the MLM head: the decoder shares the word embeddings and the output bias. A
# checkpoint may hold them (a plain `torch.save` of the state dict) or not (safetensors, TF); they are never
# required, and readers drop them when their source is present: the model re-ties them on loading.
TIED = {
    "predictions.decoder.weight": "albert.embeddings.word_embeddings.weight",
    "predictions.decoder.bias": "predictions.bias",
}

# The class a checkpoint without `architectures` gets, from its heads (first match wins).
BASE_ARCHITECTURE = "AlbertActModel"
HEAD_ARCHITECTURES = (
    (("predictions.", "sop_classifier."), "AlbertActForPreTraining"),
    (("predictions.",), "AlbertActForMaskedLM"),
    (("qa_outputs.",), "AlbertActForQuestionAnswering"),
    (("classifier.",), "AlbertActForSequenceClassification"),
)
PRETRAINING_ARCHITECTURE = "AlbertActForPreTraining"

# Legacy tf_model.h5: the outer model name of the bare model (head models use e.g.
# `tf_albert_act_for_sequence_classification`), and the one leaf that does not follow the Keras rule.
LEGACY_H5_OUTER = "tf_albert_act_model"
LEGACY_H5_RENAMED = {"embeddings.word_embeddings.weight": "embeddings/word_embeddings/weight"}

# Original TF1 pre-training checkpoints: module -> canonical module (leaf by TF1_LEAF), and whole tensors.
TF1_MODULES = {
    "bert/embeddings/LayerNorm": "embeddings.LayerNorm",
    "bert/encoder/embedding_hidden_mapping_in": "encoder.embedding_hidden_mapping_in",
    "bert/encoder/transformer/attention_1/self/query": "encoder.albert_layer.attention.query",
    "bert/encoder/transformer/attention_1/self/key": "encoder.albert_layer.attention.key",
    "bert/encoder/transformer/attention_1/self/value": "encoder.albert_layer.attention.value",
    "bert/encoder/transformer/attention_1/output/dense": "encoder.albert_layer.attention.dense",
    "bert/encoder/transformer/LayerNorm": "encoder.albert_layer.LayerNorm",
    "bert/encoder/transformer/ffn_1/intermediate/dense": "encoder.albert_layer.ffn",
    "bert/encoder/transformer/ffn_1/intermediate/output/dense": "encoder.albert_layer.ffn_output",
    "bert/encoder/transformer/LayerNorm_1": "encoder.albert_layer.full_layer_layer_norm",
    "bert/encoder/transformer/halting/dense": "encoder.albert_layer.act.dense",
    "bert/pooler/dense": "pooler",
    "cls/predictions/transform/dense": "predictions.dense",
    "cls/predictions/transform/LayerNorm": "predictions.LayerNorm",
}
TF1_LEAF = {"kernel": ("weight", True), "bias": ("bias", False), "gamma": ("weight", False), "beta": ("bias", False)}
TF1_TENSORS = {  # (canonical name, transpose?)
    "bert/embeddings/word_embeddings": ("embeddings.word_embeddings.weight", False),
    "bert/embeddings/token_type_embeddings": ("embeddings.token_type_embeddings.weight", False),
    "bert/embeddings/position_embeddings": ("embeddings.position_embeddings.weight", False),
    "cls/predictions/output_bias": ("predictions.bias", False),
    "cls/seq_relationship/output_weights": ("sop_classifier.classifier.weight", False),  # already (out, in)
    "cls/seq_relationship/output_bias": ("sop_classifier.classifier.bias", False),
}
# After the code's TF2 upgrade the layer norms are named like Keras layers.
TF1_LAYER_NORM_ALIASES = {"layer_normalization": "LayerNorm", "layer_normalization_1": "LayerNorm_1"}
# Variables of a training run that are not weights: skipped (and reported), never mapped.
TF1_NON_WEIGHTS = re.compile(r"(^|/)(global_step|good_steps|current_loss_scale|loss_scale)$")
TF1_OPTIMIZER_SLOT = re.compile(r"/(adam_m|adam_v|lamb_m|lamb_v|Adam|Adam_1|LAMB|LAMB_1|Momentum|Adagrad"
                                r"|RMSProp|RMSProp_1|accumulator)$")

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
    return read_json(path)


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
    if path.name.endswith(".weights.h5"):
        raise CheckpointError(f"{path}: a Keras 3 weights file is read by the Keras model (load_weights), "
                              f"or converted with `act convert`")
    if path.suffix == ".h5":
        return read_legacy_h5(path)
    if path.suffix == ".index":
        return read_tf1_checkpoint(path)
    raise CheckpointError(f"{path}: unknown weights format (expected .safetensors, .bin, .h5 or a TF1 .index)")


def _skip(skipped: list | None, entry: str) -> None:
    if skipped is not None:
        skipped.append(entry)


def _progress(iterable, description: str, total: int | None = None):
    """A tqdm bar on an interactive terminal for checkpoints worth waiting for; silent otherwise."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an install requirement, but a progress bar is never essential
        return iterable
    total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
    return tqdm(iterable, desc=description, total=total, unit="tensor", disable=None if (total or 0) > 50 else True,
                leave=False)


def drop_tied(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Remove tied copies (`TIED`) whose source is present: the model re-ties them when it loads."""
    for copy, source in TIED.items():
        if copy in state and source in state:
            del state[copy]
    return state


def read_pytorch_bin(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """`pytorch_model.bin` (a pickled state_dict), read with `weights_only=True`: a pickle may carry code."""
    import pickle
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        import torch
    except ImportError as error:  # e.g. a TensorFlow-only install loading the published PyTorch format
        raise CheckpointError(f"{path}: reading pytorch_model.bin needs PyTorch (pip install 'albert-act[torch]'), "
                              f"or convert it once where PyTorch is installed: act convert DIR DEST") from error
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError, zipfile.BadZipFile,
            AttributeError, TypeError, IndexError, KeyError) as error:
        # RuntimeError: truncated zip archive; UnpicklingError: corrupt pickle, or one that needs code to load.
        raise CheckpointError(f"{path}: not a readable PyTorch state dict (truncated, corrupt, or not a "
                              f"weights-only pickle): {type(error).__name__}: {error}") from error
    if not isinstance(loaded, Mapping) or not loaded:
        raise CheckpointError(f"{path}: holds a {type(loaded).__name__}, not a state dict (a mapping of "
                              f"parameter names to tensors)")
    state = {}
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: not a state dict: entry {key!r} is a {type(value).__name__}, "
                                  f"not a tensor")
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:  # NumPy has no bfloat16; float32 holds every bfloat16 exactly
            value = value.float()
        state[key] = value.numpy()
    return drop_tied(state)


# ----------------------------------------------------------------------------------------------------------
# Legacy transformers-4 Keras-2 `tf_model.h5` (CHECKPOINT_FORMATS.md section 3)
# ----------------------------------------------------------------------------------------------------------


def is_head_name(name: str) -> bool:
    """True for a task-head parameter (outside the encoder): `classifier.weight`, `predictions.bias`, ..."""
    prefix, rest = split_prefix(name)
    if prefix:
        return False
    if rest in VECTORS:
        return True
    module = rest.rpartition(".")[0]
    return module in HEAD_LINEARS or module in HEAD_LAYER_NORMS


def canonical_to_legacy_h5(name: str, outer: str = LEGACY_H5_OUTER) -> tuple[str, bool]:
    """Canonical name -> (legacy `tf_model.h5` weight name, transpose?).

    'encoder.albert_layer.ffn.weight' -> ('tf_albert_act_model/albert/encoder/albert_layer/ffn/kernel:0', True);
    'classifier.weight' -> ('<outer>/classifier/kernel:0', True); 'albert.pooler.bias' -> '<outer>/albert/pooler/bias:0'.
    """
    if is_head_name(name):
        path, transpose = canonical_to_keras(name)
        return f"{outer}/{path}:0", transpose
    _, rest = split_prefix(name)
    if rest in LEGACY_H5_RENAMED:
        return f"{outer}/{BASE_PREFIX}/{LEGACY_H5_RENAMED[rest]}:0", False
    path, transpose = canonical_to_keras(rest)
    return f"{outer}/{BASE_PREFIX}/{path}:0", transpose


def legacy_h5_to_canonical(weight_name: str, head_model: bool = False) -> tuple[str, bool]:
    """Inverse of `canonical_to_legacy_h5`, for any outer model name. `head_model`: the file holds a task
    head, so the encoder's canonical names take the `albert.` prefix. Raises `KeyError` for unknown names."""
    name = weight_name[:-2] if weight_name.endswith(":0") else weight_name
    _, _, path = name.partition("/")  # drop the outer model name (tf_albert_act_model, ..._for_..., ...)
    if path.startswith(BASE_PREFIX + "/"):
        inner = path[len(BASE_PREFIX) + 1:]
        renamed = {legacy: canonical for canonical, legacy in LEGACY_H5_RENAMED.items()}
        if inner in renamed:
            canonical, transpose = renamed[inner], False
        else:
            canonical, transpose = keras_to_canonical(inner)
            if is_head_name(canonical) or split_prefix(canonical)[0]:
                raise KeyError(f"no canonical name for legacy weight {weight_name!r}")
        return (BASE_PREFIX + "." + canonical if head_model else canonical), transpose
    canonical, transpose = keras_to_canonical(path)
    if not is_head_name(canonical):
        raise KeyError(f"no canonical name for legacy weight {weight_name!r}")
    return canonical, transpose


def _h5_strings(node, key: str) -> list[str] | None:
    """A list-of-strings attribute as Keras 2 writes it: `key`, or chunked as `key0`, `key1`, ... when large."""
    if key in node.attrs:
        values = list(node.attrs[key])
    elif f"{key}0" in node.attrs:
        values, chunk = [], 0
        while f"{key}{chunk}" in node.attrs:
            values.extend(node.attrs[f"{key}{chunk}"])
            chunk += 1
    else:
        return None
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def read_legacy_h5(path: str | os.PathLike, skipped: list | None = None) -> dict[str, np.ndarray]:
    """Legacy transformers-4 `tf_model.h5` (CHECKPOINT_FORMATS.md section 3) -> canonical names and layouts."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise CheckpointError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {error}") from error
    with handle:
        root = handle["model_weights"] if "model_weights" in handle else handle  # a whole-model Keras 2 save
        layer_names = _h5_strings(root, "layer_names")
        if layer_names is None:
            hint = (" It looks like a Keras 3 weights file: convert it with the Keras model "
                    "(act convert FILE.weights.h5 DEST --config config.json)." if "layers" in root or "vars" in root
                    else "")
            raise CheckpointError(f"{path}: not a transformers-4 tf_model.h5 (no 'layer_names' attribute).{hint}")
        entries = []
        for layer in layer_names:
            if layer not in root:
                raise CheckpointError(f"{path}: layer {layer!r} is listed in layer_names but has no group")
            for weight_name in _h5_strings(root[layer], "weight_names") or []:
                entries.append((layer, weight_name))
        head_model = any(layer != BASE_PREFIX for layer, _ in entries)
        state, unknown = {}, []
        for layer, weight_name in _progress(entries, f"reading {path.name}"):
            try:
                canonical, transpose = legacy_h5_to_canonical(weight_name, head_model)
            except KeyError:
                unknown.append(weight_name)
                continue
            try:
                value = np.asarray(root[layer][weight_name])
            except (KeyError, OSError, ValueError) as error:
                raise CheckpointError(f"{path}: cannot read {layer}/{weight_name} (truncated or corrupt?): "
                                      f"{error}") from error
            if canonical in state:
                raise CheckpointError(f"{path}: two weights map to {canonical} (the second is {weight_name})")
            state[canonical] = np.ascontiguousarray(value.T) if transpose else value
    if unknown:
        raise CheckpointError(f"{path}: unexpected tensors with no ALBERT-ACT name: " + ", ".join(unknown))
    for copy, source in TIED.items():
        if copy in state and source in state:
            _skip(skipped, f"{copy} (tied to {source})")
    return drop_tied(state)


def write_legacy_h5(path: str | os.PathLike, state: Mapping[str, np.ndarray], outer_name: str = LEGACY_H5_OUTER) -> Path:
    """Write canonical weights as a transformers-4 Keras-2 `tf_model.h5` (the exact layout of section 3),
    atomically. The encoder goes to the layer `albert`; each head to its own layer (`classifier`, ...)."""
    import h5py

    names = [k for k in state if not is_ignored(k) and not (k in TIED and TIED[k] in state)]
    heads = [k for k in names if is_head_name(k)]
    bare = [k for k in names if not is_head_name(k) and not split_prefix(k)[0]]
    if heads and bare:
        raise ValueError(f"state mixes head weights ({heads[0]}) with un-prefixed encoder weights ({bare[0]}): "
                         f"a head model's encoder weights start with '{BASE_PREFIX}.'")
    layers: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name in names:
        weight_name, transpose = canonical_to_legacy_h5(name, outer_name)
        value = np.asarray(state[name])
        layers.setdefault(weight_name.split("/")[1], []).append((weight_name, value.T if transpose else value))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        with h5py.File(temporary, "w") as f:
            f.attrs["layer_names"] = np.array([n.encode("utf8") for n in layers])
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"2.11.0"
            for layer in sorted(layers):
                group = f.create_group(layer)
                group.attrs["weight_names"] = np.array([n.encode("utf8") for n, _ in layers[layer]])
                for weight_name, value in layers[layer]:
                    group.create_dataset(weight_name, data=np.ascontiguousarray(value))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------------------------------------------------
# Original TF1 pre-training checkpoints (CHECKPOINT_FORMATS.md section 4)
# ----------------------------------------------------------------------------------------------------------


def tf1_to_canonical(name: str, pretraining: bool = False) -> tuple[str, bool]:
    """TF1 variable name -> (canonical name, transpose?). Raises `KeyError` for names not in the table.

    `pretraining`: the target is a model with the pre-training heads, so the encoder takes the `albert.` prefix.
    Both LayerNorm namings are accepted (`LayerNorm`/`LayerNorm_1` and `layer_normalization`/`..._1`)."""
    normalized = "/".join(TF1_LAYER_NORM_ALIASES.get(part, part) for part in name.split("/"))
    if normalized in TF1_TENSORS:
        canonical, transpose = TF1_TENSORS[normalized]
    else:
        module, _, leaf = normalized.rpartition("/")
        if module not in TF1_MODULES or leaf not in TF1_LEAF:
            raise KeyError(f"no canonical name for TF1 variable {name!r}")
        canonical_leaf, transpose = TF1_LEAF[leaf]
        canonical = f"{TF1_MODULES[module]}.{canonical_leaf}"
    if pretraining and not is_head_name(canonical):
        canonical = f"{BASE_PREFIX}.{canonical}"
    return canonical, transpose


def tf1_non_weight(name: str) -> str | None:
    """Why a TF1 variable is not a model weight (global step, optimizer slot), or None if it may be one."""
    if TF1_NON_WEIGHTS.search(name):
        return "training state"
    if TF1_OPTIMIZER_SLOT.search(name):
        return "optimizer slot"
    return None


def resolve_tf1_checkpoint(path: str | os.PathLike) -> str:
    """A TF1 checkpoint prefix from a prefix, an `.index`/`.data-*` file, or a directory (its latest checkpoint)."""
    text = str(path)
    candidate = Path(text)
    if candidate.is_dir():
        state_file = candidate / "checkpoint"
        if state_file.is_file():
            match = re.search(r'^model_checkpoint_path:\s*"(.*)"', state_file.read_text(errors="replace"), re.M)
            if match:
                prefix = Path(match.group(1))
                prefix = prefix if prefix.is_absolute() else candidate / prefix
                if Path(f"{prefix}.index").is_file():
                    return str(prefix)
        indexes = sorted(candidate.glob("*.index"),
                         key=lambda p: [int(n) for n in re.findall(r"\d+", p.stem)] or [-1])
        if not indexes:
            raise CheckpointError(f"{candidate}: no TF1 checkpoint in this directory (no *.index file)")
        return str(indexes[-1].with_suffix(""))
    text = re.sub(r"\.(index|data-\d+-of-\d+|meta)$", "", text)
    if not Path(f"{text}.index").is_file():
        raise CheckpointError(f"{path}: not a TF1 checkpoint ({text}.index does not exist)")
    return text


def read_tf1_checkpoint(path: str | os.PathLike, pretraining: bool = False,
                        skipped: list | None = None) -> dict[str, np.ndarray]:
    """Original TF1 pre-training checkpoint -> canonical names and layouts.

    Global step and optimizer slots are skipped; the `cls/*` pre-training heads map to `predictions.*` and
    `sop_classifier.classifier.*` when `pretraining`, else they are skipped. Every skipped variable is appended
    to `skipped` ("name (why)"); a variable that is neither known nor skippable raises `CheckpointError`.
    """
    prefix = resolve_tf1_checkpoint(path)
    try:
        import tensorflow as tf
    except ImportError as error:
        raise CheckpointError(f"{prefix}: reading a TF1 checkpoint needs tensorflow ({error})") from error
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError, OSError) as error:
        raise CheckpointError(f"{prefix}: not a readable TF1 checkpoint (truncated or corrupt?): "
                              f"{type(error).__name__}: {error}") from error
    state, unknown = {}, []
    for name in _progress(sorted(shapes), f"reading {Path(prefix).name}"):
        why = tf1_non_weight(name)
        if why:
            _skip(skipped, f"{name} ({why})")
            continue
        try:
            canonical, transpose = tf1_to_canonical(name, pretraining)
        except KeyError:
            unknown.append(name)
            continue
        if is_head_name(canonical) and not pretraining:
            _skip(skipped, f"{name} (pre-training head; kept only when converting to AlbertActForPreTraining)")
            continue
        if canonical in state:
            raise CheckpointError(f"{prefix}: two variables map to {canonical} (the second is {name})")
        try:
            value = np.asarray(reader.get_tensor(name))
        except (tf.errors.OpError, ValueError, OSError, IndexError) as error:  # IndexError: short data file
            raise CheckpointError(f"{prefix}: cannot read {name} (truncated or corrupt?): {error}") from error
        state[canonical] = np.ascontiguousarray(value.T) if transpose else value
    if unknown:
        raise CheckpointError(f"{prefix}: unexpected variables with no ALBERT-ACT name: " + ", ".join(unknown))
    return state


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def match_model_names(state: dict, model_names, has_pooler: bool = True) -> dict:
    """A checkpoint's tensors renamed for a model that expects `model_names`, as transformers loads across
    architectures: a task model (encoder under `albert.`) gets a bare checkpoint's encoder prefixed; the bare
    model gets a task checkpoint's encoder (its head left out); a model without a pooler drops the pooler."""
    prefix = BASE_PREFIX + "."
    ours = any(name.startswith(prefix) for name in model_names)
    theirs = any(name.startswith(prefix) for name in state)
    if ours and not theirs:
        state = {name if is_head_name(name) or is_ignored(name) else prefix + name: value
                 for name, value in state.items()}
    elif theirs and not ours:
        state = {name[len(prefix):]: value for name, value in state.items() if name.startswith(prefix)}
    if not has_pooler:
        state = {name: value for name, value in state.items() if not name.startswith(("pooler.", prefix + "pooler."))}
    return state


def infer_architecture(names) -> str:
    """The model class a checkpoint's tensor names imply: `AlbertActModel`, or the head model of its heads."""
    heads = {name for name in names if is_head_name(name)}
    for prefixes, architecture in HEAD_ARCHITECTURES:
        if all(any(h.startswith(p) for h in heads) for p in prefixes):
            return architecture
    return BASE_ARCHITECTURE

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
