"""The package as users install it: `python -m build` on a copy of the source tree gives an sdist and a wheel (the
wheel built from the sdist, as `build` does, so the sdist is complete); the wheel, installed into a fresh venv,
answers `act --version`, runs `act inspect` on the embedded demo model it carries, and imports each framework's
classes, all from the venv (never from this checkout).

No download: `build --no-isolation` uses this environment's setuptools, and the fresh venv gets the wheel alone
(`pip install --no-deps --no-index`); its dependencies (torch, tensorflow, transformers, ...) are this environment's
site-packages, appended to the venv's path by a `.pth` file, after the venv's own site-packages (so `act` is the
wheel's). One build for the module; the copy, the build and the venv live in pytest's temporary directories.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import act

REPO = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "build", "dist", "site", ".pytest_cache", "__pycache__", ".hypothesis"}
SENTENCE = "in the beginning god created the heaven and the earth ."
ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\d+)\s+([0-9.]+)\s*#*$")
TIMEOUT = 600


def copy_source(dest: Path) -> Path:
    """The checkout as a clean clone has it (no venv, build outputs, caches or egg-info)."""
    def ignore(directory, names):
        return [name for name in names if name in SKIP or name.endswith(".egg-info")]

    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def clean_env(**extra) -> dict:
    """This process's environment without the PYTHONPATH that puts the checkout's src/ first."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", HF_HUB_OFFLINE="1", PYTHONNOUSERSITE="1", **extra)
    return env


def run(command, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=TIMEOUT,
                          **kwargs)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    pytest.importorskip("build")
    source = copy_source(tmp_path_factory.mktemp("source") / "albert-act")
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source], cwd=source, env=clean_env())
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(out.iterdir())
    return sdists[0], wheels[0]


def test_build_gives_an_sdist_and_a_wheel_of_this_version(dists):
    sdist, wheel = dists
    assert sdist.name == f"albert_act-{act.__version__}.tar.gz"
    assert wheel.name == f"albert_act-{act.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"albert_act-{act.__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    demo = {f"act/demo_model/{name}" for name in ("config.json", "model.safetensors", "spiece.model", "heldout.txt")}
    assert demo <= names and "act/py.typed" in names and "act/commands/cli.py" in names
    assert not any(name.startswith(("tests/", "docs/", "benchmarks/")) for name in names)
    assert f"Version: {act.__version__}" in metadata and "act = act.commands.cli:main" in entry_points
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("CHANGELOG.md", "README.md", "constraints.txt", "mkdocs.yml", "docs/index.md", "tests/conftest.py",
                   "src/act/demo_model/model.safetensors", "setup.cfg", "pyproject.toml"):
        assert needed in members, needed
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in members)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_wheel_installs_into_a_fresh_venv_and_runs(dists, tmp_path, capsys):
    _, wheel = dists
    home = tmp_path / "venv"
    venv.create(home, with_pip=False, symlinks=os.name != "nt")
    python = home / ("Scripts" if os.name == "nt" else "bin") / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet",
         "--disable-pip-version-check", wheel], env=clean_env())
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    env=clean_env()).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_act_test_dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(ours)))
    scripts = python.parent
    env = clean_env(MPLBACKEND="Agg")

    assert run([scripts / "act", "--version"], env=env, cwd=tmp_path).stdout.strip() == f"act {act.__version__}"

    inspected = run([scripts / "act", "inspect", SENTENCE, "--png", tmp_path / "demo.png"], env=env, cwd=tmp_path)
    header = inspected.stdout.splitlines()[0]
    assert header.startswith("model: ") and Path(header.split()[1]).resolve().is_relative_to(site.resolve()), header
    assert (tmp_path / "demo.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # the same table as this checkout's `act inspect`: counts exactly, remainders as printed within the tolerance
    from act.commands.cli import main

    assert main(["inspect", SENTENCE]) == 0
    expected = [ROW.match(line).groups() for line in capsys.readouterr().out.splitlines() if ROW.match(line)]
    got = [ROW.match(line).groups() for line in inspected.stdout.splitlines() if ROW.match(line)]
    assert expected and [row[:3] for row in got] == [row[:3] for row in expected]
    for row, want in zip(got, expected):
        assert float(row[3]) == pytest.approx(float(want[3]), abs=2e-4), (row, want)

    code = ("import act, sys\n"
            "from act import AlbertActConfig, AlbertActModel, AlbertActForSequenceClassification\n"
            "from act import TFAlbertActModel, TFAlbertActForSequenceClassification, TFAlbertActPreprocessor\n"
            "import act.pt, act.tf\n"
            "missing = [name for name in act.__all__ if not hasattr(act, name)]\n"
            "assert not missing, missing\n"
            "print(act.__version__, act.__file__, act.pt.__file__, act.tf.__file__)\n")
    version, *files = run([python, "-c", code], env=env, cwd=tmp_path).stdout.split()
    assert version == act.__version__
    for file in files:
        assert Path(file).resolve().is_relative_to(site.resolve()), file
