"""Output dataclasses of the PyTorch models (kept apart from modeling.py, whose classes mirror the Keras file).

Each class spells out all its fields, the halting fields (`act.halting.FIELDS`) included, as transformers' output
classes do: a ModelOutput's field order is its tuple order, so the repeated field lists are deliberate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class AlbertActModelOutput(ModelOutput):
    """Output of `AlbertActModel`.

    Args:
        last_hidden_state: (batch, seq_len, hidden) state of every token when it stopped being updated.
        pooler_output: (batch, hidden) ``tanh(Linear(last_hidden_state[:, 0]))``.
        updates: (batch, seq_len) float count of layer applications each token received (0 on padding).
        remainders: (batch, seq_len) ACT remainder R of each token (0 on padding and on tokens that hit the cap).
        ponder_cost: scalar, the sum over each sequence of (updates + remainders) * mask, averaged over the batch
            (the research code's scale, on which the paper's tau is defined).
        hidden_states: state after the embedding projection, then after each iteration (when asked for).
        attentions: attention maps of each iteration, (batch, heads, seq_len, seq_len) each (when asked for).
    """

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    updates: torch.Tensor | None = None
    remainders: torch.Tensor | None = None
    ponder_cost: torch.Tensor | None = None
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
class AlbertActForPreTrainingOutput(ModelOutput):
    """Output of `AlbertActForPreTraining`: MLM + sentence-order logits, and the halting bookkeeping.

    `loss` = MLM loss + SOP loss (+ ponder_penalty * ponder_cost when the penalty is > 0).
    """

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    sop_logits: torch.Tensor | None = None
    updates: torch.Tensor | None = None
    remainders: torch.Tensor | None = None
    ponder_cost: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class AlbertActTaskOutput(ModelOutput):
    """Output of the masked-LM, sequence/token classification and multiple-choice models.

    `loss` = task loss (+ ponder_penalty * ponder_cost when the penalty is > 0). For multiple choice,
    `updates` and `remainders` have shape (batch, num_choices, seq_len).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    updates: torch.Tensor | None = None
    remainders: torch.Tensor | None = None
    ponder_cost: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class AlbertActQuestionAnsweringOutput(ModelOutput):
    """Output of `AlbertActForQuestionAnswering`."""

    loss: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    updates: torch.Tensor | None = None
    remainders: torch.Tensor | None = None
    ponder_cost: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
