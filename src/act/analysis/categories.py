"""Token categories of `act stats`: ours (the default) and the research code's (`--categories research`).

Every sequence is `[CLS] line [SEP]`; before the model sees it, each ordinary (non-special) token is *chosen*
with probability `--mask-rate` and then replaced by `[MASK]` (80%), replaced by a random ordinary token (10%) or
kept (10%). A token is described by its kind (unmasked, mask, random, original, [CLS], [SEP], another special
token), the id the model sees (`input`) and the id of the text (`original`).

Ours (`CATEGORIES`): disjoint kinds, plus "all" and "masked".

    all         every token
    unmasked    ordinary tokens that were not chosen
    masked      chosen tokens (mask + random + original)
    mask        chosen, replaced by [MASK]
    random      chosen, replaced by a random ordinary token (which can, rarely, be the original token)
    original    chosen, kept as it is
    cls, sep    the [CLS] token at position 0; the [SEP] tokens

The research code's (`RESEARCH_CATEGORIES`): the definitions of `metric_fn`, the evaluation metrics defined in
`model_fn_builder` of `act/pretraining/run_pretraining_with_penalty.py` in AntoineSimoulin/adaptive-depth-transformers
(commit 59ca53f), which logs mean updates under the names in the third column; the fourth is the row of the
published table (README of that repository: base: all 10.0, unmasked 9.2, [MASK] 16.0, [CLS] 22.5, [SEP] 8.4).
There the masked positions are those of `masked_lm_positions`, and "input" is `input_ids`.

    key            definition (research)                   metric_fn name             README row
    all            input is not padding (input_ids > 0)    n_updates_global/all       All tokens
    no_mask        input != [MASK]                         n_updates_global/no_mask   All unmasked tokens
    mask_mask      chosen and input == [MASK]              n_updates_mask/mask        [MASK/MASK]
    mask_random    chosen and input != original            n_updates_mask/random      [MASK/random]
    mask_original  chosen and input == original            n_updates_mask/token       [MASK/original]
    cls            input == [CLS]                          n_updates_global/cls       [CLS]
    sep            input == [SEP]                          n_updates_global/sep       [SEP]

In our categories: all, mask_mask, cls and sep are our all, mask, cls and sep;

    no_mask        = unmasked + random + original + cls + sep
    mask_random    = mask + the random replacements that differ from the original token
    mask_original  = original + the random replacements that drew the original token

(`metric_fn` also logs `n_updates_global/mask`, input == [MASK] anywhere, which is `mask_mask` here since
[MASK] only enters by masking.) So the research "All unmasked tokens" counts [CLS], [SEP] and the tokens chosen
but not shown as [MASK], and "[MASK/random]" includes the [MASK] tokens (most of it), which explains why the
published table gives both the same value. Remaining differences are in the masking procedure, not the
definitions: the research code reads data in ALBERT's pre-training format (`masked_lm_positions`, at most
`max_predictions_per_seq` per sequence; ALBERT's generator masks n-gram spans), ours chooses each token
independently.
"""

from __future__ import annotations

CATEGORIES = ("all", "unmasked", "masked", "mask", "random", "original", "cls", "sep")
RESEARCH_CATEGORIES = ("all", "no_mask", "mask_mask", "mask_random", "mask_original", "cls", "sep")
CATEGORY_SETS = ("ours", "research")
# README rows of the research repository and metric_fn names, for the report's labels
RESEARCH_LABELS = {
    "all": ("All tokens", "n_updates_global/all"),
    "no_mask": ("All unmasked tokens", "n_updates_global/no_mask"),
    "mask_mask": ("[MASK/MASK]", "n_updates_mask/mask"),
    "mask_random": ("[MASK/random]", "n_updates_mask/random"),
    "mask_original": ("[MASK/original]", "n_updates_mask/token"),
    "cls": ("[CLS]", "n_updates_global/cls"),
    "sep": ("[SEP]", "n_updates_global/sep"),
}

# codes of the per-token kinds (every token gets exactly one)
UNMASKED, MASK, RANDOM, ORIGINAL, CLS, SEP, OTHER_SPECIAL = range(7)
CHOSEN = (MASK, RANDOM, ORIGINAL)


def names(category_set: str) -> tuple[str, ...]:
    if category_set not in CATEGORY_SETS:
        raise ValueError(f"--categories must be one of {', '.join(CATEGORY_SETS)}, got {category_set!r}")
    return CATEGORIES if category_set == "ours" else RESEARCH_CATEGORIES


def selections(category_set: str, kinds, inputs, originals, cls_id: int, sep_id: int, mask_id: int) -> dict:
    """{category: boolean array} over tokens, from their kind codes, the ids the model saw (`inputs`) and the ids
    of the text (`originals`), all arrays of the same shape (padding excluded beforehand)."""
    import numpy as np

    kinds, inputs, originals = np.asarray(kinds), np.asarray(inputs), np.asarray(originals)
    if not kinds.shape == inputs.shape == originals.shape:
        raise ValueError(f"kinds, inputs and originals must have one shape, got {kinds.shape}, {inputs.shape}, "
                         f"{originals.shape}")
    chosen = np.isin(kinds, CHOSEN)
    if category_set == "ours":
        return {
            "all": np.ones(kinds.shape, dtype=bool),
            "unmasked": kinds == UNMASKED,
            "masked": chosen,
            "mask": kinds == MASK,
            "random": kinds == RANDOM,
            "original": kinds == ORIGINAL,
            "cls": kinds == CLS,
            "sep": kinds == SEP,
        }
    names(category_set)
    return {
        "all": np.ones(kinds.shape, dtype=bool),
        "no_mask": inputs != mask_id,
        "mask_mask": chosen & (inputs == mask_id),
        "mask_random": chosen & (inputs != originals),
        "mask_original": chosen & (inputs == originals),
        "cls": inputs == cls_id,
        "sep": inputs == sep_id,
    }
