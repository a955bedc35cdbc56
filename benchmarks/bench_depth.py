#!/usr/bin/env python
"""The compute knob as a curve: mean updates, masked-LM accuracy and time of a model as the halting epsilon rises
and the iteration cap falls ("how many layers").

A benchmark, not a test. For each setting it runs `AlbertActForMaskedLM` (the model's MLM head is in its checkpoint)
over the held-out text with the knob of `AlbertActConfig.halting_limits` (``act_epsilon=``, ``max_iterations=``
per call), and reports:

- mean updates per real token (what the setting costs, in layer applications);
- masked-LM accuracy: 15 % of the ordinary tokens are chosen (seeded; split 80/10/10 into [MASK] / a random token /
  unchanged, as `act stats` and pre-training do) and the model must predict the original token there (top-1);
- time: the median over interleaved rounds of one pass of the encoder (`model.albert`, the fast loop; the MLM head
  costs the same in every row and is left out) over the whole text in length-bucketed batches, and the throughput
  relative to the trained setting, measured in the same run.

One command regenerates the table (e.g. after the demo model is retrained):

    .venv/bin/python benchmarks/bench_depth.py                              # the embedded demo model, its heldout.txt
    .venv/bin/python benchmarks/bench_depth.py --markdown depth.md --png depth.png --json depth.json
    .venv/bin/python benchmarks/bench_depth.py --model DIR --text FILE --epsilons 0.01,0.1 --caps 24,12,6
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_EPSILONS = "0.05,0.1,0.2,0.3,0.5,0.7"
DEFAULT_CAPS = "4,3,2,1"  # below the trained cap (a cap above it was never trained: see README)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="ALBERT-ACT directory with an MLM head (default: the embedded demo model)")
    parser.add_argument("--text", help="one sequence per line (default: the model directory's heldout.txt)")
    parser.add_argument("--epsilons", default=DEFAULT_EPSILONS, help="act_epsilon values, at the trained cap")
    parser.add_argument("--caps", default=DEFAULT_CAPS,
                        help="max_iterations values, at the trained epsilon (default: those of 4,3,2,1 below the "
                             "trained cap)")
    parser.add_argument("--mask-rate", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (each runs every setting once)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: the process's CPU time, which other jobs barely change (use with --threads 1)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--png", help="also draw the curves (needs matplotlib)")
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args(argv)


def numbers(text, kind):
    try:
        return [kind(value) for value in text.split(",") if value.strip()]
    except ValueError as error:
        raise SystemExit(f"cannot read {text!r} as a comma-separated list of {kind.__name__}: {error}") from None


def prepare(args):
    """(model, batches as torch tensors, the chosen positions and their original ids per batch)."""
    import numpy as np
    import torch

    from act import AlbertActForMaskedLM
    from act.analysis.batching import batch_encode
    from act.commands.inspect import load_tokenizer, resolve_model_dir
    from act.commands.stats import mask_sequence, read_lines

    directory = resolve_model_dir(args.model)
    text = Path(args.text) if args.text else directory / "heldout.txt"
    lines = read_lines(text)
    tokenizer = load_tokenizer(directory)
    model = AlbertActForMaskedLM.from_pretrained(str(directory)).eval()
    special = set(tokenizer.all_special_ids)
    ordinary = [i for i in range(model.config.vocab_size) if i not in special]
    encoded = tokenizer(lines, truncation=True, max_length=model.config.max_position_embeddings)["input_ids"]
    rng = np.random.default_rng(args.seed)
    sequences, targets = [], []
    for ids in encoded:  # masked in file order: the same seed gives the same masks whatever the batching
        masked, kinds = mask_sequence(ids, special, tokenizer.mask_token_id, ordinary, args.mask_rate, rng)
        chosen = np.asarray([kind in (1, 2, 3) for kind in kinds])  # MASK, RANDOM, ORIGINAL (act.analysis)
        sequences.append(masked)
        targets.append((chosen, np.asarray(ids)))
    batches = []
    for batch in batch_encode(sequences, args.batch_size, pad_id=tokenizer.pad_token_id or 0):
        chosen = np.zeros(batch.input_ids.shape, dtype=bool)
        original = np.zeros(batch.input_ids.shape, dtype=np.int64)
        for row, index in enumerate(batch.indices.tolist()):
            chosen[row, :batch.lengths[row]], original[row, :batch.lengths[row]] = targets[index]
        batches.append(dict(input_ids=torch.from_numpy(batch.input_ids),
                            attention_mask=torch.from_numpy(batch.attention_mask),
                            chosen=torch.from_numpy(chosen), original=torch.from_numpy(original)))
    return directory, text, model, batches


def evaluate(model, batches, knob):
    """One pass of the whole model over the text: (mean updates per real token, MLM accuracy on the chosen tokens)."""
    import torch

    updates = tokens = correct = chosen = 0
    with torch.inference_mode():
        for batch in batches:
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **knob)
            updates += float(out.updates.sum())
            tokens += int(batch["attention_mask"].sum())
            hit = out.logits.argmax(-1) == batch["original"]
            correct += int((hit & batch["chosen"]).sum())
            chosen += int(batch["chosen"].sum())
    return updates / tokens, correct / max(chosen, 1)


def time_encoder(model, batches, knob, clock=time.perf_counter):
    """Seconds (of `clock`) for one pass of the encoder alone over the text."""
    import torch

    start = clock()
    with torch.inference_mode():
        for batch in batches:
            model.albert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **knob)
    return clock() - start


def machine():
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return name


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    directory, text, model, batches = prepare(args)
    config = model.config
    trained_epsilon, trained_cap = config.act_epsilon, config.num_hidden_layers
    settings = [dict()]  # the trained setting first: the reference of the relative throughput
    settings += [dict(act_epsilon=value) for value in numbers(args.epsilons, float) if value != trained_epsilon]
    caps = numbers(args.caps, int)
    if args.caps == DEFAULT_CAPS:
        caps = [value for value in caps if value < trained_cap]
    settings += [dict(max_iterations=value) for value in caps if value != trained_cap]
    for knob in settings:  # validate every setting before timing anything (a ValueError names the bad one)
        config.halting_limits(knob)

    results = {}
    for index, knob in enumerate(settings):  # the counts and the accuracy (they do not depend on the round)
        results[index] = dict(knob=knob, seconds=[], **dict(zip(("mean_updates", "accuracy"),
                                                                evaluate(model, batches, knob))))
        time_encoder(model, batches, knob)  # warm-up
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for round_ in range(args.repeats):  # interleaved and rotated: fair under a varying load
        order = list(results)
        for index in order[round_ % len(order):] + order[:round_ % len(order)]:
            results[index]["seconds"].append(time_encoder(model, batches, settings[index], clock))
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    reference = statistics.median(results[0]["seconds"])
    tokens = sum(int(batch["attention_mask"].sum()) for batch in batches)

    header = (f"{directory.name} ({config.hidden_size} hidden, trained act_epsilon {trained_epsilon}, cap "
              f"{trained_cap}) on {text.name}: {len(batches)} batches, {tokens} tokens, {args.mask_rate:.0%} chosen "
              f"(seed {args.seed}); {machine()}, {args.threads} thread(s), torch {torch.__version__}; medians of "
              f"{args.repeats} rounds of {'CPU' if args.clock == 'cpu' else 'wall-clock'} time, load average "
              f"{load:.1f} / {load_after:.1f}")
    rows = ["| act_epsilon | max_iterations | mean updates | MLM accuracy | encoder s | tokens/s | vs trained |",
            "|---|---|---|---|---|---|---|"]
    for index, result in results.items():
        knob = result["knob"]
        seconds = statistics.median(result["seconds"])
        result.update(median_s=seconds, tokens_per_s=tokens / seconds, speedup=reference / seconds,
                      act_epsilon=knob.get("act_epsilon", trained_epsilon),
                      max_iterations=knob.get("max_iterations", trained_cap))
        label = " (trained)" if not knob else ""
        rows.append(f"| {result['act_epsilon']:g}{label} | {result['max_iterations']} | {result['mean_updates']:.2f} "
                    f"| {result['accuracy']:.3f} | {seconds:.3f} | {tokens / seconds:.0f} | {reference / seconds:.2f}x |")
    table = header + "\n\n" + "\n".join(rows) + "\n"
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(header=header, rows=list(results.values())), indent=1))
    if args.png:
        plot(results, trained_epsilon, trained_cap, args.png)
    return 0


def plot(results, trained_epsilon, trained_cap, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for key, label, marker in (("act_epsilon", "act_epsilon raised (cap %d)" % trained_cap, "o"),
                               ("max_iterations", "cap lowered (act_epsilon %g)" % trained_epsilon, "s")):
        points = sorted((r["mean_updates"], r["accuracy"]) for r in results.values()
                        if key in r["knob"] or not r["knob"])
        axis.plot(*zip(*points), marker=marker, label=label)
    axis.set_xlabel("mean updates per token (layers applied)")
    axis.set_ylabel("masked-LM accuracy")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
