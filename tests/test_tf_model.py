"""Keras `TFAlbertActModel`: names, serialisation, graph/XLA execution, training, checkpoints, validation."""

import json
import os

import numpy as np
import pytest
import torch

import cases
import oracle
from act import AlbertActConfig, AlbertActModel
from alignment import misaligned
from act.checkpoints import files, names

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.usefixtures("short_training_schedule")  # conftest.py: three training phases
keras = pytest.importorskip("keras")
from act.tf import TFAlbertActModel  # noqa: E402

FLOAT32_STRADDLE = 1e-6


def config_for(**overrides):
    return AlbertActConfig(**cases.tiny_config_kwargs(**overrides))


def pt_model_for(config, regime="mixed", seed=0):
    torch.manual_seed(seed)
    model = AlbertActModel(config).eval()
    state = cases.apply_regime({k: v.numpy() for k, v in model.state_dict().items()}, regime, seed=seed + 1)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return model, state


def tf_inputs(ids, mask=None, types=None):
    out = {"input_ids": ids.astype("int32")}
    if mask is not None:
        out["attention_mask"] = mask.astype("int32")
    if types is not None:
        out["token_type_ids"] = types.astype("int32")
    return out


@pytest.fixture(scope="module")
def setup():
    """A mixed-regime model in both frameworks with the same weights, and a padded batch."""
    config = config_for()
    pt_model, state = pt_model_for(config)
    model = TFAlbertActModel(config)
    model.build()
    model.load_canonical_state_dict(state)
    ids, mask, types = cases.make_inputs(3, batch=4, length=12, padding="allpad")
    reference = oracle.forward(config, state, ids, mask, types)
    return config, pt_model, state, model, (ids, mask, types), reference


def assert_counts_equal(a, b, reference):
    """Counts equal except where the float64 oracle shows a straddle of the threshold within float32 rounding."""
    differ = np.asarray(a) != np.asarray(b)
    assert (reference["margin"][differ] < FLOAT32_STRADDLE).all()
    assert differ.sum() <= 1
    return ~differ.any(-1)


# ---------------------------------------------------------------------------------------------------------------
# Structure and names
# ---------------------------------------------------------------------------------------------------------------


def test_variable_paths_are_the_canonical_keras_names(setup):
    config, pt_model, state, model, *_ = setup
    paths = {model._relative_path(v): v for v in model.weights}
    expected = {names.canonical_to_keras(name)[0]: name for name in pt_model.state_dict()}
    assert set(paths) == set(expected)
    for path, name in expected.items():
        _, transpose = names.canonical_to_keras(name)
        shape = tuple(pt_model.state_dict()[name].shape)
        assert tuple(paths[path].shape) == (shape[::-1] if transpose else shape), path
    assert "encoder/albert_layer/attention/query/kernel" in paths
    assert all(v.path.startswith(model.name + "/") for v in model.weights)


def test_mirror_of_pytorch_module_tree():
    """Same classes in the same order, each with the PyTorch attribute names."""
    import act.pt.modeling as pt_modeling
    import act.tf.modeling as tf_modeling

    # the Keras classes follow the PyTorch ones in the same order (the task heads may come later)
    mirrored = ["TF" + name for name in pt_modeling.__all__]
    assert tf_modeling.__all__ == mirrored[:len(tf_modeling.__all__)]
    assert "TFAlbertActModel" in tf_modeling.__all__
    config = config_for()
    pt_model, tf_model = AlbertActModel(config), TFAlbertActModel(config)
    for attribute in ("embeddings", "encoder", "pooler", "pooler_activation"):
        assert hasattr(tf_model, attribute)
    for path in ("encoder.albert_layer.attention.query", "encoder.albert_layer.act.dense",
                 "encoder.albert_layer.full_layer_layer_norm", "embeddings.token_type_embeddings"):
        layer = tf_model
        for part in path.split("."):
            layer = getattr(layer, part)
        assert layer.name == path.split(".")[-1]


def test_config_round_trip():
    config = config_for(hidden_act="gelu_new", act_epsilon=0.05)
    model = TFAlbertActModel(config, add_pooling_layer=False)
    serialised = json.loads(json.dumps(model.get_config()))
    assert serialised["config"] == json.loads(config.to_json_string(use_diff=False))
    clone = TFAlbertActModel.from_config(serialised)
    assert isinstance(clone.config, AlbertActConfig)
    assert clone.config.to_dict() == config.to_dict()
    assert clone.pooler is None and clone.name == model.name


def test_lazy_export_from_act():
    import act

    assert act.TFAlbertActModel is TFAlbertActModel


# ---------------------------------------------------------------------------------------------------------------
# Execution modes
# ---------------------------------------------------------------------------------------------------------------


def test_eager_graph_and_xla_agree(setup):
    config, pt_model, state, model, (ids, mask, types), reference = setup
    inputs = tf_inputs(ids, mask, types)
    eager = model(inputs)
    graph = tf.function(model)(inputs)
    xla = tf.function(model, jit_compile=True)(inputs)
    for other in (graph, xla):
        keep = assert_counts_equal(other["updates"], eager["updates"], reference)
        for key in ("last_hidden_state", "remainders"):
            np.testing.assert_allclose(other[key].numpy()[keep], eager[key].numpy()[keep], rtol=0, atol=1e-5)
        np.testing.assert_allclose(other["ponder_cost"].numpy(), eager["ponder_cost"].numpy(), rtol=0, atol=1e-5)
    # the counts of real tokens take several values: the loop really ran a different depth per token
    assert len(np.unique(eager["updates"].numpy()[mask.astype(bool)])) > 1
    # ACT_SEMANTICS.md "Ponder cost": per sequence the sum over its tokens, then the batch mean (the oracle's value)
    np.testing.assert_allclose(eager["ponder_cost"].numpy(), reference["ponder_cost"], rtol=0, atol=1e-5)


def test_dynamic_batch_and_length_in_one_graph(setup):
    config, pt_model, state, model, _, _ = setup
    function = tf.function(model, jit_compile=True, input_signature=model.serving_input_signature())
    for batch, length in ((2, 5), (3, 9)):
        ids, mask, types = cases.make_inputs(batch + length, batch=batch, length=length, padding="ragged")
        out = function(tf_inputs(ids, mask, types))
        reference = oracle.forward(config, state, ids, mask, types)
        keep = assert_counts_equal(out["updates"], reference["updates"], reference)
        np.testing.assert_allclose(out["last_hidden_state"].numpy()[keep], reference["last_hidden_state"][keep],
                                   rtol=0, atol=1e-5)


def test_optional_inputs_default_to_all_tokens_and_type_zero(setup):
    config, pt_model, state, model, (ids, mask, types), _ = setup
    ids = ids[:1]
    out = model({"input_ids": ids.astype("int32")})
    reference = oracle.forward(config, state, ids)
    assert np.array_equal(out["updates"].numpy(), reference["updates"])
    np.testing.assert_allclose(out["last_hidden_state"].numpy(), reference["last_hidden_state"], rtol=0, atol=1e-5)


def test_inputs_embeds_and_position_ids_as_in_pytorch(setup):
    """The PyTorch call's `inputs_embeds` and `position_ids` (one row for the batch, or one per row)."""
    config, pt_model, state, model, (ids, mask, types), reference = setup
    positions = np.stack([np.random.default_rng(row).permutation(ids.shape[1]) for row in range(len(ids))])
    with torch.no_grad():
        embeds = pt_model.embeddings.word_embeddings(torch.from_numpy(ids))
        by_embeds = pt_model(inputs_embeds=embeds, attention_mask=torch.from_numpy(mask),
                             token_type_ids=torch.from_numpy(types))
        by_positions = pt_model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                                position_ids=torch.from_numpy(positions))
        one_row = pt_model(input_ids=torch.from_numpy(ids), position_ids=torch.from_numpy(positions[:1]))
    np.testing.assert_array_equal(by_embeds.updates.numpy(), reference["updates"])
    out = model({"inputs_embeds": embeds.numpy(), "attention_mask": mask.astype("int32"),
                 "token_type_ids": types.astype("int32")})
    np.testing.assert_array_equal(out["updates"].numpy(), by_embeds.updates.numpy())
    np.testing.assert_allclose(out["last_hidden_state"].numpy(), by_embeds.last_hidden_state.numpy(), rtol=0,
                               atol=1e-5)
    for keras_out, torch_out in ((model(tf_inputs(ids, mask), position_ids=positions), by_positions),
                                 (model({"input_ids": ids.astype("int32"), "position_ids": positions[:1]}), one_row)):
        np.testing.assert_array_equal(keras_out["updates"].numpy(), torch_out.updates.numpy())
        np.testing.assert_allclose(keras_out["last_hidden_state"].numpy(), torch_out.last_hidden_state.numpy(),
                                   rtol=0, atol=1e-5)
    # the positions matter: permuted positions change the result
    assert not np.allclose(by_positions.last_hidden_state.numpy(), reference["last_hidden_state"], atol=1e-3)


def test_hidden_states_and_attentions(setup):
    config, pt_model, state, model, (ids, mask, types), reference = setup
    inputs = tf_inputs(ids, mask, types)
    eager = model(inputs, output_hidden_states=True, output_attentions=True)
    iterations = int(reference["updates"].max())
    assert len(reference["hidden_states"]) == iterations + 1
    # fixed-length histories (as in PyTorch and in graphs): after the loop ended, the final state and zero maps
    assert len(eager["hidden_states"]) == config.num_hidden_layers + 1
    assert len(eager["attentions"]) == config.num_hidden_layers
    for got, want in zip(eager["hidden_states"], cases.fixed_length(reference["hidden_states"],
                                                                    config.num_hidden_layers + 1)):
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5)
    for got in eager["attentions"][iterations:]:
        assert not got.numpy().any()
    assert eager["attentions"][0].shape == (ids.shape[0], config.num_attention_heads, ids.shape[1], ids.shape[1])
    # attention of real rows ignores padding keys
    attention = eager["attentions"][0].numpy()
    assert np.allclose(attention[1][..., ~mask[1].astype(bool)], 0.0)
    with torch.no_grad():
        pt_out = pt_model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                          token_type_ids=torch.from_numpy(types), output_attentions=True)
    for got, want in zip(eager["attentions"], pt_out.attentions):
        np.testing.assert_allclose(got.numpy()[:-1], want.numpy()[:-1], rtol=0, atol=1e-5)

    # The same lengths in a graph and under XLA; slots after the last iteration repeat the final state.
    for jit_compile in (False, True):
        graph = tf.function(lambda x: model(x, output_hidden_states=True, output_attentions=True),
                            jit_compile=jit_compile)(inputs)
        assert len(graph["hidden_states"]) == config.num_hidden_layers + 1
        assert len(graph["attentions"]) == config.num_hidden_layers
        for got, want in zip(graph["hidden_states"], eager["hidden_states"]):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5)
        for got in graph["hidden_states"][iterations + 1:]:
            np.testing.assert_array_equal(got.numpy(), graph["last_hidden_state"].numpy())
        for got in graph["attentions"][iterations:]:
            assert not got.numpy().any()
    # the config switches them on too
    on = TFAlbertActModel(config_for(output_hidden_states=True))
    assert "hidden_states" in on(tf_inputs(ids, mask)) and "attentions" not in on(tf_inputs(ids, mask))


def test_ponder_cost_gradient_matches_pytorch():
    """Gradients flow through the remainders: d(ponder_cost)/d(halting unit) equals PyTorch's (float64)."""
    config = config_for()
    pt_model, state = pt_model_for(config, seed=5)
    pt_model = pt_model.double()
    model = TFAlbertActModel(config, dtype="float64")
    model.build()
    model.load_canonical_state_dict(state)
    ids, mask, types = cases.make_inputs(6, batch=3, length=9, padding="ragged")
    pt_out = pt_model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                      token_type_ids=torch.from_numpy(types))
    (pt_out.ponder_cost + pt_out.last_hidden_state.sum() * 1e-3).backward()
    variables = model.canonical_variables()
    names = ["encoder.albert_layer.act.dense.weight", "encoder.albert_layer.act.dense.bias",
             "encoder.albert_layer.ffn.weight", "embeddings.word_embeddings.weight"]

    @tf.function(jit_compile=True)
    def gradients(inputs):
        with tf.GradientTape() as tape:
            out = model(inputs, training=True)
            loss = out["ponder_cost"] + tf.reduce_sum(out["last_hidden_state"]) * 1e-3
        return tape.gradient(loss, [variables[name][0] for name in names])

    grads = gradients(tf_inputs(ids, mask, types))
    reference = dict(pt_model.named_parameters())
    for name, grad in zip(names, grads):
        assert grad is not None, name
        grad = tf.convert_to_tensor(grad).numpy()
        want = reference[name].grad.numpy()
        want = want.T if variables[name][1] else want
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(grad, want, rtol=0, atol=1e-10, err_msg=name)


def test_fit_with_dropout_under_xla_updates_the_shared_layer(tmp_path, monkeypatch):
    """`fit` under XLA trains through the fast training loop. A functional model whose loss ignores the ponder cost
    once failed to compile there (tf2xla on the chained phase loops' gradients, see `forward_fast_train`): the
    module's short schedule (three phases, the fewest that failed) keeps the compile short."""
    from act.tf.modeling import TFAlbertActEncoder

    assert TFAlbertActEncoder.TRAIN_CAPACITIES == cases.SHORT_TRAINING_SCHEDULE  # pytestmark above
    traced = []
    original = TFAlbertActEncoder.forward_fast_train
    monkeypatch.setattr(TFAlbertActEncoder, "forward_fast_train",
                        lambda self, *a, **k: traced.append(1) or original(self, *a, **k))
    config = config_for(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    encoder = TFAlbertActModel(config)
    ids_in = keras.Input((None,), dtype="int32", name="input_ids")
    mask_in = keras.Input((None,), dtype="int32", name="attention_mask")
    outputs = encoder({"input_ids": ids_in, "attention_mask": mask_in})
    model = keras.Model([ids_in, mask_in], keras.layers.Dense(2)(outputs["pooler_output"]))
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    ids, mask, _ = cases.make_inputs(7, batch=8, length=10, padding="ragged")
    labels = np.arange(8) % 2
    query = encoder.encoder.albert_layer.attention.query.kernel
    halting = encoder.encoder.albert_layer.act.dense.kernel
    before = query.numpy().copy(), halting.numpy().copy()
    history = model.fit((ids.astype("int32"), mask.astype("int32")), labels, batch_size=4, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and traced
    assert not np.allclose(query.numpy(), before[0])
    # the trained encoder inside a reloaded .keras pipeline still maps to canonical names and saves canonically
    model.save(tmp_path / "clf.keras")
    reloaded = keras.models.load_model(tmp_path / "clf.keras")
    inner = next(layer for layer in reloaded.layers if isinstance(layer, TFAlbertActModel))
    trained = encoder.canonical_state_dict()
    for name, value in inner.canonical_state_dict().items():
        np.testing.assert_array_equal(value, trained[name])
    inner.save_pretrained(tmp_path / "trained")
    assert AlbertActModel.from_pretrained(tmp_path / "trained").config.hidden_dropout_prob == 0.1
    # inference is deterministic (dropout off), training is not
    inputs = tf_inputs(ids, mask)
    a, b = encoder(inputs), encoder(inputs)
    np.testing.assert_array_equal(a["last_hidden_state"].numpy(), b["last_hidden_state"].numpy())
    c = encoder(inputs, training=True)
    assert not np.allclose(a["last_hidden_state"].numpy(), c["last_hidden_state"].numpy())


@pytest.mark.parametrize("policy, compute", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")])
def test_mixed_precision_keeps_halting_in_float32(policy, compute):
    config = config_for()
    _, state = pt_model_for(config, regime="step1")
    ids, mask, types = cases.make_inputs(8, padding="allpad")
    model = TFAlbertActModel(config, dtype=policy)
    model.build()
    model.load_canonical_state_dict(state)
    out = model(tf_inputs(ids, mask, types))
    assert out["last_hidden_state"].dtype == compute
    assert out["updates"].dtype == out["remainders"].dtype == tf.float32
    assert model.encoder.albert_layer.act.dense.kernel.dtype == "float32"
    assert np.array_equal(out["updates"].numpy(), mask.astype("float32"))  # step1: every real token, once
    for value in out.values():
        assert np.isfinite(value.numpy()).all()


# ---------------------------------------------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------------------------------------------


def test_keras_file_and_weights_round_trip(setup, tmp_path):
    config, pt_model, state, model, (ids, mask, types), _ = setup
    inputs = tf_inputs(ids, mask, types)
    expected = model(inputs)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded) is TFAlbertActModel and loaded.config.to_dict() == config.to_dict()
    model.save_weights(tmp_path / "model.weights.h5")
    fresh = TFAlbertActModel(config)
    fresh.build()
    fresh.load_weights(tmp_path / "model.weights.h5")
    for other in (loaded, fresh):  # other model instances: weights exactly, counts exactly, floats within tolerance
        for name, value in other.canonical_state_dict().items():
            np.testing.assert_array_equal(value, state[name], err_msg=name)
        out = other(inputs)
        np.testing.assert_array_equal(out["updates"].numpy(), expected["updates"].numpy())
        for key in expected:
            np.testing.assert_allclose(out[key].numpy(), expected[key].numpy(), rtol=0, atol=1e-5, err_msg=key)


def test_pytorch_save_keras_load_and_back(tmp_path):
    config = config_for(hidden_act="gelu_new")
    pt_model, state = pt_model_for(config, regime="mixed", seed=9)
    ids, mask, types = cases.make_inputs(10, batch=4, length=9, padding="allpad")
    pt_model.save_pretrained(tmp_path / "pt")
    model = TFAlbertActModel.from_pretrained(tmp_path / "pt")
    assert model.config.hidden_act == "gelu_new"
    for name, value in model.canonical_state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    tf_out = model(tf_inputs(ids, mask, types))
    with torch.no_grad():
        pt_out = pt_model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                          token_type_ids=torch.from_numpy(types))
    reference = oracle.forward(config, state, ids, mask, types)
    keep = assert_counts_equal(tf_out["updates"], pt_out.updates.numpy(), reference)
    np.testing.assert_allclose(tf_out["last_hidden_state"].numpy()[keep], pt_out.last_hidden_state.numpy()[keep],
                               rtol=0, atol=1e-5)

    model.save_pretrained(tmp_path / "tf")
    assert json.loads((tmp_path / "tf" / "config.json").read_text())["model_type"] == "albert_act"
    back = AlbertActModel.from_pretrained(tmp_path / "tf").eval()
    for name, value in back.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[name])
    with torch.no_grad():  # the original on misaligned weights: two instances never share an alignment
        pt_out = misaligned(pt_model)(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                                      token_type_ids=torch.from_numpy(types))
        back_out = back(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                        token_type_ids=torch.from_numpy(types))
    np.testing.assert_array_equal(back_out.updates.numpy(), pt_out.updates.numpy())
    np.testing.assert_allclose(back_out.last_hidden_state.numpy(), pt_out.last_hidden_state.numpy(), rtol=0, atol=1e-5)


def test_from_pretrained_reads_legacy_formats(tmp_path):
    config = config_for()
    pt_model, state = pt_model_for(config, seed=11)
    ids, mask, types = cases.make_inputs(12, padding="ragged")
    expected = oracle.forward(config, state, ids, mask, types)
    written = []
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text(config.to_json_string())
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "bin" / "pytorch_model.bin")
    written.append("bin")
    (tmp_path / "h5").mkdir()
    (tmp_path / "h5" / "config.json").write_text(config.to_json_string())
    files.write_legacy_h5(tmp_path / "h5" / "tf_model.h5", state)
    written.append("h5")
    for name in written:
        model = TFAlbertActModel.from_pretrained(tmp_path / name)
        out = model(tf_inputs(ids, mask, types))
        keep = assert_counts_equal(out["updates"], expected["updates"], expected)
        np.testing.assert_allclose(out["last_hidden_state"].numpy()[keep], expected["last_hidden_state"][keep],
                                   rtol=0, atol=1e-5)


def test_from_pretrained_takes_the_encoder_of_a_head_checkpoint(tmp_path):
    config = config_for()
    _, state = pt_model_for(config, seed=13)
    head_state = {"albert." + k: v for k, v in state.items()}
    head_state["classifier.weight"] = np.zeros((2, config.hidden_size), np.float32)
    head_state["classifier.bias"] = np.zeros((2,), np.float32)
    files.write_canonical(tmp_path, config.to_dict(), head_state)
    model = TFAlbertActModel.from_pretrained(tmp_path)
    for name, value in model.canonical_state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    bare = TFAlbertActModel.from_pretrained(tmp_path, add_pooling_layer=False)  # ignores the pooler
    assert bare.pooler is None and len(bare.canonical_state_dict()) == len(state) - 2


def test_from_pretrained_errors_name_the_file(tmp_path):
    config = config_for()
    _, state = pt_model_for(config)
    broken = dict(state)
    del broken["encoder.albert_layer.ffn.bias"]
    files.write_canonical(tmp_path / "missing", config.to_dict(), broken)
    with pytest.raises(files.CheckpointError, match=r"model\.safetensors.*encoder\.albert_layer\.ffn\.bias"):
        TFAlbertActModel.from_pretrained(tmp_path / "missing")
    # a config that does not match the weights
    files.write_canonical(tmp_path / "shape", config_for(intermediate_size=40).to_dict(), state)
    with pytest.raises(files.CheckpointError, match=r"ffn\.weight has shape \(37, 32\).*\(40, 32\)"):
        TFAlbertActModel.from_pretrained(tmp_path / "shape")
    with pytest.raises(files.CheckpointError, match="config.json"):
        TFAlbertActModel.from_pretrained(tmp_path / "nothing-here")


# ---------------------------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inputs,message", [
    ({"input_ids": np.array([[1, 2, 120]])}, r"token id 120 .*\[0, vocab_size=120\)"),
    ({"input_ids": np.array([[1, -1, 2]])}, r"token id -1"),
    ({"input_ids": np.ones((1, 65), "int32")}, r"sequence length 65 .*max_position_embeddings=64"),
    ({"input_ids": np.ones((2, 5), "int32"), "attention_mask": np.ones((2, 4), "int32")},
     r"attention_mask has shape \(2, 4\) but the inputs have shape \(2, 5\)"),
    ({"input_ids": np.ones((2, 5), "int32"), "attention_mask": np.full((2, 5), 2, "int32")}, r"only 0 .* and 1"),
    ({"input_ids": np.ones((2, 5), "int32"), "token_type_ids": np.full((2, 5), 2, "int32")},
     r"token_type_ids must lie in \[0, 2\)"),
    ({"input_ids": np.ones((5,), "int32")}, r"shape \(batch, seq_len\)"),
    ({"input_ids": np.ones((1, 5), "float32")}, r"integer token ids"),
    ({"input_ids": np.ones((1, 5), "int32"), "mask": np.ones((1, 5), "int32")}, r"unknown inputs \['mask'\]"),
    ({"input_ids": np.ones((1, 5), "int32"), "inputs_embeds": np.zeros((1, 5, 16), "float32")}, "got both"),
    ({"attention_mask": np.ones((1, 5), "int32")}, r"'input_ids' \(or 'inputs_embeds'\)"),
    ({"inputs_embeds": np.zeros((1, 5, 7), "float32")}, r"embedding_size=16\), got \(1, 5, 7\)"),
    ({"input_ids": np.ones((2, 5), "int32"), "position_ids": np.zeros((2, 4), "int32")},
     r"position_ids has shape \(2, 4\) but the inputs have shape \(2, 5\)"),
    ({"input_ids": np.ones((1, 5), "int32"), "position_ids": np.array([[0, 1, 2, 3, 64]], "int32")},
     r"position_ids must lie in \[0, 64\)"),
])
def test_bad_inputs_raise_value_error(setup, inputs, message):
    model = setup[3]
    with pytest.raises(ValueError, match=message):
        model(inputs)


def test_symbolic_inputs_skip_value_checks(setup):
    model = setup[3]
    ids = keras.Input((None,), dtype="int32")
    out = model({"input_ids": ids})
    assert tuple(out["updates"].shape) == (None, None)
    with pytest.raises(ValueError, match="sequence length 70"):
        model({"input_ids": keras.Input((70,), dtype="int32")})


# ---------------------------------------------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------------------------------------------


def keras_readme_blocks():
    from test_readme import python_blocks, section

    return python_blocks(section("keras"))


@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed")
def test_readme_keras_section_runs(tmp_path, monkeypatch):
    blocks = keras_readme_blocks()
    code = "\n".join(blocks)
    assert "from_pretrained" in code and "save_pretrained" in code and "model.fit" in code
    assert 'load_model("clf.keras")' in code
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "docs (section keras)", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "clf.keras").is_file()
