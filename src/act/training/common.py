"""Shared by `act pretrain` and `act finetune`: the output directory's rules (nothing lost), the final save."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

MARKER = "act_training.json"


def check_output_dir(out: Path, sources: tuple = ()) -> None:
    """OUT must be new, empty, or a directory an earlier `act pretrain`/`act finetune` wrote (nothing lost). Resuming
    (--resume_from_checkpoint) is no exception: the final model, tokenizer and card are written into OUT whatever
    the checkpoint, and a checkpoint these commands wrote lies in a directory they marked. OUT is never one of
    `sources` (the model or tokenizer the run starts from), which the run would replace."""
    for source in sources:
        if source is not None and Path(source).exists() and out.exists() and out.resolve() == Path(source).resolve():
            raise FileExistsError(f"OUT {out} is the model the run starts from, which it would replace: choose a "
                                  f"new directory")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"OUT {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise FileExistsError(f"OUT {out} is not empty and was not written by act pretrain/finetune: choose a new "
                              f"directory (nothing there is overwritten)")


def write_marker(out: Path, command: str, settings: dict) -> None:
    from act.checkpoints.atomic import write_files

    out.mkdir(parents=True, exist_ok=True)
    write_files({out / MARKER: json.dumps({"command": command, **settings}, indent=2, default=str) + "\n"})


def save_final(trainer, tokenizer, out: Path, spiece_source: Path | None) -> None:
    """Model + tokenizer into OUT, file by file atomically (written in a scratch directory, then moved); the
    tokenizer_config.json names token_type_ids among the model's inputs."""
    scratch = out / ".final-tmp"
    if trainer.args.should_save:
        if scratch.exists():
            shutil.rmtree(scratch)
    try:
        trainer.save_model(str(scratch))  # every rank must call it (FSDP/DeepSpeed gather), only the main one writes
        if trainer.args.should_save and spiece_source is not None and not (scratch / "spiece.model").exists() \
                and spiece_source.is_file():
            shutil.copyfile(spiece_source, scratch / "spiece.model")
        if trainer.args.should_save:
            from act.tokenization import write_token_type_ids

            write_token_type_ids(scratch)  # plain AutoTokenizer.from_pretrained(OUT) gives segment ids for pairs
    except BaseException:  # a full disk: the half-written scratch directory goes, OUT keeps what it had
        if trainer.args.should_save:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    if trainer.args.should_save:
        for item in scratch.iterdir():
            if item.is_file():
                os.replace(item, out / item.name)
        shutil.rmtree(scratch, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (the `act` CLI keeps its argv in the namespace)."""
    import shlex

    return "act " + shlex.join(getattr(args, "argv", None) or [])


def find_spiece(directory: str | None) -> Path | None:
    if directory is None:
        return None
    path = Path(directory) / "spiece.model"
    return path if path.is_file() else None


def resolve_directory(name: str, option: str, revision: str | None = None) -> str:
    """A model or tokenizer given to a command: a local directory, or a hub id from the cache or the hub
    (`act.hub.resolve_model`, at `revision`); FileNotFoundError naming the option when it is neither."""
    from act.hub import resolve_model

    try:
        directory = resolve_model(name, revision=revision)
    except FileNotFoundError:
        directory = None
    except OSError as error:  # the hub's (transformers') error, which may not name the model
        raise OSError(f"{option} {name}: {error}") from error
    if directory is None or not directory.is_dir():
        raise FileNotFoundError(f"{option} {name}: no such model directory (nor a hub id)")
    return str(directory)

