"""The layout: the command modules live in `act.commands`, their old paths (`act.cli`, `act.convert`, `act.export`,
`act.inspect`, `act.stats`) are deprecated aliases until 0.2.0, and nothing of ours imports an old path.

pyproject's `filterwarnings` ignores DeprecationWarning in the suite, so these tests turn the warning into a record
(or an error) themselves, in fresh processes (an alias warns on its first import only).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "act"
MOVED = ("cli", "convert", "export", "inspect", "stats")
SHIMS = {SRC / f"{name}.py" for name in MOVED}


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, *args, "-c", code] if code else [sys.executable, *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_each_old_path_warns_naming_the_new_one_and_gives_the_same_objects():
    code = f"""
import importlib, json, sys, warnings
out = {{}}
for name in {MOVED!r}:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec("import act." + name)  # an import statement, as users write it
    old = sys.modules["act." + name]
    new = importlib.import_module("act.commands." + name)
    ours = [w for w in caught if issubclass(w.category, DeprecationWarning) and "act." + name in str(w.message)]
    out[name] = {{
        "messages": [str(w.message) for w in ours],
        "files": [w.filename for w in ours],
        "public": sorted(n for n in vars(new) if not n.startswith("_") and n in old.__all__),
        "missing": sorted(n for n in old.__all__ if getattr(old, n) is not getattr(new, n)),
        "functions": sorted(n for n, v in vars(new).items() if callable(v) and not n.startswith("_")
                            and getattr(v, "__module__", "") == new.__name__ and n not in old.__all__),
    }}
print(json.dumps(out))
"""
    done = python(code)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for name in MOVED:
        record = out[name]
        assert len(record["messages"]) == 1, (name, record)
        assert f"act.commands.{name}" in record["messages"][0] and "0.2.0" in record["messages"][0]
        assert record["files"] == ["<string>"], record  # the warning points at the importer, not at the alias
        assert record["missing"] == [] and record["functions"] == [], record  # every public function re-exported
    assert {"main", "build_parser", "user_error", "SUBCOMMANDS"} <= set(out["cli"]["public"])
    assert {"convert", "VerificationError", "keras_class"} <= set(out["convert"]["public"])
    assert {"export_onnx", "ExportError", "verify_onnx"} <= set(out["export"]["public"])
    assert {"Runner", "demo_model_dir", "load_tokenizer", "quiet_transformers"} <= set(out["inspect"]["public"])
    assert {"CATEGORIES", "compute_stats", "compute_conllu_stats"} <= set(out["stats"]["public"])


def test_python_m_act_cli_still_runs_the_command_and_says_it_is_deprecated():
    done = python("", "-m", "act.cli", "--version")
    assert done.returncode == 0, done.stderr
    import act

    assert done.stdout.strip() == f"act {act.__version__}"
    assert "DeprecationWarning" in done.stderr and "act.commands.cli" in done.stderr
    plain = python("", "-m", "act", "--version")
    assert plain.returncode == 0 and plain.stdout == done.stdout and "Deprecat" not in plain.stderr, plain.stderr


def _old_imports(source: str, package: tuple[str, ...], label: str) -> list[str]:
    """The imports of an old command path in one module's source (absolute `act.X`, or relative from `package`, the
    package the module is in), named `label:line: target`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            targets = [node.value]  # importlib.import_module("act.X") and the like
        found += [f"{label}:{node.lineno}: {target}" for target in targets
                  if any(target == f"act.{name}" or target.startswith(f"act.{name}.") for name in MOVED)]
    return found


def _file_imports(path: Path) -> list[str]:
    package = path.relative_to(SRC.parent).parts[:-1] if SRC in path.parents else ()  # ("act", "analysis")
    return _old_imports(path.read_text(encoding="utf-8"), package, str(path.relative_to(REPO)))


def test_the_old_import_check_sees_each_kind_of_old_import():
    source = ("import act.cli\nfrom act import stats\nfrom ..inspect import Runner\nfrom . import export\n"
              "SUB = {'convert': ('act.convert', 'help')}\n"
              "from ..commands.inspect import Runner\nfrom act.commands import stats\nfrom .. import hub\n")
    found = [line.split(": ")[1] for line in _old_imports(source, ("act", "analysis"), "probe")]
    assert sorted(found) == sorted(["act.cli", "act.stats", "act.inspect", "act.inspect.Runner", "act.convert"])
    assert _old_imports("from . import export\n", ("act",), "probe") == ["probe:1: act.export"]


def test_no_module_of_ours_imports_an_old_path():
    paths = [path for path in SRC.rglob("*.py") if path not in SHIMS]
    for folder in ("tests", "benchmarks", "conversion", "examples"):
        paths += (REPO / folder).glob("*.py")
    paths = [path for path in paths if path != Path(__file__).resolve()]
    assert len(paths) > 60
    assert [line for path in paths for line in _file_imports(path)] == []
    assert all(_file_imports(shim) == [] for shim in SHIMS)  # each alias imports `act.commands.X`, not an old path


def test_the_commands_import_with_the_aliases_refused():
    """At run time too: the subcommands' modules (imported as `act X` imports them) and the analyses load with our
    DeprecationWarning turned into an error."""
    code = """
import warnings
warnings.filterwarnings("error", message=r"act\\.\\w+ is deprecated", category=DeprecationWarning)
import act.__main__, act.commands.cli as cli
for name in ("convert", "export", "inspect", "stats"):
    cli.build_parser(load=name)
import act.analysis.batching, act.analysis.conllu, act.training.halting_stats, act.hf_logging
import sys; sys.path.insert(0, "conversion"); import _common
print("ok")
"""
    done = python(code)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
