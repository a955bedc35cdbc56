"""The compute knob: the halting epsilon raised and the iteration cap lowered at inference, per call
(``model(..., act_epsilon=0.3, max_iterations=3)``) or per model (``config.act_epsilon`` / ``config.num_hidden_layers``
set on a loaded model), in both frameworks and both loops, refereed by the float64 oracle run with that config; and
the validation of both values (a `ValueError` naming the argument).
"""

import math

import numpy as np
import pytest
import torch

import cases
import oracle
from act import AlbertActConfig, AlbertActForMaskedLM

build = cases.build_pt_model


def pt_inputs(ids, mask, types):
    return dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.from_numpy(types))


def tf_inputs(ids, mask, types):
    return {"input_ids": ids.astype("int32"), "attention_mask": mask.astype("int32"),
            "token_type_ids": types.astype("int32")}


def reference_for(config, state, ids, mask, types, **knob):
    """The oracle with the knob written into its config (the oracle knows nothing of per-call overrides)."""
    values = config.to_dict()
    values["act_epsilon"] = knob.get("act_epsilon", config.act_epsilon)
    values["num_hidden_layers"] = knob.get("max_iterations", config.num_hidden_layers)
    reference = oracle.forward(values, state, ids, mask, types)
    # counts are compared exactly: no token of these cases decides within float32 rounding of the threshold
    assert np.min(reference["margin"]) > 1e-4
    return reference


KNOBS = [dict(max_iterations=3), dict(max_iterations=1), dict(act_epsilon=0.3), dict(act_epsilon=0.6, max_iterations=4),
         dict(act_epsilon=0.001)]


@pytest.mark.parametrize("knob", KNOBS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_pytorch_per_call_equals_oracle_with_that_config(knob):
    config, model, state = build("mixed", seed=4)
    ids, mask, types = cases.make_inputs(seed=21, batch=4, length=15, padding="ragged")
    reference = reference_for(config, state, ids, mask, types, **knob)
    default = oracle.forward(config, state, ids, mask, types)
    model = model.to(torch.float64)
    cap = knob.get("max_iterations", config.num_hidden_layers)
    valid = mask > 0
    for fast in (True, False):
        model.config.act_fast_path = fast
        with torch.no_grad():
            out = model(**pt_inputs(ids, mask, types), output_hidden_states=True, **knob)
        np.testing.assert_array_equal(out.updates.numpy(), reference["updates"])
        assert out.updates.max() <= cap
        np.testing.assert_allclose(out.last_hidden_state.numpy()[valid], reference["last_hidden_state"][valid],
                                   atol=1e-10, rtol=0)
        np.testing.assert_allclose(out.remainders.numpy(), reference["remainders"], atol=1e-10, rtol=0)
        assert len(out.hidden_states) == cap + 1  # fixed length: the cap in force
    model.config.act_fast_path = True
    # the knob really changes the computation of these cases: fewer updates than the trained setting (or, with a
    # smaller epsilon than trained, not fewer)
    if knob.get("act_epsilon", 1.0) > config.act_epsilon:
        assert reference["updates"].sum() < default["updates"].sum()
    else:
        assert reference["updates"].sum() >= default["updates"].sum()
    # and the model's own setting is untouched
    assert (model.config.act_epsilon, model.config.num_hidden_layers) == (config.act_epsilon, config.num_hidden_layers)


def test_pytorch_per_model_equals_per_call():
    config, model, state = build("mixed", seed=4)
    ids, mask, types = cases.make_inputs(seed=22, batch=3, length=12, padding="ragged")
    with torch.no_grad():
        per_call = model(**pt_inputs(ids, mask, types), act_epsilon=0.4, max_iterations=3)
        model.config.act_epsilon, model.config.num_hidden_layers = 0.4, 3
        per_model = model(**pt_inputs(ids, mask, types))
    np.testing.assert_array_equal(per_call.updates.numpy(), per_model.updates.numpy())
    np.testing.assert_array_equal(per_call.updates.numpy(),
                                  reference_for(config, state, ids, mask, types, act_epsilon=0.4,
                                                max_iterations=3)["updates"])
    np.testing.assert_allclose(per_call.last_hidden_state.numpy(), per_model.last_hidden_state.numpy(), atol=1e-5,
                               rtol=0)


def test_task_models_pass_the_knob_on():
    config = AlbertActConfig(**cases.tiny_config_kwargs())
    torch.manual_seed(0)
    model = AlbertActForMaskedLM(config).eval()
    state = cases.apply_regime({k: v.numpy() for k, v in model.state_dict().items()}, "mixed", seed=2,
                               prefix="albert.")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    ids, mask, types = cases.make_inputs(seed=3, batch=2, length=9)
    with torch.no_grad():
        out = model(**pt_inputs(ids, mask, types), max_iterations=3, act_epsilon=0.2)
        full = model(**pt_inputs(ids, mask, types))
    assert out.updates.max() <= 3 < full.updates.max()
    reference = reference_for(config, {k[len("albert."):]: v for k, v in state.items() if k.startswith("albert.")},
                              ids, mask, types, max_iterations=3, act_epsilon=0.2)
    np.testing.assert_array_equal(out.updates.numpy(), reference["updates"])


BAD = [
    (dict(max_iterations=7), "max_iterations", "only be lowered"),
    (dict(max_iterations=0), "max_iterations", "between 1"),
    (dict(max_iterations=2.5), "max_iterations", "integer"),
    (dict(max_iterations=True), "max_iterations", "integer"),
    (dict(max_iterations="3"), "max_iterations", "integer"),
    (dict(act_epsilon=0.0), "act_epsilon", "between 0 and 1"),
    (dict(act_epsilon=1.0), "act_epsilon", "between 0 and 1"),
    (dict(act_epsilon=-0.1), "act_epsilon", "between 0 and 1"),
    (dict(act_epsilon=math.nan), "act_epsilon", "between 0 and 1"),
    (dict(act_epsilon="0.1"), "act_epsilon", "Python number"),
    (dict(act_epsilon=True), "act_epsilon", "Python number"),
]


@pytest.mark.parametrize("knob, name, words", BAD, ids=[f"{k}" for k, _, _ in BAD])
def test_pytorch_bad_knob_is_a_clear_error(knob, name, words):
    config, model, state = build("mixed")
    ids, mask, types = cases.make_inputs(seed=1, batch=2, length=6)
    for fast in (True, False):
        model.config.act_fast_path = fast
        with torch.no_grad(), pytest.raises(ValueError, match=name) as error:
            model(**pt_inputs(ids, mask, types), **knob)
        assert words in str(error.value)
    with pytest.raises(ValueError, match="max_iterations"):
        model(**pt_inputs(ids, mask, types), max_iterations=torch.tensor(2))  # a tensor is no Python int
    with pytest.raises(ValueError, match="act_epsilon"):
        model(**pt_inputs(ids, mask, types), act_epsilon=torch.tensor(0.1))
    with pytest.raises(TypeError, match="max_iteration"):  # a misspelt knob is no silent no-op, as in Keras
        model(**pt_inputs(ids, mask, types), max_iteration=2)


@pytest.mark.parametrize("name, value", [("act_epsilon", 1.5), ("act_epsilon", 0), ("num_hidden_layers", 2.5),
                                         ("num_hidden_layers", 0)])
def test_pytorch_bad_per_model_value_is_a_clear_error(name, value):
    config, model, state = build("mixed")
    setattr(model.config, name, value)
    ids, mask, types = cases.make_inputs(seed=1, batch=2, length=6)
    with torch.no_grad(), pytest.raises(ValueError, match=f"config.{name}"):
        model(**pt_inputs(ids, mask, types))


def test_pytorch_knob_under_torch_compile():
    """Traced by torch.compile (backend "eager": Dynamo's graph capture without the compiler, to keep the test
    fast): the knob is a Python value at trace time, validated there too."""
    config, model, state = build("mixed", seed=4)
    ids, mask, types = cases.make_inputs(seed=21, batch=4, length=15, padding="ragged")
    compiled = torch.compile(model, backend="eager", dynamic=True)
    with torch.no_grad():
        out = compiled(**pt_inputs(ids, mask, types), max_iterations=3, act_epsilon=0.3)
        with pytest.raises(Exception, match="max_iterations"):
            compiled(**pt_inputs(ids, mask, types), max_iterations=9)
    np.testing.assert_array_equal(out.updates.numpy(), reference_for(config, state, ids, mask, types,
                                                                     max_iterations=3, act_epsilon=0.3)["updates"])


# ---------------------------------------------------------------------------------------------------------------
# Keras: the same keywords on `TFAlbertActModel` and every task model; the cap is a Python int at trace time
# ---------------------------------------------------------------------------------------------------------------


def keras_model(state, **overrides):
    pytest.importorskip("tensorflow")
    from act.tf import TFAlbertActModel

    model = TFAlbertActModel(AlbertActConfig(**cases.tiny_config_kwargs(**overrides)))
    model.build()
    model.load_canonical_state_dict(state)
    return model


@pytest.mark.parametrize("knob", [dict(max_iterations=3), dict(act_epsilon=0.6, max_iterations=4)],
                         ids=["cap3", "eps0.6-cap4"])
def test_keras_per_call_equals_pytorch_and_oracle(knob):
    import tensorflow as tf

    config, pt_model, state = build("mixed", seed=4)
    ids, mask, types = cases.make_inputs(seed=21, batch=4, length=15, padding="ragged")
    reference = reference_for(config, state, ids, mask, types, **knob)
    with torch.no_grad():
        pt_out = pt_model(**pt_inputs(ids, mask, types), **knob)
    cap = knob["max_iterations"]
    for fast in (True, False):
        model = keras_model(state)
        model.config.act_fast_path = fast
        eager = model(tf_inputs(ids, mask, types), **knob)
        xla = tf.function(lambda x: model(x, **knob), jit_compile=True)(tf_inputs(ids, mask, types))
        for out in (eager, xla):
            np.testing.assert_array_equal(out["updates"].numpy(), reference["updates"])
            np.testing.assert_array_equal(out["updates"].numpy(), pt_out.updates.numpy())
            np.testing.assert_allclose(out["last_hidden_state"].numpy(), pt_out.last_hidden_state.numpy(),
                                       atol=1e-5, rtol=0)
    dense = keras_model(state)(tf_inputs(ids, mask, types), output_hidden_states=True, **knob)
    assert len(dense["hidden_states"]) == cap + 1


def test_keras_task_model_passes_the_knob_on():
    pytest.importorskip("tensorflow")
    from act.tf import TFAlbertActForMaskedLM

    config = AlbertActConfig(**cases.tiny_config_kwargs())
    torch.manual_seed(0)
    state = cases.apply_regime({k: v.numpy() for k, v in AlbertActForMaskedLM(config).state_dict().items()}, "mixed",
                               seed=2, prefix="albert.")
    model = TFAlbertActForMaskedLM(config)
    model.build()
    model.load_canonical_state_dict(state)
    ids, mask, types = cases.make_inputs(seed=3, batch=2, length=9)
    full = model(tf_inputs(ids, mask, types))
    out = model(tf_inputs(ids, mask, types), max_iterations=3, act_epsilon=0.2)
    assert float(np.max(out["updates"])) <= 3 < float(np.max(full["updates"]))
    reference = reference_for(config, {k[len("albert."):]: v for k, v in state.items() if k.startswith("albert.")},
                              ids, mask, types, max_iterations=3, act_epsilon=0.2)
    np.testing.assert_array_equal(out["updates"].numpy(), reference["updates"])


@pytest.mark.parametrize("knob, name, words", BAD[::2] + BAD[3:4], ids=[f"{k}" for k, _, _ in BAD[::2] + BAD[3:4]])
def test_keras_bad_knob_is_a_clear_error(knob, name, words):
    import tensorflow as tf

    config, pt_model, state = build("mixed")
    model = keras_model(state)
    ids, mask, types = cases.make_inputs(seed=1, batch=2, length=6)
    with pytest.raises(ValueError, match=name) as error:
        model(tf_inputs(ids, mask, types), **knob)
    assert words in str(error.value)
    with pytest.raises(ValueError, match=name):  # the same error when traced (XLA)
        tf.function(lambda x: model(x, **knob), jit_compile=True)(tf_inputs(ids, mask, types))
    with pytest.raises(ValueError, match="max_iterations"):  # in a graph the cap must be a Python int
        tf.function(lambda x, cap: model(x, max_iterations=cap))(tf_inputs(ids, mask, types), tf.constant(2))
    with pytest.raises(TypeError, match="max_iteration"):  # a misspelt knob is no silent no-op
        model(tf_inputs(ids, mask, types), max_iteration=2)
