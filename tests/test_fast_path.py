"""The fast inference loop of AlbertActEncoder (only running tokens computed, cached keys/values of halted ones)
against the dense loop and the float64 oracle, and which loop is taken when.

No timing here: throughput lives in benchmarks/bench_act.py. That halted tokens cost nothing is checked by
counting the rows that reach the FFN.
"""

import itertools

import numpy as np
import pytest
import torch

import cases
import oracle
from act import AlbertActConfig, AlbertActModel

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


build = cases.build_pt_model


class PathSpy:
    """Records which loop(s) the encoder ran; optionally makes the other one fail."""

    def __init__(self, monkeypatch, encoder, forbid=None):
        self.calls = []
        for name in ("forward_fast", "forward_dense"):
            original = getattr(encoder, name)

            def wrapped(*args, _name=name, _original=original, **kwargs):
                self.calls.append(_name)
                if _name == forbid:
                    raise AssertionError(f"{_name} should not run here")
                return _original(*args, **kwargs)

            monkeypatch.setattr(encoder, name, wrapped)


def inputs(ids, mask, types):
    return dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.from_numpy(types))


def run_both(model, ids, mask, types, monkeypatch, **kwargs):
    """(fast output, dense output) under no_grad, each checked to have taken its loop."""
    spy = PathSpy(monkeypatch, model.encoder)
    with torch.no_grad():
        fast = model(**inputs(ids, mask, types), **kwargs)
        model.config.act_fast_path = False
        try:
            dense = model(**inputs(ids, mask, types), **kwargs)
        finally:
            model.config.act_fast_path = True
    assert spy.calls == ["forward_fast", "forward_dense"]
    return fast, dense


def assert_same(fast, dense, dtype):
    tol = TOL[dtype]
    np.testing.assert_array_equal(fast.updates.numpy(), dense.updates.numpy())
    assert fast.updates.dtype == dense.updates.dtype == dtype
    for name in ("last_hidden_state", "pooler_output", "remainders"):
        np.testing.assert_allclose(getattr(fast, name).numpy(), getattr(dense, name).numpy(), atol=tol, rtol=0,
                                   err_msg=name)
    assert fast.ponder_cost.item() == pytest.approx(dense.ponder_cost.item(), abs=tol)


CASES = list(itertools.product(["step1", "cap", "mixed", "default"], ["gelu", "gelu_new"],
                               ["none", "ragged", "allpad"]))


@pytest.mark.parametrize("regime, activation, padding", CASES)
def test_fast_equals_dense_and_oracle(regime, activation, padding, monkeypatch):
    config, model, state = build(regime, seed=3 + len(regime), hidden_act=activation)
    ids, mask, types = cases.make_inputs(seed=11, batch=4, length=13, padding=padding)
    reference = oracle.forward(config, state, ids, mask, types)
    valid = mask > 0
    for dtype in (torch.float64, torch.float32):
        model = model.to(dtype)
        fast, dense = run_both(model, ids, mask, types, monkeypatch, output_hidden_states=True)
        assert_same(fast, dense, dtype)
        # counts exactly those of the float64 oracle (these seeds have no token near the threshold)
        np.testing.assert_array_equal(fast.updates.numpy(), reference["updates"])
        tol = TOL[dtype]
        np.testing.assert_allclose(fast.last_hidden_state.numpy()[valid], reference["last_hidden_state"][valid],
                                   atol=tol, rtol=0)
        np.testing.assert_allclose(fast.remainders.numpy(), reference["remainders"], atol=tol, rtol=0)
        # output_hidden_states on the fast path: the projected embeddings, then the state after each iteration,
        # the final state repeated after the loop ended (fixed length)
        assert len(fast.hidden_states) == len(dense.hidden_states) == config.num_hidden_layers + 1
        expected = cases.fixed_length(reference["hidden_states"], config.num_hidden_layers + 1)
        for step, (f, d, r) in enumerate(zip(fast.hidden_states, dense.hidden_states, expected)):
            np.testing.assert_allclose(f.numpy(), d.numpy(), atol=tol, rtol=0, err_msg=f"iteration {step}")
            np.testing.assert_allclose(f.numpy()[valid], r[valid], atol=tol, rtol=0, err_msg=f"iteration {step}")
    # the regimes cover what they claim, on real tokens
    real = reference["updates"][valid]
    if regime == "step1":
        assert (real == 1).all()
    if regime == "cap":
        assert (real == config.num_hidden_layers).all() and (reference["remainders"] == 0).all()
    if regime == "mixed":
        assert len(np.unique(real)) >= 3
    assert (reference["updates"][~valid] == 0).all()
    if padding == "allpad":
        assert (fast.updates[-1] == 0).all()


@pytest.mark.parametrize("seed, bias, gain", [(1, 0.0, 3.0), (1, -0.5, 10.0), (2, 0.5, 5.0), (2, 1.0, 8.0)])
def test_fast_equals_dense_on_varied_batches(seed, bias, gain, monkeypatch):
    """Ragged rows and halting gains such that some rows stop early (they leave attention altogether) while
    others are still running at the cap."""
    config, model, state = build("mixed", seed=seed, hidden_act=["gelu", "gelu_new"][seed % 2])
    layer = model.encoder.albert_layer.act.dense
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(seed)) * gain
                           / layer.weight.shape[1] ** 0.5)
        layer.bias.fill_(bias)
    ids, mask, types = cases.make_inputs(seed=100 + seed, batch=7, length=19, padding="ragged")
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    reference = oracle.forward(config, state, ids, mask, types)
    model = model.to(torch.float64)
    fast, dense = run_both(model, ids, mask, types, monkeypatch)
    assert_same(fast, dense, torch.float64)
    np.testing.assert_array_equal(fast.updates.numpy(), reference["updates"])
    # the batch really mixes rows that stop early with rows that run longer
    row_depth = fast.updates.max(1).values
    assert row_depth.min() < row_depth.max() == config.num_hidden_layers


def count_ffn_rows(model, ids, mask, types):
    rows = []
    handle = model.encoder.albert_layer.ffn.register_forward_hook(
        lambda module, args, output: rows.append(int(np.prod(args[0].shape[:-1]))))
    try:
        with torch.no_grad():
            out = model(**inputs(ids, mask, types))
    finally:
        handle.remove()
    return out, rows


def test_halted_tokens_cost_nothing():
    """Fast: the FFN sees each token exactly as often as it is updated. Dense: every token at every iteration."""
    config, model, state = build("mixed", seed=5)
    ids, mask, types = cases.make_inputs(seed=3, batch=5, length=16, padding="ragged")
    out, rows = count_ffn_rows(model, ids, mask, types)
    assert sum(rows) == int(out.updates.sum())
    assert rows == sorted(rows, reverse=True) and rows[-1] < rows[0]  # the running set only shrinks
    model.config.act_fast_path = False
    dense, dense_rows = count_ffn_rows(model, ids, mask, types)
    assert dense_rows == [ids.size] * len(rows)
    assert sum(rows) < sum(dense_rows)
    np.testing.assert_array_equal(out.updates.numpy(), dense.updates.numpy())


def test_which_path_when(monkeypatch):
    config, model, state = build("mixed")
    ids, mask, types = cases.make_inputs(seed=1, batch=3, length=9)
    encoder = model.encoder

    spy = PathSpy(monkeypatch, encoder, forbid="forward_dense")
    with torch.no_grad():
        model(**inputs(ids, mask, types), output_hidden_states=True)
    with torch.inference_mode():
        model(**inputs(ids, mask, types))
    assert spy.calls == ["forward_fast", "forward_fast"]

    monkeypatch.undo()
    spy = PathSpy(monkeypatch, encoder, forbid="forward_fast")
    with torch.no_grad():
        # attention maps of every token at every iteration: dense
        out = model(**inputs(ids, mask, types), output_attentions=True)
        assert len(out.attentions) == config.num_hidden_layers
        assert out.attentions[0].shape == (3, config.num_attention_heads, 9, 9)
        # the explicit switches
        embeddings = model.embeddings(torch.from_numpy(ids))
        encoder(embeddings, torch.from_numpy(mask), fast_path=False)
        model.config.act_fast_path = False
        model(**inputs(ids, mask, types))
        model.config.act_fast_path = True
    assert spy.calls == ["forward_dense"] * 3
    # gradients or active dropout: the fast loop's training twin (tests/test_fast_train.py)


def test_fast_path_config_switch_round_trips(tmp_path):
    config, model, state = build("mixed")
    model.config.act_fast_path = False
    model.save_pretrained(tmp_path)
    again = AlbertActModel.from_pretrained(tmp_path)
    assert again.config.act_fast_path is False
    assert again.encoder.use_fast_path() is False
    assert AlbertActModel(AlbertActConfig(**cases.tiny_config_kwargs())).encoder.use_fast_path()  # grad on: training
    with torch.no_grad():
        assert AlbertActModel(AlbertActConfig(**cases.tiny_config_kwargs())).eval().encoder.use_fast_path()


# ---------------------------------------------------------------------------------------------------------------
# Keras: the fast loop of TFAlbertActEncoder (static capacities under tf.switch_case, so it compiles with XLA)
# ---------------------------------------------------------------------------------------------------------------


def keras_pair(regime, seed, activation):
    """(config, state, fast TF model, dense TF model) with the same weights."""
    tf = pytest.importorskip("tensorflow")  # noqa: F841
    from act.tf import TFAlbertActModel

    config, _, state = build(regime, seed=seed, hidden_act=activation)
    models = []
    for fast in (True, False):
        model_config = AlbertActConfig(**cases.tiny_config_kwargs(hidden_act=activation))
        model_config.act_fast_path = fast
        model = TFAlbertActModel(model_config)
        model.build()
        model.load_canonical_state_dict(state)
        models.append(model)
    return config, state, models[0], models[1]


def tf_inputs(ids, mask, types):
    return {"input_ids": ids.astype("int32"), "attention_mask": mask.astype("int32"),
            "token_type_ids": types.astype("int32")}


def assert_keras_same(fast, dense, reference, valid):
    np.testing.assert_array_equal(fast["updates"].numpy(), dense["updates"].numpy())
    np.testing.assert_array_equal(fast["updates"].numpy(), reference["updates"])
    for name in ("last_hidden_state", "pooler_output", "remainders"):
        np.testing.assert_allclose(fast[name].numpy(), dense[name].numpy(), atol=1e-5, rtol=0, err_msg=name)
    np.testing.assert_allclose(fast["last_hidden_state"].numpy()[valid], reference["last_hidden_state"][valid],
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("regime, activation, padding",
                         [(r, a, p) for (r, a, p) in CASES if p != "none"][::2])
def test_keras_fast_equals_dense_and_oracle(regime, activation, padding, monkeypatch):
    config, state, fast_model, dense_model = keras_pair(regime, 3 + len(regime), activation)
    ids, mask, types = cases.make_inputs(seed=11, batch=4, length=13, padding=padding)
    reference = oracle.forward(config, state, ids, mask, types)
    calls = []
    original = fast_model.encoder.forward_fast
    monkeypatch.setattr(fast_model.encoder, "forward_fast", lambda *a, **k: calls.append(1) or original(*a, **k))
    fast, dense = fast_model(tf_inputs(ids, mask, types)), dense_model(tf_inputs(ids, mask, types))
    assert calls == [1]
    assert_keras_same(fast, dense, reference, mask > 0)


@pytest.mark.parametrize("regime, padding", [("mixed", "allpad"), ("default", "ragged")])
def test_keras_fast_under_xla(regime, padding):
    import tensorflow as tf

    config, state, fast_model, dense_model = keras_pair(regime, 2, "gelu_new")
    ids, mask, types = cases.make_inputs(seed=5, batch=5, length=14, padding=padding)
    reference = oracle.forward(config, state, ids, mask, types)
    fast = tf.function(fast_model, jit_compile=True)(tf_inputs(ids, mask, types))
    dense = tf.function(dense_model, jit_compile=True)(tf_inputs(ids, mask, types))
    assert_keras_same(fast, dense, reference, mask > 0)
    assert len(np.unique(reference["updates"][mask > 0])) >= 2


def test_keras_which_path_when(monkeypatch):
    import tensorflow as tf

    config, state, fast_model, dense_model = keras_pair("mixed", 0, "gelu")
    ids, mask, types = cases.make_inputs(seed=1, batch=3, length=9)
    encoder = fast_model.encoder
    calls = []
    original = encoder.forward_fast
    monkeypatch.setattr(encoder, "forward_fast", lambda *a, **k: calls.append(1) or original(*a, **k))
    inputs = tf_inputs(ids, mask, types)
    fast_model(inputs)
    assert calls == [1]
    # not the inference fast loop: training (the fast training loop, tests/test_tf_fast_train.py), hidden states,
    # attention maps, an unknown batch/length at tracing, the switch (the dense loop)
    out = fast_model(inputs, training=True)
    out = fast_model(inputs, output_hidden_states=True, output_attentions=True)
    assert len(out["attentions"]) == config.num_hidden_layers
    function = tf.function(fast_model, input_signature=fast_model.serving_input_signature())
    function(inputs)
    dense_model(inputs)
    assert calls == [1]


def test_readme_speed_section_runs():
    from test_readme import python_blocks, section

    text = section("speed")
    blocks = python_blocks(text)
    assert blocks and "benchmarks/bench_act.py" in text
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs (section speed)", "exec"), namespace)
    assert torch.equal(namespace["fast"].updates, namespace["dense"].updates)


# ---------------------------------------------------------------------------------------------------------------
# Device-clean and compiled: what can be checked of the GPU path on a CPU
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
def test_every_tensor_of_the_loop_follows_the_input_device(fast):
    """With the default device set to "meta", a tensor created without an explicit device (a CPU-only habit that
    breaks on a GPU) lands on "meta" and the first operation mixing it with the CPU inputs fails."""
    config, model, state = build("mixed", seed=5)
    model.config.act_fast_path = fast
    ids, mask, types = cases.make_inputs(seed=3, batch=5, length=16, padding="allpad")
    with torch.no_grad():
        expected = model(**inputs(ids, mask, types))
        torch.set_default_device("meta")
        try:
            out = model(**inputs(ids, mask, types), output_hidden_states=True)
        finally:
            torch.set_default_device(None)
    assert out.last_hidden_state.device.type == out.updates.device.type == "cpu"
    np.testing.assert_array_equal(out.updates.numpy(), expected.updates.numpy())
    model.config.act_fast_path = True


class SyncSpy(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the operations that read a tensor's value on the host (a device sync on a GPU)."""

    SYNCS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.is_nonzero.default"}

    def __init__(self):
        super().__init__()
        self.syncs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func) in self.SYNCS:
            self.syncs.append(str(func))
        return func(*args, **(kwargs or {}))


def test_the_fast_loop_syncs_once_per_iteration(monkeypatch):
    """The sizes of the next iteration are data-dependent, so eager PyTorch must read them on the host: the fast loop
    does it once per iteration (`act.pt.ops.sizes`, one small tensor) and nowhere else (no `.item()`, `bool()`,
    `nonzero()`: the loop uses `nonzero_static` with the size it read)."""
    import act.pt.modeling as modeling

    config, model, state = build("mixed", seed=5)
    ids, mask, types = cases.make_inputs(seed=3, batch=5, length=16, padding="ragged")
    calls = []
    original = modeling.sizes
    monkeypatch.setattr(modeling, "sizes", lambda *a: calls.append(1) or original(*a))
    with torch.no_grad():
        embeddings = model.embeddings(torch.from_numpy(ids), torch.from_numpy(types))
        hidden = model.encoder.embedding_hidden_mapping_in(embeddings)
        spy = SyncSpy()
        with spy:
            out = model.encoder.forward_fast(hidden, torch.from_numpy(mask))
    assert spy.syncs == []
    assert len(calls) == int(out.updates.max()) + 1  # one before the loop, one per iteration
    assert int(out.updates.max()) >= 3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("regime", ["step1", "cap", "mixed"])
def test_fast_loop_in_half_precision(dtype, regime, monkeypatch):
    """float16 / bfloat16 layers with the float32 halting state (ACT_SEMANTICS.md "Halting dtype"), as on a GPU."""
    config, model, state = build(regime, seed=8)
    ids, mask, types = cases.make_inputs(seed=4, batch=4, length=12, padding="ragged")
    reference = oracle.forward(config, state, ids, mask, types)
    model = model.to(dtype)
    fast, dense = run_both(model, ids, mask, types, monkeypatch)
    assert fast.last_hidden_state.dtype == dtype
    assert fast.updates.dtype == fast.remainders.dtype == torch.float32
    assert torch.isfinite(fast.last_hidden_state).all()
    valid = mask > 0
    if regime != "mixed":  # decisions far from the threshold: exact counts even in half precision
        np.testing.assert_array_equal(fast.updates.numpy(), reference["updates"])
        np.testing.assert_array_equal(dense.updates.numpy(), reference["updates"])
    else:  # the same counts as the dense loop wherever the float64 run decided far from the threshold
        far = valid & (reference["margin"] > 0.05)
        assert far.sum() > valid.sum() // 2
        np.testing.assert_array_equal(fast.updates.numpy()[far], dense.updates.numpy()[far])


def test_compiled_fast_loop_equals_eager():
    """torch.compile (dynamic shapes) of a model whose fast loop runs: the same counts and states as eager. The
    "aot_eager" backend traces through AOTAutograd (functionalisation of the loop's in-place index_copy_) without
    Inductor's code generation, to keep the test fast; benchmarks/bench_act.py measures the Inductor build."""
    config, model, state = build("mixed", seed=5)
    compiled = torch.compile(model, backend="aot_eager", dynamic=True)
    for seed, (batch, length) in enumerate([(5, 16), (3, 11)]):
        ids, mask, types = cases.make_inputs(seed=30 + seed, batch=batch, length=length, padding="ragged")
        with torch.no_grad():
            eager = model(**inputs(ids, mask, types))
            out = compiled(**inputs(ids, mask, types))
        np.testing.assert_array_equal(out.updates.numpy(), eager.updates.numpy())
        for name in ("last_hidden_state", "remainders", "pooler_output"):
            np.testing.assert_allclose(getattr(out, name).numpy(), getattr(eager, name).numpy(), atol=1e-5, rtol=0)
