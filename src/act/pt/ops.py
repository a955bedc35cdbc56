"""PyTorch helpers of `act/pt/modeling.py`: the ops namespace of the framework-neutral modules (`act.halting`,
`act.inputs`) and transformers' eager attention function. `act/tf/ops.py` is the TensorFlow twin of `OPS`."""

from __future__ import annotations

import torch
from torch import nn


class TorchOps:
    """The tensor operations `act.halting` and `act.inputs` need, on torch tensors (same names and meaning as
    `act.tf.ops.TensorFlowOps`)."""

    float32, float64, int32 = torch.float32, torch.float64, torch.int32

    @staticmethod
    def executing_eagerly() -> bool:
        """False while torch.compile / torch.export trace the model: value checks cannot raise there."""
        return not torch.compiler.is_compiling()

    @staticmethod
    def is_integer(x) -> bool:
        return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool

    @staticmethod
    def cast(x, dtype):
        return x.to(dtype)

    @staticmethod
    def zeros_like(x):
        return torch.zeros_like(x)

    @staticmethod
    def full_like(x, value):
        return torch.full_like(x, value)

    @staticmethod
    def any(x, axis=None):
        return x.any() if axis is None else x.any(axis)

    @staticmethod
    def all(x, axis=None):
        return x.all() if axis is None else x.all(axis)

    @staticmethod
    def sum(x, axis=None):
        return x.sum() if axis is None else x.sum(axis)

    @staticmethod
    def batch_mean(x):
        """The mean over the first axis; 0 for an empty batch."""
        return x.sum(0) / max(x.shape[0], 1)

    @staticmethod
    def min(x):
        return x.min()

    @staticmethod
    def max(x):
        return x.max()

    @staticmethod
    def minimum(x, value):
        return x.clamp(max=value)

    @staticmethod
    def isfinite(x):
        return torch.isfinite(x)

    @staticmethod
    def where(condition, x, y):
        return torch.where(condition, x, y)

    @staticmethod
    def reshape(x, shape):
        return x.reshape(shape)

    @staticmethod
    def stack(tensors):
        return torch.stack(tensors)

    @staticmethod
    def shape(x):
        return x.shape

    @staticmethod
    def arange(n):
        return torch.arange(n)

    @staticmethod
    def to_python(x):
        return x.tolist()

    @staticmethod
    def require(ok, message, data):
        """A graph assertion: none in PyTorch (value checks raise eagerly; compiled, bad rows come out NaN)."""
        return None

    @staticmethod
    def after(checks, x):
        return x


OPS = TorchOps()


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


__all__ = ["OPS", "TorchOps", "eager_attention_forward"]
