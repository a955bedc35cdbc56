"""Keras conventions of every Keras ALBERT-ACT model (issue 22, item 4): `quantize()` then a `.keras` file that
`load_model` reads back quantized, `from_config` giving a built model, dtype policies with the halting fields in
float32, and `model.token_embedding` as keras-hub backbones expose it."""

import io
import json
import zipfile

import numpy as np
import pytest

import cases
import oracle
from act import AlbertActConfig

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.usefixtures("short_training_schedule")  # conftest.py: three training phases
keras = pytest.importorskip("keras")
ml_dtypes = pytest.importorskip("ml_dtypes")
import act.tf as tfm  # noqa: E402
from act.tf.base import quantized_policies  # noqa: E402
from act.tf.ops import embedding_table  # noqa: E402
from test_tf_heads import HEADS, PREDICTIONS, batch, with_test_weights  # noqa: E402

MODELS = ["AlbertActModel", *HEADS]
ATOL = 1e-5  # float32: another model instance with the same weights (ACT_SEMANTICS.md, "Parity")
# The float64 oracle's smallest |hp + p - thr| in the half-precision case below must stay far above float16 /
# bfloat16 rounding of p, so that every count must match exactly (the case and bound of tests/test_halting.py).
HALF_PRECISION_MARGIN = 0.02


def config(**overrides):
    return AlbertActConfig(**cases.tiny_config_kwargs(**overrides))


def model_for(name, cfg, seed=0, **kwargs):
    """A built Keras model with the mixed halting regime (tokens halt at different depths)."""
    keras.utils.set_random_seed(seed)
    model = getattr(tfm, "TF" + name)(cfg, **kwargs)
    model.build()
    state = model.canonical_state_dict()
    if name == "AlbertActModel":
        state = cases.apply_regime(state, "mixed", seed=seed)
    else:
        state = with_test_weights(state, seed)
    model.load_canonical_state_dict(state)
    return model


def int32(inputs):
    return {key: np.asarray(value).astype("int32") for key, value in inputs.items()}


def assert_same_outputs(out, expected, atol=ATOL):
    """Another model instance with the same weights: counts exactly, float outputs within `atol`."""
    assert set(out) == set(expected)
    np.testing.assert_array_equal(out["updates"].numpy(), expected["updates"].numpy())
    for key in expected:
        np.testing.assert_allclose(np.asarray(out[key], "float32"), np.asarray(expected[key], "float32"), rtol=0,
                                   atol=atol, err_msg=key)


def predictions_of(name):
    return PREDICTIONS.get(name, ("logits",)) if name != "AlbertActModel" else ("last_hidden_state",)


# ---------------------------------------------------------------------------------------------------------------
# Quantization: quantize(), then save / load_model
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Layer .* does not have a `quantize` method")
@pytest.mark.filterwarnings("ignore:Invalid quantization mode. Expected one of")  # float8: Keras' Embedding
@pytest.mark.parametrize("name, mode", [*((name, "int8") for name in MODELS),
                                        ("AlbertActModel", "float8"), ("AlbertActForMaskedLM", "float8"),
                                        ("AlbertActForMultipleChoice", "float8")])
def test_quantized_model_round_trips_through_a_keras_file(name, mode, tmp_path):
    model = model_for(name, config())
    inputs = int32(batch(name))
    full = model(inputs)
    model.quantize(mode)
    quantized = quantized_policies(model)
    assert quantized and {policy.quantization_mode for policy in quantized.values()} == {mode}
    assert any(path.endswith("encoder/albert_layer/ffn") for path in quantized)
    if mode == "int8":  # the tables too (Keras has no float8 Embedding)
        assert model.token_embedding.path in quantized and model.token_embedding.embeddings.dtype == "int8"
    expected = model(inputs)
    # the quantization changed the outputs beyond ATOL: a model loaded back unquantized would fail below
    changed = max(np.abs(expected[key].numpy() - full[key].numpy()).max()
                  for key in (*predictions_of(name), "remainders"))
    assert changed > 5 * ATOL

    model.save(tmp_path / "quantized.keras")
    loaded = keras.models.load_model(tmp_path / "quantized.keras")
    assert type(loaded) is type(model)
    assert {path: policy.name for path, policy in quantized_policies(loaded).items()} == \
        {path: policy.name for path, policy in quantized.items()}
    assert len(loaded.weights) == len(model.weights)
    assert_same_outputs(loaded(inputs), expected)
    if name in ("AlbertActModel", "AlbertActForMaskedLM"):  # saved again from the loaded model: the same again
        loaded.save(tmp_path / "again.keras")
        assert_same_outputs(keras.models.load_model(tmp_path / "again.keras")(inputs), expected)


@pytest.mark.filterwarnings("ignore:Layer .* does not have a `quantize` method")
def test_quantized_model_is_refused_by_the_canonical_format(tmp_path):
    model = model_for("AlbertActForSequenceClassification", config())
    model.save_pretrained(tmp_path / "float")  # before quantize(): the canonical format
    model.quantize("int8")
    with pytest.raises(ValueError, match=r"quantized \(int8: 13 layers.*save_pretrained before quantize\(\)"):
        model.save_pretrained(tmp_path / "quantized")
    assert not (tmp_path / "quantized").exists()  # nothing half-written
    with pytest.raises(ValueError, match="quantized"):
        model.load_canonical_state_dict(tfm.TFAlbertActForSequenceClassification.from_pretrained(
            tmp_path / "float").canonical_state_dict())


@pytest.mark.filterwarnings("ignore:Layer .* does not have a `quantize` method")
def test_tied_decoder_of_an_int8_model_is_the_dequantized_table():
    """The MLM decoder is the word-embedding table: quantized to int8 with a scale per row, it is dequantized, each
    entry within half a quantization step (the row's max |value| / 127 / 2) of the float table."""
    model = model_for("AlbertActForMaskedLM", config())
    table = model.token_embedding.embeddings.numpy()
    model.quantize("int8")
    dequantized = embedding_table(model.token_embedding).numpy()
    step = np.abs(table).max(-1, keepdims=True) / 127
    assert (np.abs(dequantized - table) <= step / 2 * (1 + 1e-5)).all()
    assert np.abs(dequantized - table).max() > 0  # really quantized


# ---------------------------------------------------------------------------------------------------------------
# from_config: a built model
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_from_config_returns_a_built_model(name):
    model = model_for(name, config())
    inputs = int32(batch(name))
    clone = type(model).from_config(json.loads(json.dumps(model.get_config())))
    assert clone.built and len(clone.weights) == len(model.weights) > 0
    assert [v.path for v in clone.weights] == [v.path for v in model.weights]
    clone.set_weights(model.get_weights())
    assert_same_outputs(clone(inputs), model(inputs))


@pytest.mark.filterwarnings("ignore:Layer .* does not have a `quantize` method")
def test_from_config_of_a_quantized_model_builds_it_quantized():
    model = model_for("AlbertActForTokenClassification", config())
    inputs = int32(batch("AlbertActForTokenClassification"))
    model.quantize("int8")
    clone = type(model).from_config(json.loads(json.dumps(model.get_config())))
    assert clone.built and clone.albert.encoder.albert_layer.ffn.kernel.dtype == "int8"
    clone.set_weights(model.get_weights())
    assert_same_outputs(clone(inputs), model(inputs))


# ---------------------------------------------------------------------------------------------------------------
# dtype policies: half-precision layers, float32 halting fields
# ---------------------------------------------------------------------------------------------------------------

POLICIES = {"mixed_float16": ("float16", "float32"), "mixed_bfloat16": ("bfloat16", "float32"),
            "bfloat16": ("bfloat16", "bfloat16")}  # policy: (compute dtype, variable dtype)
HALTING = ("updates", "remainders", "ponder_cost")


def half_tolerance(compute, scale):
    """A few roundings of the compute dtype at the size of the values compared."""
    return 4 * float(ml_dtypes.finfo(tf.as_dtype(compute).as_numpy_dtype).eps) * max(1.0, float(scale))


@pytest.fixture(scope="module")
def half_case():
    """The case of tests/test_halting.py: tokens halt at >= 3 depths, every decision far from the threshold."""
    cfg, _, state = cases.build_pt_model("mixed", seed=1)
    ids, mask, types = cases.make_inputs(1, batch=4, length=12)
    reference = oracle.forward(cfg, state, ids, mask, types)
    real = mask > 0
    assert reference["margin"][real].min() > HALF_PRECISION_MARGIN
    assert len(np.unique(reference["updates"][real])) >= 3
    return cfg, state, int32({"input_ids": ids, "attention_mask": mask, "token_type_ids": types}), reference


@pytest.mark.parametrize("policy", POLICIES)
def test_dtype_policy_keeps_the_halting_fields_float32_and_the_oracle_counts(policy, half_case):
    cfg, state, inputs, reference = half_case
    compute, variables = POLICIES[policy]
    model = tfm.TFAlbertActModel(cfg, dtype=policy)
    model.build()
    model.load_canonical_state_dict(state)
    assert model.encoder.albert_layer.ffn.kernel.dtype == variables
    float32 = tfm.TFAlbertActModel(cfg)
    float32.build()
    float32.load_canonical_state_dict(state)
    full = float32(inputs)
    runs = {"eager": model(inputs), "xla": tf.function(model, jit_compile=True)(inputs),
            "dense loop": model(inputs, output_hidden_states=True)}
    for mode, out in runs.items():
        assert out["last_hidden_state"].dtype == out["pooler_output"].dtype == compute, mode
        assert all(out[name].dtype == tf.float32 for name in HALTING), mode
        assert all(np.isfinite(np.asarray(value, "float32")).all() for value in out.values()
                   if not isinstance(value, tuple)), mode
        np.testing.assert_array_equal(out["updates"].numpy(), reference["updates"], err_msg=mode)
        np.testing.assert_array_equal(out["updates"].numpy(), full["updates"].numpy(), err_msg=mode)
        # the remainders are sums of half-precision probabilities (tests/test_halting.py's bound)
        np.testing.assert_allclose(out["remainders"].numpy(), reference["remainders"], rtol=0, atol=0.05)
        hidden = reference["last_hidden_state"]
        np.testing.assert_allclose(np.asarray(out["last_hidden_state"], "float64"), hidden, rtol=0,
                                   atol=half_tolerance(compute, np.abs(hidden).max()), err_msg=mode)


@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed")
@pytest.mark.parametrize("policy", POLICIES)
def test_dtype_policy_fits_a_step_and_round_trips_through_a_keras_file(policy, half_case, tmp_path):
    cfg, state, inputs, reference = half_case
    compute, variables = POLICIES[policy]
    cfg = cfg.__class__.from_dict({**cfg.to_dict(), "ponder_penalty": 0.01, "num_labels": 2})
    model = tfm.TFAlbertActForSequenceClassification(cfg, dtype=policy)
    model.build()
    model.load_canonical_state_dict({**model.canonical_state_dict(),
                                     **{"albert." + key: value for key, value in state.items()}})
    before = [variable.numpy() for variable in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(inputs, np.array([0, 1, 0, 1]), batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    after = model.trainable_weights
    assert all(variable.dtype == variables for variable in after)
    changed = {new.path: not np.array_equal(old, new.numpy()) for old, new in zip(before, after)}
    if variables == "float32":  # every weight took the step
        assert all(changed.values()), [path for path, moved in changed.items() if not moved]
    else:  # bfloat16 weights: an update below half a rounding step of a weight (a LayerNorm gain ~1) is lost
        assert changed[model.classifier.kernel.path] and sum(changed.values()) > len(changed) // 2
    assert all(np.isfinite(variable.numpy().astype("float32")).all() for variable in after)
    expected = model(inputs)
    assert expected["logits"].dtype == compute and all(expected[name].dtype == tf.float32 for name in HALTING)

    model.save(tmp_path / "half.keras")
    loaded = keras.models.load_model(tmp_path / "half.keras")
    assert loaded.dtype_policy.name == policy
    for variable, other in zip(model.weights, loaded.weights):  # the weights exactly
        assert variable.path == other.path and variable.dtype == other.dtype
        np.testing.assert_array_equal(variable.numpy(), other.numpy())
    out = loaded(inputs)
    np.testing.assert_array_equal(out["updates"].numpy(), expected["updates"].numpy())
    for name in ("logits", "remainders", "ponder_cost"):
        scale = np.abs(np.asarray(expected[name], "float32")).max()
        np.testing.assert_allclose(np.asarray(out[name], "float32"), np.asarray(expected[name], "float32"),
                                   rtol=0, atol=half_tolerance(compute, scale), err_msg=name)


# ---------------------------------------------------------------------------------------------------------------
# model.token_embedding
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_token_embedding_is_the_word_embedding_layer(name):
    cfg = config()
    model = getattr(tfm, "TF" + name)(cfg)
    model.build()
    layer = model.token_embedding
    assert isinstance(layer, keras.layers.Embedding) and layer is model.get_input_embeddings()
    assert layer.path == model.path + ("" if name == "AlbertActModel" else "/albert") + "/embeddings/word_embeddings"
    assert tuple(layer.embeddings.shape) == (cfg.vocab_size, cfg.embedding_size)
    ids = np.array([[5, 7, 9]], "int32")
    np.testing.assert_array_equal(layer(ids).numpy(), layer.embeddings.numpy()[ids])


def test_token_embedding_is_saved_once_under_its_own_path(tmp_path):
    """Keras' saving walks a model's attributes by name: the layer is stored under `albert/embeddings/...`, and the
    `token_embedding` property adds no second entry (the weights file of a model saved before it is unchanged)."""
    h5py = pytest.importorskip("h5py")
    model = model_for("AlbertActForPreTraining", config())
    model.save(tmp_path / "pre.keras")
    with zipfile.ZipFile(tmp_path / "pre.keras") as archive:
        entries = []
        h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r").visit(entries.append)
    assert "layers/albert/embeddings/word_embeddings/vars/0" in entries or \
        "albert/embeddings/word_embeddings/vars/0" in entries
    assert not [entry for entry in entries if "token_embedding" in entry]
    loaded = keras.models.load_model(tmp_path / "pre.keras")
    np.testing.assert_array_equal(loaded.token_embedding.embeddings.numpy(), model.token_embedding.embeddings.numpy())
