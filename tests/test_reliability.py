"""Damaged tokenizer files, a full disk, a read-only file system, empty input, another model's config: a clear
error naming what is wrong (one line from the CLI, exit 1) and nothing lost (the previous files stay, no partial or
temporary file is left).

A real full file system where the platform allows it: a small tmpfs mounted by the test (root only; skipped
otherwise), remounted read-only for EROFS. Elsewhere the OSErrors are injected."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from act.checkpoints import atomic
from act.commands.cli import main, user_error
from act.commands.inspect import demo_model_dir
from act.tokenizer_files import TokenizerFileError, check_tokenizer_files, spiece_pieces

DEMO = demo_model_dir()
TOKENIZER = ("spiece.model", "tokenizer.json", "tokenizer_config.json")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Temporary, backup and staging entries a writer of ours may leave (there must be none)."""
    return sorted(p.name for p in directory.iterdir()
                  if atomic.TEMPORARY_MARK in p.name or atomic.BACKUP_MARK in p.name or atomic.STAGING_PREFIX in p.name
                  or p.name.endswith(atomic.LOCK_SUFFIX))


def error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith(f"act {command}: error: ")]
    assert lines, err
    assert "Traceback" not in "\n".join(err)
    return lines[-1]


# ------------------------------------------------------------------------------------------- a real full disk
@pytest.fixture
def small_fs(tmp_path):
    """A 512 KiB tmpfs (root only): `fill(free)` leaves about `free` bytes, `read_only()` remounts it read-only."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    class FS:
        path = mount

        @staticmethod
        def fill(free: int) -> None:
            stat = os.statvfs(mount)
            size = stat.f_bavail * stat.f_frsize - free
            if size > 0:
                with open(mount / "filler", "ab") as stream:
                    stream.write(b"\0" * size)

        @staticmethod
        def read_only() -> None:
            subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)

    try:
        yield FS
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_write_files_on_a_full_disk_keeps_the_old_file_and_leaves_nothing(small_fs):
    target = small_fs.path / "table.csv"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    small_fs.fill(4096)
    with pytest.raises(atomic.WriteError) as caught:
        atomic.write_files({target: "x" * 100_000})
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert str(target) in str(caught.value) and "unchanged" in str(caught.value)
    assert target.read_text() == "old\n" and leftovers(small_fs.path) == []
    with pytest.raises(atomic.WriteError, match="nothing was written"):
        atomic.write_files({small_fs.path / "new.csv": "x" * 100_000})
    assert not (small_fs.path / "new.csv").exists() and leftovers(small_fs.path) == []
    atomic.write_files({target: "new\n"})  # what fits is written, with the old file's permissions
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o640


def test_a_set_of_files_is_written_all_or_none_on_a_full_disk(small_fs):
    first, second = small_fs.path / "a.json", small_fs.path / "b.csv"
    first.write_text("old a")
    small_fs.fill(8192)
    with pytest.raises(atomic.WriteError) as caught:
        atomic.write_files({first: "new a", second: "y" * 100_000})
    assert caught.value.filename == str(second) and "none of them was changed" in str(caught.value)
    assert first.read_text() == "old a" and not second.exists() and leftovers(small_fs.path) == []


def test_read_only_file_system_is_named(small_fs):
    target = small_fs.path / "report.json"
    target.write_text("{}")
    small_fs.read_only()
    with pytest.raises(atomic.WriteError) as caught:
        atomic.write_files({target: "[1]"})
    assert caught.value.errno == errno.EROFS and str(target) in str(caught.value)
    assert target.read_text() == "{}"


def test_inspect_png_on_a_full_disk_keeps_the_old_png(small_fs, capsys):
    old = small_fs.path / "OLD.png"
    old.write_bytes(b"\x89PNG previous heat map")
    before = digest(old)
    small_fs.fill(2048)
    assert main(["inspect", "a lump in the middle", "--png", str(old)]) == 1
    line = error_line(capsys, "inspect")
    assert str(old) in line and "No space left on device" in line
    assert digest(old) == before and leftovers(small_fs.path) == []
    fresh = small_fs.path / "new.png"
    assert main(["inspect", "a lump in the middle", "--png", str(fresh)]) == 1
    assert not fresh.exists() and leftovers(small_fs.path) == []


def test_stats_outputs_on_a_full_disk_are_all_or_none(small_fs, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat .\na lump in the middle of the monkeys .\n")
    outputs = {name: small_fs.path / name for name in ("r.json", "r.csv", "r.png")}
    for path in outputs.values():
        path.write_text(f"previous {path.name}")
    # room for the JSON and the CSV, not for the figure: before, two of the three were replaced
    small_fs.fill(12_000)
    args = ["stats", str(corpus), "--no-progress", "--json", str(outputs["r.json"]), "--csv", str(outputs["r.csv"]),
            "--png", str(outputs["r.png"])]
    assert main(args) == 1
    line = error_line(capsys, "stats")
    assert "No space left on device" in line and str(outputs["r.png"]) in line
    assert {name: path.read_text() for name, path in outputs.items()} == \
        {name: f"previous {name}" for name in outputs}
    assert leftovers(small_fs.path) == []
    (small_fs.path / "filler").unlink()
    assert main(args) == 0  # with room, all three are written
    assert json.loads(outputs["r.json"].read_text())["sequences"] == 2
    assert outputs["r.png"].read_bytes().startswith(b"\x89PNG") and leftovers(small_fs.path) == []


def test_convert_onto_a_full_disk_is_one_line_and_leaves_nothing(small_fs, capsys):
    dest = small_fs.path / "converted"
    assert main(["convert", str(DEMO), str(dest)]) == 1  # the 3 MB model does not fit in 512 KiB
    line = error_line(capsys, "convert")
    assert f"cannot write {dest}" in line and "No space left on device" in line
    assert not dest.exists() and leftovers(small_fs.path) == []


def test_save_pretrained_onto_a_full_disk_keeps_the_old_model(small_fs):
    from act import AlbertActModel

    model = AlbertActModel.from_pretrained(DEMO)
    dest = small_fs.path / "saved"
    dest.mkdir()
    (dest / "config.json").write_text('{"previous": true}')
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(atomic.WriteError, match=f"cannot write {dest}: No space left on device; it is unchanged"):
        model.save_pretrained(dest)  # safetensors' own error (SafetensorError) carries the OS error code
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "notes.txt"]
    assert (dest / "config.json").read_text() == '{"previous": true}' and leftovers(small_fs.path) == []


# -------------------------------------------------------------------------------------- injected OS errors
def test_injected_failure_while_putting_a_set_in_place_restores_the_first(tmp_path, monkeypatch):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("old a")
    second.write_text("old b")
    real = os.replace
    calls = []

    def failing(source, target):
        calls.append(target)
        if len(calls) == 2:  # the second file of the set cannot be put in place
            raise PermissionError(errno.EACCES, "Permission denied", str(target))
        return real(source, target)

    monkeypatch.setattr(atomic.os, "replace", failing)
    with pytest.raises(atomic.WriteError) as caught:
        atomic.write_files({first: "new a", second: "new b"})
    monkeypatch.undo()
    assert caught.value.errno == errno.EACCES and caught.value.filename == str(second)
    assert first.read_text() == "old a" and second.read_text() == "old b" and leftovers(tmp_path) == []


def test_injected_permission_error_names_the_target(tmp_path, monkeypatch):
    target = tmp_path / "card.md"
    real = os.open

    def refused(path, flags, *args):
        if atomic.TEMPORARY_MARK in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(atomic.os, "open", refused)
    with pytest.raises(atomic.WriteError, match=f"cannot write {target}: Permission denied; nothing was written"):
        atomic.write_files({target: "text"})
    assert not target.exists()


def test_a_failing_writer_keeps_the_old_file_and_its_error(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic.writing_file(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("boom")  # not an OSError: passed on as it is
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_overwrite_false_never_replaces(tmp_path):
    target = tmp_path / "README.md"
    with pytest.raises(FileExistsError), atomic.writing_file(target, overwrite=False) as temporary:
        temporary.write_text("ours")
        target.write_text("the user's")  # appeared while we wrote
    assert target.read_text() == "the user's" and leftovers(tmp_path) == []


def test_export_on_a_full_disk_keeps_the_old_onnx(tmp_path, monkeypatch, capsys):
    from act.commands import export

    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"previous export")

    def half_written(model, multiple_choice, path, opset=None):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "trace_to_onnx", half_written)
    assert main(["export", str(DEMO), str(dest), "--overwrite"]) == 1
    line = error_line(capsys, "export")
    assert f"cannot write {dest}: No space left on device" in line
    assert dest.read_bytes() == b"previous export" and leftovers(tmp_path) == []


def test_library_errors_are_one_line_and_bugs_keep_their_traceback():
    from safetensors import SafetensorError

    error = SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                            '"No space left on device" })')
    assert user_error(error).startswith("No space left on device (SafetensorError: ")
    assert atomic.os_error(error).errno == errno.ENOSPC
    assert user_error(ImportError("No module named 'onnx'")) == "a package is missing: No module named 'onnx'"
    assert user_error(KeyError("x")) is None and user_error(RuntimeError("a bug")) is None


# ----------------------------------------------------------------------------------- damaged tokenizer files
@pytest.fixture
def tokenizer_dir(tmp_path):
    """A copy of the demo model's tokenizer and config (no weights: the tokenizer is checked before the model)."""
    directory = tmp_path / "model"
    directory.mkdir()
    for name in (*TOKENIZER, "config.json"):
        shutil.copy(DEMO / name, directory)
    return directory


def test_spiece_parser_agrees_with_sentencepiece():
    spm = pytest.importorskip("sentencepiece")
    processor = spm.SentencePieceProcessor(model_file=str(DEMO / "spiece.model"))
    assert spiece_pieces(DEMO / "spiece.model") == [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    check_tokenizer_files(DEMO)  # the shipped files are sound and agree


@pytest.mark.parametrize("damage, expected", [
    ("empty", "spiece.model: is empty"),
    ("random", "spiece.model: not a SentencePiece model"),
    ("truncated", "spiece.model: not a SentencePiece model.*truncated"),
])
def test_damaged_spiece_model_alone_is_named(tokenizer_dir, damage, expected, capsys):
    (tokenizer_dir / "tokenizer.json").unlink()
    spiece = tokenizer_dir / "spiece.model"
    data = spiece.read_bytes()
    spiece.write_bytes({"empty": b"", "random": bytes(range(256)) * 40,
                        "truncated": data[:len(data) // 2]}[damage])
    with pytest.raises(TokenizerFileError, match=expected):
        check_tokenizer_files(tokenizer_dir)
    assert main(["inspect", "hello", "--model", str(tokenizer_dir)]) == 1
    line = error_line(capsys, "inspect")
    assert str(spiece) in line


def test_without_sentencepiece_the_wire_format_is_checked_here(tokenizer_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # `import sentencepiece` raises ImportError
    check_tokenizer_files(tokenizer_dir)  # the pieces parsed here agree with tokenizer.json's
    spiece = tokenizer_dir / "spiece.model"
    spiece.write_bytes(spiece.read_bytes()[:-7])
    with pytest.raises(TokenizerFileError, match="truncated"):
        check_tokenizer_files(tokenizer_dir)


def test_damaged_spiece_beside_a_good_tokenizer_json_is_reported(tokenizer_dir):
    spiece = tokenizer_dir / "spiece.model"
    spiece.write_bytes(spiece.read_bytes()[:1000])
    with pytest.raises(TokenizerFileError, match=f"{spiece}: not a SentencePiece model"):
        check_tokenizer_files(tokenizer_dir)


def test_disagreeing_tokenizer_files_are_reported(tokenizer_dir):
    path = tokenizer_dir / "tokenizer.json"
    pipeline = json.loads(path.read_text())
    vocab = pipeline["model"]["vocab"]
    vocab[10], vocab[11] = vocab[11], vocab[10]
    path.write_text(json.dumps(pipeline))
    with pytest.raises(TokenizerFileError, match=r"not the same tokenizer \(piece 10 is"):
        check_tokenizer_files(tokenizer_dir)
    del vocab[-1]
    path.write_text(json.dumps(pipeline))
    with pytest.raises(TokenizerFileError, match="spiece.model has 4000 pieces, tokenizer.json 3999"):
        check_tokenizer_files(tokenizer_dir)


def test_truncated_tokenizer_json_and_invalid_config_are_named(tokenizer_dir, capsys):
    path = tokenizer_dir / "tokenizer.json"
    text = path.read_text()
    path.write_text(text[:len(text) // 2])
    with pytest.raises(TokenizerFileError, match=f"{path}: not valid JSON at line .* column .*truncated"):
        check_tokenizer_files(tokenizer_dir)
    shutil.copy(DEMO / "tokenizer.json", path)
    config = tokenizer_dir / "tokenizer_config.json"
    config.write_text('{"model_max_length": 128,')
    assert main(["inspect", "hello", "--model", str(tokenizer_dir)]) == 1
    assert f"{config}: not valid JSON" in error_line(capsys, "inspect")
    config.write_text("[1, 2]")
    with pytest.raises(TokenizerFileError, match="expected a JSON object, got list"):
        check_tokenizer_files(tokenizer_dir)


def test_training_loader_names_the_damaged_file(tokenizer_dir):
    from act.tokenization import load_tokenizer  # the one loader of act pretrain / finetune / inspect / stats

    (tokenizer_dir / "tokenizer_config.json").write_text("")
    with pytest.raises(ValueError, match="tokenizer_config.json: is empty"):
        load_tokenizer(str(tokenizer_dir))  # before: a bare JSONDecodeError from AutoTokenizer


def test_tokenizer_json_with_an_empty_vocabulary_is_named(tokenizer_dir):
    path = tokenizer_dir / "tokenizer.json"
    pipeline = json.loads(path.read_text())
    pipeline["model"]["vocab"] = []
    path.write_text(json.dumps(pipeline))
    with pytest.raises(TokenizerFileError, match="tokenizer.json: its Unigram model has an empty vocabulary"):
        check_tokenizer_files(tokenizer_dir)


def test_broken_link_and_no_tokenizer(tokenizer_dir, tmp_path):
    spiece = tokenizer_dir / "spiece.model"
    spiece.unlink()
    spiece.symlink_to(tmp_path / "gone.model")
    with pytest.raises(TokenizerFileError, match="broken symbolic link"):
        check_tokenizer_files(tokenizer_dir)
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        check_tokenizer_files(tmp_path / "nothing-here")


# ----------------------------------------------------------------------------------------- input and config
@pytest.mark.parametrize("text", ["", "   ", "\t \n"])
def test_inspect_refuses_empty_text(text, capsys):
    assert main(["inspect", text]) == 1
    assert "the text is empty" in error_line(capsys, "inspect")
    assert main(["inspect", "hello", "--pair", text]) == 1
    assert "--pair is empty" in error_line(capsys, "inspect")


def test_stats_names_the_file_and_line_that_is_not_utf8(tmp_path, capsys):
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes("first line\nsecond caf\xe9 line\n".encode("latin-1"))
    assert main(["stats", str(corpus), "--no-progress"]) == 1
    line = error_line(capsys, "stats")
    assert f"{corpus}: line 2, column 11: not UTF-8" in line and "0xe9" in line


def test_conllu_not_utf8_names_the_line(tmp_path):
    from act.analysis.conllu import read_conllu

    path = tmp_path / "bad.conllu"
    path.write_bytes(b"# sent_id = 1\n1\tcaf\xe9\t_\tNOUN\t_\t_\t0\troot\t_\t_\n")
    with pytest.raises(ValueError, match=f"CoNLL-U file {path}: line 2, column 6: not UTF-8"):
        read_conllu(path)


@pytest.fixture
def foreign_model(tmp_path):
    directory = tmp_path / "bert"
    directory.mkdir()
    for name in ("model.safetensors", *TOKENIZER):
        shutil.copy(DEMO / name, directory)
    config = json.loads((DEMO / "config.json").read_text())
    config.update(model_type="bert", architectures=["BertForMaskedLM"])
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_another_models_config_is_refused(foreign_model, tmp_path, capsys):
    from act import AlbertActModel

    with pytest.raises(ValueError, match=r"config.json: holds a 'bert' model \(model_type 'bert', architectures "
                                         r"BertForMaskedLM\), not an ALBERT-ACT one"):
        AlbertActModel.from_pretrained(foreign_model)
    for command in (["inspect", "hello", "--model", str(foreign_model)],
                    ["stats", str(DEMO / "heldout.txt"), "--model", str(foreign_model), "--no-progress"],
                    ["convert", str(foreign_model), str(tmp_path / "out")]):
        assert main(command) == 1
        assert "holds a 'bert' model" in error_line(capsys, command[0])
    assert not (tmp_path / "out").exists()


def test_keras_loader_refuses_another_models_config(foreign_model):
    pytest.importorskip("tensorflow")
    from act import TFAlbertActModel

    with pytest.raises(ValueError, match="holds a 'bert' model"):
        TFAlbertActModel.from_pretrained(foreign_model)


@pytest.mark.parametrize("model_type", [None, "albert", "albert_act"])
def test_legacy_and_own_model_types_load(tmp_path, model_type):
    """The research code's configs say albert_act (CHECKPOINT_FORMATS.md), TF1 albert_config.json none, and the
    configs ALBERT-ACT grew from albert: all of them load."""
    from act import AlbertActConfig, AlbertActModel

    directory = tmp_path / "m"
    directory.mkdir()
    shutil.copy(DEMO / "model.safetensors", directory)
    config = json.loads((DEMO / "config.json").read_text())
    config.pop("model_type")
    if model_type is not None:
        config["model_type"] = model_type
    (directory / "config.json").write_text(json.dumps(config))
    model = AlbertActModel.from_pretrained(directory)
    assert isinstance(model.config, AlbertActConfig)


def test_act_epsilon_that_rounds_away_in_float32_is_refused():
    np = pytest.importorskip("numpy")
    from act import AlbertActConfig

    for epsilon in (1e-300, 1e-12, 2.0 ** -25, 2.9e-8):
        assert np.float32(1) - np.float32(epsilon) == np.float32(1)  # the oracle: it is epsilon 0 in float32
        with pytest.raises(ValueError, match=r"act_epsilon=.* is too small: the halting threshold 1 - act_epsilon "
                                             r"rounds to 1.0 in float32"):
            AlbertActConfig(act_epsilon=epsilon)
    for epsilon in (2.0 ** -24, 3.1e-8, 1e-6, 0.01):
        assert np.float32(1) - np.float32(epsilon) < np.float32(1)
        assert AlbertActConfig(act_epsilon=epsilon).act_epsilon == epsilon
    config = AlbertActConfig()
    with pytest.raises(ValueError, match="act_epsilon=1e-30 is too small"):
        config.halting_limits({"act_epsilon": 1e-30})
    with pytest.raises(ValueError, match="act_epsilon=1e-300 is too small"):
        AlbertActConfig.from_dict({**config.to_dict(), "act_epsilon": 1e-300})
