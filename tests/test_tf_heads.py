"""Keras task heads: parity with the PyTorch heads and a float64 NumPy referee, canonical weights both ways,
losses with the ponder cost, `fit` (also under XLA), and the ponder penalty's effect on depth."""

import warnings

import numpy as np
import pytest
import torch

import cases
import oracle
from act import AlbertActConfig
from act.checkpoints import files, names

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.usefixtures("short_training_schedule")  # conftest.py: three training phases
keras = pytest.importorskip("keras")
import act.pt as pt  # noqa: E402
import act.tf as tfm  # noqa: E402

HEADS = ["AlbertActForPreTraining", "AlbertActForMaskedLM", "AlbertActForSequenceClassification",
         "AlbertActForTokenClassification", "AlbertActForQuestionAnswering", "AlbertActForMultipleChoice"]
PREDICTIONS = {"AlbertActForPreTraining": ("prediction_logits", "sop_logits"),
               "AlbertActForQuestionAnswering": ("start_logits", "end_logits")}
PENALTY = 0.05
ATOL = 1e-5  # float32 parity (ACT_SEMANTICS.md, "Parity")


def config(**overrides):
    return AlbertActConfig(**cases.tiny_config_kwargs(**overrides))


def batch(name, seed=0):
    """Inputs (NumPy int64) of a head: (3, 10) with ragged padding; multiple choice (1, 3, 10)."""
    ids, mask, types = cases.make_inputs(seed, batch=3, length=10)
    if name == "AlbertActForMultipleChoice":
        ids, mask, types = ids[None], mask[None], types[None]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def labels_for(name, inputs, num_labels=2):
    ids = inputs["input_ids"]
    rng = np.random.default_rng(1)
    if name in ("AlbertActForPreTraining", "AlbertActForMaskedLM"):
        mlm = np.full_like(ids, -100)
        mlm[:, 1:3] = ids[:, 1:3]
        out = {"labels": mlm}
        if name == "AlbertActForPreTraining":
            out["sentence_order_label"] = np.array([0, 1, 1])
        return out
    if name == "AlbertActForSequenceClassification":
        return {"labels": rng.integers(0, num_labels, ids.shape[0])}
    if name == "AlbertActForTokenClassification":
        labels = rng.integers(0, num_labels, ids.shape)
        labels[inputs["attention_mask"] == 0] = -100
        return {"labels": labels}
    if name == "AlbertActForQuestionAnswering":  # 25 is outside the input: ignored, as in transformers
        return {"start_positions": np.array([1, 25, 0]), "end_positions": np.array([3, 2, 1])}
    return {"labels": np.array([2])}


def tf_call(model, inputs, **labels):
    return model({k: v.astype("int32") for k, v in inputs.items()}, **labels)


def pt_call(model, inputs, **labels):
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in {**inputs, **labels}.items()})


def with_test_weights(state, seed):
    """The mixed halting regime (tokens halt at different depths) and a non-zero MLM output bias."""
    state = cases.apply_regime(state, "mixed", seed=seed, prefix="albert.")
    if "predictions.bias" in state:
        state["predictions.bias"] = np.random.default_rng(seed).normal(0, 0.5, state["predictions.bias"].shape) \
            .astype(np.float32)
    for copy, source in names.TIED.items():
        if copy in state:
            state[copy] = state[source]
    return state


def pt_model_for(name, cfg, seed=0):
    torch.manual_seed(seed)
    model = getattr(pt, name)(cfg).eval()
    state = with_test_weights({k: v.numpy() for k, v in model.state_dict().items()}, seed)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return model


def tf_model_for(name, cfg, seed=0):
    keras.utils.set_random_seed(seed)
    model = getattr(tfm, "TF" + name)(cfg)
    model.build()
    model.load_canonical_state_dict(with_test_weights(model.canonical_state_dict(), seed))
    return model


# ---------------------------------------------------------------------------------------------------------------
# The float64 referee: the oracle's encoder plus the heads written out in NumPy, and NumPy losses
# ---------------------------------------------------------------------------------------------------------------


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_cross_entropy(logits, labels, ignore=-100):
    logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    keep = labels != ignore
    return float(-log_softmax(logits[keep])[np.arange(keep.sum()), labels[keep]].mean())


def referee(name, cfg, state, inputs):
    """Predictions, updates and ponder cost of a head, in float64, from the canonical state."""
    ids, mask, types = (inputs[k] for k in ("input_ids", "attention_mask", "token_type_ids"))
    shape = ids.shape
    if name == "AlbertActForMultipleChoice":
        ids, mask, types = (x.reshape(-1, shape[-1]) for x in (ids, mask, types))
    ref = oracle.forward(cfg, state, ids, mask, types, prefix="albert.")
    w = {k: np.asarray(v, np.float64) for k, v in state.items()}
    h, pooled = ref["last_hidden_state"], ref["pooler_output"]
    out = {}
    if name in ("AlbertActForPreTraining", "AlbertActForMaskedLM"):
        act_fn = oracle.ACTIVATIONS[cfg.hidden_act]
        t = oracle._layer_norm(act_fn(oracle._linear(h, w, "predictions.dense")), w, "predictions.LayerNorm",
                               cfg.layer_norm_eps)
        mlm = t @ w["albert.embeddings.word_embeddings.weight"].T + w["predictions.bias"]
        if name == "AlbertActForPreTraining":
            out = {"prediction_logits": mlm, "sop_logits": oracle._linear(pooled, w, "sop_classifier.classifier")}
        else:
            out = {"logits": mlm}
    elif name == "AlbertActForSequenceClassification":
        out = {"logits": oracle._linear(pooled, w, "classifier")}
    elif name == "AlbertActForTokenClassification":
        out = {"logits": oracle._linear(h, w, "classifier")}
    elif name == "AlbertActForQuestionAnswering":
        logits = oracle._linear(h, w, "qa_outputs")
        out = {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
    else:
        out = {"logits": oracle._linear(pooled, w, "classifier").reshape(shape[:2])}
    out["updates"] = ref["updates"].reshape(shape)
    out["ponder_cost"] = ref["ponder_cost"]
    out["margin"] = ref["margin"]
    return out


def np_task_loss(name, predictions, labels):
    """The task loss of a head from its predictions (transformers' definitions), without the ponder term."""
    if name == "AlbertActForPreTraining":
        return (np_cross_entropy(predictions["prediction_logits"], labels["labels"])
                + np_cross_entropy(predictions["sop_logits"], labels["sentence_order_label"]))
    if name == "AlbertActForQuestionAnswering":
        length = predictions["start_logits"].shape[1]
        start = np.clip(labels["start_positions"], 0, length)
        end = np.clip(labels["end_positions"], 0, length)
        return (np_cross_entropy(predictions["start_logits"], start, ignore=length)
                + np_cross_entropy(predictions["end_logits"], end, ignore=length)) / 2
    return np_cross_entropy(predictions["logits"], labels["labels"])


def assert_head_parity(name, cfg, state, tf_model, pt_model):
    """Keras = PyTorch = referee: predictions (1e-5), updates (exactly), loss incl. the ponder term (1e-5)."""
    inputs = batch(name)
    labels = labels_for(name, inputs, cfg.num_labels)
    ref = referee(name, cfg, state, inputs)
    assert (ref["margin"] > 1e-4).all()  # no token near the threshold: exact counts are required
    tf_out, pt_out = tf_call(tf_model, inputs, **labels), pt_call(pt_model, inputs, **labels)
    keys = PREDICTIONS.get(name, ("logits",))
    for key in keys:
        np.testing.assert_allclose(tf_out[key].numpy(), ref[key], rtol=0, atol=ATOL, err_msg=key)
        np.testing.assert_allclose(tf_out[key].numpy(), getattr(pt_out, key).numpy(), rtol=0, atol=ATOL, err_msg=key)
    np.testing.assert_array_equal(tf_out["updates"].numpy(), ref["updates"])
    np.testing.assert_array_equal(tf_out["updates"].numpy(), pt_out.updates.numpy())
    assert len(np.unique(ref["updates"][ref["updates"] > 0])) > 1  # tokens really halted at different depths
    # the ponder cost of both frameworks against the referee (multiple choice: per (example, choice) row)
    np.testing.assert_allclose(tf_out["ponder_cost"].numpy(), ref["ponder_cost"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(pt_out.ponder_cost.numpy(), ref["ponder_cost"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(tf_out["ponder_cost"].numpy(), pt_out.ponder_cost.numpy(), rtol=0, atol=ATOL)
    expected_loss = np_task_loss(name, ref, labels) + PENALTY * ref["ponder_cost"]
    np.testing.assert_allclose(tf_out["loss"].numpy(), expected_loss, rtol=0, atol=ATOL)
    np.testing.assert_allclose(tf_out["loss"].numpy(), pt_out.loss.numpy(), rtol=0, atol=ATOL)
    # the ponder term is registered with add_loss (what Keras `fit` adds to the compiled loss)
    assert len(tf_model.losses) == 1
    np.testing.assert_allclose(tf_model.losses[0].numpy(), PENALTY * tf_out["ponder_cost"].numpy(), rtol=1e-6)
    assert "loss" not in tf_call(tf_model, inputs)  # no labels, no loss


# ---------------------------------------------------------------------------------------------------------------
# Structure and names
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HEADS)
def test_variables_map_to_the_pytorch_state_dict(name):
    cfg = config()
    pt_model = getattr(pt, name)(cfg)
    model = getattr(tfm, "TF" + name)(cfg)
    expected = {k: tuple(v.shape) for k, v in pt_model.state_dict().items()
                if not names.is_ignored(k) and not (k in names.TIED and names.TIED[k] in pt_model.state_dict())}
    assert model.expected_shapes() == expected
    assert all(name.startswith("albert.") or names.is_head_name(name) for name in expected)
    assert not any("decoder" in v.path for v in model.weights)  # the MLM decoder is the word embeddings


def test_mirror_of_the_pytorch_classes_and_exports():
    import act
    import act.commands.convert
    import act.pt.modeling as pt_modeling
    import act.tf.modeling as tf_modeling

    assert tf_modeling.__all__ == ["TF" + name for name in pt_modeling.__all__]
    cfg = config()
    model = tfm.TFAlbertActForPreTraining(cfg)
    for path in ("albert.encoder.albert_layer.act.dense", "predictions.dense", "predictions.LayerNorm",
                 "sop_classifier.classifier"):
        layer = model
        for part in path.split("."):
            layer = getattr(layer, part)
        assert layer.name == path.split(".")[-1]
    for name in HEADS:
        cls = getattr(tfm, "TF" + name)
        assert getattr(act, "TF" + name) is cls and act.commands.convert.keras_class(name) is cls


# ---------------------------------------------------------------------------------------------------------------
# Parity and canonical weights, both directions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HEADS)
def test_pytorch_save_keras_load_parity(name, tmp_path):
    cfg = config(ponder_penalty=PENALTY)
    pt_model = pt_model_for(name, cfg, seed=HEADS.index(name))
    pt_model.save_pretrained(tmp_path)
    model = getattr(tfm, "TF" + name).from_pretrained(tmp_path)
    state = {k: v.numpy() for k, v in pt_model.state_dict().items()}
    loaded = model.canonical_state_dict()
    assert set(loaded) == {k for k in state if k not in names.TIED}
    for key, value in loaded.items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    assert_head_parity(name, cfg, state, model, pt_model)


@pytest.mark.parametrize("name", HEADS)
def test_keras_save_pytorch_load_parity(name, tmp_path):
    cfg = config(ponder_penalty=PENALTY)
    model = tf_model_for(name, cfg, seed=10 + HEADS.index(name))
    model.save_pretrained(tmp_path)
    pt_model = getattr(pt, name).from_pretrained(tmp_path).eval()
    assert type(pt_model).__name__ == name
    state = model.canonical_state_dict()
    loaded = {k: v.numpy() for k, v in pt_model.state_dict().items()}
    for copy, source in names.TIED.items():  # the decoder is re-tied in PyTorch
        if copy in loaded:
            assert pt_model.predictions.decoder.weight is pt_model.albert.embeddings.word_embeddings.weight
            np.testing.assert_array_equal(loaded.pop(copy), state[source])
    assert set(loaded) == set(state)
    for key, value in loaded.items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    assert_head_parity(name, cfg, state, model, pt_model)
    # and back into Keras: bit for bit
    again = getattr(tfm, "TF" + name).from_pretrained(tmp_path)
    for key, value in again.canonical_state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)


@pytest.mark.parametrize("problem, num_labels, labels", [
    ("regression", 1, np.array([0.5, -1.0, 2.0], np.float32)),
    ("single_label_classification", 3, np.array([0, 2, 1])),
    ("multi_label_classification", 3, np.array([[1., 0., 1.], [0., 0., 1.], [1., 1., 0.]], np.float32)),
])
def test_sequence_classification_problem_types(problem, num_labels, labels, tmp_path):
    name = "AlbertActForSequenceClassification"
    cfg = config(num_labels=num_labels, ponder_penalty=PENALTY)
    pt_model = pt_model_for(name, cfg, seed=3)
    pt_model.save_pretrained(tmp_path)
    model = tfm.TFAlbertActForSequenceClassification.from_pretrained(tmp_path)
    inputs = batch(name)
    out = tf_call(model, inputs, labels=labels)
    assert model.config.problem_type == problem
    pt_out = pt_call(pt_model, inputs, labels=labels)
    ref = referee(name, cfg, {k: v.numpy() for k, v in pt_model.state_dict().items()}, inputs)
    logits = ref["logits"]
    if problem == "regression":
        task = float(((logits[:, 0] - labels) ** 2).mean())
    elif problem == "single_label_classification":
        task = np_cross_entropy(logits, labels)
    else:
        task = float((np.logaddexp(0, logits) - labels * logits).mean())  # BCE with logits
    np.testing.assert_allclose(out["loss"].numpy(), task + PENALTY * ref["ponder_cost"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(out["loss"].numpy(), pt_out.loss.numpy(), rtol=0, atol=ATOL)


def test_labels_in_the_input_dict_equal_labels_as_keywords():
    cfg = config(ponder_penalty=PENALTY)
    model = tf_model_for("AlbertActForQuestionAnswering", cfg)
    inputs = batch("AlbertActForQuestionAnswering")
    labels = labels_for("AlbertActForQuestionAnswering", inputs)
    as_keywords = tf_call(model, inputs, **labels)["loss"].numpy()
    in_dict = model({**{k: v.astype("int32") for k, v in inputs.items()}, **labels})["loss"].numpy()
    assert as_keywords == in_dict and np.isfinite(in_dict)
    only_start = model({k: v.astype("int32") for k, v in inputs.items()}, start_positions=labels["start_positions"])
    assert "loss" not in only_start  # both positions are needed, as in PyTorch


def test_multiple_choice_shapes_and_bad_rank():
    cfg = config()
    model = tf_model_for("AlbertActForMultipleChoice", cfg)
    ids, mask, _ = cases.make_inputs(4, batch=6, length=10)
    out = model({"input_ids": ids.reshape(2, 3, 10).astype("int32"),
                 "attention_mask": mask.reshape(2, 3, 10).astype("int32")})
    assert tuple(out["logits"].shape) == (2, 3) and tuple(out["updates"].shape) == (2, 3, 10)
    np.testing.assert_array_equal(out["updates"].numpy() > 0, mask.reshape(2, 3, 10) > 0)
    with pytest.raises(ValueError, match="num_choices"):
        model({"input_ids": ids.astype("int32")})
    # inputs_embeds (batch, choices, seq, embedding) and position_ids are flattened like the ids
    embeds = model.get_input_embeddings()(ids.reshape(2, 3, 10).astype("int32")).numpy()
    positions = np.tile(np.arange(10)[::-1], (2, 3, 1)).astype("int32")
    for a, b in ((out, model({"inputs_embeds": embeds, "attention_mask": mask.reshape(2, 3, 10).astype("int32")})),
                 (model({"input_ids": ids.reshape(2, 3, 10).astype("int32"), "position_ids": positions}),
                  model({"inputs_embeds": embeds, "position_ids": positions}))):
        np.testing.assert_array_equal(a["updates"].numpy(), b["updates"].numpy())
        np.testing.assert_allclose(a["logits"].numpy(), b["logits"].numpy(), rtol=0, atol=1e-6)


def test_graph_and_xla_match_eager():
    cfg = config(ponder_penalty=PENALTY)
    model = tf_model_for("AlbertActForMultipleChoice", cfg)
    inputs = {k: tf.constant(v, tf.int32) for k, v in batch("AlbertActForMultipleChoice").items()}
    labels = tf.constant([1])
    eager = model(inputs, labels=labels)
    xla = tf.function(lambda x, y: model(x, labels=y), jit_compile=True)(inputs, labels)
    np.testing.assert_array_equal(xla["updates"].numpy(), eager["updates"].numpy())
    for key in ("logits", "loss", "ponder_cost"):
        np.testing.assert_allclose(xla[key].numpy(), eager[key].numpy(), rtol=0, atol=ATOL, err_msg=key)


def test_from_pretrained_takes_an_encoder_or_another_heads_checkpoint(tmp_path):
    cfg = config()
    pre = pt_model_for("AlbertActForPreTraining", cfg)
    pre.save_pretrained(tmp_path / "pre")
    encoder = pt.AlbertActModel.from_pretrained(tmp_path / "pre")
    encoder.save_pretrained(tmp_path / "bare")
    state = {k: v.numpy() for k, v in pre.state_dict().items()}
    for directory in ("pre", "bare"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = tfm.TFAlbertActForSequenceClassification.from_pretrained(tmp_path / directory, num_labels=3)
        messages = [str(w.message) for w in caught]
        assert any("newly initialised" in m and "classifier.weight" in m for m in messages), messages
        assert any("not used" in m and "sop_classifier" in m for m in messages) == (directory == "pre")
        assert model.config.num_labels == 3 and tuple(model.classifier.kernel.shape) == (32, 3)
        for key, value in model.canonical_state_dict().items():
            if key.startswith("albert."):
                np.testing.assert_array_equal(value, state[key], err_msg=key)
    with pytest.warns(UserWarning, match="not used.*sop_classifier"):
        mlm = tfm.TFAlbertActForMaskedLM.from_pretrained(tmp_path / "pre")
    np.testing.assert_array_equal(mlm.predictions.bias.numpy(), state["predictions.bias"])
    # the strict loader refuses a checkpoint without the head
    fresh = tfm.TFAlbertActForSequenceClassification(cfg)
    fresh.build()
    with pytest.raises(files.CheckpointError, match="missing tensors: classifier.bias, classifier.weight"):
        fresh.load_canonical_state_dict(files.read_weights(tmp_path / "bare" / "model.safetensors"))
    with pytest.raises(TypeError, match="num_lables"):
        tfm.TFAlbertActForSequenceClassification.from_pretrained(tmp_path / "pre", num_lables=3)


def test_keras_file_round_trip_keeps_the_tied_decoder(tmp_path):
    cfg = config(ponder_penalty=PENALTY)
    model = tf_model_for("AlbertActForPreTraining", cfg)
    inputs = {k: v.astype("int32") for k, v in batch("AlbertActForPreTraining").items()}
    expected = model(inputs)
    model.save(tmp_path / "pre.keras")
    loaded = keras.models.load_model(tmp_path / "pre.keras")
    assert type(loaded) is tfm.TFAlbertActForPreTraining
    out = loaded(inputs)  # another model instance: counts exactly, floats within tolerance
    np.testing.assert_array_equal(out["updates"].numpy(), expected["updates"].numpy())
    for key in ("prediction_logits", "sop_logits"):
        np.testing.assert_allclose(out[key].numpy(), expected[key].numpy(), rtol=0, atol=ATOL, err_msg=key)
    # the decoder is the word-embedding matrix: changing one changes the logits like a changed decoder
    table = loaded.albert.embeddings.word_embeddings.embeddings
    table.assign(table * 2.0)
    assert not np.allclose(loaded(inputs)["prediction_logits"].numpy(), out["prediction_logits"].numpy())


# ---------------------------------------------------------------------------------------------------------------
# Training: gradients, fit, the ponder penalty
# ---------------------------------------------------------------------------------------------------------------


def test_ponder_term_alone_gives_the_halting_unit_a_gradient():
    cfg = config(ponder_penalty=1.0, classifier_dropout_prob=0.0)
    model = tf_model_for("AlbertActForSequenceClassification", cfg)
    inputs = {k: tf.constant(v, tf.int32) for k, v in batch("AlbertActForSequenceClassification").items()}
    labels = tf.constant([0, 1, 0])
    halting = model.albert.encoder.albert_layer.act.dense.kernel
    with tf.GradientTape(persistent=True) as tape:
        out = model(inputs, labels=labels, training=True)
        task = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=out["logits"]))
        ponder_term = out["loss"] - task
        added = tf.add_n(model.losses)
    np.testing.assert_allclose(ponder_term.numpy(), out["ponder_cost"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(added.numpy(), out["ponder_cost"].numpy(), rtol=1e-6)
    for term in (ponder_term, added):
        gradient = tape.gradient(term, halting).numpy()
        assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


def synthetic_task(n=64, length=8, seed=0):
    """The first token is 7 or 8 and says the label: learnable by a tiny model in a few steps."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(10, 120, (n, length)).astype("int32")
    labels = rng.integers(0, 2, n).astype("int32")
    ids[:, 0] = 7 + labels
    return ids, labels


def dataset(ids, labels, batch_size=16):
    features = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch_size)


@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed")
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_fit_reduces_the_loss_and_includes_the_ponder_term(jit_compile):
    ids, labels = synthetic_task()
    cfg = config(ponder_penalty=1e-3, classifier_dropout_prob=0.0)
    keras.utils.set_random_seed(0)
    model = tfm.TFAlbertActForSequenceClassification(cfg)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)

    def mean_loss():  # the PyTorch definition: task loss + tau * ponder cost, over the whole set
        return float(model({"input_ids": ids}, labels=labels)["loss"])

    before = mean_loss()
    # evaluate (one batch of everything) = compiled task loss + the add_loss ponder term
    evaluated = model.evaluate({"input_ids": ids}, labels, batch_size=len(ids), verbose=0)
    np.testing.assert_allclose(evaluated, before, rtol=1e-5)
    history = model.fit(dataset(ids, labels), epochs=4, verbose=0)
    after = mean_loss()
    assert np.isfinite(history.history["loss"]).all()
    assert after < before * 0.7, (before, after)


def test_two_output_head_fits_with_a_dict_of_losses():
    """QA: the compiled losses are keyed by the prediction names; the step's loss is their sum + the ponder term."""
    cfg = config(ponder_penalty=PENALTY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = tf_model_for("AlbertActForQuestionAnswering", cfg)
    inputs = {k: v.astype("int32") for k, v in batch("AlbertActForQuestionAnswering").items()}
    targets = {"start_logits": np.array([1, 4, 0]), "end_logits": np.array([3, 2, 1])}
    before = model(inputs)
    expected = (np_cross_entropy(before["start_logits"].numpy(), targets["start_logits"])
                + np_cross_entropy(before["end_logits"].numpy(), targets["end_logits"])
                + PENALTY * before["ponder_cost"].numpy())
    scce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss={"start_logits": scce, "end_logits": scce})
    history = model.fit(inputs, targets, batch_size=3, epochs=1, verbose=0).history
    np.testing.assert_allclose(history["loss"][0], expected, rtol=1e-5)
    assert set(history) == {"loss", "start_logits_loss", "end_logits_loss"}


def test_mixed_precision_heads_keep_halting_and_losses_in_float32():
    cfg = config(ponder_penalty=PENALTY)
    state = {k: v.numpy() for k, v in pt_model_for("AlbertActForMaskedLM", cfg).state_dict().items()}
    inputs = batch("AlbertActForMaskedLM")
    models, outputs = {}, {}
    for dtype in ("mixed_float16", "float32"):
        models[dtype] = tfm.TFAlbertActForMaskedLM(cfg, dtype=dtype)
        models[dtype].build()
        models[dtype].load_canonical_state_dict(state)
        outputs[dtype] = tf_call(models[dtype], inputs, **labels_for("AlbertActForMaskedLM", inputs))
    out, full = outputs["mixed_float16"], outputs["float32"]
    assert out["logits"].dtype == tf.float16 and models["mixed_float16"].predictions.bias.dtype == "float32"
    assert out["loss"].dtype == out["updates"].dtype == out["ponder_cost"].dtype == tf.float32
    np.testing.assert_allclose(out["logits"].numpy(), full["logits"].numpy(), rtol=0, atol=2e-2)  # float16
    assert abs(float(out["loss"]) - float(full["loss"])) < 1e-2


@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed")
def test_raising_the_ponder_penalty_lowers_mean_updates():
    ids, labels = synthetic_task()
    means = []
    for penalty in (0.0, 0.5):
        keras.utils.set_random_seed(0)
        model = tfm.TFAlbertActForSequenceClassification(config(ponder_penalty=penalty, num_hidden_layers=8))
        model.build()
        model.albert.encoder.albert_layer.act.dense.bias.assign([-2.0])  # start with tokens pondering a few steps
        model.compile(optimizer=keras.optimizers.AdamW(3e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(dataset(ids, labels), epochs=10, verbose=0)  # 40 steps, as the PyTorch test
        means.append(float(tf.reduce_mean(model({"input_ids": ids})["updates"])))
    assert means[1] < means[0] - 0.5, means


def test_readme_heads_section_runs_the_keras_example(tmp_path, monkeypatch):
    from test_readme import python_blocks, section

    monkeypatch.chdir(tmp_path)
    text = section("heads")
    assert "add_loss" in text
    blocks = [block for block in python_blocks(text) if "import keras" in block]
    assert len(blocks) == 1  # self-contained: it runs without the PyTorch blocks of the section
    assert "TFAlbertActForSequenceClassification" in blocks[0] and ".fit(" in blocks[0]
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(blocks[0], "README.md#heads", "exec"), namespace)  # noqa: S102
    tf_out = namespace["tf_out"]
    assert tuple(tf_out["logits"].shape) == (4, 2) and "loss" in tf_out
    # the fine-tuned Keras head loads in PyTorch and computes the same logits
    model = pt.AlbertActForSequenceClassification.from_pretrained(tmp_path / "finetuned-keras").eval()
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(namespace["ids"][:4].astype("int64"))).logits.numpy()
    np.testing.assert_allclose(logits, tf_out["logits"].numpy(), rtol=0, atol=ATOL)
