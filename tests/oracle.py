"""A float64 NumPy implementation of ACT_SEMANTICS.md: the referee for both frameworks.

Written from the specification, not from either model. Weights come as a dict of canonical (PyTorch)
names and layouts: a Linear weight is (out, in), so a projection is ``x @ W.T + b``.
"""

from __future__ import annotations

import math

import numpy as np


def _gelu(x):
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


ACTIVATIONS = {
    "gelu": _gelu,
    "gelu_new": _gelu_new,
    "gelu_pytorch_tanh": _gelu_new,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "swish": lambda x: x / (1.0 + np.exp(-x)),
}


def _get(config, name):
    return config[name] if isinstance(config, dict) else getattr(config, name)


def _linear(x, weights, name):
    return x @ weights[name + ".weight"].T + weights[name + ".bias"]


def _layer_norm(x, weights, name, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weights[name + ".weight"] + weights[name + ".bias"]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def shared_layer(h, additive_mask, weights, config, prefix="encoder.albert_layer"):
    """One application of the shared layer: returns (output, halting probability, attention probs)."""
    eps = _get(config, "layer_norm_eps")
    heads = _get(config, "num_attention_heads")
    batch, length, hidden = h.shape
    size = hidden // heads

    def split(x):
        return x.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)

    q = split(_linear(h, weights, f"{prefix}.attention.query"))
    k = split(_linear(h, weights, f"{prefix}.attention.key"))
    v = split(_linear(h, weights, f"{prefix}.attention.value"))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + additive_mask[:, None, None, :]
    scores = scores - scores.max(-1, keepdims=True)
    probs = np.exp(scores)
    probs = probs / probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
    a = _layer_norm(h + _linear(context, weights, f"{prefix}.attention.dense"), weights, f"{prefix}.LayerNorm", eps)
    act_fn = ACTIVATIONS[_get(config, "hidden_act")]
    ffn = _linear(act_fn(_linear(a, weights, f"{prefix}.ffn")), weights, f"{prefix}.ffn_output")
    out = _layer_norm(a + ffn, weights, f"{prefix}.full_layer_layer_norm", eps)
    p = _sigmoid(_linear(out, weights, f"{prefix}.act.dense"))[..., 0]
    return out, p, probs


def forward(config, weights, input_ids, attention_mask=None, token_type_ids=None, prefix=""):
    """Run ALBERT-ACT in float64. `prefix` is "albert." for the encoder inside a head model.

    Returns a dict with last_hidden_state, pooler_output, updates, remainders, ponder_cost, hidden_states
    (after the projection and after each iteration) and `margin`: for each token, the smallest
    |hp + p - thr| met at any halting decision, i.e. how close its cumulative sum came to straddling
    the threshold (inf for tokens that never decided: padding).
    """
    w = {k[len(prefix):]: np.asarray(v, dtype=np.float64) for k, v in weights.items() if k.startswith(prefix)}
    input_ids = np.asarray(input_ids)
    batch, length = input_ids.shape
    mask = np.ones((batch, length)) if attention_mask is None else np.asarray(attention_mask, dtype=np.float64)
    types = np.zeros((batch, length), dtype=np.int64) if token_type_ids is None else np.asarray(token_type_ids)
    eps = _get(config, "layer_norm_eps")

    emb = (w["embeddings.word_embeddings.weight"][input_ids]
           + w["embeddings.position_embeddings.weight"][np.arange(length)][None]
           + w["embeddings.token_type_embeddings.weight"][types])
    emb = _layer_norm(emb, w, "embeddings.LayerNorm", eps)
    h = _linear(emb, w, "encoder.embedding_hidden_mapping_in")

    additive = (1.0 - mask) * -1e30
    cap = _get(config, "num_hidden_layers")
    thr = 1.0 - _get(config, "act_epsilon")
    hp = 1.0 - mask
    R = np.zeros((batch, length))
    N = np.zeros((batch, length))
    margin = np.full((batch, length), np.inf)
    hidden_states = [h]
    while np.any((hp < thr) & (N < cap)):
        out, p, _ = shared_layer(h, additive, w, config)
        run = (hp < 1.0).astype(np.float64)
        total = hp + p * run
        margin = np.where(run > 0, np.minimum(margin, np.abs(total - thr)), margin)
        new_halted = (total > thr) * run
        run = (total <= thr) * run
        hp = hp + p * run
        R = R + new_halted * (1.0 - hp)
        hp = hp + new_halted * R
        N = N + run + new_halted
        upd = p * run + new_halted * R
        h = out * upd[..., None] + h * (1.0 - upd[..., None])
        hidden_states.append(h)

    pooled = np.tanh(_linear(h[:, 0], w, "pooler")) if "pooler.weight" in w else None
    return {
        "last_hidden_state": h,
        "pooler_output": pooled,
        "updates": N,
        "remainders": R,
        "ponder_cost": float(((N + R) * mask).sum(axis=1).mean()),  # sequence sum, batch mean
        "hidden_states": hidden_states,
        "margin": margin,
    }
