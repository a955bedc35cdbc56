"""Weights at deliberately misaligned addresses, so that the suite proves its portability on the machine that runs it.

A model loaded from `model.safetensors` may compute from memory-mapped tensors at addresses that are not 64-byte
aligned (16, 56, 60 mod 64 were seen), and BLAS kernels (MKL/oneDNN on some CPUs) round differently by alignment:
two model instances with bit-identical weights can give float states that differ in the last bits. A test that
compares a loaded model with another therefore compares float states with the spec's tolerance (counts and
weights exactly), and moves one side's weights to the offsets below with `misalign`, so the comparison is made
across different alignments on every machine, not only on the ones that happen to map files unaligned.
"""

from __future__ import annotations

import copy

import numpy as np

OFFSETS = (8, 12, 56, 60)  # byte offsets mod 64 (a cache line; AVX-512 loads want 64-byte alignment)
LINE = 64


def misaligned_copy(tensor, offset: int):
    """A copy of a torch tensor whose storage starts `offset` bytes past a 64-byte boundary."""
    import torch

    itemsize = tensor.element_size()
    if offset % itemsize:
        raise ValueError(f"offset {offset} is not a multiple of the {tensor.dtype} item size {itemsize}")
    nbytes = tensor.numel() * itemsize
    buffer = torch.empty(nbytes + 2 * LINE, dtype=torch.uint8, device=tensor.device)
    start = (offset - buffer.data_ptr()) % LINE
    placed = buffer[start:start + nbytes].view(tensor.dtype).view(tensor.shape)
    placed.copy_(tensor)
    assert placed.data_ptr() % LINE == offset
    return placed


def misalign(model, offsets=OFFSETS):
    """Move every parameter of a PyTorch model, in place, into storage at the given offsets mod 64 (cycling through
    the ones its dtype allows); values, tying and dtypes are unchanged. Returns the model."""
    import torch

    with torch.no_grad():
        for index, (_, parameter) in enumerate(model.named_parameters()):  # tied parameters are listed once
            allowed = [o for o in offsets if o % parameter.element_size() == 0]
            parameter.data = misaligned_copy(parameter.data, allowed[index % len(allowed)])
    return model


def misaligned(model, offsets=OFFSETS):
    """A deep copy of `model` with misaligned weights (the original is left alone)."""
    return misalign(copy.deepcopy(model), offsets)


def misaligned_array(array: np.ndarray, offset: int) -> np.ndarray:
    """A copy of a NumPy array whose data starts `offset` bytes past a 64-byte boundary."""
    array = np.asarray(array)
    if offset % array.itemsize:
        raise ValueError(f"offset {offset} is not a multiple of the {array.dtype} item size {array.itemsize}")
    buffer = np.empty(array.nbytes + 2 * LINE, dtype=np.uint8)
    start = (offset - buffer.ctypes.data) % LINE
    placed = buffer[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    placed[...] = array
    assert placed.ctypes.data % LINE == offset
    return placed


def misaligned_state(state: dict, offsets=OFFSETS) -> dict:
    """A NumPy state dict with every array copied to one of the offsets (cycling)."""
    out = {}
    for index, (name, value) in enumerate(state.items()):
        value = np.asarray(value)
        allowed = [o for o in offsets if o % value.itemsize == 0] or [0]
        out[name] = misaligned_array(value, allowed[index % len(allowed)])
    return out


def offsets_of(model) -> list[int]:
    """The offsets mod 64 of a model's parameters' storage (what `misalign` set)."""
    return [parameter.data_ptr() % LINE for _, parameter in model.named_parameters()]
