"""PyTorch helpers of `act/pt/modeling.py`: the ops namespace of the framework-neutral modules (`act.halting`,
`act.inputs`) and transformers' eager attention function. `act/tf/ops.py` is the TensorFlow twin of `OPS`."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn


def _require(ok, message, data):
    """A graph assertion: none in PyTorch (value checks raise eagerly; compiled, bad rows come out NaN)."""
    return None


# The tensor operations `act.halting` and `act.inputs` need, on torch tensors. Twin of `act.tf.ops.OPS`: the same
# names with the same meaning, one line each (the two lists look alike on purpose).
OPS = SimpleNamespace(
    float32=torch.float32, float64=torch.float64, int32=torch.int32,
    executing_eagerly=lambda: not torch.compiler.is_compiling(),  # False while torch.compile / torch.export trace
    is_integer=lambda x: not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool),
    cast=lambda x, dtype: x.to(dtype),
    zeros_like=torch.zeros_like,
    full_like=torch.full_like,
    any=lambda x, axis=None: x.any() if axis is None else x.any(axis),
    all=lambda x, axis=None: x.all() if axis is None else x.all(axis),
    sum=lambda x, axis=None: x.sum() if axis is None else x.sum(axis),
    batch_mean=lambda x: x.sum(0) / max(x.shape[0], 1),  # the mean over the first axis; 0 for an empty batch
    min=torch.min,
    max=torch.max,
    minimum=lambda x, value: x.clamp(max=value),
    isfinite=torch.isfinite,
    where=torch.where,
    reshape=torch.reshape,
    stack=torch.stack,
    shape=lambda x: x.shape,
    arange=torch.arange,
    to_python=lambda x: x.tolist(),
    require=_require,
    after=lambda checks, x: x,  # no graph assertions to wait for
)


# The fast loop runs the residual/FFN part of the layer on at most max(this, half the batch's tokens) tokens at a
# time: its (tokens, intermediate) activations would otherwise make its peak memory exceed the dense loop's by the
# key/value cache. GEMMs of a few hundred rows run at full speed.
FFN_CHUNK_TOKENS = 256


def sizes(running, below, counts):
    """The fast loop's one host sync per iteration, as Python ints: (running tokens, whether any token is below the
    halting threshold, rows with a running token, most running tokens in one row). `running`, `below`: bool;
    `counts`: (batch,) running tokens per row."""
    return torch.stack((running.sum(), below.any().to(counts.dtype), (counts > 0).sum(), counts.max())).tolist()


# nonzero_static runs on CUDA from torch 2.6 on (on the CPU since 2.1)
_STATIC_ON_EVERY_DEVICE = torch.__version__ >= "2.6"


def nonzero(mask, size):
    """The indices (size,) of the True entries of the 1-D bool `mask`, whose number `size` the caller read on the
    host (`sizes`): `nonzero_static`, which needs no device sync; plain `nonzero` where a torch build lacks it."""
    if _STATIC_ON_EVERY_DEVICE or mask.device.type == "cpu":
        return torch.nonzero_static(mask, size=size).squeeze(1)
    return mask.nonzero().squeeze(1)


def key_value_projection(attention):
    """x -> [key(x) | value(x)], (n, 2 * hidden): one GEMM with the two weights concatenated (once per call of the
    fast loop) when both are plain `nn.Linear` without hooks; else the two modules' own outputs concatenated (a
    wrapped or quantised projection keeps its behaviour)."""
    key, value = attention.key, attention.value
    plain = all(type(module) is nn.Linear and not (module._forward_hooks or module._forward_pre_hooks)
                for module in (key, value))
    if not plain:
        return lambda x: torch.cat((key(x), value(x)), dim=-1)
    weight = torch.cat((key.weight, value.weight))
    bias = None if key.bias is None or value.bias is None else torch.cat((key.bias, value.bias))
    if bias is None and (key.bias is not None or value.bias is not None):
        return lambda x: torch.cat((key(x), value(x)), dim=-1)
    return lambda x: nn.functional.linear(x, weight, bias)


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain softmax attention (transformers' attention interface); used for `output_attentions=True` and as the
    fallback interface."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


__all__ = ["OPS", "FFN_CHUNK_TOKENS", "eager_attention_forward", "key_value_projection", "nonzero", "sizes"]
