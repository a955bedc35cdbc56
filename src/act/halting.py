"""The ACT contract of ACT_SEMANTICS.md in code, written once for both frameworks.

The PyTorch and the Keras encoder run the same halting bookkeeping through these functions: the initial state
(padding starts halted), the loop condition, the halting step, the update of the hidden state, the dtype of the
halting state and the ponder cost. Each function takes an ops namespace first, `act.pt.ops.OPS` or
`act.tf.ops.OPS`: the few tensor operations that differ between the frameworks (arithmetic and comparisons are
written with Python operators, which both frameworks' tensors support). Nothing here imports a framework.

`tests/oracle.py` is an independent float64 NumPy implementation of the same page: it referees this one.
"""

from __future__ import annotations

# What every task output carries over from the encoder's output (both frameworks).
FIELDS = ("updates", "remainders", "ponder_cost", "hidden_states", "attentions")


def state_dtype(ops, hidden_dtype):
    """ACT_SEMANTICS.md "Halting dtype": the halting state (hp, R, N, p and the threshold comparison) is float64 in
    a float64 model and float32 otherwise, also when the model runs in float16 or bfloat16."""
    return ops.float64 if hidden_dtype == ops.float64 else ops.float32


def initial_state(ops, attention_mask, dtype):
    """(halting, remainders, updates), each (batch, seq) in the halting dtype. Padding starts halted (hp = 1), so it
    is never updated and reports N = R = 0."""
    mask = ops.cast(attention_mask, dtype)
    return 1.0 - mask, ops.zeros_like(mask), ops.zeros_like(mask)


def running(halting):
    """The tokens still updated at the next iteration (hp < 1): the others have halted, or are padding."""
    return halting < 1.0


def any_running(ops, halting, threshold):
    """The loop condition, a boolean scalar tensor: is any token still below the threshold?

    Every token below the threshold has run at every iteration so far, so its update count equals the iteration
    number: bounding the loop by the iteration cap (`num_hidden_layers`) is the spec's ``N < cap`` condition.
    """
    return ops.any(halting < threshold)


def step(ops, halting, remainders, updates, probability, threshold):
    """One halting step on (batch, seq) tensors, in the spec's order of operations.

    `probability` is the halting unit's output (any float dtype: it is cast to the halting state's dtype).
    Returns the new (halting, remainders, updates) and each token's update weight w (see `update`); w = 0 for a
    token that is not running.
    """
    dtype = halting.dtype
    probability = ops.cast(probability, dtype)
    run = ops.cast(running(halting), dtype)
    total = halting + probability * run
    new_halted = ops.cast(total > threshold, dtype) * run
    run = ops.cast(total <= threshold, dtype) * run
    halting = halting + probability * run
    remainders = remainders + new_halted * (1.0 - halting)
    halting = halting + new_halted * remainders
    updates = updates + run + new_halted
    return halting, remainders, updates, probability * run + new_halted * remainders


def update(ops, hidden, output, weight):
    """``h = out * w + h * (1 - w)`` on (..., hidden) states with weights of shape (...): w is cast to the hidden
    state's dtype here and only here. A token with w = 0 keeps its state exactly."""
    weight = ops.cast(weight, hidden.dtype)[..., None]
    return output * weight + hidden * (1.0 - weight)


def ponder_cost(ops, updates, remainders, attention_mask):
    """ACT_SEMANTICS.md "Ponder cost": per sequence the SUM of ``(N + R) * attention_mask`` over its positions, then
    the MEAN over the sequences of the batch (for multiple choice a sequence is one (example, choice) row).

    The mean of an empty batch is 0 (`ops.batch_mean`), so the cost is always finite.
    """
    per_sequence = ops.sum((updates + remainders) * ops.cast(attention_mask, updates.dtype), -1)
    return ops.batch_mean(per_sequence)


__all__ = ["FIELDS", "state_dtype", "initial_state", "running", "any_running", "step", "update", "ponder_cost"]
