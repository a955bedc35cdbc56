"""TensorFlow Lite conversion of the Keras ALBERT-ACT models (the encoder or any head): `export_tflite`, also
available as the models' `export_tflite` method.

What converts, with TFLite's builtin operators only (no `SELECT_TF_OPS`, no Flex delegate):

- static shapes: a fixed batch size and sequence length (and number of choices); pad the inputs to them. With a
  dynamic sequence length the converter needs TensorFlow ops (`StridedSlice` on dynamic shapes);
- the dense ACT loop (every token through the layer at every iteration, the same counts and states as the fast loop):
  the fast loop's `tf.switch_case` over capacities does not convert. `export_tflite` traces with the dense loop
  whatever `config.act_fast_path` says, and keeps the loop a real `WHILE` (not unrolled);
- the weights as constants: TFLite's interpreter cannot read resource variables inside a `WHILE` body
  (READ_VARIABLE fails), so the traced function is frozen before conversion.

Inputs are validated as under XLA, where nothing can raise: the graph assertions are dropped by the converter, and a
row with a bad value (a token id out of range, a mask other than 0/1, ...) comes out NaN; the other rows keep their
result. `TFAlbertActPreprocessor` (raw strings) does not convert with builtins only (string ops, tensorflow-text's
SentencePiece op); with `SELECT_TF_OPS` it needs a Flex delegate holding that op, which the interpreter of the
`tensorflow` package lacks ("FlexSentencepieceOp failed to prepare"). Tokenize on the device with the SentencePiece
model (`spiece.model`) instead.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import tensorflow as tf

from .base import INPUT_NAMES, TFAlbertActBase


@contextlib.contextmanager
def dense_loop(model):
    """Trace `model` with the dense ACT loop: ``act_fast_path = False`` on the config of each of its encoders, restored
    on exit."""
    from .modeling import TFAlbertActEncoder

    configs = {id(layer.config): layer.config for layer in model._flatten_layers()
               if isinstance(layer, TFAlbertActEncoder)}
    saved = {key: config.act_fast_path for key, config in configs.items()}
    try:
        for config in configs.values():
            config.act_fast_path = False
        yield
    finally:
        for key, config in configs.items():
            config.act_fast_path = saved[key]


def input_shape(model: TFAlbertActBase, batch_size: int, sequence_length: int | None,
                num_choices: int | None) -> tuple:
    """The static shape of each input: (batch_size, sequence_length), multiple choice (batch, choices, length)."""
    config = model.config
    sequence_length = config.max_position_embeddings if sequence_length is None else sequence_length
    for name, value in (("batch_size", batch_size), ("sequence_length", sequence_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if sequence_length > config.max_position_embeddings:
        raise ValueError(f"sequence_length {sequence_length} is longer than max_position_embeddings="
                         f"{config.max_position_embeddings}")
    if model.input_rank == 3:
        if isinstance(num_choices, bool) or not isinstance(num_choices, int) or num_choices < 1:
            raise ValueError(f"{type(model).__name__} takes (batch, num_choices, seq_len) inputs: pass num_choices, "
                             f"a positive int (got {num_choices!r})")
        return (batch_size, num_choices, sequence_length)
    if num_choices is not None:
        raise ValueError(f"num_choices is for multiple choice; {type(model).__name__} takes (batch, seq_len) inputs")
    return (batch_size, sequence_length)


def convert(model: TFAlbertActBase, batch_size: int = 1, sequence_length: int | None = None,
            num_choices: int | None = None) -> bytes:
    """The TFLite flatbuffer of `model` (see `export_tflite`)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if not isinstance(model, TFAlbertActBase):
        raise TypeError(f"export_tflite converts the ALBERT-ACT Keras models (TFAlbertActModel and the heads), got "
                        f"{type(model).__name__}")
    if not model.built:
        model.build()
    shape = input_shape(model, batch_size, sequence_length, num_choices)
    signature = [{name: tf.TensorSpec(shape, tf.int32, name=name) for name in INPUT_NAMES}]

    def call(inputs):
        outputs = model(inputs, training=False, output_hidden_states=False, output_attentions=False)
        return {name: value for name, value in outputs.items() if value is not None}

    with dense_loop(model):
        traced = tf.function(call, input_signature=signature).get_concrete_function()
    frozen = convert_variables_to_constants_v2(traced, lower_control_flow=False)
    names = list(tf.nest.flatten({name: name for name in traced.structured_outputs}))  # the frozen output order

    @tf.function(input_signature=signature)
    def serving_default(inputs):  # the frozen function with the output names back
        return dict(zip(names, frozen(**inputs)))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serving_default.get_concrete_function()], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def export_tflite(model: TFAlbertActBase, filepath: str | os.PathLike, batch_size: int = 1,
                  sequence_length: int | None = None, num_choices: int | None = None) -> Path:
    """Convert `model` to a TensorFlow Lite file with builtin operators only, and write it atomically (a failed or
    killed conversion leaves an existing file as it was).

    The file has one signature, ``serving_default``: int32 inputs ``input_ids``, ``attention_mask`` and
    ``token_type_ids`` of the static shape (batch_size, sequence_length) (multiple choice: (batch_size, num_choices,
    sequence_length)); pad shorter inputs with attention_mask 0. Its outputs are the model's, without
    `hidden_states` / `attentions`. `sequence_length` defaults to `max_position_embeddings`.

        model.export_tflite("model.tflite", batch_size=1, sequence_length=128)
        runner = tf.lite.Interpreter("model.tflite").get_signature_runner()
        out = runner(input_ids=ids, attention_mask=mask, token_type_ids=types)   # out["updates"], ...
    """
    data = convert(model, batch_size, sequence_length, num_choices)
    path = Path(filepath)
    from ..checkpoints import atomic

    atomic.write_files({path: data})  # crash-safe: a full disk or a kill leaves the previous file
    return path


__all__ = ["export_tflite", "convert", "dense_loop", "input_shape"]
