"""The model card (README.md) that `save_pretrained` writes next to a model, in either framework, unless one exists.

    from act.model_card import write_model_card
    write_model_card(directory, config, architecture="AlbertActForSequenceClassification", num_parameters=n)

The card says what the model is (ALBERT-ACT: one shared layer applied up to the iteration cap, each token halting
with Adaptive Computation Time), its architecture and halting settings (cap, `act_epsilon`, `ponder_penalty`), how to
load it in PyTorch and in Keras 3, and how to cite the paper. Its YAML header carries the Hub's metadata
(`library_name`, `pipeline_tag`, tags). A card we wrote ends with a marker holding the SHA-256 of its text: while
the text is unedited, the next `save_pretrained` into the directory refreshes it (so it follows the model saved
there); any other README.md (the user's own card, or ours once edited) is never replaced.

Importing this module imports neither torch, tensorflow nor transformers.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .checkpoints import atomic

CARD_NAME = "README.md"
BASE_ARCHITECTURE = "AlbertActModel"
# the Hub's task of each head (the pipeline a user would open it with)
PIPELINE_TAGS = {
    "AlbertActModel": "feature-extraction",
    "AlbertActForPreTraining": "fill-mask",
    "AlbertActForMaskedLM": "fill-mask",
    "AlbertActForSequenceClassification": "text-classification",
    "AlbertActForTokenClassification": "token-classification",
    "AlbertActForQuestionAnswering": "question-answering",
}
PAPER_URL = "https://aclanthology.org/2021.acl-srw.23"
CITATION = r"""@inproceedings{simoulin-crabbe-2021-many,
    title = "How Many Layers and Why? {A}n Analysis of the Model Depth in Transformers",
    author = "Simoulin, Antoine  and  Crabb{\'e}, Benoit",
    booktitle = "Proceedings of the 59th Annual Meeting of the Association for Computational Linguistics and the 11th International Joint Conference on Natural Language Processing: Student Research Workshop",
    month = aug,
    year = "2021",
    address = "Online",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2021.acl-srw.23",
    doi = "10.18653/v1/2021.acl-srw.23",
    pages = "221--228",
}"""


def _get(config, name, default=None):
    return config.get(name, default) if isinstance(config, dict) else getattr(config, name, default)


def _usage_inputs(architecture: str) -> tuple[str, str]:
    """What the usage examples feed the model (PyTorch tokenizer call, Keras input dict)."""
    if architecture == "AlbertActForMultipleChoice":
        pt = ('inputs = tokenizer([["The sky is", "blue."], ["The sky is", "a fish."]], padding=True, '
              'return_tensors="pt")\ninputs = {k: v.unsqueeze(0) for k, v in inputs.items()}   '
              '# (batch=1, choices=2, seq_len)')
        tf = 'inputs = {k: v[None] for k, v in tokenizer([["The sky is", "blue."], ["The sky is", "a fish."]], ' \
             'padding=True, return_tensors="np").items()}'
        return pt, tf
    pt = 'inputs = tokenizer(["The first sentence.", "And a second, longer one."], padding=True, ' \
         'return_tensors="pt")'
    tf = 'inputs = dict(tokenizer(["The first sentence.", "And a second, longer one."], padding=True, ' \
         'return_tensors="np"))'
    return pt, tf


def model_card(config, architecture: str | None = None, model_id: str | None = None,
               num_parameters: int | None = None) -> str:
    """The text of the card for a model with `config` (an `AlbertActConfig` or its dict).

    architecture: the PyTorch class name (default: the config's `architectures`, else the bare encoder); the Keras
    class is the same name with a `TF` prefix. model_id: how the usage examples load it (a hub id or a directory;
    default: "path/to/this/model").
    """
    architecture = architecture or (_get(config, "architectures") or [BASE_ARCHITECTURE])[0]
    architecture = architecture.removeprefix("TF")
    model_id = model_id or "path/to/this/model"
    cap = _get(config, "num_hidden_layers")
    epsilon = _get(config, "act_epsilon")
    penalty = _get(config, "ponder_penalty")
    rows = [
        ("architecture", f"`{architecture}` (PyTorch) / `TF{architecture}` (Keras 3)"),
        ("iteration cap (`num_hidden_layers`)", f"{cap}: one shared layer, applied at most {cap} times per token"),
        ("`act_epsilon`", f"{epsilon}: a token halts once its summed halting probability passes "
                          f"{1 - epsilon:g}" if epsilon is not None else "-"),
        ("`ponder_penalty` (tau)", f"{penalty}" if penalty else "0 (no ponder cost in the loss)"),
        ("hidden size / attention heads / FFN size", f"{_get(config, 'hidden_size')} / "
                                                     f"{_get(config, 'num_attention_heads')} / "
                                                     f"{_get(config, 'intermediate_size')}"),
        ("embedding size / vocabulary / positions", f"{_get(config, 'embedding_size')} / {_get(config, 'vocab_size')} "
                                                    f"/ {_get(config, 'max_position_embeddings')}"),
        ("activation", f"`{_get(config, 'hidden_act')}`"),
    ]
    if _get(config, "num_labels") and architecture in ("AlbertActForSequenceClassification",
                                                       "AlbertActForTokenClassification"):
        rows.append(("labels", str(_get(config, "num_labels"))))
    if num_parameters is not None:
        rows.append(("parameters", f"{num_parameters:,}"))
    table = "\n".join(["| | |", "|---|---|"] + [f"| {key} | {value} |" for key, value in rows])
    pt_inputs, tf_inputs = _usage_inputs(architecture)
    tag = PIPELINE_TAGS.get(architecture)
    header = ["---", "library_name: transformers"]
    if tag:
        header.append(f"pipeline_tag: {tag}")
    header += ["tags:", "- albert-act", "- adaptive-computation-time", "- albert", "- keras", "---"]
    return "\n".join(header) + f"""

# ALBERT-ACT: {architecture}

ALBERT-ACT is the adaptive-depth transformer of *How Many Layers and Why? An Analysis of the Model Depth in
Transformers* (Simoulin & Crabbé, ACL-SRW 2021, {PAPER_URL}). Like ALBERT it shares one layer's weights across
depth; it applies that layer again and again, and every token decides with Adaptive Computation Time (Graves, 2016)
when to stop being updated. Each output reports how many updates every token received (`updates`), its ACT
remainders and the ponder cost.

{table}

## Usage

With the `act` package (ALBERT-ACT for PyTorch and Keras), in PyTorch (transformers 5):

```python
from act import {architecture}
from act.tokenization import load_tokenizer

tokenizer = load_tokenizer("{model_id}")   # AlbertTokenizer, with token_type_ids for sentence pairs
model = {architecture}.from_pretrained("{model_id}").eval()
{pt_inputs}
outputs = model(**inputs)
outputs.updates   # how many times each token was updated (0 on padding)
```

and in Keras 3 (TensorFlow backend), the same weights:

```python
from act import TF{architecture}
from act.tokenization import load_tokenizer

tokenizer = load_tokenizer("{model_id}")
model = TF{architecture}.from_pretrained("{model_id}")
{tf_inputs}
outputs = model(inputs)
outputs["updates"]
```

## Citation

```bibtex
{CITATION}
```
"""


MARKER = "<!-- written by act.model_card, refreshed on save while unedited; sha256 of the text above: {} -->\n"
_MARKER = re.compile(r"\n<!-- written by act\.model_card, refreshed on save while unedited; sha256 of the text "
                     r"above: ([0-9a-f]{64}) -->\n\Z")


def _signed(text: str) -> str:
    return f"{text}\n{MARKER.format(hashlib.sha256(text.encode('utf-8')).hexdigest())}"


def is_unedited_card(text: str) -> bool:
    """Whether `text` is a card written by `write_model_card` and left as it was (its marker's hash still holds)."""
    match = _MARKER.search(text)
    return bool(match) and hashlib.sha256(text[:match.start()].encode("utf-8")).hexdigest() == match.group(1)


def write_model_card(directory, config, architecture: str | None = None, model_id: str | None = None,
                     num_parameters: int | None = None) -> bool:
    """Write `directory/README.md` unless another card is there; True if written. A card this function wrote and
    nobody edited since is refreshed (it describes the model saved last); any other README.md is left alone. The
    file appears whole or not at all."""
    directory = Path(directory)
    target = directory / CARD_NAME
    text = _signed(model_card(config, architecture=architecture, model_id=model_id, num_parameters=num_parameters))
    refresh = False
    if target.exists() or target.is_symlink():
        try:
            current = target.read_text(encoding="utf-8") if target.is_file() and not target.is_symlink() else None
        except (OSError, UnicodeDecodeError):
            current = None
        if current is None or not is_unedited_card(current):
            return False
        if current == text:
            return False  # already this card
        refresh = True
    directory.mkdir(parents=True, exist_ok=True)
    # crash-safe (`atomic.write_files`); a new card never replaces a README.md that appeared meanwhile, and our
    # unedited card is replaced whole (an edit between the check and here would be lost)
    try:
        atomic.write_files({target: text}, overwrite=refresh)
    except FileExistsError:
        return False
    return True


__all__ = ["CARD_NAME", "CITATION", "is_unedited_card", "model_card", "write_model_card"]
