#!/usr/bin/env python
"""Time and peak memory of one ALBERT-ACT training step: fast loop vs dense loop vs fixed-depth ALBERT.

A benchmark, not a test. One training step is forward + loss + backward + AdamW step. In one run, on the same
inputs, it times (medians over interleaved rounds):

- ``act-fast``       AlbertActModel with its default training loop (`forward_fast_train`: only the running
                     tokens go through the layer, halted ones are attended to through their cached keys/values)
- ``act-dense``      the same weights with ``config.act_fast_path = False`` (every token at every iteration)
- ``albert@mean``    transformers' AlbertModel with num_hidden_layers = round(mean updates of the ACT model)
- optional (``--variants``): ``act-fast-checkpointed`` / ``act-dense-checkpointed`` (activation checkpointing of
  each iteration), ``act-compiled`` (the step of act-fast through ``torch.compile(dynamic=True)``: under
  compilation a training step takes the dense loop, see `AlbertActEncoder.use_fast_path`), ``act-compiled-fast``
  (the same with the fast training loop forced under compilation: one graph per iteration, recompiled for new
  branch patterns, to show why it is not the default), ``albert@mean-compiled``

The halting unit of the randomly initialised ACT model is set as in benchmarks/bench_act.py (its presets,
``--bias``/``--gain``): base has a mean of about 9 of a cap of 24 with a tail to the cap, so the dense loop runs
until the last token halts. The learning rate is tiny (``--lr``) so that the rounds keep that distribution (the
depth of the last timed step is printed). Dropout is 0 (``--dropout`` changes it, for the ACT models only).

Peak memory: on CPU the peak RSS increase of one step over the RSS before it, in a fresh subprocess per variant
after a warm-up step (the optimizer state and gradient buffers exist already; glibc's mmap threshold pinned so
freed tensors leave the RSS), as bench_checkpointing.py does; on CUDA torch.cuda.max_memory_allocated above the
allocation before the step. ``--dtype bfloat16`` / ``float16``: the step under autocast (float32 weights).

Framework parts: `torch_runners` builds the PyTorch variants; a module benchmarks/bench_train_keras.py with a
function ``keras_runners(args, names, state_dict, depth)`` (same contract: name -> zero-argument callable running
one synchronised training step, returning the ``updates`` or None) and a tuple ``VARIANTS`` adds Keras rows.

    .venv/bin/python benchmarks/bench_train.py                     # base, CPU, 2 threads
    .venv/bin/python benchmarks/bench_train.py --size medium
    .venv/bin/python benchmarks/bench_train.py --device cuda --dtype bfloat16 --batch 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_act import SIZES, VOCAB, add_shape_arguments, machine, rss_kib, shape_spec  # noqa: E402

# bench_act's presets plus a medium size between tiny and base (mean about 5 of a cap of 12, a tail to the cap)
TRAIN_SIZES = dict(SIZES, medium=dict(hidden_size=512, num_attention_heads=8, intermediate_size=2048,
                                      embedding_size=128, num_hidden_layers=12, batch=8, seq=128, bias=-1.15,
                                      gain=1.0))
SIZES.update(TRAIN_SIZES)  # shape_spec reads bench_act.SIZES
TORCH_VARIANTS = ("act-fast", "act-dense", "albert@mean", "act-fast-checkpointed", "act-dense-checkpointed",
                  "act-compiled", "act-compiled-fast", "albert@mean-compiled")
DEFAULT = ("act-fast", "act-dense", "albert@mean")


def keras_part():
    """The Keras module (benchmarks/bench_train_keras.py) or None when it is absent."""
    try:
        import bench_train_keras
    except ImportError:
        return None
    return bench_train_keras


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(TRAIN_SIZES), default="base")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                        help="float32, or the step under autocast in that dtype")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads on CPU")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (each runs every variant once)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time; cpu: the process's CPU time (all threads), which other jobs on a "
                             "shared machine barely change: use it with --threads 1")
    add_shape_arguments(parser)
    parser.add_argument("--lr", type=float, default=1e-7, help="AdamW learning rate (tiny: keeps the depths)")
    parser.add_argument("--dropout", type=float, default=0.0, help="hidden and attention dropout of the ACT model")
    parser.add_argument("--variants", help="comma-separated, of " + ",".join(TORCH_VARIANTS)
                        + " (and the Keras part's); default " + ",".join(DEFAULT))
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)  # internal: one variant in a fresh process
    parser.add_argument("--albert-depth", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("threads", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    args.spec = shape_spec(args)
    return args


def setup_threads(args):
    import torch

    if not args.device.startswith("cuda"):
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass


def build_act(args, fast=True):
    import torch

    from act import AlbertActConfig, AlbertActModel

    spec = args.spec
    config = AlbertActConfig(vocab_size=VOCAB, hidden_size=spec["hidden_size"],
                             num_attention_heads=spec["num_attention_heads"],
                             intermediate_size=spec["intermediate_size"], embedding_size=spec["embedding_size"],
                             num_hidden_layers=spec["num_hidden_layers"], max_position_embeddings=512,
                             hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout,
                             act_fast_path=fast)
    torch.manual_seed(args.seed)
    model = AlbertActModel(config)
    halting = model.encoder.albert_layer.act.dense
    generator = torch.Generator().manual_seed(args.seed + 2)
    with torch.no_grad():  # the halting distribution of bench_act.py (same seed, same formula)
        halting.weight.copy_(torch.randn(halting.weight.shape, generator=generator) * spec["gain"]
                             / spec["hidden_size"] ** 0.5)
        halting.bias.fill_(spec["bias"])
    return model.to(args.device).train()


def build_albert(args, depth):
    import torch
    from transformers import AlbertConfig, AlbertModel

    spec = args.spec
    config = AlbertConfig(vocab_size=VOCAB, hidden_size=spec["hidden_size"],
                          num_attention_heads=spec["num_attention_heads"],
                          intermediate_size=spec["intermediate_size"], embedding_size=spec["embedding_size"],
                          num_hidden_layers=depth, hidden_act="gelu", hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0)
    torch.manual_seed(args.seed)
    return AlbertModel(config).to(args.device).train()


def make_inputs(args):
    import torch

    spec = args.spec
    generator = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(5, VOCAB, (spec["batch"], spec["seq"]), generator=generator)
    ids[:, 0] = 2  # [CLS]
    return ids.to(args.device), torch.ones_like(ids).to(args.device)


def torch_runners(args, names, depth):
    """name -> zero-argument callable: one synchronised training step (forward, loss, backward, AdamW step),
    returning the ACT model's `updates` (None for AlbertModel)."""
    import torch

    ids, mask = make_inputs(args)
    cuda = args.device.startswith("cuda")
    autocast_dtype = None if args.dtype == "float32" else getattr(torch, args.dtype)

    def runner(model, call=None):
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
        call = model if call is None else call

        def run():
            optimizer.zero_grad(set_to_none=False)
            with torch.autocast(args.device.split(":")[0], dtype=autocast_dtype, enabled=autocast_dtype is not None):
                out = call(input_ids=ids, attention_mask=mask)
                loss = out.last_hidden_state.float().square().mean()
                if hasattr(out, "ponder_cost"):
                    loss = loss + 1e-3 * out.ponder_cost
            loss.backward()
            optimizer.step()
            if cuda:
                torch.cuda.synchronize()
            return getattr(out, "updates", None)
        return run

    out = {}
    for name in names:
        if name.startswith("albert@mean"):
            model = build_albert(args, depth)
            out[name] = runner(model, torch.compile(model, dynamic=True) if name.endswith("compiled") else None)
            continue
        model = build_act(args, fast=not name.startswith("act-dense"))
        if name.endswith("checkpointed"):
            model.activation_checkpointing_enable()
        if name == "act-compiled":
            out[name] = runner(model, torch.compile(model, dynamic=True))
        elif name == "act-compiled-fast":  # the fast training loop forced under compilation
            encoder = model.encoder
            encoder.use_fast_path = lambda output_attentions=False, fast_path=None: not output_attentions
            out[name] = runner(model, torch.compile(model, dynamic=True))
        else:
            out[name] = runner(model)
    return out


def runners(args, names, depth):
    torch_names = [name for name in names if name in TORCH_VARIANTS]
    out = torch_runners(args, torch_names, depth)
    others = [name for name in names if name not in TORCH_VARIANTS]
    if others:
        keras = keras_part()
        if keras is None:
            raise SystemExit(f"unknown variants {others} (no benchmarks/bench_train_keras.py)")
        state = {k: v.detach().cpu().numpy() for k, v in build_act(args).state_dict().items()}
        out.update(keras.keras_runners(args, others, state, depth))
    return out


def memory_worker(args):
    """In a fresh process: one warm-up step, reset the high-water mark, measure one step."""
    import torch

    setup_threads(args)
    run = runners(args, [args.memory_worker], args.albert_depth)[args.memory_worker]
    run()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        with open("/proc/self/clear_refs", "w") as handle:  # resets VmHWM to the current RSS
            handle.write("5")
        before = rss_kib("VmRSS")
        run()
        peak = (rss_kib("VmHWM") - before) * 1024
    print(json.dumps({"peak_bytes": peak}))


def measure_memory(args, name, depth):
    command = [sys.executable, os.path.abspath(__file__), "--memory-worker", name, "--albert-depth", str(depth),
               "--size", args.size, "--device", args.device, "--threads", str(args.threads), "--seed",
               str(args.seed), "--dtype", args.dtype, "--lr", str(args.lr), "--dropout", str(args.dropout)]
    for key in ("batch", "seq", "cap", "bias", "gain"):
        if getattr(args, key) is not None:
            command += [f"--{key}", str(getattr(args, key))]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        return None, (result.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"], None


def mean_depth(args):
    """Mean and max updates per token of the ACT model on the benchmark's inputs (inference, same weights)."""
    import torch

    model = build_act(args).eval()
    ids, mask = make_inputs(args)
    with torch.no_grad():
        updates = model(input_ids=ids, attention_mask=mask).updates
    return float(updates[mask > 0].mean()), int(updates.max())


def main(argv=None):
    args = parse_args(argv)
    if args.memory_worker:
        return memory_worker(args)
    import torch

    setup_threads(args)
    names = list(DEFAULT) if not args.variants else [name.strip() for name in args.variants.split(",")]
    keras = keras_part()
    known = TORCH_VARIANTS + (tuple(getattr(keras, "VARIANTS", ())) if keras else ())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(known)}")
    spec = args.spec
    mean, longest = mean_depth(args)
    depth = max(1, round(mean))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    tokens = spec["batch"] * spec["seq"]
    print(f"machine: {machine(args.device)}")
    print(f"size={args.size} device={args.device} dtype={args.dtype} threads={args.threads} batch={spec['batch']} "
          f"seq={spec['seq']} hidden={spec['hidden_size']} intermediate={spec['intermediate_size']} "
          f"cap={spec['num_hidden_layers']} tokens={tokens} torch={torch.__version__} load1={load:.1f}")
    print(f"halting unit: bias={spec['bias']} gain={spec['gain']}; updates per token: mean={mean:.2f} "
          f"max={longest} (the dense loop runs {longest} iterations) -> albert@mean depth={depth}")

    run = runners(args, names, depth)
    for name, function in run.items():  # warm-up (compilation) + the depth each variant trains at
        start = time.perf_counter()
        updates = function()
        text = "" if updates is None else f", mean updates {float(updates.float().mean()):.2f}"
        print(f"warm-up {name}: {time.perf_counter() - start:.1f}s{text}", flush=True)
    times, last = {name: [] for name in run}, {}
    order = list(run)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for round_ in range(args.rounds):
        for name in order[round_ % len(order):] + order[:round_ % len(order)]:  # rotated: fair under load
            start = clock()
            last[name] = run[name]()
            times[name].append(clock() - start)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    memory = {}
    if not args.no_memory:
        for name in run:
            if "compiled" in name:
                continue  # each memory worker would compile again
            memory[name], error = measure_memory(args, name, depth)
            if error:
                print(f"memory {name}: {error}")

    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{args.rounds} timed rounds, medians of {'CPU' if args.clock == 'cpu' else 'wall-clock'} seconds per "
          f"training step "
          f"(load1 before/after: {load:.1f}/{load_after:.1f})")
    header = (f"{'variant':24s} {'depth':>9s} {'step s':>8s} {'min s':>8s} {'tokens/s':>9s} {'vs dense':>9s} "
              f"{'peak MiB':>9s} {'vs dense':>9s}")
    print(header)
    print("-" * len(header))
    rows = []
    for name in run:
        depth_text = str(depth) if name.startswith("albert") else f"ACT {mean:.1f}"
        speedup = median["act-dense"] / median[name] if "act-dense" in median else float("nan")
        peak = memory.get(name)
        dense_peak = memory.get("act-dense")
        peak_text = f"{peak / 2**20:9.1f}" if peak else f"{'-':>9s}"
        ratio = f"{peak / dense_peak:8.2f}x" if peak and dense_peak else f"{'-':>9s}"
        print(f"{name:24s} {depth_text:>9s} {median[name]:8.3f} {min(times[name]):8.3f} "
              f"{tokens / median[name]:9.0f} {speedup:8.2f}x {peak_text} {ratio}")
        rows.append(dict(variant=name, depth=depth_text, median_s=median[name], times_s=times[name],
                         tokens_per_s=tokens / median[name], speedup_vs_dense=speedup, peak_bytes=peak,
                         peak_vs_dense=(peak / dense_peak) if peak and dense_peak else None))
    trained = {name: f"{float(updates.float().mean()):.2f}" for name, updates in last.items() if updates is not None}
    print(f"mean updates (all positions) at the last timed step: {trained} (lr {args.lr} keeps the spread)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(dict(args={k: v for k, v in vars(args).items() if k != "spec"}, spec=spec, mean_updates=mean,
                           machine=machine(args.device), albert_mean_depth=depth, tokens=tokens, rows=rows,
                           load1=[load, load_after]), handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
