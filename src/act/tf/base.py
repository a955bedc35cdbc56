"""Keras plumbing of the ALBERT-ACT models that is no mirrored method, the way transformers keeps
`PreTrainedModel` apart from a model file: `TFAlbertActPreTrainedModel` (in `modeling.py`) subclasses
`TFAlbertActBase`, as `AlbertActPreTrainedModel` subclasses `act.pt.base.AlbertActBase`.

`TFAlbertActBase` does Keras serialisation (`get_config` / `from_config`, build config), the generic `build`, the
canonical weights (PyTorch names and layouts), labels and the compiled loss / metrics, loading and saving in the
canonical format, `tf.distribute` and export (SavedModel; TensorFlow Lite through `lite.py`), and the inputs:
unpacking (a dict or the ids) and validation at the edge.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from .. import inputs as inputs_lib
from ..checkpoints import atomic
from ..checkpoints import loading as checkpoint_loading
from ..checkpoints import names as checkpoint_names
from ..configuration import AlbertActConfig
from .ops import OPS, build_sublayers

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # the serving signature
OPTIONAL_INPUT_NAMES = ("position_ids", "inputs_embeds")  # also accepted by `call`, as in PyTorch
# What `tf.saved_model.save` writes into a SavedModel directory (what an export replaces in an existing one).
SAVED_MODEL_ENTRIES = ("saved_model.pb", "saved_model.pbtxt", "fingerprint.pb", "variables", "assets")
CONSTRUCTOR_KWARGS = ("name", "dtype", "trainable", "add_pooling_layer")  # from_pretrained keywords that are not config overrides


def layer_policy(layer):
    """The dtype policy a layer computes with: its own entry of a shared `DTypePolicyMap` (how Keras reads it,
    `Layer.compute_dtype`), else its policy."""
    policy = layer._dtype_policy
    if isinstance(policy, keras.dtype_policies.DTypePolicyMap):
        return policy[layer.path] if layer.path else policy.default_policy
    return policy


def float_policy(model):
    """The model's own (float) policy: the default of its `DTypePolicyMap` when it has one."""
    policy = model._dtype_policy
    return policy.default_policy if isinstance(policy, keras.dtype_policies.DTypePolicyMap) else policy


def own_policies(model) -> None:
    """Once built, give every layer its own entry of a shared `DTypePolicyMap` (from `get_config` of a quantized
    model) as its policy, as `quantize()` leaves it. Keras reads a map by path in `quantization_mode`, but some of
    its code reads `layer.dtype_policy.quantization_mode`, the map's default (Keras 3.15: the int8 Embedding's
    and Dense's `save_own_variables` then store no scale, and saving a loaded quantized model failed)."""
    for layer in model._flatten_layers(include_self=True):
        if isinstance(layer._dtype_policy, keras.dtype_policies.DTypePolicyMap) and layer.path:
            layer._dtype_policy = layer_policy(layer)


def quantized_policies(model) -> dict:
    """path -> quantized policy of every quantized layer below `model` (in `_flatten_layers` order)."""
    return {layer.path: layer_policy(layer) for layer in model._flatten_layers(include_self=False)
            if layer.path and layer_policy(layer).quantization_mode is not None}


class TFAlbertActBase(keras.Model):
    """Config (de)serialisation, checkpoint loading/saving in the canonical format, input validation, and what the
    task models share:

    - labels: `call` takes them as keywords or as entries of the input dict (`label_names`);
    - the ponder cost: with ``config.ponder_penalty > 0`` every task call adds ``ponder_penalty * ponder_cost`` with
      `add_loss`, so `fit` with a compiled task loss trains with it; with labels, the returned ``loss`` is the task
      loss plus that term, exactly like PyTorch;
    - `compile(loss=...)`: the compiled loss (and metrics) see the prediction outputs (`prediction_names`) only:
      the logits tensor for one prediction, else a dict of the predictions (compile with a dict of losses, and
      give `fit` a dict of targets with the same keys);
    - loading: `from_pretrained` loads a checkpoint of the bare model or of any head;
    - int32 inputs whatever built the model (`build()`, `from_pretrained`, a call, `predict`, `fit`): `export` and
      `tf.saved_model.save` serve `serving_input_signature()`, and `fit` / `evaluate` / `predict` run under
      `MirroredStrategy` and `MultiWorkerMirroredStrategy` as they are (see the Keras hooks below).
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
    _exporting: bool = False  # see `_default_save_signature`
    input_rank: int = 2  # of the ids in the serving signature: (batch, seq_len); multiple choice adds num_choices

    # -- Keras serialisation and build --------------------------------------------------------------------------

    def get_config(self):
        """The constructor's arguments. A quantized model's ``dtype`` is a `keras.dtype_policies.DTypePolicyMap`:
        the model's float policy, plus the quantized policy of each quantized layer under its path (Keras' own
        convention for subclassed models, as keras-hub's backbones do), so `from_config` and `load_model` build
        those layers quantized again."""
        base = super().get_config()
        base.update({"config": self.config.to_dict()})
        if getattr(self, "add_pooling_layer", None) is not None:
            base["add_pooling_layer"] = self.add_pooling_layer
        quantized = quantized_policies(self)
        if quantized:
            policies = keras.dtype_policies.DTypePolicyMap(default_policy=float_policy(self))
            for path, policy in quantized.items():
                policies[path] = policy
            base["dtype"] = keras.dtype_policies.serialize(policies)
        return base

    @classmethod
    def from_config(cls, config):
        """A BUILT model (every variable created, as keras-hub's functional backbones are), so that
        ``model.set_weights(other.get_weights())`` works at once; quantized layers (see `get_config`) are built
        quantized."""
        config = dict(config)
        config["config"] = AlbertActConfig.from_dict(config["config"])
        model = cls(**config)
        model.build()
        return model

    def get_build_config(self):
        return {"built": True}

    def build_from_config(self, config):
        if not self.built:
            self.build()

    @property
    def token_embedding(self) -> keras.layers.Embedding:
        """The token (word) embedding layer, `embeddings.word_embeddings` (a task model's: its encoder's), as
        keras-hub backbones expose it; `get_input_embeddings()` is the same layer, transformers' name. A
        property: Keras' saving walks attributes in name order and meets this layer first under `albert` /
        `embeddings`, so the `.keras` file keeps one copy under its own path."""
        return self.get_input_embeddings()

    def build(self, input_shape=None):
        """Create every variable (no input shape needed), then `_init_weights` on every sublayer, as PyTorch's
        `post_init` does."""
        build_sublayers(self)
        for layer in self._flatten_layers(include_self=False):
            self._init_weights(layer)
        own_policies(self)

    # -- Keras hooks: export and tf.distribute ----------------------------------------------------------------------
    # Keras assumes float inputs in two places, which a model built by a call, `fit` or `predict` (rather than by
    # `build()`) met: `export` and the build under a `tf.distribute` strategy traced the model with float32 ids
    # ("input_ids must be integer token ids, got dtype float32"). Across workers, Keras' reductions of the step
    # outputs also need a replica axis.

    @property
    def _default_save_signature(self):
        """The `serving_default` function that `tf.saved_model.save` (and so `export`) traces: int32 inputs of
        `serving_input_signature()`. Keras' own (keras/src/backend/tensorflow/layer.py) takes the shapes recorded by
        the first call with the model's float compute dtype as the input dtype.

        None (no trace) for a model nested in another (a head's `albert`: its path is below its parent's) and during
        `export`, which writes its own signature: each trace of the ACT loop costs export time."""
        if not self.built or "/" in (self.path or "") or self._exporting:
            return None
        model = self

        @tf.function(input_signature=self.serving_input_signature())
        def serving_default(inputs):
            return model(inputs)

        return serving_default

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Under a `tf.distribute` strategy, `fit` / `evaluate` / `predict` first build the model, the loss and the
        metrics from a sample batch. Keras (`_maybe_symbolic_build` in keras/src/backend/tensorflow/trainer.py) makes
        it by averaging the replicas' first batches with `strategy.reduce("MEAN", ...)`: int32 ids come out float32
        under `MirroredStrategy`, and `MultiWorkerMirroredStrategy` cannot reduce a dict at all. Only the shapes and
        dtypes of that batch matter: take the first local replica's batch as it is."""
        strategy = self._distribute_strategy
        if strategy is not None and iterator is not None and data_batch is None:
            def local(value):
                if isinstance(value, tf.distribute.DistributedValues):
                    return strategy.experimental_local_results(value)[0]
                return value

            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(local, next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, data):
        return self.with_replica_axis(super().train_step(data))

    def test_step(self, data):
        return self.with_replica_axis(super().test_step(data))

    def predict_step(self, data):
        return self.with_replica_axis(super().predict_step(data))

    def with_replica_axis(self, outputs):
        """Under `MultiWorkerMirroredStrategy` across workers, Keras reduces what each replica's step returns with
        collectives along axis 0 (`reduce_per_replica` in keras/src/backend/tensorflow/trainer.py: the mean of the
        logs, the concatenation of the predictions), which fail on scalars: the loss and metrics ("Invalid reduction
        dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388) and the `ponder_cost` output. Give
        the scalars an axis of length 1: the logs come back as the scalar mean over the replicas, and `predict`
        returns one ponder cost per replica batch, as under `MirroredStrategy`."""
        strategy = self._distribute_strategy
        if not (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                and strategy.extended._in_multi_worker_mode()):
            return outputs
        return keras.tree.map_structure(
            lambda value: tf.reshape(value, (1,)) if tf.is_tensor(value) and value.shape.rank == 0 else value, outputs)

    # -- canonical weights --------------------------------------------------------------------------------------

    def _relative_path(self, variable) -> str:
        """A variable's path below this model: Keras 3 prefixes the model's own name (its build scope)."""
        prefix = self.path + "/"
        if not variable.path.startswith(prefix):
            raise RuntimeError(f"variable {variable.path!r} was not created below the model scope {self.path!r}")
        return variable.path[len(prefix):]

    def canonical_variables(self) -> dict:
        """canonical name -> (Keras variable, transpose?), through `act.checkpoints.names.keras_to_canonical`.

        Refused for a quantized model (`model.quantize(...)`): the canonical format holds the float weights of
        PyTorch, a quantized layer holds int8 values and scales (or float8 scaling state) instead; so
        `save_pretrained`, `canonical_state_dict` and `load_canonical_state_dict` raise a `ValueError` naming
        the quantized layers. Save a quantized model as a `.keras` file."""
        if not self.built:
            self.build()
        quantized = quantized_policies(self)
        if quantized:
            modes = sorted({policy.quantization_mode for policy in quantized.values()})
            listed = ", ".join(self._relative_layer_path(path) for path in list(quantized)[:3])
            raise ValueError(
                f"{type(self).__name__} is quantized ({'/'.join(modes)}: {len(quantized)} layers, e.g. {listed}): "
                "the canonical format (save_pretrained, canonical_state_dict, load_canonical_state_dict) holds "
                "float weights only. Save the quantized model with model.save('model.keras') "
                "(keras.models.load_model reads it back), or call save_pretrained before quantize()")
        table = {}
        for variable in self.weights:
            name, transpose = checkpoint_names.keras_to_canonical(self._relative_path(variable))
            if name in table:
                raise RuntimeError(f"two Keras variables map to the canonical name {name!r}")
            table[name] = (variable, transpose)
        return table

    def _relative_layer_path(self, path: str) -> str:
        prefix = (self.path or self.name) + "/"
        return path[len(prefix):] if path.startswith(prefix) else path

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

    def get_input_embeddings(self) -> keras.layers.Embedding:
        """The word embeddings (a task model's are its encoder's; `TFAlbertActModel` owns them)."""
        return getattr(self, checkpoint_names.BASE_PREFIX, self).embeddings.word_embeddings

    def get_output_embeddings(self) -> keras.layers.Embedding | None:
        """The MLM decoder of the heads that have one: the word-embedding layer itself (tied)."""
        return self.get_input_embeddings() if hasattr(self, "predictions") else None

    # -- task models: labels, compile / fit ---------------------------------------------------------------------

    def split_labels(self, inputs, **labels):
        """Take the label entries out of a dict input; labels given as keywords take precedence."""
        if isinstance(inputs, dict):
            inputs = dict(inputs)
            for name in self.label_names:
                value = inputs.pop(name, None)
                if labels.get(name) is None:
                    labels[name] = value
        return inputs, labels

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

    # -- loading and saving (canonical format) ------------------------------------------------------------------

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

    def serving_input_signature(self, names=INPUT_NAMES):
        """The export signature: one dict of int32 tensors of rank `input_rank`, every dimension dynamic."""
        return [{name: tf.TensorSpec((None,) * self.input_rank, tf.int32, name=name) for name in names}]

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """`keras.Model.save`, crash-safe for a `.keras` file (`act.checkpoints.atomic`): written aside and put in
        place whole, so a killed or failed save leaves the previous file (Keras writes into the target itself).
        Other targets (file objects, `zipped=False`, legacy `.h5`) and a refused overwrite go to Keras as they are."""
        path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
        if path is None or not path.endswith(".keras") or zipped is False or (not overwrite and os.path.exists(path)):
            return super().save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)
        with atomic.transaction(path, overwrite=True, kind="file") as staged:
            return super().save(str(staged.path), overwrite=True, zipped=zipped, **kwargs)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """`keras.Model.export`; by default the signature is `serving_input_signature()` (any batch and length)."""
        if input_signature is None:
            if not self.built:
                self.build()
            input_signature = self.serving_input_signature()
        self._exporting = True
        try:
            if format != "tf_saved_model":
                return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature,
                                      **kwargs)
            # Crash-safe (`act.checkpoints.atomic`): written aside, then put in place as a whole; in an existing
            # directory only the SavedModel's own entries are replaced, other files are kept.
            with atomic.transaction(filepath, overwrite=True, replaces=SAVED_MODEL_ENTRIES.__contains__,
                                    directories=True) as staged:
                return super().export(str(staged.path), format=format, verbose=verbose,
                                      input_signature=input_signature, **kwargs)
        finally:
            self._exporting = False

    def export_tflite(self, filepath, batch_size: int = 1, sequence_length: int | None = None,
                      num_choices: int | None = None):
        """A TensorFlow Lite file of this model, builtin operators only, static input shapes (`act.tf.lite`):
        ``model.export_tflite("model.tflite", batch_size=1, sequence_length=128)``."""
        from .lite import export_tflite

        return export_tflite(self, filepath, batch_size=batch_size, sequence_length=sequence_length,
                             num_choices=num_choices)

    # -- inputs -------------------------------------------------------------------------------------------------

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

    def check_inputs(self, inputs, **given):
        """Unpack the inputs (`unpack_inputs`) and validate them at the edge (`act.inputs`): a `ValueError` eagerly,
        graph assertions in a `tf.function`, NaN rows under XLA. Values are checked before any cast (int64 ids are
        not truncated). Returns ``(features, invalid)``: the inputs ready for the layers (int32 ids, a mask) and
        the rows with a bad value in a graph (None eagerly)."""
        features = {name: None if value is None else tf.convert_to_tensor(value)
                    for name, value in self.unpack_inputs(inputs, **given).items()}
        shape = inputs_lib.check_shapes(OPS, self.config, **features)
        features, invalid = inputs_lib.check_values(OPS, self.config, **features, static_shape=shape)
        for name in ("input_ids", "token_type_ids", "position_ids"):
            if features[name] is not None:
                features[name] = tf.cast(features[name], "int32")
        if features["attention_mask"] is None:
            reference = features["input_ids"] if features["input_ids"] is not None else features["inputs_embeds"]
            features["attention_mask"] = tf.ones(tf.shape(reference)[:2], "int32")
        return features, invalid


__all__ = ["TFAlbertActBase", "INPUT_NAMES", "OPTIONAL_INPUT_NAMES", "CONSTRUCTOR_KWARGS"]
