"""Mean number of updates per kind of token, accumulated over batches. No framework import: the functions take
NumPy arrays or torch tensors alike (only operators and `sum`/`cumsum` are used, so torch tensors stay on their
device).

The kinds are those of `act stats` (`act.commands.stats.CATEGORIES`):

    all         every real token (padding excluded)
    unmasked    ordinary tokens: not special, not [MASK], not a masked-LM target
    masked      every [MASK] token and every masked-LM target (when labels are given), split into:
    mask          the [MASK] tokens
    random        targets replaced by another token (input != label)
    original      targets kept as they are (input == label)
    cls, sep    [CLS] at position 0, and every [SEP]

Without masked-LM labels (fine-tuning, plain text) `random` and `original` are empty and `masked` = `mask`.
"""

from __future__ import annotations

import numpy as np

CATEGORIES = ("all", "unmasked", "masked", "mask", "random", "original", "cls", "sep")


def token_kinds(input_ids, attention_mask, special_ids, cls_id, sep_id, mask_id, mlm_labels=None) -> dict:
    """Boolean (batch, seq) selections of each kind (see the module docstring)."""
    if len(input_ids.shape) != 2:
        raise ValueError(f"input ids must have shape (batch, seq), got {tuple(input_ids.shape)}")
    none = input_ids != input_ids  # all False, same type and device as the input
    real = (attention_mask != 0) if attention_mask is not None else ~none
    if tuple(real.shape) != tuple(input_ids.shape):
        raise ValueError(f"attention mask has shape {tuple(real.shape)}, the input ids {tuple(input_ids.shape)}")
    special = none
    for token in special_ids:
        special = special | (input_ids == int(token))
    mask = real & (input_ids == mask_id) if mask_id is not None else none
    if mlm_labels is not None:
        if tuple(mlm_labels.shape) != tuple(input_ids.shape):
            raise ValueError(f"masked-LM labels have shape {tuple(mlm_labels.shape)}, "
                             f"the input ids {tuple(input_ids.shape)}")
        target = real & (mlm_labels >= 0) & ~mask
        random_ = target & (input_ids != mlm_labels)
        original = target & (input_ids == mlm_labels)
    else:
        random_ = original = none
    first = (~none).cumsum(1) == 1  # position 0
    cls = real & first & (input_ids == cls_id) if cls_id is not None else none
    sep = real & (input_ids == sep_id) if sep_id is not None else none
    return {
        "all": real,
        "unmasked": real & ~special & ~mask & ~random_ & ~original,
        "masked": mask | random_ | original,
        "mask": mask,
        "random": random_,
        "original": original,
        "cls": cls,
        "sep": sep,
    }


def kind_totals(updates, kinds: dict) -> tuple[list, list]:
    """(sum of updates, number of tokens) per kind, in CATEGORIES order (scalars of the inputs' type)."""
    sums = [(updates * kinds[name]).sum() for name in CATEGORIES]
    counts = [kinds[name].sum() for name in CATEGORIES]
    return sums, counts


def means_from_totals(sums, counts, prefix: str = "") -> dict:
    """`{prefix}updates_{kind}`: the mean of each kind seen at least once."""
    return {f"{prefix}updates_{name}": float(sums[i]) / float(counts[i])
            for i, name in enumerate(CATEGORIES) if float(counts[i]) > 0}


class HaltingAccumulator:
    """Sums and counts of `updates` per kind of token over any number of batches (NumPy, float64)."""

    def __init__(self, special_ids, cls_id, sep_id, mask_id):
        self.special_ids = sorted(set(int(i) for i in special_ids))
        self.cls_id, self.sep_id, self.mask_id = cls_id, sep_id, mask_id
        self.reset()

    @classmethod
    def from_tokenizer(cls, tokenizer):
        return cls(tokenizer.all_special_ids, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id)

    def reset(self) -> None:
        self.sums = np.zeros(len(CATEGORIES), np.float64)
        self.counts = np.zeros(len(CATEGORIES), np.float64)

    def add(self, updates, input_ids, attention_mask=None, mlm_labels=None) -> None:
        kinds = token_kinds(np.asarray(input_ids), None if attention_mask is None else np.asarray(attention_mask),
                            self.special_ids, self.cls_id, self.sep_id, self.mask_id,
                            None if mlm_labels is None else np.asarray(mlm_labels))
        sums, counts = kind_totals(np.asarray(updates, dtype=np.float64), kinds)
        self.merge(sums, counts)

    def merge(self, sums, counts) -> None:
        self.sums += np.asarray(sums, np.float64)
        self.counts += np.asarray(counts, np.float64)

    def means(self, prefix: str = "") -> dict:
        return means_from_totals(self.sums, self.counts, prefix)
