"""The README's code blocks run as written. Blocks inside an area section (<!-- section:NAME -->) are
tested by that area's own test module; this one runs the rest, in order, in one namespace."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def outside_sections(text):
    return re.sub(r"<!-- section:([\w-]+) -->.*?<!-- /section:\1 -->", "", text, flags=re.S)


def section(name):
    text = README.read_text()
    match = re.search(rf"<!-- section:{name} -->(.*?)<!-- /section:{name} -->", text, flags=re.S)
    assert match, f"README has no section {name}"
    return match.group(1)


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(outside_sections(README.read_text()))
    assert len(blocks) >= 2
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert tuple(namespace["out"].updates.shape) == (2, 5)
    assert (namespace["out"].updates[1, 3:] == 0).all()
