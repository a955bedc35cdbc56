"""Text files a user gives a command (`act stats` input, a CoNLL-U file, a corpus, a fine-tuning table): read as
UTF-8, and when a file is not, an error that names the file, the line and the column of the first bad byte.

    from act.textfiles import read_utf8, check_utf8
    text = read_utf8(path, "text file")   # str, or ValueError "text file F: line 3, column 7: not UTF-8 (byte 0xe9)"
    check_utf8(path, "corpus file")       # streamed, for a file too large to hold (call it when a reader failed)
"""

from __future__ import annotations

import os
from pathlib import Path


class NotUtf8Error(ValueError):
    """A text file is not UTF-8; the message names the file, the line and the column."""


def _message(path, what: str, line: int, column: int, byte: int) -> str:
    return (f"{what} {path}: line {line}, column {column}: not UTF-8 text (byte 0x{byte:02x}); save the file as "
            f"UTF-8")


def read_utf8(path: str | os.PathLike, what: str = "file", encoding: str = "utf-8") -> str:
    """The text of `path` (`encoding`: "utf-8" or "utf-8-sig"); NotUtf8Error naming the line if it is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        start = error.start
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise NotUtf8Error(_message(path, what, line, column, data[start])) from None


def check_utf8(path: str | os.PathLike, what: str = "file") -> None:
    """Read `path` line by line; NotUtf8Error naming the first line that is not UTF-8, else None."""
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise NotUtf8Error(_message(path, what, number, error.start + 1, raw[error.start])) from None


__all__ = ["NotUtf8Error", "read_utf8", "check_utf8"]
