"""`export(..., format="tf_saved_model")` of the encoder and of every head: a dynamic batch and sequence length, int32
inputs whatever built the model (`fit`, a call, `predict`, `from_pretrained`), served == eager == `predict`."""

import numpy as np
import pytest

import cases
import oracle
from act import AlbertActConfig

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.usefixtures("short_training_schedule")  # conftest.py: three training phases
keras = pytest.importorskip("keras")
import act.tf as tf_models  # noqa: E402
from act.tf import TFAlbertActModel  # noqa: E402

KEYS = ("last_hidden_state", "pooler_output", "updates", "remainders", "ponder_cost")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    config = AlbertActConfig(**cases.tiny_config_kwargs())
    tf.keras.utils.set_random_seed(0)  # the random initial weights decide the halting spread the test needs
    model = TFAlbertActModel(config)
    model.build()
    state = cases.apply_regime(model.canonical_state_dict(), "mixed", seed=3)
    model.load_canonical_state_dict(state)
    path = tmp_path_factory.mktemp("export") / "albert_act"
    model.export(str(path), format="tf_saved_model", verbose=False)
    return config, state, model, tf.saved_model.load(str(path))


def test_signature_has_dynamic_batch_and_length(exported):
    _, _, _, served = exported
    _, specs = served.signatures["serving_default"].structured_input_signature
    assert set(specs) == {"input_ids", "attention_mask", "token_type_ids"}
    for spec in specs.values():
        assert spec.shape.as_list() == [None, None] and spec.dtype == tf.int32


@pytest.mark.parametrize("batch,length", [(3, 7), (2, 19)])
def test_served_equals_eager_at_two_lengths(exported, batch, length):
    config, state, model, served = exported
    ids, mask, types = cases.make_inputs(length, batch=batch, length=length, padding="allpad")
    inputs = {"input_ids": ids.astype("int32"), "attention_mask": mask.astype("int32"),
              "token_type_ids": types.astype("int32")}
    eager = model(inputs)
    for out in (served.serve(inputs),
                served.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})):
        assert set(out) == set(KEYS)
        assert out["last_hidden_state"].shape == (batch, length, config.hidden_size)
        np.testing.assert_array_equal(out["updates"].numpy(), eager["updates"].numpy())
        for key in KEYS:
            np.testing.assert_allclose(out[key].numpy(), eager[key].numpy(), rtol=0, atol=1e-5, err_msg=key)
    # and the eager model is right (the oracle referees it)
    reference = oracle.forward(config, state, ids, mask, types)
    assert np.array_equal(eager["updates"].numpy(), reference["updates"])
    assert len(np.unique(reference["updates"][mask.astype(bool)])) > 1


def test_export_into_an_existing_directory_keeps_other_files_and_a_failed_export_keeps_the_old_one(exported,
                                                                                                  tmp_path):
    """Nothing lost: the SavedModel is written aside and put in place as a whole; in an existing directory only its
    own entries are replaced (a user's file stays), and an export that fails leaves the previous SavedModel."""
    config, _, model, _ = exported
    path = tmp_path / "served"
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    model.export(str(path), format="tf_saved_model", verbose=False)
    first = (path / "saved_model.pb").read_bytes()
    with pytest.raises(Exception):  # a signature Keras cannot trace: the export fails after staging began
        model.export(str(path), format="tf_saved_model", verbose=False,
                     input_signature=[{"input_ids": tf.TensorSpec((None, None, None, None), tf.float32)}])
    assert (path / "saved_model.pb").read_bytes() == first and (path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]  # no staging or lock left behind
    assert not any(p.name.startswith(".act") for p in path.iterdir())
    model.export(str(path), format="tf_saved_model", verbose=False)  # replacing works, the user's file stays
    assert (path / "notes.txt").read_text() == "mine"
    served = tf.saved_model.load(str(path))
    ids, mask, types = cases.make_inputs(5, batch=2, length=6)
    inputs = {"input_ids": ids.astype("int32"), "attention_mask": mask.astype("int32"),
              "token_type_ids": types.astype("int32")}
    np.testing.assert_array_equal(served.serve(inputs)["updates"].numpy(), model(inputs)["updates"].numpy())


# ---------------------------------------------------------------------------------------------------------------
# Export whatever built the model: `fit`, a call, `predict`, `from_pretrained` (Keras builds a subclassed model
# from float placeholders unless told otherwise); the served signature gives what `predict` gives.
# ---------------------------------------------------------------------------------------------------------------

HEADS = ["TFAlbertActForPreTraining", "TFAlbertActForMaskedLM", "TFAlbertActForSequenceClassification",
         "TFAlbertActForTokenClassification", "TFAlbertActForQuestionAnswering", "TFAlbertActForMultipleChoice"]


def head_batch(name, seed=0):
    """Int32 inputs with ragged padding, (4, 10); multiple choice (2, 2, 10)."""
    ids, mask, types = cases.make_inputs(seed, batch=4, length=10)
    x = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if name == "TFAlbertActForMultipleChoice":
        x = {key: value.reshape(2, 2, 10) for key, value in x.items()}
    return {key: value.astype("int32") for key, value in x.items()}


def head_targets(name, x):
    """(targets, compiled loss) of one `fit` step: the Keras losses see the prediction outputs."""
    scce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(1)
    batch, length = x["input_ids"].shape[0], x["input_ids"].shape[-1]
    if name == "TFAlbertActForPreTraining":
        return {"prediction_logits": x["input_ids"], "sop_logits": np.array([0, 1, 1, 0])}, \
            {"prediction_logits": scce, "sop_logits": scce}
    if name == "TFAlbertActForQuestionAnswering":
        return {"start_logits": rng.integers(0, length, batch), "end_logits": rng.integers(0, length, batch)}, \
            {"start_logits": scce, "end_logits": scce}
    if name == "TFAlbertActForMaskedLM":
        return x["input_ids"], scce
    if name == "TFAlbertActForTokenClassification":
        return rng.integers(0, 2, (batch, length)), scce
    return rng.integers(0, 2, batch), scce  # sequence classification (2 labels), multiple choice (2 choices)


def with_mixed_halting(model):
    """Tokens that halt at different depths (the random initial weights halt every token at the same step)."""
    prefix = "" if isinstance(model, TFAlbertActModel) else "albert."
    model.load_canonical_state_dict(cases.apply_regime(model.canonical_state_dict(), "mixed", seed=5, prefix=prefix))


def assert_serves_what_predict_gives(model, x, path):
    model.export(str(path), verbose=False)
    served = tf.saved_model.load(str(path))
    signature = served.signatures["serving_default"]
    _, specs = signature.structured_input_signature
    assert {name: (spec.dtype, spec.shape.rank) for name, spec in specs.items()} == {
        name: (tf.int32, model.input_rank) for name in ("input_ids", "attention_mask", "token_type_ids")}
    out = signature(**{name: tf.constant(value) for name, value in x.items()})
    predicted = model.predict(x, batch_size=len(x["input_ids"]), verbose=0)
    assert set(out) == set(predicted)
    np.testing.assert_array_equal(out["updates"].numpy(), predicted["updates"])
    token = x["attention_mask"].astype(bool)
    assert len(np.unique(predicted["updates"][token])) > 1  # the comparison covers tokens halting at different depths
    for key, value in predicted.items():
        np.testing.assert_allclose(out[key].numpy(), value, rtol=0, atol=1e-5, err_msg=key)


@pytest.mark.filterwarnings("ignore:`shuffle=True` was passed")
@pytest.mark.parametrize("name", HEADS)
def test_every_head_exports_after_fit(name, tmp_path):
    config = AlbertActConfig(**cases.tiny_config_kwargs(num_labels=2, ponder_penalty=1e-3))
    keras.utils.set_random_seed(0)
    model = getattr(tf_models, name)(config)  # built by nothing but `fit`
    x = head_batch(name)
    y, loss = head_targets(name, x)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss)
    history = model.fit(x, y, batch_size=len(x["input_ids"]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    with_mixed_halting(model)
    assert_serves_what_predict_gives(model, x, tmp_path / "served")


@pytest.mark.parametrize("route", ["call", "predict", "from_pretrained"])
def test_the_encoder_exports_after_a_call_predict_or_from_pretrained(route, tmp_path):
    config = AlbertActConfig(**cases.tiny_config_kwargs())
    keras.utils.set_random_seed(0)
    x = head_batch("TFAlbertActModel", seed=2)
    if route == "from_pretrained":
        TFAlbertActModel(config).save_pretrained(tmp_path / "pretrained")
        model = TFAlbertActModel.from_pretrained(tmp_path / "pretrained")
    else:
        model = TFAlbertActModel(config)
        if route == "call":
            model(x)
        else:
            model.predict(x, verbose=0)
    with_mixed_halting(model)
    assert_serves_what_predict_gives(model, x, tmp_path / "served")


def test_saved_model_save_has_an_integer_serving_default(tmp_path):
    """`tf.saved_model.save(model)` (no signature given) serves int32 inputs of any batch and length, also for a
    model that was built by a call; the nested encoder of a head gets no signature of its own."""
    config = AlbertActConfig(**cases.tiny_config_kwargs(num_labels=3))
    model = tf_models.TFAlbertActForSequenceClassification(config)
    x = head_batch("TFAlbertActForSequenceClassification")
    expected = model(x)
    assert model._default_save_signature is not None and model.albert._default_save_signature is None
    tf.saved_model.save(model, str(tmp_path / "saved"))
    signature = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    _, specs = signature.structured_input_signature
    assert all(spec.dtype == tf.int32 and spec.shape.as_list() == [None, None] for spec in specs.values())
    out = signature(**{name: tf.constant(value[:2, :6]) for name, value in x.items()})
    np.testing.assert_array_equal(out["updates"].numpy(), model({k: v[:2, :6] for k, v in x.items()})["updates"])
    np.testing.assert_allclose(signature(**{name: tf.constant(value) for name, value in x.items()})["logits"],
                               expected["logits"], rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# TensorFlow Lite: static shapes, the dense loop, builtin operators only (act.tf.lite)
# ---------------------------------------------------------------------------------------------------------------


def tflite_runner(path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "tf.lite.Interpreter is deprecated": the LiteRT interpreter has the same API
        interpreter = tf.lite.Interpreter(model_path=str(path))
    return interpreter, interpreter.get_signature_runner()


@pytest.mark.parametrize("name", ["TFAlbertActModel", "TFAlbertActForTokenClassification",
                                  "TFAlbertActForMultipleChoice"])
def test_tflite_interpreter_gives_the_counts_and_states_of_keras(name, tmp_path):
    config = AlbertActConfig(**cases.tiny_config_kwargs(num_labels=3))
    keras.utils.set_random_seed(1)
    model = getattr(tf_models, name)(config)
    model.build()
    with_mixed_halting(model)
    assert model.config.act_fast_path  # the converted graph uses the dense loop all the same
    ids, mask, types = cases.make_inputs(11, batch=4, length=12, padding="allpad")  # ragged, one all-padding row
    x = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    choices = None
    if name == "TFAlbertActForMultipleChoice":
        x, choices = {key: value.reshape(2, 2, 12) for key, value in x.items()}, 2
    x = {key: value.astype("int32") for key, value in x.items()}
    path = model.export_tflite(tmp_path / "model.tflite", batch_size=len(x["input_ids"]), sequence_length=12,
                               num_choices=choices)
    assert model.config.act_fast_path  # restored
    interpreter, runner = tflite_runner(path)
    operators = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "WHILE" in operators and not any(op.startswith("Flex") or op == "CUSTOM" for op in operators), operators
    out, expected = runner(**x), model(x)
    assert set(out) == {key for key, value in expected.items() if value is not None}
    np.testing.assert_array_equal(out["updates"], expected["updates"].numpy())
    token = x["attention_mask"].astype(bool)
    assert len(np.unique(out["updates"][token])) > 1 and not out["updates"][~token].any()
    for key in out:
        np.testing.assert_allclose(out[key], expected[key].numpy(), rtol=0, atol=1e-5, err_msg=key)
    if name == "TFAlbertActModel":  # and the oracle referees the counts
        state = model.canonical_state_dict()
        reference = oracle.forward(config, state, ids, mask, types)
        np.testing.assert_array_equal(out["updates"], reference["updates"])


def test_tflite_bad_rows_come_out_nan_and_other_shapes_are_refused(tmp_path):
    config = AlbertActConfig(**cases.tiny_config_kwargs(num_labels=2))
    keras.utils.set_random_seed(2)
    model = tf_models.TFAlbertActForSequenceClassification(config)
    _, runner = tflite_runner(model.export_tflite(tmp_path / "clf.tflite", batch_size=2, sequence_length=8))
    ids, mask, types = (value.astype("int32") for value in cases.make_inputs(3, batch=2, length=8))
    good = runner(input_ids=ids, attention_mask=mask, token_type_ids=types)
    bad_ids = ids.copy()
    bad_ids[1, 0] = config.vocab_size  # no such token: the converter dropped the assertions, the row is NaN
    bad = runner(input_ids=bad_ids, attention_mask=mask, token_type_ids=types)
    assert np.isnan(bad["logits"][1]).all() and np.isnan(bad["updates"][1]).all() and np.isnan(bad["ponder_cost"])
    np.testing.assert_array_equal(bad["updates"][0], good["updates"][0])
    np.testing.assert_allclose(bad["logits"][0], good["logits"][0], rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError):  # static shapes: the interpreter refuses another batch or length
        runner(input_ids=ids[:, :6], attention_mask=mask[:, :6], token_type_ids=types[:, :6])


def test_export_tflite_arguments_and_atomic_write(tmp_path, monkeypatch):
    config = AlbertActConfig(**cases.tiny_config_kwargs())
    model = TFAlbertActModel(config)
    with pytest.raises(ValueError, match="longer than max_position_embeddings=64"):
        model.export_tflite(tmp_path / "x.tflite", sequence_length=65)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        model.export_tflite(tmp_path / "x.tflite", batch_size=0, sequence_length=8)
    with pytest.raises(ValueError, match="num_choices is for multiple choice"):
        model.export_tflite(tmp_path / "x.tflite", sequence_length=8, num_choices=2)
    with pytest.raises(ValueError, match="pass num_choices"):
        tf_models.TFAlbertActForMultipleChoice(config).export_tflite(tmp_path / "x.tflite", sequence_length=8)
    with pytest.raises(TypeError, match="converts the ALBERT-ACT Keras models"):
        from act.tf.lite import export_tflite

        export_tflite(keras.Sequential([keras.layers.Dense(2)]), tmp_path / "x.tflite")
    target = tmp_path / "model.tflite"
    target.write_bytes(b"the previous model")

    def fail(self):
        raise RuntimeError("conversion failed")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "convert", fail)
    with pytest.raises(RuntimeError, match="conversion failed"):
        model.export_tflite(target, sequence_length=8)
    assert target.read_bytes() == b"the previous model" and sorted(tmp_path.iterdir()) == [target]


def test_export_tflite_write_is_atomic(tmp_path, monkeypatch):
    """A write that fails after the bytes went out (here: fsync, as on a full disk) leaves the previous file whole
    and no partial file behind; the test above fails the conversion before anything is written, so it cannot tell
    an atomic writer from one that writes into the target."""
    import os

    from act.tf import lite

    model = TFAlbertActModel(AlbertActConfig(**cases.tiny_config_kwargs()))
    target = tmp_path / "model.tflite"
    target.write_bytes(b"the previous model")
    monkeypatch.setattr(lite, "convert", lambda *args, **kwargs: b"the new model")

    def fail(fd):
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", fail)
        with pytest.raises(OSError, match="No space left"):
            model.export_tflite(target, sequence_length=8)
    assert target.read_bytes() == b"the previous model" and sorted(tmp_path.iterdir()) == [target]
    assert model.export_tflite(target, sequence_length=8) == target
    assert target.read_bytes() == b"the new model" and sorted(tmp_path.iterdir()) == [target]


def test_keras_file_save_is_atomic(tmp_path, monkeypatch):
    """`model.save("x.keras")` writes aside and puts the file in place whole: a save that fails after Keras opened
    its output (here while it writes the weights) leaves the previous file, and nothing else behind."""
    from keras.src.saving import saving_lib

    model = TFAlbertActModel(AlbertActConfig(**cases.tiny_config_kwargs()))
    model.build()
    target = tmp_path / "model.keras"
    target.write_bytes(b"the previous model")

    def fail(*args, **kwargs):
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(saving_lib, "_save_state", fail)
        with pytest.raises(OSError, match="No space left"):
            model.save(target)
    assert target.read_bytes() == b"the previous model" and sorted(tmp_path.iterdir()) == [target]
    model.save(target)
    assert sorted(tmp_path.iterdir()) == [target]
    reloaded = keras.models.load_model(target)
    ids, mask, types = cases.make_inputs(3, batch=2, length=6)
    inputs = {"input_ids": ids.astype("int32"), "attention_mask": mask.astype("int32"),
              "token_type_ids": types.astype("int32")}
    np.testing.assert_array_equal(reloaded(inputs)["updates"].numpy(), model(inputs)["updates"].numpy())
