"""Pre-training data in ALBERT's way, through `datasets` (tokenized once, cached on disk, memory-mapped).

The corpus is ALBERT's format: one sentence (segment) a line, documents separated by blank lines; several files are
read one after the other (a file's end also ends a document). Three stages:

1. **Tokens** (`tokenize_corpus`): every line -> its token ids (no special tokens; a blank line -> an empty list),
   in corpus order, cached under a fingerprint of the corpus content and the tokenizer.
2. **Pairs** (`build_pairs`): ALBERT's `create_instances_from_document`, streamed: the lines are read in order from
   the memory-mapped token table and only the current chunk of one document is held in memory, so a corpus of any
   size works. Segments of one document are gathered until a target length (`max_seq_length - 3`; with probability
   `short_seq_prob` a shorter random one) is reached, the chunk is cut at a random segment boundary into A and B
   (a chunk of one segment is cut inside it), and A and B are swapped with probability 1/2: `[CLS] A [SEP] B [SEP]`
   with `sentence_order_label` 1 when swapped (sentence-order prediction). The longer side is trimmed (at a random
   end) to fit. `dupe_factor` passes with different random choices give different pairs of the same text. Cached
   under a fingerprint of the tokens and these settings.
3. **Masking** (`NgramMaskingCollator`, per batch, so every epoch sees new masks): ALBERT's n-gram masking over
   whole words (a word is a piece starting with "▁", or a punctuation/`<`-piece, plus the pieces that continue it):
   n-grams of n = 1..`max_ngram` words with probability proportional to 1/n, until `masked_lm_prob` of the tokens
   (at most `max_predictions_per_seq`) are chosen; each chosen token becomes [MASK] (80%), stays (10%) or becomes a
   random ordinary token (10%).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

FORMAT_VERSION = 1  # bump when the cached data's meaning changes
PUNCTUATION = set('!"#$%&\'()*+,-./:;?@[\\]^_`{|}~')


@dataclass(frozen=True)
class PairSettings:
    max_seq_length: int
    short_seq_prob: float = 0.1
    dupe_factor: int = 1
    seed: int = 12345

    def check(self) -> None:
        if self.max_seq_length < 5:
            raise ValueError(f"--max_seq_length must be at least 5 ([CLS] a [SEP] b [SEP]), got {self.max_seq_length}")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise ValueError(f"--short_seq_prob must lie in [0, 1], got {self.short_seq_prob}")
        if self.dupe_factor < 1:
            raise ValueError(f"--dupe_factor must be >= 1, got {self.dupe_factor}")


# ---------------------------------------------------------------------------------------------- fingerprints
def file_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.stat().st_size).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """What decides the token ids: the tokenizer's serialisation (fast tokenizers; without the truncation and
    padding settings of its last call) or its vocabulary."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        digest.update(json.dumps(state, sort_keys=True).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(json.dumps([type(tokenizer).__name__, tokenizer.all_special_tokens]).encode())
    return digest.hexdigest()


def short_hash(*parts) -> str:
    return hashlib.sha256(json.dumps([FORMAT_VERSION, *parts], sort_keys=True).encode()).hexdigest()[:20]


def check_corpus(paths) -> list[Path]:
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise ValueError("no corpus file given")
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"corpus file {path} does not exist")
        if not path.is_file():
            raise FileNotFoundError(f"corpus {path} is not a file")
    if not any(_has_text(path) for path in paths):  # not a `datasets` traceback about schemas or "no data"
        raise ValueError(f"corpus {', '.join(map(str, paths))} is empty (no line with text)")
    return paths


def _has_text(path: Path) -> bool:
    """Whether the file has a non-blank line (read up to the first one)."""
    with open(path, encoding="utf-8", errors="replace") as stream:
        return any(line.strip() for line in stream)


# ---------------------------------------------------------------------------------------------------- tokens
def tokenize_corpus(paths, tokenizer, cache_dir: Path, num_proc: int | None = None):
    """The corpus as a memory-mapped `datasets.Dataset` with one column `input_ids` (one row per line, in order)."""
    import datasets

    paths = check_corpus(paths)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = short_hash("tokens", file_digest(paths), tokenizer_digest(tokenizer))
    final = cache_dir / f"tokens-{fingerprint}"
    if (final / "dataset_info.json").exists():
        return datasets.load_from_disk(str(final)), fingerprint
    try:
        lines = datasets.load_dataset("text", data_files={"train": [str(p) for p in paths]},
                                      cache_dir=str(cache_dir / "text"), split="train")
    except Exception:  # datasets' error names no line: a file that is not UTF-8 is said so, with file and line
        from act.textfiles import check_utf8

        for path in paths:
            check_utf8(path, "corpus file")
        raise
    if len(lines) == 0:
        raise ValueError(f"corpus {', '.join(map(str, paths))} is empty")

    def encode(batch):
        texts = [text.strip() for text in batch["text"]]
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if any(texts) else [[] for _ in texts]
        return {"input_ids": [row if text else [] for row, text in zip(ids, texts)]}

    features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32"))})
    tokens = lines.map(encode, batched=True, batch_size=1000, remove_columns=lines.column_names, features=features,
                       num_proc=num_proc if num_proc and num_proc > 1 else None, new_fingerprint=fingerprint,
                       desc="tokenizing the corpus")
    save_atomically(tokens, final)
    return datasets.load_from_disk(str(final)), fingerprint


def save_atomically(dataset, final: Path) -> None:
    """save_to_disk into a temporary sibling, then rename: a killed run leaves no half-written cache entry."""
    temporary = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    if temporary.exists():
        shutil.rmtree(temporary)
    try:
        dataset.save_to_disk(str(temporary))
    except BaseException:  # a full disk: no half-written directory stays behind
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    try:
        os.replace(temporary, final)
    except OSError:  # another process finished first (a non-empty `final` exists): keep theirs
        shutil.rmtree(temporary, ignore_errors=True)
        if not (final / "dataset_info.json").exists():
            raise


# ----------------------------------------------------------------------------------------------------- pairs
def truncate_pair(a: list[int], b: list[int], budget: int, rng: random.Random) -> None:
    """ALBERT's truncate_seq_pair: trim the longer side, at its front or back (1/2 each), until both fit."""
    while len(a) + len(b) > budget:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def make_pair(chunk: list[list[int]], settings: PairSettings, rng: random.Random, cls_id: int, sep_id: int):
    """One SOP example from a chunk of consecutive segments, or None when it cannot give two non-empty sides."""
    if len(chunk) >= 2:
        cut = rng.randint(1, len(chunk) - 1)
        a = [token for segment in chunk[:cut] for token in segment]
        b = [token for segment in chunk[cut:] for token in segment]
    else:
        tokens = chunk[0]
        if len(tokens) < 2:
            return None
        cut = rng.randint(1, len(tokens) - 1)
        a, b = list(tokens[:cut]), list(tokens[cut:])
    budget = settings.max_seq_length - 3
    truncate_pair(a, b, budget, rng)
    if not a or not b:
        return None
    swapped = rng.random() < 0.5
    if swapped:
        a, b = b, a
    return {**pair_inputs(a, b, cls_id, sep_id), "sentence_order_label": int(swapped)}


def pair_inputs(a: list[int], b: list[int], cls_id: int, sep_id: int) -> dict:
    """`[CLS] A [SEP] B [SEP]` and its segment ids, 0 up to and including the first [SEP], 1 after (ALBERT's
    pre-training and run_classifier)."""
    return {"input_ids": [cls_id, *a, sep_id, *b, sep_id], "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1)}


def truncate_pair_at_end(a: list[int], b: list[int], budget: int) -> None:
    """run_classifier's _truncate_seq_pair: remove the last token of the longer side (of B when both are as long)
    until both fit in `budget`."""
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()


def stream_pairs(lines, settings: PairSettings, rng: random.Random, cls_id: int, sep_id: int):
    """ALBERT's create_instances_from_document over an iterable of token-id lists (an empty list ends a document),
    streamed: only the current chunk is kept."""
    budget = settings.max_seq_length - 3

    def new_target():
        return rng.randint(2, budget) if rng.random() < settings.short_seq_prob else budget

    chunk, length, target = [], 0, new_target()
    for segment in lines:
        if not segment:  # end of a document
            if chunk:
                pair = make_pair(chunk, settings, rng, cls_id, sep_id)
                if pair is not None:
                    yield pair
            chunk, length, target = [], 0, new_target()
            continue
        chunk.append(segment)
        length += len(segment)
        if length >= target:
            pair = make_pair(chunk, settings, rng, cls_id, sep_id)
            if pair is not None:
                yield pair
            chunk, length, target = [], 0, new_target()
    if chunk:
        pair = make_pair(chunk, settings, rng, cls_id, sep_id)
        if pair is not None:
            yield pair


def _pair_generator(tokens_dir: str, settings: dict, cls_id: int, sep_id: int):
    """The `Dataset.from_generator` source: every pass of `dupe_factor` over the memory-mapped token table."""
    import datasets

    tokens = datasets.load_from_disk(tokens_dir)
    settings = PairSettings(**settings)

    def lines():
        for batch in tokens.iter(batch_size=1000):
            yield from batch["input_ids"]
        yield []  # the corpus's end ends its last document

    for duplicate in range(settings.dupe_factor):
        rng = random.Random(f"{settings.seed}-{duplicate}")
        yield from stream_pairs(lines(), settings, rng, cls_id, sep_id)


def build_pairs(tokens_fingerprint: str, tokenizer, settings: PairSettings, cache_dir: Path):
    """The sentence-order pairs as a memory-mapped Dataset (input_ids, token_type_ids, sentence_order_label), from
    the tokens that `tokenize_corpus` cached in `cache_dir` under `tokens_fingerprint`."""
    import datasets

    settings.check()
    cache_dir = Path(cache_dir)
    fingerprint = short_hash("pairs", tokens_fingerprint, asdict(settings), tokenizer.cls_token_id,
                             tokenizer.sep_token_id)
    final = cache_dir / f"pairs-{fingerprint}"
    if not (final / "dataset_info.json").exists():
        features = datasets.Features({
            "input_ids": datasets.Sequence(datasets.Value("int32")),
            "token_type_ids": datasets.Sequence(datasets.Value("int8")),
            "sentence_order_label": datasets.Value("int8"),
        })
        gen_kwargs = {"tokens_dir": str(cache_dir / f"tokens-{tokens_fingerprint}"), "settings": asdict(settings),
                      "cls_id": tokenizer.cls_token_id, "sep_id": tokenizer.sep_token_id}
        if next(_pair_generator(**gen_kwargs), None) is None:  # datasets would only say "corresponds to no data"
            raise ValueError("the corpus gave no sentence-order pair (each needs a line of at least two tokens)")
        scratch = cache_dir / f"generator-{fingerprint}-{os.getpid()}"
        try:
            pairs = datasets.Dataset.from_generator(
                _pair_generator, features=features, cache_dir=str(scratch), gen_kwargs=gen_kwargs)
            if len(pairs) == 0:
                raise ValueError("the corpus gave no sentence-order pair (each needs a line of at least two tokens)")
            save_atomically(pairs, final)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return datasets.load_from_disk(str(final)), fingerprint


# --------------------------------------------------------------------------------------------------- masking
def word_start_table(tokenizer) -> list[bool]:
    """Per token id: whether the piece starts a word (ALBERT's `_is_start_piece`)."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return [piece is None or piece.startswith("▁") or piece.startswith("<") or piece in PUNCTUATION
            for piece in pieces]


class NgramMaskingCollator:
    """Pads a list of pairs into a batch and masks it with ALBERT's n-gram masking (see the module docstring).

    Draws from Python's `random` module (seeded by the Trainer, and per worker by torch's DataLoader). Features
    that already carry `labels` (a pre-masked evaluation set) are only padded."""

    def __init__(self, tokenizer, masked_lm_prob: float = 0.15, max_predictions_per_seq: int = 20,
                 max_ngram: int = 3, pad_to_multiple_of: int | None = None):
        if not 0.0 < masked_lm_prob <= 1.0:
            raise ValueError(f"--masked_lm_prob must lie in (0, 1], got {masked_lm_prob}")
        if max_predictions_per_seq < 1:
            raise ValueError(f"--max_predictions_per_seq must be >= 1, got {max_predictions_per_seq}")
        if max_ngram < 1:
            raise ValueError(f"--max_ngram must be >= 1, got {max_ngram}")
        self.masked_lm_prob = masked_lm_prob
        self.max_predictions_per_seq = max_predictions_per_seq
        self.max_ngram = max_ngram
        self.pad_to_multiple_of = pad_to_multiple_of
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.mask_id = tokenizer.mask_token_id
        if self.mask_id is None:
            raise ValueError("the tokenizer has no mask token ([MASK]); masked-LM pre-training needs one")
        self.special = set(tokenizer.all_special_ids)
        self.word_start = word_start_table(tokenizer)
        self.ordinary = [i for i in range(len(tokenizer)) if i not in self.special]
        weights = [1.0 / n for n in range(1, max_ngram + 1)]
        self.ngram_weights = weights

    def mask(self, ids: list[int], rng=random) -> tuple[list[int], list[int]]:
        """(masked ids, labels with -100 where nothing is predicted): ALBERT's create_masked_lm_predictions."""
        ids = list(ids)
        words: list[list[int]] = []
        for position, token in enumerate(ids):
            if token in self.special:
                continue
            if words and not self.word_start[token] and words[-1][-1] == position - 1:
                words[-1].append(position)
            else:
                words.append([position])
        labels = [-100] * len(ids)
        if not words:
            return ids, labels
        budget = min(self.max_predictions_per_seq, max(1, int(round(len(ids) * self.masked_lm_prob))))
        starts = list(range(len(words)))
        rng.shuffle(starts)
        covered: set[int] = set()
        chosen: list[int] = []
        for start in starts:
            if len(chosen) >= budget:
                break
            if start in covered:
                continue
            longest = min(self.max_ngram, len(words) - start)
            n = rng.choices(range(1, longest + 1), weights=self.ngram_weights[:longest])[0]
            positions = [p for word in words[start:start + n] for p in word]
            while len(chosen) + len(positions) > budget and n > 1:
                n -= 1
                positions = [p for word in words[start:start + n] for p in word]
            if len(chosen) + len(positions) > budget:
                continue
            span = range(start, start + n)
            if any(word in covered for word in span):
                continue
            covered.update(span)
            chosen.extend(positions)
        for position in chosen:
            labels[position] = ids[position]
            if rng.random() < 0.8:
                ids[position] = self.mask_id
            elif rng.random() < 0.5:
                ids[position] = self.ordinary[rng.randrange(len(self.ordinary))]
        return ids, labels

    def __call__(self, features: list[dict]) -> dict:
        import torch

        rows = []
        for feature in features:
            ids = list(feature["input_ids"])
            if "labels" in feature and feature["labels"] is not None:
                labels = list(feature["labels"])
            else:
                ids, labels = self.mask(ids)
            rows.append((ids, list(feature.get("token_type_ids") or [0] * len(ids)), labels))
        length = max(len(ids) for ids, _, _ in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {
            "input_ids": torch.tensor([ids + [self.pad_id] * (length - len(ids)) for ids, _, _ in rows]),
            "attention_mask": torch.tensor([[1] * len(ids) + [0] * (length - len(ids)) for ids, _, _ in rows]),
            "token_type_ids": torch.tensor([types + [0] * (length - len(types)) for _, types, _ in rows]),
            "labels": torch.tensor([labels + [-100] * (length - len(labels)) for _, _, labels in rows]),
        }
        if "sentence_order_label" in features[0]:
            batch["sentence_order_label"] = torch.tensor([int(f["sentence_order_label"]) for f in features])
        return batch


def premask(pairs, collator: NgramMaskingCollator, seed: int):
    """A fixed masking of an evaluation set (the same masks at every evaluation): adds `labels`."""
    rng = random.Random(seed)

    def apply(batch):
        out_ids, out_labels = [], []
        for ids in batch["input_ids"]:
            masked, labels = collator.mask(ids, rng)
            out_ids.append(masked)
            out_labels.append(labels)
        return {"input_ids": out_ids, "labels": out_labels}

    return pairs.map(apply, batched=True, batch_size=1000, load_from_cache_file=False, keep_in_memory=True,
                     desc="masking the evaluation set")
