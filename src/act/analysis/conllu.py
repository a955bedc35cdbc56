"""CoNLL-U sentences, and the alignment of their words with the tokenizer's pieces.

Reading (https://universaldependencies.org/format.html): a sentence is a block of lines ended by a blank line (or
the end of the file); a line starting with `#` is a comment; every other line has 10 tab-separated fields
ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC. The ID is an integer for a (syntactic) word, a range `6-7`
for a multiword token (its FORM is the surface form of the words 6 and 7, which follow it), or a decimal `8.1`
for an empty node of the enhanced graph. Only the integer-ID words are kept: their FORMs are what is tokenized,
and each carries its UPOS and DEPREL (subtypes kept: `nmod:poss`). A malformed line is a ValueError naming the
file and the line number.

Alignment: the FORMs of a sentence are given to the tokenizer as pre-split words (`is_split_into_words=True`),
and the fast tokenizer's `word_ids()` says which word each piece came from: `[CLS] w1 ... wn [SEP]`, a word
spread over one or more pieces, never paired by position. transformers 5's `AlbertTokenizer.from_pretrained(dir)`
is such a tokenizer (the `tokenizers` backend, built from `tokenizer.json` or converted from `spiece.model`).
A FORM can give no piece at all (e.g. a zero-width or combining character that the normalizer removes): such a
word is not measured and is counted as "without pieces".

Truncation: a sentence with more pieces than the model's positions is cut by the tokenizer (`truncation=True`,
keeping `[CLS]` and `[SEP]`); a word is measured only if all its pieces are kept, the others are counted as cut.

The research code (`create_conll_eval_data.py` in AntoineSimoulin/adaptive-depth-transformers) instead gives
every piece the tag of a word found by a start-of-piece heuristic and averages the updates over pieces; here a
word's updates are the mean over its pieces (or its first piece, `pieces="first"`), and the tables average over
words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

FIELDS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
PIECES = ("mean", "first")
_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
_EMPTY_ID = re.compile(r"(0|[1-9][0-9]*)\.([1-9][0-9]*)")


@dataclass(frozen=True)
class Word:
    form: str
    upos: str
    deprel: str
    line: int  # line number (1-based) in the file


@dataclass(frozen=True)
class Sentence:
    words: tuple[Word, ...]
    line: int  # line number of its first line (comment or word)
    sent_id: str | None = None


def parse_conllu(lines: Iterable[str], source: str = "<conllu>") -> list[Sentence]:
    """The sentences of CoNLL-U text given as lines; ValueError("SOURCE, line N: ...") on a malformed line."""
    sentences: list[Sentence] = []
    words: list[Word] = []
    start, sent_id, expected = None, None, 1  # first line of the block, its sent_id, next word ID

    def close():
        nonlocal words, start, sent_id, expected
        if words:
            sentences.append(Sentence(tuple(words), start, sent_id))
        words, start, sent_id, expected = [], None, None, 1

    number = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            close()
            continue
        if start is None:
            start = number
        if line.startswith("#"):
            match = re.match(r"#\s*sent_id\s*=\s*(.*\S)", line)
            if match:
                sent_id = match.group(1)
            continue
        fields = line.split("\t")
        where = f"{source}, line {number}"
        if len(fields) != len(FIELDS):
            raise ValueError(f"{where}: expected {len(FIELDS)} tab-separated fields ({' '.join(FIELDS)}), "
                             f"got {len(fields)}: {line[:80]!r}")
        token_id, form, upos, deprel = fields[0], fields[1], fields[3], fields[7]
        if _RANGE_ID.fullmatch(token_id):
            first, last = (int(part) for part in _RANGE_ID.fullmatch(token_id).groups())
            if first >= last or first != expected:
                raise ValueError(f"{where}: multiword token range {token_id} must be a-b with a < b, a the next "
                                 f"word ID ({expected})")
            continue
        if _EMPTY_ID.fullmatch(token_id):
            continue
        if not _WORD_ID.fullmatch(token_id):
            raise ValueError(f"{where}: bad ID {token_id!r} (expected an integer, a range like 6-7 or a "
                             f"decimal like 8.1)")
        if int(token_id) != expected:
            raise ValueError(f"{where}: word ID {token_id} where {expected} was expected (IDs count 1, 2, 3, ... "
                             f"in each sentence; a blank line ends a sentence)")
        for name, value in (("FORM", form), ("UPOS", upos), ("DEPREL", deprel)):
            if not value:
                raise ValueError(f"{where}: empty {name} field")
        words.append(Word(form, upos, deprel, number))
        expected += 1
    close()
    return sentences


def read_conllu(path: str | Path) -> list[Sentence]:
    """The sentences of a CoNLL-U file (UTF-8); FileNotFoundError / ValueError with the path when it cannot."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"CoNLL-U file {path} does not exist")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    from ..textfiles import read_utf8

    text = read_utf8(path, "CoNLL-U file", encoding="utf-8-sig")  # not UTF-8: a ValueError naming the line
    sentences = parse_conllu(text.splitlines(), str(path))
    if not sentences:
        raise ValueError(f"CoNLL-U file {path} has no sentence (no line with an integer word ID)")
    return sentences


@dataclass
class Aligned:
    """One sentence after tokenization: its `input_ids` (`[CLS] ... [SEP]`, at most `max_length`), and for each
    word the positions of its pieces in `input_ids` (`pieces[w]`, empty for a word with no piece or cut)."""

    input_ids: list[int]
    pieces: list[list[int]]
    truncated: bool = False
    cut: list[int] = field(default_factory=list)  # indices of the words cut by truncation
    empty: list[int] = field(default_factory=list)  # indices of the words that gave no piece


def _positions(word_ids: Sequence[int | None], n_words: int) -> list[list[int]]:
    positions: list[list[int]] = [[] for _ in range(n_words)]
    for position, word in enumerate(word_ids):
        if word is not None:
            positions[word].append(position)
    return positions


def align(sentences: Sequence[Sentence], tokenizer, max_length: int, chunk: int = 256) -> list[Aligned]:
    """Tokenize each sentence's FORMs as pre-split words and map its words to piece positions (module docstring).
    `tokenizer`: a fast transformers tokenizer (with `word_ids()`); `max_length`: the model's positions."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"aligning words with pieces needs a fast tokenizer (word_ids()); "
                         f"got {type(tokenizer).__name__}")
    if max_length < tokenizer.num_special_tokens_to_add(pair=False) + 1:
        raise ValueError(f"the model's {max_length} positions cannot hold one piece and the special tokens")
    from ..hf_logging import quiet_transformers

    result: list[Aligned] = []
    with quiet_transformers():  # no "sequence longer than model_max_length" warnings: truncation is ours to note
        for start in range(0, len(sentences), chunk):
            batch = [[word.form for word in sentence.words] for sentence in sentences[start:start + chunk]]
            full = tokenizer(batch, is_split_into_words=True, add_special_tokens=True)
            for row, forms in enumerate(batch):
                ids = list(full["input_ids"][row])
                complete = _positions(full.word_ids(row), len(forms))
                empty = [index for index, positions in enumerate(complete) if not positions]
                if len(ids) <= max_length:
                    result.append(Aligned(ids, complete, False, [], empty))
                    continue
                cut_encoding = tokenizer(forms, is_split_into_words=True, add_special_tokens=True,
                                         truncation=True, max_length=max_length)
                kept = _positions(cut_encoding.word_ids(), len(forms))
                pieces, cut = [], []
                for index, (whole, part) in enumerate(zip(complete, kept)):
                    if whole and len(part) == len(whole):
                        pieces.append(part)
                    else:
                        pieces.append([])
                        if whole:
                            cut.append(index)
                result.append(Aligned(list(cut_encoding["input_ids"]), pieces, True, cut, empty))
    return result


def word_values(updates, pieces: Sequence[Sequence[int]], mode: str = "mean") -> list[float | None]:
    """Each word's updates from its pieces' updates: the mean over its pieces (`"mean"`) or its first piece's
    (`"first"`); None for a word without pieces."""
    if mode not in PIECES:
        raise ValueError(f"pieces must be one of {', '.join(PIECES)}, got {mode!r}")
    import numpy as np

    updates = np.asarray(updates, dtype=np.float64)
    values: list[float | None] = []
    for positions in pieces:
        if not positions:
            values.append(None)
        elif mode == "first":
            values.append(float(updates[positions[0]]))
        else:
            values.append(float(updates[list(positions)].mean()))
    return values
