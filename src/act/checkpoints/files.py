"""Checkpoint files: the ONE format detector (`detect`), each format's reader and writer, the config file.

Formats (CHECKPOINT_FORMATS.md): the canonical `config.json` + `model.safetensors` (also sharded, with
`model.safetensors.index.json`), the research `pytorch_model.bin` (also sharded), the legacy transformers-4
`tf_model.h5`, original TF1 checkpoints (`model.ckpt-N.index` + data, with `albert_config.json`), and the two
Keras files that only the Keras model reads (`.keras`, Keras 3 `.weights.h5`).

Readers return canonical names and layouts (`act.checkpoints.names`): NumPy arrays, or torch tensors for the
PyTorch formats with ``framework="pt"`` (bfloat16 stays bfloat16). They report what they leave out (training
state, pre-training heads of a bare target) into a `skipped` dict {name: why}; they do not decide what a model
needs: `act.checkpoints.loading` does. Errors are `CheckpointError`s (a `ValueError`) that name the file.

Writers write through `act.checkpoints.atomic`: a file is complete or absent, a model directory holds the old
model or the new one; `MODEL_FILES` says which entries of a directory are "the model" (replaced as a set; every
other entry of the directory is kept).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import atomic
from .names import (
    BASE_PREFIX,
    LEGACY_H5_OUTER,
    canonical_to_legacy_h5,
    is_head_name,
    is_ignored,
    legacy_h5_to_canonical,
    split_prefix,
    tf1_non_weight,
    tf1_to_canonical,
    tied_copies,
)

CONFIG_NAME = "config.json"
TF1_CONFIG_NAME = "albert_config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_INDEX_NAME = "model.safetensors.index.json"
PT_WEIGHTS_NAME = "pytorch_model.bin"
PT_INDEX_NAME = "pytorch_model.bin.index.json"
TF_WEIGHTS_NAME = "tf_model.h5"
# The weights of a model directory in the order every loader prefers them (`detect`; `act.hub` fetches the first a
# repository has): name -> format.
WEIGHTS_BY_PREFERENCE = ((SAFE_WEIGHTS_NAME, "canonical"), (SAFE_INDEX_NAME, "canonical"),
                         (PT_WEIGHTS_NAME, "pytorch_bin"), (PT_INDEX_NAME, "pytorch_bin"),
                         (TF_WEIGHTS_NAME, "legacy_h5"))

# The files that make up a model in a directory: its config and its weights in every format this package or
# transformers writes (shards and shard indexes included). `act convert --overwrite` and `save_pretrained` replace
# exactly these (the new model's files, and stale weights of another format, which would otherwise be a second
# model next to the new one); everything else in the directory (tokenizer files, a README, your own files,
# subdirectories) is kept.
MODEL_FILES = re.compile(
    r"^(config\.json"
    r"|model\.safetensors|model\.safetensors\.index\.json|model-\d{5}-of-\d{5}\.safetensors"
    r"|pytorch_model\.bin|pytorch_model\.bin\.index\.json|pytorch_model-\d{5}-of-\d{5}\.bin"
    r"|tf_model\.h5|tf_model\.h5\.index\.json|tf_model-\d{5}-of-\d{5}\.h5)$"
)

# Format -> what a user calls it (messages and reports).
FORMAT_NAMES = {
    "canonical": "canonical (config.json + model.safetensors)",
    "pytorch_bin": "PyTorch pytorch_model.bin",
    "legacy_h5": "legacy transformers-4 tf_model.h5",
    "keras": "Keras .keras file",
    "keras_weights": "Keras 3 .weights.h5",
    "tf1": "original TF1 checkpoint",
}
# Formats whose tensors only the Keras model can read (its own variables): `act convert` reads them with it.
KERAS_FORMATS = ("keras", "keras_weights")


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not match the model. The message names the file."""


class ShapeMismatchError(CheckpointError, RuntimeError):
    """A checkpoint tensor has another shape than the model's weight of the same name. Also a `RuntimeError`, as
    transformers raises for it; `from_pretrained(..., ignore_mismatched_sizes=True)` initialises such weights."""


def is_model_file(name: str) -> bool:
    """Whether a directory entry named `name` is part of the model (config or weights of any format)."""
    return bool(MODEL_FILES.match(name))


# ----------------------------------------------------------------------------------------------------------
# The format detector
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """What `detect` found: the format, the weights (a file, the shard files, or a TF1 prefix), and the directory
    that holds its config (`config.json`, or `albert_config.json` for TF1)."""

    format: str
    path: Path
    directory: Path
    shards: tuple[Path, ...] = ()

    @property
    def description(self) -> str:
        return FORMAT_NAMES[self.format]


def refuse_interrupted(directory: Path) -> None:
    """A `CheckpointError` for a directory whose model files a killed save left half-replaced."""
    staging = atomic.pending_commit(directory)
    if staging is not None:
        raise CheckpointError(
            f"{directory}: a save or `act convert` into this directory was killed while it replaced the model files, "
            f"so they are a mix of two versions right now. The next `act convert ... {directory} --overwrite` or "
            f"save_pretrained into it completes the replacement, as does act.checkpoints.recover({str(directory)!r})")


def _sharded(index: Path, fmt: str) -> Checkpoint:
    """A sharded checkpoint from its `*.index.json` (transformers' `weight_map`: tensor name -> shard file)."""
    data = read_json(index)
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: not a shard index (no 'weight_map' object)")
    shards = tuple(index.parent / name for name in sorted(set(weight_map.values())))
    for shard in shards:
        if not shard.is_file():
            raise CheckpointError(f"{index}: lists the shard {shard.name}, which does not exist")
    return Checkpoint(fmt, index, index.parent, shards)


def detect(source: str | os.PathLike) -> Checkpoint:
    """The format of a checkpoint: a model directory, a weights file, or a TF1 checkpoint (prefix, `.index` or
    `.data-*` file, or a directory holding one). Every loader and the converter ask this one function.

    A directory is looked at in this order: model.safetensors (or its shard index), pytorch_model.bin (or its shard
    index), tf_model.h5, a TF1 checkpoint. Raises `CheckpointError` for anything else, and for a directory whose
    model files are being (or were, by a killed run) replaced (see `act.checkpoints.atomic`).
    """
    source = Path(os.fspath(source))
    if source.is_dir():
        refuse_interrupted(source)
        for name, fmt in WEIGHTS_BY_PREFERENCE:
            if (source / name).is_file():
                if name.endswith(".index.json"):
                    return _sharded(source / name, fmt)
                return Checkpoint(fmt, source / name, source)
        if (source / "checkpoint").is_file() or any(source.glob("*.index")):
            prefix = Path(resolve_tf1_checkpoint(source))
            return Checkpoint("tf1", prefix, prefix.parent)
        raise CheckpointError(f"{source}: no checkpoint found (looked for {SAFE_WEIGHTS_NAME}, {PT_WEIGHTS_NAME}, "
                              f"{TF_WEIGHTS_NAME}, a TF1 checkpoint)")
    name = source.name
    if source.is_file():
        if name.endswith(".keras"):
            return Checkpoint("keras", source, source.parent)
        if name.endswith(".weights.h5"):
            return Checkpoint("keras_weights", source, source.parent)
        if name.endswith(".safetensors.index.json"):
            return _sharded(source, "canonical")
        if name.endswith(".bin.index.json"):
            return _sharded(source, "pytorch_bin")
        if name.endswith(".safetensors"):
            return Checkpoint("canonical", source, source.parent)
        if name.endswith(".bin"):
            return Checkpoint("pytorch_bin", source, source.parent)
        if name.endswith(".h5"):
            return Checkpoint("legacy_h5", source, source.parent)
    try:
        prefix = Path(resolve_tf1_checkpoint(source))
        return Checkpoint("tf1", prefix, prefix.parent)
    except CheckpointError:
        pass
    if not source.exists():
        raise CheckpointError(f"{source}: no such file or directory")
    raise CheckpointError(f"{source}: unknown checkpoint format (expected a model directory, .safetensors, .bin, "
                          f"tf_model.h5, .keras, .weights.h5 or a TF1 checkpoint)")


def read_weights(source, framework: str = "np", pretraining: bool = False,
                 skipped: dict | None = None) -> dict:
    """The tensors of any checkpoint `detect` recognises (or of a `Checkpoint` it returned), in canonical names and
    layouts: NumPy arrays, or torch tensors for the PyTorch formats with ``framework="pt"``.

    pretraining: keep a TF1 checkpoint's pre-training heads (a target with them). skipped: gets {name: why} for
    every variable left out (TF1 training state and, unless `pretraining`, its heads).
    """
    checkpoint = source if isinstance(source, Checkpoint) else detect(source)
    if checkpoint.format == "canonical":
        return _read_shards(checkpoint, read_safetensors, framework)
    if checkpoint.format == "pytorch_bin":
        return _read_shards(checkpoint, read_pytorch_bin, framework)
    if checkpoint.format == "legacy_h5":
        return read_legacy_h5(checkpoint.path)
    if checkpoint.format == "tf1":
        return read_tf1_checkpoint(checkpoint.path, pretraining=pretraining, skipped=skipped)
    raise CheckpointError(f"{checkpoint.path}: a {checkpoint.description} holds Keras variables, read by the Keras "
                          f"model: keras.models.load_model / load_weights, or `act convert` it to the canonical "
                          f"format first")


def _read_shards(checkpoint: Checkpoint, reader, framework: str) -> dict:
    if not checkpoint.shards:
        return reader(checkpoint.path, framework=framework)
    state = {}
    for shard in checkpoint.shards:
        for name, value in reader(shard, framework=framework).items():
            if name in state:
                raise CheckpointError(f"{shard}: holds {name}, which another shard of {checkpoint.path.name} holds too")
            state[name] = value
    listed = set(read_json(checkpoint.path)["weight_map"])
    if listed != set(state):
        differ = sorted(listed.symmetric_difference(state))
        raise CheckpointError(f"{checkpoint.path}: the shard index and the shards disagree about: "
                              + ", ".join(differ[:10]))
    return state


def _skip(skipped: dict | None, name: str, why: str) -> None:
    if skipped is not None:
        skipped[name] = why


# ----------------------------------------------------------------------------------------------------------
# Config files
# ----------------------------------------------------------------------------------------------------------


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


def config_path(checkpoint: Checkpoint) -> Path:
    """The config file of a checkpoint: `config.json` beside it (a TF1 checkpoint: `albert_config.json` first)."""
    names = (TF1_CONFIG_NAME, CONFIG_NAME) if checkpoint.format == "tf1" else (CONFIG_NAME,)
    for name in names:
        if (checkpoint.directory / name).is_file():
            return checkpoint.directory / name
    raise CheckpointError(f"{checkpoint.path}: no {' or '.join(names)} next to the checkpoint; pass --config FILE")


# model_type values of configs this package reads: its own, and those of the configs ALBERT-ACT grew from (the
# research code's transformers 4 configs; the original TF1 albert_config.json has no model_type at all)
MODEL_TYPES = ("albert_act", "albert")


def check_model_type(raw: Mapping, origin) -> None:
    """A config whose `model_type` names another model (bert, gpt2...) is a CheckpointError saying what `origin`
    holds: loading it as ALBERT-ACT would fail later with a confusing error, or load silently wrong."""
    model_type = raw.get("model_type")
    if model_type is None or model_type in MODEL_TYPES:
        return
    architectures = raw.get("architectures")
    what = f", architectures {', '.join(map(str, architectures))}" if isinstance(architectures, list) and \
        architectures else ""
    raise CheckpointError(f"{origin}: holds a {model_type!r} model (model_type {model_type!r}{what}), not an "
                          f"ALBERT-ACT one (model_type \"albert_act\"): this package loads only ALBERT-ACT "
                          f"checkpoints (use transformers' own classes for that model)")


def read_config(directory: str | os.PathLike) -> dict:
    """The raw `config.json` of a model directory (a config of another model_type is refused)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (a model directory needs {CONFIG_NAME})")
    raw = read_json(path)
    check_model_type(raw, path)
    return raw


# ----------------------------------------------------------------------------------------------------------
# Canonical format: config.json + model.safetensors
# ----------------------------------------------------------------------------------------------------------


def _bfloat16_as_float32(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """bfloat16 tensors of a safetensors file as float32 (exact: bfloat16 is the top half of a float32), for
    NumPy, which has no bfloat16. Reads the documented layout: 8-byte header size, JSON header, data."""
    out = {}
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        for name in names:
            begin, end = header[name]["data_offsets"]
            handle.seek(8 + size + begin)
            raw = np.frombuffer(handle.read(end - begin), dtype="<u2")
            out[name] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(header[name]["shape"])
    return out


def read_safetensors(path: str | os.PathLike, framework: str = "np") -> dict:
    """A safetensors file's tensors (NumPy, bfloat16 read as float32; or torch with ``framework="pt"``)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        if framework == "pt":
            try:
                from safetensors.torch import load_file
            except ImportError as error:
                raise CheckpointError(f"{path}: reading it for PyTorch needs torch ({error})") from error
            return dict(load_file(str(path)))
        state, bfloat16 = {}, []
        with safe_open(str(path), framework="np") as handle:
            for name in handle.keys():
                if handle.get_slice(name).get_dtype() == "BF16":
                    bfloat16.append(name)
                else:
                    state[name] = handle.get_tensor(name)
        state.update(_bfloat16_as_float32(path, bfloat16))
        return state
    except (SafetensorError, OSError, ValueError, TypeError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {error}") from error


def write_canonical_files(directory: str | os.PathLike, config_dict: dict, state: Mapping) -> Path:
    """`config.json` + `model.safetensors` (canonical names and layouts) into `directory`, plainly: the
    caller owns the directory (a staging directory of `atomic.transaction`). Buffers are not written."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(np.asarray(v)) for k, v in state.items() if not is_ignored(k)}
    save_file(tensors, str(directory / SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
    (directory / CONFIG_NAME).write_text(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")
    return directory


def write_canonical(directory: str | os.PathLike, config_dict: dict, state: Mapping) -> Path:
    """Write `config.json` + `model.safetensors` into `directory` as one crash-safe replacement of its model files
    (`MODEL_FILES`); every other file in the directory is kept."""
    with atomic.transaction(directory, overwrite=True, replaces=is_model_file) as transaction:
        write_canonical_files(transaction.path, config_dict, state)
    return Path(directory)


# ----------------------------------------------------------------------------------------------------------
# The research PyTorch format: pytorch_model.bin
# ----------------------------------------------------------------------------------------------------------


def read_pytorch_bin(path: str | os.PathLike, framework: str = "np") -> dict:
    """`pytorch_model.bin` (a pickled state_dict), read with `weights_only=True`: a pickle may carry code.
    NumPy arrays (bfloat16 as float32, exactly), or the torch tensors with ``framework="pt"``."""
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
        if framework != "pt":
            if value.dtype == torch.bfloat16:  # NumPy has no bfloat16; float32 holds every bfloat16 exactly
                value = value.float()
            value = value.numpy()
        state[key] = value
    return state


# ----------------------------------------------------------------------------------------------------------
# Legacy transformers-4 Keras-2 `tf_model.h5` (CHECKPOINT_FORMATS.md section 3)
# ----------------------------------------------------------------------------------------------------------


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


def read_legacy_h5(path: str | os.PathLike) -> dict[str, np.ndarray]:
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
    return state


def write_legacy_h5(path: str | os.PathLike, state: Mapping[str, np.ndarray], outer_name: str = LEGACY_H5_OUTER) -> Path:
    """Write canonical weights as a transformers-4 Keras-2 `tf_model.h5` (the exact layout of section 3), crash-safe
    (complete or absent). The encoder goes to the layer `albert`; each head to its own layer (`classifier`, ...);
    tied copies whose source is there are not written (the research port did not store them)."""
    import h5py

    tied = tied_copies(state)
    names = [k for k in state if not is_ignored(k) and k not in tied]
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
    with atomic.transaction(path, overwrite=True, kind="file") as transaction:
        with h5py.File(transaction.path, "w") as f:
            f.attrs["layer_names"] = np.array([n.encode("utf8") for n in layers])
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"2.11.0"
            for layer in sorted(layers):
                group = f.create_group(layer)
                group.attrs["weight_names"] = np.array([n.encode("utf8") for n, _ in layers[layer]])
                for weight_name, value in layers[layer]:
                    group.create_dataset(weight_name, data=np.ascontiguousarray(value))
    return path


# ----------------------------------------------------------------------------------------------------------
# Original TF1 pre-training checkpoints (CHECKPOINT_FORMATS.md section 4)
# ----------------------------------------------------------------------------------------------------------


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
                        skipped: dict | None = None) -> dict[str, np.ndarray]:
    """Original TF1 pre-training checkpoint -> canonical names and layouts.

    Global step and optimizer slots are skipped; the `cls/*` pre-training heads map to `predictions.*` and
    `sop_classifier.classifier.*` when `pretraining`, else they are skipped. Every skipped variable goes into
    `skipped` ({name: why}); a variable that is neither known nor skippable raises `CheckpointError`.
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
            _skip(skipped, name, why)
            continue
        try:
            canonical, transpose = tf1_to_canonical(name, pretraining)
        except KeyError:
            unknown.append(name)
            continue
        if is_head_name(canonical) and not pretraining:
            _skip(skipped, name, "pre-training head; kept only when converting to AlbertActForPreTraining")
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


def _progress(iterable, description: str, total: int | None = None):
    """A tqdm bar on an interactive terminal for checkpoints worth waiting for; silent otherwise."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an install requirement, but a progress bar is never essential
        return iterable
    total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
    return tqdm(iterable, desc=description, total=total, unit="tensor", disable=None if (total or 0) > 50 else True,
                leave=False)
