"""Cosine similarity between the states of consecutive iterations ("progressive refinement").

For a token and an iteration i (1 <= i <= the iteration cap), the cosine between its state after iteration i-1
(after 0: the projected embedding) and its state after iteration i, taken only while the token still runs: a token
with N updates runs at iterations 1..N (at its N-th update it halts, updated with weight R, or reaches the cap),
so it contributes at iteration i iff N >= i. A halted token's state no longer changes (cosine 1) and is left out.

`hidden_states` is the model's `hidden_states` output (`output_hidden_states=True`): index i is the state after
iteration i, index 0 the projected embeddings. It may hold exactly the iterations the loop ran (PyTorch, eager
Keras) or a fixed `num_hidden_layers + 1` entries whose later ones repeat the final state: only the entries up to
the largest update count are read, so both give the same result.

The research code (`transformer_model_with_act` in `act/pretraining/modeling_act.py` of
AntoineSimoulin/adaptive-depth-transformers) computes the same cosine for every token at every iteration, halted
ones included (there, cosine 1), and its `metric_fn` averages the non-negative values per token class.
"""

from __future__ import annotations


def consecutive_cosines(hidden_states, updates, cap: int):
    """(batch, seq, cap) float64 array: cosine(state after i-1, state after i) at [..., i-1] for the tokens with
    updates >= i, NaN elsewhere (padding has 0 updates). `hidden_states`: sequence of (batch, seq, hidden) arrays;
    `updates`: (batch, seq)."""
    import numpy as np

    updates = np.asarray(updates)
    steps = int(updates.max()) if updates.size else 0
    if steps > cap:
        raise ValueError(f"a token has {steps} updates, more than the iteration cap {cap}")
    if len(hidden_states) < steps + 1:
        raise ValueError(f"hidden_states has {len(hidden_states)} entries; the states after iterations 0..{steps} "
                         f"({steps + 1} entries) are needed")
    result = np.full(updates.shape + (cap,), np.nan)
    previous = np.asarray(hidden_states[0], dtype=np.float64)
    previous_norm = np.linalg.norm(previous, axis=-1)
    for i in range(1, steps + 1):
        current = np.asarray(hidden_states[i], dtype=np.float64)
        current_norm = np.linalg.norm(current, axis=-1)
        running = updates >= i
        if (running & ((previous_norm == 0) | (current_norm == 0))).any():
            raise ValueError(f"a running token has a zero state at iteration {i - 1} or {i}: its cosine is undefined")
        dot = np.einsum("bsh,bsh->bs", previous, current)
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = dot / (previous_norm * current_norm)
        result[..., i - 1] = np.where(running, cosine, np.nan)
        previous, previous_norm = current, current_norm
    return result


def aggregate(cosines, masks: dict, cap: int) -> dict:
    """{category: {"count": [per iteration], "mean_cosine": [per iteration, None where no token runs]}} from the
    (tokens, cap) cosines (NaN where not running) and {category: boolean (tokens,)} masks."""
    import numpy as np

    cosines = np.asarray(cosines, dtype=np.float64).reshape(-1, cap)
    running = ~np.isnan(cosines)
    filled = np.where(running, cosines, 0.0)
    result = {}
    for name, mask in masks.items():
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        count = (running & mask[:, None]).sum(axis=0)
        total = (filled * mask[:, None]).sum(axis=0)
        result[name] = {"count": [int(c) for c in count],
                        "mean_cosine": [float(t / c) if c else None for t, c in zip(total, count)]}
    return result
