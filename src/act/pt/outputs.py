"""Output dataclasses of the PyTorch models (kept apart from modeling.py, whose classes mirror the Keras file).

Each class spells out all its fields, the per-example halting fields (`act.halting.FIELDS` but `ponder_cost`)
included, as transformers' output classes do: a ModelOutput's field order is its tuple order, so the repeated field
lists are deliberate.

`ponder_cost` is an attribute computed from `updates` and `remainders` (both 0 on padding), not a key of the output:
every key of a model output is a per-example tensor with the batch first, which is what transformers' consumers
assume when they split or concatenate outputs by example (pipelines with `batch_size > 1`, `Trainer` predictions
gathered across evaluation batches, export flattening). A batch-level 0-dim key breaks all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from .. import halting
from .ops import OPS

# The halting fields a task output carries over from the encoder's: the per-example ones (`ponder_cost` is the
# attribute below, computed from updates and remainders).
EXAMPLE_FIELDS = tuple(name for name in halting.FIELDS if name != "ponder_cost")


class PonderCost:
    """The `ponder_cost` attribute of the outputs that carry `updates` and `remainders` (also `output["ponder_cost"]`
    and `output.get("ponder_cost")`; it is not a key: `keys()`, `items()` and `to_tuple()` hold the per-example
    tensors only)."""

    def __getitem__(self, key):
        if key == "ponder_cost":
            return self.ponder_cost
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key == "ponder_cost":
            return self.ponder_cost
        return super().get(key, default)

    @property
    def ponder_cost(self) -> torch.Tensor | None:
        """Scalar: ACT_SEMANTICS.md "Ponder cost" (`act.halting.ponder_cost`), per sequence the sum over its tokens of
        ``(updates + remainders) * mask``, averaged over the sequences of the batch (for multiple choice a sequence
        is one (example, choice) row). Padding has updates = remainders = 0, so the mask is not needed here.
        Differentiable through the remainders, usable in a loss."""
        if self.updates is None or self.remainders is None:
            return None
        length = self.updates.shape[-1]
        updates, remainders = self.updates.reshape(-1, length), self.remainders.reshape(-1, length)
        return halting.ponder_cost(OPS, updates, remainders, torch.ones_like(updates))


@dataclass
class AlbertActModelOutput(PonderCost, ModelOutput):
    """Output of `AlbertActModel`.

    Args:
        last_hidden_state: (batch, seq_len, hidden) state of every token when it stopped being updated.
        pooler_output: (batch, hidden) ``tanh(Linear(last_hidden_state[:, 0]))``.
        updates: (batch, seq_len) float count of layer applications each token received (0 on padding).
        remainders: (batch, seq_len) ACT remainder R of each token (0 on padding and on tokens that hit the cap).
        ponder_cost (attribute, not a key): scalar, the sum over each sequence of (updates + remainders) * mask,
            averaged over the batch (the research code's scale, on which the paper's tau is defined).
        hidden_states: state after the embedding projection, then after each iteration (when asked for).
        attentions: attention maps of each iteration, (batch, heads, seq_len, seq_len) each (when asked for).
    """

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    updates: torch.Tensor | None = None
    remainders: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class AlbertActEncoderOutput(ModelOutput):
    """What the ACT loop returns: the final states and the halting bookkeeping."""

    last_hidden_state: torch.Tensor | None = None
    updates: torch.Tensor | None = None
    remainders: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class AlbertActForPreTrainingOutput(PonderCost, ModelOutput):
    """Output of `AlbertActForPreTraining`: MLM + sentence-order logits, and the halting bookkeeping.

    `loss` = MLM loss + SOP loss (+ ponder_penalty * ponder_cost when the penalty is > 0).
    """

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    sop_logits: torch.Tensor | None = None
    updates: torch.Tensor | None = None
    remainders: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class AlbertActTaskOutput(PonderCost, ModelOutput):
    """Output of the masked-LM, sequence/token classification and multiple-choice models.

    `loss` = task loss (+ ponder_penalty * ponder_cost when the penalty is > 0). For multiple choice,
    `updates` and `remainders` have shape (batch, num_choices, seq_len).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    updates: torch.Tensor | None = None
    remainders: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class AlbertActQuestionAnsweringOutput(PonderCost, ModelOutput):
    """Output of `AlbertActForQuestionAnswering`."""

    loss: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    updates: torch.Tensor | None = None
    remainders: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
