#!/usr/bin/env python
"""Throughput and peak memory of ALBERT-ACT inference: dense loop vs fast loop vs fixed-depth ALBERT.

A benchmark, not a test. In one run, on the same inputs, it times (medians over interleaved repeats):

- ``act-dense``      AlbertActModel, dense loop (every token through the layer at every iteration)
- ``act-fast``       AlbertActModel, fast loop (the default under no_grad: only running tokens, cached K/V)
- ``act-compiled``   the same model through ``torch.compile(model, dynamic=True)`` with Inductor's ``freezing``
                     (weights folded as constants, so on a CPU the linear layers run as prepacked oneDNN kernels;
                     compiled in the warm-up, which prints how long that took; shapes are symbolic, so other batch
                     sizes and lengths reuse the build, except for a few new branch patterns of the loop at first
                     sight). ``--no-freezing``: plain ``torch.compile``
- ``albert@cap``     transformers AlbertModel with num_hidden_layers = the ACT iteration cap
- ``albert@mean``    transformers AlbertModel with num_hidden_layers = round(mean updates of the ACT run)
- ``albert@mean-compiled``  that AlbertModel compiled like ``act-compiled`` (the same-compiler baseline)
- ``keras-eager`` / ``keras-xla``  TFAlbertActModel (same weights, its fast loop) eagerly and under
                     jit_compile=True, when act.tf is importable (skip with --no-keras)
- ``keras-xla-dense``  TFAlbertActModel with its dense loop, under jit_compile=True

The halting unit of the randomly initialised ACT model is set (bias, gain on a random weight) to give a
realistic spread of depths (base: mean about 9 of a cap of 24, a tail up to the cap); the histogram is printed.
Peak memory: on CPU, the peak RSS increase of one forward over the RSS before it, measured in a fresh
subprocess per variant (glibc's mmap threshold is pinned so freed tensors leave the RSS); on CUDA,
torch.cuda.max_memory_allocated above the allocation before the forward. Not measured for Keras (TensorFlow
pools host memory, so the RSS of a repeated call does not show what a forward needs) nor for ``act-compiled``
(each memory worker would compile again).

On a GPU: ``--device cuda`` (every model and input on that device, timings synchronised), ``--dtype bfloat16`` or
``float16`` for half-precision layers (the halting state stays float32, ACT_SEMANTICS.md "Halting dtype").

    .venv/bin/python benchmarks/bench_act.py                    # base size, CPU, 2 threads
    .venv/bin/python benchmarks/bench_act.py --size tiny
    .venv/bin/python benchmarks/bench_act.py --device cuda      # same benchmark on a GPU (no Keras there)
    .venv/bin/python benchmarks/bench_act.py --device cuda --dtype bfloat16 --batch 64
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# hidden sizes of the published checkpoints' families; the halting bias/gain give the depth distribution
SIZES = {
    "base": dict(hidden_size=768, num_attention_heads=12, intermediate_size=3072, embedding_size=128,
                 num_hidden_layers=24, batch=8, seq=128, bias=-1.4, gain=1.0),
    "tiny": dict(hidden_size=312, num_attention_heads=12, intermediate_size=1248, embedding_size=128,
                 num_hidden_layers=6, batch=8, seq=128, bias=-0.2, gain=1.0),
}
VOCAB = 30000
VARIANTS = ("act-dense", "act-fast", "act-compiled", "albert@cap", "albert@mean", "albert@mean-compiled",
            "keras-eager", "keras-xla", "keras-xla-dense")
DTYPES = ("float32", "bfloat16", "float16")


def add_shape_arguments(parser: argparse.ArgumentParser) -> None:
    """--batch, --seq, --cap, --bias, --gain: what to change of the --size preset (shared with the other benchmarks
    of PyTorch ALBERT-ACT models)."""
    parser.add_argument("--batch", type=int)
    parser.add_argument("--seq", type=int)
    parser.add_argument("--cap", type=int, help="iteration cap (num_hidden_layers)")
    parser.add_argument("--bias", type=float, help="halting unit bias")
    parser.add_argument("--gain", type=float, help="halting unit weight gain")


def shape_spec(args) -> dict:
    """The --size preset with the changes of `add_shape_arguments`."""
    spec = dict(SIZES[args.size])
    for key, name in (("batch", "batch"), ("seq", "seq"), ("num_hidden_layers", "cap"), ("bias", "bias"),
                      ("gain", "gain")):
        if getattr(args, name) is not None:
            spec[key] = getattr(args, name)
    return spec


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="dtype of the PyTorch models' layers")
    parser.add_argument("--threads", type=int, default=2, help="torch / TF intra-op threads on CPU")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (each runs every variant once)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time; cpu: the process's CPU time (all threads), which other jobs on a "
                             "shared machine barely change: use it with --threads 1")
    add_shape_arguments(parser)
    parser.add_argument("--ragged", action="store_true", help="pad rows to random lengths (default: full rows)")
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-freezing", action="store_true", help="act-compiled without Inductor's freezing")
    parser.add_argument("--variants", help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--seed", type=int, default=0)
    # internal: one memory measurement in a fresh process
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    parser.add_argument("--albert-depth", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.spec = shape_spec(args)
    return args


def setup_threads(args):
    import torch

    if not args.device.startswith("cuda"):
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set in this process
            pass


def make_inputs(args):
    import torch

    spec = args.spec
    generator = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(5, VOCAB, (spec["batch"], spec["seq"]), generator=generator)
    mask = torch.ones_like(ids)
    if args.ragged:
        lengths = torch.randint(spec["seq"] // 4, spec["seq"] + 1, (spec["batch"],), generator=generator)
        lengths[0] = spec["seq"]
        mask = (torch.arange(spec["seq"])[None] < lengths[:, None]).long()
        ids = ids * mask
    ids[:, 0] = 2  # [CLS]
    return ids.to(args.device), mask.to(args.device)


def build_act(args):
    import torch

    from act import AlbertActConfig, AlbertActModel

    spec = args.spec
    config = AlbertActConfig(vocab_size=VOCAB, hidden_size=spec["hidden_size"],
                             num_attention_heads=spec["num_attention_heads"],
                             intermediate_size=spec["intermediate_size"], embedding_size=spec["embedding_size"],
                             num_hidden_layers=spec["num_hidden_layers"], max_position_embeddings=512)
    torch.manual_seed(args.seed)
    model = AlbertActModel(config).eval()
    halting = model.encoder.albert_layer.act.dense
    generator = torch.Generator().manual_seed(args.seed + 2)
    with torch.no_grad():
        halting.weight.copy_(torch.randn(halting.weight.shape, generator=generator) * spec["gain"]
                             / spec["hidden_size"] ** 0.5)
        halting.bias.fill_(spec["bias"])
    return model.to(args.device, getattr(torch, args.dtype))


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
    return AlbertModel(config).eval().to(args.device, getattr(torch, args.dtype))


def keras_available():
    try:
        from act.tf.modeling import TFAlbertActModel  # noqa: F401
    except Exception as error:  # noqa: BLE001 - any failure means: no Keras rows
        return f"act.tf not importable ({type(error).__name__}: {error})"
    return None


def build_keras(args, act_model, fast=True):
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process
        pass
    from act.tf.modeling import TFAlbertActModel

    config = copy.deepcopy(act_model.config)
    config.act_fast_path = fast
    model = TFAlbertActModel(config)
    model.build()
    model.load_canonical_state_dict({k: v.detach().cpu().numpy() for k, v in act_model.state_dict().items()})
    return model


def runners(args, names, act_model=None, ids=None, mask=None, depth=None):
    """name -> zero-argument callable running one forward (synchronised) and returning `updates` or None."""
    import torch

    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out = {}

    def torch_runner(model, **kwargs):
        def run():
            with torch.inference_mode():
                result = model(input_ids=ids, attention_mask=mask, **kwargs)
            sync()
            return getattr(result, "updates", None)
        return run

    if "act-dense" in names:
        from act import AlbertActModel

        config = copy.deepcopy(act_model.config)  # same weights, its own config with the switch off
        config.act_fast_path = False
        dense_model = AlbertActModel(config)
        dense_model.load_state_dict(act_model.state_dict())
        out["act-dense"] = torch_runner(dense_model.eval().to(args.device, getattr(torch, args.dtype)))
    if "act-fast" in names:
        out["act-fast"] = torch_runner(act_model)
    if "act-compiled" in names or "albert@mean-compiled" in names:
        import torch._inductor.config

        torch._inductor.config.freezing = not args.no_freezing  # read when a model is first compiled
    if "act-compiled" in names:
        out["act-compiled"] = torch_runner(torch.compile(act_model, dynamic=True))
    if "albert@cap" in names:
        out["albert@cap"] = torch_runner(build_albert(args, args.spec["num_hidden_layers"]))
    if "albert@mean" in names:
        out["albert@mean"] = torch_runner(build_albert(args, depth))
    if "albert@mean-compiled" in names:
        out["albert@mean-compiled"] = torch_runner(torch.compile(build_albert(args, depth), dynamic=True))
    if any(name.startswith("keras") for name in names):
        import tensorflow as tf

        inputs = {"input_ids": tf.constant(ids.cpu().numpy(), tf.int32),
                  "attention_mask": tf.constant(mask.cpu().numpy(), tf.int32)}

        def keras_runner(model, xla):
            function = tf.function(model, jit_compile=True) if xla else model

            def run():
                return torch.from_numpy(function(inputs)["updates"].numpy())
            return run

        fast_model = build_keras(args, act_model)
        if "keras-eager" in names:
            out["keras-eager"] = keras_runner(fast_model, xla=False)
        if "keras-xla" in names:
            out["keras-xla"] = keras_runner(fast_model, xla=True)
        if "keras-xla-dense" in names:
            out["keras-xla-dense"] = keras_runner(build_keras(args, act_model, fast=False), xla=True)
    return out


def rss_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_worker(args):
    """Run in a fresh process: warm up once, reset the RSS high-water mark, measure one forward."""
    import torch

    setup_threads(args)
    act_model = build_act(args)
    ids, mask = make_inputs(args)
    run = runners(args, [args.memory_worker], act_model, ids, mask, args.albert_depth)[args.memory_worker]
    del act_model
    run()
    cuda = args.device.startswith("cuda")
    if cuda:
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
               "--size", args.size, "--device", args.device, "--threads", str(args.threads),
               "--seed", str(args.seed)]
    for key in ("batch", "seq", "cap", "bias", "gain"):
        if getattr(args, key) is not None:
            command += [f"--{key}", str(getattr(args, key))]
    if args.ragged:
        command.append("--ragged")
    command += ["--dtype", args.dtype]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        return None, result.stderr.strip().splitlines()[-1:] or ["failed"]
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"], None


def machine(device):
    """The CPU model name (and the GPU's name on CUDA) and the number of CPU threads available."""
    import platform

    import torch

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), name)
    except OSError:
        pass
    text = f"{name}, {os.cpu_count()} CPU threads"
    if device.startswith("cuda"):
        text += f"; GPU {torch.cuda.get_device_name(torch.device(device))}"
    return text


def histogram(updates, mask, cap):
    import torch

    counts = torch.bincount(updates[mask > 0].long().flatten().cpu(), minlength=cap + 1)[1:]
    top = int(counts.max())
    lines = []
    for depth, count in enumerate(counts.tolist(), start=1):
        lines.append(f"  {depth:3d} | {'#' * round(40 * count / top) if top else '':40s} {count}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.memory_worker:
        return memory_worker(args)
    import torch

    setup_threads(args)
    spec = args.spec
    names = list(VARIANTS) if not args.variants else [n.strip() for n in args.variants.split(",")]
    keras_note = None
    if args.no_keras or args.device.startswith("cuda") or args.dtype != "float32":
        keras_note = ("skipped (--no-keras)" if args.no_keras else "skipped on CUDA (TF here is a CPU build)"
                      if args.device.startswith("cuda") else "skipped (float32 only)")
    else:
        keras_note = keras_available()
    if keras_note:
        names = [n for n in names if not n.startswith("keras")]

    act_model = build_act(args)
    ids, mask = make_inputs(args)
    tokens = int(mask.sum())
    with torch.inference_mode():
        reference = act_model(input_ids=ids, attention_mask=mask).updates
    mean = float(reference[mask > 0].mean())
    depth = max(1, round(mean))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {machine(args.device)}")
    print(f"size={args.size} device={args.device} dtype={args.dtype} threads={args.threads} batch={spec['batch']} "
          f"seq={spec['seq']} "
          f"hidden={spec['hidden_size']} heads={spec['num_attention_heads']} "
          f"intermediate={spec['intermediate_size']} embedding={spec['embedding_size']} "
          f"cap={spec['num_hidden_layers']} tokens={tokens} torch={torch.__version__} load1={load:.1f}")
    print(f"halting unit: bias={spec['bias']} gain={spec['gain']}; updates per token: mean={mean:.2f} "
          f"max={int(reference.max())} -> albert@mean depth={depth}")
    print(histogram(reference, mask, spec["num_hidden_layers"]))
    if keras_note:
        print(f"keras: {keras_note}")

    run = runners(args, names, act_model, ids, mask, depth)
    for name, function in run.items():  # warm-up (and XLA compilation) + agreement of the ACT counts
        start = time.perf_counter()
        updates = function()
        first = time.perf_counter() - start
        if updates is not None:
            same = torch.equal(updates.to(reference.device, reference.dtype), reference)
            print(f"warm-up {name}: {first:.2f}s, updates identical to act-fast: {same}")
        else:
            print(f"warm-up {name}: {first:.2f}s")

    times = {name: [] for name in run}
    order = list(run)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for round_ in range(args.repeats):
        for name in order[round_ % len(order):] + order[:round_ % len(order)]:  # rotate: fair under load
            start = clock()
            run[name]()
            times[name].append(clock() - start)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    memory = {}
    if not args.no_memory:
        for name in run:
            if name.startswith("keras") or name.endswith("compiled"):
                continue  # TensorFlow keeps host memory in its own pools: the RSS of a repeat call shows ~0
            memory[name], error = measure_memory(args, name, depth)
            if error:
                print(f"memory {name}: {error}")

    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{args.repeats} timed rounds, medians of {'CPU' if args.clock == 'cpu' else 'wall-clock'} seconds "
          f"(load1 before/after: {load:.1f}/{load_after:.1f})")
    header = (f"{'variant':15s} {'depth':>9s} {'median s':>9s} {'min s':>8s} {'tokens/s':>9s} "
              f"{'vs act-dense':>12s} {'time / albert@mean':>18s} {'peak MiB':>9s}")
    print(header)
    print("-" * len(header))
    rows = []
    for name in run:
        depth_text = {"albert@cap": str(spec["num_hidden_layers"]), "albert@mean": str(depth),
                      "albert@mean-compiled": str(depth)}.get(
            name, f"ACT {mean:.1f}")
        speedup = median["act-dense"] / median[name] if "act-dense" in median else float("nan")
        relative = median[name] / median["albert@mean"] if "albert@mean" in median else float("nan")
        peak = memory.get(name)
        peak_text = f"{peak / 2**20:9.1f}" if peak is not None else f"{'-':>9s}"
        print(f"{name:15s} {depth_text:>9s} {median[name]:9.3f} {min(times[name]):8.3f} "
              f"{tokens / median[name]:9.0f} {speedup:11.2f}x {relative:17.2f}x {peak_text}")
        rows.append(dict(variant=name, depth=depth_text, median_s=median[name], min_s=min(times[name]),
                         times_s=times[name], tokens_per_s=tokens / median[name], speedup_vs_dense=speedup,
                         time_vs_albert_mean=relative, peak_bytes=peak))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(dict(args={k: v for k, v in vars(args).items() if k != "spec"}, spec=spec, mean_updates=mean,
                           machine=machine(args.device),
                           albert_mean_depth=depth, tokens=tokens, rows=rows, load1=[load, load_after]),
                      handle, indent=1)


if __name__ == "__main__":
    main()
