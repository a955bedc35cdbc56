"""Nothing is lost (act.checkpoints.atomic): `act convert` and both frameworks' `save_pretrained` replace only the
model files of a directory, keep everything else, survive SIGKILL at any moment (DEST holds the complete old model or
the complete new one; a half-done replacement is flagged, refused by the loaders and finished by the next run), clean
up after killed runs, and let only one writer at a time at a DEST. Real kills at random moments, a forced race."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import act
from act.checkpoints import CheckpointError, DestinationBusy, atomic, files, pending_commit, recover
from act.commands.cli import main
from act.commands.convert import convert
from test_checkpoint_files import tiny_model

SRC = str(Path(act.__file__).resolve().parents[1])
OLD = {"config.json": b'{"old": true}', "pytorch_model.bin": b"old weights"}  # a model of another format
NEW = {"config.json": b'{"new": true}', "model.safetensors": b"new weights"}
USER = {"thesis.tex": b"years of work", "spiece.model": b"tokenizer", "sub/r.csv": b"1,2\n"}


def write_tree(root: Path, entries: dict) -> None:
    for name, data in entries.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def tree(root: Path) -> dict[str, bytes]:
    """The files below `root` (outside the writers' staging directories) and their bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(atomic.STAGING_PREFIX) for part in p.relative_to(root).parts)}


def model_files(root: Path) -> dict[str, bytes]:
    return {name: data for name, data in tree(root).items() if files.is_model_file(name)}


def leftovers(parent: Path) -> list[str]:
    """Anything a writer leaves behind: staging directories (next to DEST or inside it) and lock files."""
    found = []
    for path in parent.rglob("*"):
        if atomic.STAGING_PREFIX in path.name or path.name.endswith(atomic.LOCK_SUFFIX):
            found.append(str(path.relative_to(parent)))
    return sorted(found)


def environment(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_for(predicate, process, timeout=180.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the subprocess")
        time.sleep(0.005)
    return True


def journal_present(dest: Path) -> bool:
    return any((staging / atomic.JOURNAL).is_file() for staging in dest.glob(atomic.STAGING_PREFIX + "*"))


# ------------------------------------------------------------------------------------------------ the transaction


def test_a_new_destination_appears_whole(tmp_path):
    dest = tmp_path / "out"
    with atomic.transaction(dest, overwrite=False, replaces=files.is_model_file) as transaction:
        write_tree(transaction.path, NEW)
        assert not dest.exists()  # nothing at DEST before the commit
    assert tree(dest) == NEW and leftovers(tmp_path) == []


def test_an_existing_directory_keeps_everything_but_its_model_files(tmp_path):
    dest = tmp_path / "out"
    write_tree(dest, {**OLD, **USER})
    with pytest.raises(FileExistsError, match="--overwrite"):
        with atomic.transaction(dest, overwrite=False, replaces=files.is_model_file):
            pass
    with atomic.transaction(dest, overwrite=True, replaces=files.is_model_file) as transaction:
        write_tree(transaction.path, NEW)
        assert tree(dest) == {**OLD, **USER}  # the staging directory holds the new files until the commit
    assert tree(dest) == {**NEW, **USER} and leftovers(tmp_path) == []


def test_a_failed_writer_leaves_the_destination_alone(tmp_path):
    dest = tmp_path / "out"
    write_tree(dest, {**OLD, **USER})
    with pytest.raises(KeyboardInterrupt):
        with atomic.transaction(dest, overwrite=True, replaces=files.is_model_file) as transaction:
            write_tree(transaction.path, NEW)
            raise KeyboardInterrupt
    assert tree(dest) == {**OLD, **USER} and leftovers(tmp_path) == []
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"old")
    with atomic.transaction(keras_file, overwrite=True, kind="file") as transaction:
        transaction.path.write_bytes(b"new")
        assert keras_file.read_bytes() == b"old"
    assert keras_file.read_bytes() == b"new" and leftovers(tmp_path) == []


def test_one_writer_at_a_time(tmp_path, capsys):
    source = canonical_source(tmp_path / "a", 1)
    dest = tmp_path / "out"
    with atomic.locked(dest.absolute()):
        with pytest.raises(DestinationBusy, match=rf"process {os.getpid()} is writing it right now"):
            with atomic.transaction(dest, overwrite=True):
                pass
        assert main(["convert", str(source), str(dest)]) == 1  # the CLI says so, exit 1
        assert f"act convert: error: {dest.absolute()}: process {os.getpid()} is writing it right now" in \
            capsys.readouterr().err
    assert not dest.exists() and leftovers(tmp_path) == []
    assert main(["convert", str(source), str(dest)]) == 0  # the lock is gone with its holder


def test_one_writer_at_a_time_whatever_the_spelling_of_dest(tmp_path):
    """A writer through a symlink to DEST (or to a directory above it) takes the same lock as one through the real
    path: without it, the second writer's recovery removed the first one's staging directory mid-run."""
    real = tmp_path / "a" / "model"
    write_tree(real, {**OLD, **USER})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model").symlink_to(real)
    (tmp_path / "c").symlink_to(tmp_path / "a")
    with atomic.transaction(real, overwrite=True, replaces=files.is_model_file) as first:
        write_tree(first.path, NEW)
        for other in (tmp_path / "b" / "model", tmp_path / "c" / "model"):
            with pytest.raises(DestinationBusy, match="is writing it right now"):
                with atomic.transaction(other, overwrite=True, replaces=files.is_model_file) as second:
                    write_tree(second.path, {"config.json": b"second"})
        assert first.staging.is_dir()  # still there: nobody took it for a killed run's leftovers
    assert tree(real) == {**NEW, **USER} and leftovers(tmp_path) == []


def test_recovery_removes_only_its_own_leftovers(tmp_path):
    dest = tmp_path / "out"
    write_tree(dest, {**OLD, **USER})
    foreign = tmp_path / f".out{atomic.STAGING_PREFIX}not-ours"  # the right name but no marker: not touched
    write_tree(foreign, {"keep.txt": b"someone's"})
    killed = tmp_path / f".out{atomic.STAGING_PREFIX}killed"
    write_tree(killed, {"new/model.safetensors": b"half"})
    (killed / atomic.MARKER).write_text(json.dumps({"tool": "act", "dest": "out"}))
    other = tmp_path / f".other{atomic.STAGING_PREFIX}x"  # another destination's: not touched
    write_tree(other, {atomic.MARKER: json.dumps({"tool": "act", "dest": "other"}).encode()})
    done = recover(dest)
    assert done == [f"removed {killed.name}, left by a killed run"]
    assert not killed.exists() and tree(foreign) == {"keep.txt": b"someone's"} and other.exists()
    assert tree(dest) == {**OLD, **USER}


# ------------------------------------------------------------------------------------------------ real kills

WRITER = """
import sys
from pathlib import Path
from act.checkpoints import atomic, files
dest = Path(sys.argv[1])
with atomic.transaction(dest, overwrite=True, replaces=files.is_model_file) as transaction:
    for name, data in {new!r}.items():
        (transaction.path / name).write_bytes(data)
        atomic._pause()
""".format(new=NEW)


CLI = "import sys; from act.commands.cli import main; sys.exit(main(sys.argv[1:]))"  # the `act` command


def check_after_kill(dest: Path) -> str:
    """DEST after a kill: its user files intact; its model files the complete old or new set, or a flagged
    replacement that loaders refuse and recovery completes. Returns which."""
    assert {k: v for k, v in tree(dest).items() if k in USER} == USER
    state = "pending" if pending_commit(dest) is not None else None
    if state == "pending":
        with pytest.raises(CheckpointError, match="killed while it replaced the model files"):
            files.detect(dest)
    else:
        current = model_files(dest)
        assert current in (OLD, NEW), current
        state = "new" if current == NEW else "old"
    with atomic.locked(dest):
        recover(dest)
    after = model_files(dest)
    assert after == (NEW if state in ("pending", "new") else OLD)
    assert {k: v for k, v in tree(dest).items() if not files.is_model_file(k)} == USER
    assert leftovers(dest.parent) == []
    return state


def test_sigkill_at_random_moments_never_loses_or_mixes(tmp_path):
    rng = random.Random(int(os.environ.get("ACT_TEST_SEED", "0")) or None)
    outcomes = []
    for attempt in range(10):
        dest = tmp_path / f"run{attempt}" / "out"
        write_tree(dest, {**OLD, **USER})
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(dest)],
                                   env=environment(**{atomic.DELAY_ENV: 0.02}), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        if attempt % 2:  # anywhere in the run, start-up included
            time.sleep(rng.uniform(0.0, 1.0))
        else:  # somewhere in the writing and the commit (about 8 pauses of 0.02 s)
            wait_for(lambda: any(dest.glob(atomic.STAGING_PREFIX + "*")), process)
            time.sleep(rng.uniform(0.0, 0.25))
        process.send_signal(signal.SIGKILL)
        process.wait()
        outcomes.append(check_after_kill(dest))
    assert set(outcomes) <= {"old", "new", "pending"}


def test_a_flagged_directory_is_refused_until_the_next_run_finishes_it(tmp_path):
    dest = tmp_path / "out"
    write_tree(dest, {**OLD, **USER})
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(dest)],
                               env=environment(**{atomic.DELAY_ENV: 0.5}), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    assert wait_for(lambda: journal_present(dest), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert pending_commit(dest) is not None
    with pytest.raises(CheckpointError, match=r"killed while it replaced the model files.*--overwrite"):
        files.detect(dest)
    from act.commands.inspect import resolve_model_dir  # act inspect / act stats say the same (not "no config.json")

    with pytest.raises(CheckpointError, match=r"killed while it replaced the model files"):
        resolve_model_dir(dest)
    with atomic.transaction(dest, overwrite=True, replaces=files.is_model_file) as transaction:
        assert transaction.recovered == [f"finished the interrupted replacement of the model files in {dest}"]
        write_tree(transaction.path, {"config.json": b"third", "model.safetensors": b"third"})
    assert model_files(dest) == {"config.json": b"third", "model.safetensors": b"third"}
    assert {k: v for k, v in tree(dest).items() if not files.is_model_file(k)} == USER
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------ act convert


def canonical_source(directory: Path, seed: int) -> Path:
    model = tiny_model(seed=seed)
    directory.mkdir(parents=True)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    (directory / "config.json").write_text(model.config.to_json_string())
    return directory


def hashes(root: Path) -> dict:
    return {name: hashlib.sha256(data).hexdigest() for name, data in tree(root).items()}


def test_convert_race_and_kill(tmp_path):
    """Two converts race to one DEST: the second fails at once with a clear message. The first is then killed
    in its commit at a random moment: DEST holds A or B (or a flagged replacement that loaders refuse), the sources
    are untouched, and the next convert finishes or redoes the job and cleans up."""
    rng = random.Random(int(os.environ.get("ACT_TEST_SEED", "0")) or None)
    first, second = canonical_source(tmp_path / "a", 1), canonical_source(tmp_path / "b", 2)
    dest = tmp_path / "out"
    convert(first, dest)
    write_tree(dest, USER)
    before = {"a": hashes(first), "b": hashes(second), "dest": model_files(dest)}
    process = subprocess.Popen([sys.executable, "-c", CLI, "convert", str(second), str(dest), "--overwrite"],
                               env=environment(**{atomic.DELAY_ENV: 0.4}), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    assert wait_for(lambda: any(dest.glob(atomic.STAGING_PREFIX + "*")), process), process.stderr.read()
    with pytest.raises(DestinationBusy, match=r"out: process \d+ is writing it right now"):
        convert(first, dest, overwrite=True)
    assert wait_for(lambda: journal_present(dest), process, timeout=60)
    time.sleep(rng.uniform(0.0, 1.6))  # 4 moves of 0.4 s: somewhere in the commit, or just after it
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert hashes(first) == before["a"] and hashes(second) == before["b"]
    assert {k: v for k, v in tree(dest).items() if k in USER} == USER
    pending = pending_commit(dest) is not None
    if pending:
        with pytest.raises(CheckpointError, match="killed while it replaced the model files"):
            act.AlbertActModel.from_pretrained(dest)
    else:
        assert set(model_files(dest)) == {"config.json", "model.safetensors"}
        loaded = act.AlbertActModel.from_pretrained(dest)  # a complete model, A's or B's
        origin = tiny_model(seed=1) if model_files(dest) == before["dest"] else tiny_model(seed=2)
        for key, value in origin.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
    report = convert(second, dest, overwrite=True)  # the next run: finishes (or redoes) the job, cleans up
    assert leftovers(tmp_path) == []
    assert sorted(tree(dest)) == sorted([*USER, "config.json", "model.safetensors"])
    loaded = act.AlbertActModel.from_pretrained(dest)
    for key, value in tiny_model(seed=2).state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    if pending:
        assert f"finished the interrupted replacement of the model files in {dest}" in report.notes


# ------------------------------------------------------------------------------------------------ save_pretrained


def test_save_pretrained_keeps_other_files_in_both_frameworks(tmp_path):
    model = tiny_model(seed=3)
    dest = tmp_path / "model"
    write_tree(dest, {**OLD, **USER})
    model.save_pretrained(dest)
    assert sorted(model_files(dest)) == ["config.json", "model.safetensors"]  # the stale .bin is gone too
    others = {k: v for k, v in tree(dest).items() if not files.is_model_file(k)}
    card = others.pop("README.md")  # the model card, written because the user had none (act.model_card)
    assert card.startswith(b"---\n") and b"AlbertActModel" in card
    assert others == USER
    assert leftovers(tmp_path) == []
    pytest.importorskip("tensorflow")
    from act import TFAlbertActModel

    keras_model = TFAlbertActModel.from_pretrained(dest)
    write_tree(dest, {"pytorch_model.bin": b"stale again"})
    (dest / "README.md").write_bytes(b"my own notes")
    keras_model.save_pretrained(dest)
    assert sorted(model_files(dest)) == ["config.json", "model.safetensors"]
    assert {k: v for k, v in tree(dest).items() if not files.is_model_file(k)} == {**USER, "README.md": b"my own notes"}
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    for key, value in files.read_weights(dest).items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    assert leftovers(tmp_path) == []
