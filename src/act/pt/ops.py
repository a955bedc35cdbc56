"""PyTorch helpers of `act/pt/modeling.py`: the ops namespace of the framework-neutral modules (`act.halting`,
`act.inputs`) and transformers' eager attention function. `act/tf/ops.py` is the TensorFlow twin of `OPS`."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn


def is_exporting() -> bool:
    """Whether the model is being traced into a graph that must run on other inputs without Python: torch.export,
    torch.onnx.export (dynamo or the legacy TorchScript tracer). Not torch.compile, which guards and recompiles."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing()


def trains(encoder) -> bool:
    """Whether `encoder`'s ACT loop needs autograd or dropout: gradients enabled, or training mode with a dropout
    probability > 0 (then `AlbertActEncoder.forward` takes `forward_fast_train` instead of `forward_fast`)."""
    dropout = encoder.config.hidden_dropout_prob or encoder.config.attention_probs_dropout_prob
    return torch.is_grad_enabled() or bool(encoder.training and dropout)


def use_graph_loop(output_hidden_states: bool, output_attentions: bool, dropout: bool = False) -> bool:
    """Whether `forward_dense` runs its loop as `graph_loop`: while exporting, and under torch.compile for inference
    (no gradients: `while_loop` has no backward, so a compiled training step keeps the Python loop, whose exit test
    is a graph break), unless the per-iteration histories are asked for. `dropout`: dropout is active (a model in
    training mode); torch.compile cannot trace its random masks inside `while_loop` without gradients, so it keeps
    the Python loop then too (torch.export can, and keeps the graph loop)."""
    if output_hidden_states or output_attentions:
        return False
    return torch.compiler.is_exporting() or (torch.compiler.is_compiling() and not torch.is_grad_enabled()
                                             and not dropout)


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

    # The threshold as a 0-d tensor of the state's dtype (the same comparisons as with the Python float, which
    # PyTorch casts to that dtype): with dynamic shapes torch.compile turns a float attribute into a symbolic float,
    # which a while_loop body may not capture.
    threshold = torch.as_tensor(threshold, dtype=state[0].dtype, device=hidden.device)

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
    drops assertions: there the bad rows come out NaN (`act.inputs.mark_rows`, applied in every graph). Only for
    tensors on the CPU: on a GPU the assertion is a device-side assert, which leaves the process's CUDA context
    unusable (every later call fails), so a graph traced on a GPU keeps the NaN rows, as ONNX does."""
    if torch.compiler.is_compiling() and ok.device.type == "cpu":
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


__all__ = ["OPS", "FFN_CHUNK_TOKENS", "eager_attention_forward", "graph_loop", "is_exporting", "key_value_projection",
           "nonzero", "sizes", "trains", "use_graph_loop"]
