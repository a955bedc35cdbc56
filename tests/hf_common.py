"""transformers' own common model tests, fetched at test time from the package registry (never copied here).

The sdist of the installed transformers version ships `tests/test_modeling_common.py` (`ModelTesterMixin`) and
`tests/test_configuration_common.py` (`ConfigTester`). `load()` downloads it once with pip
(`pip download --no-deps --no-binary :all: transformers==VERSION`), extracts those two files into a cache
directory (`$ACT_TEST_CACHE`, else `$XDG_CACHE_HOME/act`, else `~/.cache/act`) as the package `hf_common_tests`,
and imports them. Safe under pytest-xdist: the download runs under a file lock next to the cache directory (one
worker downloads, the others wait and then read it), and the extracted package is put in place by one rename.
The sdist does not ship three modules they import, so this file provides them:

- `exporters.test_export.ExportTesterMixin`: our export tests (below), run for every model class through
  transformers' own exporters (`DynamoExporter`: torch.export; `OnnxExporter`: torch.onnx.export(dynamo=True)),
  static and dynamic shapes, the ONNX graphs run in onnxruntime. For an ACT model an export is only correct if
  the halting counts of the graph equal PyTorch's on inputs and shapes other than the traced ones, so that is
  what they check (counts exactly, float outputs within the float32 tolerance).
- `generation.test_utils.GenerationTesterMixin`: an empty class (ALBERT-ACT does not generate; the common tests
  only check that a non-generating model's tester does not inherit it).
- `utils.test_configuration_utils.config_common_kwargs`: a non-default value for each argument of
  `PreTrainedConfig.__init__` (what `ConfigTester.check_config_arguments_init` sets and reads back).

`parameterized` (needed by the common tests) is used when installed, else fetched the same way (a wheel).
When the registry cannot be reached the whole module is skipped with pip's message; any other failure fails.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
import zipfile
from pathlib import Path

from filelock import FileLock  # a dependency of huggingface_hub, hence of transformers

PACKAGE = "hf_common_tests"
FILES = ("test_modeling_common.py", "test_configuration_common.py")
PARAMETERIZED = "0.9.0"  # transformers' setup.py asks for parameterized>=0.9
# pip's messages when no index can be reached (DNS, refused connection, proxy, offline sandbox)
UNREACHABLE = ("Could not fetch URL", "Failed to establish a new connection", "Temporary failure in name resolution",
               "Network is unreachable", "NewConnectionError", "ConnectionError", "ProxyError", "Max retries exceeded",
               "Name or service not known", "connection broken", "ReadTimeout")


class RegistryUnreachable(RuntimeError):
    """pip could not reach the package registry (the caller skips)."""


def cache_root() -> Path:
    if os.environ.get("ACT_TEST_CACHE"):
        return Path(os.environ["ACT_TEST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "act"


def pip_download(requirement: str, dest: Path, *options: str) -> Path:
    """`pip download --no-deps REQUIREMENT` into `dest`; returns the downloaded file."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", str(dest),
               *options, requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as error:
        raise RegistryUnreachable(f"pip download {requirement} timed out") from error
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()
        if any(marker.lower() in message.lower() for marker in UNREACHABLE):
            raise RegistryUnreachable(f"pip download {requirement}: {message.splitlines()[-1] if message else ''}")
        raise RuntimeError(f"pip download {requirement} failed ({done.returncode}):\n{message}")
    files = [p for p in dest.iterdir() if p.is_file()]
    if len(files) != 1:
        raise RuntimeError(f"pip download {requirement}: expected one file in {dest}, got {files}")
    return files[0]


def _publish(staging: Path, final: Path) -> None:
    """Move a finished directory into place; another process may have done it first (then keep theirs)."""
    try:
        os.replace(staging, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def fetch_common_tests(version: str) -> Path:
    """The cache directory holding the package `hf_common_tests` of transformers `version` (download once)."""
    root = cache_root() / "transformers-tests" / version
    package = root / PACKAGE
    if all((package / name).is_file() for name in FILES):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):  # pytest-xdist workers: one downloads, the others wait and reuse it
        if not all((package / name).is_file() for name in FILES):
            _download_common_tests(version, package)
    return root


def _download_common_tests(version: str, package: Path) -> None:
    with tempfile.TemporaryDirectory(dir=package.parent, prefix=".download-") as scratch:
        sdist = pip_download(f"transformers=={version}", Path(scratch), "--no-binary", ":all:")
        staging = Path(scratch) / PACKAGE
        staging.mkdir()
        with tarfile.open(sdist) as archive:
            members = {Path(m.name).relative_to(Path(m.name).parts[0]).as_posix(): m for m in archive.getmembers()
                       if m.isfile() and len(Path(m.name).parts) > 1}
            for name in FILES:
                member = members.get(f"tests/{name}")
                if member is None:
                    raise RuntimeError(f"{sdist.name} has no tests/{name}")
                (staging / name).write_bytes(archive.extractfile(member).read())
        (staging / "__init__.py").write_text(f"# transformers {version}: tests/ of its sdist, fetched by act's tests\n")
        _publish(staging, package)


def ensure_parameterized() -> None:
    try:
        import parameterized  # noqa: F401
        return
    except ImportError:
        pass
    root = cache_root() / "wheels" / f"parameterized-{PARAMETERIZED}"
    if not (root / "parameterized" / "__init__.py").is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root) + ".lock"):
            if not (root / "parameterized" / "__init__.py").is_file():
                with tempfile.TemporaryDirectory(dir=root.parent, prefix=".download-") as scratch:
                    wheel = pip_download(f"parameterized=={PARAMETERIZED}", Path(scratch), "--only-binary", ":all:")
                    staging = Path(scratch) / "unpacked"
                    with zipfile.ZipFile(wheel) as archive:
                        archive.extractall(staging)
                    _publish(staging, root)
    sys.path.insert(0, str(root))


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    if "." not in name[len(PACKAGE) + 1:]:
        module.__path__ = []  # a package
    sys.modules[name] = module
    return module


def config_common_kwargs() -> dict:
    """A non-default value for every argument of `PreTrainedConfig.__init__` (ConfigTester sets them and checks
    they read back)."""
    return {"return_dict": False, "output_hidden_states": True, "output_attentions": True, "dtype": "float16",
            "chunk_size_feed_forward": 5, "architectures": ["AlbertActModel"], "id2label": {0: "label"},
            "label2id": {"label": "0"}, "problem_type": "regression"}


def load():
    """Import and return (test_modeling_common, test_configuration_common) of the installed transformers."""
    import transformers

    ensure_parameterized()
    root = fetch_common_tests(transformers.__version__)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if f"{PACKAGE}.test_modeling_common" not in sys.modules:
        _module(f"{PACKAGE}.exporters")
        _module(f"{PACKAGE}.exporters.test_export", ExportTesterMixin=ExportTesterMixin)
        _module(f"{PACKAGE}.generation")
        _module(f"{PACKAGE}.generation.test_utils", GenerationTesterMixin=type("GenerationTesterMixin", (), {}))
        _module(f"{PACKAGE}.utils")
        _module(f"{PACKAGE}.utils.test_configuration_utils", config_common_kwargs=config_common_kwargs())
    import importlib
    import warnings

    import pytest

    with warnings.catch_warnings():  # their marks (flash_attn_test, ...) are registered in transformers' own setup
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        return (importlib.import_module(f"{PACKAGE}.test_modeling_common"),
                importlib.import_module(f"{PACKAGE}.test_configuration_common"))


# ----------------------------------------------------------------------------------------------------------
# Export tests (the common tests' ExportTesterMixin), written for ACT: the counts must follow the input
# ----------------------------------------------------------------------------------------------------------

COUNT_FIELDS = ("updates",)
FLOAT_ATOL = 1e-4  # float32 graph vs eager (ACT_SEMANTICS.md "Parity" tolerance class, after a few iterations)


def _leaves(outputs) -> dict:
    """Named tensor leaves of a model output (ModelOutput / dict / tuple), flattened like `a.0`, `a.1`."""
    import torch

    items = outputs.items() if hasattr(outputs, "items") else enumerate(outputs)
    flat = {}
    for key, value in items:
        if isinstance(value, torch.Tensor):
            flat[str(key)] = value
        elif isinstance(value, (tuple, list)):
            for index, item in enumerate(value):
                if isinstance(item, torch.Tensor):
                    flat[f"{key}.{index}"] = item
    return flat


class ExportTesterMixin:
    """torch.export and ONNX export of every model class (transformers' `DynamoExporter` / `OnnxExporter`).

    The host test class chooses the shapes with `export_dynamic` (static: specialised to the traced shapes;
    dynamic: every batch and sequence axis symbolic). Each export is traced on the tester's inputs and must
    reproduce eager PyTorch on them and on other inputs: same shape with other tokens and padding (static), other
    batch sizes and lengths as well (dynamic). Halting counts exactly, float outputs within the float32 tolerance:
    a graph whose loop froze at the traced iteration count fails on the other inputs.
    """

    export_dynamic = False

    def _export_cases(self, model_class):
        """(model in eval mode, traced inputs, [other inputs]) for a model class, without labels."""
        import torch

        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        inputs = {k: v for k, v in self._prepare_for_class(inputs, model_class).items()
                  if k in ("input_ids", "attention_mask", "token_type_ids")}
        torch.manual_seed(0)
        model = model_class(config).eval()
        traced_shape = tuple(inputs["input_ids"].shape)
        others = [self.model_tester.other_export_inputs(model_class, seed=1, shape=traced_shape)]
        if self.export_dynamic:
            others += [self.model_tester.other_export_inputs(model_class, seed=seed) for seed in (2, 3)]
        return model, inputs, others

    def _compare(self, actual: dict, expected: dict, what: str):
        import torch

        self.assertTrue(actual, f"{what}: no outputs")
        for name, value in expected.items():
            self.assertIn(name, actual, f"{what}: output {name} missing (has {sorted(actual)})")
            got = torch.as_tensor(actual[name]).to(value.dtype)
            self.assertEqual(tuple(got.shape), tuple(value.shape), f"{what}: shape of {name}")
            if name.split(".")[0] in COUNT_FIELDS:
                self.assertTrue(torch.equal(got, value),
                                f"{what}: halting counts {name} differ from PyTorch's:\n{got}\nvs\n{value}")
            else:
                torch.testing.assert_close(got, value, atol=FLOAT_ATOL, rtol=FLOAT_ATOL,
                                           msg=lambda message, name=name: f"{what}: {name}: {message}")

    @staticmethod
    def _eager(model, inputs) -> dict:
        import torch

        with torch.no_grad():
            return _leaves(model(**copy.deepcopy(inputs)))

    def _runner(self, backend: str, model, inputs):
        """Export `model` on `inputs`; return a function that runs the exported graph on an input dict."""
        import torch
        from transformers.exporters import DynamoConfig, DynamoExporter, OnnxConfig, OnnxExporter

        if backend == "dynamo":
            exported = DynamoExporter().export(model, inputs, DynamoConfig(dynamic=self.export_dynamic))
            module = exported.program.module()

            def run(feed):
                with torch.no_grad():
                    return _leaves(module(**copy.deepcopy(feed)))

            return run
        import onnx_ir
        import onnxruntime

        exported = OnnxExporter().export(model, inputs, OnnxConfig(dynamic=self.export_dynamic))
        proto = onnx_ir.serde.serialize_model(exported.program)
        session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        wanted = {graph_input.name for graph_input in session.get_inputs()}

        def run(feed):
            arrays = {k: v.numpy() for k, v in feed.items() if k in wanted}
            return {name.removeprefix("output."): torch.from_numpy(value)
                    for name, value in zip(names, session.run(None, arrays))}

        return run

    def _check_export(self, backend: str):
        """Every model class; the failures of all classes are reported together (one test, one verdict)."""
        mode = "dynamic" if self.export_dynamic else "static"
        failures = []
        for model_class in self.all_model_classes:
            name = f"{model_class.__name__} {backend} {mode}"
            try:
                model, inputs, others = self._export_cases(model_class)
                run = self._runner(backend, model, inputs)
                self._compare(run(inputs), self._eager(model, inputs), f"{name} (traced inputs)")
                for other in others:
                    self._compare(run(other), self._eager(model, other),
                                  f"{name} (other inputs of shape {tuple(other['input_ids'].shape)})")
            except Exception as error:  # noqa: BLE001 (collected, re-raised below as one failure)
                message = str(error).strip().splitlines()
                failures.append(f"{name}: {type(error).__name__}: {message[0] if message else ''}")
        if failures:
            self.fail(f"{len(failures)} of {len(self.all_model_classes)} classes failed:\n" + "\n".join(failures))

    def test_torch_export(self):
        self._check_export("dynamo")

    def test_onnx_export(self):
        import importlib.util

        for package in ("onnx", "onnxscript", "onnxruntime", "onnx_ir"):
            if importlib.util.find_spec(package) is None:
                self.skipTest(f"the ONNX export test needs {package}, which is not installed")
        self._check_export("onnx")
