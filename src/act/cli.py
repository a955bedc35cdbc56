"""The `act` command. Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; they are imported only when used, so `act --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "convert": ("act.convert", "convert a checkpoint to the canonical format or to Keras, optionally verified"),
    "inspect": ("act.inspect", "show how many updates each token of a sentence receives"),
    "stats": ("act.stats", "mean updates per token type over a text file (the paper's table)"),
    "export": ("act.export", "export a model to ONNX (dynamic shapes), optionally verified in onnxruntime"),
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
    except (ValueError, OSError) as error:  # OSError: missing / existing files, and the hub's errors
        print(f"act {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
