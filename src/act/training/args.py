"""Command-line plumbing shared by `act pretrain` and `act finetune`: our options are dataclasses, parsed together
with every `transformers.TrainingArguments` flag by `HfArgumentParser` (its actions are the subcommand parser's
parents, so `act pretrain --help` lists them all)."""

from __future__ import annotations

import argparse
import dataclasses


def parent_parser(*dataclass_types) -> argparse.ArgumentParser:
    from transformers import HfArgumentParser, TrainingArguments

    return HfArgumentParser([*dataclass_types, TrainingArguments], add_help=False)


def split_namespace(args: argparse.Namespace, *dataclass_types):
    """The dataclass instances (ours, then TrainingArguments) from a parsed namespace, as HfArgumentParser would
    build them; the positional arguments stay in the returned namespace."""
    from transformers import TrainingArguments

    values = {key: value for key, value in vars(args).items() if key not in ("command", "argv")}
    instances = []
    for dtype in (*dataclass_types, TrainingArguments):
        keys = {field.name for field in dataclasses.fields(dtype) if field.init}
        instances.append(dtype(**{key: values.pop(key) for key in list(values) if key in keys}))
    return instances, argparse.Namespace(**values)
