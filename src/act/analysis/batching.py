"""A corpus in padded batches, grouped by length, with the results mapped back to the original order.

`act stats` runs a model over every sequence of a file. Batching the file in its own order pads every short
sequence to the longest one of its batch; sorting the sequences by length first (length buckets: each batch holds
sequences of about the same length) removes most of that padding, so the model, and the fast ACT loop in
particular, spends its work on real tokens. The per-token results do not depend on the order: a padded position
is halted from the start and never attended to (ACT_SEMANTICS.md), so `run_batches(..., order="length")` and
`order="file"` give the same `updates` for every token (tests/test_stats_batching.py checks it).

    from act.analysis.batching import batch_encode, run_batches

    sequences = [tokenizer(line)["input_ids"] for line in lines]          # lists of token ids, any lengths
    for batch in batch_encode(sequences, batch_size=32):                  # order="length" (default) or "file"
        out = runner(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        for index, updates in zip(batch.indices, batch.unpad(out["updates"])):
            ...                                                            # updates of sequences[index]

    per_sequence = run_batches(runner, sequences, batch_size=32)          # the same, collected in file order
    per_sequence[0]["updates"]                                             # (len(sequences[0]),) float array

`max_tokens` bounds the padded size of a batch (rows x longest row) instead of only its number of rows: with
length buckets, batches of short sequences then hold more of them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

ORDERS = ("length", "file")


@dataclass(frozen=True)
class Batch:
    """One padded batch. `indices[row]` is the position of that row's sequence in the input list; `lengths[row]`
    its number of tokens; `input_ids`, `attention_mask`, `token_type_ids` are int64 arrays (rows, longest)."""

    indices: Any
    lengths: Any
    input_ids: Any
    attention_mask: Any
    token_type_ids: Any

    def unpad(self, array) -> list:
        """The rows of a (rows, longest, ...) array, each cut to its sequence's length."""
        return [array[row, :length] for row, length in enumerate(self.lengths)]


def _validate(sequences: Sequence[Sequence[int]], batch_size: int, order: str, max_tokens: int | None) -> list[int]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"max_tokens must be None or an integer >= 1, got {max_tokens!r}")
    lengths = [len(ids) for ids in sequences]
    for index, length in enumerate(lengths):
        if length == 0:
            raise ValueError(f"sequence {index} is empty: every sequence needs at least one token")
    return lengths


def batch_order(lengths: Sequence[int], batch_size: int = 32, order: str = "length",
                max_tokens: int | None = None) -> list[list[int]]:
    """The indices of the sequences of each batch. `order="file"`: consecutive sequences; `order="length"`:
    sequences sorted by decreasing length (ties in file order), then cut into batches. A batch ends after
    `batch_size` rows or before its padded size (rows x longest) would pass `max_tokens` (a batch always holds at
    least one sequence)."""
    import numpy as np

    lengths = list(lengths)
    if order == "length":
        ranked = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable").tolist()
    else:
        ranked = list(range(len(lengths)))
    batches, current, longest = [], [], 0
    for index in ranked:
        candidate = max(longest, lengths[index])
        full = len(current) == batch_size or (
            max_tokens is not None and current and candidate * (len(current) + 1) > max_tokens)
        if full:
            batches.append(current)
            current, candidate = [], lengths[index]
        current.append(index)
        longest = candidate
    if current:
        batches.append(current)
    return batches


def batch_encode(sequences: Sequence[Sequence[int]], batch_size: int = 32, *, order: str = "length",
                 max_tokens: int | None = None, pad_id: int = 0) -> Iterator[Batch]:
    """Yield padded `Batch`es covering every sequence once (see the module docstring). Token type ids are 0."""
    import numpy as np

    lengths = _validate(sequences, batch_size, order, max_tokens)
    for indices in batch_order(lengths, batch_size, order, max_tokens):
        rows = np.asarray([lengths[index] for index in indices], dtype=np.int64)
        width = int(rows.max())
        input_ids = np.full((len(indices), width), pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(indices), width), dtype=np.int64)
        for row, index in enumerate(indices):
            input_ids[row, :rows[row]] = sequences[index]
            attention_mask[row, :rows[row]] = 1
        yield Batch(np.asarray(indices, dtype=np.int64), rows, input_ids, attention_mask, np.zeros_like(input_ids))


def default_reduce(batch: Batch, out: dict) -> list[dict]:
    """Per row: the row's `updates` and `remainders` cut to its length."""
    return [{"updates": updates, "remainders": remainders}
            for updates, remainders in zip(batch.unpad(out["updates"]), batch.unpad(out["remainders"]))]


def run_batches(runner: Callable, sequences: Sequence[Sequence[int]], batch_size: int = 32, *,
                order: str = "length", max_tokens: int | None = None, pad_id: int = 0,
                hidden_states: bool = False, reduce: Callable[[Batch, dict], list] | None = None,
                progress: bool = False, desc: str = "act stats") -> list:
    """Run `runner(input_ids, attention_mask, token_type_ids[, hidden_states=True])` (an
    `act.commands.inspect.Runner`) over `sequences` in batches and return one result per sequence, in the order of
    `sequences`.

    `reduce(batch, out)` turns the runner's output for a batch into one result per row (default: the row's
    `updates` and `remainders` arrays, cut to its length); it runs once per batch, so large per-batch outputs (the
    hidden states) can be reduced before the next batch."""
    from tqdm.auto import tqdm

    lengths = _validate(sequences, batch_size, order, max_tokens)
    reduce = default_reduce if reduce is None else reduce
    results: list = [None] * len(sequences)
    batches = batch_encode(sequences, batch_size, order=order, max_tokens=max_tokens, pad_id=pad_id)
    total = len(batch_order(lengths, batch_size, order, max_tokens))
    for batch in tqdm(batches, total=total, desc=desc, unit="batch", disable=not progress or None, file=sys.stderr):
        if hidden_states:
            out = runner(batch.input_ids, batch.attention_mask, batch.token_type_ids, hidden_states=True)
        else:
            out = runner(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        rows = reduce(batch, out)
        if len(rows) != len(batch.indices):
            raise ValueError(f"reduce returned {len(rows)} results for a batch of {len(batch.indices)} sequences")
        for index, result in zip(batch.indices.tolist(), rows):
            results[index] = result
    return results
