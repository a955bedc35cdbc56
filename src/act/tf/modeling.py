"""Keras 3 (TensorFlow backend) ALBERT-ACT. Mirrors `act/pt/modeling.py`: same classes, order and attribute names.

What is computed is specified in ACT_SEMANTICS.md: one shared ALBERT layer applied again and again, each
token deciding with Adaptive Computation Time (Graves, 2016) when to stop being updated.

Sublayers are named (Keras ``name=``) like the PyTorch attributes, so a variable path below the model is the
Keras name of a canonical parameter (`act.checkpoints.names.canonical_to_keras`). Every projection applied to a rank-3
tensor is an `EinsumDense` (`Dense` on rank-3 tensors has a gradient that fails under XLA); the ACT loop is a
`tf.while_loop` bounded by the iteration cap, so the model compiles with ``jit_compile=True``.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from ..checkpoints import loading as checkpoint_loading
from ..checkpoints import names as checkpoint_names
from ..configuration import AlbertActConfig

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # the serving signature
OPTIONAL_INPUT_NAMES = ("position_ids", "inputs_embeds")  # also accepted by `call`, as in PyTorch


def gelu(x):
    """Exact (erf) GELU, transformers' `gelu`. Spelled out: `tf.nn.gelu` loses ~1e-9 in float64."""
    return 0.5 * x * (1.0 + tf.math.erf(x / tf.cast(np.sqrt(2.0), x.dtype)))


def gelu_new(x):
    """Tanh-approximated GELU, transformers' `gelu_new` (the original TF1 BERT/ALBERT `gelu`)."""
    return 0.5 * x * (1.0 + tf.tanh(tf.cast(np.sqrt(2.0 / np.pi), x.dtype) * (x + 0.044715 * x * x * x)))


ACT2FN = {
    "gelu": gelu,
    "gelu_new": gelu_new,
    "gelu_pytorch_tanh": gelu_new,
    "relu": tf.nn.relu,
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
    "tanh": tf.tanh,
}


def get_activation(name: str):
    """The TensorFlow function for a `hidden_act` name (the same functions as transformers' ACT2FN)."""
    if name not in ACT2FN:
        raise ValueError(f"hidden_act={name!r} is not supported; use one of {tuple(ACT2FN)}")
    return ACT2FN[name]


def halting_dtype(compute_dtype: str) -> str:
    """The halting arithmetic runs in float32 (float64 for a float64 model), even under mixed precision."""
    return "float64" if compute_dtype == "float64" else "float32"


def additive_mask_value(dtype: str) -> float:
    """A large finite negative number for masked attention logits (never -inf, so all-padding rows stay finite)."""
    return max(float(tf.as_dtype(dtype).min) / 2.0, -1e9)  # tf's dtypes know bfloat16; np.finfo does not


def initializer(config: AlbertActConfig):
    return keras.initializers.RandomNormal(stddev=config.initializer_range)


def projection(units: int, name: str, config: AlbertActConfig, dtype) -> keras.layers.EinsumDense:
    """A Linear on (batch, seq, features) as an `EinsumDense`; its kernel is (in, out) like a Dense kernel."""
    return keras.layers.EinsumDense(
        "abc,cd->abd", output_shape=(None, units), bias_axes="d", kernel_initializer=initializer(config),
        bias_initializer="zeros", name=name, dtype=dtype,
    )


IGNORE_INDEX = -100  # the label a cross-entropy ignores (torch's default `ignore_index`)
CONSTRUCTOR_KWARGS = ("name", "dtype", "trainable", "add_pooling_layer")  # from_pretrained keywords that are not config overrides


def loss_dtype(logits) -> str:
    """Losses are computed in float32 (float64 for a float64 model), even under mixed precision."""
    return halting_dtype(logits.dtype.name)


def cross_entropy(logits, labels, ignore_index=IGNORE_INDEX):
    """`torch.nn.functional.cross_entropy` on (..., classes) logits and integer labels of the leading shape:
    the mean over the labels that are not `ignore_index` (NaN when every label is ignored, as in torch)."""
    classes = logits.shape[-1] if logits.shape[-1] is not None else tf.shape(logits)[-1]
    logits = tf.reshape(tf.cast(logits, loss_dtype(logits)), (-1, classes))
    labels = tf.reshape(tf.cast(labels, "int32"), (-1,))
    keep = labels != tf.cast(ignore_index, "int32")
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.where(keep, labels, 0), logits=logits)
    weight = tf.cast(keep, losses.dtype)
    return tf.reduce_sum(losses * weight) / tf.reduce_sum(weight)


def is_integer(tensor) -> bool:
    dtype = tensor.dtype
    return dtype.is_integer if isinstance(dtype, tf.DType) else np.issubdtype(dtype, np.integer)


def halting_step(halting, remainders, updates, probability, threshold):
    """One ACT halting step (ACT_SEMANTICS.md), on (batch, seq) tensors, in the spec's order of operations.

    Returns the new (halting, remainders, updates) and each token's update weight w: its new state is
    ``out * w + h * (1 - w)`` (w = 0 for a token that is not running: it keeps its state exactly).
    """
    dtype = halting.dtype
    running = tf.cast(halting < 1.0, dtype)
    total = halting + probability * running
    new_halted = tf.cast(total > threshold, dtype) * running
    running = tf.cast(total <= threshold, dtype) * running
    halting = halting + probability * running
    remainders = remainders + new_halted * (1.0 - halting)
    halting = halting + new_halted * remainders
    updates = updates + running + new_halted
    return halting, remainders, updates, probability * running + new_halted * remainders


class TFAlbertActEmbeddings(keras.layers.Layer):
    """Word + position + token type embeddings of width `embedding_size`, LayerNorm, dropout."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        dtype = self.dtype_policy
        self.word_embeddings = keras.layers.Embedding(
            config.vocab_size, config.embedding_size, embeddings_initializer=initializer(config),
            name="word_embeddings", dtype=dtype)
        self.position_embeddings = keras.layers.Embedding(
            config.max_position_embeddings, config.embedding_size, embeddings_initializer=initializer(config),
            name="position_embeddings", dtype=dtype)
        self.token_type_embeddings = keras.layers.Embedding(
            config.type_vocab_size, config.embedding_size, embeddings_initializer=initializer(config),
            name="token_type_embeddings", dtype=dtype)
        self.LayerNorm = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="LayerNorm", dtype=dtype)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=dtype)

    def build(self, input_shape=None):
        self.word_embeddings.build((None, None))
        self.position_embeddings.build((None, None))
        self.token_type_embeddings.build((None, None))
        self.LayerNorm.build((None, None, self.config.embedding_size))
        pad = self.config.pad_token_id
        if pad is not None:  # like torch's Embedding(padding_idx=...): the padding row starts at zero
            table = self.word_embeddings.embeddings
            table.assign(tf.tensor_scatter_nd_update(table, [[pad]], tf.zeros((1, table.shape[1]), table.dtype)))

    def call(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, training=None):
        if inputs_embeds is not None:
            inputs_embeds = tf.cast(inputs_embeds, self.compute_dtype)
        else:
            inputs_embeds = self.word_embeddings(input_ids)
            if self.config.pad_token_id is not None:
                # like torch's Embedding(padding_idx=...): the padding token's row gets no gradient
                is_pad = (input_ids == self.config.pad_token_id)[..., None]
                inputs_embeds = tf.where(is_pad, tf.stop_gradient(inputs_embeds), inputs_embeds)
        shape = tf.shape(inputs_embeds)
        if position_ids is None:
            position_ids = tf.range(shape[1])[None, :]
        if token_type_ids is None:
            token_type_ids = tf.zeros(shape[:2], "int32")
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings), training=training)


class TFAlbertActAttention(keras.layers.Layer):
    """Multi-head self-attention of the shared layer (query/key/value projections and output `dense`)."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.attention_head_size**-0.5
        dtype = self.dtype_policy
        self.query = projection(config.hidden_size, "query", config, dtype)
        self.key = projection(config.hidden_size, "key", config, dtype)
        self.value = projection(config.hidden_size, "value", config, dtype)
        self.dense = projection(config.hidden_size, "dense", config, dtype)
        self.attention_dropout = keras.layers.Dropout(config.attention_probs_dropout_prob, dtype=dtype)

    def build(self, input_shape=None):
        shape = (None, None, self.config.hidden_size)
        for sublayer in (self.query, self.key, self.value, self.dense):
            sublayer.build(shape)

    def split_heads(self, x):
        """(batch, seq, hidden) -> (batch, heads, seq, head_size)."""
        shape = tf.shape(x)
        x = tf.reshape(x, (shape[0], shape[1], self.num_attention_heads, self.attention_head_size))
        return tf.transpose(x, (0, 2, 1, 3))

    def call(self, hidden_states, attention_mask=None, output_attentions=False, training=None):
        """`attention_mask` is additive, (batch, 1, 1, seq): 0 where attended, a large negative value on padding."""
        query = self.split_heads(self.query(hidden_states))
        key = self.split_heads(self.key(hidden_states))
        value = self.split_heads(self.value(hidden_states))
        scores = tf.einsum("bhqd,bhkd->bhqk", query, key) * tf.cast(self.scaling, query.dtype)
        if attention_mask is not None:
            scores = scores + tf.cast(attention_mask, scores.dtype)
        weights = tf.nn.softmax(scores, axis=-1)
        dropped = self.attention_dropout(weights, training=training)
        context = tf.transpose(tf.einsum("bhqk,bhkd->bhqd", dropped, value), (0, 2, 1, 3))
        shape = tf.shape(hidden_states)
        context = tf.reshape(context, (shape[0], shape[1], self.config.hidden_size))
        return self.dense(context), (weights if output_attentions else None)


class TFAlbertActHaltingUnit(keras.layers.Layer):
    """The ACT halting unit: p = sigmoid(dense(h)), one probability per token."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.dense = projection(1, "dense", config, self.dtype_policy)

    def build(self, input_shape=None):
        self.dense.build((None, None, self.config.hidden_size))

    def call(self, hidden_states):
        return tf.squeeze(tf.sigmoid(self.dense(hidden_states)), -1)


class TFAlbertActLayer(keras.layers.Layer):
    """The one shared post-LayerNorm transformer layer, with the halting unit `act`."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        dtype = self.dtype_policy
        self.attention = TFAlbertActAttention(config, name="attention", dtype=dtype)
        self.LayerNorm = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="LayerNorm", dtype=dtype)
        self.ffn = projection(config.intermediate_size, "ffn", config, dtype)
        self.ffn_output = projection(config.hidden_size, "ffn_output", config, dtype)
        self.full_layer_layer_norm = keras.layers.LayerNormalization(
            epsilon=config.layer_norm_eps, name="full_layer_layer_norm", dtype=dtype)
        self.act = TFAlbertActHaltingUnit(config, name="act", dtype=dtype)
        self.activation = get_activation(config.hidden_act)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=dtype)

    def build(self, input_shape=None):
        hidden = (None, None, self.config.hidden_size)
        self.attention.build(hidden)
        self.LayerNorm.build(hidden)
        self.ffn.build(hidden)
        self.ffn_output.build((None, None, self.config.intermediate_size))
        self.full_layer_layer_norm.build(hidden)
        self.act.build(hidden)

    def call(self, hidden_states, attention_mask=None, output_attentions=False, training=None):
        """Returns the layer output, the halting probabilities (batch, seq) and the attention map (or None)."""
        attention_output, weights = self.attention(
            hidden_states, attention_mask, output_attentions=output_attentions, training=training)
        attention_output = self.LayerNorm(hidden_states + self.dropout(attention_output, training=training))
        ffn_output = self.ffn_output(self.activation(self.ffn(attention_output)))
        output = self.full_layer_layer_norm(attention_output + self.dropout(ffn_output, training=training))
        return output, self.act(output), weights


class TFAlbertActEncoder(keras.layers.Layer):
    """Projects the embeddings to `hidden_size`, then runs the ACT loop over the shared `albert_layer`.

    Two loops with the same halting bookkeeping (ACT_SEMANTICS.md), as in PyTorch:

    - the dense loop applies the layer to every token at every iteration (training, `output_hidden_states`,
      `output_attentions`, inputs whose batch or sequence length is unknown when traced, `config.act_fast_path
      = False`);
    - the fast loop (`fast_step`, the default for inference) computes the layer only for the running tokens. XLA
      needs static shapes, so their number cannot be the size of a tensor: each iteration picks, with
      `tf.switch_case`, the smallest of a few static capacities (all tokens, 1/2, 1/4, 1/8) that holds every
      running token, gathers that many tokens (running ones first), computes their queries, FFN and halting
      unit, and scatters the results back. Keys/values of every token are kept in a cache refreshed only for
      the gathered tokens; the attention core itself (a few % of the layer) stays dense.
    """

    FAST_BUCKETS = 4

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        dtype = self.dtype_policy
        self.embedding_hidden_mapping_in = projection(config.hidden_size, "embedding_hidden_mapping_in", config, dtype)
        self.albert_layer = TFAlbertActLayer(config, name="albert_layer", dtype=dtype)

    def build(self, input_shape=None):
        self.embedding_hidden_mapping_in.build((None, None, self.config.embedding_size))
        self.albert_layer.build((None, None, self.config.hidden_size))

    def call(self, embeddings, attention_mask, output_hidden_states=False, output_attentions=False, training=None):
        """`attention_mask`: (batch, seq), 1 for tokens, 0 for padding. Returns a dict (see `TFAlbertActModel`)."""
        hidden = self.embedding_hidden_mapping_in(embeddings)
        if self.use_fast_path(hidden, output_hidden_states, output_attentions, training):
            return self.call_fast(hidden, attention_mask)
        state_dtype = halting_dtype(hidden.dtype.name)
        mask = tf.cast(attention_mask, state_dtype)
        additive_mask = ((1.0 - tf.cast(attention_mask, hidden.dtype))
                         * additive_mask_value(hidden.dtype.name))[:, None, None, :]
        cap = int(self.config.num_hidden_layers)
        threshold = 1.0 - self.config.act_epsilon

        halting = 1.0 - mask  # padding starts halted and is never updated
        remainders = tf.zeros_like(mask)
        updates = tf.zeros_like(mask)
        # Histories: slot 0 is the projected embedding, slot i the state after iteration i. A fixed size keeps
        # the loop XLA-compilable; slots after the last iteration are filled after the loop (see `_history`).
        all_hidden = tf.TensorArray(hidden.dtype, size=cap + 1).write(0, hidden) if output_hidden_states else None
        all_attentions = tf.TensorArray(hidden.dtype, size=cap) if output_attentions else None

        # Every token still below the threshold has run at every iteration so far, so its update count equals
        # the iteration number: bounding the loop by the cap is the spec's `N < cap` condition.
        def condition(step, hidden, halting, remainders, updates, all_hidden, all_attentions):
            return tf.reduce_any(halting < threshold)

        def body(step, hidden, halting, remainders, updates, all_hidden, all_attentions):
            output, probability, weights = self.albert_layer(
                hidden, additive_mask, output_attentions=output_attentions, training=training)
            halting, remainders, updates, weight = halting_step(
                halting, remainders, updates, tf.cast(probability, state_dtype), threshold)
            weight = tf.cast(weight, hidden.dtype)[..., None]
            hidden = output * weight + hidden * (1.0 - weight)
            if output_hidden_states:
                all_hidden = all_hidden.write(step + 1, hidden)
            if output_attentions:
                all_attentions = all_attentions.write(step, weights)
            return step + 1, hidden, halting, remainders, updates, all_hidden, all_attentions

        # A TensorArray cannot be None in tf.while_loop's state: an unused history is a dummy scalar.
        unused = tf.constant(0)
        steps, hidden, halting, remainders, updates, all_hidden, all_attentions = tf.while_loop(
            condition, body,
            (tf.constant(0), hidden, halting, remainders, updates,
             unused if all_hidden is None else all_hidden, unused if all_attentions is None else all_attentions),
            maximum_iterations=cap)

        return {
            "last_hidden_state": hidden,
            "updates": updates,
            "remainders": remainders,
            "hidden_states": self._history(all_hidden, steps, cap + 1, 1, hidden) if output_hidden_states else None,
            "attentions": self._history(all_attentions, steps, cap, 0, None) if output_attentions else None,
        }

    def use_fast_path(self, hidden, output_hidden_states=False, output_attentions=False, training=None) -> bool:
        """Whether `call` takes the fast loop (see the class docstring)."""
        return (bool(self.config.act_fast_path) and not training and not output_hidden_states
                and not output_attentions and hidden.shape[0] is not None and hidden.shape[1] is not None)

    def call_fast(self, hidden, attention_mask):
        """The fast ACT loop: `tf.switch_case` over static capacities inside the `tf.while_loop`."""
        state_dtype = halting_dtype(hidden.dtype.name)
        mask = tf.cast(attention_mask, state_dtype)
        additive_mask = ((1.0 - tf.cast(attention_mask, hidden.dtype))
                         * additive_mask_value(hidden.dtype.name))[:, None, None, :]
        cap = int(self.config.num_hidden_layers)
        threshold = 1.0 - self.config.act_epsilon
        shape = (int(hidden.shape[0]), int(hidden.shape[1]), self.config.hidden_size)
        capacities = [shape[0] * shape[1]]
        while len(capacities) < self.FAST_BUCKETS and capacities[-1] > 1:
            capacities.append((capacities[-1] + 1) // 2)
        attention = self.albert_layer.attention
        state = (hidden, attention.key(hidden), attention.value(hidden), 1.0 - mask,  # padding starts halted
                 tf.zeros_like(mask), tf.zeros_like(mask))

        def condition(hidden, keys, values, halting, remainders, updates):
            return tf.reduce_any(halting < threshold)

        def body(*state):
            count = tf.reduce_sum(tf.cast(state[3] < 1.0, tf.int32))
            branch = tf.reduce_sum(tf.cast(tf.constant(capacities[1:], tf.int32) >= count, tf.int32))
            return tf.switch_case(branch, [
                (lambda capacity=capacity: self.fast_step(capacity, state, additive_mask, threshold, shape))
                for capacity in capacities])

        hidden, _, _, halting, remainders, updates = tf.while_loop(condition, body, state, maximum_iterations=cap)
        return {"last_hidden_state": hidden, "updates": updates, "remainders": remainders,
                "hidden_states": None, "attentions": None}

    def fast_step(self, capacity, state, additive_mask, threshold, shape):
        """One iteration computing the layer for `capacity` tokens (every running token, then halted fillers
        whose update weight is 0). Same bookkeeping, same operation order as the dense loop."""
        hidden, keys, values, halting, remainders, updates = state
        batch, length, width = shape
        layer = self.albert_layer
        attention = layer.attention
        state_dtype = halting.dtype
        run_mask = halting < 1.0
        flat = tf.reshape(hidden, (batch * length, width))
        order = tf.argsort(tf.cast(tf.reshape(run_mask, (-1,)), tf.int32), direction="DESCENDING",
                           stable=True)[:capacity][:, None]
        states = tf.gather_nd(flat, order)[None]  # (1, capacity, hidden)
        # attention core over every position (queries of the others are zero and their context is dropped)
        query = tf.scatter_nd(order, attention.query(states)[0], (batch * length, width))
        query = attention.split_heads(tf.reshape(query, (batch, length, width)))
        scores = tf.einsum("bhqd,bhkd->bhqk", query, attention.split_heads(keys)) * tf.cast(attention.scaling,
                                                                                             query.dtype)
        weights = tf.nn.softmax(scores + tf.cast(additive_mask, scores.dtype), axis=-1)
        context = tf.transpose(tf.einsum("bhqk,bhkd->bhqd", weights, attention.split_heads(values)), (0, 2, 1, 3))
        context = tf.gather_nd(tf.reshape(context, (batch * length, width)), order)[None]
        attention_output = layer.LayerNorm(states + attention.dense(context))
        output = layer.full_layer_layer_norm(
            attention_output + layer.ffn_output(layer.activation(layer.ffn(attention_output))))
        probability = tf.scatter_nd(order, tf.cast(layer.act(output)[0], state_dtype), (batch * length,))
        probability = tf.reshape(probability, (batch, length))
        halting, remainders, updates, weight = halting_step(halting, remainders, updates, probability, threshold)
        weight = tf.gather_nd(tf.reshape(tf.cast(weight, hidden.dtype), (-1,)), order)[None, :, None]
        new_states = output * weight + states * (1.0 - weight)  # fillers: weight 0, the state exactly

        def refresh(table, rows):
            return tf.reshape(tf.tensor_scatter_nd_update(tf.reshape(table, (-1, width)), order, rows[0]),
                              (batch, length, width))

        return (refresh(hidden, new_states), refresh(keys, attention.key(new_states)),
                refresh(values, attention.value(new_states)), halting, remainders, updates)

    @staticmethod
    def _history(array, steps, size, offset, fill):
        """A TensorArray history as a tuple: eagerly exactly the written slots (like PyTorch), in a graph all
        `size` slots, the unwritten ones holding `fill` (the final state: halted tokens no longer change) or
        zeros (attention maps of iterations that did not run)."""
        if tf.executing_eagerly():
            return tuple(array.read(i) for i in range(int(steps) + offset))
        stacked = array.stack()  # unwritten slots read as zeros
        if fill is not None:
            written = tf.range(size) < steps + offset
            stacked = tf.where(tf.reshape(written, (-1, 1, 1, 1)), stacked, fill[None])
        return tuple(tf.unstack(stacked, num=size))


class TFAlbertActPreTrainedModel(keras.Model):
    """Config (de)serialisation, checkpoint loading/saving in the canonical format, input validation, and what
    every task model shares (PyTorch keeps the same helpers on `AlbertActPreTrainedModel`):

    - labels: `call` takes them as keywords or as entries of the input dict (`label_names`);
    - the ponder cost: with ``config.ponder_penalty > 0`` every task call adds ``ponder_penalty * ponder_cost`` with
      `add_loss`, so `fit` with a compiled task loss trains with it; with labels, the returned ``loss`` is the task
      loss plus that term, exactly like PyTorch;
    - `compile(loss=...)`: the compiled loss (and metrics) see the prediction outputs (`prediction_names`) only:
      the logits tensor for one prediction, else a dict of the predictions (compile with a dict of losses, and
      give `fit` a dict of targets with the same keys);
    - loading: `from_pretrained` loads a checkpoint of the bare model or of any head.
    """

    def __init__(self, config: AlbertActConfig | dict, **kwargs):
        if isinstance(config, dict):
            config = AlbertActConfig.from_dict(config)
        config.check()  # validated where a model is built: a ValueError naming the key
        super().__init__(**kwargs)
        self.config = config

    # Task models: the label keywords `call` takes (also as entries of the input dict), and the outputs the
    # compiled loss and metrics see (the logits tensor for one name, else a dict). The bare model: none.
    label_names: tuple = ()
    prediction_names: tuple = ()

    # -- Keras serialisation ----------------------------------------------------------------------------------

    def get_config(self):
        base = super().get_config()
        base.update({"config": self.config.to_dict()})
        return base

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["config"] = AlbertActConfig.from_dict(config["config"])
        return cls(**config)

    def get_build_config(self):
        return {"built": True}

    def build_from_config(self, config):
        self.build()

    # -- canonical weights --------------------------------------------------------------------------------------

    def _relative_path(self, variable) -> str:
        """A variable's path below this model: Keras 3 prefixes the model's own name (its build scope)."""
        prefix = self.path + "/"
        if not variable.path.startswith(prefix):
            raise RuntimeError(f"variable {variable.path!r} was not created below the model scope {self.path!r}")
        return variable.path[len(prefix):]

    def canonical_variables(self) -> dict:
        """canonical name -> (Keras variable, transpose?), through `act.checkpoints.names.keras_to_canonical`."""
        if not self.built:
            self.build()
        table = {}
        for variable in self.weights:
            name, transpose = checkpoint_names.keras_to_canonical(self._relative_path(variable))
            if name in table:
                raise RuntimeError(f"two Keras variables map to the canonical name {name!r}")
            table[name] = (variable, transpose)
        return table

    def canonical_state_dict(self) -> dict:
        """The weights as canonical (PyTorch) names and layouts, NumPy arrays."""
        state = {}
        for name, (variable, transpose) in self.canonical_variables().items():
            value = keras.ops.convert_to_numpy(variable)
            state[name] = np.ascontiguousarray(value.T if transpose else value)
        return state

    def expected_shapes(self) -> dict:
        return {name: tuple(reversed(variable.shape)) if transpose else tuple(variable.shape)
                for name, (variable, transpose) in self.canonical_variables().items()}

    # -- task models: labels, the ponder cost, compile / fit ----------------------------------------------------

    def split_labels(self, inputs, **labels):
        """Take the label entries out of a dict input; labels given as keywords take precedence."""
        if isinstance(inputs, dict):
            inputs = dict(inputs)
            for name in self.label_names:
                value = inputs.pop(name, None)
                if labels.get(name) is None:
                    labels[name] = value
        return inputs, labels

    def encode(self, inputs, attention_mask, token_type_ids, training, output_attentions, output_hidden_states):
        return self.albert(inputs, attention_mask=attention_mask, token_type_ids=token_type_ids, training=training,
                           output_attentions=output_attentions, output_hidden_states=output_hidden_states)

    def task_outputs(self, outputs, loss, **predictions) -> dict:
        """The output dict: loss (+ penalty * ponder cost), the predictions, the halting fields; adds the ponder
        term with `add_loss` when the penalty is > 0 (ACT_SEMANTICS.md, "Ponder cost")."""
        penalty = float(self.config.ponder_penalty or 0.0)
        ponder_cost = outputs["ponder_cost"]
        if penalty:
            self.add_loss(penalty * ponder_cost)
        result = {}
        if loss is not None:
            result["loss"] = loss + tf.cast(penalty * ponder_cost, loss.dtype) if penalty else loss
        result.update(predictions)
        for name in ("updates", "remainders", "ponder_cost", "hidden_states", "attentions"):
            if name in outputs:
                result[name] = outputs[name]
        return result

    def predictions_for_loss(self, y_pred):
        if not isinstance(y_pred, dict) or not self.prediction_names:
            return y_pred
        if len(self.prediction_names) == 1:
            return y_pred[self.prediction_names[0]]
        return {name: y_pred[name] for name in self.prediction_names}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss on the predictions, plus the `add_loss` terms (the ponder cost)."""
        return super().compute_loss(x=x, y=y, y_pred=self.predictions_for_loss(y_pred), sample_weight=sample_weight,
                                    training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, self.predictions_for_loss(y_pred), sample_weight)

    # -- weights ------------------------------------------------------------------------------------------------

    def get_input_embeddings(self) -> keras.layers.Embedding:
        """The word embeddings (a task model's are its encoder's; `TFAlbertActModel` owns them)."""
        return getattr(self, checkpoint_names.BASE_PREFIX).get_input_embeddings()

    def load_canonical_state_dict(self, state: dict, source: str = "state dict", strict: bool = True):
        """Check a canonical state dict against the model (names, shapes, dtypes) and assign it, through
        `act.checkpoints.loading` (the path every loader takes); returns its `LoadReport`.

        Accepted as in PyTorch: in a task model, the encoder without the `albert.` prefix (a bare-model
        checkpoint); in the bare model, a task checkpoint (its encoder is taken, its head left alone); tied copies
        (`act.checkpoints.names.TIED`) and, in a model without a pooler, the checkpoint's pooler. ``strict=False``
        (what `from_pretrained` uses, like transformers): head weights of this model that the checkpoint lacks keep
        their fresh initialisation, and weights of other heads are skipped, with a warning; the encoder must be
        complete either way.
        """
        return checkpoint_loading.load_into_keras(self, state, source=source, strict=strict)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs):
        """Load `config.json` and the weights (model.safetensors, pytorch_model.bin or tf_model.h5) of a directory:
        any checkpoint of the bare model or of a head.

        Keywords that are config attributes override `config.json` (e.g. ``num_labels=3``, ``ponder_penalty=1e-3``),
        as in transformers; ``name``, ``dtype`` and ``trainable`` go to the Keras constructor.
        """
        return checkpoint_loading.keras_from_pretrained(cls, directory, kwargs, CONSTRUCTOR_KWARGS)

    def save_pretrained(self, directory: str | os.PathLike):
        """Write the canonical format (`config.json` + `model.safetensors`, PyTorch names): PyTorch loads it as is.
        Crash-safe (`act.checkpoints.atomic`): the directory's other files are kept."""
        return checkpoint_loading.save_keras(self, directory)

    # -- serving ------------------------------------------------------------------------------------------------

    @staticmethod
    def serving_input_signature(names=INPUT_NAMES):
        """The export signature: one dict of int32 (batch, seq_len) tensors, both dimensions dynamic."""
        return [{name: tf.TensorSpec((None, None), tf.int32, name=name) for name in names}]

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """`keras.Model.export`; by default the signature is `serving_input_signature()` (any batch and length)."""
        if input_signature is None:
            if not self.built:
                self.build()
            input_signature = self.serving_input_signature()
        return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)

    # -- inputs -------------------------------------------------------------------------------------------------

    def check_inputs(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                     inputs_embeds=None):
        """Validate the inputs at the edge: raise a `ValueError` that says what was wrong and what was expected.

        Static shapes are always checked; values only when they are known (eager tensors or NumPy arrays).
        """
        config = self.config

        def concrete(x):
            if x is None or isinstance(x, np.ndarray):
                return x
            if isinstance(x, tf.Tensor) and hasattr(x, "numpy") and tf.executing_eagerly():
                try:
                    return x.numpy()
                except (AttributeError, TypeError, ValueError, NotImplementedError):
                    return None
            return None

        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds (got "
                             f"{'both' if input_ids is not None else 'neither'})")
        if input_ids is not None:
            shape = tuple(input_ids.shape)
            if len(shape) != 2:
                raise ValueError(f"input_ids must have shape (batch, seq_len), got {shape}")
            if not (input_ids.dtype.is_integer if isinstance(input_ids.dtype, tf.DType)
                    else np.issubdtype(input_ids.dtype, np.integer)):
                raise ValueError(f"input_ids must be integer token ids, got dtype {input_ids.dtype}")
        else:
            if len(inputs_embeds.shape) != 3 or inputs_embeds.shape[-1] != config.embedding_size:
                raise ValueError(f"inputs_embeds must have shape (batch, seq_len, embedding_size="
                                 f"{config.embedding_size}), got {tuple(inputs_embeds.shape)}")
            shape = tuple(inputs_embeds.shape[:2])
        if shape[1] is not None and shape[1] > config.max_position_embeddings:
            raise ValueError(
                f"sequence length {shape[1]} is longer than max_position_embeddings={config.max_position_embeddings}"
            )
        for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids),
                             ("position_ids", position_ids)):
            if tensor is None:
                continue
            other = tuple(tensor.shape)
            batch_ok = name == "position_ids" and other[:1] == (1,)  # one row of positions serves the batch
            if len(other) != 2 or any(a is not None and b is not None and a != b and not (i == 0 and batch_ok)
                                      for i, (a, b) in enumerate(zip(shape, other))):
                raise ValueError(f"{name} has shape {other} but the inputs have shape {shape}")

        ids = concrete(input_ids)
        if ids is not None and ids.size:
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= config.vocab_size:
                bad = low if low < 0 else high
                raise ValueError(f"token id {bad} in input_ids is out of range [0, vocab_size={config.vocab_size})")
        mask = concrete(attention_mask)
        if mask is not None and mask.size and not np.isin(mask, (0, 1)).all():
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
        for name, tensor, limit in (("token_type_ids", token_type_ids, config.type_vocab_size),
                                    ("position_ids", position_ids, config.max_position_embeddings)):
            values = concrete(tensor)
            if values is not None and values.size and (values.min() < 0 or values.max() >= limit):
                raise ValueError(f"{name} must lie in [0, {limit}), got values in "
                                 f"[{int(values.min())}, {int(values.max())}]")

    @staticmethod
    def unpack_inputs(inputs, **given) -> dict:
        """`inputs` is a dict with keys among `INPUT_NAMES` + `OPTIONAL_INPUT_NAMES` (``input_ids`` or
        ``inputs_embeds`` required), or the ids themselves. Entries of the dict win over keywords (`given`).
        Returns every name, None where absent."""
        names = INPUT_NAMES + OPTIONAL_INPUT_NAMES
        if isinstance(inputs, dict):
            unknown = set(inputs) - set(names)
            if unknown:
                raise ValueError(f"unknown inputs {sorted(unknown)}; expected keys among {names}")
            if "input_ids" not in inputs and "inputs_embeds" not in inputs:
                raise ValueError("inputs must contain 'input_ids' (or 'inputs_embeds')")
            given = {**given, **inputs}
        elif inputs is not None:
            given = {**given, "input_ids": inputs}
        return {name: given.get(name) for name in names}


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
        self.add_pooling_layer = bool(add_pooling_layer)
        dtype = self.dtype_policy
        self.embeddings = TFAlbertActEmbeddings(config, name="embeddings", dtype=dtype)
        self.encoder = TFAlbertActEncoder(config, name="encoder", dtype=dtype)
        if self.add_pooling_layer:
            self.pooler = keras.layers.Dense(config.hidden_size, kernel_initializer=initializer(config),
                                             name="pooler", dtype=dtype)
            self.pooler_activation = keras.layers.Activation("tanh", name="pooler_activation", dtype=dtype)
        else:
            self.pooler = None
            self.pooler_activation = None

    def build(self, input_shape=None):
        self.embeddings.build((None, None))
        self.encoder.build((None, None, self.config.embedding_size))
        if self.pooler is not None:
            self.pooler.build((None, self.config.hidden_size))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config["add_pooling_layer"] = self.add_pooling_layer
        return config

    def get_input_embeddings(self) -> keras.layers.Embedding:
        return self.embeddings.word_embeddings

    def call(self, inputs=None, attention_mask=None, token_type_ids=None, training=None, output_attentions=None,
             output_hidden_states=None, position_ids=None, inputs_embeds=None):
        given = self.unpack_inputs(inputs, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                   position_ids=position_ids, inputs_embeds=inputs_embeds)
        self.check_inputs(**given)
        input_ids, attention_mask, token_type_ids = given["input_ids"], given["attention_mask"], given["token_type_ids"]
        position_ids, inputs_embeds = given["position_ids"], given["inputs_embeds"]
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        if input_ids is not None:
            input_ids = tf.cast(input_ids, "int32")
        for_shape = input_ids if input_ids is not None else tf.convert_to_tensor(inputs_embeds)[..., 0]
        if token_type_ids is not None:
            token_type_ids = tf.cast(token_type_ids, "int32")
        if position_ids is not None:
            position_ids = tf.cast(position_ids, "int32")
        if attention_mask is None:
            attention_mask = tf.ones(tf.shape(for_shape)[:2], "int32")

        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, training=training)
        encoded = self.encoder(embeddings, attention_mask, output_hidden_states=bool(output_hidden_states),
                               output_attentions=bool(output_attentions), training=training)
        sequence_output = encoded["last_hidden_state"]
        updates, remainders = encoded["updates"], encoded["remainders"]
        mask = tf.cast(attention_mask, updates.dtype)
        output = {
            "last_hidden_state": sequence_output,
            "updates": updates,
            "remainders": remainders,
            # ACT_SEMANTICS.md "Ponder cost": per sequence the sum over its tokens, then the mean over the batch
            "ponder_cost": tf.reduce_mean(tf.reduce_sum((updates + remainders) * mask, axis=1)),
        }
        if self.pooler is not None:
            output["pooler_output"] = self.pooler_activation(self.pooler(sequence_output[:, 0]))
        if output_hidden_states:
            output["hidden_states"] = encoded["hidden_states"]
        if output_attentions:
            output["attentions"] = encoded["attentions"]
        return output


# ---------------------------------------------------------------------------------------------------------------
# Task heads (mirrors of the PyTorch heads, same order and attribute names)
# ---------------------------------------------------------------------------------------------------------------

class TFAlbertActMLMHead(keras.layers.Layer):
    """Masked-LM head: dense -> activation -> LayerNorm -> decoder (tied to the word embeddings) + bias.

    The decoder has no variables of its own: `call` takes the encoder's word-embedding matrix (vocab, emb) and
    computes ``h @ E^T + bias``, so the tie holds through training, saving and loading (canonical names:
    `predictions.bias`; `predictions.decoder.*` are the tied copies of `act.checkpoints.names.TIED`).
    """

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        dtype = self.dtype_policy
        self.LayerNorm = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="LayerNorm", dtype=dtype)
        self.dense = projection(config.embedding_size, "dense", config, dtype)
        self.activation = get_activation(config.hidden_act)

    def build(self, input_shape=None):
        self.dense.build((None, None, self.config.hidden_size))
        self.LayerNorm.build((None, None, self.config.embedding_size))
        self.bias = self.add_weight(name="bias", shape=(self.config.vocab_size,), initializer="zeros")

    def call(self, hidden_states, decoder_weight):
        """`decoder_weight`: the word embeddings (vocab, embedding_size). Returns (batch, seq, vocab) logits."""
        hidden_states = self.LayerNorm(self.activation(self.dense(hidden_states)))
        decoder_weight = tf.cast(decoder_weight, hidden_states.dtype)
        return tf.einsum("bse,ve->bsv", hidden_states, decoder_weight) + tf.cast(self.bias, hidden_states.dtype)


class TFAlbertActSOPHead(keras.layers.Layer):
    """Sentence-order prediction head on the pooled output (2 classes: in order, swapped)."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        dtype = self.dtype_policy
        self.dropout = keras.layers.Dropout(config.classifier_dropout_prob, dtype=dtype)
        self.classifier = keras.layers.Dense(2, kernel_initializer=initializer(config), name="classifier", dtype=dtype)

    def build(self, input_shape=None):
        self.classifier.build((None, self.config.hidden_size))

    def call(self, pooled_output, training=None):
        return self.classifier(self.dropout(pooled_output, training=training))


@keras.saving.register_keras_serializable(package="act")
class TFAlbertActForPreTraining(TFAlbertActPreTrainedModel):
    """ALBERT-ACT with the pre-training heads: masked LM + sentence-order prediction (+ ponder cost).

    Outputs ``prediction_logits`` (batch, seq, vocab) and ``sop_logits`` (batch, 2). `labels`: (batch, seq) token
    ids, -100 where not masked; `sentence_order_label`: (batch,), 1 = swapped. The loss is the sum of the given
    losses plus ``ponder_penalty * ponder_cost``.
    """

    label_names = ("labels", "sentence_order_label")
    prediction_names = ("prediction_logits", "sop_logits")

    def __init__(self, config: AlbertActConfig | dict, name="tf_albert_act_for_pre_training", **kwargs):
        super().__init__(config, name=name, **kwargs)
        dtype = self.dtype_policy
        self.albert = TFAlbertActModel(self.config, name="albert", dtype=dtype)
        self.predictions = TFAlbertActMLMHead(self.config, name="predictions", dtype=dtype)
        self.sop_classifier = TFAlbertActSOPHead(self.config, name="sop_classifier", dtype=dtype)

    def build(self, input_shape=None):
        self.albert.build()
        self.predictions.build()
        self.sop_classifier.build()
        self.built = True

    def get_output_embeddings(self) -> keras.layers.Embedding:
        """The decoder is the word-embedding layer itself (tied)."""
        return self.albert.get_input_embeddings()

    def call(self, inputs, attention_mask=None, token_type_ids=None, labels=None, sentence_order_label=None,
             training=None, output_attentions=None, output_hidden_states=None):
        inputs, given = self.split_labels(inputs, labels=labels, sentence_order_label=sentence_order_label)
        outputs = self.encode(inputs, attention_mask, token_type_ids, training, output_attentions,
                              output_hidden_states)
        prediction_scores = self.predictions(outputs["last_hidden_state"], self.get_output_embeddings().embeddings)
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

    def build(self, input_shape=None):
        self.albert.build()
        self.predictions.build()
        self.built = True

    def get_output_embeddings(self) -> keras.layers.Embedding:
        """The decoder is the word-embedding layer itself (tied)."""
        return self.albert.get_input_embeddings()

    def call(self, inputs, attention_mask=None, token_type_ids=None, labels=None, training=None,
             output_attentions=None, output_hidden_states=None):
        inputs, given = self.split_labels(inputs, labels=labels)
        outputs = self.encode(inputs, attention_mask, token_type_ids, training, output_attentions,
                              output_hidden_states)
        logits = self.predictions(outputs["last_hidden_state"], self.get_output_embeddings().embeddings)
        loss = None if given["labels"] is None else cross_entropy(logits, given["labels"])
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
        self.classifier = keras.layers.Dense(self.num_labels, kernel_initializer=initializer(self.config),
                                             name="classifier", dtype=dtype)

    def build(self, input_shape=None):
        self.albert.build()
        self.classifier.build((None, self.config.hidden_size))
        self.built = True

    def call(self, inputs, attention_mask=None, token_type_ids=None, labels=None, training=None,
             output_attentions=None, output_hidden_states=None):
        inputs, given = self.split_labels(inputs, labels=labels)
        outputs = self.encode(inputs, attention_mask, token_type_ids, training, output_attentions,
                              output_hidden_states)
        logits = self.classifier(self.dropout(outputs["pooler_output"], training=training))
        labels, loss = given["labels"], None
        if labels is not None:
            labels = labels if hasattr(labels, "dtype") else tf.convert_to_tensor(labels)  # a Python list
            problem_type = self.config.problem_type
            if problem_type is None:
                if self.num_labels == 1:
                    problem_type = "regression"
                elif is_integer(labels):
                    problem_type = "single_label_classification"
                else:
                    problem_type = "multi_label_classification"
                self.config.problem_type = problem_type
            scores = tf.cast(logits, loss_dtype(logits))
            if problem_type == "regression":
                if self.num_labels == 1:
                    scores, labels = tf.squeeze(scores, -1), tf.reshape(labels, (-1,))
                loss = tf.reduce_mean(tf.square(scores - tf.cast(labels, scores.dtype)))
            elif problem_type == "single_label_classification":
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
        self.classifier = projection(self.num_labels, "classifier", self.config, dtype)

    def build(self, input_shape=None):
        self.albert.build()
        self.classifier.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, inputs, attention_mask=None, token_type_ids=None, labels=None, training=None,
             output_attentions=None, output_hidden_states=None):
        inputs, given = self.split_labels(inputs, labels=labels)
        outputs = self.encode(inputs, attention_mask, token_type_ids, training, output_attentions,
                              output_hidden_states)
        logits = self.classifier(self.dropout(outputs["last_hidden_state"], training=training))
        loss = None if given["labels"] is None else cross_entropy(logits, given["labels"])
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
        dtype = self.dtype_policy
        self.num_labels = self.config.num_labels
        self.albert = TFAlbertActModel(self.config, add_pooling_layer=False, name="albert", dtype=dtype)
        self.qa_outputs = projection(self.num_labels, "qa_outputs", self.config, dtype)

    def build(self, input_shape=None):
        self.albert.build()
        self.qa_outputs.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, inputs, attention_mask=None, token_type_ids=None, start_positions=None, end_positions=None,
             training=None, output_attentions=None, output_hidden_states=None):
        inputs, given = self.split_labels(inputs, start_positions=start_positions, end_positions=end_positions)
        outputs = self.encode(inputs, attention_mask, token_type_ids, training, output_attentions,
                              output_hidden_states)
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

    def __init__(self, config: AlbertActConfig | dict, name="tf_albert_act_for_multiple_choice", **kwargs):
        super().__init__(config, name=name, **kwargs)
        dtype = self.dtype_policy
        self.albert = TFAlbertActModel(self.config, name="albert", dtype=dtype)
        self.dropout = keras.layers.Dropout(self.config.classifier_dropout_prob, dtype=dtype)
        self.classifier = keras.layers.Dense(1, kernel_initializer=initializer(self.config), name="classifier",
                                             dtype=dtype)

    def build(self, input_shape=None):
        self.albert.build()
        self.classifier.build((None, self.config.hidden_size))
        self.built = True

    @staticmethod
    def serving_input_signature(names=INPUT_NAMES):
        """The export signature: int32 (batch, num_choices, seq_len) tensors, every dimension dynamic."""
        return [{name: tf.TensorSpec((None, None, None), tf.int32, name=name) for name in names}]

    def call(self, inputs, attention_mask=None, token_type_ids=None, labels=None, training=None,
             output_attentions=None, output_hidden_states=None):
        inputs, given = self.split_labels(inputs, labels=labels)
        features = self.unpack_inputs(inputs, attention_mask=attention_mask, token_type_ids=token_type_ids)
        reference = features["input_ids"] if features["input_ids"] is not None else features["inputs_embeds"]
        if reference is None:
            raise ValueError("Pass exactly one of input_ids or inputs_embeds (got neither)")
        for name, tensor in features.items():
            rank = 4 if name == "inputs_embeds" else 3
            if tensor is not None and len(tensor.shape) != rank:
                raise ValueError(f"multiple choice inputs must have shape (batch, num_choices, seq_len); {name} has "
                                 f"shape {tuple(tensor.shape)}")
        shape = tf.shape(tf.convert_to_tensor(reference))[:3]

        def flat(tensor):  # (batch, choices, ...) -> (batch * choices, ...), keeping the static dimensions
            tensor = tf.convert_to_tensor(tensor)
            tail = [size if size is not None else tf.shape(tensor)[i + 2] for i, size in enumerate(tensor.shape[2:])]
            return tf.reshape(tensor, [-1, *tail])

        flat_inputs = {name: flat(tensor) for name, tensor in features.items() if tensor is not None}
        outputs = self.encode(flat_inputs, None, None, training, output_attentions, output_hidden_states)
        pooled = self.dropout(outputs["pooler_output"], training=training)
        logits = tf.reshape(self.classifier(pooled), shape[:2])
        loss = None if given["labels"] is None else cross_entropy(logits, given["labels"])
        outputs = dict(outputs)
        outputs["updates"] = tf.reshape(outputs["updates"], shape)
        outputs["remainders"] = tf.reshape(outputs["remainders"], shape)
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
