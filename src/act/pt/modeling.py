"""PyTorch ALBERT-ACT (transformers 5). Mirrors `act/tf/modeling.py`: a reviewer diffs the two files.

Both files hold the same classes in the same order, with the same attribute names (they become the weight names)
and the same method names; the one renaming is Keras' `call` for PyTorch's `forward`, every other method keeps
its name (`forward_dense`, `forward_fast`, `forward_running`, ...). The halting bookkeeping is `act.halting`,
shared by both; plumbing that is no mirrored method lives in `base.py` (loading, input validation), `ops.py` and
`outputs.py`. What is computed is specified in ACT_SEMANTICS.md: one shared ALBERT layer applied again and again,
each token deciding with Adaptive Computation Time (Graves, 2016) when to stop being updated.
"""

# No `from __future__ import annotations`: transformers reads the heads' `**kwargs: Unpack[AlbertActKwargs]` at
# run time (which keywords a model takes, e.g. output_attentions in its common tests).
from collections.abc import Callable
from typing_extensions import Unpack  # typing.Unpack from Python 3.11

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple

from .. import halting
from ..configuration import AlbertActConfig, problem_type
from ..inputs import mark_outputs
from ..checkpoints.names import TIED
from .base import AlbertActBase, AlbertActKwargs
from .ops import (FFN_CHUNK_TOKENS, OPS, eager_attention_forward, graph_loop, is_exporting, key_value_projection,
                  nonzero, sizes, trains, use_graph_loop)
from .outputs import (
    EXAMPLE_FIELDS,
    AlbertActEncoderOutput,
    AlbertActForPreTrainingOutput,
    AlbertActModelOutput,
    AlbertActQuestionAnsweringOutput,
    AlbertActTaskOutput,
)


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
        # transformers' attention interface (what `set_attn_implementation` / `attn_implementation=` choose); the
        # attention maps (`output_attentions=True`) are always computed eagerly.
        interface: Callable = eager_attention_forward
        if not output_attentions:
            interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        context, weights = interface(self, query, key, value, attention_mask, scaling=self.scaling,
                                     dropout=self.attention_dropout.p if self.training else 0.0)
        return context.reshape(*context.shape[:2], -1), (weights if output_attentions else None)

    def forward(self, hidden_states, attention_mask=None, output_attentions=False):
        """`attention_mask` is additive, (batch, 1, 1, seq): 0 where attended, a large negative value on padding."""
        query = self.split_heads(self.query(hidden_states))
        key = self.split_heads(self.key(hidden_states))
        value = self.split_heads(self.value(hidden_states))
        context, weights = self.attend(query, key, value, attention_mask, output_attentions)
        return self.dense(context), weights

    def forward_running(self, hidden_states, keys, values, attention_mask, packing):
        """Attention output of the running tokens only (the fast inference loop of `AlbertActEncoder`).

        `hidden_states`: (n, hidden), the n running tokens of the batch in row-major order. `keys`, `values`:
        (batch, seq, hidden), the projected keys/values of EVERY token (cached by the encoder: those of a halted
        token never change). `packing` (from `AlbertActEncoder.pack_running`): (the slot of each running token in
        the (active rows x query_length) grid of queries, or None when the grid is exactly the running tokens; the
        active rows, or None when every row has a running token; query_length). Returns (n, hidden), the input of
        the residual + LayerNorm.
        """
        slots, active, query_length = packing
        query = self.query(hidden_states)
        width = query.shape[-1]
        rows = keys.shape[0] if active is None else active.shape[0]
        if slots is None:  # every active row has query_length running tokens: packing is a reshape
            packed = query.view(rows, query_length, width)
        else:  # queries of each row packed to the left, padded to the longest row; padded slots are discarded
            packed = query.new_zeros(rows * query_length, width).index_copy_(0, slots, query)
            packed = packed.view(rows, query_length, width)
        if active is not None:  # rows without a running token need no attention at all
            keys, values = keys.index_select(0, active), values.index_select(0, active)
            attention_mask = attention_mask.index_select(0, active)
        context, _ = self.attend(self.split_heads(packed), self.split_heads(keys), self.split_heads(values),
                                 attention_mask)
        context = context.reshape(-1, width)
        return self.dense(context if slots is None else context.index_select(0, slots))


class AlbertActHaltingUnit(nn.Module):
    """The ACT halting unit: p = sigmoid(dense(h)), one probability per token."""

    def __init__(self, config: AlbertActConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dense(hidden_states)).squeeze(-1)


class AlbertActLayer(GradientCheckpointingLayer):
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

    def forward(self, hidden_states, attention_mask=None, output_attentions=False, keys=None, values=None,
                packing=None):
        """Returns the layer output, the halting probabilities (batch, seq) and the attention map (or None). With
        `keys`/`values`/`packing` (`forward_fast_train`: through the module call, so that its hooks run and
        activation checkpointing wraps it), `forward_running` on the running tokens `hidden_states` (n, hidden)."""
        if keys is not None:
            return *self.forward_running(hidden_states, keys, values, attention_mask, packing), None
        attention_output, weights = self.attention(hidden_states, attention_mask, output_attentions)
        output, probability = self.feed_forward(hidden_states, attention_output)
        return output, probability, weights

    def forward_running(self, hidden_states, keys, values, attention_mask, packing, chunk_size=None):
        """The layer on the running tokens only, `hidden_states` (n, hidden), attending to every token through the
        cached `keys`/`values`: returns (output (n, hidden), halting probability (n,)). With `chunk_size`, the
        residual/FFN part runs on at most that many tokens at a time (row-wise, so the result is the same): the
        (n, intermediate) activations are the largest tensors of the fast loop."""
        attention_output = self.attention.forward_running(hidden_states, keys, values, attention_mask, packing)
        if not chunk_size or hidden_states.shape[0] <= chunk_size:
            return self.feed_forward(hidden_states, attention_output)
        pieces = [self.feed_forward(*piece) for piece in zip(hidden_states.split(chunk_size),
                                                              attention_output.split(chunk_size))]
        return torch.cat([output for output, _ in pieces]), torch.cat([probability for _, probability in pieces])


class AlbertActEncoder(nn.Module):
    """Projects the embeddings to `hidden_size`, then runs the ACT loop over the shared `albert_layer`.

    Three implementations of the same loop (ACT_SEMANTICS.md), with the halting bookkeeping of `act.halting`:

    - the dense loop (`forward_dense`) applies the layer to every token at every iteration and masks the update.
      Used for `output_attentions=True` (the maps of halted tokens are part of that output), for
      `output_hidden_states=True` with gradients, under torch.export / ONNX / TorchScript tracing, for a training
      step under torch.compile (`use_fast_path`), and whenever `fast_path=False` is passed or
      `config.act_fast_path = False` is set.
    - the fast loop (`forward_fast`), the default for inference (`torch.no_grad()` / `torch.inference_mode()`):
      a halted token's state is frozen and the layer's weights are shared, so its key and value never change;
      they are computed once and cached. Each iteration computes queries, attention, FFN and halting unit only
      for the still-running tokens (gathered across the batch), which attend to every token of their row.
      Halted tokens cost nothing, so the cost follows the sum of `updates` instead of (iterations x tokens).
    - its training twin (`forward_fast_train`), the default whenever gradients are enabled or dropout is active:
      the same skipping with autograd. The key/value cache and the final states are rebuilt out of place, so the
      keys/values a halted token is attended to through carry their gradient back to its frozen state; dropout
      draws masks for the running tokens only; `activation_checkpointing_enable()` recomputes each iteration.
      Forward and backward cost, and the activations kept, follow the sum of `updates` (plus one key/value cache
      of the batch per iteration).

    Both return `num_hidden_layers + 1` hidden states and `num_hidden_layers` attention maps when asked for:
    entries after the loop ended repeat the final state (halted tokens no longer change) and are all-zero maps.
    """

    def __init__(self, config: AlbertActConfig):
        super().__init__()
        self.config = config
        self.embedding_hidden_mapping_in = nn.Linear(config.embedding_size, config.hidden_size)
        self.albert_layer = AlbertActLayer(config)

    def use_fast_path(self, output_attentions=False, fast_path=None) -> bool:
        """Whether `forward` takes a fast loop, `forward_fast` or (gradients enabled, or active dropout)
        `forward_fast_train` (see the class docstring). Never while exporting or tracing, nor for a training step
        under torch.compile (its per-iteration sizes are data-dependent: benchmarks/bench_train.py)."""
        if fast_path is None:
            fast_path = self.config.act_fast_path
        return bool(fast_path) and not output_attentions and not is_exporting() \
            and not (torch.compiler.is_compiling() and trains(self))

    def forward(self, embeddings, attention_mask, output_hidden_states=False, output_attentions=False,
                fast_path=None, threshold=None, cap=None):
        """`attention_mask`: (batch, seq), 1 for tokens, 0 for padding. Returns `AlbertActEncoderOutput`.

        `fast_path`: None follows `config.act_fast_path` (default True); False forces the dense loop. The fast loops
        are only taken where they apply (`use_fast_path`; with gradients, not for `output_hidden_states`).
        `threshold`, `cap`: the halting threshold and iteration cap of this call (`AlbertActConfig.halting_limits`);
        None: the config's.
        """
        hidden = self.embedding_hidden_mapping_in(embeddings)
        if self.use_fast_path(output_attentions, fast_path):
            if not trains(self):
                return self.forward_fast(hidden, attention_mask, output_hidden_states, threshold, cap)
            if not output_hidden_states:
                return self.forward_fast_train(hidden, attention_mask, threshold, cap)
        return self.forward_dense(hidden, attention_mask, output_hidden_states, output_attentions, threshold, cap)

    def additive_mask(self, hidden, attention_mask):
        """(batch, 1, 1, seq) in the hidden dtype: 0 where attended, the dtype's most negative value on padding."""
        return ((1.0 - attention_mask.to(hidden.dtype)) * torch.finfo(hidden.dtype).min)[:, None, None, :]

    def forward_dense(self, hidden, attention_mask, output_hidden_states=False, output_attentions=False,
                      threshold=None, cap=None):
        """The dense ACT loop over the projected embeddings `hidden`: every token through the layer every time."""
        additive_mask = self.additive_mask(hidden, attention_mask)
        cap = self.config.num_hidden_layers if cap is None else cap
        threshold = self.config.halting_threshold if threshold is None else threshold
        state = halting.initial_state(OPS, attention_mask, halting.state_dtype(OPS, hidden.dtype))
        all_hidden = (hidden,) if output_hidden_states else None
        all_attentions = () if output_attentions else None

        dropout = self.training and bool(self.config.hidden_dropout_prob or self.config.attention_probs_dropout_prob)
        if use_graph_loop(output_hidden_states, output_attentions, dropout):  # the early exit stays in the graph
            hidden, state = graph_loop(self.albert_layer, hidden, additive_mask, state, cap, threshold)
            return AlbertActEncoderOutput(last_hidden_state=hidden, updates=state[2], remainders=state[1])
        # exported with histories, or traced by TorchScript (the legacy ONNX exporter): to the cap without the early
        # exit, which a graph would freeze at the traced count (bit-identical: a halted token's state gets + 0)
        to_the_cap = is_exporting()
        for _ in range(cap):
            if not to_the_cap and not bool(halting.any_running(OPS, state[0], threshold)):
                break
            output, probability, weights = self.albert_layer(hidden, additive_mask, output_attentions)
            *state, weight = halting.step(OPS, *state, probability, threshold)
            hidden = halting.update(OPS, hidden, output, weight)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden,)
            if output_attentions:
                all_attentions = all_attentions + (weights,)

        # Fixed-length histories: the iterations after the loop ended repeat the final state, with all-zero maps.
        if output_hidden_states:
            all_hidden = all_hidden + (hidden,) * (cap + 1 - len(all_hidden))
        if output_attentions:
            batch, length = attention_mask.shape
            zeros = hidden.new_zeros(batch, self.config.num_attention_heads, length, length)
            all_attentions = all_attentions + (zeros,) * (cap - len(all_attentions))
        return AlbertActEncoderOutput(last_hidden_state=hidden, updates=state[2], remainders=state[1],
                                      hidden_states=all_hidden, attentions=all_attentions)

    @staticmethod
    def pack_running(row, counts, active_rows, query_length):
        """Where the running tokens go in `AlbertActAttention.forward_running`. `row`: (n,) the row of each running
        token, in row-major order; `counts`: (batch,) running tokens per row; `active_rows`, `query_length`: how
        many rows have one, the most in one row (host ints, read with the loop's one host sync per iteration).
        Returns (slot of each token in the (active rows x query_length) grid, or None when the grid is exactly the
        running tokens; the active rows, or None when every row has one; query_length). No host sync."""
        active = None
        if active_rows != counts.shape[0]:
            active = nonzero(counts > 0, active_rows)
        if row.shape[0] == active_rows * query_length:
            return None, active, query_length
        first = counts.cumsum(0) - counts  # index of each row's first running token
        slot = torch.arange(row.shape[0], device=row.device) - first.index_select(0, row)
        if active is not None:  # the row among the active rows
            row = (counts > 0).cumsum(0).index_select(0, row) - 1
        return row * query_length + slot, active, query_length

    @torch.no_grad()
    def forward_fast(self, hidden, attention_mask, output_hidden_states=False, threshold=None, cap=None):
        """The fast ACT loop (inference only): only the running tokens go through the layer; halted ones are
        attended to through cached keys/values. Same halting step (`act.halting.step`, on the running tokens) and
        the same update as `forward_dense`; `threshold`/`cap` default to the config's.

        Per iteration: the keys/values of the tokens updated at the previous iteration are re-projected (one GEMM
        for both, into a (batch * seq, 2 * hidden) cache: a halted token's never change; padding's stay 0, its
        attention weight is exactly 0), the layer runs on the running tokens, their halting state (kept packed, in
        the order of their flat index) takes one step, and one host sync reads the sizes of the next iteration.
        """
        additive_mask = self.additive_mask(hidden, attention_mask)
        cap = self.config.num_hidden_layers if cap is None else cap
        threshold = self.config.halting_threshold if threshold is None else threshold
        state = halting.initial_state(OPS, attention_mask, halting.state_dtype(OPS, hidden.dtype))
        layer = self.albert_layer
        batch, length, width = hidden.shape
        all_hidden = (hidden,) if output_hidden_states else None
        flat = hidden.reshape(batch * length, width)
        if output_hidden_states:
            flat = flat.clone()  # updated in place below; hidden_states[0] must keep the projected embeddings
        cache = flat.new_zeros(batch * length, 2 * width)
        keys, values = (part.view(batch, length, width) for part in cache.split(width, dim=1))
        project = key_value_projection(layer.attention)
        chunk_size = max(FFN_CHUNK_TOKENS, (batch * length + 1) // 2)  # keeps the peak below the dense loop's

        running = halting.running(state[0])
        counts = running.sum(1)
        size, go, active_rows, query_length = sizes(running.reshape(-1), state[0] < threshold, counts)
        index = nonzero(running.reshape(-1), size)  # row-major, stays sorted
        row = torch.div(index, length, rounding_mode="floor")
        states = flat if size == batch * length else flat.index_select(0, index)
        packed_state = [value.reshape(-1).index_select(0, index) for value in state]  # (hp, R, N) of `index`
        stale, stale_states = index, states  # whose keys/values are to be (re-)projected
        packing = None

        for _ in range(cap if go else 0):
            cache.index_copy_(0, stale, project(stale_states))
            if packing is None:
                packing = self.pack_running(row, counts, active_rows, query_length)
            output, probability = layer.forward_running(states, keys, values, additive_mask, packing, chunk_size)
            *packed_state, weight = halting.step(OPS, *packed_state, probability, threshold)
            states = halting.update(OPS, states, output, weight)  # a token with w = 0 keeps its state exactly
            if output_hidden_states:  # else the running tokens' states are written back when they halt
                flat.index_copy_(0, index, states)
                all_hidden = all_hidden + (flat.view(batch, length, width).clone(),)
            stale, stale_states = index, states
            keep = halting.running(packed_state[0])
            counts = counts.new_zeros(batch).index_add_(0, row, keep.to(counts.dtype))
            size, go, active_rows, query_length = sizes(keep, packed_state[0] < threshold, counts)
            if not go:
                break
            if size < index.shape[0]:  # some tokens halted: record their final state, drop them
                halted = nonzero(~keep, index.shape[0] - size)
                flat.index_copy_(0, index.index_select(0, halted), states.index_select(0, halted))
                for full, value in zip(state[1:], packed_state[1:]):
                    full.view(-1).index_copy_(0, index, value)
                keep = nonzero(keep, size)
                index, row, states = (value.index_select(0, keep) for value in (index, row, states))
                packed_state = [value.index_select(0, keep) for value in packed_state]
                packing = None

        flat.index_copy_(0, index, states)  # the tokens still running when the loop ended
        for full, value in zip(state[1:], packed_state[1:]):
            full.view(-1).index_copy_(0, index, value)
        if output_hidden_states:  # fixed length, as in forward_dense
            all_hidden = all_hidden + (all_hidden[-1],) * (cap + 1 - len(all_hidden))
        return AlbertActEncoderOutput(last_hidden_state=flat.view(batch, length, width), updates=state[2],
                                      remainders=state[1], hidden_states=all_hidden, attentions=None)


    def forward_fast_train(self, hidden, attention_mask, threshold=None, cap=None):
        """The fast ACT loop with autograd (training): only the running tokens go through the layer (its dropout
        included), halted ones are attended to through the keys/values of their frozen state. The same halting
        steps and updates as `forward_dense`, so the same results and gradients (up to float rounding) when dropout
        is off; `threshold`/`cap` default to the config's.

        Nothing autograd keeps is written in place: each iteration's key/value cache is a new tensor (the previous
        one with the re-projected rows of the tokens updated last, `index_copy`), whose rows carry the gradient of
        the attention back to the state they were projected from; the final states, remainders and counts of the
        tokens are gathered as they halt and put in place once at the end. The layer is called as a module (its
        hooks run); with `activation_checkpointing_enable()` each iteration's layer is recomputed in the backward.
        """
        additive_mask = self.additive_mask(hidden, attention_mask)
        cap = self.config.num_hidden_layers if cap is None else cap
        threshold = self.config.halting_threshold if threshold is None else threshold
        state = halting.initial_state(OPS, attention_mask, halting.state_dtype(OPS, hidden.dtype))
        layer = self.albert_layer
        batch, length, width = hidden.shape
        flat = hidden.reshape(batch * length, width)
        project = key_value_projection(layer.attention)

        running = halting.running(state[0])
        counts = running.sum(1)
        size, go, active_rows, query_length = sizes(running.reshape(-1), state[0] < threshold, counts)
        index = nonzero(running.reshape(-1), size)  # row-major, stays sorted
        row = torch.div(index, length, rounding_mode="floor")
        states = flat if size == batch * length else flat.index_select(0, index)
        packed_state = [value.reshape(-1).index_select(0, index) for value in state]  # (hp, R, N) of `index`
        stale, stale_states = index, states  # whose keys/values are to be (re-)projected
        cache, packing, finished = None, None, []  # finished: (index, state, R, N) of the tokens as they halt

        for _ in range(cap if go else 0):
            fresh = project(stale_states)
            if stale.shape[0] == batch * length:  # every token: the cache is the projection
                cache = fresh
            else:
                cache = (fresh.new_zeros(batch * length, 2 * width) if cache is None else cache).index_copy(
                    0, stale, fresh)
            keys, values = (part.view(batch, length, width) for part in cache.split(width, dim=1))
            if packing is None:
                packing = self.pack_running(row, counts, active_rows, query_length)
            # the module call: activation checkpointing (GradientCheckpointingLayer) recomputes it in the backward
            output, probability, _ = layer(states, additive_mask, False, keys, values, packing)
            *packed_state, weight = halting.step(OPS, *packed_state, probability, threshold)
            states = halting.update(OPS, states, output, weight)
            stale, stale_states = index, states
            keep = halting.running(packed_state[0])
            counts = counts.new_zeros(batch).index_add(0, row, keep.to(counts.dtype))
            size, go, active_rows, query_length = sizes(keep, packed_state[0] < threshold, counts)
            if not go:
                break
            if size < index.shape[0]:  # some tokens halted: keep their final state aside, drop them
                halted = nonzero(~keep, index.shape[0] - size)
                finished.append([value.index_select(0, halted) for value in (index, states, *packed_state[1:])])
                keep = nonzero(keep, size)
                index, row, states = (value.index_select(0, keep) for value in (index, row, states))
                packed_state = [value.index_select(0, keep) for value in packed_state]
                packing = None

        finished.append([index, states, *packed_state[1:]])  # the tokens still running when the loop ended
        index, states, remainders, updates = (torch.cat(parts) for parts in zip(*finished))
        final = flat.to(states.dtype).index_copy(0, index, states)
        remainders, updates = (full.reshape(-1).index_copy(0, index, value).view(batch, length)
                               for full, value in zip(state[1:], (remainders, updates)))
        return AlbertActEncoderOutput(last_hidden_state=final.view(batch, length, width), updates=updates,
                                      remainders=remainders, hidden_states=None, attentions=None)


class AlbertActPreTrainedModel(AlbertActBase):
    """What every ALBERT-ACT model shares: weight initialisation, the encoder pass of a task model, its output."""

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, AlbertActMLMHead):
            module.bias.zero_()
        elif isinstance(module, AlbertActEmbeddings):
            module.position_ids.copy_(torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            module.token_type_ids.zero_()

    def encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs):
        """A task model's encoder pass (`self.albert`), always as an `AlbertActModelOutput`."""
        return self.albert(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, return_dict=True,
                           **kwargs)

    def task_outputs(self, output_class, outputs, loss, **predictions):
        """The task output: the predictions, the encoder output's halting fields, and with labels the loss plus
        ``ponder_penalty * ponder_cost`` (ACT_SEMANTICS.md, "Ponder cost")."""
        if loss is not None and self.config.ponder_penalty:
            loss = loss + self.config.ponder_penalty * outputs.ponder_cost
        return output_class(loss=loss, **predictions, **{name: getattr(outputs, name) for name in EXAMPLE_FIELDS})


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

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, output_attentions=None, output_hidden_states=None,
                **kwargs) -> AlbertActModelOutput:
        """The compute knob: `kwargs` may lower the iteration cap (``max_iterations``) or raise the halting epsilon
        for this call (`AlbertActConfig.halting_limits`); every task model passes them on."""
        given, invalid = self.check_inputs(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        self.check_kwargs(kwargs)
        threshold, cap = self.config.halting_limits(kwargs)
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )

        embeddings = self.embeddings(given["input_ids"], given["token_type_ids"], given["position_ids"],
                                     given["inputs_embeds"])
        attention_mask = given["attention_mask"]
        if attention_mask is None:
            attention_mask = embeddings.new_ones(embeddings.shape[:2])
        encoded = self.encoder(embeddings, attention_mask, output_hidden_states, output_attentions,
                               threshold=threshold, cap=cap)
        encoded = mark_outputs(OPS, encoded, invalid)  # compiled, bad input rows come out NaN
        sequence_output = encoded.last_hidden_state
        pooled = self.pooler_activation(self.pooler(sequence_output[:, 0])) if self.pooler is not None else None
        # `ponder_cost` is an attribute of the output, computed from updates + remainders (outputs.py)
        return AlbertActModelOutput(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            updates=encoded.updates,
            remainders=encoded.remainders,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )


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


# The task heads follow transformers' ALBERT heads one by one: the same constructor and call pattern repeats
# (encoder pass, head layer, loss, task output) on purpose, so that each head reads on its own and against its
# Keras twin.


class AlbertActForPreTraining(AlbertActPreTrainedModel):
    """ALBERT-ACT with the pre-training heads: masked LM + sentence-order prediction (+ ponder cost)."""

    _tied_weights_keys = TIED

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.albert = AlbertActModel(config)
        self.predictions = AlbertActMLMHead(config)
        self.sop_classifier = AlbertActSOPHead(config)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, sentence_order_label=None, **kwargs: Unpack[AlbertActKwargs]):
        """`labels`: (batch, seq) token ids, -100 where not masked. `sentence_order_label`: (batch,), 1 = swapped.

        The loss is the sum of the given losses (MLM and/or SOP) plus `ponder_penalty * ponder_cost`.
        """
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        prediction_scores = self.predictions(outputs.last_hidden_state)
        sop_scores = self.sop_classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(prediction_scores.reshape(-1, self.config.vocab_size), labels.reshape(-1))
        if sentence_order_label is not None:
            sop_loss = nn.functional.cross_entropy(sop_scores.reshape(-1, 2), sentence_order_label.reshape(-1))
            loss = sop_loss if loss is None else loss + sop_loss
        return self.task_outputs(AlbertActForPreTrainingOutput, outputs, loss, prediction_logits=prediction_scores,
                                 sop_logits=sop_scores)


class AlbertActForMaskedLM(AlbertActPreTrainedModel):
    """ALBERT-ACT with the masked-LM head (decoder tied to the word embeddings). `labels`: -100 = not masked."""

    _tied_weights_keys = TIED

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.albert = AlbertActModel(config, add_pooling_layer=False)
        self.predictions = AlbertActMLMHead(config)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, **kwargs: Unpack[AlbertActKwargs]):
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        logits = self.predictions(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, self.config.vocab_size), labels.reshape(-1))
        return self.task_outputs(AlbertActTaskOutput, outputs, loss, logits=logits)


class AlbertActForSequenceClassification(AlbertActPreTrainedModel):
    """Classification/regression on the pooled output (transformers' problem_type rules)."""

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertActModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, **kwargs: Unpack[AlbertActKwargs]):
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            problem = problem_type(self.config, labels.dtype in (torch.long, torch.int))
            if problem == "regression":
                loss = nn.functional.mse_loss(logits.squeeze(-1) if self.num_labels == 1 else logits,
                                              labels.reshape(-1).to(logits.dtype) if self.num_labels == 1
                                              else labels.to(logits.dtype))
            elif problem == "single_label_classification":
                loss = nn.functional.cross_entropy(logits.reshape(-1, self.num_labels), labels.reshape(-1))
            else:
                loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return self.task_outputs(AlbertActTaskOutput, outputs, loss, logits=logits)


class AlbertActForTokenClassification(AlbertActPreTrainedModel):
    """A label per token (e.g. NER), on the final token states. `labels`: (batch, seq), -100 = ignored."""

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertActModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, **kwargs: Unpack[AlbertActKwargs]):
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, self.num_labels), labels.reshape(-1))
        return self.task_outputs(AlbertActTaskOutput, outputs, loss, logits=logits)


class AlbertActForQuestionAnswering(AlbertActPreTrainedModel):
    """Extractive QA: start/end logits per token (`qa_outputs`, num_labels = 2).

    `start_positions` / `end_positions`: (batch,); positions outside the input are ignored, as in transformers.
    """

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertActModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, start_positions=None, end_positions=None, **kwargs: Unpack[AlbertActKwargs]):
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        logits = self.qa_outputs(outputs.last_hidden_state)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.size(1)  # positions outside the input are ignored, as in transformers
            start_positions = start_positions.reshape(-1).clamp(0, ignored)
            end_positions = end_positions.reshape(-1).clamp(0, ignored)
            loss = (nn.functional.cross_entropy(start_logits, start_positions, ignore_index=ignored)
                    + nn.functional.cross_entropy(end_logits, end_positions, ignore_index=ignored)) / 2
        return self.task_outputs(AlbertActQuestionAnsweringOutput, outputs, loss, start_logits=start_logits,
                                 end_logits=end_logits)


class AlbertActForMultipleChoice(AlbertActPreTrainedModel):
    """Multiple choice: inputs (batch, num_choices, seq_len), one score per choice from the pooled output.

    `updates` and `remainders` come back as (batch, num_choices, seq_len); `labels`: (batch,) the right choice.
    """

    def __init__(self, config: AlbertActConfig):
        super().__init__(config)
        self.albert = AlbertActModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, **kwargs: Unpack[AlbertActKwargs]):
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None or reference.dim() < 3:
            raise ValueError("multiple choice inputs must have shape (batch, num_choices, seq_len)")
        shape = reference.shape[:3]

        def flat(tensor):  # (batch, choices, ...) -> (batch * choices, ...)
            return None if tensor is None else tensor.reshape(shape[0] * shape[1], *tensor.shape[2:])

        outputs = self.encode(flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids),
                              flat(inputs_embeds), **kwargs)
        logits = self.classifier(self.dropout(outputs.pooler_output)).reshape(shape[:2])
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.reshape(-1))
        outputs.updates, outputs.remainders = outputs.updates.reshape(shape), outputs.remainders.reshape(shape)
        return self.task_outputs(AlbertActTaskOutput, outputs, loss, logits=logits)


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
