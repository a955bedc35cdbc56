"""PyTorch plumbing of the ALBERT-ACT models that is no mirrored method: transformers' class attributes, loading and
saving (through `act.checkpoints`: every format checked, crash-safe writes), the output-embedding accessors of the
heads with an MLM decoder, and input validation at the edge. `AlbertActPreTrainedModel` (in `modeling.py`)
subclasses `AlbertActBase`, as `TFAlbertActPreTrainedModel` subclasses `act.tf.base.TFAlbertActBase`."""

from __future__ import annotations

from typing import TypedDict

from transformers import PreTrainedModel
from transformers.utils.generic import TransformersKwargs

from .. import inputs as inputs_lib
from ..checkpoints import loading as checkpoint_loading
from ..configuration import AlbertActConfig
from .ops import OPS


class AlbertActKwargs(TransformersKwargs, total=False):
    """The keywords a task model passes on to `AlbertActModel.forward` (as `**kwargs: Unpack[AlbertActKwargs]`):
    transformers' own (`output_attentions`, `output_hidden_states`, ...) and the compute knob of this call."""

    act_epsilon: float
    max_iterations: int


class AlbertActBase(PreTrainedModel):
    """What transformers asks of a model class, loading, and input validation."""

    config_class = AlbertActConfig
    config: AlbertActConfig
    base_model_prefix = "albert"
    main_input_name = "input_ids"
    _supports_sdpa = True
    supports_gradient_checkpointing = True
    _supports_attention_backend = True
    # forward takes **kwargs (attention backend options), so transformers' Trainer would take it for a model that
    # normalises its loss by `num_items_in_batch` and skip the division by the gradient accumulation steps; our
    # losses are means already (the ponder cost too), so it must divide: the update would otherwise grow with them.
    accepts_loss_kwargs = False
    _input_embed_layer = "word_embeddings"  # get/set_input_embeddings find `embeddings.word_embeddings`
    # Published research checkpoints carry this buffer; it is rebuilt at init, so it is not a weight.
    _keys_to_ignore_on_load_unexpected = [r"embeddings\.position_ids", r"embeddings\.token_type_ids"]

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

    @staticmethod
    def check_kwargs(kwargs) -> None:
        """A keyword `AlbertActModel.forward` does not know (a misspelt knob such as ``max_iteration=2``) is a
        TypeError, as in Keras (`halting_limits(..., strict=True)`), never a silent full-depth run."""
        known = AlbertActKwargs.__required_keys__ | AlbertActKwargs.__optional_keys__
        unknown = sorted(set(kwargs) - known)
        if unknown:
            from ..configuration import HALTING_KNOBS

            raise TypeError(f"unexpected keyword argument(s) {unknown}; the compute knobs are {HALTING_KNOBS}")


__all__ = ["AlbertActBase"]
