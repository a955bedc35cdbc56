"""The mirror (ARCHITECTURE.md): `pt/modeling.py` and `tf/modeling.py` read side by side. Checked on the source
text: the same classes in the same order, the same methods in each class (Keras' `call` is PyTorch's `forward`),
nothing else at module level, and files of about the same length. Plus the lazy imports of the shared modules."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "act"
FILES = {"pt": SRC / "pt" / "modeling.py", "tf": SRC / "tf" / "modeling.py"}
RENAMED = {"call": "forward"}  # Keras name -> PyTorch name


def module(framework):
    return ast.parse(FILES[framework].read_text())


def classes(framework):
    """[(class name without the TF prefix, [method names, Keras' call renamed])] in file order."""
    result = []
    for node in module(framework).body:
        if isinstance(node, ast.ClassDef):
            name = node.name[2:] if framework == "tf" else node.name
            assert framework == "pt" or node.name.startswith("TF"), node.name
            methods = [RENAMED.get(item.name, item.name) if framework == "tf" else item.name
                       for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]
            result.append((name, methods))
    return result


def test_same_classes_in_the_same_order():
    pt, tf = classes("pt"), classes("tf")
    assert [name for name, _ in pt] == [name for name, _ in tf]
    assert len(pt) == 15


@pytest.mark.parametrize("index", range(15))
def test_every_method_has_its_twin(index):
    (name, pt_methods), (_, tf_methods) = classes("pt")[index], classes("tf")[index]
    assert pt_methods == tf_methods, f"{name}: PyTorch {pt_methods} vs Keras {tf_methods}"
    assert "forward" in pt_methods or name == "AlbertActPreTrainedModel"


@pytest.mark.parametrize("framework", ["pt", "tf"])
def test_only_the_mirrored_classes_at_module_level(framework):
    """Helpers and plumbing live in ops.py / base.py: a modeling file holds imports, classes and `__all__`."""
    tree = module(framework)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # the docstring
            continue
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__all__"]:
            continue
        raise AssertionError(f"{FILES[framework].name}:{node.lineno}: {ast.dump(node)[:80]} is not a mirrored class")


def test_the_two_files_are_within_ten_percent_in_lines():
    pt, tf = (len(FILES[name].read_text().splitlines()) for name in ("pt", "tf"))
    assert abs(pt - tf) <= 0.1 * max(pt, tf), (pt, tf)


def test_the_module_docstrings_state_the_naming_convention():
    for path in FILES.values():
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert "`call`" in docstring and "`forward`" in docstring and "forward_dense" in docstring


def test_the_threshold_comes_from_the_config():
    """`config.halting_threshold` is the one definition of 1 - act_epsilon (no file re-computes it)."""
    for path in (*FILES.values(), SRC / "halting.py"):
        assert "act_epsilon" not in path.read_text(), path
    assert "halting_threshold" in FILES["pt"].read_text() and "halting_threshold" in FILES["tf"].read_text()


def test_shared_modules_import_no_framework():
    code = ("import sys, act, act.halting, act.inputs; "
            "bad = [m for m in ('torch', 'tensorflow', 'keras', 'transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
