"""Property-based tests (hypothesis) of the ACT invariants of ACT_SEMANTICS.md over random small configs, halting
units and padded batches, and of PyTorch == Keras counts, eagerly and compiled (tf.function, XLA).

Invariants: 1 <= updates <= cap on real tokens and 0 on padding; R in [0, 1], 0 on padding, R >= act_epsilon on a
token that halted before the cap and R = 0 at the cap unless it halted exactly there; a halted token's state is
frozen; padding never changes real tokens; `num_hidden_layers + 1` hidden states; fast loop == dense loop ==
float64 oracle. Counts are compared exactly; a mismatch is excused only where the float64 oracle proves the
cumulative halting sum came within rounding distance of the threshold (ACT_SEMANTICS.md, "Parity").

The budget fits CI: few examples, no deadline, derandomized (the same examples on every run), no database.
"""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oracle
from act import AlbertActConfig, AlbertActModel

STRADDLE = {"float32": 1e-6, "float64": 1e-12}


def budget(examples):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def act_cases(draw):
    """(config kwargs, halting bias, halting gain, row lengths, padded length, seed)."""
    heads = draw(st.sampled_from([1, 2, 4]))
    config = dict(vocab_size=50, embedding_size=draw(st.sampled_from([4, 8])),
                  hidden_size=heads * draw(st.sampled_from([2, 4])), num_attention_heads=heads,
                  intermediate_size=draw(st.integers(4, 20)), num_hidden_layers=draw(st.integers(1, 5)),
                  act_epsilon=draw(st.sampled_from([0.01, 0.1, 0.3])), max_position_embeddings=16,
                  type_vocab_size=2, hidden_act=draw(st.sampled_from(["gelu", "gelu_new", "relu"])))
    length = draw(st.integers(1, 10))
    lengths = draw(st.lists(st.integers(0, length), min_size=1, max_size=4))  # 0: an all-padding row
    return (config, draw(st.floats(-3.0, 3.0)), draw(st.floats(0.0, 4.0)), lengths, length,
            draw(st.integers(0, 2**16)))


def build(case):
    """A float64 PyTorch model with the case's halting unit, its canonical state, and the padded inputs."""
    config_kwargs, bias, gain, lengths, length, seed = case
    config = AlbertActConfig(**config_kwargs)
    torch.manual_seed(seed)
    model = AlbertActModel(config).double()
    with torch.no_grad():
        unit = model.encoder.albert_layer.act.dense
        unit.weight.normal_(0.0, gain / config.hidden_size**0.5)
        unit.bias.fill_(bias)
    rng = np.random.default_rng(seed)
    mask = (np.arange(length)[None, :] < np.array(lengths)[:, None]).astype("int64")
    ids = rng.integers(1, config.vocab_size, mask.shape) * mask
    types = rng.integers(0, 2, mask.shape) * mask
    state = {name: value.detach().numpy() for name, value in model.state_dict().items()}
    return config, model, state, (ids, mask, types)


def run_pt(model, inputs, dense=False, **kwargs):
    ids, mask, types = (torch.from_numpy(x) for x in inputs)
    with torch.set_grad_enabled(dense):  # gradients on: the dense loop; off: the fast loop
        return model(input_ids=ids, attention_mask=mask, token_type_ids=types, **kwargs)


def assert_counts(counts, expected, reference, dtype):
    """Exactly equal, except tokens the float64 oracle proves were within rounding distance of the threshold."""
    differ = np.asarray(counts) != np.asarray(expected)
    assert (reference["margin"][differ] < STRADDLE[dtype]).all(), (counts, expected)
    return differ


def assert_invariants(config, mask, updates, remainders, reference):
    real, cap = mask.astype(bool), config.num_hidden_layers
    updates, remainders = np.asarray(updates), np.asarray(remainders)
    assert ((updates[real] >= 1) & (updates[real] <= cap)).all()
    assert (updates[~real] == 0).all() and (remainders[~real] == 0).all()
    assert ((remainders >= 0) & (remainders <= 1)).all()
    early = real & (updates < cap)
    assert (remainders[early] >= config.act_epsilon - 1e-6).all()  # halted: R = 1 - hp with hp <= 1 - eps
    at_cap = real & (updates == cap)
    halted_there = (reference["remainders"] > 0) | (reference["margin"] < 1e-6)  # (or within rounding of it)
    assert (remainders[at_cap & ~halted_there] == 0).all()


@budget(25)
@given(act_cases())
def test_pytorch_invariants_fast_dense_and_oracle(case):
    config, model, state, inputs = build(case)
    ids, mask, types = inputs
    reference = oracle.forward(config, state, ids, mask, types)
    cap = config.num_hidden_layers
    dense = run_pt(model, inputs, dense=True, output_hidden_states=True, output_attentions=True)
    fast = run_pt(model, inputs, output_hidden_states=True)
    differ = assert_counts(dense.updates.detach().numpy(), reference["updates"], reference, "float64")
    np.testing.assert_array_equal(fast.updates.numpy(), dense.updates.detach().numpy())
    for out in (dense, fast):
        assert_invariants(config, mask, out.updates.detach().numpy(), out.remainders.detach().numpy(), reference)
        assert len(out.hidden_states) == cap + 1
    assert len(dense.attentions) == cap
    keep = ~differ.any(-1)
    np.testing.assert_allclose(dense.last_hidden_state.detach().numpy()[keep], reference["last_hidden_state"][keep],
                               rtol=0, atol=1e-10)
    for f, d in zip(fast.hidden_states, dense.hidden_states):
        np.testing.assert_allclose(f.numpy(), d.detach().numpy(), rtol=0, atol=1e-10)
    # a halted token's state is frozen: after its last update it never changes again (exactly)
    states = [h.detach().numpy() for h in dense.hidden_states]
    for b, i in zip(*np.nonzero(mask)):
        n = int(dense.updates[b, i])
        for later in states[n + 1:]:
            np.testing.assert_array_equal(later[b, i], states[n][b, i])


@budget(20)
@given(act_cases(), st.integers(0, 3))
def test_padding_never_changes_real_tokens(case, extra):
    """Other ids and types at padding positions, and `extra` more padding columns: real tokens are unchanged."""
    config, model, state, (ids, mask, types) = build(case)
    rng = np.random.default_rng(extra)
    pad = ~mask.astype(bool)
    noisy_ids, noisy_types = ids.copy(), types.copy()
    noisy_ids[pad] = rng.integers(0, config.vocab_size, pad.sum())
    noisy_types[pad] = rng.integers(0, 2, pad.sum())
    wider = [np.pad(x, ((0, 0), (0, extra))) for x in (noisy_ids, mask, noisy_types)]
    wider[0][:, ids.shape[1]:] = rng.integers(0, config.vocab_size, (ids.shape[0], extra))
    base = run_pt(model, (ids, mask, types))
    real = mask.astype(bool)
    for inputs in ((noisy_ids, mask, noisy_types), tuple(wider)):
        out = run_pt(model, inputs)
        updates = out.updates.numpy()[:, :ids.shape[1]]
        np.testing.assert_array_equal(updates[real], base.updates.numpy()[real])
        hidden = out.last_hidden_state.numpy()[:, :ids.shape[1]]
        np.testing.assert_allclose(hidden[real], base.last_hidden_state.numpy()[real], rtol=0, atol=1e-10)
        assert (out.updates.numpy()[~np.asarray(inputs[1], bool)] == 0).all()


# ---------------------------------------------------------------------------------------------------------------
# PyTorch == Keras, eagerly and compiled
# ---------------------------------------------------------------------------------------------------------------


def keras_pair(case):
    tf = pytest.importorskip("tensorflow")
    from act.tf import TFAlbertActModel

    config, model, state, inputs = build(case)
    model = model.float()
    state32 = {name: value.astype("float32") for name, value in state.items()}
    keras_model = TFAlbertActModel(config)
    keras_model.build()
    keras_model.load_canonical_state_dict(state32)
    reference = oracle.forward(config, state32, *inputs)
    return tf, config, model, keras_model, inputs, reference


def check_keras_against_pytorch(case, mode):
    tf, config, pt_model, keras_model, inputs, reference = keras_pair(case)
    ids, mask, types = inputs
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    pt_out = run_pt(pt_model, inputs)
    if mode == "eager":
        out = keras_model(feed, output_hidden_states=True)
    else:
        out = tf.function(lambda x: keras_model(x, output_hidden_states=True), jit_compile=mode == "xla")(feed)
    differ = assert_counts(out["updates"].numpy(), pt_out.updates.numpy(), reference, "float32")
    assert_invariants(config, mask, out["updates"], out["remainders"], reference)
    assert len(out["hidden_states"]) == config.num_hidden_layers + 1
    keep = ~differ.any(-1)
    np.testing.assert_allclose(out["last_hidden_state"].numpy()[keep], pt_out.last_hidden_state.numpy()[keep],
                               rtol=0, atol=1e-5)
    # the fast loop (no hidden states asked for) gives the same counts
    fast = keras_model(feed) if mode == "eager" else tf.function(keras_model, jit_compile=mode == "xla")(feed)
    assert_counts(fast["updates"].numpy(), out["updates"].numpy(), reference, "float32")


@budget(6)
@given(act_cases())
def test_keras_eager_counts_equal_pytorch(case):
    check_keras_against_pytorch(case, "eager")


@budget(3)
@given(act_cases())
def test_keras_tf_function_counts_equal_pytorch(case):
    check_keras_against_pytorch(case, "graph")


@budget(2)
@given(act_cases())
def test_keras_xla_counts_equal_pytorch(case):
    check_keras_against_pytorch(case, "xla")
