"""Bad input in every execution mode: a clear error, or (where nothing can raise) NaN in the affected rows, never a
plausible answer (ARCHITECTURE.md, "Errors at the edge"; the rules are `act.inputs`).

Eagerly both frameworks raise a `ValueError`; a `tf.function` raises an `InvalidArgumentError` from a graph
assertion and torch.compile / torch.export a `RuntimeError` from `torch._assert_async`; under XLA and in ONNX (which
strip assertions) the rows with a bad value come out NaN while the other rows keep their result. Padding never
influences real tokens, even when it holds NaN.
"""

import numpy as np
import pytest
import torch

import cases
from act import AlbertActConfig, AlbertActForMultipleChoice, AlbertActForSequenceClassification

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.usefixtures("short_training_schedule")  # conftest.py: three training phases
keras = pytest.importorskip("keras")
import act.pt as pt  # noqa: E402
import act.tf as tfm  # noqa: E402

HEADS = ["AlbertActModel", "AlbertActForPreTraining", "AlbertActForMaskedLM", "AlbertActForSequenceClassification",
         "AlbertActForTokenClassification", "AlbertActForQuestionAnswering", "AlbertActForMultipleChoice"]
BAD_ROW = 1


@pytest.fixture(scope="module")
def models():
    """A mixed-regime encoder in both frameworks with the same weights, and the compiled Keras functions."""
    config, pt_model, state = cases.build_pt_model("mixed", seed=2)
    model = tfm.TFAlbertActModel(config)
    model.build()
    model.load_canonical_state_dict(state)
    # one function per mode, reused by the tests (a tf.function traces once per input structure and dtypes)
    functions = {"graph": tf.function(model), "xla": tf.function(model, jit_compile=True)}
    return config, pt_model, model, functions


def good_batch():
    """(3, 8) inputs in the widest dtypes a user may pass: int64 ids / types / positions, a float32 mask."""
    ids, mask, types = cases.make_inputs(4, batch=3, length=8, padding="ragged")
    positions = np.tile(np.arange(8), (3, 1))
    return {"input_ids": ids, "attention_mask": mask.astype("float32"), "token_type_ids": types,
            "position_ids": positions}


# (input, value put at row BAD_ROW position 0, the eager message, the graph assertion's message)
BAD = [
    ("input_ids", -1, r"token id -1 in input_ids is out of range \[0, vocab_size=120\)", r"input_ids must lie in"),
    ("input_ids", 120, r"token id 120 in input_ids is out of range", r"input_ids must lie in \[0, 120\)"),
    ("input_ids", 2**32 + 1, r"token id 4294967297 ", r"input_ids must lie in \[0, 120\)"),  # no int32 truncation
    ("attention_mask", 2.0, r"attention_mask must hold only 0 \(padding\) and 1", r"attention_mask must hold only"),
    ("attention_mask", 0.5, r"attention_mask must hold only 0 \(padding\) and 1", r"attention_mask must hold only"),
    ("attention_mask", -1.0, r"attention_mask must hold only 0 \(padding\) and 1", r"attention_mask must hold only"),
    ("token_type_ids", 2, r"token_type_ids must lie in \[0, 2\), got values in \[0, 2\]", r"token_type_ids must lie"),
    ("position_ids", 64, r"position_ids must lie in \[0, 64\)", r"position_ids must lie in \[0, 64\)"),
]
IDS = [f"{name}={value}" for name, value, *_ in BAD]


def bad_batch(name, value):
    batch = good_batch()
    batch[name] = batch[name].copy()
    batch[name][BAD_ROW, 0] = value
    return batch


def torch_inputs(batch):
    return {name: torch.from_numpy(value) for name, value in batch.items()}


@pytest.mark.parametrize("name, value, eager_message, graph_message", BAD, ids=IDS)
def test_eager_both_frameworks_raise_a_value_error(models, name, value, eager_message, graph_message):
    config, pt_model, model, _ = models
    batch = bad_batch(name, value)
    with pytest.raises(ValueError, match=eager_message):
        model(batch)
    with pytest.raises(ValueError, match=eager_message), torch.no_grad():
        pt_model(**torch_inputs(batch))


@pytest.mark.parametrize("name, value, eager_message, graph_message", BAD, ids=IDS)
def test_tf_function_raises_from_a_graph_assertion(models, name, value, eager_message, graph_message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=graph_message):
        models[3]["graph"](bad_batch(name, value))


def assert_rows(out, good, bad_row=BAD_ROW, keys=("last_hidden_state", "pooler_output", "updates", "remainders")):
    """Row `bad_row` is NaN everywhere (and so the ponder cost); the other rows are those of the good batch."""
    keep = np.arange(len(good["updates"])) != bad_row
    for key in keys:
        value = np.asarray(out[key])
        assert np.isnan(value[bad_row]).all(), key
        np.testing.assert_allclose(value[keep], np.asarray(good[key])[keep], rtol=0, atol=1e-5, err_msg=key)
    np.testing.assert_array_equal(np.asarray(out["updates"])[keep], np.asarray(good["updates"])[keep])
    assert np.isnan(float(out["ponder_cost"]))


@pytest.mark.parametrize("name, value, eager_message, graph_message", BAD, ids=IDS)
def test_xla_marks_the_bad_row_nan(models, name, value, eager_message, graph_message):
    config, pt_model, model, functions = models
    good = model(good_batch())
    assert_rows(functions["xla"](bad_batch(name, value)), good)


def test_good_int64_inputs_agree_in_every_mode(models):
    config, pt_model, model, functions = models
    eager = model(good_batch())
    with torch.no_grad():
        pt_out = pt_model(**torch_inputs(good_batch()))
    for out in (functions["graph"](good_batch()), functions["xla"](good_batch()), pt_out):
        np.testing.assert_array_equal(np.asarray(out["updates"]), eager["updates"].numpy())
        np.testing.assert_allclose(np.asarray(out["last_hidden_state"]), eager["last_hidden_state"].numpy(), rtol=0,
                                   atol=1e-5)
    assert np.isfinite(eager["ponder_cost"].numpy())


def test_torch_compile_raises_on_bad_values():
    """Under torch.compile the value checks are assertions of the graph (torch._assert_async): a bad value raises a
    RuntimeError that names the input, and good inputs still give the eager counts."""
    config, pt_model, state = cases.build_pt_model("mixed", seed=2, num_hidden_layers=2)
    compiled = torch.compile(pt_model, backend="eager")
    batch = good_batch()
    with torch.no_grad():
        good = pt_model(**torch_inputs(batch))
        out = compiled(**torch_inputs(batch))
        np.testing.assert_array_equal(out.updates.numpy(), good.updates.numpy())
        for name, value in (("input_ids", -1), ("attention_mask", 2.0)):
            with pytest.raises(RuntimeError, match=name):
                compiled(**torch_inputs(bad_batch(name, value)))
        out = compiled(**torch_inputs(batch))  # the compiled model still answers good input afterwards
        np.testing.assert_array_equal(out.updates.numpy(), good.updates.numpy())


# ---------------------------------------------------------------------------------------------------------------
# Lengths and empty inputs with a dynamic signature (static shapes raise a ValueError in every mode)
# ---------------------------------------------------------------------------------------------------------------


def ones(batch, length):
    return {"input_ids": tf.ones((batch, length), tf.int32), "attention_mask": tf.ones((batch, length), tf.int32),
            "token_type_ids": tf.zeros((batch, length), tf.int32)}


def test_dynamic_length_beyond_the_positions(models):
    config, pt_model, model, _ = models
    signature = model.serving_input_signature()
    with pytest.raises(tf.errors.InvalidArgumentError, match="sequence length must be at most "
                                                             "max_position_embeddings=64"):
        tf.function(model, input_signature=signature)(ones(2, 70))
    out = tf.function(model, jit_compile=True, input_signature=signature)(ones(2, 70))
    for key in ("last_hidden_state", "pooler_output", "updates", "remainders", "ponder_cost"):
        assert np.isnan(out[key].numpy()).all(), key
    with pytest.raises(ValueError, match="sequence length 70 is longer than max_position_embeddings=64"):
        tf.function(model, jit_compile=True)(ones(2, 70))  # a static length is checked when traced


def test_dynamic_empty_batch(models):
    config, pt_model, model, _ = models
    signature = model.serving_input_signature()
    for batch, length in ((0, 5), (2, 0)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="the inputs are empty"):
            tf.function(model, input_signature=signature)(ones(batch, length))
    # under XLA (no assertions) an empty batch gives empty outputs and a ponder cost of 0
    out = tf.function(model, jit_compile=True, input_signature=signature)(ones(0, 5))
    assert out["updates"].shape == (0, 5) and out["pooler_output"].shape == (0, config.hidden_size)
    assert float(out["ponder_cost"]) == 0.0


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("shape", [(0, 5), (2, 0)], ids=["no-sequence", "no-token"])
def test_empty_inputs_are_a_value_error_in_every_head(name, shape):
    config = AlbertActConfig(**cases.tiny_config_kwargs())
    if name == "AlbertActForMultipleChoice":
        shape = (shape[0], 2, shape[1])
    ids = np.zeros(shape, "int64")
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"the inputs are empty \(shape \((0, \d+|\d+, 0)\)\)"), torch.no_grad():
        getattr(pt, name)(config).eval()(input_ids=torch.from_numpy(ids))
    with pytest.raises(ValueError, match=r"the inputs are empty \(shape \((0, \d+|\d+, 0)\)\)"):
        getattr(tfm, "TF" + name)(config)({"input_ids": ids})


def test_multiple_choice_without_choices_is_empty():
    config = AlbertActConfig(**cases.tiny_config_kwargs())
    ids = np.zeros((2, 0, 5), "int64")
    with pytest.raises(ValueError, match="the inputs are empty"), torch.no_grad():
        AlbertActForMultipleChoice(config).eval()(input_ids=torch.from_numpy(ids))
    with pytest.raises(ValueError, match="the inputs are empty"):
        tfm.TFAlbertActForMultipleChoice(config)({"input_ids": ids})


# ---------------------------------------------------------------------------------------------------------------
# inputs_embeds: non-finite values at tokens are an error; at padding they change nothing
# ---------------------------------------------------------------------------------------------------------------


def embeds_batch(models):
    config, pt_model, model, _ = models
    ids, mask, _ = cases.make_inputs(6, batch=3, length=8, padding="ragged")
    assert mask[BAD_ROW].min() == 0  # the row has padding
    with torch.no_grad():
        embeds = pt_model.embeddings.word_embeddings(torch.from_numpy(ids)).numpy()
    return embeds, mask


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_inputs_embeds(models, value):
    config, pt_model, model, functions = models
    embeds, mask = embeds_batch(models)
    at_token, at_padding = embeds.copy(), embeds.copy()
    at_token[BAD_ROW, 0, 3] = value
    at_padding[BAD_ROW, -1, :] = value
    message = r"inputs_embeds must be finite \(no NaN or inf\) at token positions"
    with pytest.raises(ValueError, match=message), torch.no_grad():
        pt_model(inputs_embeds=torch.from_numpy(at_token), attention_mask=torch.from_numpy(mask))
    with pytest.raises(ValueError, match=message):
        model({"inputs_embeds": at_token, "attention_mask": mask})
    graph, xla = functions["graph"], functions["xla"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        graph({"inputs_embeds": at_token, "attention_mask": mask})
    good = model({"inputs_embeds": embeds, "attention_mask": mask})
    assert_rows(xla({"inputs_embeds": at_token, "attention_mask": mask}), good)

    # Padding never influences real tokens: the same results as with finite padding, in every mode.
    with torch.no_grad():
        pt_good = pt_model(inputs_embeds=torch.from_numpy(embeds), attention_mask=torch.from_numpy(mask))
        pt_padded = pt_model(inputs_embeds=torch.from_numpy(at_padding), attention_mask=torch.from_numpy(mask))
    real = mask.astype(bool)
    runs = [(pt_padded, pt_good)] + [(function({"inputs_embeds": at_padding, "attention_mask": mask}), good)
                                     for function in (model, graph, xla)]
    for out, reference in runs:
        np.testing.assert_array_equal(np.asarray(out["updates"]), np.asarray(reference["updates"]))
        np.testing.assert_allclose(np.asarray(out["last_hidden_state"])[real],
                                   np.asarray(reference["last_hidden_state"])[real], rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.asarray(out["pooler_output"]), np.asarray(reference["pooler_output"]),
                                   rtol=0, atol=1e-6)
        assert np.isfinite(np.asarray(out["last_hidden_state"])).all() and np.isfinite(float(out["ponder_cost"]))


# ---------------------------------------------------------------------------------------------------------------
# Heads: the bad row reaches every head's predictions and loss under XLA; labels out of range
# ---------------------------------------------------------------------------------------------------------------


def head_model(name, **overrides):
    config = AlbertActConfig(**cases.tiny_config_kwargs(**overrides))
    keras.utils.set_random_seed(0)
    model = getattr(tfm, "TF" + name)(config)
    model.build()
    return model


@pytest.mark.parametrize("name, predictions", [  # sequence classification: see the compiled predict / fit test
    ("AlbertActForQuestionAnswering", ("start_logits", "end_logits")),
    ("AlbertActForMultipleChoice", ("logits",)),
])
def test_xla_heads_mark_the_bad_row_nan(name, predictions):
    model = head_model(name)
    batch = {"input_ids": good_batch()["input_ids"]}
    labels = {"start_positions": np.array([1, 2, 3]), "end_positions": np.array([2, 2, 4])} \
        if name == "AlbertActForQuestionAnswering" else {"labels": np.array([0, 1, 1])}
    if name == "AlbertActForMultipleChoice":  # (1, 3 choices, 8): the bad (example, choice) row is choice 1
        batch = {"input_ids": batch["input_ids"][None]}
        labels = {"labels": np.array([2])}
    good = model(batch, **labels)
    bad = {"input_ids": batch["input_ids"].copy()}
    bad["input_ids"][..., BAD_ROW, 0] = 500
    out = tf.function(lambda x: model(x, **labels), jit_compile=True)(bad)
    assert np.isnan(out["loss"].numpy()) and np.isfinite(good["loss"].numpy())
    for key in predictions:
        value, reference = out[key].numpy(), good[key].numpy()
        if name == "AlbertActForMultipleChoice":
            value, reference = value[0], reference[0]
        assert np.isnan(value[BAD_ROW]).all(), key
        keep = np.arange(len(value)) != BAD_ROW
        np.testing.assert_allclose(value[keep], reference[keep], rtol=0, atol=1e-5, err_msg=key)


@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed")
def test_compiled_predict_and_fit_under_xla_never_give_a_plausible_number():
    model = head_model("AlbertActForSequenceClassification", classifier_dropout_prob=0.0)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    ids = good_batch()["input_ids"]
    bad = ids.copy()
    bad[BAD_ROW, 0] = 120
    good_logits = model.predict({"input_ids": ids}, verbose=0)["logits"]
    logits = model.predict({"input_ids": bad}, verbose=0)["logits"]
    assert np.isnan(logits[BAD_ROW]).all()
    np.testing.assert_allclose(np.delete(logits, BAD_ROW, 0), np.delete(good_logits, BAD_ROW, 0), rtol=0, atol=1e-5)
    history = model.fit({"input_ids": bad}, np.array([0, 1, 1]), epochs=1, verbose=0).history
    assert np.isnan(history["loss"][0])


LABEL_CASES = [
    ("AlbertActForSequenceClassification", {"labels": [0, 2, 1]}),
    ("AlbertActForTokenClassification", {"labels": np.full((3, 8), 7)}),
    ("AlbertActForMaskedLM", {"labels": np.full((3, 8), 120)}),
    ("AlbertActForPreTraining", {"sentence_order_label": [0, 1, -3]}),
    ("AlbertActForMultipleChoice", {"labels": [3]}),
]


@pytest.mark.parametrize("name, labels", LABEL_CASES, ids=[name for name, _ in LABEL_CASES])
def test_labels_out_of_range(name, labels):
    """A clear error eagerly (both frameworks) and in a tf.function; a NaN loss under XLA."""
    ids = good_batch()["input_ids"]
    if name == "AlbertActForMultipleChoice":
        ids = ids[None]
    labels = {key: np.asarray(value) for key, value in labels.items()}
    model = head_model(name)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, \d+\) or be -100 \(ignored\)"):
        model({"input_ids": ids}, **labels)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must lie in \[0, \d+\)"):
        tf.function(lambda x: model(x, **labels))({"input_ids": ids})
    if name in ("AlbertActForSequenceClassification", "AlbertActForMaskedLM"):  # one shared `cross_entropy`
        loss = tf.function(lambda x: model(x, **labels), jit_compile=True)({"input_ids": ids})["loss"]
        assert np.isnan(loss.numpy())
    torch.manual_seed(0)
    pt_model = getattr(pt, name)(model.config).eval()
    with pytest.raises((IndexError, RuntimeError), match="out of bounds"), torch.no_grad():
        pt_model(input_ids=torch.from_numpy(ids), **{k: torch.from_numpy(v) for k, v in labels.items()})


def test_int64_labels_are_not_truncated():
    model = head_model("AlbertActForSequenceClassification")
    ids = good_batch()["input_ids"]
    labels = np.array([0, 2**32 + 1, 1])  # int32 truncation would read label 1
    with pytest.raises(ValueError, match=r"got \[4294967297\]"):
        model({"input_ids": ids}, labels=labels)
    with pytest.raises(IndexError, match="out of bounds"), torch.no_grad():
        AlbertActForSequenceClassification(model.config).eval()(input_ids=torch.from_numpy(ids),
                                                                labels=torch.from_numpy(labels))
