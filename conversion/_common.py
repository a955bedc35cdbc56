"""Shared by the conversion scripts: each is `act convert` with the source format fixed and checked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(description: str, expected_format: str, argv: list[str] | None = None) -> int:
    from act.commands.convert import add_arguments, detect_format, run
    from act.checkpoints import CheckpointError

    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        found, _ = detect_format(Path(args.source))
        if found != expected_format:
            raise CheckpointError(f"{args.source}: this script converts a {expected_format} source, but this "
                                  f"is a {found} source (use `act convert`, which takes any format)")
        return run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        return 1
