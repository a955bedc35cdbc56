"""PyTorch ALBERT-ACT (transformers 5). Mirrors `act/tf/modeling.py`: same classes, order and attribute names.

What is computed is specified in ACT_SEMANTICS.md: one shared ALBERT layer applied again and again, each
token deciding with Adaptive Computation Time (Graves, 2016) when to stop being updated.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from ..checkpoints import loading as checkpoint_loading
from ..checkpoints.names import TIED
from ..configuration import AlbertActConfig
from .outputs import (
    AlbertActEncoderOutput,
    AlbertActForPreTrainingOutput,
    AlbertActModelOutput,
    AlbertActQuestionAnsweringOutput,
    AlbertActTaskOutput,
)


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain softmax attention; used for `output_attentions=True` and as the fallback interface."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def halting_step(halting, remainders, updates, probability, threshold):
    """One ACT halting step (ACT_SEMANTICS.md), on (batch, seq) tensors, in the spec's order of operations.

    Returns the new (halting, remainders, updates) and each token's update weight w: its new state is
    ``out * w + h * (1 - w)`` (w = 0 for a token that is not running: it keeps its state exactly).
    """
    dtype = halting.dtype
    running = (halting < 1.0).to(dtype)
    total = halting + probability * running
    new_halted = (total > threshold).to(dtype) * running
    running = (total <= threshold).to(dtype) * running
    halting = halting + probability * running
    remainders = remainders + new_halted * (1.0 - halting)
    halting = halting + new_halted * remainders
    updates = updates + running + new_halted
    return halting, remainders, updates, probability * running + new_halted * remainders


class AlbertActEmbeddings(nn.Module):
    """Word + position + token type embeddings of width `embedding_size`, LayerNorm, dropout."""

    def __init__(self, config: AlbertActConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.embedding_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.embedding_size)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer(
            "position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False
        )
        self.register_buffer(
            "token_type_ids", torch.zeros((1, config.max_position_embeddings), dtype=torch.long), persistent=False
        )

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch_size, seq_length = inputs_embeds.shape[:2]
        if position_ids is None:
            position_ids = self.position_ids[:, :seq_length]
        if token_type_ids is None:
            token_type_ids = self.token_type_ids[:, :seq_length].expand(batch_size, seq_length)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class AlbertActAttention(nn.Module):
    """Multi-head self-attention of the shared layer (query/key/value projections and output `dense`)."""

    def __init__(self, config: AlbertActConfig):
        super().__init__()
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.attention_head_size**-0.5
        self.is_causal = False
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.attention_dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, seq, hidden) -> (batch, heads, seq, head_size)."""
        return x.view(*x.shape[:-1], self.num_attention_heads, self.attention_head_size).transpose(1, 2)

    def attend(self, query, key, value, attention_mask, output_attentions=False):
        """Scaled dot-product attention on split heads; returns (context (batch, q_len, hidden), weights or None)."""
        interface: Callable = eager_attention_forward
        if not output_attentions and self.config._attn_implementation not in (None, "eager"):
            interface = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
        context, weights = interface(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.attention_dropout.p if self.training else 0.0,
        )
        return context.reshape(*context.shape[:2], -1), (weights if output_attentions else None)

    def forward(self, hidden_states, attention_mask=None, output_attentions=False):
        """`attention_mask` is additive, (batch, 1, 1, seq): 0 where attended, a large negative value on padding."""
        query = self.split_heads(self.query(hidden_states))
        key = self.split_heads(self.key(hidden_states))
        value = self.split_heads(self.value(hidden_states))
        context, weights = self.attend(query, key, value, attention_mask, output_attentions)
        return self.dense(context), weights

    def forward_running(self, hidden_states, keys, values, attention_mask, packing):
        """Attention output of the running tokens only (the fast inference path of `AlbertActEncoder`).

        `hidden_states`: (n, hidden), the n running tokens of the batch in row-major order. `keys`, `values`:
        (batch, seq, hidden), the projected keys/values of EVERY token (cached by the encoder: those of a halted
        token never change). `packing` (from `AlbertActEncoder.pack_running`) says in which row and query slot
        each running token goes. Returns (n, hidden), the input of the residual + LayerNorm.
        """
        rows, slots, active, query_length, uniform = packing
        query = self.query(hidden_states)
        width = query.shape[-1]
        if uniform:  # every active row has the same number of running tokens: packing is a reshape
            packed = query.view(active.shape[0], query_length, width)
        else:  # queries of each row packed to the left, padded to the longest row; padded slots are discarded
            packed = query.new_zeros(active.shape[0], query_length, width)
            packed[rows, slots] = query
        if active.shape[0] != keys.shape[0]:  # rows without a running token need no attention at all
            keys, values = keys.index_select(0, active), values.index_select(0, active)
            attention_mask = attention_mask.index_select(0, active)
        context, _ = self.attend(self.split_heads(packed), self.split_heads(keys), self.split_heads(values),
                                 attention_mask)
        context = context.reshape(-1, width) if uniform else context[rows, slots]
        return self.dense(context)


class AlbertActHaltingUnit(nn.Module):
    """The ACT halting unit: p = sigmoid(dense(h)), one probability per token."""

    def __init__(self, config: AlbertActConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dense(hidden_states)).squeeze(-1)


class AlbertActLayer(nn.Module):
    """The one shared post-LayerNorm transformer layer, with the halting unit `act`."""

    def __init__(self, config: AlbertActConfig):
        super().__init__()
        self.attention = AlbertActAttention(config)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.full_layer_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.act = AlbertActHaltingUnit(config)
        self.activation = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def feed_forward(self, hidden_states, attention_output):
        """Residual + LayerNorm, FFN, residual + LayerNorm, halting unit: (output, halting probability)."""
        attention_output = self.LayerNorm(hidden_states + self.dropout(attention_output))
        ffn_output = self.ffn_output(self.activation(self.ffn(attention_output)))
        output = self.full_layer_layer_norm(attention_output + self.dropout(ffn_output))
        return output, self.act(output)

    def forward(self, hidden_states, attention_mask=None, output_attentions=False):
        """Returns the layer output, the halting probabilities (batch, seq) and the attention map (or None)."""
        attention_output, weights = self.attention(hidden_states, attention_mask, output_attentions)
        output, probability = self.feed_forward(hidden_states, attention_output)
        return output, probability, weights

    def forward_running(self, hidden_states, keys, values, attention_mask, packing):
        """The layer on the running tokens only, `hidden_states` (n, hidden), attending to every token through the
        cached `keys`/`values`: returns (output (n, hidden), halting probability (n,))."""
        attention_output = self.attention.forward_running(hidden_states, keys, values, attention_mask, packing)
        return self.feed_forward(hidden_states, attention_output)


class AlbertActEncoder(nn.Module):
    """Projects the embeddings to `hidden_size`, then runs the ACT loop over the shared `albert_layer`.

    Two implementations of the same loop (ACT_SEMANTICS.md), with the same halting bookkeeping in the same order:

    - the dense loop (`forward_dense`) applies the layer to every token at every iteration and masks the update.
      Used for training: whenever gradients are enabled, or dropout is active (training mode with a dropout
      probability > 0), for `output_attentions=True` (the maps of halted tokens are part of that output), and
      whenever `fast_path=False` is passed or `config.act_fast_path = False` is set.
    - the fast loop (`forward_fast`), the default for inference (`torch.no_grad()` / `torch.inference_mode()`):
      a halted token's state is frozen and the layer's weights are shared, so its key and value never change;
      they are computed once and cached. Each iteration computes queries, attention, FFN and halting unit only
      for the still-running tokens (gathered across the batch), which attend to every token of their row.
      Halted tokens cost nothing, so the cost follows the sum of `updates` instead of (iterations x tokens).
    """

    def __init__(self, config: AlbertActConfig):
        super().__init__()
        self.config = config
        self.embedding_hidden_mapping_in = nn.Linear(config.embedding_size, config.hidden_size)
        self.albert_layer = AlbertActLayer(config)

    def use_fast_path(self, output_attentions=False, fast_path=None) -> bool:
        """Whether `forward` takes the fast loop (see the class docstring)."""
        if fast_path is None:
            fast_path = self.config.act_fast_path
        dropout = self.config.hidden_dropout_prob or self.config.attention_probs_dropout_prob
        return bool(fast_path) and not output_attentions and not torch.is_grad_enabled() \
            and not (self.training and dropout)

    def forward(self, embeddings, attention_mask, output_hidden_states=False, output_attentions=False,
                fast_path=None):
        """`attention_mask`: (batch, seq), 1 for tokens, 0 for padding. Returns `AlbertActEncoderOutput`.

        `fast_path`: None follows `config.act_fast_path` (default True); False forces the dense loop. The fast loop
        is only taken where it applies (no gradients, no active dropout, no `output_attentions`).
        """
        hidden = self.embedding_hidden_mapping_in(embeddings)
        if self.use_fast_path(output_attentions, fast_path):
            return self.forward_fast(hidden, attention_mask, output_hidden_states)
        return self.forward_dense(hidden, attention_mask, output_hidden_states, output_attentions)

    def additive_mask(self, hidden, attention_mask):
        mask = attention_mask.to(hidden.dtype)
        return mask, ((1.0 - mask) * torch.finfo(hidden.dtype).min)[:, None, None, :]

    def forward_dense(self, hidden, attention_mask, output_hidden_states=False, output_attentions=False):
        """The dense ACT loop over the projected embeddings `hidden`: every token through the layer every time."""
        mask, additive_mask = self.additive_mask(hidden, attention_mask)
        cap = self.config.num_hidden_layers
        threshold = 1.0 - self.config.act_epsilon

        halting = 1.0 - mask  # padding starts halted and is never updated
        remainders = hidden.new_zeros(mask.shape)
        updates = hidden.new_zeros(mask.shape)
        all_hidden = (hidden,) if output_hidden_states else None
        all_attentions = () if output_attentions else None

        # Every token still below the threshold has run at every iteration so far, so its update count equals
        # the iteration number: bounding the loop by the cap is the spec's `N < cap` condition.
        for _ in range(cap):
            if not bool((halting < threshold).any()):
                break
            output, probability, weights = self.albert_layer(hidden, additive_mask, output_attentions)
            halting, remainders, updates, weight = halting_step(halting, remainders, updates, probability, threshold)
            weight = weight.unsqueeze(-1)
            hidden = output * weight + hidden * (1.0 - weight)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden,)
            if output_attentions:
                all_attentions = all_attentions + (weights,)

        return AlbertActEncoderOutput(
            last_hidden_state=hidden,
            updates=updates,
            remainders=remainders,
            hidden_states=all_hidden,
            attentions=all_attentions,
        )

    @staticmethod
    def pack_running(running):
        """Where the running tokens go. `running`: (batch, seq) bool. Returns their index into the flattened
        (batch * seq) tokens (row-major) and the packing of `AlbertActAttention.forward_running`: (row among the
        active rows, query slot in that row, active rows, most running tokens in one row, whether all active
        rows have that many)."""
        index = running.reshape(-1).nonzero().squeeze(1)
        counts = running.sum(1)
        active = counts.nonzero().squeeze(1)
        query_length = int(counts.max())
        uniform = index.shape[0] == active.shape[0] * query_length
        if uniform:
            return index, (None, None, active, query_length, True)
        row_of_active = counts.new_zeros(counts.shape)
        row_of_active[active] = torch.arange(active.shape[0], device=counts.device)
        row = torch.div(index, running.shape[1], rounding_mode="floor")
        slots = torch.arange(index.shape[0], device=index.device) - (counts.cumsum(0) - counts)[row]
        return index, (row_of_active[row], slots, active, query_length, False)

    @torch.no_grad()
    def forward_fast(self, hidden, attention_mask, output_hidden_states=False):
        """The fast ACT loop (inference only): only the running tokens go through the layer; halted ones are
        attended to through cached keys/values. Same bookkeeping, same operation order as `forward_dense`."""
        mask, additive_mask = self.additive_mask(hidden, attention_mask)
        cap = self.config.num_hidden_layers
        threshold = 1.0 - self.config.act_epsilon
        layer = self.albert_layer
        batch, length, width = hidden.shape

        halting = 1.0 - mask  # padding starts halted and is never updated
        remainders = hidden.new_zeros(mask.shape)
        updates = hidden.new_zeros(mask.shape)
        all_hidden = (hidden,) if output_hidden_states else None

        flat = hidden.reshape(batch * length, width)
        if output_hidden_states:
            flat = flat.clone()  # updated in place below; hidden_states[0] must keep the projected embeddings
        # Keys/values of every token, (batch * seq, hidden), initially from the projected embeddings (padding
        # included: its key/value never change). A token's key/value only changes when its state does, so only
        # the tokens updated at the previous iteration (`stale`) are projected again, at the start of the next
        # iteration; a halted token's cached key/value is reused until the end.
        attention = layer.attention
        keys, values = attention.key(flat), attention.value(flat)
        stale, stale_states = None, None

        for _ in range(cap):
            if not bool((halting < threshold).any()):
                break
            if stale is not None:
                keys.index_copy_(0, stale, attention.key(stale_states))
                values.index_copy_(0, stale, attention.value(stale_states))
            run_mask = halting < 1.0
            index, packing = self.pack_running(run_mask)
            if index.shape[0] == (batch * length if stale is None else stale.shape[0]):
                states = flat if stale is None else stale_states  # the same tokens as last time (or all)
            else:
                states = flat.index_select(0, index)
            output, probability_running = layer.forward_running(
                states, keys.view(batch, length, width), values.view(batch, length, width), additive_mask, packing
            )
            # The bookkeeping of forward_dense on the full (batch, seq) tensors; the probability of a token that
            # is not running is only ever multiplied by running = 0 there, so it is 0 here.
            probability = halting.new_zeros(batch * length).index_copy_(0, index, probability_running)
            probability = probability.view(batch, length)
            halting, remainders, updates, weight = halting_step(halting, remainders, updates, probability, threshold)
            weight = weight.reshape(-1).index_select(0, index).unsqueeze(-1)
            # A token outside `index` has weight 0 in the dense loop and keeps its state exactly; the running ones
            # get exactly out * w + h * (1 - w).
            stale_states = output * weight + states * (1.0 - weight)
            stale = index
            flat.index_copy_(0, index, stale_states)
            if output_hidden_states:
                all_hidden = all_hidden + (flat.view(batch, length, width).clone(),)

        return AlbertActEncoderOutput(
            last_hidden_state=flat.view(batch, length, width),
            updates=updates,
            remainders=remainders,
            hidden_states=all_hidden,
            attentions=None,
        )


class AlbertActPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading glue shared by every ALBERT-ACT model."""

    config_class = AlbertActConfig
    config: AlbertActConfig
    base_model_prefix = "albert"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _supports_attention_backend = True
    # Published research checkpoints carry this buffer; it is rebuilt at init, so it is not a weight.
    _keys_to_ignore_on_load_unexpected = [r"embeddings\.position_ids", r"embeddings\.token_type_ids"]

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, AlbertActMLMHead):
            module.bias.zero_()
        elif isinstance(module, AlbertActEmbeddings):
            module.position_ids.copy_(torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            module.token_type_ids.zero_()

    def __init__(self, config: AlbertActConfig, *inputs, **kwargs):
        if isinstance(config, AlbertActConfig):
            config.check()  # validated where a model is built: a ValueError naming the key
        super().__init__(config, *inputs, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """transformers' `from_pretrained` (config overrides such as ``num_labels=3``, ``dtype``, ``config``,
        ``output_loading_info``, ...), with every checkpoint read and checked by `act.checkpoints.loading`: a local
        directory in any format (model.safetensors, pytorch_model.bin, the research port's tf_model.h5). A missing,
        unexpected or mis-shaped encoder tensor is a `CheckpointError` naming the file; a task head missing from the
        checkpoint is newly initialised, with a warning."""
        return checkpoint_loading.pytorch_from_pretrained(cls, super().from_pretrained, pretrained_model_name_or_path,
                                                          model_args, kwargs)

    @staticmethod
    def _load_pretrained_model(model, state_dict, checkpoint_files, load_config, expected_keys=None):
        """transformers' tensor loading, behind the checks of `act.checkpoints.loading` (every path of
        `from_pretrained` ends here, including files that transformers resolved itself)."""
        return checkpoint_loading.load_into_pytorch(model, state_dict, checkpoint_files, load_config, expected_keys,
                                                    PreTrainedModel._load_pretrained_model)

    def save_pretrained(self, save_directory, **kwargs):
        """transformers' `save_pretrained`, written as one crash-safe replacement of the directory's model files
        (`act.checkpoints.atomic`): the other files in the directory are kept."""
        return checkpoint_loading.save_pytorch(self, super().save_pretrained, save_directory, kwargs)

    def wants_dict(self, return_dict: bool | None) -> bool:
        return self.config.return_dict if return_dict is None else return_dict

    def encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, output_attentions,
               output_hidden_states) -> AlbertActModelOutput:
        """A task model's encoder pass (`self.albert`), always as an `AlbertActModelOutput`."""
        return self.albert(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                           output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                           return_dict=True)

    def add_ponder_cost(self, loss, outputs):
        """Task loss + ponder_penalty * ponder_cost (ACT_SEMANTICS.md, "Ponder cost"), when both are there."""
        if loss is None or not self.config.ponder_penalty:
            return loss
        return loss + self.config.ponder_penalty * outputs.ponder_cost

    @staticmethod
    def halting_fields(outputs) -> dict:
        """The fields every task output carries over from the encoder output."""
        return {name: getattr(outputs, name)
                for name in ("updates", "remainders", "ponder_cost", "hidden_states", "attentions")}

    def check_inputs(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                     inputs_embeds=None):
        """Validate the inputs at the edge: raise a `ValueError` that says what was wrong and what was expected."""
        config = self.config
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds (got "
                             f"{'both' if input_ids is not None else 'neither'})")
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must have shape (batch, seq_len), got {tuple(input_ids.shape)}")
            if input_ids.is_floating_point():
                raise ValueError(f"input_ids must be integer token ids, got dtype {input_ids.dtype}")
            shape = tuple(input_ids.shape)
            if input_ids.numel():
                low, high = int(input_ids.min()), int(input_ids.max())
                if low < 0 or high >= config.vocab_size:
                    bad = low if low < 0 else high
                    raise ValueError(f"token id {bad} in input_ids is out of range [0, vocab_size={config.vocab_size})")
        else:
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.embedding_size:
                raise ValueError(
                    f"inputs_embeds must have shape (batch, seq_len, embedding_size={config.embedding_size}), "
                    f"got {tuple(inputs_embeds.shape)}"
                )
            shape = tuple(inputs_embeds.shape[:2])
        if shape[1] > config.max_position_embeddings:
            raise ValueError(
                f"sequence length {shape[1]} is longer than max_position_embeddings={config.max_position_embeddings}"
            )
        if attention_mask is not None:
            if tuple(attention_mask.shape) != shape:
                raise ValueError(
                    f"attention_mask has shape {tuple(attention_mask.shape)} but the inputs have shape {shape}"
                )
            if attention_mask.numel() and not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
                raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
        for name, tensor, limit in (("token_type_ids", token_type_ids, config.type_vocab_size),
                                    ("position_ids", position_ids, config.max_position_embeddings)):
            if tensor is None:
                continue
            if tensor.dim() != 2 or tensor.shape[1] != shape[1] or tensor.shape[0] not in (1, shape[0]):
                raise ValueError(f"{name} has shape {tuple(tensor.shape)} but the inputs have shape {shape}")
            if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= limit):
                raise ValueError(f"{name} must lie in [0, {limit}), got values in "
                                 f"[{int(tensor.min())}, {int(tensor.max())}]")


class AlbertActModel(AlbertActPreTrainedModel):
    """The bare ALBERT-ACT encoder: embeddings, the ACT loop, the pooler."""

    def __init__(self, config: AlbertActConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = AlbertActEmbeddings(config)
        self.encoder = AlbertActEncoder(config)
        if add_pooling_layer:
            self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
            self.pooler_activation = nn.Tanh()
        else:
            self.pooler = None
            self.pooler_activation = None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> AlbertActModelOutput | tuple:
        self.check_inputs(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.wants_dict(return_dict)

        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        if attention_mask is None:
            attention_mask = embeddings.new_ones(embeddings.shape[:2])
        encoded = self.encoder(embeddings, attention_mask, output_hidden_states, output_attentions)
        sequence_output = encoded.last_hidden_state
        pooled = self.pooler_activation(self.pooler(sequence_output[:, 0])) if self.pooler is not None else None
        mask = attention_mask.to(encoded.updates.dtype)
        # ACT_SEMANTICS.md "Ponder cost": per sequence the sum over its tokens, then the mean over the batch
        ponder_cost = ((encoded.updates + encoded.remainders) * mask).sum(1).mean()

        output = AlbertActModelOutput(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            updates=encoded.updates,
            remainders=encoded.remainders,
            ponder_cost=ponder_cost,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class AlbertActMLMHead(nn.Module):
    """Masked-LM head: dense -> activation -> LayerNorm -> decoder (tied to the word embeddings) + bias."""

    def __init__(self, config: AlbertActConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)
        self.activation = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.LayerNorm(self.activation(self.dense(hidden_states)))
        return self.decoder(hidden_states)


class AlbertActSOPHead(nn.Module):
    """Sentence-order prediction head on the pooled output (2 classes: in order, swapped)."""

    def __init__(self, config: AlbertActConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled_output))




class AlbertActForPreTraining(AlbertActPreTrainedModel):
    """ALBERT-ACT with the pre-training heads: masked LM + sentence-order prediction (+ ponder cost)."""

    _tied_weights_keys = TIED

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.albert = AlbertActModel(config)
        self.predictions = AlbertActMLMHead(config)
        self.sop_classifier = AlbertActSOPHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.predictions.decoder = new_embeddings

    def get_input_embeddings(self) -> nn.Embedding:
        return self.albert.embeddings.word_embeddings

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, sentence_order_label=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        """`labels`: (batch, seq) token ids, -100 where not masked. `sentence_order_label`: (batch,), 1 = swapped.

        The loss is the sum of the given losses (MLM and/or SOP) plus `ponder_penalty * ponder_cost`.
        """
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                              output_attentions, output_hidden_states)
        prediction_scores = self.predictions(outputs.last_hidden_state)
        sop_scores = self.sop_classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(prediction_scores.reshape(-1, self.config.vocab_size), labels.reshape(-1))
        if sentence_order_label is not None:
            sop_loss = nn.functional.cross_entropy(sop_scores.reshape(-1, 2), sentence_order_label.reshape(-1))
            loss = sop_loss if loss is None else loss + sop_loss
        output = AlbertActForPreTrainingOutput(
            loss=self.add_ponder_cost(loss, outputs),
            prediction_logits=prediction_scores,
            sop_logits=sop_scores,
            **self.halting_fields(outputs),
        )
        return output if self.wants_dict(return_dict) else output.to_tuple()


class AlbertActForMaskedLM(AlbertActPreTrainedModel):
    """ALBERT-ACT with the masked-LM head (decoder tied to the word embeddings)."""

    _tied_weights_keys = TIED

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.albert = AlbertActModel(config, add_pooling_layer=False)
        self.predictions = AlbertActMLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.predictions.decoder = new_embeddings
        self.predictions.bias = new_embeddings.bias

    def get_input_embeddings(self) -> nn.Embedding:
        return self.albert.embeddings.word_embeddings

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                              output_attentions, output_hidden_states)
        logits = self.predictions(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, self.config.vocab_size), labels.reshape(-1))
        output = AlbertActTaskOutput(loss=self.add_ponder_cost(loss, outputs), logits=logits,
                                     **self.halting_fields(outputs))
        return output if self.wants_dict(return_dict) else output.to_tuple()


class AlbertActForSequenceClassification(AlbertActPreTrainedModel):
    """Classification/regression on the pooled output (transformers' problem_type rules)."""

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertActModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                              output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            problem_type = self.config.problem_type
            if problem_type is None:
                if self.num_labels == 1:
                    problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    problem_type = "single_label_classification"
                else:
                    problem_type = "multi_label_classification"
                self.config.problem_type = problem_type
            if problem_type == "regression":
                loss = nn.functional.mse_loss(logits.squeeze(-1) if self.num_labels == 1 else logits,
                                              labels.reshape(-1).to(logits.dtype) if self.num_labels == 1
                                              else labels.to(logits.dtype))
            elif problem_type == "single_label_classification":
                loss = nn.functional.cross_entropy(logits.reshape(-1, self.num_labels), labels.reshape(-1))
            else:
                loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        output = AlbertActTaskOutput(loss=self.add_ponder_cost(loss, outputs), logits=logits,
                                     **self.halting_fields(outputs))
        return output if self.wants_dict(return_dict) else output.to_tuple()


class AlbertActForTokenClassification(AlbertActPreTrainedModel):
    """A label per token (e.g. NER), on the final token states."""

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertActModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                              output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, self.num_labels), labels.reshape(-1))
        output = AlbertActTaskOutput(loss=self.add_ponder_cost(loss, outputs), logits=logits,
                                     **self.halting_fields(outputs))
        return output if self.wants_dict(return_dict) else output.to_tuple()


class AlbertActForQuestionAnswering(AlbertActPreTrainedModel):
    """Extractive QA: start/end logits per token (`qa_outputs`, num_labels = 2)."""

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertActModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                              output_attentions, output_hidden_states)
        logits = self.qa_outputs(outputs.last_hidden_state)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.size(1)  # positions outside the input are ignored, as in transformers
            start_positions = start_positions.reshape(-1).clamp(0, ignored)
            end_positions = end_positions.reshape(-1).clamp(0, ignored)
            loss = (nn.functional.cross_entropy(start_logits, start_positions, ignore_index=ignored)
                    + nn.functional.cross_entropy(end_logits, end_positions, ignore_index=ignored)) / 2
        output = AlbertActQuestionAnsweringOutput(loss=self.add_ponder_cost(loss, outputs), start_logits=start_logits,
                                                  end_logits=end_logits, **self.halting_fields(outputs))
        return output if self.wants_dict(return_dict) else output.to_tuple()


class AlbertActForMultipleChoice(AlbertActPreTrainedModel):
    """Multiple choice: inputs (batch, num_choices, seq_len), one score per choice from the pooled output."""

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.albert = AlbertActModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None or reference.dim() < 3:
            raise ValueError("multiple choice inputs must have shape (batch, num_choices, seq_len)")
        batch, num_choices, length = reference.shape[:3]

        def flat(t):
            return None if t is None else t.reshape(batch * num_choices, *t.shape[2:])

        outputs = self.encode(flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids),
                              flat(inputs_embeds), output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(outputs.pooler_output)).reshape(batch, num_choices)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.reshape(-1))
        fields = self.halting_fields(outputs)
        fields["updates"] = fields["updates"].reshape(batch, num_choices, length)
        fields["remainders"] = fields["remainders"].reshape(batch, num_choices, length)
        output = AlbertActTaskOutput(loss=self.add_ponder_cost(loss, outputs), logits=logits, **fields)
        return output if self.wants_dict(return_dict) else output.to_tuple()


__all__ = [
    "AlbertActEmbeddings",
    "AlbertActAttention",
    "AlbertActHaltingUnit",
    "AlbertActLayer",
    "AlbertActEncoder",
    "AlbertActPreTrainedModel",
    "AlbertActModel",
    "AlbertActMLMHead",
    "AlbertActSOPHead",
    "AlbertActForPreTraining",
    "AlbertActForMaskedLM",
    "AlbertActForSequenceClassification",
    "AlbertActForTokenClassification",
    "AlbertActForQuestionAnswering",
    "AlbertActForMultipleChoice",
]
