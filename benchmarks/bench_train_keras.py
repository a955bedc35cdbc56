#!/usr/bin/env python
"""One Keras training step of ALBERT-ACT: the fast training loop vs the dense loop, time and peak memory.

A benchmark, not a test. One step is what `fit` runs per batch: Keras' compiled train function (`train_on_batch`
on a model compiled with ``jit_compile=True`` or not: forward, backward, optimizer update) of
`TFAlbertActForSequenceClassification` (the pooled output, a 2-class loss, plus ``ponder_penalty * ponder_cost``),
for the variants

- ``fast-graph`` / ``dense-graph``  the fast training loop (`forward_fast_train`, the default of `fit`) / the
                                  dense loop (``act_fast_path = False``), Keras' `tf.function` train function
                                  without XLA (``jit_compile=False``)
- ``fast-xla`` / ``dense-xla``     the same two loops compiled with XLA (``jit_compile=True``; `fit` takes the fast
                                  one there too, recomputing the layer in the backward pass, see
                                  `forward_fast_train`)

The weights and the halting spread are bench_act's (`--size base`: hidden 768, cap 24, mean about 9 updates with
a tail to the cap; `--bias` / `--gain` change it); `--size medium` is hidden 512, 8 heads, cap 12. Adam with a
learning rate of 1e-7, so that the halting spread stays what it was over the rounds (the work of a step does not
depend on the rate; the mean updates before and after are printed).

Time: medians over interleaved rounds (each round runs every variant once, in a rotated order). Peak memory, in a
fresh process per variant: without XLA the peak RSS increase of one step over the RSS before it, after a warm-up
step (glibc's mmap threshold pinned so freed buffers leave the RSS); under XLA, which keeps its buffers between
runs, the temporary buffer of the compiled step in XLA's buffer assignment (the activations the backward pass
keeps, the loop's accumulators and the scratch space; weights, optimizer state and inputs excluded).

    .venv/bin/python benchmarks/bench_train_keras.py                      # base, 2 threads, wall clock
    .venv/bin/python benchmarks/bench_train_keras.py --threads 1 --clock cpu --repeats 5
    .venv/bin/python benchmarks/bench_train_keras.py --size medium
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_act  # noqa: E402  (the presets, the halting spread, the PyTorch model whose weights are used)

SIZES = {
    "base": bench_act.SIZES["base"],
    "medium": dict(hidden_size=512, num_attention_heads=8, intermediate_size=2048, embedding_size=128,
                   num_hidden_layers=12, batch=8, seq=128, bias=-1.0, gain=1.0),
}
VARIANTS = ("fast-graph", "dense-graph", "fast-xla", "dense-xla")
PONDER_PENALTY = 2.5e-4  # the paper's tau for base


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--threads", type=int, default=2, help="TF intra-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (each runs every variant once)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time; cpu: the process's CPU time (use with --threads 1 on a loaded "
                             "machine)")
    bench_act.add_shape_arguments(parser)
    parser.add_argument("--variants", help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("threads", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    bench_act.SIZES[args.size] = SIZES[args.size]  # bench_act's helpers read the preset from there
    args.spec = bench_act.shape_spec(args)
    args.device, args.dtype, args.ragged = "cpu", "float32", False  # what bench_act's builders read
    return args


def build(args):
    """(the PyTorch model of bench_act, Keras step functions by variant, the batch as NumPy)."""
    import numpy as np
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    import keras

    from act.tf import TFAlbertActForSequenceClassification

    bench_act.setup_threads(args)
    act_model = bench_act.build_act(args)
    ids, mask = bench_act.make_inputs(args)
    state = {"albert." + k: v.detach().numpy() for k, v in act_model.state_dict().items()}
    x = {"input_ids": ids.numpy().astype("int32"), "attention_mask": mask.numpy().astype("int32")}
    y = (np.arange(ids.shape[0]) % 2).astype("int32")
    names = VARIANTS if not args.variants else [name.strip() for name in args.variants.split(",")]
    steps, models = {}, {}
    for name in names:
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose among {VARIANTS}")
        config = copy.deepcopy(act_model.config)
        config.act_fast_path = name.startswith("fast")
        config.ponder_penalty = PONDER_PENALTY
        config.num_labels = 2
        model = TFAlbertActForSequenceClassification(config)
        model.build()
        model.load_canonical_state_dict(state, strict=False)
        model.compile(optimizer=keras.optimizers.Adam(1e-7),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=name.endswith("xla"))
        models[name] = model
        steps[name] = lambda model=model: model.train_on_batch(x, y)
    return act_model, models, steps, x


def mean_updates(model, x):
    out = model(x)
    mask = x["attention_mask"] > 0
    return float(out["updates"].numpy()[mask].mean())


def memory_worker(args):
    act_model, models, steps, x = build(args)
    step = steps[args.memory_worker]
    del act_model
    step()  # compiles
    with open("/proc/self/clear_refs", "w") as handle:  # resets VmHWM to the current RSS
        handle.write("5")
    before = bench_act.rss_kib("VmRSS")
    step()
    print(json.dumps({"peak_bytes": (bench_act.rss_kib("VmHWM") - before) * 1024}))


def xla_temp_bytes(directory):
    """The temporary buffer of the compiled train step (the largest XLA module dumped): what a step needs beyond
    its parameters (weights, optimizer state, inputs) and outputs, from XLA's buffer assignment."""
    best = None
    for file in os.listdir(directory):
        if file.endswith("buffer-assignment.txt"):
            with open(os.path.join(directory, file)) as handle:
                total = sum(int(line.split()[3].rstrip(",")) for line in handle
                            if line.startswith("allocation ") and "preallocated-temp" in line)
            best = total if best is None else max(best, total)
    return best


def measure_memory(args, name):
    """RSS peak of one step in a fresh process; under XLA (which keeps its buffers between runs, so the RSS of a
    repeated step shows nothing) the temporary buffer of XLA's buffer assignment instead."""
    import shutil
    import tempfile

    dump = tempfile.mkdtemp(prefix="bench_train_keras_xla_") if name.endswith("xla") else None
    command = [sys.executable, os.path.abspath(__file__), "--memory-worker", name, "--size", args.size,
               "--threads", str(args.threads), "--seed", str(args.seed)]
    for key in ("batch", "seq", "cap", "bias", "gain"):
        if getattr(args, key) is not None:
            command += [f"--{key}", str(getattr(args, key))]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    if dump:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_dump_to={dump}"
                            " --xla_dump_hlo_module_re=.*one_step_on_data.*").strip()
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode:
            return None, (result.stderr.strip().splitlines() or ["failed"])[-1]
        if dump:
            return xla_temp_bytes(dump), None
        return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"], None
    finally:
        if dump:
            shutil.rmtree(dump, ignore_errors=True)  # the dump this function asked for


def main(argv=None):
    args = parse_args(argv)
    if args.memory_worker:
        return memory_worker(args)
    import tensorflow as tf

    spec = args.spec
    act_model, models, steps, x = build(args)
    tokens = int(x["attention_mask"].sum())
    first = next(iter(models.values()))
    before = mean_updates(first, x)
    load = os.getloadavg()[0]
    print(f"machine: {bench_act.machine('cpu')}")
    print(f"size={args.size} threads={args.threads} batch={spec['batch']} seq={spec['seq']} "
          f"hidden={spec['hidden_size']} heads={spec['num_attention_heads']} "
          f"intermediate={spec['intermediate_size']} cap={spec['num_hidden_layers']} tokens={tokens} "
          f"tensorflow={tf.__version__} load1={load:.1f}")
    import torch

    with torch.inference_mode():
        reference = act_model(input_ids=torch.from_numpy(x["input_ids"].astype("int64")),
                              attention_mask=torch.from_numpy(x["attention_mask"].astype("int64"))).updates
    print(f"halting unit: bias={spec['bias']} gain={spec['gain']}; updates per token: mean={before:.2f} "
          f"max={int(reference.max())}")
    print(bench_act.histogram(reference, torch.from_numpy(x["attention_mask"]), spec["num_hidden_layers"]))
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        print(f"warm-up {name} (compiles): {time.perf_counter() - start:.1f}s")

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = {name: [] for name in steps}
    order = list(steps)
    for round_ in range(args.repeats):
        for name in order[round_ % len(order):] + order[:round_ % len(order)]:
            start = clock()
            steps[name]()
            times[name].append(clock() - start)
    load_after = os.getloadavg()[0]
    after = mean_updates(first, x)
    memory = {}
    if not args.no_memory:
        for name in steps:
            memory[name], error = measure_memory(args, name)
            if error:
                print(f"memory {name}: {error}")

    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{args.repeats} timed rounds, medians of {'CPU' if args.clock == 'cpu' else 'wall-clock'} seconds per "
          f"step (load1 before/after: {load:.1f}/{load_after:.1f}); mean updates before/after the rounds: "
          f"{before:.2f}/{after:.2f}")
    header = f"{'variant':12s} {'median s':>9s} {'min s':>8s} {'tokens/s':>9s} {'vs dense-graph':>14s} {'peak MiB':>9s} " \
             f"{'peak vs dense':>13s}"
    print(header)
    print("-" * len(header))
    rows = []
    for name in steps:
        dense = "dense-graph"  # the baseline of every row
        speedup = median[dense] / median[name] if dense in median else float("nan")
        peak = memory.get(name)
        # (XLA's temporary buffer and an RSS peak are not the same measure: no ratio between them)
        ratio = peak / memory[dense] if peak and memory.get(dense) and not name.endswith("xla") else float("nan")
        peak_text = f"{peak / 2**20:9.1f}" if peak is not None else f"{'-':>9s}"
        print(f"{name:12s} {median[name]:9.3f} {min(times[name]):8.3f} {tokens / median[name]:9.0f} "
              f"{speedup:13.2f}x {peak_text} {ratio:12.2f}x")
        rows.append(dict(variant=name, median_s=median[name], times_s=times[name], tokens_per_s=tokens / median[name],
                         speedup_vs_dense=speedup, peak_bytes=peak, peak_vs_dense=ratio))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(dict(args={k: v for k, v in vars(args).items() if k != "spec"}, spec=spec,
                           mean_updates=[before, after], machine=bench_act.machine("cpu"), tokens=tokens,
                           rows=rows, load1=[load, load_after]), handle, indent=1)


if __name__ == "__main__":
    main()
