"""Keras / TensorFlow helpers of `act/tf/modeling.py`: the ops namespace of the framework-neutral modules
(`act.halting`, `act.inputs`; `act/pt/ops.py` is its PyTorch twin), activations, the sublayer factories and the
generic `build`, the loss, and the fixed-length histories of the ACT loop."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import tensorflow as tf

from ..configuration import ACTIVATIONS, AlbertActConfig

IGNORE_INDEX = -100  # the label a cross-entropy ignores (torch's default `ignore_index`)


def _is_integer(x) -> bool:
    dtype = x.dtype
    return dtype.is_integer if isinstance(dtype, tf.DType) else np.issubdtype(dtype, np.integer)


def _require(ok, message, data):
    """A graph assertion (an `InvalidArgumentError` naming the problem when it fails; XLA strips it)."""
    return tf.debugging.Assert(ok, [message, *data], summarize=8)


def _after(checks, x):
    """`x`, computed only once the `checks` have passed (so a failed check is the error reported)."""
    if x is None:
        return None
    with tf.control_dependencies([check for check in checks if check is not None]):
        return tf.identity(x)


# The tensor operations `act.halting` and `act.inputs` need, on TensorFlow tensors. Twin of `act.pt.ops.OPS`: the
# same names with the same meaning, one line each (the two lists look alike on purpose).
OPS = SimpleNamespace(
    float32=tf.float32, float64=tf.float64, int32=tf.int32,
    executing_eagerly=tf.executing_eagerly,
    is_integer=_is_integer,
    cast=tf.cast,
    zeros_like=tf.zeros_like,
    full_like=lambda x, value: tf.fill(tf.shape(x), tf.constant(value, x.dtype)),
    any=tf.reduce_any,
    all=tf.reduce_all,
    sum=tf.reduce_sum,
    batch_mean=lambda x: tf.reduce_sum(x, 0) / tf.cast(tf.maximum(tf.shape(x)[0], 1), x.dtype),  # 0 if empty
    min=tf.reduce_min,
    max=tf.reduce_max,
    minimum=tf.minimum,
    isfinite=tf.math.is_finite,
    where=tf.where,
    reshape=tf.reshape,
    stack=tf.stack,
    shape=tf.shape,
    arange=tf.range,
    to_python=lambda x: x.numpy().tolist(),
    require=_require,
    after=_after,
)


# -- activations (the names of `act.configuration.ACTIVATIONS`) ---------------------------------------------------

def gelu(x):
    """Exact (erf) GELU, transformers' `gelu`. Spelled out: `tf.nn.gelu` loses ~1e-9 in float64."""
    return 0.5 * x * (1.0 + tf.math.erf(x / tf.cast(np.sqrt(2.0), x.dtype)))


def gelu_new(x):
    """Tanh-approximated GELU, transformers' `gelu_new` (the original TF1 BERT/ALBERT `gelu`)."""
    return 0.5 * x * (1.0 + tf.tanh(tf.cast(np.sqrt(2.0 / np.pi), x.dtype) * (x + 0.044715 * x * x * x)))


FUNCTIONS = {"gelu": gelu, "gelu_new": gelu_new, "relu": tf.nn.relu, "silu": tf.nn.silu, "tanh": tf.tanh}


def get_activation(name: str):
    """The TensorFlow function for a `hidden_act` name (the same functions as transformers' ACT2FN)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"hidden_act={name!r} is not supported; use one of {tuple(ACTIVATIONS)}")
    return FUNCTIONS[ACTIVATIONS[name]]


def additive_mask_value(dtype) -> float:
    """A large finite negative number for masked attention logits (never -inf, so all-padding rows stay finite)."""
    return max(float(tf.as_dtype(dtype).min) / 2.0, -1e9)  # tf's dtypes know bfloat16; np.finfo does not


# -- sublayers: each factory records the input shape the generic `build` builds it with --------------------------

BUILD_SHAPE = "_act_build_shape"


def initializer(config: AlbertActConfig):
    return keras.initializers.RandomNormal(stddev=config.initializer_range)


def _recorded(layer, shape):
    setattr(layer, BUILD_SHAPE, shape)
    return layer


def projection(units: int, name: str, config: AlbertActConfig, dtype, inputs: int) -> keras.layers.EinsumDense:
    """A Linear on (batch, seq, inputs) as an `EinsumDense`; its kernel is (in, out) like a Dense kernel. (`Dense` on
    rank-3 tensors has a gradient that fails under XLA.)"""
    return _recorded(keras.layers.EinsumDense(
        "abc,cd->abd", output_shape=(None, units), bias_axes="d", kernel_initializer=initializer(config),
        bias_initializer="zeros", name=name, dtype=dtype), (None, None, inputs))


def dense(units: int, name: str, config: AlbertActConfig, dtype, inputs: int) -> keras.layers.Dense:
    """A Linear on (batch, inputs)."""
    return _recorded(keras.layers.Dense(units, kernel_initializer=initializer(config), name=name, dtype=dtype),
                     (None, inputs))


def layer_norm(width: int, name: str, config: AlbertActConfig, dtype) -> keras.layers.LayerNormalization:
    return _recorded(keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name=name, dtype=dtype),
                     (None, None, width))


def embedding(rows: int, name: str, config: AlbertActConfig, dtype) -> keras.layers.Embedding:
    return _recorded(keras.layers.Embedding(rows, config.embedding_size, embeddings_initializer=initializer(config),
                                            name=name, dtype=dtype), (None, None))


def embedding_table(layer: keras.layers.Embedding):
    """The (rows, width) table of an Embedding as floats: its variable, or for a quantized layer (`quantize()`:
    int8 values and per-row scales) the rows the layer itself returns, dequantized (the tied MLM decoder)."""
    if layer.quantization_mode is None:
        return layer.embeddings
    return layer(tf.range(layer.input_dim))


class Weight:
    """A variable of the layer itself, declared in `__init__` and created by `build_sublayers` (a Keras variable
    gets its path, which the canonical name table reads, from the build scope)."""

    def __init__(self, shape: tuple, initializer: str = "zeros"):
        self.shape, self.initializer = shape, initializer


def build_sublayers(layer) -> None:
    """Create the variables of `layer`: its declared `Weight`s, then every sublayer that is not built yet, with the
    input shape its factory recorded (the layers of `act/tf/modeling.py` need none: they build the same way)."""
    for name, value in list(vars(layer).items()):
        if isinstance(value, Weight):
            setattr(layer, name, layer.add_weight(name=name, shape=value.shape, initializer=value.initializer))
    for sublayer in layer._layers:
        if not sublayer.built:
            sublayer.build(getattr(sublayer, BUILD_SHAPE, None))


class Layer(keras.layers.Layer):
    """The base of the layers of `act/tf/modeling.py`: keeps the config and builds every sublayer in `build()`, so
    that no variable is created inside the ACT loop."""

    def __init__(self, config: AlbertActConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def build(self, input_shape=None):
        build_sublayers(self)


def in_xla_context() -> bool:
    """Whether the graph being traced is compiled by XLA (`jit_compile=True`, also of an enclosing function)."""
    from tensorflow.python.ops import control_flow_util  # what while_v2 / cond_v2 ask

    return not tf.executing_eagerly() and control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def dropout(layer, x, training, seed=None):
    """The dropout of a Keras `Dropout` layer; with `seed` (an int32 (2,) tensor) drawn statelessly from that seed
    instead of the layer's seed generator. The fast training loop passes one per iteration and site: no random
    state variable is updated inside its `tf.while_loop`s (under XLA the gradient of such loops inside `fit`'s
    train function fails to compile)."""
    if seed is None or not training or layer.rate == 0:
        return layer(x, training=training)
    return tf.nn.experimental.stateless_dropout(x, rate=layer.rate, seed=seed)


def variable_values(variables) -> list:
    """The values of Keras variables as tensors of their own dtype (no mixed-precision autocast)."""
    from keras.src.backend.common.variables import AutocastScope  # (Keras has no public way to suspend it)

    with AutocastScope(None):
        return [tf.convert_to_tensor(variable) for variable in variables]


def recomputed(function, variables, *inputs):
    """`function(*inputs[:-len(variables)])` whose backward pass recomputes it instead of keeping its activations,
    the trailing inputs being the values of `variables` (read once, as tensors): `tf.recompute_grad` cannot read
    variables inside a while loop's gradient, so the values are passed in and mapped onto the variables with
    `keras.StatelessScope`. Used by the fast training loop under XLA, where a while loop's gradient keeps every
    saved activation in a buffer sized for the whole iteration cap."""
    count = len(variables)
    tensors, values = list(inputs[:len(inputs) - count]), list(inputs[len(inputs) - count:])

    def run(args, weights):
        with keras.StatelessScope(state_mapping=list(zip(variables, weights))):
            return function(*args)

    @tf.custom_gradient
    def forward(*flat):
        outputs = run(flat[:len(tensors)], flat[len(tensors):])

        def backward(*upstream):
            # copies made here: in a graph the backward pass reads the inputs through captures, which a tape
            # watching the forward tensors themselves would not connect
            copies = [tf.identity(t) for t in flat]
            with tf.GradientTape() as tape:
                tape.watch(copies)
                again = run(copies[:len(tensors)], copies[len(tensors):])
            return tape.gradient(again, copies, output_gradients=list(upstream),
                                 unconnected_gradients=tf.UnconnectedGradients.ZERO)

        return outputs, backward

    return forward(*tensors, *values)


# -- losses ------------------------------------------------------------------------------------------------------

def loss_dtype(logits) -> str:
    """Losses are computed in float32 (float64 for a float64 model), even under mixed precision."""
    return "float64" if logits.dtype == tf.float64 else "float32"


def cross_entropy(logits, labels, ignore_index=IGNORE_INDEX):
    """`torch.nn.functional.cross_entropy` on (..., classes) logits and integer labels of the leading shape: the mean
    over the labels that are not `ignore_index` (NaN when every label is ignored, as in torch).

    A label outside [0, classes) (other than `ignore_index`) is an error: a `ValueError` eagerly, a graph assertion
    in a `tf.function`, and a NaN loss under XLA (which strips assertions). Labels are checked before any cast.
    """
    classes = logits.shape[-1] if logits.shape[-1] is not None else tf.shape(logits)[-1]
    logits = tf.reshape(tf.cast(logits, loss_dtype(logits)), (-1, classes))
    labels = tf.convert_to_tensor(labels)
    labels = tf.reshape(labels if labels.dtype.is_integer else tf.cast(labels, "int64"), (-1,))
    keep = labels != tf.cast(ignore_index, labels.dtype)
    bad = keep & ((labels < 0) | (labels >= tf.cast(classes, labels.dtype)))
    ignored = ignore_index if isinstance(ignore_index, int) else "the sequence length"
    message = f"labels must lie in [0, {classes}) or be {ignored} (ignored)"
    if tf.executing_eagerly():
        if bool(tf.reduce_any(bad)):
            raise ValueError(f"{message}; got {tf.boolean_mask(labels, bad).numpy().tolist()}")
        check = None
    else:
        check = OPS.require(~tf.reduce_any(bad), message + "; min and max:",
                            [tf.reduce_min(labels), tf.reduce_max(labels)])
    labels = OPS.after([check], tf.cast(tf.where(keep & ~bad, labels, 0), "int32"))
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    weight = tf.cast(keep, losses.dtype)
    loss = tf.reduce_sum(losses * weight) / tf.reduce_sum(weight)
    return tf.where(tf.reduce_any(bad), tf.constant(np.nan, loss.dtype), loss)


# -- the ACT loop's histories ------------------------------------------------------------------------------------

def fill_history(array, size: int, written, fill=None) -> tuple:
    """A TensorArray history of the ACT loop as a tuple of its `size` slots, of which the first `written` were written:
    the others hold `fill` (the final state: halted tokens no longer change) or zeros (attention maps of iterations
    that did not run). The same length in every execution mode: `num_hidden_layers` (+ 1 for the states)."""
    stacked = array.stack()  # unwritten slots read as zeros
    if fill is not None:
        slots = tf.range(size) < written
        stacked = tf.where(tf.reshape(slots, (-1, 1, 1, 1)), stacked, fill[None])
    return tuple(tf.unstack(stacked, num=size))


__all__ = ["OPS", "IGNORE_INDEX", "gelu", "gelu_new", "get_activation", "additive_mask_value",
           "initializer", "projection", "dense", "layer_norm", "embedding", "embedding_table", "Weight",
           "build_sublayers", "Layer", "in_xla_context", "dropout", "recomputed", "variable_values",
           "loss_dtype", "cross_entropy", "fill_history"]
