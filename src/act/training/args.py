"""Command-line plumbing shared by `act pretrain` and `act finetune`: our options are dataclasses, parsed together
with every `transformers.TrainingArguments` flag by `HfArgumentParser` (its actions are the subcommand parser's
parents, so `act pretrain --help` lists them all)."""

from __future__ import annotations

import argparse
import dataclasses
import os


def parent_parser(*dataclass_types) -> argparse.ArgumentParser:
    from transformers import HfArgumentParser, TrainingArguments

    return HfArgumentParser([*dataclass_types, TrainingArguments], add_help=False)


def split_namespace(args: argparse.Namespace, *dataclass_types):
    """The dataclass instances (ours, then TrainingArguments) from a parsed namespace, as HfArgumentParser would
    build them; the positional arguments stay in the returned namespace."""
    from transformers import TrainingArguments

    values = {key: value for key, value in vars(args).items() if key not in ("command", "argv")}
    launched = launched_processes()
    if launched > 1 and not values.get("use_cpu") and not accelerator_available():
        # torchrun/accelerate started several processes on a machine without GPUs: the Trainer must be told to
        # run data-parallel on the CPU (gloo), or every process would train alone on the whole data
        values["use_cpu"] = True
    instances = []
    for dtype in (*dataclass_types, TrainingArguments):
        keys = {field.name for field in dataclasses.fields(dtype) if field.init}
        instances.append(dtype(**{key: values.pop(key) for key in list(values) if key in keys}))
    training = instances[-1]
    if launched > 1 and training.world_size != launched:
        raise ValueError(f"{launched} processes were launched (WORLD_SIZE) but the Trainer runs on "
                         f"{training.world_size}: check the launcher's and --use_cpu/--ddp_backend settings")
    return instances, argparse.Namespace(**values)


def launched_processes() -> int:
    """How many processes torchrun / accelerate launch / mpirun started (1 when run directly)."""
    for name in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 1


def accelerator_available() -> bool:
    import torch

    check = getattr(getattr(torch, "accelerator", None), "is_available", None)
    return bool(check()) if check is not None else torch.cuda.is_available()
