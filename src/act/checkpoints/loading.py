"""Any checkpoint -> a checked canonical state for one model: the only path by which weights enter a model.

PyTorch `from_pretrained` (every format, including the safetensors/.bin files transformers resolves itself), Keras
`from_pretrained` / `load_canonical_state_dict`, and `act convert` all call `check_state`:

1. rename the checkpoint's tensors for the model (`names.match_model_names`: a bare checkpoint into a task model, a
   task checkpoint into the bare model, no pooler);
2. leave out buffers (`position_ids`) and tied copies (`names.TIED`; a copy must equal its source);
3. check names, shapes and dtypes against the model: a missing or unexpected encoder tensor, a shape that differs
   from the model's, a non-float tensor where the model has a float weight, or a weight holding NaN or infinite
   values is a `CheckpointError` naming the file and the tensors (and both shapes; a shape mismatch is a
   `ShapeMismatchError`, also a `RuntimeError` as in transformers, and `ignore_mismatched_sizes=True` initialises
   such weights instead, with transformers' warning);
4. say what was skipped and why (`LoadReport`). A task model loading a checkpoint without its head keeps the head's
   fresh initialisation and warns (`CheckpointWarning`), as transformers does; a converter (``strict=True``)
   refuses instead.

`resolve` is the hook that turns a "source" (a path, or a hub id through `act.hub`) into local files.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import files, names
from .files import CheckpointError, ShapeMismatchError

logger = logging.getLogger("act.checkpoints")

# PyTorch: the file that `from_pretrained` read (and what its reader skipped), for `load_into_pytorch`, which
# transformers calls with the tensors only.
_SOURCE: contextvars.ContextVar = contextvars.ContextVar("act_checkpoint_source", default=None)


class CheckpointWarning(UserWarning):
    """A checkpoint loaded, but not all of the model comes from it (or not all of it went into the model)."""


def resolve(source: str | os.PathLike, subfolder: str = "", hub: dict | None = None) -> Path | None:
    """The local path of a model `source`: a directory or a file that exists. A hub id is fetched (or found in the
    local cache) by `act.hub.resolve_model` when `hub` options are given (a dict, possibly empty: revision,
    cache_dir, local_files_only, token); without them None (PyTorch `from_pretrained` lets transformers fetch the
    files, and still checks them here)."""
    path = Path(os.fspath(source)) / subfolder if subfolder else Path(os.fspath(source))
    if path.exists():
        return path
    # a TF1 prefix (model.ckpt-N) is not a file itself
    if Path(f"{path}.index").is_file():
        return path
    if hub is not None:
        from .. import hub as hub_ids

        if hub_ids.is_hub_id(os.fspath(source)):
            return hub_ids.resolve_model(source, subfolder=subfolder or None, **hub)
    return None


# ----------------------------------------------------------------------------------------------------------
# Checking a state against a model
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LoadReport:
    """What happened to each tensor of a checkpoint loaded into a model."""

    source: str
    model: str
    loaded: list[str] = dataclasses.field(default_factory=list)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)  # checkpoint name -> why
    initialised: list[str] = dataclasses.field(default_factory=list)  # model weights not in the checkpoint
    unused_heads: list[str] = dataclasses.field(default_factory=list)  # head tensors of another task model
    reinitialised: list[str] = dataclasses.field(default_factory=list)  # of another shape (ignore_mismatched_sizes)
    shapes: dict[str, tuple[tuple, tuple]] = dataclasses.field(default_factory=dict)  # reinitialised: (file, model)

    def skipped_lines(self) -> list[str]:
        return [f"{name} ({why})" for name, why in self.skipped.items()]

    def emit(self) -> None:
        """Warn about what the user must know (new weights; another head's weights left out); log the rest."""
        if self.unused_heads:
            warnings.warn(f"{self.source}: weights not used by {self.model}: {', '.join(self.unused_heads)}",
                          CheckpointWarning, stacklevel=3)
        if self.initialised:
            warnings.warn(f"{self.source}: {self.model} weights not in the checkpoint, newly initialised (train them "
                          f"before use): {', '.join(self.initialised)}", CheckpointWarning, stacklevel=3)
        if self.reinitialised:  # transformers' wording, on its logger (where its users and tests look for it)
            lines = "\n".join(f"- {name}: {self.skipped[name]}" for name in self.reinitialised)
            transformers_logger = logging.getLogger("transformers.modeling_utils")
            transformers_logger.warning(
                "%s: Reinit due to size mismatch (ignore_mismatched_sizes=True) of %d %s weight(s), newly "
                "initialised (train them before use):\n%s", self.source, len(self.reinitialised), self.model, lines)
            warnings.warn(f"{self.source}: {self.model} weights of another shape in the checkpoint, newly initialised "
                          f"(ignore_mismatched_sizes=True): {', '.join(self.reinitialised)}", CheckpointWarning,
                          stacklevel=3)
        for line in self.skipped_lines():
            logger.info("%s: skipped %s", self.source, line)


def is_float(value) -> bool:
    """Whether a tensor (NumPy array or torch tensor) holds floating-point values. NumPy arrays of bfloat16 (what
    a bfloat16 Keras model's `canonical_state_dict` holds) are ml_dtypes' types, which NumPy's `np.floating` does
    not include."""
    method = getattr(value, "is_floating_point", None)
    if callable(method):
        return bool(method())
    dtype = np.asarray(value).dtype
    if np.issubdtype(dtype, np.floating):
        return True
    try:
        import ml_dtypes

        ml_dtypes.finfo(dtype)  # bfloat16, float8_*: a float type with its own finfo
        return True
    except (ImportError, ValueError, TypeError):
        return False


def _dtype_name(value) -> str:
    return str(getattr(value, "dtype", type(value).__name__)).replace("torch.", "")


def _all_finite(value) -> bool:
    if hasattr(value, "is_floating_point"):
        import torch

        return bool(torch.isfinite(value).all())
    return bool(np.isfinite(np.asarray(value)).all())


def _same(a, b) -> bool:
    if hasattr(a, "is_floating_point") and hasattr(b, "is_floating_point"):
        import torch

        return a.shape == b.shape and bool(torch.equal(a, b.to(a.dtype)))
    return np.array_equal(np.asarray(a), np.asarray(b))


def check_state(state: Mapping, expected: Mapping[str, tuple[tuple, bool]], source: str, model: str,
                strict: bool = True, ties: bool = True, ignore_mismatched_sizes: bool = False,
                skipped: Mapping[str, str] | None = None) -> tuple[dict, LoadReport]:
    """Check a checkpoint's canonical `state` against what a model expects; return (the tensors to load, report).

    expected: the model's weights, {canonical name: (shape, is float)}. source: the file (named by every error).
    model: the model class (for messages). strict: every weight of the model must be in the checkpoint and every
    tensor of the checkpoint must be used; else (what `from_pretrained` does, as transformers) task-head weights
    may be missing (newly initialised) and another head's weights are left out, but the encoder must be complete
    and nothing unknown may be there. ties: the model ties `names.TIED` copies to their sources (they are then
    never required). ignore_mismatched_sizes (transformers' option, asked for explicitly; not with strict): a weight
    of another shape in the checkpoint is left to its initialisation, with the warning transformers gives ("Reinit
    due to size mismatch"); without it a shape mismatch raises `ShapeMismatchError` (a `CheckpointError` and a
    `RuntimeError`). skipped: what the file reader left out.
    """
    report = LoadReport(source=str(source), model=model, skipped=dict(skipped or {}))
    has_pooler = any(names.split_prefix(name)[1].startswith("pooler.") for name in expected)
    has_heads = any(names.is_head_name(name) for name in expected)
    renamed, left_out = names.match_model_names(state, expected, has_pooler=has_pooler)
    report.skipped.update(left_out)
    problems, mismatched = [], []

    for name in [n for n in renamed if names.is_ignored(n)]:
        report.skipped[name] = "buffer, not a weight"
        del renamed[name]
    for copy, origin in names.tied_copies(renamed).items():
        if copy in expected and not ties:  # a model that does not tie them loads both
            continue
        if not _same(renamed[copy], renamed[origin]):
            problems.append(f"{copy} differs from {origin}, to which the model ties it")
        report.skipped[copy] = f"tied to {origin}"
        del renamed[copy]
    tied = {copy for copy, origin in names.TIED.items() if ties and copy in expected and origin in expected}

    missing = [n for n in expected if n not in renamed and n not in tied]
    unexpected = [n for n in renamed if n not in expected]
    if not strict:
        report.initialised = sorted(n for n in missing if names.is_head_name(n))
        missing = [n for n in missing if not names.is_head_name(n)]
        report.unused_heads = sorted(n for n in unexpected if names.is_head_name(n))
        for name in report.unused_heads:
            report.skipped[name] = f"not used by {model}"
            del renamed[name]
        if not has_heads:  # the bare model taking the encoder of a task checkpoint: expected, not worth a warning
            report.unused_heads = []
        unexpected = [n for n in unexpected if not names.is_head_name(n)]
    if missing:
        problems.append("missing tensors: " + ", ".join(sorted(missing)))
    if unexpected:
        problems.append("unexpected tensors: " + ", ".join(sorted(unexpected)))
    for name, (shape, floating) in expected.items():
        if name not in renamed:
            continue
        value = renamed[name]
        got = tuple(value.shape)
        if got != tuple(shape):
            if ignore_mismatched_sizes and not strict:
                report.skipped[name] = f"shape {got} in the checkpoint, {tuple(shape)} in the model"
                report.reinitialised.append(name)
                report.shapes[name] = (got, tuple(shape))
                del renamed[name]
                continue
            mismatched.append(f"{name} has shape {got} in the checkpoint but the model expects {tuple(shape)}")
        elif floating and not is_float(value):
            problems.append(f"{name} holds {_dtype_name(value)} values in the checkpoint but the model's weight is "
                            f"floating point (a checkpoint of another kind of model, or a corrupt file?)")
        elif floating and not _all_finite(value):
            problems.append(f"{name} holds NaN or infinite values in the checkpoint (a diverged training run, or a "
                            f"corrupt file?)")
    if mismatched:
        hint = "" if strict else " (from_pretrained(..., ignore_mismatched_sizes=True) initialises them instead)"
        raise ShapeMismatchError(f"{source}: " + "; ".join(problems + mismatched) + hint)
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))
    report.loaded = sorted(renamed)
    report.initialised = sorted(report.initialised)
    report.reinitialised = sorted(report.reinitialised)
    return renamed, report


# ----------------------------------------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------------------------------------


def expected_from_torch(model) -> dict[str, tuple[tuple, bool]]:
    """A PyTorch model's weights as `check_state` wants them (works on the meta device)."""
    return {name: (tuple(value.shape), value.is_floating_point()) for name, value in model.state_dict().items()
            if not names.is_ignored(name)}


def pytorch_from_pretrained(cls, parent, source, model_args: tuple, kwargs: dict):
    """`AlbertActPreTrainedModel.from_pretrained`: transformers' loader (config overrides, dtype, device_map,
    output_loading_info, Auto classes...) fed with the tensors that this package read from a local `source`, in any
    format `files.detect` knows; `load_into_pytorch` checks them against the model before they are loaded.
    `parent` is transformers' `from_pretrained`, bound to `cls`."""
    if source is None or kwargs.get("state_dict") is not None:
        return parent(source, *model_args, **kwargs)  # a state dict given by the caller: checked all the same
    local = resolve(source, kwargs.get("subfolder", "") or "")
    if local is None:  # not a local path: transformers resolves (and downloads) the files; they are checked too
        return parent(source, *model_args, **kwargs)
    checkpoint = files.detect(local)
    if checkpoint.format in files.KERAS_FORMATS or checkpoint.format == "tf1":
        raise CheckpointError(f"{checkpoint.path}: {cls.__name__}.from_pretrained reads model directories "
                              f"(safetensors, pytorch_model.bin, tf_model.h5); convert a {checkpoint.description} "
                              f"first: act convert {checkpoint.path} DEST")
    skipped: dict = {}
    state = _as_torch(files.read_weights(checkpoint, framework="pt", skipped=skipped))
    kwargs = dict(kwargs)
    kwargs.pop("subfolder", None)
    if kwargs.get("config") is None:
        raw = files.read_config(checkpoint.directory)  # a clear error naming the file when there is none
        from ..configuration import AlbertActConfig

        try:  # the file's own values, before transformers applies the keyword overrides (checked there too)
            AlbertActConfig.from_dict(raw)
        except ValueError as error:
            raise type(error)(f"{checkpoint.directory / files.CONFIG_NAME}: {error}") from error
        kwargs["config"] = str(checkpoint.directory)
    label = str(checkpoint.directory if checkpoint.shards else checkpoint.path)
    token = _SOURCE.set((label, skipped))
    try:
        result = parent(None, *model_args, state_dict=state, **kwargs)
    finally:
        _SOURCE.reset(token)
    model = result[0] if isinstance(result, tuple) else result
    model.name_or_path = str(source)
    model.config.name_or_path = str(source)
    return result


def load_into_pytorch(model, state_dict, checkpoint_files, load_config, expected_keys, parent):
    """transformers' `_load_pretrained_model`, after `check_state`: every tensor transformers would load goes
    through the check first (read here when transformers resolved the files itself)."""
    given = _SOURCE.get()
    skipped: dict = {}
    if given is not None:
        source, skipped = given
    elif state_dict is None and checkpoint_files:
        source = str(checkpoint_files[0]) if len(checkpoint_files) == 1 else str(Path(checkpoint_files[0]).parent)
    else:
        source = "the state_dict given to from_pretrained"
    if state_dict is None and checkpoint_files:
        state_dict = {}
        for path in checkpoint_files:
            state_dict.update(files.read_weights(path, framework="pt", skipped=skipped))
    state_dict = dict(state_dict or {})
    checked, report = check_state(
        state_dict, expected_from_torch(model), source, type(model).__name__, strict=False,
        ties=bool(getattr(model.config, "tie_word_embeddings", True)),
        ignore_mismatched_sizes=bool(getattr(load_config, "ignore_mismatched_sizes", False)), skipped=skipped)
    report.emit()
    result = parent(model, _as_torch(checked), None, load_config, expected_keys)
    info = result[0] if isinstance(result, tuple) else result
    if report.reinitialised and hasattr(info, "mismatched_keys"):  # as transformers reports them (loading info)
        for name in report.reinitialised:
            info.missing_keys.discard(name)
            info.mismatched_keys.add((name, *report.shapes[name]))
    return result


def _as_torch(state: Mapping) -> dict:
    import torch

    return {name: value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
            for name, value in state.items()}


# ----------------------------------------------------------------------------------------------------------
# Keras
# ----------------------------------------------------------------------------------------------------------


def expected_from_keras(model) -> dict[str, tuple[tuple, bool]]:
    """A Keras model's weights in canonical names, layouts and float-ness (`canonical_variables`)."""
    expected = {}
    for name, (variable, transpose) in model.canonical_variables().items():
        shape = tuple(int(d) for d in variable.shape)
        expected[name] = (shape[::-1] if transpose else shape, "float" in str(variable.dtype))
    return expected


def load_into_keras(model, state: Mapping, source: str = "state dict", strict: bool = True,
                    skipped: Mapping[str, str] | None = None, ignore_mismatched_sizes: bool = False) -> LoadReport:
    """`TFAlbertActPreTrainedModel.load_canonical_state_dict`: check, then assign (NumPy or torch values)."""
    table = model.canonical_variables()
    checked, report = check_state(state, expected_from_keras(model), source, type(model).__name__, strict=strict,
                                  skipped=skipped, ignore_mismatched_sizes=ignore_mismatched_sizes)
    report.emit()
    for name, (variable, transpose) in table.items():
        if name in checked:
            value = checked[name]
            if hasattr(value, "detach"):  # a torch tensor (bfloat16 has no NumPy twin: go through float32)
                value = value.detach().cpu().float().numpy()
            value = np.asarray(value)
            variable.assign(np.asarray(value.T if transpose else value, dtype=variable.dtype))
    return report


def keras_from_pretrained(cls, source, kwargs: dict, constructor_kwargs: tuple):
    """`TFAlbertActPreTrainedModel.from_pretrained`: config (+ keyword overrides, validated), model, weights of any
    format `files.detect` knows, checked by `load_into_keras` (a missing head is initialised, with a warning)."""
    from ..configuration import AlbertActConfig

    kwargs = dict(kwargs)
    hub = {key: kwargs.pop(key) for key in ("revision", "cache_dir", "local_files_only", "token") if key in kwargs}
    ignore_mismatched_sizes = bool(kwargs.pop("ignore_mismatched_sizes", False))
    subfolder = kwargs.pop("subfolder", "") or ""  # before the config overrides take every other keyword
    overrides = {key: kwargs.pop(key) for key in list(kwargs) if key not in constructor_kwargs}
    local = resolve(source, subfolder, hub=hub)
    if local is None:
        raise CheckpointError(f"{source}: no such model directory (one with {files.CONFIG_NAME} and the weights)")
    checkpoint = files.detect(local)
    if checkpoint.format in files.KERAS_FORMATS or checkpoint.format == "tf1":
        raise CheckpointError(f"{checkpoint.path}: {cls.__name__}.from_pretrained reads model directories "
                              f"(safetensors, pytorch_model.bin, tf_model.h5); a {checkpoint.description} is read "
                              f"with keras.models.load_model / load_weights, or converted: act convert")
    raw = files.read_config(checkpoint.directory)
    try:
        config, unused = AlbertActConfig.from_dict(raw, return_unused_kwargs=True, **overrides)
    except ValueError as error:  # name where the bad value came from: a keyword override, or the file
        culprits = [f"{key}={value!r}" for key, value in overrides.items() if key in str(error)]
        origin = f"{cls.__name__}.from_pretrained({', '.join(culprits)})" if culprits else \
            str(checkpoint.directory / files.CONFIG_NAME)
        raise type(error)(f"{origin}: {error}") from error
    if unused:
        raise TypeError(f"{cls.__name__}.from_pretrained: unknown arguments {sorted(unused)} (neither a config "
                        f"attribute nor one of {tuple(constructor_kwargs)})")
    try:
        model = cls(config, **kwargs)
    except ValueError as error:  # a config the Keras class cannot build (e.g. an untied MLM decoder)
        raise type(error)(f"{checkpoint.directory / files.CONFIG_NAME}: {error}") from error
    model.build()
    skipped: dict = {}
    state = files.read_weights(checkpoint, skipped=skipped)
    label = str(checkpoint.directory if checkpoint.shards else checkpoint.path)
    load_into_keras(model, state, source=label, strict=False, skipped=skipped,
                    ignore_mismatched_sizes=ignore_mismatched_sizes)
    return model


def save_keras(model, directory) -> Path:
    """`TFAlbertActPreTrainedModel.save_pretrained`: the canonical format (PyTorch names), crash-safe, keeping the
    directory's other files; the config is validated first."""
    model.config.check()
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__[2:]]  # the PyTorch class of the same name
    written = files.write_canonical(directory, config, model.canonical_state_dict())
    from ..model_card import write_model_card

    write_model_card(directory, config, num_parameters=model.count_params())
    return written


def save_pytorch(model, parent, directory, kwargs: dict):
    """`AlbertActPreTrainedModel.save_pretrained`: transformers' writer into a staging directory, then one
    crash-safe replacement of the directory's model files (its other files are kept)."""
    from . import atomic

    if not kwargs.get("is_main_process", True):
        return parent(directory, **kwargs)  # distributed runs: only the main process writes
    model.config.check()
    if kwargs.get("push_to_hub") and not kwargs.get("repo_id"):
        kwargs = dict(kwargs, repo_id=Path(directory).name)  # transformers' default, not the staging name
    with atomic.transaction(directory, overwrite=True, replaces=files.is_model_file) as transaction:
        parent(transaction.path, **kwargs)
    from ..model_card import write_model_card

    write_model_card(directory, model.config, architecture=type(model).__name__,
                     num_parameters=model.num_parameters())
    return None


__all__ = ["CheckpointWarning", "LoadReport", "check_state", "resolve", "pytorch_from_pretrained",
           "load_into_pytorch", "load_into_keras", "keras_from_pretrained", "save_keras", "save_pytorch",
           "expected_from_torch", "expected_from_keras", "is_float"]
