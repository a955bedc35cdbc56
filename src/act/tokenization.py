"""The tokenizer of a model directory: one loader, segment ids for pairs, `model_max_length` = the model's positions.

`load_tokenizer(directory_or_id)` is the one way the package loads a tokenizer (the CLIs, `act inspect`, `act stats`,
the training commands). The tokenizer it returns gives `token_type_ids` for a pair (`[CLS] A [SEP] B [SEP]`: 0 up to
and including the first `[SEP]`, 1 after, as ALBERT-ACT was pre-trained), also for a directory someone else wrote:
transformers 5's `AlbertTokenizer` declares `model_input_names = ["input_ids", "attention_mask"]`, so a plain
`AlbertTokenizer.from_pretrained(dir)` drops the segment ids unless `dir/tokenizer_config.json` names them
(`model_input_names`, which every directory this package ships or writes holds; `write_token_type_ids(dir)` adds it to
an existing one, changing nothing else).

A tokenizer saved without `model_max_length` reports a huge default (about 1e30), so `truncation=True` (in a
pipeline: `tokenize_kwargs={"truncation": True}`) truncates nothing and the model rejects the long input. Every
place that writes a model directory with a tokenizer calls one of these:

    from act.tokenization import match_model_max_length, write_model_max_length, write_token_type_ids
    match_model_max_length(tokenizer, config)   # before tokenizer.save_pretrained(directory)
    write_model_max_length(directory)           # or after: fixes tokenizer_config.json in place (atomically)
    write_token_type_ids(directory)             # model_input_names with token_type_ids (load_tokenizer's tokenizers
                                                # save it themselves)

Importing this module imports neither torch, tensorflow nor transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
CONFIG_NAME = "config.json"
TOKENIZER_FILES = ("spiece.model", "tokenizer.json")
TOKENIZER_CLASS = "AlbertTokenizer"  # every ALBERT-ACT checkpoint uses ALBERT's SentencePiece tokenizer
# what the model takes, in BERT's order; transformers 5's AlbertTokenizer leaves token_type_ids out
MODEL_INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
SEGMENT_IDS = "token_type_ids"


def _with_segment_ids(names) -> list:
    """`names` with token_type_ids added (after input_ids, else first) if it lacks it; nothing else changed."""
    names = list(names)
    if SEGMENT_IDS not in names:
        names.insert(names.index("input_ids") + 1 if "input_ids" in names else 0, SEGMENT_IDS)
    return names


def with_token_type_ids(tokenizer):
    """Make `tokenizer` return `token_type_ids` (its `model_input_names`, also what `save_pretrained` writes into
    tokenizer_config.json); returns the tokenizer."""
    names = _with_segment_ids(getattr(tokenizer, "model_input_names", None) or MODEL_INPUT_NAMES)
    tokenizer.model_input_names = names
    if isinstance(getattr(tokenizer, "init_kwargs", None), dict):
        tokenizer.init_kwargs["model_input_names"] = list(names)
    return tokenizer


def has_tokenizer(directory) -> bool:
    directory = Path(directory)
    return any((directory / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(directory_or_id, *, revision: str | None = None, cache_dir=None, local_files_only: bool = False,
                   token=None):
    """The tokenizer of a model or tokenizer directory, or of a hub id (`act.hub.resolve_model`, at `revision`),
    giving `token_type_ids` for pairs whatever its tokenizer_config.json says (`with_token_type_ids`).

    The directory loads as `AlbertTokenizer` (every ALBERT-ACT model's), or through `AutoTokenizer` when its
    tokenizer_config.json names another `tokenizer_class`. FileNotFoundError for a path that is no directory or a
    directory without tokenizer files; ValueError when the files cannot be read."""
    from .hub import is_hub_id, resolve_model

    path = Path(directory_or_id)
    if not path.exists() and is_hub_id(str(directory_or_id)):
        path = resolve_model(directory_or_id, revision=revision, cache_dir=cache_dir,
                             local_files_only=local_files_only, token=token)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory {directory_or_id} does not exist" if not path.exists() else
                                f"tokenizer path {directory_or_id} is not a directory")
    if not has_tokenizer(path):
        raise FileNotFoundError(f"no tokenizer in directory {path}: expected {' or '.join(TOKENIZER_FILES)}")
    from .tokenizer_files import check_tokenizer_files

    check_tokenizer_files(path)  # a damaged file is a ValueError naming it, before transformers reads it
    settings = _read_tokenizer_config(path)
    try:
        if settings.get("tokenizer_class", TOKENIZER_CLASS) in (TOKENIZER_CLASS, TOKENIZER_CLASS + "Fast"):
            from transformers import AlbertTokenizer

            tokenizer = AlbertTokenizer.from_pretrained(str(path))
        else:  # another tokenizer class named by the directory
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(path))
    except ImportError as error:  # a bare spiece.model needs sentencepiece + protobuf
        raise ValueError(f"cannot read the tokenizer in {path}: {error}") from error
    return with_token_type_ids(tokenizer)


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


def _read_tokenizer_config(directory: Path) -> dict | None:
    """tokenizer_config.json's settings; for a directory with tokenizer files but none, a new one naming the
    tokenizer class; None for a directory without a tokenizer."""
    path = directory / TOKENIZER_CONFIG_NAME
    if path.is_file():
        settings = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(settings, dict):
            raise ValueError(f"{path}: not a JSON object")
        return settings
    if has_tokenizer(directory):
        return {"tokenizer_class": TOKENIZER_CLASS}
    return None


def _write_tokenizer_config(directory: Path, settings: dict) -> None:
    """Replace tokenizer_config.json crash-safely (`atomic.write_files`: the old file or the new one, never a part;
    an existing file keeps its permissions; an OSError names the path)."""
    from .checkpoints import atomic

    atomic.write_files({directory / TOKENIZER_CONFIG_NAME:
                        json.dumps(settings, indent=2, sort_keys=True, ensure_ascii=False) + "\n"})


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
    settings = _read_tokenizer_config(directory)
    if settings is None or settings.get("model_max_length") == max_length:
        return False
    settings["model_max_length"] = max_length
    _write_tokenizer_config(directory, settings)
    return True


def write_token_type_ids(directory) -> bool:
    """Make `directory/tokenizer_config.json` name `token_type_ids` among its `model_input_names`, so that a plain
    `AutoTokenizer` / `AlbertTokenizer.from_pretrained(directory)` gives segment ids for pairs. Returns True if the
    file was written.

    A missing `model_input_names` becomes ("input_ids", "token_type_ids", "attention_mask"); an existing list lacking
    token_type_ids gets it after input_ids, its other names kept in their order. A directory with tokenizer files but
    no tokenizer_config.json gets one naming the tokenizer class; one without a tokenizer is left alone (False).
    Every other key is kept as it is; the file is replaced atomically, keeping its file mode."""
    directory = Path(directory)
    settings = _read_tokenizer_config(directory)
    if settings is None:
        return False
    names = settings.get("model_input_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise ValueError(f"{directory / TOKENIZER_CONFIG_NAME}: model_input_names is not a list of names "
                         f"(got {names!r})")
    if names is not None and SEGMENT_IDS in names:
        return False
    settings["model_input_names"] = list(MODEL_INPUT_NAMES) if names is None else _with_segment_ids(names)
    _write_tokenizer_config(directory, settings)
    return True


__all__ = ["MODEL_INPUT_NAMES", "has_tokenizer", "load_tokenizer", "match_model_max_length", "with_token_type_ids",
           "write_model_max_length", "write_token_type_ids"]
