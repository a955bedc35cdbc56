"""`act export`: an ALBERT-ACT model -> an ONNX file whose halting counts follow every input, verified in onnxruntime.

    act export MODEL ONNX_FILE [--verify] [--architecture CLASS] [--overwrite] [--revision REV] [--cache-dir DIR]

MODEL is a model directory or a hub id. The model is exported with `torch.onnx.export(..., dynamo=True)` with a
dynamic batch size and sequence length (at most `max_position_embeddings`). The ACT loop becomes a loop of the graph
(its condition is the spec's: some token still running and the cap not reached), so the graph computes the same
halting counts as PyTorch on any input; a graph traced with a loop unrolled to the iteration count of its example
inputs would silently give wrong counts on inputs that need more iterations, which `--verify` would catch.

`--verify` runs the written graph in onnxruntime on padded batches of other shapes than the traced one and compares
with PyTorch: halting counts identical, float outputs within `--atol`; then once more with the halting bias of both
set so that every token runs to the cap (more iterations than the traced inputs needed, whatever the model), which
a graph with a frozen loop fails. The file is written to a temporary sibling and renamed into place at the end: a
failed export or verification, or an interrupt, leaves no ONNX_FILE (and an existing one untouched; it is replaced
only with `--overwrite`).

Inputs: `input_ids`, `attention_mask`, `token_type_ids` (int64; for multiple choice (batch, choices, seq)). The
graph expects what the model expects, but the ONNX format has no assertion op (PyTorch, torch.export and
torch.compile raise on bad values): in onnxruntime a row holding a token id or type out of range (negative ids
included) or an attention mask value other than 0 and 1 comes out NaN (all its outputs, `updates` included), and
the other rows keep their result (tests/test_export.py). All three inputs are required (`token_type_ids`: zeros for
a tokenizer that gives none).

From Python: `act.commands.export.export_onnx(model, dest, verify=True)` returns an `ExportReport`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import warnings
from pathlib import Path

import numpy as np

from .. import hub
from ..checkpoints import atomic

DEFAULT_ATOL = 1e-4  # float32 graph vs eager PyTorch, as `act convert --verify`
TRACE_BATCH, TRACE_LENGTH, TRACE_CHOICES = 2, 8, 2  # the example inputs the graph is traced with


class ExportError(ValueError):
    """The export failed or its verification found the graph not at parity (`report` holds the measurements)."""

    def __init__(self, message: str, report: ExportReport | None = None):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class ExportReport:
    source: str
    dest: str
    architecture: str
    inputs: list[str] = dataclasses.field(default_factory=list)
    outputs: list[str] = dataclasses.field(default_factory=list)
    opset: int | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    verification: dict | None = None

    @property
    def ok(self) -> bool:
        return self.verification is None or bool(self.verification.get("ok"))

    def __str__(self) -> str:
        lines = [f"act export: {self.source} -> {self.dest} (ONNX, opset {self.opset})",
                 f"  architecture: {self.architecture}",
                 f"  inputs: {', '.join(self.inputs)} (dynamic batch and sequence length)",
                 f"  outputs: {', '.join(self.outputs)}"]
        lines += [f"  note: {note}" for note in self.notes]
        if self.verification is not None:
            lines.append("  verification in onnxruntime against PyTorch:")
            lines += [f"    {line}" for line in self.verification["lines"]]
            lines.append(f"  parity: {'OK' if self.verification['ok'] else 'FAILED'}")
        return "\n".join(lines)


def model_class(architecture: str):
    import act.pt as pt

    cls = getattr(pt, architecture, None)
    if not isinstance(cls, type) or not architecture.startswith("AlbertAct"):
        raise ExportError(f"unknown architecture {architecture!r}: act.pt has no such model class")
    return cls


def sample_inputs(config, batch: int, length: int, seed: int, multiple_choice: bool = False,
                  choices: int = TRACE_CHOICES) -> dict:
    """int64 input_ids, attention_mask, token_type_ids: random ids in [1, vocab), ragged padding (row 0 full)."""
    import torch

    rng = np.random.default_rng(seed)
    length = min(length, config.max_position_embeddings)
    rows = batch * choices if multiple_choice else batch
    ids = rng.integers(1, config.vocab_size, size=(rows, length))
    mask = np.ones((rows, length), dtype=np.int64)
    for row in range(1, rows):
        mask[row, int(rng.integers(1, length + 1)):] = 0
    types = (rng.random((rows, length)) < 0.5).astype(np.int64) if config.type_vocab_size > 1 \
        else np.zeros((rows, length), dtype=np.int64)
    arrays = {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types * mask}
    if multiple_choice:
        arrays = {k: v.reshape(batch, choices, length) for k, v in arrays.items()}
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in arrays.items()}


def _flat_outputs(outputs) -> dict:
    """name -> tensor of a model output, in the order the exported graph returns them."""
    import torch

    return {name: value for name, value in outputs.items() if isinstance(value, torch.Tensor)}


def load_model(directory: Path, architecture: str | None):
    from ..configuration import AlbertActConfig

    config = AlbertActConfig.from_pretrained(directory)
    architecture = architecture or (config.architectures or ["AlbertActModel"])[0]
    cls = model_class(architecture)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = cls.from_pretrained(directory)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    # the graph returns the per-token outputs; hidden states / attention maps are not part of it
    model.config.output_hidden_states = False
    model.config.output_attentions = False
    model.config.return_dict = True
    return model.eval(), architecture


@contextlib.contextmanager
def quiet_exporter():
    """The exporter's warnings (deprecations, optional torchvision ops, axis renames) are not the user's business."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def trace_to_onnx(model, multiple_choice: bool, path: Path, opset: int | None = None) -> tuple[list, list, int]:
    """Export `model` with dynamic batch / sequence (/ choices) axes to `path`; returns (inputs, outputs, opset)."""
    import torch

    config = model.config
    example = sample_inputs(config, TRACE_BATCH, TRACE_LENGTH, seed=0, multiple_choice=multiple_choice)
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=config.max_position_embeddings)
    axes = {0: batch, 2: sequence, 1: torch.export.Dim("choices")} if multiple_choice else {0: batch, 1: sequence}
    with torch.no_grad():
        names = list(_flat_outputs(model(**example)))
    with quiet_exporter():
        program = torch.onnx.export(model, (), kwargs=example, dynamo=True,
                                    dynamic_shapes={k: axes for k in example}, input_names=list(example),
                                    output_names=names, opset_version=opset, optimize=True, verbose=False)
        program.save(str(path), external_data=False)
    return list(example), names, program.model.opset_imports.get("", opset)


HALTING_BIAS = "encoder.albert_layer.act.dense.bias"  # the halting unit's bias (with `albert.` in a task model)
TO_THE_CAP_BIAS = -1e4  # halting probability 0: every token runs to the cap


def _to_the_cap(model, path: Path):
    """The model and the ONNX graph with the halting bias at `TO_THE_CAP_BIAS` (every token runs to the cap), or
    None when the graph holds no such initializer. The example inputs the graph was traced with need fewer
    iterations, so a graph that recorded the loop at the traced iteration count would give fewer updates here."""
    import copy

    import onnx
    import onnxruntime
    import torch

    graph = onnx.load(str(path))
    tensors = [t for t in graph.graph.initializer if t.name.endswith(HALTING_BIAS)]
    parameters = [p for n, p in model.named_parameters() if n.endswith(HALTING_BIAS)]
    if len(tensors) != 1 or len(parameters) != 1:
        return None
    tensor = tensors[0]
    value = np.full(onnx.numpy_helper.to_array(tensor).shape, TO_THE_CAP_BIAS, dtype=np.float32)
    tensor.CopyFrom(onnx.numpy_helper.from_array(value, tensor.name))
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    deep = copy.deepcopy(model)
    with torch.no_grad():
        next(p for n, p in deep.named_parameters() if n.endswith(HALTING_BIAS)).fill_(TO_THE_CAP_BIAS)
    return deep, session


def verify_onnx(model, path: Path, multiple_choice: bool, atol: float = DEFAULT_ATOL) -> dict:
    """Run the ONNX file in onnxruntime on padded batches of other shapes than the traced one, and once more with
    the halting bias of both set so that every token runs to the cap (more iterations than the traced inputs need:
    a graph with the loop frozen at the traced count fails there); compare to PyTorch."""
    import onnxruntime
    import torch

    config = model.config
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    lines, ok = [], True
    longest = config.max_position_embeddings
    shapes = [(3, min(16, longest)), (1, min(5, longest)), (4, min(longest, 2 * TRACE_LENGTH + 3))]
    runs = [("", model, session, batch, length) for batch, length in shapes]
    forced = _to_the_cap(model, path)
    if forced is None:
        lines.append("the loop to the cap: not checked (no halting bias initializer in the graph)")
    else:
        runs.append(("every token to the cap (halting bias set in both): ", *forced, *shapes[0]))
    for index, (label, torch_model, onnx_session, batch, length) in enumerate(runs):
        names = [output.name for output in onnx_session.get_outputs()]
        inputs = sample_inputs(config, batch, length, seed=10 + index, multiple_choice=multiple_choice)
        with torch.no_grad():
            expected = {k: v.numpy() for k, v in _flat_outputs(torch_model(**inputs)).items()}
        got = dict(zip(names, onnx_session.run(None, {k: v.numpy() for k, v in inputs.items()})))
        shape = tuple(inputs["input_ids"].shape)
        counts_equal = "updates" in got and np.array_equal(got["updates"], expected["updates"])
        worst = {k: float(np.max(np.abs(np.asarray(got[k], np.float64) - v))) if v.size else 0.0
                 for k, v in expected.items() if k != "updates" and k in got}
        missing = sorted(set(expected) - set(got))
        batch_ok = counts_equal and not missing and all(d <= atol for d in worst.values())
        mask = inputs["attention_mask"].numpy() == 1
        counts = expected["updates"][mask]
        if label and counts.min() != config.num_hidden_layers:  # the forced run did not reach the cap: no check
            batch_ok = False
            label += f"(PyTorch did not run every token to the cap {config.num_hidden_layers}) "
        ok &= batch_ok
        lines.append(f"{label}batch {shape}, updates per token min {counts.min():g} / mean {counts.mean():.2f} / "
                     f"max {counts.max():g} (cap {config.num_hidden_layers}): halting counts identical: "
                     f"{'yes' if counts_equal else 'NO'}; " + ", ".join(
                         f"max |ONNX - PyTorch| {k} {d:.3g}" for k, d in worst.items())
                     + (f"; missing outputs: {missing}" if missing else ""))
        if not counts_equal and "updates" in got:
            where = np.argwhere(got["updates"] != expected["updates"])
            lines.append(f"  differing positions: {where.tolist()[:10]}")
    lines.append(f"tolerance on float outputs: {atol:g}")
    return {"ok": bool(ok), "lines": lines}


def export_onnx(model, dest, architecture: str | None = None, verify: bool = False, overwrite: bool = False,
                atol: float = DEFAULT_ATOL, opset: int | None = None, revision: str | None = None,
                cache_dir=None) -> ExportReport:
    """Export MODEL (a directory or a hub id) to the ONNX file DEST; see the module docstring."""
    dest = Path(dest)
    if dest.suffix != ".onnx":
        raise ValueError(f"{dest}: the ONNX file must end with .onnx")
    if dest.is_dir():
        raise ValueError(f"{dest}: is a directory; give the path of the .onnx file to write")
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise FileExistsError(f"{dest}: already exists; pass --overwrite to replace it")
    directory = hub.resolve_model(model, revision=revision, cache_dir=cache_dir)
    if not directory.is_dir():
        raise ValueError(f"{model}: act export takes a model directory (config.json + weights) or a hub id")
    torch_model, architecture = load_model(directory, architecture)
    multiple_choice = architecture == "AlbertActForMultipleChoice"
    report = ExportReport(source=str(model), dest=str(dest), architecture=architecture)
    created = [parent for parent in [dest.parent, *dest.parent.parents] if not parent.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = False
    try:  # crash-safe (`atomic.writing_file`): a failed export, a full disk, a kill leave DEST as it was
        with atomic.writing_file(dest, overwrite=overwrite) as temporary:
            try:
                report.inputs, report.outputs, report.opset = trace_to_onnx(torch_model, multiple_choice, temporary,
                                                                            opset)
            except Exception as error:  # torch.export / ONNX conversion errors are long: keep the first line
                if atomic.is_write_failure(error, [temporary]):
                    raise
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise ExportError(f"{model}: the ONNX export failed: {type(error).__name__}: {first}") from error
            if verify:
                report.verification = verify_onnx(torch_model, temporary, multiple_choice, atol=atol)
                if not report.ok:
                    raise ExportError(f"{dest}: not written: the ONNX graph failed the parity check", report)
        written = True
    except FileExistsError as error:  # appeared while we worked
        raise FileExistsError(f"{dest}: already exists; pass --overwrite to replace it") from error
    finally:
        if not written:  # a failed export leaves no trace: the folders it created for DEST go too (if still empty)
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    break
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a model directory (config.json + weights) or a hub id")
    parser.add_argument("dest", metavar="ONNX_FILE", help="the ONNX file to write (.onnx)")
    parser.add_argument("--verify", action="store_true",
                        help="run the graph in onnxruntime on padded batches of other shapes and compare with "
                             "PyTorch (identical halting counts); nothing is written unless they agree")
    parser.add_argument("--architecture", metavar="CLASS",
                        help="the model class to export, e.g. AlbertActModel for the bare encoder of a checkpoint "
                             "with heads (default: the config's architectures)")
    parser.add_argument("--overwrite", action="store_true", help="replace ONNX_FILE if it exists")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL,
                        help=f"--verify tolerance on float outputs (default {DEFAULT_ATOL:g})")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    hub.add_hub_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        report = export_onnx(args.model, args.dest, architecture=args.architecture, verify=args.verify,
                             overwrite=args.overwrite, atol=args.atol, opset=args.opset, revision=args.revision,
                             cache_dir=args.cache_dir)
    except ExportError as error:
        if error.report is not None:
            print(error.report)
        raise
    print(report)
    return 0


__all__ = ["ExportError", "ExportReport", "export_onnx", "verify_onnx", "add_arguments", "run"]
