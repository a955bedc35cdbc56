"""PyTorch helpers of `act/pt/modeling.py`: the ops namespace of the framework-neutral modules (`act.halting`,
`act.inputs`) and transformers' eager attention function. `act/tf/ops.py` is the TensorFlow twin of `OPS`."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn


def is_tracing() -> bool:
    """Whether the model is being traced into a graph: torch.export, torch.onnx.export, torch.compile, torch.jit."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def graph_loop(layer, hidden, additive_mask, state, cap, threshold):
    """`AlbertActEncoder.forward_dense`'s loop as a loop of the graph (`while_loop`, an ONNX `Loop`) while torch.export,
    torch.onnx.export(dynamo=True) or torch.compile trace: the same halting steps (`act.halting`) and the spec's
    condition (a token still running and the cap not reached), so the early exit stays in the graph and the counts
    follow every input. Returns the final hidden state and (halting, remainders, updates).

    The halting state travels as ONE (batch, seq, 4) tensor [halting, remainders, updates, mask]: a carried (batch,
    seq) tensor makes the loop's subgraph read the sequence length from a stride, which the ONNX exporter cannot
    translate (aten.sym_stride)."""
    from torch._higher_order_ops.while_loop import while_loop

    from .. import halting

    def running(iteration, hidden, carried):
        return (iteration < cap) & halting.any_running(OPS, carried[..., 0], threshold)

    def step(iteration, hidden, carried):
        additive = ((1.0 - carried[..., 3]) * torch.finfo(hidden.dtype).min)[:, None, None, :].to(hidden.dtype)
        output, probability, _ = layer(hidden, additive)
        *new_state, weight = halting.step(OPS, carried[..., 0], carried[..., 1], carried[..., 2], probability,
                                          threshold)
        carried = torch.stack((*new_state, carried[..., 3]), -1)
        return iteration + 1, halting.update(OPS, hidden, output, weight), carried

    mask = (additive_mask[:, 0, 0, :] == 0).to(state[0].dtype)
    iteration = torch.zeros((), dtype=torch.int64, device=hidden.device)
    _, hidden, carried = while_loop(running, step, (iteration, hidden, torch.stack((*state, mask), -1)))
    return hidden, tuple(carried.unbind(-1)[:3])


def _require(ok, message, data):
    """A graph assertion, while torch.compile / torch.export / torch.onnx.export(dynamo=True) trace the model (value
    checks raise a `ValueError` eagerly): `torch._assert_async`, kept by torch.compile and in an exported program,
    which then raise a `RuntimeError` with `message` when `ok` is False. The values themselves (`data`) cannot go
    into the message of a compiled assertion, so the label announcing them (after the last ";") is left out. ONNX
    drops assertions: there the bad rows come out NaN (`act.inputs.mark_rows`, applied in every graph)."""
    if torch.compiler.is_compiling():
        torch._assert_async(ok, message.rsplit(";", 1)[0] if data else message)
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


__all__ = ["OPS", "eager_attention_forward", "graph_loop", "is_tracing"]
