"""Exported graphs keep the ACT loop: `act export` (ONNX + onnxruntime), torch.export, and the legacy exporter.

The freeze check: a model whose halting unit makes every token halt after ONE iteration is traced; then, in the
exported graph only, the halting bias is set so that every token runs to the cap, and the graph must give the cap
(as PyTorch does with the same weights). A graph that recorded the loop at the traced iteration count would give 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import cases  # noqa: E402
from act import AlbertActForMultipleChoice, AlbertActModel  # noqa: E402
from act.commands.export import ExportError, export_onnx, sample_inputs  # noqa: E402

HALTING_BIAS = "encoder.albert_layer.act.dense.bias"
ROOT = Path(__file__).resolve().parents[1]


def step1_model(directory: Path | None = None, cls=AlbertActModel):
    """Every token halts after one iteration (p ~ 1 from the first one), so a trace sees a single iteration."""
    config, model, state = cases.build_pt_model("step1", seed=0)
    if cls is not AlbertActModel:
        full = cls(config).eval()
        full.base_model.load_state_dict(model.state_dict())
        model = full
    if directory is not None:
        model.save_pretrained(directory)
    return model


def deep_copy_of(model, bias: float = -8.0):
    """The same model with the halting bias that makes every token run to the cap."""
    import copy

    deep = copy.deepcopy(model)
    with torch.no_grad():
        deep.get_parameter(HALTING_BIAS if hasattr(deep, "encoder") else "albert." + HALTING_BIAS).fill_(bias)
    return deep


def run_onnx(path, inputs, bias=None, bias_name=HALTING_BIAS):
    model = onnx.load(str(path))
    if bias is not None:
        tensors = [t for t in model.graph.initializer if t.name.endswith(bias_name)]
        assert tensors, f"{bias_name} is not an initializer of the graph: {[t.name for t in model.graph.initializer]}"
        for tensor in tensors:
            tensor.CopyFrom(onnx.numpy_helper.from_array(np.full(onnx.numpy_helper.to_array(tensor).shape, bias,
                                                                 np.float32), tensor.name))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}
    return dict(zip(names, session.run(None, {k: v.numpy() for k, v in inputs.items() if k in wanted})))


def eager(model, inputs):
    with torch.no_grad():
        return model(**inputs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A step-1 model directory and its `act export --verify` result (the export runs once for the module)."""
    root = tmp_path_factory.mktemp("export")
    model = step1_model(root / "model")
    try:
        report = export_onnx(root / "model", root / "model.onnx", verify=True)
    except ExportError as error:  # reported by each test that needs the file
        return model, root, error
    return model, root, report


def test_act_export_verifies_and_writes_the_file(exported):
    model, root, report = exported
    assert not isinstance(report, Exception), report
    assert report.ok and (root / "model.onnx").is_file()
    assert report.outputs == ["last_hidden_state", "pooler_output", "updates", "remainders"]
    assert "halting counts identical: yes" in str(report)
    assert sorted(p.name for p in root.iterdir()) == ["model", "model.onnx"]  # no temporary file left


def test_onnx_graph_does_not_freeze_the_loop(exported):
    model, root, report = exported
    assert not isinstance(report, Exception), report
    inputs = sample_inputs(model.config, batch=3, length=13, seed=5)
    traced_like = run_onnx(root / "model.onnx", inputs)
    assert traced_like["updates"].max() == 1 == eager(model, inputs).updates.max()
    deep = deep_copy_of(model)
    expected = eager(deep, inputs)
    got = run_onnx(root / "model.onnx", inputs, bias=-8.0)
    assert expected.updates.max() == model.config.num_hidden_layers
    assert np.array_equal(got["updates"], expected.updates.numpy())
    np.testing.assert_allclose(got["last_hidden_state"], expected.last_hidden_state.numpy(), atol=1e-4, rtol=0)


def test_torch_export_does_not_freeze_the_loop():
    model = step1_model()
    example = sample_inputs(model.config, batch=2, length=8, seed=0)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=64)
    program = torch.export.export(model, (), example, dynamic_shapes={k: {0: batch, 1: sequence} for k in example})
    module = program.module()
    with torch.no_grad():
        module.get_parameter(HALTING_BIAS).fill_(-8.0)
    inputs = sample_inputs(model.config, batch=3, length=13, seed=5)
    expected = eager(deep_copy_of(model), inputs)
    with torch.no_grad():
        got = module(**inputs)
    assert torch.equal(got.updates if hasattr(got, "updates") else got["updates"], expected.updates)


def test_bad_inputs_raise_in_an_exported_program():
    """While tracing, the input checks become assertions of the graph: the exported program names what was wrong."""
    model = step1_model()
    example = sample_inputs(model.config, batch=2, length=8, seed=0)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=64)
    module = torch.export.export(model, (), example,
                                 dynamic_shapes={k: {0: batch, 1: sequence} for k in example}).module()
    inputs = sample_inputs(model.config, batch=3, length=5, seed=1)
    for name, change, message in (("attention_mask", 2, "attention_mask must hold only 0"),
                                  ("input_ids", model.config.vocab_size, "input_ids must lie in"),
                                  ("token_type_ids", 5, "token_type_ids must lie in")):
        bad = dict(inputs, **{name: inputs[name] + change})
        with pytest.raises(RuntimeError, match=message):
            module(**bad)


def test_bad_inputs_give_nan_rows_in_onnxruntime(exported):
    """ONNX has no assertions (the exporter drops them): in onnxruntime a row with a bad value comes out NaN (its
    hidden states, pooled output, updates and remainders), and the other rows keep their result."""
    model, root, report = exported
    assert not isinstance(report, Exception), report
    inputs = sample_inputs(model.config, batch=3, length=6, seed=2)
    good = run_onnx(root / "model.onnx", inputs)
    np.testing.assert_array_equal(good["updates"], eager(model, inputs).updates.numpy())
    for name, value in (("attention_mask", 2), ("input_ids", model.config.vocab_size), ("input_ids", -1),
                        ("token_type_ids", 5)):
        bad_inputs = {k: v.clone() for k, v in inputs.items()}
        bad_inputs[name][1, 0] = value
        bad = run_onnx(root / "model.onnx", bad_inputs)
        for key in ("last_hidden_state", "pooler_output", "updates", "remainders"):
            assert np.isnan(bad[key][1]).all(), (name, key)
            np.testing.assert_allclose(bad[key][[0, 2]], good[key][[0, 2]], rtol=0, atol=1e-5, err_msg=key)
        np.testing.assert_array_equal(bad["updates"][[0, 2]], good["updates"][[0, 2]])


def legacy_export(model, example, path):
    """`torch.onnx.export(dynamo=False)` (TorchScript tracing) with dynamic batch and sequence length; returns path."""
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(model, tuple(example[k] for k in names), str(path), dynamo=False, input_names=names,
                      output_names=["last_hidden_state", "pooler_output", "updates", "remainders"],
                      dynamic_axes={k: {0: "batch", 1: "sequence"} for k in names})
    return path


def test_legacy_onnx_exporter_does_not_freeze_the_loop(tmp_path):
    """torch.onnx.export(dynamo=False) traces with torch.jit: the encoder must not record the traced iteration
    count (the legacy exporter used to give at most the traced count on every input)."""
    model = step1_model()
    example = sample_inputs(model.config, batch=2, length=8, seed=0)
    path = legacy_export(model, example, tmp_path / "legacy.onnx")
    inputs = sample_inputs(model.config, batch=3, length=13, seed=5)
    expected = eager(deep_copy_of(model), inputs)
    got = run_onnx(path, inputs, bias=-8.0)
    assert np.array_equal(got["updates"], expected.updates.numpy())


def test_act_export_multiple_choice(tmp_path):
    step1_model(tmp_path / "mc", cls=AlbertActForMultipleChoice)
    report = export_onnx(tmp_path / "mc", tmp_path / "mc.onnx", verify=True)
    assert report.ok and report.outputs == ["logits", "updates", "remainders"]
    inputs = sample_inputs(report_config(tmp_path / "mc"), batch=2, length=6, seed=3, multiple_choice=True)
    assert run_onnx(tmp_path / "mc.onnx", inputs)["updates"].shape == (2, 2, 6)


def report_config(directory):
    from act import AlbertActConfig

    return AlbertActConfig.from_pretrained(directory)


# ----------------------------------------------------------------------------------------------------------
# Nothing lost: refusals and failures leave the files as they were
# ----------------------------------------------------------------------------------------------------------


def act(*args, env=None):
    environment = dict(os.environ, PYTHONPATH=str(ROOT / "src"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "act", *map(str, args)], capture_output=True, text=True,
                          env=environment, timeout=600)


def test_act_export_refuses_to_replace_a_file(tmp_path):
    step1_model(tmp_path / "model")
    (tmp_path / "model.onnx").write_text("not mine")
    done = act("export", tmp_path / "model", tmp_path / "model.onnx")
    assert done.returncode == 1 and "already exists; pass --overwrite" in done.stderr
    assert (tmp_path / "model.onnx").read_text() == "not mine"


def test_act_export_errors_name_the_problem(tmp_path):
    done = act("export", tmp_path / "missing", tmp_path / "out.onnx")
    assert done.returncode == 1 and "missing: no such file or directory" in done.stderr
    step1_model(tmp_path / "model")
    done = act("export", tmp_path / "model", tmp_path / "out.txt")
    assert done.returncode == 1 and "must end with .onnx" in done.stderr
    done = act("export", "asi/albert-act-not-cached", tmp_path / "out.onnx",
               env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")})
    assert done.returncode == 1 and "couldn't connect to" in done.stderr  # transformers' own message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_failed_export_or_verification_writes_nothing(tmp_path):
    """A verification that cannot pass (negative tolerance) or an export that fails leaves no file behind."""
    step1_model(tmp_path / "model")
    with pytest.raises(ExportError) as failure:
        export_onnx(tmp_path / "model", tmp_path / "out.onnx", verify=True, atol=-1.0)
    assert "not written" in str(failure.value) or "export failed" in str(failure.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    (tmp_path / "mine").mkdir()  # the folders the export creates for DEST go with it; an existing one stays
    with pytest.raises(ExportError):
        export_onnx(tmp_path / "model", tmp_path / "mine" / "new" / "sub" / "out.onnx", verify=True, atol=-1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "model"] and not any((tmp_path / "mine").iterdir())


def test_torch_compile_without_gradients_in_training_mode():
    """A model left in training mode (dropout active) and compiled for inference: torch.compile cannot trace the
    dropout masks inside the graph loop without gradients, so the Python loop runs (it used to fail while tracing)."""
    config, model, _ = cases.build_pt_model("mixed", seed=0, hidden_dropout_prob=0.1)
    model.train()
    inputs = sample_inputs(config, batch=3, length=9, seed=1)
    compiled = torch.compile(model, backend="eager", dynamic=True)
    with torch.no_grad():
        torch.manual_seed(7)
        got = compiled(**inputs)
        # eagerly, active dropout takes forward_fast_train (its masks are drawn for the running tokens only); under
        # torch.compile use_fast_path keeps the dense Python loop, which is what the compiled call must equal
        model.config.act_fast_path = False
        torch.manual_seed(7)
        expected = model(**inputs)
    assert torch.equal(got.updates, expected.updates)  # the same dropout masks, drawn in the same order
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0)


def test_verify_catches_a_frozen_loop(tmp_path, monkeypatch):
    """`verify_onnx` on a graph whose loop was recorded at the traced iteration count (the legacy exporter with the
    export mode switched off, as the encoder was before issue 12): its counts match on inputs of other shapes (the
    model halts every token after one iteration), so only the run to the cap can tell; it must fail."""
    import act.pt.modeling as modeling
    from act.commands.export import verify_onnx

    model = step1_model()
    monkeypatch.setattr(modeling, "is_exporting", lambda: False)
    monkeypatch.setattr(model.config, "act_fast_path", False)  # the dense loop, as before issue 12 (tracing runs
    # with gradients enabled, which would otherwise take forward_fast_train, whose nonzero_static ONNX lacks)
    example = sample_inputs(model.config, batch=2, length=8, seed=0)
    path = legacy_export(model, example, tmp_path / "frozen.onnx")
    monkeypatch.undo()
    result = verify_onnx(model, path, multiple_choice=False)
    lines = "\n".join(result["lines"])
    assert not result["ok"], lines
    assert lines.count("halting counts identical: yes") == 3  # the three shapes of the traced count pass
    assert "every token to the cap" in lines and "halting counts identical: NO" in lines


def test_torch_compile_fullgraph_with_dynamic_shapes_runs_the_graph_loop():
    """With the fast loop off, torch.compile(fullgraph=True, dynamic=True) compiles the whole model (the graph loop
    carries the threshold as a tensor: a symbolic float may not enter a while_loop body), and the counts follow
    inputs of other shapes, where tokens halt after different numbers of iterations."""
    config, model, _ = cases.build_pt_model("mixed", seed=0, act_fast_path=False)
    model.eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True, dynamic=True)
    counts = set()
    for seed, (batch, length) in enumerate([(2, 7), (3, 11), (1, 5)]):
        inputs = sample_inputs(config, batch=batch, length=length, seed=seed)
        expected = eager(model, inputs)
        with torch.no_grad():
            got = compiled(**inputs)
        assert torch.equal(got.updates, expected.updates)
        torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0)
        counts.update(expected.updates[expected.updates > 0].tolist())
    assert len(counts) > 1  # tokens halted after different numbers of iterations
