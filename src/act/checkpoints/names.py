"""The ONE parameter-name table: canonical (PyTorch `state_dict`) names <-> Keras 3 variable paths <-> legacy
transformers-4 `tf_model.h5` weight names <-> original TF1 variable names; the tied copies (`TIED`); the renaming
of a checkpoint's tensors for the model that loads it; the model class a checkpoint's heads imply.

Canonical names are the PyTorch `state_dict` names of CHECKPOINT_FORMATS.md section 2 (layouts too: a Linear weight
is (out, in)). Every other naming is derived here from a canonical name:

- Keras 3 variable path (our `TFAlbertActModel`): the module path with '.' -> '/', and the leaf renamed by the kind
  of module: Linear weight -> `kernel` (transposed, (in, out)), Linear bias -> `bias`, Embedding weight ->
  `embeddings`, LayerNorm weight/bias -> `gamma`/`beta`.
- legacy `tf_model.h5` of transformers 4 (section 3): `<outer>/albert/...:0` names, same leaf rules, except that the
  research port's `word_embeddings` kept the leaf `weight`.
- original TF1 pre-training checkpoints (section 4): an explicit table (`TF1_MODULES`, `TF1_TENSORS`), with the
  variables that are not weights (global step, optimizer slots) recognised by `tf1_non_weight`.

Nothing else in the package spells a parameter name: the file readers/writers (`files`), the loading pipeline
(`loading`), the models and the converter map through these functions. Pure Python: no framework imports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# The prefix of the encoder inside a model with a task head (transformers' `base_model_prefix`).
BASE_PREFIX = "albert"

# Module (canonical path without the leaf) -> kind. Paths of the bare model; heads add their own below.
EMBEDDINGS = ("embeddings.word_embeddings", "embeddings.position_embeddings", "embeddings.token_type_embeddings")
LAYER_NORMS = ("embeddings.LayerNorm", "encoder.albert_layer.LayerNorm", "encoder.albert_layer.full_layer_layer_norm")
LINEARS = (
    "encoder.embedding_hidden_mapping_in",
    "encoder.albert_layer.attention.query",
    "encoder.albert_layer.attention.key",
    "encoder.albert_layer.attention.value",
    "encoder.albert_layer.attention.dense",
    "encoder.albert_layer.ffn",
    "encoder.albert_layer.ffn_output",
    "encoder.albert_layer.act.dense",
    "pooler",
)
# Head modules (outside the encoder, no `albert.` prefix) and plain vectors.
HEAD_LAYER_NORMS = ("predictions.LayerNorm",)
HEAD_LINEARS = (
    "predictions.dense",
    "predictions.decoder",
    "sop_classifier.classifier",
    "classifier",
    "qa_outputs",
)
VECTORS = ("predictions.bias",)  # a bare parameter: same name and layout everywhere

# Canonical names that may appear in a checkpoint but are not weights (buffers, tied copies).
IGNORED = (
    re.compile(r"^(albert\.)?embeddings\.position_ids$"),
    re.compile(r"^(albert\.)?embeddings\.token_type_ids$"),
)

# Tied copies in a model with the MLM head: the decoder shares the word embeddings and the output bias. A
# checkpoint may hold them (a plain `torch.save` of the state dict) or not (safetensors, TF); they are never
# required, and readers drop them when their source is present: the model re-ties them on loading.
TIED = {
    "predictions.decoder.weight": "albert.embeddings.word_embeddings.weight",
    "predictions.decoder.bias": "predictions.bias",
}

# The class a checkpoint without `architectures` gets, from its heads (first match wins).
BASE_ARCHITECTURE = "AlbertActModel"
HEAD_ARCHITECTURES = (
    (("predictions.", "sop_classifier."), "AlbertActForPreTraining"),
    (("predictions.",), "AlbertActForMaskedLM"),
    (("qa_outputs.",), "AlbertActForQuestionAnswering"),
    (("classifier.",), "AlbertActForSequenceClassification"),
)
PRETRAINING_ARCHITECTURE = "AlbertActForPreTraining"

# Legacy tf_model.h5: the outer model name of the bare model (head models use e.g.
# `tf_albert_act_for_sequence_classification`), and the one leaf that does not follow the Keras rule.
LEGACY_H5_OUTER = "tf_albert_act_model"
LEGACY_H5_RENAMED = {"embeddings.word_embeddings.weight": "embeddings/word_embeddings/weight"}

# Original TF1 pre-training checkpoints: module -> canonical module (leaf by TF1_LEAF), and whole tensors.
TF1_MODULES = {
    "bert/embeddings/LayerNorm": "embeddings.LayerNorm",
    "bert/encoder/embedding_hidden_mapping_in": "encoder.embedding_hidden_mapping_in",
    "bert/encoder/transformer/attention_1/self/query": "encoder.albert_layer.attention.query",
    "bert/encoder/transformer/attention_1/self/key": "encoder.albert_layer.attention.key",
    "bert/encoder/transformer/attention_1/self/value": "encoder.albert_layer.attention.value",
    "bert/encoder/transformer/attention_1/output/dense": "encoder.albert_layer.attention.dense",
    "bert/encoder/transformer/LayerNorm": "encoder.albert_layer.LayerNorm",
    "bert/encoder/transformer/ffn_1/intermediate/dense": "encoder.albert_layer.ffn",
    "bert/encoder/transformer/ffn_1/intermediate/output/dense": "encoder.albert_layer.ffn_output",
    "bert/encoder/transformer/LayerNorm_1": "encoder.albert_layer.full_layer_layer_norm",
    "bert/encoder/transformer/halting/dense": "encoder.albert_layer.act.dense",
    "bert/pooler/dense": "pooler",
    "cls/predictions/transform/dense": "predictions.dense",
    "cls/predictions/transform/LayerNorm": "predictions.LayerNorm",
}
TF1_LEAF = {"kernel": ("weight", True), "bias": ("bias", False), "gamma": ("weight", False), "beta": ("bias", False)}
TF1_TENSORS = {  # (canonical name, transpose?)
    "bert/embeddings/word_embeddings": ("embeddings.word_embeddings.weight", False),
    "bert/embeddings/token_type_embeddings": ("embeddings.token_type_embeddings.weight", False),
    "bert/embeddings/position_embeddings": ("embeddings.position_embeddings.weight", False),
    "cls/predictions/output_bias": ("predictions.bias", False),
    "cls/seq_relationship/output_weights": ("sop_classifier.classifier.weight", False),  # already (out, in)
    "cls/seq_relationship/output_bias": ("sop_classifier.classifier.bias", False),
}
# After the code's TF2 upgrade the layer norms are named like Keras layers.
TF1_LAYER_NORM_ALIASES = {"layer_normalization": "LayerNorm", "layer_normalization_1": "LayerNorm_1"}
# Variables of a training run that are not weights: skipped (and reported), never mapped.
TF1_NON_WEIGHTS = re.compile(r"(^|/)(global_step|good_steps|current_loss_scale|loss_scale)$")
TF1_OPTIMIZER_SLOT = re.compile(r"/(adam_m|adam_v|lamb_m|lamb_v|Adam|Adam_1|LAMB|LAMB_1|Momentum|Adagrad"
                                r"|RMSProp|RMSProp_1|accumulator)$")

KERAS_LEAF = {"linear": {"weight": "kernel", "bias": "bias"},
              "embedding": {"weight": "embeddings"},
              "layer_norm": {"weight": "gamma", "bias": "beta"}}


def split_prefix(name: str) -> tuple[str, str]:
    """'albert.encoder.x.weight' -> ('albert.', 'encoder.x.weight'); 'classifier.weight' -> ('', ...)."""
    if name.startswith(BASE_PREFIX + "."):
        return BASE_PREFIX + ".", name[len(BASE_PREFIX) + 1:]
    return "", name


def module_kind(module: str) -> str:
    """The kind of a module path (without `albert.` prefix): linear, embedding, layer_norm or vector."""
    if module in EMBEDDINGS:
        return "embedding"
    if module in LAYER_NORMS or module in HEAD_LAYER_NORMS:
        return "layer_norm"
    if module in LINEARS or module in HEAD_LINEARS:
        return "linear"
    raise KeyError(module)


def is_head_name(name: str) -> bool:
    """True for a task-head parameter (outside the encoder): `classifier.weight`, `predictions.bias`, ..."""
    prefix, rest = split_prefix(name)
    if prefix:
        return False
    if rest in VECTORS:
        return True
    module = rest.rpartition(".")[0]
    return module in HEAD_LINEARS or module in HEAD_LAYER_NORMS


def is_ignored(name: str) -> bool:
    return any(pattern.match(name) for pattern in IGNORED)


def canonical_to_keras(name: str) -> tuple[str, bool]:
    """Canonical name -> (Keras variable path below the model, transpose?).

    'encoder.albert_layer.attention.query.weight' -> ('encoder/albert_layer/attention/query/kernel', True)
    """
    prefix, rest = split_prefix(name)
    if rest in VECTORS:
        return (prefix + rest).replace(".", "/"), False
    module, _, leaf = rest.rpartition(".")
    try:
        kind = module_kind(module)
        keras_leaf = KERAS_LEAF[kind][leaf]
    except KeyError:
        raise KeyError(f"no Keras name for parameter {name!r}") from None
    return f"{prefix}{module}".replace(".", "/") + "/" + keras_leaf, kind == "linear" and leaf == "weight"


def keras_to_canonical(path: str) -> tuple[str, bool]:
    """Inverse of `canonical_to_keras`: Keras variable path (below the model) -> (canonical name, transpose?)."""
    dotted = path.replace("/", ".")
    prefix, rest = split_prefix(dotted)
    if rest in VECTORS:
        return prefix + rest, False
    module, _, keras_leaf = rest.rpartition(".")
    try:
        kind = module_kind(module)
    except KeyError:
        raise KeyError(f"no canonical name for Keras variable {path!r}") from None
    for leaf, candidate in KERAS_LEAF[kind].items():
        if candidate == keras_leaf:
            return f"{prefix}{module}.{leaf}", kind == "linear" and leaf == "weight"
    raise KeyError(f"no canonical name for Keras variable {path!r}")


def canonical_to_legacy_h5(name: str, outer: str = LEGACY_H5_OUTER) -> tuple[str, bool]:
    """Canonical name -> (legacy `tf_model.h5` weight name, transpose?).

    'encoder.albert_layer.ffn.weight' -> ('tf_albert_act_model/albert/encoder/albert_layer/ffn/kernel:0', True);
    'classifier.weight' -> ('<outer>/classifier/kernel:0', True); 'albert.pooler.bias' -> '<outer>/albert/pooler/bias:0'.
    """
    if is_head_name(name):
        path, transpose = canonical_to_keras(name)
        return f"{outer}/{path}:0", transpose
    _, rest = split_prefix(name)
    if rest in LEGACY_H5_RENAMED:
        return f"{outer}/{BASE_PREFIX}/{LEGACY_H5_RENAMED[rest]}:0", False
    path, transpose = canonical_to_keras(rest)
    return f"{outer}/{BASE_PREFIX}/{path}:0", transpose


def legacy_h5_to_canonical(weight_name: str, head_model: bool = False) -> tuple[str, bool]:
    """Inverse of `canonical_to_legacy_h5`, for any outer model name. `head_model`: the file holds a task
    head, so the encoder's canonical names take the `albert.` prefix. Raises `KeyError` for unknown names."""
    name = weight_name[:-2] if weight_name.endswith(":0") else weight_name
    _, _, path = name.partition("/")  # drop the outer model name (tf_albert_act_model, ..._for_..., ...)
    if path.startswith(BASE_PREFIX + "/"):
        inner = path[len(BASE_PREFIX) + 1:]
        renamed = {legacy: canonical for canonical, legacy in LEGACY_H5_RENAMED.items()}
        if inner in renamed:
            canonical, transpose = renamed[inner], False
        else:
            canonical, transpose = keras_to_canonical(inner)
            if is_head_name(canonical) or split_prefix(canonical)[0]:
                raise KeyError(f"no canonical name for legacy weight {weight_name!r}")
        return (BASE_PREFIX + "." + canonical if head_model else canonical), transpose
    canonical, transpose = keras_to_canonical(path)
    if not is_head_name(canonical):
        raise KeyError(f"no canonical name for legacy weight {weight_name!r}")
    return canonical, transpose


def tf1_to_canonical(name: str, pretraining: bool = False) -> tuple[str, bool]:
    """TF1 variable name -> (canonical name, transpose?). Raises `KeyError` for names not in the table.

    `pretraining`: the target is a model with the pre-training heads, so the encoder takes the `albert.` prefix.
    Both LayerNorm namings are accepted (`LayerNorm`/`LayerNorm_1` and `layer_normalization`/`..._1`)."""
    normalized = "/".join(TF1_LAYER_NORM_ALIASES.get(part, part) for part in name.split("/"))
    if normalized in TF1_TENSORS:
        canonical, transpose = TF1_TENSORS[normalized]
    else:
        module, _, leaf = normalized.rpartition("/")
        if module not in TF1_MODULES or leaf not in TF1_LEAF:
            raise KeyError(f"no canonical name for TF1 variable {name!r}")
        canonical_leaf, transpose = TF1_LEAF[leaf]
        canonical = f"{TF1_MODULES[module]}.{canonical_leaf}"
    if pretraining and not is_head_name(canonical):
        canonical = f"{BASE_PREFIX}.{canonical}"
    return canonical, transpose


def tf1_non_weight(name: str) -> str | None:
    """Why a TF1 variable is not a model weight (global step, optimizer slot), or None if it may be one."""
    if TF1_NON_WEIGHTS.search(name):
        return "training state"
    if TF1_OPTIMIZER_SLOT.search(name):
        return "optimizer slot"
    return None


def tied_copies(names: Iterable[str]) -> dict[str, str]:
    """The tied copies (`TIED`) among `names` whose source is there too: {copy: source}."""
    names = set(names)
    return {copy: source for copy, source in TIED.items() if copy in names and source in names}


def match_model_names(state: Mapping, model_names: Iterable[str], has_pooler: bool = True) -> tuple[dict, dict]:
    """A checkpoint's tensors renamed for a model whose canonical names are `model_names`, as transformers loads
    across architectures: a task model (encoder under `albert.`) takes a bare checkpoint's encoder, prefixed; the
    bare model takes a task checkpoint's encoder (its heads are left out); a model without a pooler leaves the
    pooler out. Names it does not know are kept as they are (the caller reports them as unexpected).

    Returns (renamed state, {checkpoint name: why it was left out}).
    """
    prefix = BASE_PREFIX + "."
    ours = any(name.startswith(prefix) for name in model_names)
    theirs = any(name.startswith(prefix) for name in state)
    renamed, left_out = {}, {}
    for name, value in state.items():
        new = name
        if ours and not theirs and not is_head_name(name) and not is_ignored(name):
            new = prefix + name
        elif theirs and not ours:
            if is_head_name(name):
                left_out[name] = "task head; the bare model has none"
                continue
            new = name[len(prefix):] if name.startswith(prefix) else name
        if not has_pooler and split_prefix(new)[1].startswith("pooler."):
            left_out[name] = "the model has no pooler"
            continue
        renamed[new] = value
    return renamed, left_out


def infer_architecture(names) -> str:
    """The model class a checkpoint's tensor names imply: `AlbertActModel`, or the head model of its heads."""
    heads = {name for name in names if is_head_name(name)}
    for prefixes, architecture in HEAD_ARCHITECTURES:
        if all(any(h.startswith(p) for h in heads) for p in prefixes):
            return architecture
    return BASE_ARCHITECTURE
