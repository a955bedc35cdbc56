"""Every Keras head trains under `tf.distribute` as it is (built by `fit` in the strategy's scope, no functional
wrapper): one SGD step over 2 replicas gives the weights of the same step on one device.

TensorFlow fixes its devices (and reads TF_CONFIG) when it starts, so each strategy runs in its own processes
(`tf_distribute_job.py`): `MirroredStrategy` over 2 logical CPU devices, and `MultiWorkerMirroredStrategy` with two
worker processes talking over loopback ports (127.0.0.1), as two machines would with TF_CONFIG.
"""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

TESTS = Path(__file__).resolve().parent
JOB = TESTS / "tf_distribute_job.py"
SRC = TESTS.parent / "src"
HEADS = ["TFAlbertActForPreTraining", "TFAlbertActForMaskedLM", "TFAlbertActForSequenceClassification",
         "TFAlbertActForTokenClassification", "TFAlbertActForQuestionAnswering", "TFAlbertActForMultipleChoice"]
ATOL = 1e-5  # float32 (ACT_SEMANTICS.md): the replicas' gradients are summed in another order than one device's
TIMEOUT = 900  # seconds per job (the mirrored one ran 420 s on a loaded 2-core machine): a stuck collective must
# not hang the suite


def environment(**extra):
    """The jobs' environment: CPU devices only (the same test on a machine with GPUs; two workers would otherwise
    share one GPU's memory)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def run_jobs(commands, script=JOB):
    """Start every (args, env[, cwd]) at once (the workers of a cluster wait for each other); wait for all, killing
    them all (only these processes) on a timeout."""
    processes = [subprocess.Popen([sys.executable, str(script), *command[0]], env=command[1],
                                  cwd=command[2] if len(command) > 2 else None, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for command in commands]
    try:
        outputs = [process.communicate(timeout=TIMEOUT)[0] for process in processes]
    except subprocess.TimeoutExpired:
        outputs = None
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert outputs is not None, f"a distributed job ran past {TIMEOUT} s"
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]


def assert_same_step(results, name):
    """The distributed step equals the single-device step, and it is a real step (the weights moved by far more
    than the tolerance, also the halting unit's)."""
    keys = [key.split("/", 2)[2] for key in results.files if key.startswith(f"{name}/before/")]
    assert keys
    moved = {}
    for key in keys:
        before, single = results[f"{name}/before/{key}"], results[f"{name}/single/{key}"]
        np.testing.assert_allclose(results[f"{name}/distributed/{key}"], single, rtol=0, atol=ATOL,
                                   err_msg=f"{name}: {key}")
        moved[key] = float(np.abs(single - before).max())
    assert max(moved.values()) > 100 * ATOL, moved
    assert moved["albert.encoder.albert_layer.act.dense.weight"] > 10 * ATOL, moved


def test_every_head_trains_and_fit_takes_the_fast_loop_under_mirrored_strategy(tmp_path):
    """One job under MirroredStrategy (2 CPU replicas; one TensorFlow start for both checks):

    - a step of every head equals the same step on one device;
    - `fit` traces the fast training loop (`forward_fast_train`, the default of training), never the dense one, and
      the loss goes down over the epochs.
    """
    out = tmp_path / "mirrored.npz"
    run_jobs([(["mirrored", str(out)], environment())])
    results = np.load(out)
    assert int(results["replicas"]) == 2
    for name in HEADS:
        assert_same_step(results, name)

    assert int(results["fit/replicas"]) == 2
    assert int(results["fit/traced/forward_fast_train"]) >= 2 and int(results["fit/traced/forward_dense"]) == 0
    loss = results["fit/loss"]
    assert np.isfinite(loss).all() and loss[-1] < 0.8 * loss[0], loss


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_mirrored_strategy_on_two_local_workers(tmp_path):
    """Two processes, one CPU replica each, a cluster of 127.0.0.1 ports in TF_CONFIG: `fit`, `evaluate` and
    `predict` of a head run across the workers, and the step equals one device's."""
    name = "TFAlbertActForSequenceClassification"
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    outs = [tmp_path / f"worker{index}.npz" for index in range(2)]
    run_jobs([(["multi-worker", str(outs[index])],
               environment(ACT_TEST_HEADS=name, TF_CONFIG=json.dumps(
                   {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})))
              for index in range(2)])
    chief, other = (np.load(out) for out in outs)
    assert int(chief["replicas"]) == int(other["replicas"]) == 2
    assert_same_step(chief, name)
    for key in chief.files:  # the workers hold the same model (the synchronous all-reduce)
        if "/distributed/" in key:
            np.testing.assert_array_equal(chief[key], other[key], err_msg=key)
    for results in (chief, other):
        assert np.isfinite(results[f"{name}/evaluated"]).all()
        np.testing.assert_array_equal(results[f"{name}/predicted/updates"], results[f"{name}/called/updates"])
        np.testing.assert_allclose(results[f"{name}/predicted/logits"], results[f"{name}/called/logits"],
                                   rtol=0, atol=ATOL)
    # Keras reads the loss it reports from its metric variables, which are each worker's own: each worker reports
    # the loss of its half of the batch, and their mean is the loss of the whole batch.
    np.testing.assert_allclose((chief[f"{name}/evaluated"] + other[f"{name}/evaluated"]) / 2,
                               chief[f"{name}/evaluated_on_one_device"], rtol=1e-5)


def test_readme_multi_worker_recipe_runs_on_two_local_workers(tmp_path):
    """The README's `train.py` (section keras), as written, on two workers whose TF_CONFIG names 127.0.0.1 ports:
    both finish, only the first one saves, and what it saved loads and classifies."""
    from test_readme import section

    text = section("keras")
    script = re.search(r"Save as `train.py` on every machine:\n\n```py\n(.*?)```", text, re.S)
    assert script and "MultiWorkerMirroredStrategy()" in script.group(1)
    assert "TF_CONFIG='{\"cluster\": {\"worker\": [" in text
    (tmp_path / "train.py").write_text(script.group(1))
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    directories = [tmp_path / f"machine{index}" for index in range(2)]
    for directory in directories:
        directory.mkdir()
    run_jobs([([], environment(TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                                      "task": {"type": "worker", "index": index}})), directories[index])
              for index in range(2)], script=tmp_path / "train.py")
    assert sorted(path.name for path in (directories[0] / "finetuned").iterdir()) == ["README.md", "config.json",
                                                                                      "model.safetensors"]
    assert not (directories[1] / "finetuned").exists()
    from act.tf import TFAlbertActForSequenceClassification

    model = TFAlbertActForSequenceClassification.from_pretrained(directories[0] / "finetuned")
    out = model({"input_ids": np.array([[2, 15, 37, 9, 3]], dtype="int32")})
    assert out["logits"].shape == (1, 2) and np.isfinite(out["logits"].numpy()).all()
