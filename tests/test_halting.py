"""The ACT contract of `act.halting`, shared by both frameworks: the halting dtype (ACT_SEMANTICS.md "Halting
dtype"), fixed-length histories in every execution mode, the ponder cost, and the step on both ops namespaces."""

import numpy as np
import pytest
import torch

import cases
import oracle
from act import halting

tf = pytest.importorskip("tensorflow")
from act.pt.ops import OPS as TORCH  # noqa: E402
from act.tf import TFAlbertActModel  # noqa: E402
from act.tf.ops import OPS as TF  # noqa: E402

# The oracle's smallest |hp + p - thr| over the case: far above bfloat16 / float16 rounding of p, so that every
# count must match exactly (ACT_SEMANTICS.md "Parity": no straddle to excuse).
HALF_PRECISION_MARGIN = 0.02


def random_state(seed, shape=(3, 7)):
    rng = np.random.default_rng(seed)
    mask = (rng.random(shape) < 0.8).astype("float64")
    probability = rng.random(shape)
    return mask, probability


def test_the_step_is_the_same_on_both_ops_namespaces():
    """Three steps of the contract on float64 tensors of each framework give bit-identical states."""
    mask, _ = random_state(0)
    states = {}
    for ops, convert in ((TORCH, torch.from_numpy), (TF, tf.constant)):
        state = halting.initial_state(ops, convert(mask), ops.float64)
        for step in range(3):
            probability = convert(random_state(step + 1)[1])
            *state, weight = halting.step(ops, *state, probability, 0.9)
        states[ops is TORCH] = [np.asarray(x) for x in (*state, weight)]
    for a, b in zip(states[True], states[False]):
        np.testing.assert_array_equal(a, b)
    updates, remainders = states[True][2], states[True][1]
    assert (updates[mask == 0] == 0).all() and (remainders[mask == 0] == 0).all()
    assert set(np.unique(updates[mask == 1])) <= {1.0, 2.0, 3.0}


def test_state_dtype_rule():
    for ops, half, double in ((TORCH, (torch.float16, torch.bfloat16, torch.float32), torch.float64),
                              (TF, (tf.float16, tf.bfloat16, tf.float32), tf.float64)):
        assert all(halting.state_dtype(ops, dtype) == ops.float32 for dtype in half)
        assert halting.state_dtype(ops, double) == ops.float64


def test_ponder_cost_is_a_sequence_sum_and_a_batch_mean():
    rng = np.random.default_rng(3)
    updates, remainders = rng.integers(0, 6, (4, 9)).astype("float32"), rng.random((4, 9)).astype("float32")
    mask = (rng.random((4, 9)) < 0.7).astype("float32")
    expected = ((updates + remainders) * mask).sum(1).mean()
    for ops, convert in ((TORCH, torch.from_numpy), (TF, tf.constant)):
        cost = halting.ponder_cost(ops, convert(updates), convert(remainders), convert(mask))
        assert float(cost) == pytest.approx(expected, rel=1e-6)
        empty = np.zeros((0, 9), "float32")
        assert float(halting.ponder_cost(ops, convert(empty), convert(empty), convert(empty))) == 0.0


@pytest.mark.parametrize("torch_dtype, policy", [(torch.bfloat16, "mixed_bfloat16"), (torch.float16, "mixed_float16")])
def test_half_precision_models_keep_a_float32_halting_state_and_agree(torch_dtype, policy):
    config, model, state = cases.build_pt_model("mixed", seed=1)
    ids, mask, types = cases.make_inputs(1, batch=4, length=12)
    reference = oracle.forward(config, state, ids, mask, types)
    real = mask > 0
    assert reference["margin"][real].min() > HALF_PRECISION_MARGIN
    assert len(np.unique(reference["updates"][real])) >= 3  # tokens halt at different depths
    with torch.no_grad():
        pt_out = model.to(torch_dtype)(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                                       token_type_ids=torch.from_numpy(types))
    tf_model = TFAlbertActModel(config, dtype=policy)
    tf_model.build()
    tf_model.load_canonical_state_dict(state)
    tf_out = tf_model({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    assert pt_out.last_hidden_state.dtype == torch_dtype
    assert pt_out.updates.dtype == pt_out.remainders.dtype == pt_out.ponder_cost.dtype == torch.float32
    assert tf_out["updates"].dtype == tf_out["remainders"].dtype == tf.float32
    np.testing.assert_array_equal(pt_out.updates.numpy(), reference["updates"])
    np.testing.assert_array_equal(tf_out["updates"].numpy(), reference["updates"])
    # the remainders are sums of half-precision probabilities: close to the oracle at that precision
    np.testing.assert_allclose(pt_out.remainders.numpy(), reference["remainders"], rtol=0, atol=0.05)
    np.testing.assert_allclose(tf_out["remainders"].numpy(), reference["remainders"], rtol=0, atol=0.05)


def assert_fixed_length(hidden_states, attentions, final, iterations, cap):
    """`cap + 1` states and `cap` maps; after `iterations`, the final state and all-zero maps."""
    assert len(hidden_states) == cap + 1
    for state in hidden_states[iterations + 1:]:
        np.testing.assert_array_equal(np.asarray(state), np.asarray(final))
    if attentions is not None:
        assert len(attentions) == cap
        assert all(np.asarray(a).any() for a in attentions[:iterations])
        assert not any(np.asarray(a).any() for a in attentions[iterations:])


def test_histories_have_a_fixed_length_in_every_mode():
    """step1: every token halts at the first iteration, so the loop ends after 1 of 6 possible iterations."""
    config, model, state = cases.build_pt_model("step1", seed=4)
    ids, mask, types = cases.make_inputs(2, batch=3, length=9)
    reference = oracle.forward(config, state, ids, mask, types)
    assert len(reference["hidden_states"]) == 2
    cap = config.num_hidden_layers
    inputs = dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                  token_type_ids=torch.from_numpy(types))
    dense = model(**inputs, output_hidden_states=True, output_attentions=True)  # gradients on: the dense loop
    with torch.no_grad():
        fast = model(**inputs, output_hidden_states=True)
    for out, attentions in ((dense, dense.attentions), (fast, None)):
        hidden_states = [h.detach().numpy() for h in out.hidden_states]
        maps = None if attentions is None else [a.detach().numpy() for a in attentions]
        assert_fixed_length(hidden_states, maps, out.last_hidden_state.detach().numpy(), 1, cap)
        np.testing.assert_allclose(hidden_states[1], reference["hidden_states"][1], rtol=0, atol=1e-5)

    tf_model = TFAlbertActModel(config)
    tf_model.build()
    tf_model.load_canonical_state_dict(state)
    tf_inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def call(x):
        return tf_model(x, output_hidden_states=True, output_attentions=True)

    for run in (call, tf.function(call), tf.function(call, jit_compile=True)):
        out = run(tf_inputs)
        assert_fixed_length(out["hidden_states"], out["attentions"], out["last_hidden_state"], 1, cap)
        np.testing.assert_allclose(out["hidden_states"][1].numpy(), reference["hidden_states"][1], rtol=0, atol=1e-5)
