"""Shared tiny test cases: configs, inputs and halting regimes used by every framework's tests."""

from __future__ import annotations

import numpy as np

TINY = dict(vocab_size=120, embedding_size=16, hidden_size=32, num_attention_heads=4, intermediate_size=37,
            num_hidden_layers=6, act_epsilon=0.01, max_position_embeddings=64, type_vocab_size=2)

# Halting regimes, applied to the halting unit `act.dense` after random initialisation:
# bias and a gain on the weight. "step1": p > 1 - eps at once; "cap": p tiny, every token hits the cap;
# "mixed": tokens halt at different iterations.
REGIMES = {"step1": (8.0, 0.0), "cap": (-8.0, 0.0), "mixed": (-1.5, 2.0), "default": (None, None)}

# A short schedule of the Keras fast training loop's capacity phases (TFAlbertActEncoder.TRAIN_CAPACITIES): all
# tokens, 1/2, 1/8. With dropout off every schedule gives the dense loop's updates and gradients
# (tests/test_tf_fast_train.py checks the default one, phase by phase, eagerly); each phase is a while loop with its
# gradient to trace, a second in a graph and several under XLA, so tests that trace training for other reasons run
# this one (still chained loops and their gradients, which is what XLA must handle; three is the fewest that
# reproduced the tf2xla failure on them). Used by the fixture `short_training_schedule` (conftest.py) and
# tests/tf_distribute_job.py.
SHORT_TRAINING_SCHEDULE = ((1, 1), (1, 2), (1, 8))


def tiny_config_kwargs(**overrides):
    kwargs = dict(TINY)
    kwargs.update(overrides)
    return kwargs


def make_inputs(seed: int, batch: int = 3, length: int = 11, vocab_size: int = 120, padding: str = "ragged",
                type_vocab_size: int = 2):
    """input_ids, attention_mask, token_type_ids as int64 NumPy arrays. padding: none | ragged | allpad."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab_size, size=(batch, length))
    mask = np.ones((batch, length), dtype=np.int64)
    if padding in ("ragged", "allpad"):
        for row in range(1, batch):
            keep = int(rng.integers(1, length))
            mask[row, keep:] = 0
    if padding == "allpad":
        mask[-1] = 0
    ids = ids * mask  # pad id 0 on padding
    types = (rng.random((batch, length)) < 0.5).astype(np.int64) * mask
    if type_vocab_size == 1:
        types[:] = 0
    return ids.astype(np.int64), mask, types


def apply_regime(state: dict, regime: str, seed: int = 0, prefix: str = "") -> dict:
    """Return a copy of a canonical NumPy state dict with the halting unit set for `regime`."""
    bias, gain = REGIMES[regime]
    state = {k: np.array(v, copy=True) for k, v in state.items()}
    if bias is None:
        return state
    rng = np.random.default_rng(seed)
    w = prefix + "encoder.albert_layer.act.dense.weight"
    state[w] = (rng.standard_normal(state[w].shape) * gain / np.sqrt(state[w].shape[1])).astype(state[w].dtype)
    state[prefix + "encoder.albert_layer.act.dense.bias"] = np.full_like(state[prefix + "encoder.albert_layer.act.dense.bias"], bias)
    return state


def fixed_length(history, size):
    """A history of the ACT loop as the models return it: `size` entries, those after the loop ended repeating the
    last one (the oracle returns one state per iteration that ran)."""
    return list(history) + [history[-1]] * (size - len(history))


def build_pt_model(regime="mixed", seed=0, **overrides):
    """A seeded tiny PyTorch AlbertActModel with the halting `regime`: (config, model in eval mode, NumPy state)."""
    import torch

    from act import AlbertActConfig, AlbertActModel

    config = AlbertActConfig(**tiny_config_kwargs(**overrides))
    torch.manual_seed(seed)
    model = AlbertActModel(config).eval()
    state = apply_regime({k: v.numpy() for k, v in model.state_dict().items()}, regime, seed=seed + 1)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return config, model, state
