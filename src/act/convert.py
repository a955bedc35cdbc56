"""`act convert`: any supported checkpoint -> the canonical format (PyTorch) or a Keras `.keras` file, verified.

Sources (CHECKPOINT_FORMATS.md): a canonical directory (config.json + model.safetensors), a directory or file
with `pytorch_model.bin`, a directory or file with a legacy `tf_model.h5`, a Keras `.keras` file, a Keras 3
`.weights.h5` file (with a config), or an original TF1 checkpoint (prefix, `.index` file or directory, with
`albert_config.json` or `--config`). Every format is read through the name table of `act.weights`.

Safety: the source is only ever opened for reading; the result is built in a temporary sibling of DEST and
renamed into place at the very end, so a failure or an interrupt leaves no partial DEST; an existing DEST is
replaced only with `overwrite=True`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import weights
from .weights import CheckpointError

TARGETS = ("canonical", "pytorch", "keras")
FORMAT_NAMES = {
    "canonical": "canonical (config.json + model.safetensors)",
    "pytorch_bin": "PyTorch pytorch_model.bin",
    "legacy_h5": "legacy transformers-4 tf_model.h5",
    "keras": "Keras .keras file",
    "keras_weights": "Keras 3 .weights.h5",
    "tf1": "original TF1 checkpoint",
}
TF1_CONFIG_NAMES = ("albert_config.json", weights.CONFIG_NAME)
# Parity tolerance of --verify on float32 states (ACT_SEMANTICS.md, "Parity": about 1e-5 for unit-scale
# activations after a few iterations; deep real checkpoints get some headroom). Halting counts: exact.
DEFAULT_ATOL = 1e-4


class VerificationError(CheckpointError):
    """--verify found the converted model not at parity; `report` holds the measurements."""

    def __init__(self, message: str, report: ConversionReport):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class ConversionReport:
    source: str
    dest: str
    source_format: str
    target: str
    architecture: str = weights.BASE_ARCHITECTURE
    converted: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    verification: dict | None = None

    @property
    def ok(self) -> bool:
        return self.verification is None or bool(self.verification.get("ok"))

    def __str__(self) -> str:
        target = "Keras .keras file" if self.target == "keras" else "canonical: config.json + model.safetensors"
        lines = [f"act convert: {self.source} ({FORMAT_NAMES.get(self.source_format, self.source_format)})",
                 f"          -> {self.dest} ({target})",
                 f"  architecture: {self.architecture}",
                 f"  tensors converted: {self.converted}",
                 f"  tensors skipped: {len(self.skipped)}"]
        groups: dict[str, list[str]] = {}
        for entry in self.skipped:
            name, _, why = entry.partition(" (")
            groups.setdefault(why.rstrip(")") or "skipped", []).append(name)
        for why, names in groups.items():
            shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
            lines.append(f"    {len(names)} {why}: {shown}")
        lines += [f"  note: {note}" for note in self.notes]
        if self.verification is not None:
            v = self.verification
            lines.append(f"  verification on a padded batch of shape {v['batch']}:")
            lines += [f"    {line}" for line in v["lines"]]
            lines.append(f"  parity: {'OK' if v['ok'] else 'FAILED'}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Finding out what the source is
# ----------------------------------------------------------------------------------------------------------


def detect_format(source: Path) -> tuple[str, Path]:
    """(format, weights path) of a source path; raises `CheckpointError` when it is none of the formats."""
    if source.is_dir():
        for name, fmt in ((weights.SAFE_WEIGHTS_NAME, "canonical"), (weights.PT_WEIGHTS_NAME, "pytorch_bin"),
                          (weights.TF_WEIGHTS_NAME, "legacy_h5")):
            if (source / name).is_file():
                return fmt, source / name
        if (source / "checkpoint").is_file() or any(source.glob("*.index")):
            return "tf1", Path(weights.resolve_tf1_checkpoint(source))
        raise CheckpointError(f"{source}: no checkpoint found (looked for {weights.SAFE_WEIGHTS_NAME}, "
                              f"{weights.PT_WEIGHTS_NAME}, {weights.TF_WEIGHTS_NAME}, a TF1 checkpoint)")
    name = source.name
    if source.is_file():
        if name.endswith(".keras"):
            return "keras", source
        if name.endswith(".weights.h5"):
            return "keras_weights", source
        if name.endswith(".safetensors"):
            return "canonical", source
        if name.endswith(".bin"):
            return "pytorch_bin", source
        if name.endswith(".h5"):
            return "legacy_h5", source
    try:
        return "tf1", Path(weights.resolve_tf1_checkpoint(source))
    except CheckpointError:
        pass
    if not source.exists():
        raise CheckpointError(f"{source}: no such file or directory")
    raise CheckpointError(f"{source}: unknown checkpoint format (expected a model directory, .safetensors, "
                          f".bin, tf_model.h5, .keras, .weights.h5 or a TF1 checkpoint)")


def load_config(source_format: str, weights_path: Path, config) -> tuple[dict, str]:
    """The raw config dict and where it came from: `config` (a dict or a JSON path) wins over the source's."""
    if isinstance(config, dict):
        return dict(config), "the given config"
    if config is not None:
        return weights.read_json(config), str(config)
    if source_format == "keras":
        return {}, "the .keras file"
    names = TF1_CONFIG_NAMES if source_format == "tf1" else (weights.CONFIG_NAME,)
    for name in names:
        if (weights_path.parent / name).is_file():
            return weights.read_json(weights_path.parent / name), str(weights_path.parent / name)
    raise CheckpointError(f"{weights_path}: no {' or '.join(names)} next to the checkpoint; pass --config FILE")


def build_config(raw: dict, origin: str, source_format: str, notes: list[str]):
    """Validate a raw config as `AlbertActConfig`, with the TF1 activation fix (see CHECKPOINT_FORMATS.md)."""
    from .configuration import AlbertActConfig

    raw = dict(raw)
    if source_format == "tf1" and raw.get("model_type") != AlbertActConfig.model_type \
            and raw.get("hidden_act", "gelu") == "gelu":
        raw["hidden_act"] = "gelu_new"
        notes.append(f'{origin} says hidden_act "gelu": the TF1 code\'s gelu is the tanh approximation, so the '
                     f'converted config says "gelu_new" (transformers\' exact-erf "gelu" would differ slightly)')
    if source_format == "tf1" and "act_epsilon" not in raw:
        notes.append(f"{origin} has no act_epsilon: using the default {AlbertActConfig().act_epsilon}")
    try:
        return AlbertActConfig.from_dict(raw)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{origin}: not a valid ALBERT-ACT config: {error}") from error


def pytorch_class(architecture: str):
    import act.pt as pt

    cls = getattr(pt, architecture, None)
    if cls is None or not isinstance(cls, type):
        raise CheckpointError(f"unknown architecture {architecture!r}: act.pt has no such model class")
    return cls


def keras_class(architecture: str):
    import act.tf as tfm

    cls = getattr(tfm, "TF" + architecture, None)
    if cls is None:
        raise CheckpointError(f"the Keras side has no TF{architecture} yet: convert to the canonical format "
                              f"(--to canonical), which PyTorch loads as {architecture}")
    return cls


def expected_shapes(config, architecture: str) -> dict[str, tuple]:
    """Names and shapes of the PyTorch model's weights (built on the meta device: no memory, no init)."""
    import torch

    with torch.device("meta"):
        model = pytorch_class(architecture)(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not weights.is_ignored(k)}


# ----------------------------------------------------------------------------------------------------------
# Reading a source into canonical weights
# ----------------------------------------------------------------------------------------------------------


def _keras_to_canonical_dir(model, scratch: Path) -> tuple[dict, dict]:
    directory = scratch / "from_keras"
    model.save_pretrained(directory)
    return weights.read_config(directory), weights.read_safetensors(directory / weights.SAFE_WEIGHTS_NAME)


def read_source(source_format: str, path: Path, raw_config: dict, origin: str, architecture: str | None,
                report: ConversionReport, scratch: Path) -> tuple[dict, dict]:
    """(raw config, canonical state) of a source."""
    if source_format == "canonical":
        return raw_config, weights.read_safetensors(path)
    if source_format == "pytorch_bin":
        state = weights.read_pytorch_bin(path)
        report.skipped += [f"{k} (buffer, not a weight)" for k in state if weights.is_ignored(k)]
        return raw_config, {k: v for k, v in state.items() if not weights.is_ignored(k)}
    if source_format == "legacy_h5":
        return raw_config, weights.read_legacy_h5(path, skipped=report.skipped)
    if source_format == "tf1":
        wanted = architecture or (raw_config.get("architectures") or [weights.BASE_ARCHITECTURE])[0]
        pretraining = wanted == weights.PRETRAINING_ARCHITECTURE
        return raw_config, weights.read_tf1_checkpoint(path, pretraining=pretraining, skipped=report.skipped)
    # Keras formats need the Keras model (and TensorFlow).
    try:
        import keras

        import act.tf  # noqa: F401  (registers the classes for load_model)
    except ImportError as error:
        raise CheckpointError(f"{path}: reading a {FORMAT_NAMES[source_format]} needs tensorflow, keras and "
                              f"act.tf ({error})") from error
    if source_format == "keras":
        try:
            model = keras.models.load_model(path)
        except (ValueError, OSError, TypeError, KeyError) as error:
            raise CheckpointError(f"{path}: not a loadable ALBERT-ACT .keras file: {error}") from error
        if not hasattr(model, "save_pretrained"):
            raise CheckpointError(f"{path}: holds a {type(model).__name__}, not an ALBERT-ACT Keras model")
        config, state = _keras_to_canonical_dir(model, scratch)
        return config, state
    config = build_config(raw_config, origin, source_format, [])
    wanted = architecture or (config.architectures or [weights.BASE_ARCHITECTURE])[0]
    model = keras_class(wanted)(config)
    model.build()
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as error:
        raise CheckpointError(f"{path}: does not fit TF{wanted} with the config of {origin}: {error}") from error
    _, state = _keras_to_canonical_dir(model, scratch)
    return raw_config, state


# ----------------------------------------------------------------------------------------------------------
# Verification: run the result in PyTorch (and Keras) on a padded batch
# ----------------------------------------------------------------------------------------------------------


def sample_batch(config, batch: int = 3, length: int = 16, seed: int = 0):
    """input_ids, attention_mask, token_type_ids (int64): ragged padding, ids in [1, vocab)."""
    rng = np.random.default_rng(seed)
    length = min(length, config.max_position_embeddings)
    ids = rng.integers(1, config.vocab_size, size=(batch, length))
    mask = np.ones((batch, length), dtype=np.int64)
    for row in range(1, batch):
        mask[row, max(1, length - 5 * row):] = 0
    types = (rng.random((batch, length)) < 0.5).astype(np.int64) * mask if config.type_vocab_size > 1 \
        else np.zeros_like(ids)
    return (ids * mask).astype(np.int64), mask, types


def verify_result(canonical_dir: Path, keras_file: Path | None, state: dict, architecture: str,
                  atol: float = DEFAULT_ATOL) -> dict:
    """Measure the converted checkpoint: weights round trip, PyTorch loading, PyTorch vs Keras parity."""
    import torch

    lines, ok = [], True
    written = weights.read_safetensors(canonical_dir / weights.SAFE_WEIGHTS_NAME)
    differing = sorted(k for k in state if k not in written or not np.array_equal(written[k], state[k]))
    lines.append("weights written = weights read: " + ("yes (bit for bit)" if not differing
                                                       else "NO: " + ", ".join(differing)))
    ok &= not differing

    cls = pytorch_class(architecture)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model, info = cls.from_pretrained(str(canonical_dir), output_loading_info=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.eval()
    tied = set(weights.TIED)
    missing = sorted(set(info.get("missing_keys", ())) - tied)
    problems = missing + sorted(info.get("unexpected_keys", ())) + [str(m) for m in info.get("mismatched_keys", ())]
    lines.append(f"PyTorch {architecture}: " + ("loads every tensor, none left at random init" if not problems
                                               else "loading problems: " + ", ".join(problems)))
    ok &= not problems
    encoder = model.base_model
    config = model.config
    ids, mask, types = sample_batch(config)
    with torch.no_grad():
        pt_out = encoder(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                         token_type_ids=torch.from_numpy(types))
    pt = {"last_hidden_state": pt_out.last_hidden_state.numpy(), "updates": pt_out.updates.numpy()}
    if pt_out.pooler_output is not None:
        pt["pooler_output"] = pt_out.pooler_output.numpy()
    finite = all(np.isfinite(v).all() for v in pt.values())
    counts = pt["updates"][mask == 1]
    lines.append(f"PyTorch outputs finite: {'yes' if finite else 'NO'}; updates per token: min {counts.min():g}, "
                 f"mean {counts.mean():.2f}, max {counts.max():g} (cap {config.num_hidden_layers})")
    ok &= finite

    keras_model, why_not = None, None
    try:
        import keras

        import act.tf as tfm
    except ImportError as error:
        why_not = f"tensorflow/keras not importable ({error})"
    else:
        has_pooler = "pooler_output" in pt
        if keras_file is not None:
            # a task model's encoder is its `albert` sublayer, the twin of PyTorch's `base_model`
            keras_model = keras.models.load_model(keras_file)
            keras_model = getattr(keras_model, weights.BASE_PREFIX, keras_model)
        else:
            keras_model = tfm.TFAlbertActModel.from_pretrained(canonical_dir, add_pooling_layer=has_pooler)
    if keras_model is None:
        lines.append(f"Keras: not compared: {why_not}")
    else:
        out = keras_model({"input_ids": ids.astype(np.int32), "attention_mask": mask.astype(np.int32),
                           "token_type_ids": types.astype(np.int32)})
        tf_out = {k: keras.ops.convert_to_numpy(v) for k, v in out.items() if k in pt}
        for key in ("last_hidden_state", "pooler_output"):
            if key not in pt:
                continue
            if key not in tf_out:
                lines.append(f"Keras has no {key}")
                ok = False
                continue
            difference = float(np.max(np.abs(np.asarray(tf_out[key], np.float64) - pt[key])))
            within = difference <= atol
            ok &= within
            lines.append(f"max |PyTorch - Keras| {key}: {difference:.3g} "
                         f"({'within' if within else 'ABOVE'} the tolerance {atol:g})")
        same = np.array_equal(tf_out["updates"], pt["updates"])
        ok &= same
        lines.append(f"halting counts identical in PyTorch and Keras: {'yes' if same else 'NO'}")
        if not same:
            where = np.argwhere(tf_out["updates"] != pt["updates"])
            lines.append(f"  differing (batch, token) positions: {where.tolist()[:10]}")
    return {"ok": bool(ok), "lines": lines, "batch": tuple(ids.shape), "keras": keras_model is not None}


# ----------------------------------------------------------------------------------------------------------
# The conversion
# ----------------------------------------------------------------------------------------------------------


def _refuse_overlap(source: Path, dest: Path) -> None:
    source, dest = source.resolve(), dest.resolve()
    if dest == source or source in dest.parents or dest in source.parents:
        raise ValueError(f"{dest}: DEST must lie outside SOURCE ({source}) and not contain it: "
                         f"a conversion never modifies its input")


def _tf1_source_files(prefix: Path) -> list[Path]:
    return sorted(prefix.parent.glob(prefix.name + ".*"))


@contextlib.contextmanager
def _staging(dest: Path):
    """A temporary sibling of DEST, removed on failure or interrupt (and after success)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f".{dest.name}.converting-", dir=dest.parent))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _commit(result: Path, dest: Path, staging: Path) -> None:
    """Move the finished result to DEST; an existing DEST (overwrite) is moved aside first, restored on failure."""
    previous = None
    if dest.exists() or dest.is_symlink():
        previous = staging / "previous"
        os.replace(dest, previous)
    try:
        os.replace(result, dest)
    except BaseException:
        if previous is not None:
            os.replace(previous, dest)
        raise


def convert(source, dest, to: str = "canonical", verify: bool = False, config=None, overwrite: bool = False,
            architecture: str | None = None, atol: float = DEFAULT_ATOL) -> ConversionReport:
    """Convert SOURCE (any supported checkpoint) to DEST and return a `ConversionReport`.

    to: "canonical" / "pytorch" (the same: a directory with config.json + model.safetensors) or "keras"
    (DEST is a `.keras` file). config: a JSON path or dict that replaces the source's config (needed for TF1
    checkpoints without albert_config.json and for `.weights.h5`). architecture: the model class (e.g.
    "AlbertActForPreTraining" to keep the TF1 pre-training heads); default: the config's `architectures`, else
    inferred from the tensor names. verify: measure the result in PyTorch and Keras; raises
    `VerificationError` (and writes nothing) when parity fails.
    """
    if to not in TARGETS:
        raise ValueError(f"--to must be one of {TARGETS}, got {to!r}")
    target = "keras" if to == "keras" else "canonical"
    source, dest = Path(source), Path(dest)
    if target == "keras" and not dest.name.endswith(".keras"):
        raise ValueError(f"{dest}: --to keras writes a .keras file; DEST must end with .keras")
    if target == "canonical" and dest.name.endswith(".keras"):
        raise ValueError(f"{dest}: DEST ends with .keras; pass --to keras to write a Keras file")
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise FileExistsError(f"{dest}: already exists; pass --overwrite to replace it")
    source_format, weights_path = detect_format(source)
    _refuse_overlap(source, dest)
    if source_format == "tf1":
        for path in _tf1_source_files(weights_path):
            _refuse_overlap(path, dest)

    report = ConversionReport(source=str(source), dest=str(dest), source_format=source_format, target=target)
    raw, origin = load_config(source_format, weights_path, config)
    with _staging(dest) as staging:
        raw, state = read_source(source_format, weights_path, raw, origin, architecture, report, staging)
        config_object = build_config(raw, origin, source_format, report.notes)
        architecture = architecture or (config_object.architectures or [None])[0] or \
            weights.infer_architecture(state)
        report.architecture = architecture
        config_object.architectures = [architecture]
        for copy, source_name in weights.TIED.items():
            if copy in state and source_name in state:
                del state[copy]
                report.skipped.append(f"{copy} (tied to {source_name})")
        expected = expected_shapes(config_object, architecture)
        weights.check_state_dict(state, expected, str(weights_path),
                                 allow_missing=tuple(k for k in weights.TIED if k in expected))
        report.converted = len(state)

        canonical_dir = staging / "canonical"
        weights.write_canonical(canonical_dir, config_object.to_dict(), state)
        result = canonical_dir
        if target == "keras":
            model = keras_class(architecture).from_pretrained(canonical_dir)
            result = staging / "model.keras"
            model.save(result)
        if verify:
            report.verification = verify_result(canonical_dir, result if target == "keras" else None, state,
                                                architecture, atol=atol)
            if not report.ok:
                raise VerificationError(f"{dest}: not written: the converted model failed the parity check", report)
        if (dest.exists() or dest.is_symlink()) and not overwrite:  # appeared while we worked
            raise FileExistsError(f"{dest}: already exists; pass --overwrite to replace it")
        _commit(result, dest, staging)
    return report


# ----------------------------------------------------------------------------------------------------------
# Command line: act convert SOURCE DEST [--to ...] [--verify] [--config ...] [--overwrite]
# ----------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a model directory (model.safetensors, pytorch_model.bin or tf_model.h5), a .keras or "
                             ".weights.h5 file, or a TF1 checkpoint (prefix, .index file or directory)")
    parser.add_argument("dest", metavar="DEST", help="the output: a directory, or a .keras file with --to keras")
    parser.add_argument("--to", choices=TARGETS, default="canonical",
                        help="canonical/pytorch: config.json + model.safetensors (both frameworks load it); "
                             "keras: a .keras file (default: canonical)")
    parser.add_argument("--verify", action="store_true",
                        help="run the result in PyTorch and Keras on a padded batch; fail unless they agree")
    parser.add_argument("--config", metavar="JSON",
                        help="config to use (e.g. albert_config.json of a TF1 checkpoint) instead of the source's")
    parser.add_argument("--architecture", metavar="CLASS",
                        help="model class, e.g. AlbertActForPreTraining to keep a TF1 checkpoint's pre-training "
                             "heads (default: the config's architectures, else inferred from the tensors)")
    parser.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL,
                        help=f"--verify tolerance on float states between frameworks (default {DEFAULT_ATOL:g})")


def run(args: argparse.Namespace) -> int:
    try:
        report = convert(args.source, args.dest, to=args.to, verify=args.verify, config=args.config,
                         overwrite=args.overwrite, architecture=args.architecture, atol=args.atol)
    except VerificationError as error:
        print(error.report)
        raise
    print(report)
    return 0


__all__ = ["ConversionReport", "VerificationError", "convert", "detect_format", "verify_result",
           "add_arguments", "run"]
