"""AlbertActConfig: the one configuration shared by the PyTorch and the Keras model."""

from __future__ import annotations

import math

from transformers import PretrainedConfig

# Keys written by the original ALBERT code and kept in the published ALBERT-ACT configs. They describe
# variants (layer groups, memory blocks, ...) that ALBERT-ACT does not have: accepted and ignored.
LEGACY_ALBERT_KEYS = (
    "net_structure_type",
    "gap_size",
    "num_memory_blocks",
    "down_scale_factor",
    "num_hidden_groups",
    "inner_group_num",
    "layers_to_keep",
)

# `hidden_act` name -> the function it names (transformers' ACT2FN in PyTorch; `act.tf.ops.FUNCTIONS` in Keras).
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_new", "relu": "relu", "silu": "silu", "swish": "silu",
               "tanh": "tanh", "gelu_pytorch_tanh": "gelu_new"}
SUPPORTED_ACTIVATIONS = tuple(ACTIVATIONS)


# The per-call keywords of the compute knob (`AlbertActConfig.halting_limits`), in both frameworks.
HALTING_KNOBS = ("act_epsilon", "max_iterations")


class AlbertActConfig(PretrainedConfig):
    r"""Configuration of ALBERT-ACT, shared as-is by `AlbertActModel` and `TFAlbertActModel`.

    The defaults are those of the published `asi/albert-act-base` checkpoint. The arguments not listed below are
    ALBERT's.

    Args:
        num_hidden_layers: the *iteration cap*: the most times the one shared layer is applied to a token.
            (The name is kept from ALBERT because the published checkpoints use it; tiny/small/base use 6/12/24.)
        act_epsilon: a token halts once its accumulated halting probability exceeds ``1 - act_epsilon``.
        ponder_penalty: weight ``tau`` of the ponder cost added to task losses (0 disables it). The ponder cost is
            the sum over each sequence of (updates + remainders) on its tokens, averaged over the batch (the scale of
            the paper's tau: 1e-3 / 5e-4 / 2.5e-4 for tiny / small / base).
        act_fast_path: inference skips halted tokens (cached keys/values; see the README's speed section).
            False forces the dense loop everywhere. It never changes the result, only the cost.
    """

    model_type = "albert_act"
    # Trainer: predictions are the logits; the halting fields come with trainer.predict(ds, ignore_keys=[])
    keys_to_ignore_at_inference = ["updates", "remainders"]

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 768
    num_hidden_layers: int = 24
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: int | float = 0.0
    attention_probs_dropout_prob: int | float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    classifier_dropout_prob: int | float = 0.1
    act_epsilon: float = 0.01
    ponder_penalty: float = 0.0
    act_fast_path: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 2
    eos_token_id: int | None = 3
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        for key in LEGACY_ALBERT_KEYS:
            kwargs.pop(key, None)
        # transformers 4.x configs may carry this; only absolute positions exist in ALBERT-ACT.
        position_embedding_type = kwargs.pop("position_embedding_type", "absolute")
        if position_embedding_type != "absolute":
            raise ValueError(
                f"position_embedding_type={position_embedding_type!r} is not supported: ALBERT-ACT uses 'absolute'"
            )
        super().__post_init__(**kwargs)
        self.check_values()

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """transformers' `from_dict` (what `from_pretrained` and Keras deserialisation use), whose keyword overrides
        are set after construction: the values are validated again once they are in place. A dict whose
        `model_type` names another model is refused (`act.checkpoints.files.check_model_type`)."""
        from .checkpoints.files import check_model_type

        check_model_type(config_dict, "the config")
        result = super().from_dict(config_dict, **kwargs)
        (result[0] if isinstance(result, tuple) else result).check_values()
        return result

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        """transformers' `save_pretrained`, validated before anything is written."""
        self.check_values()
        return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)

    def validate(self):
        """transformers' strict validation (run by `save_pretrained`), then `check_values`. (transformers collects
        its `validate_*` checks from its own base class, so overriding one of those would never run.)"""
        super().validate()
        self.check_values()

    def check_values(self):
        """Raise a `ValueError` naming the first key whose value is nonsensical on its own.

        Run on construction, after loading (`from_dict` / `from_pretrained`, keyword overrides included) and on
        saving. Each value is checked alone, so a config can be built in steps (transformers' `ConfigTester`);
        the relations between values are checked by `check` when a model is built.
        """

        def positive_int(name, what="a positive integer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be {what}, got {value!r}")

        def finite(name, allow_none=False):
            value = getattr(self, name)
            if value is None and allow_none:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            return value

        for name in ("vocab_size", "embedding_size", "hidden_size", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            positive_int(name)
        positive_int("num_hidden_layers", "an integer >= 1 (it is the iteration cap)")
        if not 0.0 < finite("act_epsilon") < 1.0:
            raise ValueError(f"act_epsilon must lie strictly between 0 and 1, got {self.act_epsilon!r}")
        check_threshold(self.act_epsilon, "act_epsilon")
        if finite("ponder_penalty") < 0:
            raise ValueError(f"ponder_penalty must be >= 0, got {self.ponder_penalty!r}")
        if finite("initializer_range") < 0:
            raise ValueError(f"initializer_range must be >= 0, got {self.initializer_range!r}")
        if finite("layer_norm_eps") <= 0:
            raise ValueError(f"layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob"):
            value = finite(name, allow_none=name == "classifier_dropout_prob")
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        if not isinstance(self.act_fast_path, bool):
            raise ValueError(f"act_fast_path must be True or False, got {self.act_fast_path!r}")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(f"hidden_act={self.hidden_act!r} is not supported; use one of {SUPPORTED_ACTIVATIONS}")
        if self.pad_token_id is not None and (isinstance(self.pad_token_id, bool)
                                              or not isinstance(self.pad_token_id, int) or self.pad_token_id < 0):
            raise ValueError(f"pad_token_id must be None or an integer >= 0, got {self.pad_token_id!r}")

    def check(self):
        """Everything a model needs: `check_values`, and the relations between values. Run where a model is built
        (both frameworks) and before a model is saved. Raises a `ValueError` naming the keys."""
        self.check_values()
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.pad_token_id is not None and self.pad_token_id >= self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must lie in [0, vocab_size={self.vocab_size})")

    @property
    def halting_threshold(self) -> float:
        """``1 - act_epsilon``: a token halts when its accumulated halting probability passes this."""
        return 1.0 - self.act_epsilon

    def halting_limits(self, overrides=None, strict=False) -> tuple[float, int]:
        """The compute knob: ``(halting threshold, iteration cap)`` for one model call.

        `overrides`: the keywords of the call; ``act_epsilon`` (a Python number in (0, 1); larger halts earlier)
        and ``max_iterations`` (a Python int in [1, num_hidden_layers]: the cap can only be lowered, the weights
        were trained with at most `num_hidden_layers` updates) replace `config.act_epsilon` /
        `config.num_hidden_layers` for that call; other keys are ignored, or with `strict` a `TypeError`. The
        values in force (also the config's own, which may be set on a loaded model) are checked here: a
        `ValueError` naming the argument. Both must be Python numbers, also in compiled code (the cap sizes the
        loop and the fixed-length histories when traced).
        """
        import numbers

        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(HALTING_KNOBS))
        if strict and unknown:
            raise TypeError(f"unexpected keyword argument(s) {unknown}; the compute knobs are {HALTING_KNOBS}")
        epsilon, cap = overrides.get("act_epsilon"), overrides.get("max_iterations")
        name = "act_epsilon" if epsilon is not None else "config.act_epsilon"
        epsilon = self.act_epsilon if epsilon is None else epsilon
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not 0.0 < float(epsilon) < 1.0:
            raise ValueError(f"{name} must be a Python number strictly between 0 and 1, got {epsilon!r}")
        check_threshold(float(epsilon), name)
        trained = self.num_hidden_layers
        if isinstance(trained, bool) or not isinstance(trained, numbers.Integral) or trained < 1:
            raise ValueError(f"config.num_hidden_layers (the iteration cap) must be an integer >= 1, got {trained!r}")
        if cap is None:
            cap = trained
        elif isinstance(cap, bool) or not isinstance(cap, numbers.Integral) or not 1 <= cap <= trained:
            above = isinstance(cap, numbers.Integral) and not isinstance(cap, bool) and cap > trained
            raise ValueError(f"max_iterations must be a Python integer between 1 and the model's iteration cap "
                             f"num_hidden_layers={trained}, got {cap!r}"
                             + ("; the cap can only be lowered at inference" if above else ""))
        return 1.0 - float(epsilon), int(cap)


# 1 - act_epsilon rounds to 1.0 in float32 exactly when float32(act_epsilon) <= 2**-25 (half the spacing of the
# float32 numbers just below 1; the halfway case rounds to even, 1.0), that is act_epsilon <= 2**-25 + 2**-49 (half
# a float32 step above 2**-25, the halfway case rounding to the even 2**-25). Plain float comparisons: this runs in
# compiled code too (halting_limits under torch.compile / tf.function).
LARGEST_ROUNDING_TO_ONE = 2.0 ** -25 + 2.0 ** -49


def check_threshold(epsilon: float, name: str = "act_epsilon") -> None:
    """ACT_SEMANTICS.md "Halting dtype": the threshold ``1 - act_epsilon`` is compared in float32 (in every model
    but a float64 one). An epsilon so small that the threshold rounds to 1.0 there is act_epsilon 0: a ValueError
    naming `name`."""
    if epsilon <= LARGEST_ROUNDING_TO_ONE:
        raise ValueError(f"{name}={epsilon!r} is too small: the halting threshold 1 - {name} rounds to 1.0 in "
                         f"float32 (the halting dtype), which is {name} = 0; use at least 6e-08 (2**-24, which "
                         f"gives the largest float32 threshold below 1)")


def problem_type(config: AlbertActConfig, integer_labels: bool) -> str:
    """transformers' rule for sequence classification, in both frameworks: `config.problem_type` if set, else
    regression for one label, single-label classification for integer labels, multi-label otherwise (and
    remembered in the config, as transformers does)."""
    if config.problem_type is None:
        config.problem_type = ("regression" if config.num_labels == 1 else
                               "single_label_classification" if integer_labels else "multi_label_classification")
    return config.problem_type


__all__ = ["AlbertActConfig", "HALTING_KNOBS", "LEGACY_ALBERT_KEYS", "ACTIVATIONS", "problem_type"]
