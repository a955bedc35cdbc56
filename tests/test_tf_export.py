"""`TFAlbertActModel.export(..., format="tf_saved_model")`: dynamic sequence length, served == eager."""

import numpy as np
import pytest

import cases
import oracle
from act import AlbertActConfig

tf = pytest.importorskip("tensorflow")
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
