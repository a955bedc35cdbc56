#!/usr/bin/env python
"""Corpus throughput of `act stats`: batching in file order vs length buckets (act.analysis.batching).

A benchmark, not a test. The corpus is the demo model's held-out text repeated `--text-repeat` times (default 10:
10,370 lines), tokenized once as `act stats` does (`[CLS] line [SEP]`, truncated to the model's positions). In one
run, on the same sequences, it times `run_batches` (the loop of `act stats`) over the whole corpus with:

- ``file``            batches of `--batch-size` consecutive lines (the batching of `act stats` before buckets)
- ``length``          the lines sorted by length, batches of `--batch-size` (the default of `act stats` now)
- ``length+tokens``   the same, each batch holding up to batch_size x max_position_embeddings padded tokens
                      (short lines come in bigger batches)

and reports real (non-padding) tokens per second, the share of padding, and each variant's ratio to ``file``
(medians over `--rounds` interleaved rounds). Every variant's updates are checked to be equal, token for token.
The load average is printed before and after: on a shared machine the ratios, not the absolute speeds, are the
result.

    .venv/bin/python benchmarks/bench_stats.py                         # demo model, PyTorch, 2 threads
    .venv/bin/python benchmarks/bench_stats.py --framework keras --rounds 1
    .venv/bin/python benchmarks/bench_stats.py --model DIR --text-repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

VARIANTS = ("file", "length", "length+tokens")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model directory (default: the embedded demo model)")
    parser.add_argument("--framework", choices=("pytorch", "keras"), default="pytorch")
    parser.add_argument("--text", default=None, help="text file (default: the demo model's heldout.txt)")
    parser.add_argument("--text-repeat", type=int, default=10, help="how many times the text is repeated")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (each runs every variant once)")
    parser.add_argument("--threads", type=int, default=2, help="torch / TF intra-op threads")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    for name in ("text_repeat", "batch_size", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from act.analysis.batching import batch_order, run_batches
    from act.commands.inspect import Runner, load_tokenizer, resolve_model_dir

    if args.framework == "pytorch":
        import torch

        torch.set_num_threads(args.threads)
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    directory = resolve_model_dir(args.model)
    text = Path(args.text) if args.text else directory / "heldout.txt"
    lines = [line.strip() for line in text.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = lines * args.text_repeat
    tokenizer = load_tokenizer(directory)
    runner = Runner(directory, args.framework)
    sequences = tokenizer(lines, truncation=True, max_length=runner.max_length)["input_ids"]
    lengths = [len(ids) for ids in sequences]
    tokens = sum(lengths)
    settings = {
        "file": dict(order="file", max_tokens=None),
        "length": dict(order="length", max_tokens=None),
        "length+tokens": dict(order="length", max_tokens=args.batch_size * runner.max_length),
    }
    padded = {}
    for name, options in settings.items():
        batches = batch_order(lengths, args.batch_size, options["order"], options["max_tokens"])
        padded[name] = sum(len(b) * max(lengths[i] for i in b) for b in batches)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"model {directory} ({args.framework}, {args.threads} threads); {len(lines)} lines "
          f"({text.name} x {args.text_repeat}), {tokens} tokens; batch size {args.batch_size}; "
          f"load average before: {load:.2f}", flush=True)
    times = {name: [] for name in VARIANTS}
    reference = None
    runner(*(batch for batch in _warm(sequences[:4])))  # first call: lazy initialisation
    for round_index in range(args.rounds):
        for name in VARIANTS:
            start = time.perf_counter()
            results = run_batches(runner, sequences, args.batch_size, **settings[name])
            times[name].append(time.perf_counter() - start)
            if reference is None:
                reference = results
            else:
                mismatched = sum(int((a["updates"] != b["updates"]).sum()) for a, b in zip(reference, results))
                if mismatched:
                    print(f"WARNING: {name}: {mismatched} token(s) with other updates than file order", flush=True)
            print(f"  round {round_index + 1} {name:<14} {times[name][-1]:8.2f} s", flush=True)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    base = statistics.median(times["file"])
    rows = []
    print(f"\n{'batching':<14} {'median s':>9} {'tokens/s':>10} {'padding':>8} {'vs file':>8}")
    for name in VARIANTS:
        median = statistics.median(times[name])
        row = {"variant": name, "median_s": median, "tokens_per_s": tokens / median,
               "padding_share": 1 - tokens / padded[name], "speedup_vs_file": base / median}
        rows.append(row)
        print(f"{name:<14} {median:>9.2f} {row['tokens_per_s']:>10.0f} {row['padding_share']:>8.1%} "
              f"{row['speedup_vs_file']:>7.2f}x")
    print(f"load average after: {load_after:.2f} (the ratios are the result; absolute speeds depend on the load)")
    if args.json:
        Path(args.json).write_text(json.dumps({"lines": len(lines), "tokens": tokens, "framework": args.framework,
                                               "batch_size": args.batch_size, "rounds": args.rounds,
                                               "load_before": load, "load_after": load_after, "results": rows},
                                              indent=2) + "\n")
    return 0


def _warm(sequences):
    import numpy as np

    width = max(len(ids) for ids in sequences)
    ids = np.zeros((len(sequences), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    return ids, mask, np.zeros_like(ids)


if __name__ == "__main__":
    sys.exit(main())
