"""The tokenizer of a model directory follows its model: `model_max_length` = `max_position_embeddings`.

A tokenizer saved without `model_max_length` reports a huge default (about 1e30), so `truncation=True` (in a
pipeline: `tokenize_kwargs={"truncation": True}`) truncates nothing and the model rejects the long input. Every
place that writes a model directory with a tokenizer calls one of these:

    from act.tokenization import match_model_max_length, write_model_max_length
    match_model_max_length(tokenizer, config)   # before tokenizer.save_pretrained(directory)
    write_model_max_length(directory)           # or after: fixes tokenizer_config.json in place (atomically)

Importing this module imports neither torch, tensorflow nor transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
CONFIG_NAME = "config.json"
TOKENIZER_FILES = ("spiece.model", "tokenizer.json")
TOKENIZER_CLASS = "AlbertTokenizer"  # every ALBERT-ACT checkpoint uses ALBERT's SentencePiece tokenizer


def _max_positions(config) -> int:
    value = config.get("max_position_embeddings") if isinstance(config, dict) \
        else getattr(config, "max_position_embeddings", None)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"the config has no valid max_position_embeddings (got {value!r})")
    return value


def match_model_max_length(tokenizer, config):
    """Set `tokenizer.model_max_length` to the model's `max_position_embeddings` (also what `save_pretrained`
    writes); returns the tokenizer."""
    length = _max_positions(config)
    tokenizer.model_max_length = length
    if isinstance(getattr(tokenizer, "init_kwargs", None), dict):
        tokenizer.init_kwargs["model_max_length"] = length
    return tokenizer


def write_model_max_length(directory, max_length: int | None = None) -> bool:
    """Make `directory/tokenizer_config.json` say `model_max_length = max_length` (default: the
    `max_position_embeddings` of `directory/config.json`). Returns True if the file was written.

    A directory with tokenizer files (spiece.model / tokenizer.json) but no tokenizer_config.json gets one naming
    the tokenizer class; a directory without a tokenizer is left alone (False). Other keys are kept as they are; the
    file is replaced atomically (a temporary sibling renamed over it).
    """
    directory = Path(directory)
    if max_length is None:
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path}: no such file (needed for max_position_embeddings)")
        max_length = _max_positions(json.loads(config_path.read_text(encoding="utf-8")))
    else:
        max_length = _max_positions({"max_position_embeddings": max_length})
    path = directory / TOKENIZER_CONFIG_NAME
    if path.is_file():
        settings = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(settings, dict):
            raise ValueError(f"{path}: not a JSON object")
    elif any((directory / name).is_file() for name in TOKENIZER_FILES):
        settings = {"tokenizer_class": TOKENIZER_CLASS}
    else:
        return False
    if settings.get("model_max_length") == max_length:
        return False
    settings["model_max_length"] = max_length
    from .checkpoints import atomic

    # crash-safe (`atomic.write_files`): the old file or the new one; an existing file keeps its permissions
    atomic.write_files({path: json.dumps(settings, indent=2, sort_keys=True, ensure_ascii=False) + "\n"})
    return True


__all__ = ["match_model_max_length", "write_model_max_length"]
