"""`act stats`: mean number of updates per token type over a text file (the table of Simoulin & Crabbé, 2021).

    act stats corpus.txt [--model DIR] [--mask-rate 0.15] [--seed 0] [--json out.json] [--csv out.csv]

Each non-empty line of the file is one sequence, `[CLS] line [SEP]` (truncated to the model's
max_position_embeddings). Before the model sees it, `--mask-rate` of the ordinary tokens of each sequence
(each token independently, seeded) are chosen as in BERT/ALBERT pre-training and split 80/10/10: replaced by
[MASK], replaced by a random token, or kept as they are. The report gives the mean number of updates of:

    all         every token, [CLS] and [SEP] included
    unmasked    ordinary tokens that were not chosen
    masked      all chosen tokens, and the three kinds of them:
    mask          replaced by [MASK]
    random        replaced by a random token
    original      chosen but kept as they are
    cls, sep    the [CLS] and [SEP] tokens
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from .inspect import FRAMEWORKS, Runner, load_tokenizer, resolve_model_dir

CATEGORIES = ("all", "unmasked", "masked", "mask", "random", "original", "cls", "sep")
# codes of the per-token kinds (every token gets exactly one)
UNMASKED, MASK, RANDOM, ORIGINAL, CLS, SEP, OTHER_SPECIAL = range(7)


def read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise FileNotFoundError(f"text file {path} does not exist")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"text file {path} has no non-empty line")
    return lines


def mask_sequence(ids: list[int], special_ids: set[int], mask_id: int, ordinary: list[int], rate: float, rng):
    """(masked ids, kind code per token): BERT masking of the ordinary (non-special) tokens, 80/10/10; a random
    replacement is drawn from `ordinary` (the non-special ids)."""
    ids = list(ids)
    kinds = []
    for position, token in enumerate(ids):
        if token in special_ids:
            kinds.append(OTHER_SPECIAL)
            continue
        if rate > 0 and rng.random() < rate:
            roll = rng.random()
            if roll < 0.8:
                ids[position] = mask_id
                kinds.append(MASK)
            elif roll < 0.9:
                ids[position] = ordinary[int(rng.integers(len(ordinary)))]
                kinds.append(RANDOM)
            else:
                kinds.append(ORIGINAL)
        else:
            kinds.append(UNMASKED)
    return ids, kinds


def compute_stats(lines: list[str], runner: Runner, tokenizer, mask_rate: float = 0.15, seed: int = 0,
                  batch_size: int = 32, progress: bool = True) -> dict:
    """Run the model over `lines` and aggregate the updates per token kind. Returns the report as a dict."""
    import numpy as np
    from tqdm.auto import tqdm

    if not 0.0 <= mask_rate <= 1.0:
        raise ValueError(f"--mask-rate must lie in [0, 1], got {mask_rate}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    rng = np.random.default_rng(seed)
    special_ids = set(tokenizer.all_special_ids)
    cls_id, sep_id, mask_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id
    ordinary = [i for i in range(int(runner.config.vocab_size)) if i not in special_ids]
    encoded = tokenizer(lines, truncation=True, max_length=runner.max_length)["input_ids"]

    sequences = []  # (masked ids, kinds)
    for ids in encoded:
        masked, kinds = mask_sequence(ids, special_ids, mask_id, ordinary, mask_rate, rng)
        kinds = [CLS if token == cls_id and position == 0 else SEP if token == sep_id else kind
                 for position, (token, kind) in enumerate(zip(ids, kinds))]
        sequences.append((masked, kinds))

    all_updates, all_kinds = [], []
    batches = range(0, len(sequences), batch_size)
    for start in tqdm(batches, desc="act stats", unit="batch", disable=not progress or None, file=sys.stderr):
        chunk = sequences[start:start + batch_size]
        length = max(len(ids) for ids, _ in chunk)
        input_ids = np.zeros((len(chunk), length), dtype=np.int64) + (tokenizer.pad_token_id or 0)
        attention_mask = np.zeros((len(chunk), length), dtype=np.int64)
        for row, (ids, _) in enumerate(chunk):
            input_ids[row, :len(ids)] = ids
            attention_mask[row, :len(ids)] = 1
        out = runner(input_ids, attention_mask, np.zeros_like(input_ids))
        for row, (ids, kinds) in enumerate(chunk):
            all_updates.append(out["updates"][row, :len(ids)])
            all_kinds.append(np.asarray(kinds))

    updates = np.concatenate(all_updates)
    kinds = np.concatenate(all_kinds)
    selections = {
        "all": np.ones_like(kinds, dtype=bool),
        "unmasked": kinds == UNMASKED,
        "masked": np.isin(kinds, (MASK, RANDOM, ORIGINAL)),
        "mask": kinds == MASK,
        "random": kinds == RANDOM,
        "original": kinds == ORIGINAL,
        "cls": kinds == CLS,
        "sep": kinds == SEP,
    }
    categories = {}
    for name in CATEGORIES:
        values = updates[selections[name]]
        categories[name] = {
            "count": int(values.size),
            "mean_updates": float(values.mean()) if values.size else None,
            "std_updates": float(values.std()) if values.size else None,
        }
    cap = int(runner.config.num_hidden_layers)
    histogram = {str(k): int((updates == k).sum()) for k in range(1, cap + 1)}
    return {
        "model": str(runner.directory),
        "framework": runner.framework,
        "sequences": len(lines),
        "tokens": int(updates.size),
        "mask_rate": mask_rate,
        "seed": seed,
        "iteration_cap": cap,
        "categories": categories,
        "updates_histogram": histogram,
    }


def format_report(report: dict) -> str:
    lines = [f"model: {report['model']} ({report['framework']}); {report['sequences']} sequences, "
             f"{report['tokens']} tokens; mask rate {report['mask_rate']} (seed {report['seed']})",
             f"{'tokens':<10} {'count':>8} {'mean updates':>13} {'std':>6}", "-" * 40]
    for name in CATEGORIES:
        entry = report["categories"][name]
        if entry["count"]:
            lines.append(f"{name:<10} {entry['count']:>8} {entry['mean_updates']:>13.3f} {entry['std_updates']:>6.2f}")
        else:
            lines.append(f"{name:<10} {0:>8} {'-':>13} {'-':>6}")
    histogram = report["updates_histogram"]
    lines.append("updates histogram: " + ", ".join(f"{k}: {v}" for k, v in histogram.items() if v))
    return "\n".join(lines)


def write_csv(path: Path, report: dict) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tokens", "count", "mean_updates", "std_updates"])
        for name in CATEGORIES:
            entry = report["categories"][name]
            writer.writerow([name, entry["count"],
                             "" if entry["mean_updates"] is None else f"{entry['mean_updates']:.6f}",
                             "" if entry["std_updates"] is None else f"{entry['std_updates']:.6f}"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="text file, one sequence per non-empty line")
    parser.add_argument("--model", metavar="DIR", default=None,
                        help="model directory (config.json, weights, spiece.model); default: the embedded demo model")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="pytorch", help="run the model in PyTorch or Keras")
    parser.add_argument("--mask-rate", type=float, default=0.15,
                        help="share of the ordinary tokens chosen for masking, split 80/10/10 (default 0.15; 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the masking (default 0)")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per model call (default 32)")
    parser.add_argument("--json", metavar="PATH", default=None, help="write the report as JSON")
    parser.add_argument("--csv", metavar="PATH", default=None, help="write the table as CSV")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    lines = read_lines(Path(args.file))
    directory = resolve_model_dir(args.model)
    tokenizer = load_tokenizer(directory)
    for option in ("json", "csv"):
        target = getattr(args, option)
        if target is not None and not Path(target).resolve().parent.is_dir():
            raise FileNotFoundError(f"cannot write --{option} {target}: its directory does not exist")
    runner = Runner(directory, args.framework)
    report = compute_stats(lines, runner, tokenizer, args.mask_rate, args.seed, args.batch_size,
                           progress=not args.no_progress)
    print(format_report(report))
    if args.json is not None:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"JSON written to {args.json}")
    if args.csv is not None:
        write_csv(Path(args.csv), report)
        print(f"CSV written to {args.csv}")
    return 0
