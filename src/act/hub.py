"""Hugging Face Hub ids -> local directories, for every loader and command that takes a model.

`resolve_model(name)` returns a local directory (or file) for a model given either as a local path or as a hub id
(`asi/albert-act-tiny`). A hub id is resolved the way transformers resolves it (`transformers.utils.hub`, over
`huggingface_hub`): the local cache first (`HF_HUB_CACHE` / `HF_HOME`, or `cache_dir`), the network unless offline
(`HF_HUB_OFFLINE=1`, or `local_files_only=True`), a `revision` (branch, tag or commit), a `token` for private
repositories. When the model cannot be had, the error is transformers' own `OSError` (the same message
`AutoConfig.from_pretrained` gives). Only the files a model directory can hold are fetched: config, weights in any
format we read, tokenizer files and the model card.

    from act.hub import resolve_model
    directory = resolve_model("asi/albert-act-tiny", revision="main")   # .../snapshots/<commit>/

Importing this module imports neither torch nor tensorflow (transformers' hub helpers are imported on use).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from .checkpoints.files import CONFIG_NAME, WEIGHTS_BY_PREFERENCE

# The weights of a model directory, in the order the loaders prefer them (`act.checkpoints.files.detect`): only the
# first a repository has is fetched (the published repositories hold both pytorch_model.bin and tf_model.h5).
WEIGHT_FILES = tuple(name for name, _ in WEIGHTS_BY_PREFERENCE)
# Every other file of a model directory that some loader of ours reads, plus the card.
OTHER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "added_tokens.json", "generation_config.json", "README.md")
MODEL_FILES = WEIGHT_FILES + OTHER_FILES
# What a hub id looks like ("name" or "owner/name"); anything else that does not exist is a missing path.
_REPO_ID = re.compile(r"^(?:[\w\-.]{1,96}/)?[\w\-.]{1,96}$")
# Names of checkpoint files (model.safetensors, pytorch_model.bin, a TF1 prefix model.ckpt-100, ...): a missing one
# is a missing local file, whose error must name it, not a hub id to look up.
_FILE_NAME = re.compile(r"\.(json|keras|h5|safetensors|bin|pt|pth|onnx|msgpack|index|ckpt(-\d+)?|meta|"
                        r"data-\d+-of-\d+)$")


def is_hub_id(name: str) -> bool:
    """Whether `name` has the form of a hub model id (and is not written as a path: ./x, /x, ~/x, a/b/c, x.json,
    model.safetensors, model.ckpt-100)."""
    if name.startswith((".", "/", "~")) or "\\" in name or ".." in name or _FILE_NAME.search(name):
        return False
    return bool(_REPO_ID.match(name))


def resolve_model(name_or_path, *, revision: str | None = None, cache_dir=None, local_files_only: bool = False,
                  token=None, subfolder: str | None = None) -> Path:
    """A local path for a model given as a local path or a hub id (see the module docstring).

    A path that exists is returned as it is (a directory or a file: `act convert` also takes files). A name that
    does not exist locally and has the form of a hub id is fetched (or found in the cache); the snapshot directory
    is returned. Anything else raises `FileNotFoundError` naming the path. Errors of the hub are transformers'
    `OSError`s: not found on the hub, unknown revision, no connection and not in the cache, gated repository.
    """
    path = Path(os.fspath(name_or_path)).expanduser()
    if subfolder:
        path_with_subfolder = path / subfolder
        if path_with_subfolder.exists():
            return path_with_subfolder
    if path.exists():
        return path
    name = os.fspath(name_or_path)
    if not is_hub_id(name):
        raise FileNotFoundError(f"{name}: no such file or directory (and not a hub id of the form owner/name)")
    from transformers.utils.hub import cached_file, cached_files

    options = dict(revision=revision, cache_dir=None if cache_dir is None else str(cache_dir),
                   local_files_only=local_files_only, token=token, subfolder=subfolder or "")
    # config.json first: its errors are exactly transformers' (no such repo / revision, no connection and not cached)
    config = cached_file(name, CONFIG_NAME, **options)
    if config is None:
        raise OSError(f"{name} does not appear to have a file named {CONFIG_NAME}. Checkout "
                      f"'https://huggingface.co/{name}/tree/{revision or 'main'}' for available files.")
    # then the tokenizer files and the card the repository has, from the same revision (missing ones are fine)
    cached_files(name, list(OTHER_FILES), _raise_exceptions_for_missing_entries=False, **options)
    directory = Path(config).parent
    for weights in WEIGHT_FILES:  # one format of weights: the first the repository has
        if not cached_files(name, [weights], _raise_exceptions_for_missing_entries=False, **options):
            continue
        if weights.endswith(".index.json"):  # sharded weights: the shards the index names
            import json

            weight_map = json.loads((directory / weights).read_text(encoding="utf-8")).get("weight_map", {})
            if weight_map:
                cached_files(name, sorted(set(weight_map.values())), **options)
        break
    return directory


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every command that takes a model: hub revision and cache (offline: HF_HUB_OFFLINE=1)."""
    group = parser.add_argument_group("Hugging Face Hub (when the model is a hub id such as asi/albert-act-tiny)")
    group.add_argument("--revision", help="branch, tag or commit of the hub repository (default: main)")
    group.add_argument("--cache-dir", metavar="DIR",
                       help="hub cache directory (default: $HF_HUB_CACHE, else $HF_HOME/hub); with HF_HUB_OFFLINE=1 "
                            "only the cache is used")


def resolve_from_args(name_or_path, args: argparse.Namespace) -> Path:
    """`resolve_model` with the options of `add_hub_arguments`."""
    return resolve_model(name_or_path, revision=getattr(args, "revision", None),
                         cache_dir=getattr(args, "cache_dir", None))


__all__ = ["MODEL_FILES", "OTHER_FILES", "WEIGHT_FILES", "add_hub_arguments", "is_hub_id", "resolve_from_args", "resolve_model"]
