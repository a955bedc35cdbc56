"""The Keras fast training loop (`TFAlbertActEncoder.forward_fast_train`, the default of ``training=True`` and so of
`fit`, with XLA or without) against the dense loop: the same updates, the same outputs and the same gradients
(float64), on the parity cases, with the compute knob, eagerly, in `tf.function` (static and unknown shapes) and
under XLA; the float64 oracle referees the counts.
Dropout, mixed precision and which loop runs when. Time and memory are measured in benchmarks/bench_train_keras.py.
"""

import numpy as np
import pytest

import cases
import oracle
from test_compute_knob import KNOBS, reference_for

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
from act import AlbertActConfig  # noqa: E402
from act.tf import TFAlbertActModel  # noqa: E402
from act.tf.modeling import TFAlbertActEncoder  # noqa: E402

TOL = 1e-10  # float64 (ACT_SEMANTICS.md "Parity")


def tf_pair(regime, seed, dtype="float64", **overrides):
    """(config, canonical state, fast model, dense model): the same weights, the halting `regime`."""
    config, _, state = cases.build_pt_model(regime, seed=seed, **overrides)
    models = []
    for fast in (True, False):
        model_config = AlbertActConfig(**cases.tiny_config_kwargs(**overrides))
        model_config.act_fast_path = fast
        keras.utils.set_random_seed(seed)  # the same dropout seeds in both
        model = TFAlbertActModel(model_config, dtype=dtype)
        model.build()
        model.load_canonical_state_dict(state)
        models.append(model)
    return config, state, models[0], models[1]


def tf_inputs(ids, mask, types):
    return {"input_ids": ids.astype("int32"), "attention_mask": mask.astype("int32"),
            "token_type_ids": types.astype("int32")}


class Spy:
    """Counts the calls of the encoder's loops (eagerly: one per call; in a graph: one per trace)."""

    def __init__(self, monkeypatch, encoder):
        self.calls = []
        for name in ("forward_fast_train", "forward_fast", "forward_dense"):
            original = getattr(encoder, name)

            def wrapped(*args, _name=name, _original=original, **kwargs):
                self.calls.append(_name)
                return _original(*args, **kwargs)

            monkeypatch.setattr(encoder, name, wrapped)


def step_function(model, mode, **knob):
    """outputs and gradients (every trainable variable) of a loss on last_hidden_state, pooler_output and the
    ponder cost, with ``training=True``; `mode`: eager, graph (tf.function), dynamic (tf.function traced with an
    unknown batch and length, as `fit` on a dataset traces), xla (jit_compile=True) or xla-dynamic (both)."""

    def run(inputs):
        with tf.GradientTape() as tape:
            out = model(inputs, training=True, **knob)
            hidden, pooled = (tf.cast(out[name], out["ponder_cost"].dtype) for name in ("last_hidden_state",
                                                                                         "pooler_output"))
            loss = tf.reduce_sum(tf.sin(hidden)) + tf.reduce_sum(pooled**2) + out["ponder_cost"]
        grads = tape.gradient(loss, model.trainable_variables)
        return out, [tf.convert_to_tensor(g) if g is not None else None for g in grads]

    if mode == "eager":
        return run
    signature = [{name: tf.TensorSpec((None, None), tf.int32) for name in ("input_ids", "attention_mask",
                                                                            "token_type_ids")}]
    return tf.function(run, jit_compile=mode.startswith("xla"),
                       input_signature=signature if mode.endswith("dynamic") else None)


def assert_same_step(fast, dense, reference=None, valid=None, tol=TOL):
    (out_f, grads_f), (out_d, grads_d) = fast, dense
    np.testing.assert_array_equal(out_f["updates"].numpy(), out_d["updates"].numpy())
    if reference is not None:
        np.testing.assert_array_equal(out_f["updates"].numpy(), reference["updates"])
    for name in ("last_hidden_state", "pooler_output", "remainders", "ponder_cost"):
        np.testing.assert_allclose(out_f[name].numpy(), out_d[name].numpy(), atol=tol, rtol=0, err_msg=name)
    assert len(grads_f) == len(grads_d)
    nonzero = 0
    for index, (a, b) in enumerate(zip(grads_f, grads_d)):
        assert (a is None) == (b is None), index
        if a is None:
            continue
        scale = max(1.0, float(np.abs(b.numpy()).max()))
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=tol * scale, rtol=0, err_msg=f"gradient {index}")
        nonzero += bool(np.abs(b.numpy()).max() > 0)
    assert nonzero >= len(grads_d) - 2  # (the pad row of the embeddings and the like may be 0; the rest is not)


CASES = [(regime, padding) for regime in ("step1", "cap", "mixed", "default") for padding in ("none", "ragged",
                                                                                              "allpad")]


@pytest.mark.parametrize("regime, padding", CASES)
def test_tf_fast_train_equals_dense_eagerly(regime, padding, monkeypatch):
    config, state, fast, dense = tf_pair(regime, 3 + len(regime), hidden_act=["gelu", "gelu_new"][len(padding) % 2])
    ids, mask, types = cases.make_inputs(seed=11, batch=4, length=13, padding=padding)
    reference = oracle.forward(config, state, ids, mask, types)
    spy = Spy(monkeypatch, fast.encoder)
    result = step_function(fast, "eager")(tf_inputs(ids, mask, types))
    assert spy.calls == ["forward_fast_train"]
    assert_same_step(result, step_function(dense, "eager")(tf_inputs(ids, mask, types)), reference)
    real = reference["updates"][mask > 0]
    if regime == "step1":  # every token halts at the first iteration: one iteration, all halted at once
        assert (real == 1).all()
    if regime == "cap":
        assert (real == config.num_hidden_layers).all()
    if regime == "mixed":
        assert len(np.unique(real)) >= 3


def capacities_used(monkeypatch, model):
    """The number of tokens each iteration gathered (eagerly the loop body runs in Python)."""
    sizes = []
    layer = model.encoder.albert_layer
    original = layer.forward_running
    monkeypatch.setattr(layer, "forward_running",
                        lambda states, *a, **k: sizes.append(int(states.shape[1])) or original(states, *a, **k))
    return sizes


@pytest.mark.parametrize("seed, bias, gain, phases", [(1, 1.0, 1.5, 5), (2, 2.0, 2.5, 4)])
def test_tf_fast_train_runs_every_capacity_and_equals_dense(seed, bias, gain, phases, monkeypatch):
    """Ragged rows and a spread of halting: most tokens stop after two or three iterations, a few run to the cap,
    so the loop passes through the capacities (phases: all tokens, 3/4, 1/2, ... 1/16 of them); each iteration
    gathers the smallest capacity that holds the running tokens, and the gradients equal the dense loop's."""
    config, _, state = cases.build_pt_model("mixed", seed=seed)
    rng = np.random.default_rng(seed)
    key = "encoder.albert_layer.act.dense."
    state[key + "weight"] = (rng.standard_normal(state[key + "weight"].shape) * gain
                             / np.sqrt(config.hidden_size)).astype(state[key + "weight"].dtype)
    state[key + "bias"] = np.full_like(state[key + "bias"], bias)
    _, _, fast, dense = tf_pair("mixed", seed)
    fast.load_canonical_state_dict(state)
    dense.load_canonical_state_dict(state)
    ids, mask, types = cases.make_inputs(seed=100 + seed, batch=7, length=19, padding="ragged")
    reference = oracle.forward(config, state, ids, mask, types)
    sizes = capacities_used(monkeypatch, fast)
    result = step_function(fast, "eager")(tf_inputs(ids, mask, types))
    assert_same_step(result, step_function(dense, "eager")(tf_inputs(ids, mask, types)), reference)
    tokens = ids.size
    capacities = [-(-tokens * num // den) for num, den in fast.encoder.TRAIN_CAPACITIES]  # ceil(tokens * fraction)
    assert capacities == [133, 100, 67, 50, 34, 17, 9]  # all, 3/4, 1/2, 3/8, 1/4, 1/8, 1/16 of 7 x 19
    running = [int((reference["updates"] > step).sum()) for step in range(int(reference["updates"].max()))]
    assert sizes == [min(size for size in capacities if size >= count) for count in running]
    assert len(set(sizes)) == phases and len(sizes) == config.num_hidden_layers


@pytest.mark.parametrize("knob", KNOBS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_tf_fast_train_honours_the_compute_knob(knob):
    config, state, fast, dense = tf_pair("mixed", 4)
    ids, mask, types = cases.make_inputs(seed=21, batch=4, length=15, padding="ragged")
    reference = reference_for(config, state, ids, mask, types, **knob)
    result = step_function(fast, "eager", **knob)(tf_inputs(ids, mask, types))
    assert_same_step(result, step_function(dense, "eager", **knob)(tf_inputs(ids, mask, types)), reference)
    assert result[0]["updates"].numpy().max() <= knob.get("max_iterations", config.num_hidden_layers)


# The compiled tests below run the short schedule (fixture short_training_schedule, conftest.py: tracing costs about
# a second per phase in a graph and several seconds under XLA); the eager tests above run the default one.


@pytest.mark.parametrize("mode, regime, padding, knob", [
    ("xla-dynamic", "mixed", "allpad", {}),  # as `fit` traces under XLA
    ("dynamic", "mixed", "ragged", dict(act_epsilon=0.05, max_iterations=4)),
])
def test_tf_fast_train_equals_dense_compiled(mode, regime, padding, knob, monkeypatch, short_training_schedule):
    config, state, fast, dense = tf_pair(regime, 2, hidden_act="gelu_new")
    ids, mask, types = cases.make_inputs(seed=5, batch=5, length=14, padding=padding)
    reference = (reference_for(config, state, ids, mask, types, **knob) if knob
                 else oracle.forward(config, state, ids, mask, types))
    spy = Spy(monkeypatch, fast.encoder)
    result = step_function(fast, mode, **knob)(tf_inputs(ids, mask, types))
    assert spy.calls == ["forward_fast_train"]  # traced once
    assert_same_step(result, step_function(dense, mode, **knob)(tf_inputs(ids, mask, types)), reference)
    assert len(np.unique(reference["updates"][mask > 0])) >= 2


def test_tf_fast_train_dropout_is_active_and_compiles(monkeypatch, short_training_schedule):
    """With dropout on: masks drawn statelessly per iteration and site (`act.tf.ops.dropout`, no random state
    updated inside the loops): two training calls differ, from each other and from inference (deterministic), the
    gradients are finite, eagerly and in a graph; without dropout the same step as the dense loop (above)."""
    dropout = dict(hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.1)
    config, state, fast, dense = tf_pair("mixed", 6, **dropout)
    ids, mask, types = cases.make_inputs(seed=8, batch=4, length=12, padding="ragged")
    inputs = tf_inputs(ids, mask, types)
    spy = Spy(monkeypatch, fast.encoder)
    inference = fast(inputs)["last_hidden_state"].numpy()
    for mode in ("eager", "dynamic"):
        function = step_function(fast, mode)
        first, grads = function(inputs)
        second, _ = function(inputs)
        for out in (second, inference):
            other = out if isinstance(out, np.ndarray) else out["last_hidden_state"].numpy()
            assert not np.allclose(first["last_hidden_state"].numpy(), other, atol=1e-3)
        assert all(np.isfinite(g.numpy()).all() for g in grads if g is not None)
        assert np.isfinite(first["ponder_cost"].numpy())
    assert spy.calls == ["forward_fast", "forward_fast_train", "forward_fast_train", "forward_fast_train"]
    np.testing.assert_array_equal(fast(inputs)["last_hidden_state"].numpy(), inference)
    # the masks keep the expected fraction (stateless_dropout with the layer's rate): of the FFN's dropout inputs
    # the share of zeros is close to the rate
    x = tf.ones((64, 256), tf.float64)
    from act.tf.ops import dropout as seeded

    kept = seeded(fast.encoder.albert_layer.dropout, x, True, tf.constant([3, 4], tf.int32)).numpy()
    assert abs((kept == 0).mean() - 0.2) < 0.02 and np.allclose(kept[kept != 0], 1 / 0.8)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_tf_fast_train_in_mixed_precision(policy, monkeypatch, short_training_schedule):
    """float16 / bfloat16 layers, a float32 halting state (ACT_SEMANTICS.md "Halting dtype"); `fit` with Keras'
    loss scaling (mixed_float16) trains through the fast loop."""
    config, state, fast, dense = tf_pair("step1", 8, dtype=policy)
    ids, mask, types = cases.make_inputs(seed=4, batch=4, length=12, padding="ragged")
    inputs = tf_inputs(ids, mask, types)
    spy = Spy(monkeypatch, fast.encoder)
    (out, grads), (dense_out, dense_grads) = step_function(fast, "eager")(inputs), step_function(dense, "eager")(inputs)
    assert spy.calls == ["forward_fast_train"]
    assert out["last_hidden_state"].dtype == policy.split("_")[1]
    assert out["updates"].dtype == out["remainders"].dtype == out["ponder_cost"].dtype == tf.float32
    np.testing.assert_array_equal(out["updates"].numpy(), mask.astype("float32"))  # step1: once per real token
    np.testing.assert_array_equal(out["updates"].numpy(), dense_out["updates"].numpy())
    for a, b in zip(grads, dense_grads):
        if b is not None:
            assert np.isfinite(a.numpy()).all()
            np.testing.assert_allclose(a.numpy().astype("float32"), b.numpy().astype("float32"), rtol=0,
                                       atol=5e-2 * max(1.0, float(np.abs(b.numpy().astype("float32")).max())))

    if policy != "mixed_float16":
        return
    from act.tf import TFAlbertActForSequenceClassification

    classifier = TFAlbertActForSequenceClassification(
        AlbertActConfig(**cases.tiny_config_kwargs(num_labels=2, ponder_penalty=1e-3)), dtype=policy)
    spy = Spy(monkeypatch, classifier.albert.encoder)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False,
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = np.arange(4) % 2
    history = classifier.fit(inputs, labels, batch_size=4, epochs=3, verbose=0).history
    assert "forward_fast_train" in spy.calls and "forward_dense" not in spy.calls
    assert np.isfinite(history["loss"]).all() and history["loss"][-1] < history["loss"][0]


def test_tf_which_loop_when_training(monkeypatch, short_training_schedule):
    """training=True: the fast training loop, also on shapes unknown when traced and under XLA; hidden states or
    attention maps, or act_fast_path=False: the dense loop; inference: the inference fast loop."""
    config, state, fast, dense = tf_pair("mixed", 0, dtype="float32")
    ids, mask, types = cases.make_inputs(seed=1, batch=3, length=9)
    inputs = tf_inputs(ids, mask, types)
    spy = Spy(monkeypatch, fast.encoder)
    fast(inputs, training=True)
    fast(inputs)
    fast(inputs, training=True, output_hidden_states=True)
    fast(inputs, training=True, output_attentions=True)
    tf.function(lambda x: fast(x, training=True), input_signature=fast.serving_input_signature())(inputs)
    tf.function(fast, input_signature=fast.serving_input_signature())(inputs)
    tf.function(lambda x: fast(x, training=True), jit_compile=True)(inputs)  # XLA training: the fast loop too
    assert spy.calls == ["forward_fast_train", "forward_fast", "forward_dense", "forward_dense",
                         "forward_fast_train", "forward_dense", "forward_fast_train"]
    spy = Spy(monkeypatch, dense.encoder)
    dense(inputs, training=True)
    assert spy.calls == ["forward_dense"]
