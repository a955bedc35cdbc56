"""The `act` command. Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; they are imported only when used, so `act --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "convert": ("act.commands.convert",
                "convert a checkpoint to the canonical format or to Keras, optionally verified"),
    "inspect": ("act.commands.inspect", "show how many updates each token of a sentence receives"),
    "stats": ("act.commands.stats", "mean updates per token type over a text file (the paper's table)"),
    "export": ("act.commands.export", "export a model to ONNX (dynamic shapes), optionally verified in onnxruntime"),
    "pretrain": ("act.training.pretrain", "pre-train (MLM + SOP + ponder cost) on a corpus, with transformers' Trainer"),
    "finetune": ("act.training.finetune", "fine-tune a sequence classifier or regressor on CSV/TSV/JSON Lines"),
}


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    from act import __version__

    parser = argparse.ArgumentParser(prog="act", description="ALBERT-ACT tools")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name != load:  # only the chosen subcommand's module is imported
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        module = importlib.import_module(module_name)
        # a module may contribute whole parsers (e.g. transformers' HfArgumentParser of TrainingArguments)
        parents = module.parent_parsers() if hasattr(module, "parent_parsers") else []
        extra = {"formatter_class": argparse.ArgumentDefaultsHelpFormatter} if parents else {}
        sub_parser = sub.add_parser(name, help=help_text, description=help_text, parents=parents, **extra)
        module.add_arguments(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    args.argv = list(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"act {args.command}: interrupted (files being written keep their previous version)", file=sys.stderr)
        return 130
    except Exception as error:
        message = user_error(error)
        if message is None:
            raise  # a bug: the traceback is what a report needs
        print(f"act {args.command}: error: {message}", file=sys.stderr)
        return 1


# Libraries whose errors are about the user's files or environment (a damaged checkpoint or tokenizer, a file the
# library cannot read, a full disk), never a bug of ours: reported in one line, like our ValueError / OSError.
USER_ERROR_LIBRARIES = ("safetensors", "safetensors_rust", "tokenizers", "sentencepiece", "google", "h5py", "onnx",
                        "onnxruntime", "onnxscript", "datasets", "pyarrow", "huggingface_hub", "requests", "urllib3")


def user_error(error: BaseException) -> str | None:
    """The one-line message of an error caused by the user's input or environment; None for anything else (a bug,
    which keeps its traceback). ValueError (bad values, damaged files, text that is not UTF-8), OSError (missing,
    existing or unwritable files, a full disk; `act.checkpoints.atomic.WriteError` names the path), ImportError (a
    missing optional dependency), MemoryError, and the errors of the libraries that read the user's files."""
    import pickle
    import zipfile

    from ..checkpoints.atomic import os_error

    if isinstance(error, (ValueError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError)):
        text = str(error) or type(error).__name__
    elif isinstance(error, ImportError):
        text = f"a package is missing: {error}"
    elif isinstance(error, MemoryError):
        text = f"out of memory{f' ({error})' if str(error) else ''}: try a smaller --batch-size or input"
    elif type(error).__module__.split(".")[0] in USER_ERROR_LIBRARIES:
        failure = os_error(error)
        first = (str(error).strip().splitlines() or [""])[0]
        text = f"{type(error).__name__}: {first}" if failure is None or failure is error else \
            f"{failure.strerror} ({type(error).__name__}: {first})"
    else:
        return None
    return text


if __name__ == "__main__":
    sys.exit(main())
