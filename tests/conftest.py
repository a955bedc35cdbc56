"""The suite's environment, set before any framework is imported (conftest is imported first, in every process that
runs tests: the one of a serial run, or each pytest-xdist worker of `pytest -n N`, which is how `make test` runs).

- No network, quiet frameworks.
- A Hugging Face home of this process's own (HF_HOME: hub cache, datasets cache, tokens), made here and removed at
  exit: no test reads the developer's cache (which could hide a missing file) or writes into it, and two workers
  never share one (removed only because it was made here).
- Under xdist, each worker gets its share of the cores (OMP/MKL threads for torch, TF's intra-op pool): 2 workers on
  2 cores with 2 threads each would fight over them. Processes the tests start inherit the setting.
- The transformers sdist of tests/hf_common.py stays in the shared cache ($ACT_TEST_CACHE or ~/.cache/act): it is
  downloaded once, under a file lock, and put in place by a rename (see hf_common.fetch_common_tests).
"""

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_HF_HOME = tempfile.mkdtemp(prefix="act-tests-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ["HF_HOME"] = _HF_HOME
for _variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE"):
    os.environ.pop(_variable, None)  # derived from HF_HOME


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


if os.environ.get("PYTEST_XDIST_WORKER"):
    _threads = str(max(1, cores() // max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))))
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ.setdefault(_variable, _threads)


def pytest_collection_finish(session):
    """Freeze what collection allocated (torch, TensorFlow, transformers and the test modules: millions of objects
    that live until the process exits) out of the cyclic garbage collector's sight. Every later `gc.collect()` then
    walks only what the tests allocate: Keras calls one for every variable a layer deletes (`Layer.__delattr__`,
    e.g. 12 times in one `model.quantize("int8")`), and each walked the whole heap, ~2 s here."""
    import gc

    gc.collect()
    gc.freeze()


@pytest.fixture
def short_training_schedule(request, monkeypatch):
    """Keras training with `cases.SHORT_TRAINING_SCHEDULE` (three capacity phases, not the default seven), for tests
    that trace training for other reasons: the modules that `fit` Keras heads (heads, export, conventions,
    validation, model) mark themselves `pytestmark = pytest.mark.usefixtures("short_training_schedule")`, and
    tests/test_tf_fast_train.py's compiled tests ask for it. Tests that run the documentation's code (names with
    "readme") keep the default schedule, as a user gets it."""
    if "readme" in request.node.name:
        return
    import cases
    from act.tf.modeling import TFAlbertActEncoder

    monkeypatch.setattr(TFAlbertActEncoder, "TRAIN_CAPACITIES", cases.SHORT_TRAINING_SCHEDULE)
