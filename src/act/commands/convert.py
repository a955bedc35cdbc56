"""`act convert`: any supported checkpoint -> the canonical format (PyTorch) or a Keras `.keras` file, verified.

Sources (CHECKPOINT_FORMATS.md): a canonical directory (config.json + model.safetensors), a directory or file
with `pytorch_model.bin`, a directory or file with a legacy `tf_model.h5`, a Keras `.keras` file, a Keras 3
`.weights.h5` file (with a config), or an original TF1 checkpoint (prefix, `.index` file or directory, with
`albert_config.json` or `--config`). `act.checkpoints.files.detect` decides the format; every tensor goes through
`act.checkpoints.loading.check_state` (names, shapes, dtypes) against the PyTorch model of the architecture.

Safety (`act.checkpoints.atomic`): the source is only ever opened for reading. DEST is locked for the whole run
(a second convert to the same DEST fails at once); the result is staged and put in place at the very end, as one
step: a new DEST by one rename, an existing DEST directory (only with ``overwrite=True``) by a journaled
replacement of its model files (`act.checkpoints.MODEL_FILES`) that keeps every other file. A failure, an
interrupt or a kill leaves the old DEST or the new one; what a killed run left is finished or removed by the next
run on that DEST.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from ..checkpoints import atomic, files, loading, names
from ..checkpoints.files import FORMAT_NAMES, CheckpointError

TARGETS = ("canonical", "pytorch", "keras")
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
    architecture: str = names.BASE_ARCHITECTURE
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
    """(format, weights path) of a source path (`act.checkpoints.files.detect`); raises `CheckpointError` when it is
    none of the formats."""
    checkpoint = files.detect(source)
    return checkpoint.format, checkpoint.path


def load_config(checkpoint: files.Checkpoint, config) -> tuple[dict, str]:
    """The raw config dict and where it came from: `config` (a dict or a JSON path) wins over the source's."""
    if isinstance(config, dict):
        return dict(config), "the given config"
    if config is not None:
        return files.read_json(config), str(config)
    if checkpoint.format == "keras":
        return {}, "the .keras file"
    path = files.config_path(checkpoint)
    return files.read_json(path), str(path)


def build_config(raw: dict, origin: str, source_format: str, notes: list[str]):
    """Validate a raw config as `AlbertActConfig`, with the TF1 activation fix (see CHECKPOINT_FORMATS.md)."""
    from ..configuration import AlbertActConfig

    raw = dict(raw)
    files.check_model_type(raw, origin)
    if source_format == "tf1" and raw.get("model_type") != AlbertActConfig.model_type \
            and raw.get("hidden_act", "gelu") == "gelu":
        raw["hidden_act"] = "gelu_new"
        notes.append(f'{origin} says hidden_act "gelu": the TF1 code\'s gelu is the tanh approximation, so the '
                     f'converted config says "gelu_new" (transformers\' exact-erf "gelu" would differ slightly)')
    if source_format == "tf1" and "act_epsilon" not in raw:
        notes.append(f"{origin} has no act_epsilon: using the default {AlbertActConfig().act_epsilon}")
    try:
        config = AlbertActConfig.from_dict(raw)
        config.check()
        return config
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


def expected_shapes(config, architecture: str) -> dict[str, tuple[tuple, bool]]:
    """The PyTorch model's weights, {name: (shape, is float)} (built on the meta device: no memory, no init)."""
    import torch

    with torch.device("meta"):
        model = pytorch_class(architecture)(config)
    return loading.expected_from_torch(model)


# ----------------------------------------------------------------------------------------------------------
# Reading a source into canonical weights
# ----------------------------------------------------------------------------------------------------------


def _keras_to_canonical_dir(model, scratch: Path) -> tuple[dict, dict]:
    directory = scratch / "from_keras"
    model.save_pretrained(directory)
    return files.read_config(directory), files.read_safetensors(directory / files.SAFE_WEIGHTS_NAME)


def read_source(checkpoint: files.Checkpoint, raw_config: dict, origin: str, architecture: str | None,
                skipped: dict, scratch: Path) -> tuple[dict, dict]:
    """(raw config, canonical state) of a source; what the reader leaves out goes into `skipped`."""
    source_format, path = checkpoint.format, checkpoint.path
    if source_format not in files.KERAS_FORMATS:
        wanted = architecture or (raw_config.get("architectures") or [names.BASE_ARCHITECTURE])[0]
        pretraining = wanted == names.PRETRAINING_ARCHITECTURE
        return raw_config, files.read_weights(checkpoint, pretraining=pretraining, skipped=skipped)
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
    wanted = architecture or (config.architectures or [names.BASE_ARCHITECTURE])[0]
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
    written = files.read_safetensors(canonical_dir / files.SAFE_WEIGHTS_NAME)
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
    tied = set(names.TIED)
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
            keras_model = getattr(keras_model, names.BASE_PREFIX, keras_model)
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


def convert(source, dest, to: str = "canonical", verify: bool = False, config=None, overwrite: bool = False,
            architecture: str | None = None, atol: float = DEFAULT_ATOL, revision: str | None = None,
            cache_dir=None) -> ConversionReport:
    """Convert SOURCE (any supported checkpoint) to DEST and return a `ConversionReport`.

    to: "canonical" / "pytorch" (the same: a directory with config.json + model.safetensors) or "keras"
    (DEST is a `.keras` file). config: a JSON path or dict that replaces the source's config (needed for TF1
    checkpoints without albert_config.json and for `.weights.h5`). architecture: the model class (e.g.
    "AlbertActForPreTraining" to keep the TF1 pre-training heads); default: the config's `architectures`, else
    inferred from the tensor names. verify: measure the result in PyTorch and Keras; raises
    `VerificationError` (and writes nothing) when parity fails. overwrite: replace the model files of an existing
    DEST directory (config and weights of any format, `act.checkpoints.MODEL_FILES`) and keep its other files, or
    replace an existing .keras file. A second convert to the same DEST while this one runs raises
    `act.checkpoints.DestinationBusy`. A SOURCE that is not a local path but has the form of a hub id
    (`asi/albert-act-tiny`) comes from the hub's cache or the hub (`revision`, `cache_dir`: `act.hub.resolve_model`).
    """
    if to not in TARGETS:
        raise ValueError(f"--to must be one of {TARGETS}, got {to!r}")
    target = "keras" if to == "keras" else "canonical"
    dest = Path(dest)
    if target == "keras" and not dest.name.endswith(".keras"):
        raise ValueError(f"{dest}: --to keras writes a .keras file; DEST must end with .keras")
    if target == "canonical" and dest.name.endswith(".keras"):
        raise ValueError(f"{dest}: DEST ends with .keras; pass --to keras to write a Keras file")
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise FileExistsError(f"{dest}: already exists; pass --overwrite to replace it")
    from ..checkpoints.loading import resolve

    hub = {key: value for key, value in (("revision", revision), ("cache_dir", cache_dir)) if value is not None}
    source = resolve(source, hub=hub) or Path(source)
    checkpoint = files.detect(source)
    _refuse_overlap(source, dest)
    if checkpoint.format == "tf1":
        for path in _tf1_source_files(checkpoint.path):
            _refuse_overlap(path, dest)

    report = ConversionReport(source=str(source), dest=str(dest), source_format=checkpoint.format, target=target)
    raw, origin = load_config(checkpoint, config)
    kind = "file" if target == "keras" else "directory"
    with atomic.transaction(dest, overwrite=overwrite, kind=kind, replaces=files.is_model_file) as transaction:
        report.notes += transaction.recovered
        skipped: dict = {}
        raw, state = read_source(checkpoint, raw, origin, architecture, skipped, transaction.scratch)
        config_object = build_config(raw, origin, checkpoint.format, report.notes)
        architecture = architecture or (config_object.architectures or [None])[0] or names.infer_architecture(state)
        report.architecture = architecture
        config_object.architectures = [architecture]
        checked, loaded = loading.check_state(state, expected_shapes(config_object, architecture),
                                              str(checkpoint.directory if checkpoint.shards else checkpoint.path),
                                              architecture, strict=True,
                                              ties=bool(config_object.tie_word_embeddings), skipped=skipped)
        report.skipped = loaded.skipped_lines()
        report.converted = len(checked)

        if target == "keras":
            try:  # a config the Keras class cannot build is the source's problem: name its config
                keras_class(architecture)(config_object)
            except CheckpointError:
                raise
            except ValueError as error:
                raise CheckpointError(f"{origin}: cannot be written as a Keras TF{architecture}: {error}") from error
            canonical_dir = transaction.scratch / "canonical"
            files.write_canonical_files(canonical_dir, config_object.to_dict(), checked)
            model = keras_class(architecture).from_pretrained(canonical_dir)
            model.save(transaction.path)
        else:
            canonical_dir = transaction.path
            files.write_canonical_files(canonical_dir, config_object.to_dict(), checked)
        if verify:
            report.verification = verify_result(canonical_dir, transaction.path if target == "keras" else None,
                                                checked, architecture, atol=atol)
            if not report.ok:
                raise VerificationError(f"{dest}: not written: the converted model failed the parity check", report)
    return report


# ----------------------------------------------------------------------------------------------------------
# Command line: act convert SOURCE DEST [--to ...] [--verify] [--config ...] [--overwrite]
# ----------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a model directory (model.safetensors, pytorch_model.bin or tf_model.h5) or hub id, "
                             "a .keras or .weights.h5 file, or a TF1 checkpoint (prefix, .index file or directory)")
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
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model files of an existing DEST (config and weights of any format; "
                             "every other file in it is kept), or an existing .keras file")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL,
                        help=f"--verify tolerance on float states between frameworks (default {DEFAULT_ATOL:g})")
    from ..hub import add_hub_arguments

    add_hub_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        report = convert(args.source, args.dest, to=args.to, verify=args.verify, config=args.config,
                         overwrite=args.overwrite, architecture=args.architecture, atol=args.atol,
                         revision=args.revision, cache_dir=args.cache_dir)
    except VerificationError as error:
        print(error.report)
        raise
    print(report)
    return 0


__all__ = ["ConversionReport", "VerificationError", "convert", "detect_format", "verify_result",
           "add_arguments", "run"]
