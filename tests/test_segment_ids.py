"""Sentence pairs keep their segment ids: the one tokenizer loader (`act.tokenization.load_tokenizer`), the
tokenizer directories we ship and write (plain `AutoTokenizer` / `AlbertTokenizer`), `act finetune` on pairs and
pipelines with `text_pair`; the reference ids are built here with the SentencePiece model directly, as ALBERT's
run_classifier does ([CLS] A [SEP] B [SEP], segment 0 up to and including the first [SEP], 1 after)."""

from __future__ import annotations

import json
import shutil
import unicodedata

import pytest

from training_helpers import DEMO, TOKENIZER_FILES, write_model

PAIRS = [("and god said , let there be light .", "and there was light ."),
         ("jesus wept .", "in the beginning was the word , and the word was with god ."),
         ("the light shined in darkness", "and the darkness comprehended it not .")]


# ------------------------------------------------------------------------------- the research pipeline's ids
class ResearchIds:
    """ALBERT's tokenization.FullTokenizer + run_classifier.convert_single_example, written out: lower-cased,
    accents stripped (keep_accents=False), the SentencePiece pieces of each text; [CLS] A [SEP] B [SEP]; the pair
    truncated by removing a token from the longer text until it fits."""

    def __init__(self, directory=DEMO):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(directory / "spiece.model"))
        self.cls, self.sep = self.sp.piece_to_id("[CLS]"), self.sp.piece_to_id("[SEP]")

    def pieces(self, text: str) -> list[int]:
        text = " ".join(text.replace("``", '"').replace("''", '"').split())
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c)).lower()
        return self.sp.encode(text)

    def __call__(self, a: str, b: str, max_length: int = 10 ** 6) -> tuple[list[int], list[int]]:
        first, second = self.pieces(a), self.pieces(b)
        while len(first) + len(second) > max_length - 3:
            (first if len(first) > len(second) else second).pop()
        ids = [self.cls, *first, self.sep, *second, self.sep]
        segments = [0] * (len(first) + 2) + [1] * (len(second) + 1)
        return ids, segments


@pytest.fixture(scope="module")
def research():
    return ResearchIds()


def old_directory(tmp_path, source=DEMO):
    """A tokenizer directory as the published checkpoints carry it: a tokenizer_config.json without
    model_input_names (transformers 5's AlbertTokenizer then gives no token_type_ids)."""
    directory = tmp_path / "old"
    directory.mkdir()
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, directory / name)
    settings = json.loads((directory / "tokenizer_config.json").read_text())
    settings.pop("model_input_names", None)
    (directory / "tokenizer_config.json").write_text(json.dumps(settings))
    return directory


# ------------------------------------------------------------------------------------------ the loader
def test_plain_transformers_loaders_give_segment_ids_for_the_demo_model(research):
    from transformers import AlbertTokenizer, AutoTokenizer

    for loader in (AutoTokenizer, AlbertTokenizer):
        tokenizer = loader.from_pretrained(str(DEMO))
        for a, b in PAIRS:
            encoding = tokenizer(a, b)
            assert (encoding["input_ids"], encoding["token_type_ids"]) == research(a, b), (loader, a)


def test_load_tokenizer_gives_segment_ids_for_an_old_directory(tmp_path, research):
    from transformers import AlbertTokenizer

    from act.tokenization import load_tokenizer

    directory = old_directory(tmp_path)
    assert "token_type_ids" not in AlbertTokenizer.from_pretrained(str(directory))(*PAIRS[0])  # the bug
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    tokenizer = load_tokenizer(directory)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before  # loading changes nothing there
    for a, b in PAIRS:
        encoding = tokenizer(a, b)
        assert (encoding["input_ids"], encoding["token_type_ids"]) == research(a, b)
    batch = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True)
    for row, (a, b) in enumerate(PAIRS):
        ids, segments = research(a, b)
        assert batch["input_ids"][row][:len(ids)] == ids and batch["token_type_ids"][row][:len(ids)] == segments
    # what it saves loads with segment ids through plain transformers
    saved = tmp_path / "saved"
    tokenizer.save_pretrained(str(saved))
    assert "token_type_ids" in AlbertTokenizer.from_pretrained(str(saved))(*PAIRS[0])
    # a bare spiece.model too
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copyfile(DEMO / "spiece.model", bare / "spiece.model")
    encoding = load_tokenizer(bare)(*PAIRS[1])
    assert (encoding["input_ids"], encoding["token_type_ids"]) == research(*PAIRS[1])


def test_load_tokenizer_errors(tmp_path):
    from act.tokenization import load_tokenizer

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokenizer(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_tokenizer(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no tokenizer in directory .*spiece.model or tokenizer.json"):
        load_tokenizer(tmp_path / "empty")


def test_every_loader_of_the_package_is_the_one(tmp_path):
    """act inspect / act stats and the training commands load through act.tokenization.load_tokenizer."""
    import act.inspect
    import act.stats
    import act.tokenization

    assert act.inspect.load_tokenizer is act.tokenization.load_tokenizer
    assert act.stats.load_tokenizer is act.tokenization.load_tokenizer
    from act.inspect import Runner, inspect_sentence

    directory = write_model(tmp_path / "model")
    settings = json.loads((directory / "tokenizer_config.json").read_text())
    settings.pop("model_input_names")
    (directory / "tokenizer_config.json").write_text(json.dumps(settings))
    tokenizer = act.inspect.load_tokenizer(directory)
    a, b = PAIRS[0]
    result = inspect_sentence(a, Runner(directory), tokenizer, b)
    ids, segments = ResearchIds()(a, b)
    assert result["input_ids"] == ids
    direct = Runner(directory)([ids], [[1] * len(ids)], [segments])
    zeros = Runner(directory)([ids], [[1] * len(ids)], [[0] * len(ids)])
    assert result["updates"] == pytest.approx([float(u) for u in direct["updates"][0]], abs=0)
    assert list(direct["updates"][0]) != list(zeros["updates"][0]) or \
        list(direct["remainders"][0]) != list(zeros["remainders"][0])  # segment ids make a difference here


# ---------------------------------------------------------------------------- tokenizer_config.json, kept
def test_write_token_type_ids_adds_only_what_is_missing(tmp_path):
    import os

    from act.tokenization import MODEL_INPUT_NAMES, write_token_type_ids

    directory = tmp_path / "d"
    directory.mkdir()
    assert write_token_type_ids(directory) is False  # no tokenizer: nothing written
    assert list(directory.iterdir()) == []
    shutil.copyfile(DEMO / "spiece.model", directory / "spiece.model")
    umask = os.umask(0)
    os.umask(umask)
    assert write_token_type_ids(directory) is True  # bare spiece.model: a tokenizer_config.json is created
    assert json.loads((directory / "tokenizer_config.json").read_text()) == {
        "model_input_names": list(MODEL_INPUT_NAMES), "tokenizer_class": "AlbertTokenizer"}
    assert (directory / "tokenizer_config.json").stat().st_mode & 0o777 == 0o666 & ~umask
    # a user's edited file: the key added, everything else (their own keys too) kept, the file mode kept
    user = {**json.loads(old_directory(tmp_path).joinpath("tokenizer_config.json").read_text()),
            "my_note": "edited by hand", "model_max_length": 17}
    path = directory / "tokenizer_config.json"
    path.write_text(json.dumps(user))
    path.chmod(0o640)
    assert write_token_type_ids(directory) is True
    assert json.loads(path.read_text()) == {**user, "model_input_names": list(MODEL_INPUT_NAMES)}
    assert path.stat().st_mode & 0o777 == 0o640
    stamp = path.stat().st_mtime_ns, path.read_bytes()
    assert write_token_type_ids(directory) is False  # already there: not rewritten
    assert (path.stat().st_mtime_ns, path.read_bytes()) == stamp
    # a list of their own lacking token_type_ids: it is added after input_ids, their names kept in order
    path.write_text(json.dumps({**user, "model_input_names": ["input_ids", "attention_mask", "extra"]}))
    assert write_token_type_ids(directory) is True
    assert json.loads(path.read_text())["model_input_names"] == ["input_ids", "token_type_ids", "attention_mask",
                                                                  "extra"]
    assert sorted(p.name for p in directory.iterdir()) == ["spiece.model", "tokenizer_config.json"]  # no temporaries
    path.write_text(json.dumps({"model_input_names": "input_ids"}))
    with pytest.raises(ValueError, match="model_input_names is not a list"):
        write_token_type_ids(directory)
    assert json.loads(path.read_text()) == {"model_input_names": "input_ids"}  # left as it was
    path.write_text("[1]")
    with pytest.raises(ValueError, match="not a JSON object"):
        write_token_type_ids(directory)
