"""Data-parallel training on CPU: `act pretrain` and `act finetune` under `torchrun --nproc_per_node 2` and
`accelerate launch --multi_gpu --num_processes 2` (two ranks, gloo). tests/ddp_probe.py runs the command and has
every rank write its final weights, which must be identical (weights compare exactly)."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training_helpers import (REPO, act_env, labelled_rows, write_config, write_corpus, write_model, write_table,
                              write_tokenizer)

PROBE = str(REPO / "tests" / "ddp_probe.py")
BIN = Path(sys.executable).parent


def launcher(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed next to {sys.executable} nor on PATH")
    return found


def free_port() -> int:
    """A free loopback port for the ranks' rendezvous: the launchers' default (29500) would collide with another
    run of this test at the same time (a pytest-xdist worker, another checkout's suite on the same machine)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(command, probe_dir: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = act_env()
    env["ACT_PROBE_DIR"] = str(probe_dir)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, timeout=timeout,
                            cwd=str(probe_dir))
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    return result


def rank_weights(probe_dir: Path) -> list[dict]:
    ranks = sorted(probe_dir.glob("rank*.npz"))
    assert [p.name for p in ranks] == ["rank0.npz", "rank1.npz"]
    loaded = [dict(np.load(p)) for p in ranks]
    assert all(int(w.pop("__world_size__")) == 2 for w in loaded)
    return loaded


def assert_identical(weights: list[dict], saved: Path, initial: dict | None = None) -> None:
    first, second = weights
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    from safetensors.numpy import load_file

    on_disk = load_file(str(saved / "model.safetensors"))
    for name, value in on_disk.items():
        np.testing.assert_array_equal(value, first[name], err_msg=name)
    if initial is not None:
        changed = [name for name in initial if name in first and not np.array_equal(initial[name], first[name])]
        assert changed, "training changed no weight"


def test_torchrun_pretrain_two_ranks_agree(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", lines=160)
    out = tmp_path / "out"
    command = [launcher("torchrun"), "--nproc_per_node", 2, "--master_port", free_port(), PROBE, "pretrain", corpus,
               out, "--config", write_config(tmp_path / "config.json"), "--tokenizer", write_tokenizer(tmp_path / "tok"),
               "--cache-dir", tmp_path / "cache", "--max_steps", 3, "--per_device_train_batch_size", 4,
               "--gradient_accumulation_steps", 2, "--lamb", "--learning_rate", 1e-2, "--logging_steps", 1,
               "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no"]
    run(command, tmp_path)
    assert_identical(rank_weights(tmp_path), out)
    state = json.loads((out / "trainer_state.json").read_text())
    pairs = json.loads((out / "act_training.json").read_text())["pairs"]
    # each rank reads its half of the pairs in batches of 4: 3 steps of 2 accumulated batches are 6 of
    # ceil(pairs / 8) batches (with one rank, of ceil(pairs / 4))
    assert state["log_history"][-1]["epoch"] == pytest.approx(3 * 2 / math.ceil(pairs / (2 * 4)), rel=1e-6)


def test_accelerate_launch_finetune_two_ranks_agree(tmp_path):
    from safetensors.numpy import load_file

    model = write_model(tmp_path / "model")
    initial = load_file(str(model / "model.safetensors"))
    train = write_table(tmp_path / "train.jsonl", labelled_rows(24))
    dev = write_table(tmp_path / "dev.jsonl", labelled_rows(8, offset=24))
    out = tmp_path / "out"
    command = [launcher("accelerate"), "launch", "--multi_gpu", "--num_processes", 2, "--num_machines", 1,
               "--main_process_port", free_port(),
               "--mixed_precision", "no", "--dynamo_backend", "no", PROBE, "finetune", train, dev, out,
               "--model", model, "--num_train_epochs", 1, "--per_device_train_batch_size", 4, "--learning_rate", 1e-3,
               "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no"]
    run(command, tmp_path)
    assert_identical(rank_weights(tmp_path), out, initial)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3  # 24 rows / (4 per device x 2 ranks): one epoch is 3 steps (one rank: 6)
    assert "eval_updates_all" in json.loads((out / "eval_results.json").read_text())
