"""Hub ids: `act.hub.resolve_model` and every loader / command that takes a model, offline, on a local cache.

The cache is built here with the layout of huggingface_hub (`models--asi--albert-act-tiny/refs/<name>` holding a
commit, `snapshots/<commit>/<file>` links into `blobs/`), so nothing touches the network (HF_HUB_OFFLINE=1 is set by
conftest.py before anything is imported).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from act.hub import is_hub_id, resolve_model

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "act" / "demo_model"
REPO = "asi/albert-act-tiny"
MAIN = "0123456789abcdef0123456789abcdef01234567"
V2 = "fedcba9876543210fedcba9876543210fedcba98"


def add_snapshot(cache: Path, repo: str, commit: str, files: dict, refs=("main",)):
    """Put `files` ({name: bytes}) in the cache as huggingface_hub does: blobs + relative links in the snapshot."""
    base = cache / ("models--" + repo.replace("/", "--"))
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    (base / "refs").mkdir(exist_ok=True)
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = base / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    for ref in refs:
        (base / "refs" / ref).write_text(commit)
    return snapshot


def model_files(tmp: Path, **overrides) -> dict:
    """A tiny model with the demo tokenizer's vocabulary, saved, plus the demo tokenizer files."""
    torch = pytest.importorskip("torch")
    import cases
    from act import AlbertActConfig, AlbertActForPreTraining

    torch.manual_seed(0)
    vocab = json.loads((DEMO / "config.json").read_text())["vocab_size"]
    directory = tmp / f"saved-{len(list(tmp.iterdir()))}"
    AlbertActForPreTraining(AlbertActConfig(**cases.tiny_config_kwargs(vocab_size=vocab, **overrides))) \
        .save_pretrained(directory)
    files = {p.name: p.read_bytes() for p in directory.iterdir()}
    files.update({name: (DEMO / name).read_bytes() for name in ("spiece.model", "tokenizer.json",
                                                                 "tokenizer_config.json")})
    return files


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A cache with asi/albert-act-tiny at `main` and at tag `v2` (another act_epsilon)."""
    root = tmp_path_factory.mktemp("hub")
    cache = root / "cache"
    add_snapshot(cache, REPO, MAIN, model_files(root, act_epsilon=0.01))
    add_snapshot(cache, REPO, V2, model_files(root, act_epsilon=0.2), refs=("v2",))
    return cache


@pytest.fixture
def hub_home(hub_cache, monkeypatch):
    """The cache as the default one (HF_HUB_CACHE, read at import by huggingface_hub: patched in place)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    return hub_cache


def test_is_hub_id():
    for name in ("asi/albert-act-tiny", "albert-act-tiny", "org.name/model_v1.2"):
        assert is_hub_id(name), name
    for name in ("./model", "/abs/model", "~/model", "a/b/c", "../model", "model.keras", "config.json", "a\\b",
                 "model.safetensors", "pytorch_model.bin", "tf_model.h5", "model.ckpt-100", "model.ckpt-100.index",
                 "model.ckpt", "demo.onnx", "out/model.safetensors"):
        assert not is_hub_id(name), name


def test_a_missing_checkpoint_file_is_named_not_looked_up_on_the_hub(tmp_path, monkeypatch, capsys):
    """A mistyped local file (model.safetensors, a TF1 prefix) is reported as missing, by name; offline it used to
    be looked up as a hub id and the error ("couldn't connect to huggingface.co") did not name it."""
    from act.commands.cli import main

    monkeypatch.chdir(tmp_path)
    for name in ("model.safetensors", "model.ckpt-100"):
        assert main(["convert", name, str(tmp_path / "out")]) == 1
        error = capsys.readouterr().err
        assert name in error and "huggingface.co" not in error, error
    with pytest.raises(FileNotFoundError, match="model.safetensors: no such file or directory"):
        resolve_model("model.safetensors")
    assert not (tmp_path / "out").exists()


def test_local_paths_are_returned_as_they_are(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "weights.safetensors").write_bytes(b"")
    assert resolve_model(tmp_path / "model") == tmp_path / "model"
    assert resolve_model(str(tmp_path / "weights.safetensors")) == tmp_path / "weights.safetensors"
    with pytest.raises(FileNotFoundError, match="missing: no such file or directory"):
        resolve_model(tmp_path / "missing")


def test_a_hub_id_resolves_to_its_snapshot_in_the_cache(hub_home):
    directory = resolve_model(REPO)
    assert directory == hub_home / "models--asi--albert-act-tiny" / "snapshots" / MAIN
    assert {"config.json", "model.safetensors", "spiece.model", "tokenizer_config.json"} <= \
        {p.name for p in directory.iterdir()}
    assert json.loads((directory / "config.json").read_text())["act_epsilon"] == 0.01


def test_revision_and_cache_dir(hub_cache):
    """A tag, a commit, and an explicit cache_dir (no default cache set)."""
    for revision in ("v2", V2):
        directory = resolve_model(REPO, revision=revision, cache_dir=hub_cache)
        assert directory.name == V2
        assert json.loads((directory / "config.json").read_text())["act_epsilon"] == 0.2
    assert resolve_model(REPO, cache_dir=hub_cache).name == MAIN


def test_unreachable_ids_raise_transformers_error(hub_home):
    from transformers import AutoConfig

    with pytest.raises(OSError) as ours:
        resolve_model("asi/albert-act-small")
    with pytest.raises(OSError) as theirs:
        AutoConfig.from_pretrained("asi/albert-act-small")
    assert str(ours.value) == str(theirs.value)
    assert "couldn't connect" in str(ours.value)
    with pytest.raises(OSError) as ours:
        resolve_model(REPO, revision="v3")
    with pytest.raises(OSError) as theirs:
        AutoConfig.from_pretrained(REPO, revision="v3")
    assert str(ours.value) == str(theirs.value)


def test_pytorch_loads_the_same_ids(hub_home):
    """What transformers already does for PyTorch (the reference for the other loaders)."""
    from act import AlbertActModel

    model = AlbertActModel.from_pretrained(REPO, revision="v2")
    assert model.config.act_epsilon == 0.2


def test_the_environment_variables_are_honoured(hub_cache, tmp_path):
    """In a fresh process: HF_HUB_CACHE points at the cache, HF_HUB_OFFLINE=1 keeps it off the network."""
    code = "from act.hub import resolve_model; print(resolve_model('asi/albert-act-tiny', revision='v2'))"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_CACHE=str(hub_cache), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(V2)


def test_keras_from_pretrained_takes_hub_ids(hub_home):
    pytest.importorskip("tensorflow")
    import act.tf as tfm

    for name in ("TFAlbertActModel", "TFAlbertActForPreTraining", "TFAlbertActForMaskedLM",
                 "TFAlbertActForSequenceClassification", "TFAlbertActForTokenClassification",
                 "TFAlbertActForQuestionAnswering", "TFAlbertActForMultipleChoice"):
        model = getattr(tfm, name).from_pretrained(REPO, revision="v2")
        assert model.config.act_epsilon == 0.2, name


def run_cli(*args):
    from act.commands.cli import main

    return main([str(a) for a in args])


def test_act_inspect_takes_a_hub_id(hub_home, capsys):
    assert run_cli("inspect", "the light shined in darkness .", "--model", REPO) == 0
    assert "updates" in capsys.readouterr().out


def test_act_stats_takes_a_hub_id(hub_home, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("the light shined in darkness .\nand the darkness comprehended it not .\n")
    assert run_cli("stats", text, "--model", REPO, "--no-progress") == 0
    assert "mean updates" in capsys.readouterr().out


def test_act_convert_takes_a_hub_id(hub_home, tmp_path):
    assert run_cli("convert", REPO, tmp_path / "out") == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["act_epsilon"] == 0.01
    assert run_cli("convert", REPO, tmp_path / "v2", "--revision", "v2") == 0
    assert json.loads((tmp_path / "v2" / "config.json").read_text())["act_epsilon"] == 0.2


def test_every_model_command_takes_hub_options():
    """`act inspect | stats | convert | export` take --revision and --cache-dir for a hub id."""
    from act.commands.cli import build_parser

    for command, positional in (("export", [REPO, "out.onnx"]), ("convert", [REPO, "out"]),
                                ("inspect", ["a b", "--model", REPO]), ("stats", ["t.txt", "--model", REPO])):
        args = build_parser(command).parse_args([command, *positional, "--revision", "v2", "--cache-dir", "/tmp/c"])
        assert (args.revision, args.cache_dir) == ("v2", "/tmp/c"), command


def test_act_pretrain_and_finetune_take_a_hub_id(hub_home, tmp_path):
    """`act pretrain --from` / `--tokenizer` and `act finetune --model` go through the same resolution; a name that
    is neither a directory nor a hub id is an error naming the option."""
    from act.training.common import resolve_directory

    directory = Path(resolve_directory(REPO, "--model"))
    assert directory.parts[-2:] == ("snapshots", MAIN) and (directory / "spiece.model").is_file()
    assert Path(resolve_directory(REPO, "--model", "v2")).name == V2
    from act.commands.cli import build_parser

    for command, positional in (("pretrain", ["corpus.txt", "out", "--from", REPO]),
                                ("finetune", ["train.csv", "dev.csv", "out", "--model", REPO])):
        args = build_parser(command).parse_args([command, *positional, "--revision", "v2"])
        assert args.revision == "v2", command
    with pytest.raises(FileNotFoundError, match="--from .*missing: no such model directory"):
        resolve_directory(str(tmp_path / "missing"), "--from")
    with pytest.raises(OSError, match="--model asi/no-such-model: "):  # + transformers' error (offline, not cached)
        resolve_directory("asi/no-such-model", "--model")


def test_keras_from_pretrained_takes_a_subfolder(tmp_path, hub_home):
    """`subfolder=` as transformers has it, locally and for a hub id (it used to be taken for a config override:
    the parent directory was read, and had no checkpoint)."""
    pytest.importorskip("tensorflow")
    from safetensors.numpy import load_file

    from act import TFAlbertActModel

    files = model_files(tmp_path)
    (tmp_path / "outer" / "sub").mkdir(parents=True)
    for name, data in files.items():
        (tmp_path / "outer" / "sub" / name).write_bytes(data)
    (tmp_path / "outer" / "config.json").write_text("{}")  # the parent is not the model
    snapshot = add_snapshot(hub_home, "asi/albert-act-nested", MAIN, {})
    (snapshot / "sub").symlink_to(tmp_path / "outer" / "sub", target_is_directory=True)
    expected = load_file(tmp_path / "outer" / "sub" / "model.safetensors")["albert.embeddings.word_embeddings.weight"]
    for source in (tmp_path / "outer", "asi/albert-act-nested"):
        model = TFAlbertActModel.from_pretrained(source, subfolder="sub")
        got = model.canonical_state_dict()["embeddings.word_embeddings.weight"]
        assert np.array_equal(np.asarray(got), expected), source


def test_only_the_preferred_weights_are_fetched(hub_home, monkeypatch):
    """A repository with several formats of the same weights (the published ones hold pytorch_model.bin and
    tf_model.h5): resolution asks the hub for the tokenizer files and the first weights format it has, no other."""
    from transformers.utils import hub as transformers_hub

    real, asked = transformers_hub.cached_files, []

    def recording(*args, **kwargs):
        asked.extend(kwargs["filenames"] if "filenames" in kwargs else args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers_hub, "cached_files", recording)
    directory = resolve_model(REPO)
    assert (directory / "model.safetensors").is_file()
    assert "model.safetensors" in asked and "spiece.model" in asked
    assert not {"pytorch_model.bin", "tf_model.h5", "pytorch_model.bin.index.json"} & set(asked), asked
