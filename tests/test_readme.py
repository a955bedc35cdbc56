"""The README's and the documentation pages' (docs/*.md) code blocks run as written.

Blocks inside an area section (<!-- section:NAME --> ... <!-- /section:NAME -->, wherever it lives: README.md or a
docs page) are run by that area's own test module (SECTION_TESTS, found with `section(NAME)`); this module runs the
rest of each file, in order, in one namespace per file, checks that every section is claimed by a test that
exists, and builds the documentation site with warnings as errors (`make docs`)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README_MAX_LINES = 250  # a landing page; the manual is docs/

# section -> the test module that runs its python blocks, reading it with section(NAME)
SECTION_TESTS = {
    "keras": "test_tf_model.py",
    "keras-text": "test_tf_preprocessing.py",
    "convert": "test_convert.py",
    "heads": "test_heads.py",
    "transformers": "test_transformers_integration.py",
    "training": "test_training.py",
    "speed": "test_fast_path.py",
    "demo": "test_readme.py",  # bash only (test_demo_section_has_no_python_to_run)
    "analysis": "test_stats_batching.py",
}
SECTION = re.compile(r"<!-- section:([\w-]+) -->(.*?)<!-- /section:\1 -->", flags=re.S)


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def outside_sections(text):
    return SECTION.sub("", text)


def documents():
    """README.md and every docs page."""
    return [README, *PAGES]


def section(name):
    """The text of section NAME, in whichever document holds it (exactly one does)."""
    found = [match.group(2) for document in documents() for match in SECTION.finditer(document.read_text())
             if match.group(1) == name]
    assert found, f"no README.md or docs/*.md section {name}"
    assert len(found) == 1, f"section {name} appears {len(found)} times"
    return found[0]


def run_blocks(blocks, filename):
    namespace = {}
    for block in blocks:
        exec(compile(block, filename, "exec"), namespace)  # noqa: S102
    return namespace


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    blocks = python_blocks(outside_sections(text))
    assert len(blocks) >= 2
    namespace = run_blocks(blocks[:1], str(README))  # the PyTorch example
    assert tuple(namespace["out"].updates.shape) == (2, 5)
    assert (namespace["out"].updates[1, 3:] == 0).all()
    pytest.importorskip("tensorflow")
    namespace = run_blocks(blocks, str(README))  # and the Keras one, which reloads Keras' save in PyTorch
    assert tuple(namespace["out"]["updates"].shape) == (2, 5)


@pytest.mark.parametrize("page", [page.name for page in PAGES])
def test_docs_page_python_blocks_run(page, tmp_path, monkeypatch):
    """The blocks of a page outside its sections, in order, in one namespace (a page without any: nothing to run,
    but its sections are claimed below)."""
    monkeypatch.chdir(tmp_path)
    text = (DOCS / page).read_text()
    blocks = python_blocks(outside_sections(text))
    if not blocks:
        assert python_blocks(text) == [] or SECTION.search(text)
        return
    run_blocks(blocks, str(DOCS / page))


def test_every_section_is_run_by_a_test_that_exists():
    names = [match.group(1) for document in documents() for match in SECTION.finditer(document.read_text())]
    assert sorted(names) == sorted(set(names)), "a section appears twice"
    assert set(names) == set(SECTION_TESTS)
    for name, module in SECTION_TESTS.items():
        if python_blocks(section(name)):
            assert f'section("{name}")' in (ROOT / "tests" / module).read_text(), f"{module} does not run {name}"


def test_demo_section_has_no_python_to_run():
    """The demo section's commands are `make demo` and the pre-training recipe (bash, run by test_inspect_stats and
    examples/): no python block would go unrun."""
    assert python_blocks(section("demo")) == []
    assert "make demo" in section("demo")


def test_docs_site_builds_with_warnings_as_errors(tmp_path):
    """`make docs`: mkdocs --strict (a broken link, a missing page, an API object griffe cannot find or a docstring
    it cannot parse fails), the API reference from the docstrings by static analysis (no framework imported)."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    for page in PAGES:
        html = site / page.stem / "index.html" if page.stem != "index" else site / "index.html"
        assert html.is_file(), html
    api = (site / "api" / "index.html").read_text()
    for name in ("AlbertActConfig", "AlbertActModel", "TFAlbertActModel", "TFAlbertActPreprocessor"):
        assert name in api, name
