"""PyTorch plumbing of the ALBERT-ACT models that is no mirrored method: transformers' class attributes, loading
(`from_pretrained` also reads the research port's legacy `tf_model.h5`), the output-embedding accessors of the
heads with an MLM decoder, and input validation at the edge. `AlbertActPreTrainedModel` (in `modeling.py`)
subclasses `AlbertActBase`, as `TFAlbertActPreTrainedModel` subclasses `act.tf.base.TFAlbertActBase`."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import PreTrainedModel

from .. import inputs as inputs_lib
from .. import weights as weights_lib
from ..configuration import AlbertActConfig
from ..weights import TIED
from .ops import OPS


class AlbertActBase(PreTrainedModel):
    """What transformers asks of a model class, loading, and input validation."""

    config_class = AlbertActConfig
    config: AlbertActConfig
    base_model_prefix = "albert"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _supports_attention_backend = True
    _input_embed_layer = "word_embeddings"  # get/set_input_embeddings find `embeddings.word_embeddings`
    # Published research checkpoints carry this buffer; it is rebuilt at init, so it is not a weight.
    _keys_to_ignore_on_load_unexpected = [r"embeddings\.position_ids", r"embeddings\.token_type_ids"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """transformers' `from_pretrained`; in addition, a local directory whose only weights are the research
        port's legacy `tf_model.h5` (transformers 5 reads no TensorFlow weights) is read through `act.weights`
        (keywords are then config overrides, e.g. ``num_labels=3``; every tensor must match the model)."""
        directory = Path(os.fspath(pretrained_model_name_or_path))
        try:
            legacy = directory.is_dir() and weights_lib.find_weights(directory).name == weights_lib.TF_WEIGHTS_NAME
        except weights_lib.CheckpointError:
            legacy = False  # no weights we know of: transformers says what it looked for
        if not legacy:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        config, model_kwargs = cls.config_class.from_pretrained(directory, return_unused_kwargs=True, **kwargs)
        model = cls(config, *model_args, **model_kwargs)
        path = directory / weights_lib.TF_WEIGHTS_NAME
        ours = model.state_dict()
        state = weights_lib.match_model_names(weights_lib.read_legacy_h5(path), ours,
                                              model.base_model.pooler is not None)
        expected = {name: tuple(value.shape) for name, value in ours.items() if name not in TIED}
        weights_lib.check_state_dict(state, expected, str(path))
        model.load_state_dict({name: torch.from_numpy(value) for name, value in state.items() if name in expected},
                              strict=False)
        model.tie_weights()
        return model.eval()

    def get_output_embeddings(self):
        """The MLM decoder (tied to the word embeddings) of the heads that have one, else None."""
        predictions = getattr(self, "predictions", None)
        return None if predictions is None else predictions.decoder

    def set_output_embeddings(self, new_embeddings) -> None:
        self.predictions.decoder = new_embeddings
        self.predictions.bias = new_embeddings.bias

    def check_inputs(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                     inputs_embeds=None):
        """Validate the inputs at the edge (`act.inputs`): a `ValueError` that says what was wrong and what was
        expected. Returns ``(inputs, invalid)``: the inputs (a dict) and, while torch.compile / torch.export trace
        the model (where a value check cannot raise), the rows with a bad value, which come out NaN
        (`act.inputs.mark_outputs`); None eagerly."""
        given = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                     position_ids=position_ids, inputs_embeds=inputs_embeds)
        shape = inputs_lib.check_shapes(OPS, self.config, **given)
        return inputs_lib.check_values(OPS, self.config, **given, static_shape=shape)


__all__ = ["AlbertActBase"]
