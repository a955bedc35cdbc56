"""The tokenizer files of a model directory, checked before a tokenizer library reads them.

    from act.tokenizer_files import check_tokenizer_files
    check_tokenizer_files(directory)   # None, or a ValueError naming the file and what is wrong with it

transformers reports a damaged tokenizer as something else or not at all: a zero-byte ``spiece.model`` is "The
vocabulary is empty", a random one asks for `tiktoken`, a truncated ``tokenizer.json`` is a JSON error naming no
file, and a damaged ``spiece.model`` beside a good ``tokenizer.json`` is never read. This module checks each file
that is there:

- ``spiece.model``: not empty, loaded by `sentencepiece` when it is installed, and a complete SentencePiece
  ``ModelProto`` with at least one piece (its protobuf wire format parsed here, without any library, when
  `sentencepiece` is missing or fails: the message then says where the file breaks).
- ``tokenizer.json``: UTF-8, valid JSON (the error gives its line and column), an object with a ``model`` that has
  a vocabulary; and, when `tokenizers` is installed, read by it.
- ``tokenizer_config.json``, ``special_tokens_map.json``, ``added_tokens.json``: UTF-8 JSON objects.
- ``spiece.model`` and a Unigram ``tokenizer.json`` side by side: the same pieces in the same order (else the
  token ids depend on which file a loader picks).

A directory with neither ``spiece.model`` nor ``tokenizer.json`` is a FileNotFoundError (``required=True``).
Importing this module imports no framework and no tokenizer library.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SPIECE_NAME = "spiece.model"
TOKENIZER_JSON_NAME = "tokenizer.json"
JSON_NAMES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
MODEL_FILES = (SPIECE_NAME, TOKENIZER_JSON_NAME)


class TokenizerFileError(ValueError):
    """A tokenizer file of a model directory is damaged; the message names it and says what is wrong."""


# ---------------------------------------------------------------------------------------------------- reading
def _read_bytes(path: Path) -> bytes:
    if path.is_symlink() and not path.exists():
        raise TokenizerFileError(f"{path}: a broken symbolic link (to {os.readlink(path)}); the file is missing")
    if not path.is_file():
        raise TokenizerFileError(f"{path}: is not a file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TokenizerFileError(f"{path}: cannot be read ({error.strerror or error})") from error
    if not data:
        raise TokenizerFileError(f"{path}: is empty (0 bytes)")
    return data


def _read_json(path: Path, what: str):
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TokenizerFileError(f"{path}: not UTF-8 text (byte {error.start}), so not {what}") from error
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        cut = " (the file looks truncated)" if error.pos >= len(text.rstrip()) - 1 or "Unterminated" in error.msg \
            else ""
        raise TokenizerFileError(f"{path}: not valid JSON at line {error.lineno} column {error.colno}: "
                                 f"{error.msg}{cut}") from error
    if not isinstance(value, dict):
        raise TokenizerFileError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value, text


# ---------------------------------------------------------------------------------------- SentencePiece model
def _varint(data: bytes, position: int, path: Path) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data):
            raise TokenizerFileError(f"{path}: not a SentencePiece model: the data ends inside a number at byte "
                                     f"{position} of {len(data)} (a truncated or damaged file)")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise TokenizerFileError(f"{path}: not a SentencePiece model: malformed number at byte {position}")


def _fields(data: bytes, path: Path, where: str):
    """(field number, wire type, value) of a protobuf message; raises on anything malformed."""
    position = 0
    while position < len(data):
        start = position
        key, position = _varint(data, position, path)
        number, wire = key >> 3, key & 7
        if number == 0 or wire not in (0, 1, 2, 5):
            raise TokenizerFileError(f"{path}: not a SentencePiece model: invalid field (number {number}, wire type "
                                     f"{wire}) at byte {start} of {where}")
        if wire == 0:
            value, position = _varint(data, position, path)
        elif wire == 2:
            length, position = _varint(data, position, path)
            if position + length > len(data):
                raise TokenizerFileError(f"{path}: not a SentencePiece model: field {number} at byte {start} of "
                                         f"{where} runs {position + length - len(data)} bytes past its end (a "
                                         f"truncated or damaged file)")
            value, position = data[position:position + length], position + length
        else:
            size = 8 if wire == 1 else 4
            if position + size > len(data):
                raise TokenizerFileError(f"{path}: not a SentencePiece model: the data ends inside field {number} "
                                         f"at byte {start} of {where} (a truncated file)")
            value, position = data[position:position + size], position + size
        yield number, wire, value


def spiece_pieces(path: str | os.PathLike) -> list[str]:
    """The pieces of a ``spiece.model`` in id order, read from its protobuf wire format (``ModelProto.pieces``,
    field 1, each a ``SentencePiece`` whose field 1 is the piece); TokenizerFileError if it is not a complete
    SentencePiece model."""
    path = Path(path)
    data = _read_bytes(path)
    pieces = []
    for number, wire, value in _fields(data, path, "the file"):
        if number != 1:
            continue
        if wire != 2:
            raise TokenizerFileError(f"{path}: not a SentencePiece model: its pieces field has wire type {wire}")
        piece = None
        for inner, inner_wire, inner_value in _fields(value, path, f"piece {len(pieces)}"):
            if inner == 1 and inner_wire == 2:
                piece = inner_value
        if piece is None:
            raise TokenizerFileError(f"{path}: not a SentencePiece model: piece {len(pieces)} has no text")
        try:
            pieces.append(piece.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise TokenizerFileError(f"{path}: not a SentencePiece model: piece {len(pieces)} is not UTF-8") \
                from error
    if not pieces:
        raise TokenizerFileError(f"{path}: not a SentencePiece model: it holds no pieces (a damaged file)")
    return pieces


def _sentencepiece_pieces(path: Path) -> list[str] | None:
    """The pieces as the `sentencepiece` library reads them (None when it is not installed): fast, and a file it
    loads is sound. A file it cannot load is parsed here (`spiece_pieces`) for a message that says where it breaks."""
    try:
        import sentencepiece
    except ImportError:
        return None
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(_read_bytes(path))
    except TokenizerFileError:
        raise
    except Exception as error:  # sentencepiece raises RuntimeError / OSError with its own text
        pieces = spiece_pieces(path)  # a TokenizerFileError saying where the file breaks, usually
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TokenizerFileError(f"{path}: sentencepiece cannot load it ({len(pieces)} pieces parsed): {first}") \
            from error
    pieces = [processor.IdToPiece(index) for index in range(processor.GetPieceSize())]
    if not pieces:
        raise TokenizerFileError(f"{path}: not a SentencePiece model: it holds no pieces (a damaged file)")
    return pieces


# ------------------------------------------------------------------------------------------- tokenizer.json
def tokenizer_json_vocabulary(path: str | os.PathLike) -> tuple[str, list[str] | None]:
    """(model type, the pieces in id order for a Unigram model, else None) of a ``tokenizer.json``, checked as
    described in the module docstring."""
    path = Path(path)
    value, text = _read_json(path, "a tokenizer")
    model = value.get("model")
    if not isinstance(model, dict):
        raise TokenizerFileError(f"{path}: has no \"model\" object: not a tokenizers pipeline")
    vocab = model.get("vocab")
    if not vocab:
        raise TokenizerFileError(f"{path}: its {model.get('type', 'tokenizer')} model has an empty vocabulary")
    try:
        import tokenizers
    except ImportError:
        tokenizers = None
    if tokenizers is not None:
        try:
            tokenizers.Tokenizer.from_str(text)
        except Exception as error:  # tokenizers raises a bare Exception
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise TokenizerFileError(f"{path}: the tokenizers library cannot read it: {first}") from error
    kind = str(model.get("type") or "")
    if kind == "Unigram":
        try:
            return kind, [str(entry[0]) for entry in vocab]
        except (TypeError, IndexError, KeyError) as error:
            raise TokenizerFileError(f"{path}: its Unigram vocabulary is not a list of [piece, score]") from error
    return kind, None


# ------------------------------------------------------------------------------------------------ the check
def check_tokenizer_files(directory: str | os.PathLike, required: bool = True) -> None:
    """Check the tokenizer files of `directory` (see the module docstring): None when they are sound, else a
    `TokenizerFileError` (a ValueError) naming the file and what is wrong. `required`: a directory with neither
    ``spiece.model`` nor ``tokenizer.json`` is a FileNotFoundError."""
    directory = Path(directory)
    spiece, pipeline = directory / SPIECE_NAME, directory / TOKENIZER_JSON_NAME
    present = [path for path in (spiece, pipeline) if path.exists() or path.is_symlink()]
    if required and not present:
        raise FileNotFoundError(f"no tokenizer in model directory {directory}: expected "
                                f"{' or '.join(MODEL_FILES)}")
    for name in JSON_NAMES:
        path = directory / name
        if path.exists() or path.is_symlink():
            _read_json(path, "a JSON object")
    pieces = None
    if spiece in present:
        pieces = _sentencepiece_pieces(spiece)
        if pieces is None:  # without sentencepiece: the wire format parsed here
            pieces = spiece_pieces(spiece)
    json_pieces = None
    if pipeline in present:
        _, json_pieces = tokenizer_json_vocabulary(pipeline)
    if pieces is not None and json_pieces is not None and pieces != json_pieces:
        if len(pieces) != len(json_pieces):
            what = f"{spiece.name} has {len(pieces)} pieces, {pipeline.name} {len(json_pieces)}"
        else:
            index = next(i for i, (a, b) in enumerate(zip(pieces, json_pieces)) if a != b)
            what = f"piece {index} is {pieces[index]!r} in {spiece.name} but {json_pieces[index]!r} in {pipeline.name}"
        raise TokenizerFileError(f"{directory}: {spiece.name} and {pipeline.name} are not the same tokenizer ({what}): "
                                 f"the token ids would depend on which file is read; keep the right one")


__all__ = ["TokenizerFileError", "check_tokenizer_files", "spiece_pieces", "tokenizer_json_vocabulary"]
