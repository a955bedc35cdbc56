"""Keras 3 (TensorFlow backend) ALBERT-ACT. Mirrors `act/pt/modeling.py`: a reviewer diffs the two files.

Both files hold the same classes in the same order (a `TF` prefix here), with the same attribute names and the
same method names; the one renaming is Keras' `call` for PyTorch's `forward`, every other method keeps its name
(`forward_dense`, `forward_fast`, `forward_running`, ...). The halting bookkeeping is `act.halting`, shared by
both; plumbing that is no mirrored method lives in `base.py` (serialisation, weights, loading, export, input
validation) and `ops.py` (activations, sublayer factories and the generic `build`, the loss). What is computed is
specified in ACT_SEMANTICS.md: one shared ALBERT layer applied again and again, each token deciding with Adaptive
Computation Time (Graves, 2016) when to stop being updated.

Sublayers are named (Keras ``name=``) like the PyTorch attributes, so a variable path below the model is the Keras
name of a canonical parameter (`act.checkpoints.names.canonical_to_keras`). The ACT loop is a `tf.while_loop` bounded by the
iteration cap, so the model compiles with ``jit_compile=True``.
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from .. import halting
from ..configuration import AlbertActConfig, problem_type
from ..inputs import mark_outputs
from .base import TFAlbertActBase
from .ops import (
    OPS,
    Layer,
    Weight,
    additive_mask_value,
    cross_entropy,
    dense,
    dropout,
    embedding,
    embedding_table,
    fill_history,
    get_activation,
    in_xla_context,
    layer_norm,
    loss_dtype,
    projection,
    recomputed,
    variable_values,
)


class TFAlbertActEmbeddings(Layer):
    """Word + position + token type embeddings of width `embedding_size`, LayerNorm, dropout."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(config, **kwargs)
        dtype = self.dtype_policy
        self.word_embeddings = embedding(config.vocab_size, "word_embeddings", config, dtype)
        self.position_embeddings = embedding(config.max_position_embeddings, "position_embeddings", config, dtype)
        self.token_type_embeddings = embedding(config.type_vocab_size, "token_type_embeddings", config, dtype)
        self.LayerNorm = layer_norm(config.embedding_size, "LayerNorm", config, dtype)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=dtype)

    def call(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, training=None):
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
            if self.config.pad_token_id is not None:
                # like torch's Embedding(padding_idx=...): the padding token's row gets no gradient
                is_pad = (input_ids == self.config.pad_token_id)[..., None]
                inputs_embeds = tf.where(is_pad, tf.stop_gradient(inputs_embeds), inputs_embeds)
        inputs_embeds = tf.cast(inputs_embeds, self.compute_dtype)
        shape = tf.shape(inputs_embeds)
        if position_ids is None:
            position_ids = tf.range(shape[1])[None, :]
        if token_type_ids is None:
            token_type_ids = tf.zeros(shape[:2], "int32")
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings), training=training)


class TFAlbertActAttention(Layer):
    """Multi-head self-attention of the shared layer (query/key/value projections and output `dense`)."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.attention_head_size**-0.5
        dtype, width = self.dtype_policy, config.hidden_size
        self.query = projection(width, "query", config, dtype, width)
        self.key = projection(width, "key", config, dtype, width)
        self.value = projection(width, "value", config, dtype, width)
        self.dense = projection(width, "dense", config, dtype, width)
        self.attention_dropout = keras.layers.Dropout(config.attention_probs_dropout_prob, dtype=dtype)

    def split_heads(self, x):
        """(batch, seq, hidden) -> (batch, heads, seq, head_size)."""
        shape = tf.shape(x)
        x = tf.reshape(x, (shape[0], shape[1], self.num_attention_heads, self.attention_head_size))
        return tf.transpose(x, (0, 2, 1, 3))

    def attend(self, query, key, value, attention_mask, output_attentions=False, training=None, seed=None):
        """Scaled dot-product attention on split heads; returns (context (batch, q_len, hidden), weights or None).
        `seed`: a stateless dropout seed (`act.tf.ops.dropout`), else the dropout layer's own."""
        scores = tf.einsum("bhqd,bhkd->bhqk", query, key) * tf.cast(self.scaling, query.dtype)
        if attention_mask is not None:
            scores = scores + tf.cast(attention_mask, scores.dtype)
        weights = tf.nn.softmax(scores, axis=-1)
        context = tf.einsum("bhqk,bhkd->bhqd", dropout(self.attention_dropout, weights, training, seed), value)
        shape = tf.shape(context)
        context = tf.reshape(tf.transpose(context, (0, 2, 1, 3)), (shape[0], shape[2], self.config.hidden_size))
        return context, (weights if output_attentions else None)

    def call(self, hidden_states, attention_mask=None, output_attentions=False, training=None):
        """`attention_mask` is additive, (batch, 1, 1, seq): 0 where attended, a large negative value on padding."""
        query = self.split_heads(self.query(hidden_states))
        key = self.split_heads(self.key(hidden_states))
        value = self.split_heads(self.value(hidden_states))
        context, weights = self.attend(query, key, value, attention_mask, output_attentions, training)
        return self.dense(context), weights

    def forward_running(self, hidden_states, keys, values, attention_mask, packing, training=None, seed=None):
        """Attention output of the gathered tokens only (the fast loops of `TFAlbertActEncoder`).

        `hidden_states`: (1, capacity, hidden), the gathered tokens (running ones first). `keys`, `values`:
        (batch, seq, hidden), the projected keys/values of EVERY token (cached by the encoder). `packing` (from
        `TFAlbertActEncoder.pack_running`): where each gathered token sits. XLA needs static shapes, so the
        queries are scattered to their positions and the attention core runs over every position (a few % of the
        layer); the contexts of the gathered tokens are gathered back. Returns (1, capacity, hidden). Differentiable
        (the training loop): the gradient reaches the cached keys/values, so the frozen states they came from.
        """
        index, (batch, length) = packing
        query = self.query(hidden_states)[0]
        width = query.shape[-1]
        packed = tf.reshape(tf.scatter_nd(index[:, None], query, (batch * length, width)), (batch, length, width))
        context, _ = self.attend(self.split_heads(packed), self.split_heads(keys), self.split_heads(values),
                                 attention_mask, training=training, seed=seed)
        context = tf.gather(tf.reshape(context, (batch * length, width)), index)[None]
        return self.dense(context)


class TFAlbertActHaltingUnit(Layer):
    """The ACT halting unit: p = sigmoid(dense(h)), one probability per token."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.dense = projection(1, "dense", config, self.dtype_policy, config.hidden_size)

    def call(self, hidden_states):
        return tf.squeeze(tf.sigmoid(self.dense(hidden_states)), -1)


class TFAlbertActLayer(Layer):
    """The one shared post-LayerNorm transformer layer, with the halting unit `act`."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(config, **kwargs)
        dtype, width = self.dtype_policy, config.hidden_size
        self.attention = TFAlbertActAttention(config, name="attention", dtype=dtype)
        self.LayerNorm = layer_norm(width, "LayerNorm", config, dtype)
        self.ffn = projection(config.intermediate_size, "ffn", config, dtype, width)
        self.ffn_output = projection(width, "ffn_output", config, dtype, config.intermediate_size)
        self.full_layer_layer_norm = layer_norm(width, "full_layer_layer_norm", config, dtype)
        self.act = TFAlbertActHaltingUnit(config, name="act", dtype=dtype)
        self.activation = get_activation(config.hidden_act)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=dtype)

    def feed_forward(self, hidden_states, attention_output, training=None, seeds=(None, None)):
        """Residual + LayerNorm, FFN, residual + LayerNorm, halting unit: (output, halting probability). `seeds`:
        stateless seeds of the two dropouts (`act.tf.ops.dropout`), else the dropout layer's own."""
        attention_output = self.LayerNorm(hidden_states + dropout(self.dropout, attention_output, training, seeds[0]))
        ffn_output = self.ffn_output(self.activation(self.ffn(attention_output)))
        output = self.full_layer_layer_norm(attention_output + dropout(self.dropout, ffn_output, training, seeds[1]))
        return output, self.act(output)

    def call(self, hidden_states, attention_mask=None, output_attentions=False, training=None):
        """Returns the layer output, the halting probabilities (batch, seq) and the attention map (or None)."""
        attention_output, weights = self.attention(hidden_states, attention_mask, output_attentions=output_attentions,
                                                   training=training)
        output, probability = self.feed_forward(hidden_states, attention_output, training)
        return output, probability, weights

    def forward_running(self, hidden_states, keys, values, attention_mask, packing, training=None, seed=None):
        """The layer on the gathered tokens only, `hidden_states` (1, capacity, hidden), attending to every token
        through the cached `keys`/`values`: returns (output (1, capacity, hidden), halting probability). With
        `training`, dropout acts on the gathered tokens (and on the attention weights of their queries); `seed`
        (int32 (2,)): its masks are drawn statelessly from `seed + [0, site]`."""
        seeds = [None] * 3 if seed is None else [seed + tf.constant([0, site], seed.dtype) for site in range(3)]
        attention_output = self.attention.forward_running(hidden_states, keys, values, attention_mask, packing,
                                                          training, seeds[0])
        return self.feed_forward(hidden_states, attention_output, training, seeds[1:])


class TFAlbertActEncoder(Layer):
    """Projects the embeddings to `hidden_size`, then runs the ACT loop over the shared `albert_layer`.

    Three loops with the halting bookkeeping of `act.halting`, as in PyTorch:

    - the dense loop (`forward_dense`) applies the layer to every token at every iteration
      (`output_hidden_states`, `output_attentions`, inference inputs whose batch or sequence length is unknown
      when traced, `config.act_fast_path = False`);
    - the fast loop (`forward_fast`, the default for inference) computes the layer only for the running tokens. XLA
      needs static shapes, so their number cannot be the size of a tensor: each iteration picks, with
      `tf.switch_case`, the smallest of a few static capacities (all tokens, 1/2, 1/4, 1/8) that holds every
      running token, gathers that many tokens (running ones first, `pack_running`), runs the layer's
      `forward_running` on them and scatters the results back. Keys/values of every token are kept in a cache
      refreshed only for the gathered tokens; the attention core itself (a few % of the layer) stays dense;
    - the fast training loop (`forward_fast_train`, the default of ``training=True``, so of `fit`, with XLA or
      without): finer static capacities as chained phases, differentiable, with dropout, on any shape (see its
      docstring).

    The dense loop returns `num_hidden_layers + 1` hidden states and `num_hidden_layers` attention maps when asked
    for, in every execution mode: entries after the loop ended repeat the final state and are all-zero maps.
    """

    FAST_BUCKETS = 4
    # The capacities of the training loop's phases, as fractions (numerator, denominator) of batch * seq: finer than
    # the inference loop's halvings (a phase costs one while loop, not a branch per iteration), down to 1/16 for the
    # tail of tokens running to the cap (benchmarks/bench_train_keras.py)
    TRAIN_CAPACITIES = ((1, 1), (3, 4), (1, 2), (3, 8), (1, 4), (1, 8), (1, 16))
    TRAIN_RECOMPUTE_UNDER_XLA = True  # see forward_fast_train (False: keep the activations, for benchmarks)

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(config, **kwargs)
        dtype = self.dtype_policy
        self.embedding_hidden_mapping_in = projection(config.hidden_size, "embedding_hidden_mapping_in", config,
                                                      dtype, config.embedding_size)
        self.albert_layer = TFAlbertActLayer(config, name="albert_layer", dtype=dtype)

    def use_fast_path(self, hidden, output_hidden_states=False, output_attentions=False, training=None) -> bool:
        """Whether `call` takes a fast loop (see the class docstring): the training one for ``training=True``
        (any shape, with or without XLA), the inference one for a batch and length known when traced."""
        if not self.config.act_fast_path or output_hidden_states or output_attentions:
            return False
        if training:
            return True
        return hidden.shape[0] is not None and hidden.shape[1] is not None

    def call(self, embeddings, attention_mask, output_hidden_states=False, output_attentions=False, training=None,
             threshold=None, cap=None):
        """`attention_mask`: (batch, seq), 1 for tokens, 0 for padding. Returns a dict (see `TFAlbertActModel`).
        `threshold`, `cap`: the halting threshold and iteration cap (a Python int) of this call
        (`AlbertActConfig.halting_limits`); None: the config's."""
        hidden = self.embedding_hidden_mapping_in(embeddings)
        if self.use_fast_path(hidden, output_hidden_states, output_attentions, training):
            if training:
                return self.forward_fast_train(hidden, attention_mask, threshold, cap)
            return self.forward_fast(hidden, attention_mask, threshold, cap)
        return self.forward_dense(hidden, attention_mask, output_hidden_states, output_attentions, training,
                                  threshold, cap)

    def additive_mask(self, hidden, attention_mask):
        """(batch, 1, 1, seq) in the hidden dtype: 0 where attended, a large negative value on padding."""
        mask = tf.cast(attention_mask, hidden.dtype)
        return ((1.0 - mask) * additive_mask_value(hidden.dtype))[:, None, None, :]

    def forward_dense(self, hidden, attention_mask, output_hidden_states=False, output_attentions=False,
                      training=None, threshold=None, cap=None):
        """The dense ACT loop over the projected embeddings `hidden`: every token through the layer every time."""
        additive_mask = self.additive_mask(hidden, attention_mask)
        cap = int(self.config.num_hidden_layers if cap is None else cap)
        threshold = self.config.halting_threshold if threshold is None else threshold
        state = halting.initial_state(OPS, attention_mask, halting.state_dtype(OPS, hidden.dtype))
        # Histories: slot 0 is the projected embedding, slot i the state after iteration i (a TensorArray of fixed
        # size keeps the loop XLA-compilable); a history not asked for is a dummy scalar in the loop's state.
        all_hidden = tf.TensorArray(hidden.dtype, size=cap + 1).write(0, hidden) if output_hidden_states else 0
        all_attentions = tf.TensorArray(hidden.dtype, size=cap) if output_attentions else 0

        def body(step, hidden, all_hidden, all_attentions, *state):
            output, probability, weights = self.albert_layer(hidden, additive_mask,
                                                             output_attentions=output_attentions, training=training)
            *state, weight = halting.step(OPS, *state, probability, threshold)
            hidden = halting.update(OPS, hidden, output, weight)
            if output_hidden_states:
                all_hidden = all_hidden.write(step + 1, hidden)
            if output_attentions:
                all_attentions = all_attentions.write(step, weights)
            return (step + 1, hidden, all_hidden, all_attentions, *state)

        steps, hidden, all_hidden, all_attentions, *state = tf.while_loop(
            lambda step, hidden, all_hidden, all_attentions, *state: halting.any_running(OPS, state[0], threshold),
            body, (tf.constant(0), hidden, all_hidden, all_attentions, *state), maximum_iterations=cap)

        # Fixed-length histories: the iterations after the loop ended repeat the final state, with all-zero maps.
        return {"last_hidden_state": hidden, "updates": state[2], "remainders": state[1],
                "hidden_states": fill_history(all_hidden, cap + 1, steps + 1, hidden) if output_hidden_states else None,
                "attentions": fill_history(all_attentions, cap, steps) if output_attentions else None}

    @staticmethod
    def pack_running(running, capacity):
        """Which `capacity` tokens go through the layer. `running`: (batch, seq) bool, of static shape. Returns their
        index into the flattened (batch * seq) tokens, running ones first (then halted fillers, whose update weight
        is 0), and the packing of `TFAlbertActAttention.forward_running`: (that index, (batch, seq)). In the
        training loop the shape may be unknown when traced: `capacity` and (batch, seq) are then tensors read from
        the shape (compile-time constants under XLA)."""
        batch, length = (int(size) if size is not None else tf.shape(running)[axis]
                         for axis, size in enumerate(running.shape))
        index = tf.argsort(tf.cast(tf.reshape(running, (-1,)), tf.int32), direction="DESCENDING",
                           stable=True)[:capacity]
        return index, (index, (batch, length))

    def forward_fast(self, hidden, attention_mask, threshold=None, cap=None):
        """The fast ACT loop (inference only): `tf.switch_case` over static capacities inside the `tf.while_loop`.
        Same bookkeeping, same operation order as `forward_dense`."""
        additive_mask = self.additive_mask(hidden, attention_mask)
        cap = int(self.config.num_hidden_layers if cap is None else cap)
        threshold = self.config.halting_threshold if threshold is None else threshold
        state = halting.initial_state(OPS, attention_mask, halting.state_dtype(OPS, hidden.dtype))
        layer = self.albert_layer
        attention = layer.attention
        batch, length, width = int(hidden.shape[0]), int(hidden.shape[1]), self.config.hidden_size
        capacities = [batch * length]
        while len(capacities) < self.FAST_BUCKETS and capacities[-1] > 1:
            capacities.append((capacities[-1] + 1) // 2)

        def refresh(table, index, rows):  # (batch, seq, width) with the rows of the gathered tokens replaced
            flat = tf.tensor_scatter_nd_update(tf.reshape(table, (batch * length, width)), index[:, None], rows[0])
            return tf.reshape(flat, (batch, length, width))

        def iteration(capacity, hidden, keys, values, *state):
            index, packing = self.pack_running(halting.running(state[0]), capacity)
            states = tf.gather(tf.reshape(hidden, (batch * length, width)), index)[None]  # (1, capacity, hidden)
            output, probability = layer.forward_running(states, keys, values, additive_mask, packing)
            # The bookkeeping of forward_dense on the full (batch, seq) tensors; a token that is not running has
            # probability 0 there (it is only ever multiplied by running = 0).
            probability = tf.scatter_nd(index[:, None], tf.cast(probability[0], state[0].dtype), (batch * length,))
            *state, weight = halting.step(OPS, *state, tf.reshape(probability, (batch, length)), threshold)
            # Fillers have weight 0 and keep their state exactly; the running tokens get out * w + h * (1 - w).
            states = halting.update(OPS, states, output, tf.gather(tf.reshape(weight, (-1,)), index)[None])
            return (refresh(hidden, index, states), refresh(keys, index, attention.key(states)),
                    refresh(values, index, attention.value(states)), *state)

        def body(*loop_state):
            count = tf.reduce_sum(tf.cast(halting.running(loop_state[3]), tf.int32))
            branch = tf.reduce_sum(tf.cast(tf.constant(capacities[1:], tf.int32) >= count, tf.int32))
            return tf.switch_case(branch, [functools.partial(iteration, capacity, *loop_state)
                                           for capacity in capacities])

        # Keys/values of every token, refreshed only for the gathered tokens (a halted token's never change).
        hidden, _, _, *state = tf.while_loop(
            lambda hidden, keys, values, *state: halting.any_running(OPS, state[0], threshold), body,
            (hidden, attention.key(hidden), attention.value(hidden), *state), maximum_iterations=cap)
        return {"last_hidden_state": hidden, "updates": state[2], "remainders": state[1],
                "hidden_states": None, "attentions": None}

    def forward_fast_train(self, hidden, attention_mask, threshold=None, cap=None):
        """The fast ACT loop for training (`call` with ``training=True``, so `fit`, with or without XLA):
        differentiable, dropout on.

        Static capacities (`TRAIN_CAPACITIES`: all tokens, 3/4, 1/2, 3/8, 1/4, 1/8, 1/16 of them) as phases rather
        than a `tf.switch_case` per iteration: the running set only shrinks, so phase k is a `tf.while_loop` (bounded
        by the cap, as XLA's gradient needs) that gathers capacity k while more tokens run than capacity k + 1 holds,
        and the next phase continues from its state. No conditional branch inside a loop: under XLA the gradient of a
        branch would store every branch's activations (zeros for the ones not taken) at every iteration. Each loop
        has static shapes, so autograd stores only the activations of the gathered tokens (plus the keys/values
        cache and the dense attention core); the gradient of a halted token reaches its frozen state through the
        keys/values computed from it. The capacities are read from the shape, so a batch or length unknown when
        traced (`fit` on a dataset) works too (compile-time constants under XLA); same bookkeeping and operation
        order as `forward_dense`, so with dropout off the same updates and gradients."""
        additive_mask = self.additive_mask(hidden, attention_mask)
        cap = int(self.config.num_hidden_layers if cap is None else cap)
        threshold = self.config.halting_threshold if threshold is None else threshold
        state = halting.initial_state(OPS, attention_mask, halting.state_dtype(OPS, hidden.dtype))
        layer = self.albert_layer
        attention = layer.attention
        # Dropout: one seed drawn here from the layer's seed generator, then stateless masks from seed + [step, site]
        # inside the loops (no random state variable updated in a while loop)
        rates = layer.dropout.rate, attention.attention_dropout.rate
        generator = layer.dropout if rates[0] > 0 else attention.attention_dropout
        seed = tf.cast(generator.seed_generator.next(), tf.int32) if max(rates) > 0 else None

        # Under XLA the gradient of a while loop keeps each saved activation in a buffer sized for the whole cap, in
        # every phase (4.5x the dense loop's memory at the medium size): there the layer is recomputed in the
        # backward pass (`recomputed`), which keeps only its inputs (and was faster there too)
        recompute = self.TRAIN_RECOMPUTE_UNDER_XLA and in_xla_context()
        weights = layer.trainable_variables
        weight_values = variable_values(weights) if recompute else []

        def capacity(table, phase):  # of phase `phase` for a (batch, seq, hidden) table: ceil(batch * seq * fraction)
            shape = tf.shape(table)
            numerator, denominator = self.TRAIN_CAPACITIES[phase]
            return (shape[0] * shape[1] * numerator + denominator - 1) // denominator

        def iteration(phase, step, hidden, keys, values, *state):
            index, packing = self.pack_running(halting.running(state[0]), capacity(hidden, phase))
            length = packing[1][1]
            where = tf.stack([index // length, index % length], -1)  # (capacity, 2) positions in (batch, seq)
            states = tf.gather_nd(hidden, where)[None]  # (1, capacity, hidden)
            step_seed = None if seed is None else seed + tf.stack([step, 0])

            def run_layer(states, keys, values):
                # sizes read from `keys` here, not taken from the loop body: recomputed in the backward pass, they must
                # stay compile-time constants under XLA
                sizes = tuple(int(size) if size is not None else tf.shape(keys)[axis]
                              for axis, size in enumerate(keys.shape[:2]))
                return layer.forward_running(states, keys, values, additive_mask, (index, sizes), training=True,
                                             seed=step_seed)

            if recompute:
                output, probability = recomputed(run_layer, weights, states, keys, values, *weight_values)
            else:
                output, probability = run_layer(states, keys, values)
            # as in forward_fast: a token that is not gathered has probability 0 (it is not running)
            probability = tf.tensor_scatter_nd_update(tf.zeros_like(state[0]), where,
                                                      tf.cast(probability[0], state[0].dtype))
            *state, weight = halting.step(OPS, *state, probability, threshold)
            # `updates` is piecewise constant (no gradient, ACT_SEMANTICS.md). Without the stop, its gradient would
            # pass each gradient loop unchanged: a loop-invariant constant when the loss ignores the ponder cost,
            # which tf2xla's constant propagation through the chained gradient loops fails on ("Cannot find body
            # function ..._grad_..._const_0 for While node", tensorflow#122886)
            state[2] = tf.stop_gradient(state[2])
            states = halting.update(OPS, states, output, tf.gather_nd(weight, where)[None])
            return (step + 1, tf.tensor_scatter_nd_update(hidden, where, states[0]),
                    tf.tensor_scatter_nd_update(keys, where, attention.key(states)[0]),
                    tf.tensor_scatter_nd_update(values, where, attention.value(states)[0]), *state)

        def condition(phase, step, hidden, keys, values, *state):
            go = (step < cap) & halting.any_running(OPS, state[0], threshold)
            if phase + 1 < len(self.TRAIN_CAPACITIES):  # the last phase runs to the end
                count = tf.reduce_sum(tf.cast(halting.running(state[0]), tf.int32))
                go = go & (count > capacity(hidden, phase + 1))
            return go

        loop = (tf.constant(0), hidden, attention.key(hidden), attention.value(hidden), *state)
        for phase in range(len(self.TRAIN_CAPACITIES)):
            loop = tf.while_loop(functools.partial(condition, phase), functools.partial(iteration, phase), loop,
                                 maximum_iterations=cap)
        _, hidden, _, _, *state = loop
        return {"last_hidden_state": hidden, "updates": state[2], "remainders": state[1],
                "hidden_states": None, "attentions": None}


class TFAlbertActPreTrainedModel(TFAlbertActBase):
    """What every ALBERT-ACT model shares: weight initialisation, the encoder pass of a task model, its output."""

    def _init_weights(self, module):
        """What the Keras initialisers do not (called by `build` on every sublayer): like torch's
        ``Embedding(padding_idx=...)``, the padding token's row of the word embeddings starts at zero."""
        pad = self.config.pad_token_id
        if isinstance(module, TFAlbertActEmbeddings) and pad is not None:
            table = module.word_embeddings.embeddings
            table.assign(tf.tensor_scatter_nd_update(table, [[pad]], tf.zeros((1, table.shape[1]), table.dtype)))

    def encode(self, inputs, attention_mask, token_type_ids, training, **kwargs):
        """A task model's encoder pass (`self.albert`)."""
        return self.albert(inputs, attention_mask=attention_mask, token_type_ids=token_type_ids, training=training,
                           **kwargs)

    def task_outputs(self, outputs, loss, **predictions) -> dict:
        """The output dict: the predictions, the encoder output's halting fields, and with labels the loss plus
        ``ponder_penalty * ponder_cost`` (ACT_SEMANTICS.md, "Ponder cost"). With a penalty > 0 the ponder term is
        also added with `add_loss`, so that `fit` with a compiled task loss trains with it."""
        penalty = float(self.config.ponder_penalty or 0.0)
        if penalty:
            self.add_loss(penalty * outputs["ponder_cost"])
        if loss is not None and penalty:
            loss = loss + tf.cast(penalty * outputs["ponder_cost"], loss.dtype)
        result = {} if loss is None else {"loss": loss}
        return {**result, **predictions, **{name: outputs[name] for name in halting.FIELDS if name in outputs}}


@keras.saving.register_keras_serializable(package="act")
class TFAlbertActModel(TFAlbertActPreTrainedModel):
    """The bare ALBERT-ACT encoder: embeddings, the ACT loop, the pooler.

    Call it on a dict ``{"input_ids", "attention_mask", "token_type_ids"}`` (int32, (batch, seq_len); the mask and
    the types are optional). Returns a dict with ``last_hidden_state`` (batch, seq_len, hidden), ``pooler_output``
    (batch, hidden; absent without a pooler), ``updates`` and ``remainders`` (batch, seq_len), ``ponder_cost``
    (scalar), and ``hidden_states`` / ``attentions`` tuples when asked for.
    """

    def __init__(self, config: AlbertActConfig | dict, add_pooling_layer: bool = True, name="tf_albert_act_model",
                 **kwargs):
        super().__init__(config, name=name, **kwargs)
        config = self.config
        dtype = self.dtype_policy
        self.add_pooling_layer = bool(add_pooling_layer)
        self.embeddings = TFAlbertActEmbeddings(config, name="embeddings", dtype=dtype)
        self.encoder = TFAlbertActEncoder(config, name="encoder", dtype=dtype)
        if add_pooling_layer:
            self.pooler = dense(config.hidden_size, "pooler", config, dtype, config.hidden_size)
            self.pooler_activation = keras.layers.Activation("tanh", name="pooler_activation", dtype=dtype)
        else:
            self.pooler = None
            self.pooler_activation = None

    def call(self, inputs=None, attention_mask=None, token_type_ids=None, training=None, output_attentions=None,
             output_hidden_states=None, position_ids=None, inputs_embeds=None, **kwargs):
        """The compute knob: `kwargs` may lower the iteration cap (``max_iterations``, a Python int) or raise the
        halting epsilon for this call (`AlbertActConfig.halting_limits`); every task model passes them on."""
        given, invalid = self.check_inputs(inputs, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                           position_ids=position_ids, inputs_embeds=inputs_embeds)
        threshold, cap = self.config.halting_limits(kwargs, strict=True)
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )

        embeddings = self.embeddings(given["input_ids"], given["token_type_ids"], given["position_ids"],
                                     given["inputs_embeds"], training=training)
        attention_mask = given["attention_mask"]
        encoded = self.encoder(embeddings, attention_mask, output_hidden_states=bool(output_hidden_states),
                               output_attentions=bool(output_attentions), training=training, threshold=threshold,
                               cap=cap)
        encoded = mark_outputs(OPS, encoded, invalid)  # under XLA, bad input rows come out NaN
        sequence_output = encoded["last_hidden_state"]
        output = {
            "last_hidden_state": sequence_output,
            "updates": encoded["updates"],
            "remainders": encoded["remainders"],
            "ponder_cost": halting.ponder_cost(OPS, encoded["updates"], encoded["remainders"], attention_mask),
        }
        if self.pooler is not None:
            output["pooler_output"] = self.pooler_activation(self.pooler(sequence_output[:, 0]))
        if output_hidden_states:
            output["hidden_states"] = encoded["hidden_states"]
        if output_attentions:
            output["attentions"] = encoded["attentions"]
        return output


class TFAlbertActMLMHead(Layer):
    """Masked-LM head: dense -> activation -> LayerNorm -> decoder (tied to the word embeddings) + bias.

    The decoder has no variables of its own: `call` takes the encoder's word-embedding matrix (vocab, emb) and
    computes ``h @ E^T + bias``, so the tie holds through training, saving and loading (canonical names:
    `predictions.bias`; `predictions.decoder.*` are the tied copies of `act.checkpoints.names.TIED`).
    """

    def __init__(self, config: AlbertActConfig, **kwargs):
        if not config.tie_word_embeddings:  # there is no decoder weight that could differ from the embeddings
            raise ValueError("tie_word_embeddings=False: the Keras MLM head always ties its decoder to the word "
                             "embeddings (it has no decoder weight of its own); use the PyTorch model for an untied "
                             "decoder")
        super().__init__(config, **kwargs)
        dtype = self.dtype_policy
        self.LayerNorm = layer_norm(config.embedding_size, "LayerNorm", config, dtype)
        self.bias = Weight((config.vocab_size,))
        self.dense = projection(config.embedding_size, "dense", config, dtype, config.hidden_size)
        self.activation = get_activation(config.hidden_act)

    def call(self, hidden_states, decoder_weight):
        """`decoder_weight`: the word embeddings (vocab, embedding_size). Returns (batch, seq, vocab) logits."""
        hidden_states = self.LayerNorm(self.activation(self.dense(hidden_states)))
        decoder_weight = tf.cast(decoder_weight, hidden_states.dtype)
        return tf.einsum("bse,ve->bsv", hidden_states, decoder_weight) + tf.cast(self.bias, hidden_states.dtype)


class TFAlbertActSOPHead(Layer):
    """Sentence-order prediction head on the pooled output (2 classes: in order, swapped)."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.dropout = keras.layers.Dropout(config.classifier_dropout_prob, dtype=self.dtype_policy)
        self.classifier = dense(2, "classifier", config, self.dtype_policy, config.hidden_size)

    def call(self, pooled_output, training=None):
        return self.classifier(self.dropout(pooled_output, training=training))


# The task heads follow transformers' ALBERT heads one by one: the same constructor and call pattern repeats
# (encoder pass, head layer, loss, task output) on purpose, so that each head reads on its own and against its
# PyTorch twin. Labels come as keywords or as entries of the input dict (`label_names`).


@keras.saving.register_keras_serializable(package="act")
class TFAlbertActForPreTraining(TFAlbertActPreTrainedModel):
    """ALBERT-ACT with the pre-training heads: masked LM + sentence-order prediction (+ ponder cost).

    Outputs ``prediction_logits`` (batch, seq, vocab) and ``sop_logits`` (batch, 2).
    """

    label_names = ("labels", "sentence_order_label")
    prediction_names = ("prediction_logits", "sop_logits")

    def __init__(self, config: AlbertActConfig | dict, name="tf_albert_act_for_pre_training", **kwargs):
        super().__init__(config, name=name, **kwargs)
        dtype = self.dtype_policy
        self.albert = TFAlbertActModel(self.config, name="albert", dtype=dtype)
        self.predictions = TFAlbertActMLMHead(self.config, name="predictions", dtype=dtype)
        self.sop_classifier = TFAlbertActSOPHead(self.config, name="sop_classifier", dtype=dtype)

    def call(self, inputs, attention_mask=None, token_type_ids=None, labels=None, sentence_order_label=None,
             training=None, **kwargs):
        """`labels`: (batch, seq) token ids, -100 where not masked. `sentence_order_label`: (batch,), 1 = swapped.

        The loss is the sum of the given losses (MLM and/or SOP) plus `ponder_penalty * ponder_cost`.
        """
        inputs, given = self.split_labels(inputs, labels=labels, sentence_order_label=sentence_order_label)
        outputs = self.encode(inputs, attention_mask, token_type_ids, training, **kwargs)
        decoder_weight = embedding_table(self.get_output_embeddings())
        prediction_scores = self.predictions(outputs["last_hidden_state"], decoder_weight)
        sop_scores = self.sop_classifier(outputs["pooler_output"], training=training)
        loss = None
        if given["labels"] is not None:
            loss = cross_entropy(prediction_scores, given["labels"])
        if given["sentence_order_label"] is not None:
            sop_loss = cross_entropy(sop_scores, given["sentence_order_label"])
            loss = sop_loss if loss is None else loss + sop_loss
        return self.task_outputs(outputs, loss, prediction_logits=prediction_scores, sop_logits=sop_scores)


@keras.saving.register_keras_serializable(package="act")
class TFAlbertActForMaskedLM(TFAlbertActPreTrainedModel):
    """ALBERT-ACT with the masked-LM head (decoder tied to the word embeddings). `labels`: -100 = not masked."""

    label_names = ("labels",)
    prediction_names = ("logits",)

    def __init__(self, config: AlbertActConfig | dict, name="tf_albert_act_for_masked_lm", **kwargs):
        super().__init__(config, name=name, **kwargs)
        dtype = self.dtype_policy
        self.albert = TFAlbertActModel(self.config, add_pooling_layer=False, name="albert", dtype=dtype)
        self.predictions = TFAlbertActMLMHead(self.config, name="predictions", dtype=dtype)

    def call(self, inputs, attention_mask=None, token_type_ids=None, labels=None, training=None, **kwargs):
        inputs, given = self.split_labels(inputs, labels=labels)
        outputs = self.encode(inputs, attention_mask, token_type_ids, training, **kwargs)
        logits = self.predictions(outputs["last_hidden_state"], embedding_table(self.get_output_embeddings()))
        loss = None
        if given["labels"] is not None:
            loss = cross_entropy(logits, given["labels"])
        return self.task_outputs(outputs, loss, logits=logits)


@keras.saving.register_keras_serializable(package="act")
class TFAlbertActForSequenceClassification(TFAlbertActPreTrainedModel):
    """Classification/regression on the pooled output (transformers' problem_type rules)."""

    label_names = ("labels",)
    prediction_names = ("logits",)

    def __init__(self, config: AlbertActConfig | dict, name="tf_albert_act_for_sequence_classification", **kwargs):
        super().__init__(config, name=name, **kwargs)
        dtype = self.dtype_policy
        self.num_labels = self.config.num_labels
        self.albert = TFAlbertActModel(self.config, name="albert", dtype=dtype)
        self.dropout = keras.layers.Dropout(self.config.classifier_dropout_prob, dtype=dtype)
        self.classifier = dense(self.num_labels, "classifier", self.config, dtype, self.config.hidden_size)

    def call(self, inputs, attention_mask=None, token_type_ids=None, labels=None, training=None, **kwargs):
        inputs, given = self.split_labels(inputs, labels=labels)
        outputs = self.encode(inputs, attention_mask, token_type_ids, training, **kwargs)
        logits = self.classifier(self.dropout(outputs["pooler_output"], training=training))
        labels, loss = given["labels"], None
        if labels is not None:
            labels = tf.convert_to_tensor(labels)
            problem, scores = problem_type(self.config, labels.dtype.is_integer), tf.cast(logits, loss_dtype(logits))
            if problem == "regression":
                if self.num_labels == 1:
                    scores, labels = tf.squeeze(scores, -1), tf.reshape(labels, (-1,))
                loss = tf.reduce_mean(tf.square(scores - tf.cast(labels, scores.dtype)))
            elif problem == "single_label_classification":
                loss = cross_entropy(logits, labels)
            else:
                loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                    labels=tf.cast(labels, scores.dtype), logits=scores))
        return self.task_outputs(outputs, loss, logits=logits)


@keras.saving.register_keras_serializable(package="act")
class TFAlbertActForTokenClassification(TFAlbertActPreTrainedModel):
    """A label per token (e.g. NER), on the final token states. `labels`: (batch, seq), -100 = ignored."""

    label_names = ("labels",)
    prediction_names = ("logits",)

    def __init__(self, config: AlbertActConfig | dict, name="tf_albert_act_for_token_classification", **kwargs):
        super().__init__(config, name=name, **kwargs)
        dtype = self.dtype_policy
        self.num_labels = self.config.num_labels
        self.albert = TFAlbertActModel(self.config, add_pooling_layer=False, name="albert", dtype=dtype)
        self.dropout = keras.layers.Dropout(self.config.classifier_dropout_prob, dtype=dtype)
        self.classifier = projection(self.num_labels, "classifier", self.config, dtype, self.config.hidden_size)

    def call(self, inputs, attention_mask=None, token_type_ids=None, labels=None, training=None, **kwargs):
        inputs, given = self.split_labels(inputs, labels=labels)
        outputs = self.encode(inputs, attention_mask, token_type_ids, training, **kwargs)
        logits = self.classifier(self.dropout(outputs["last_hidden_state"], training=training))
        loss = None
        if given["labels"] is not None:
            loss = cross_entropy(logits, given["labels"])
        return self.task_outputs(outputs, loss, logits=logits)


@keras.saving.register_keras_serializable(package="act")
class TFAlbertActForQuestionAnswering(TFAlbertActPreTrainedModel):
    """Extractive QA: start/end logits per token (`qa_outputs`, num_labels = 2).

    `start_positions` / `end_positions`: (batch,); positions outside the input are ignored, as in transformers.
    """

    label_names = ("start_positions", "end_positions")
    prediction_names = ("start_logits", "end_logits")

    def __init__(self, config: AlbertActConfig | dict, name="tf_albert_act_for_question_answering", **kwargs):
        super().__init__(config, name=name, **kwargs)
        self.num_labels = self.config.num_labels
        self.albert = TFAlbertActModel(self.config, add_pooling_layer=False, name="albert", dtype=self.dtype_policy)
        self.qa_outputs = projection(self.num_labels, "qa_outputs", self.config, self.dtype_policy,
                                     self.config.hidden_size)

    def call(self, inputs, attention_mask=None, token_type_ids=None, start_positions=None, end_positions=None,
             training=None, **kwargs):
        inputs, given = self.split_labels(inputs, start_positions=start_positions, end_positions=end_positions)
        outputs = self.encode(inputs, attention_mask, token_type_ids, training, **kwargs)
        logits = self.qa_outputs(outputs["last_hidden_state"])
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = None
        if given["start_positions"] is not None and given["end_positions"] is not None:
            ignored = tf.shape(start_logits)[1]  # positions outside the input are ignored, as in transformers

            def positions(value):
                return tf.clip_by_value(tf.reshape(tf.cast(value, "int32"), (-1,)), 0, ignored)

            loss = (cross_entropy(start_logits, positions(given["start_positions"]), ignore_index=ignored)
                    + cross_entropy(end_logits, positions(given["end_positions"]), ignore_index=ignored)) / 2
        return self.task_outputs(outputs, loss, start_logits=start_logits, end_logits=end_logits)


@keras.saving.register_keras_serializable(package="act")
class TFAlbertActForMultipleChoice(TFAlbertActPreTrainedModel):
    """Multiple choice: inputs (batch, num_choices, seq_len), one score per choice from the pooled output.

    `updates` and `remainders` come back as (batch, num_choices, seq_len); `labels`: (batch,) the right choice.
    """

    label_names = ("labels",)
    prediction_names = ("logits",)
    input_rank = 3

    def __init__(self, config: AlbertActConfig | dict, name="tf_albert_act_for_multiple_choice", **kwargs):
        super().__init__(config, name=name, **kwargs)
        dtype = self.dtype_policy
        self.albert = TFAlbertActModel(self.config, name="albert", dtype=dtype)
        self.dropout = keras.layers.Dropout(self.config.classifier_dropout_prob, dtype=dtype)
        self.classifier = dense(1, "classifier", self.config, dtype, self.config.hidden_size)

    def call(self, inputs, attention_mask=None, token_type_ids=None, labels=None, training=None, **kwargs):
        inputs, given = self.split_labels(inputs, labels=labels)
        extra = {name: kwargs.pop(name) for name in ("position_ids", "inputs_embeds") if name in kwargs}
        features = self.unpack_inputs(inputs, attention_mask=attention_mask, token_type_ids=token_type_ids, **extra)
        reference = features["input_ids"] if features["input_ids"] is not None else features["inputs_embeds"]
        if reference is None:
            raise ValueError("Pass exactly one of input_ids or inputs_embeds (got neither)")
        for name, tensor in features.items():
            if tensor is not None and len(tensor.shape) != (4 if name == "inputs_embeds" else 3):
                raise ValueError(f"multiple choice inputs must have shape (batch, num_choices, seq_len); {name} has "
                                 f"shape {tuple(tensor.shape)}")
        shape = tf.shape(tf.convert_to_tensor(reference))[:3]

        def flat(tensor):  # (batch, choices, ...) -> (batch * choices, ...), keeping the static dimensions
            tensor = tf.convert_to_tensor(tensor)
            tail = [size if size is not None else tf.shape(tensor)[i + 2] for i, size in enumerate(tensor.shape[2:])]
            return tf.reshape(tensor, [-1, *tail])

        outputs = self.encode({name: flat(tensor) for name, tensor in features.items() if tensor is not None},
                              None, None, training, **kwargs)
        logits = tf.reshape(self.classifier(self.dropout(outputs["pooler_output"], training=training)), shape[:2])
        loss = None if given["labels"] is None else cross_entropy(logits, given["labels"])
        outputs = {**outputs, "updates": tf.reshape(outputs["updates"], shape),
                   "remainders": tf.reshape(outputs["remainders"], shape)}
        return self.task_outputs(outputs, loss, logits=logits)


__all__ = [
    "TFAlbertActEmbeddings",
    "TFAlbertActAttention",
    "TFAlbertActHaltingUnit",
    "TFAlbertActLayer",
    "TFAlbertActEncoder",
    "TFAlbertActPreTrainedModel",
    "TFAlbertActModel",
    "TFAlbertActMLMHead",
    "TFAlbertActSOPHead",
    "TFAlbertActForPreTraining",
    "TFAlbertActForMaskedLM",
    "TFAlbertActForSequenceClassification",
    "TFAlbertActForTokenClassification",
    "TFAlbertActForQuestionAnswering",
    "TFAlbertActForMultipleChoice",
]
