#!/usr/bin/env python
"""Peak memory and time of one ALBERT-ACT training step (forward + backward), with and without activation
checkpointing of each iteration of the dense loop (``--loop fast``: of the fast training loop, the models' default).

A benchmark, not a test. The dense training loop keeps the activations of every iteration for the backward pass;
with `model.activation_checkpointing_enable()` it keeps only each iteration's input and recomputes the layer during
the backward pass. This script measures, on the same inputs:

- ``plain``         the training step without checkpointing
- ``checkpointed``  the same step with activation checkpointing (use_reentrant=False, transformers' default)

Peak memory: on CPU the peak RSS increase of one step over the RSS before it, each variant in a fresh subprocess
(glibc's mmap threshold pinned so freed tensors leave the RSS), as benchmarks/bench_act.py does; on CUDA
torch.cuda.max_memory_allocated above the allocation before the step. Time: medians of interleaved repeats. It
also prints the largest gradient difference between the two variants (they compute the same gradients).

The halting unit is set (bias, gain on a random weight) so that tokens run a realistic number of iterations
(base: mean about 9 of a cap of 24, a tail to the cap): the dense loop runs until the last token halts, and the
memory it keeps grows with the iterations it runs.

    .venv/bin/python benchmarks/bench_checkpointing.py                  # base: hidden 768, cap 24, batch 8 x 128
    .venv/bin/python benchmarks/bench_checkpointing.py --size tiny      # hidden 312, cap 6
    .venv/bin/python benchmarks/bench_checkpointing.py --device cuda    # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_act import SIZES, VOCAB, add_shape_arguments, rss_kib, shape_spec  # noqa: E402  (the same presets)

VARIANTS = ("plain", "checkpointed")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads on CPU")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (each runs both variants once)")
    add_shape_arguments(parser)
    parser.add_argument("--loop", choices=("dense", "fast"), default="dense",
                        help="the ACT loop trained: dense (act_fast_path=False, what the README's table shows) or "
                             "the fast training loop, the default of the models (benchmarks/bench_train.py)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-worker", choices=VARIANTS, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    args.spec = shape_spec(args)
    return args


def build(args):
    """(model in train mode, no dropout so both variants compute the same thing; inputs)."""
    import torch

    from act import AlbertActConfig, AlbertActModel

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    spec = args.spec
    config = AlbertActConfig(vocab_size=VOCAB, hidden_size=spec["hidden_size"],
                             num_attention_heads=spec["num_attention_heads"],
                             intermediate_size=spec["intermediate_size"], embedding_size=spec["embedding_size"],
                             num_hidden_layers=spec["num_hidden_layers"], max_position_embeddings=512,
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                             act_fast_path=args.loop == "fast")
    torch.manual_seed(args.seed)
    model = AlbertActModel(config)
    with torch.no_grad():  # the halting distribution of bench_act.py
        dense = model.encoder.albert_layer.act.dense
        dense.weight.normal_(0.0, spec["gain"] / spec["hidden_size"] ** 0.5)
        dense.bias.fill_(spec["bias"])
    model = model.to(args.device).train()
    generator = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(5, VOCAB, (spec["batch"], spec["seq"]), generator=generator).to(args.device)
    mask = torch.ones_like(ids)
    return model, ids, mask


def enable(model, variant):
    if variant == "checkpointed":
        if not model.supports_gradient_checkpointing:
            raise SystemExit("this version of act does not support activation checkpointing "
                             "(AlbertActPreTrainedModel.supports_gradient_checkpointing is False)")
        model.activation_checkpointing_enable()
    elif model.is_activation_checkpointing:
        model.activation_checkpointing_disable()


def step(model, ids, mask):
    """One training step's forward and backward; returns the updates (to report the depth) and the loss."""
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, attention_mask=mask)
    loss = out.last_hidden_state.float().square().mean() + 1e-3 * out.ponder_cost
    loss.backward()
    return out.updates.detach(), loss.detach()


def sync(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def memory_worker(args):
    """In a fresh process: one warm-up step, reset the high-water mark, measure one step."""
    import torch

    model, ids, mask = build(args)
    enable(model, args.memory_worker)
    step(model, ids, mask)
    model.zero_grad(set_to_none=False)  # the gradient buffers exist before the measured step, in both variants
    sync(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step(model, ids, mask)
        sync(args.device)
        peak = torch.cuda.max_memory_allocated() - before
    else:
        with open("/proc/self/clear_refs", "w") as handle:  # resets VmHWM to the current RSS
            handle.write("5")
        before = rss_kib("VmRSS")
        step(model, ids, mask)
        peak = (rss_kib("VmHWM") - before) * 1024
    print(json.dumps({"peak_bytes": peak}))


def measure_memory(args, variant):
    command = [sys.executable, os.path.abspath(__file__), "--memory-worker", variant, "--loop", args.loop,
               "--size", args.size,
               "--device", args.device, "--threads", str(args.threads), "--seed", str(args.seed)]
    for key in ("batch", "seq", "cap", "bias", "gain"):
        if getattr(args, key) is not None:
            command += [f"--{key}", str(getattr(args, key))]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        return None, (result.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"], None


def main(argv=None):
    args = parse_args(argv)
    if args.memory_worker:
        return memory_worker(args)
    import torch

    model, ids, mask = build(args)
    gradients, times, depth = {}, {name: [] for name in VARIANTS}, None
    for variant in VARIANTS:  # warm-up, and the gradients of each variant
        enable(model, variant)
        updates, _ = step(model, ids, mask)
        gradients[variant] = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        depth = updates
    for _ in range(args.repeats):
        for variant in VARIANTS:
            enable(model, variant)
            sync(args.device)
            start = time.perf_counter()
            step(model, ids, mask)
            sync(args.device)
            times[variant].append(time.perf_counter() - start)
    difference = max(float((gradients["plain"][n] - gradients["checkpointed"][n]).abs().max())
                     for n in gradients["plain"])
    memory = {}
    if not args.no_memory:
        for variant in VARIANTS:
            memory[variant], error = measure_memory(args, variant)
            if error:
                print(f"memory {variant}: {error}")
    spec = args.spec
    print(f"ALBERT-ACT {args.size}: hidden {spec['hidden_size']}, cap {spec['num_hidden_layers']}, batch "
          f"{spec['batch']} x {spec['seq']}, {args.device}" + (f", {args.threads} threads" if args.device == "cpu"
                                                               else ""))
    print(f"updates per token: mean {float(depth.float().mean()):.2f}, max {int(depth.max())}; "
          f"the dense loop ran {int(depth.max())} iterations")
    if hasattr(os, "getloadavg"):
        print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"{'variant':14s} {'median s':>9s} {'vs plain':>9s} {'peak MiB':>9s} {'vs plain':>9s}")
    base_time = statistics.median(times["plain"])
    results = {}
    for variant in VARIANTS:
        median = statistics.median(times[variant])
        peak = memory.get(variant)
        ratio = f"{peak / memory['plain']:.2f}x" if peak and memory.get("plain") else "-"
        print(f"{variant:14s} {median:9.3f} {median / base_time:8.2f}x "
              f"{(peak / 2**20) if peak else float('nan'):9.1f} {ratio:>9s}")
        results[variant] = {"median_s": median, "peak_bytes": peak, "times": times[variant]}
    print(f"largest |gradient difference| between the variants: {difference:.3g}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"size": args.size, "spec": spec, "device": args.device, "results": results,
                       "max_gradient_difference": difference,
                       "mean_updates": float(depth.float().mean())}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
