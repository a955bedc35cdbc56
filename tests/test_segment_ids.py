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
    import act.commands.inspect
    import act.commands.stats
    import act.tokenization

    assert act.commands.inspect.load_tokenizer is act.tokenization.load_tokenizer
    assert act.commands.stats.load_tokenizer is act.tokenization.load_tokenizer
    from act.commands.inspect import Runner, inspect_sentence

    directory = write_model(tmp_path / "model")
    settings = json.loads((directory / "tokenizer_config.json").read_text())
    settings.pop("model_input_names")
    (directory / "tokenizer_config.json").write_text(json.dumps(settings))
    tokenizer = act.commands.inspect.load_tokenizer(directory)
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


# -------------------------------------------------------------------------------------------- act finetune
def test_finetune_pair_encoding_is_run_classifiers(research):
    """Pairs that fit and pairs cut to 12 positions (the longer text loses its last tokens, B on a tie, which
    transformers' longest_first truncation does differently), with the tokenizer of an old directory."""
    from act.tokenization import load_tokenizer
    from act.training.finetune import encode_pairs

    tokenizer = load_tokenizer(DEMO)
    for max_length in (64, 12, 9):
        encoded = encode_pairs(tokenizer, [a for a, _ in PAIRS], [b for _, b in PAIRS], max_length)
        for row, (a, b) in enumerate(PAIRS):
            ids, segments = research(a, b, max_length)
            assert encoded["input_ids"][row] == ids and encoded["token_type_ids"][row] == segments
            assert encoded["attention_mask"][row] == [1] * len(ids)
        if max_length == 64:  # nothing cut: the tokenizer's own pair encoding is the same
            assert encoded["input_ids"] == tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS])["input_ids"]
    with pytest.raises(ValueError, match="at least 5 positions"):
        encode_pairs(tokenizer, ["a"], ["b"], 4)


def pair_rows(count: int, offset: int = 0) -> list[dict]:
    from training_helpers import heldout_lines

    lines = heldout_lines(offset + count + 1)[offset:]
    return [{"first": a, "second": b, "label": "same" if len(a) % 2 == len(b) % 2 else "other"}
            for a, b in zip(lines, lines[1:])]


def test_finetune_passes_segment_ids_to_forward(tmp_path, monkeypatch, research):
    """`act finetune --text-pair-column`: every batch that reaches the classifier's forward (training and
    evaluation) holds, row by row, the research pipeline's ids and segment ids of a pair of TRAIN or DEV; the model
    directory carries an old tokenizer config (no model_input_names)."""
    import torch

    from act.commands.cli import main
    from act.training import finetune
    from training_helpers import write_table

    model_dir = write_model(tmp_path / "model")
    settings = json.loads((model_dir / "tokenizer_config.json").read_text())
    settings.pop("model_input_names")
    (model_dir / "tokenizer_config.json").write_text(json.dumps(settings))
    train_rows, dev_rows = pair_rows(12), pair_rows(6, offset=20)
    train = write_table(tmp_path / "train.jsonl", train_rows)
    dev = write_table(tmp_path / "dev.jsonl", dev_rows)
    seen = []

    def hook(module, args, kwargs):
        mask = kwargs["attention_mask"]
        assert kwargs.get("token_type_ids") is not None, "no token_type_ids reached forward"
        for row in range(mask.shape[0]):
            length = int(mask[row].sum())
            assert mask[row, :length].all() and not mask[row, length:].any()  # right padding
            assert not kwargs["token_type_ids"][row, length:].any()
            seen.append((tuple(kwargs["input_ids"][row, :length].tolist()),
                         tuple(kwargs["token_type_ids"][row, :length].tolist())))

    original = finetune.build_model

    def build_model(*args, **kwargs):
        model = original(*args, **kwargs)
        model.register_forward_pre_hook(hook, with_kwargs=True)
        return model

    monkeypatch.setattr(finetune, "build_model", build_model)
    out = tmp_path / "out"
    assert main(["finetune", str(train), str(dev), str(out), "--model", str(model_dir), "--text-column", "first",
                 "--text-pair-column", "second", "--max_seq_length", "20", "--num_train_epochs", "1",
                 "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--report_to", "none",
                 "--use_cpu", "--disable_tqdm", "true", "--save_strategy", "no"]) == 0
    expected_train = [tuple(map(tuple, research(r["first"], r["second"], 20))) for r in train_rows]
    expected_dev = [tuple(map(tuple, research(r["first"], r["second"], 20))) for r in dev_rows]
    assert any(len(ids) == 20 for ids, _ in expected_train)  # some pairs were cut
    assert all(1 in segments for _, segments in expected_train)
    assert sorted(seen[:len(expected_train)]) == sorted(expected_train)  # the training epoch
    assert sorted(seen[len(expected_train):]) == sorted(expected_dev * 2)  # the epoch's evaluation + the final one
    # OUT's tokenizer gives segment ids through plain transformers
    from transformers import AutoTokenizer

    encoding = AutoTokenizer.from_pretrained(str(out))(*PAIRS[0])
    assert (encoding["input_ids"], encoding["token_type_ids"]) == research(*PAIRS[0])
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 32


# --------------------------------------------------------------------------------------- pipelines
def test_text_classification_pipeline_with_text_pair(tmp_path, research):
    import torch
    from transformers import pipeline

    from act import AlbertActConfig, AlbertActForSequenceClassification
    from training_helpers import TINY_CONFIG, write_tokenizer

    torch.manual_seed(0)
    config = AlbertActConfig(**{k: v for k, v in TINY_CONFIG.items() if k != "model_type"}, num_labels=3)
    model = AlbertActForSequenceClassification(config).eval()
    with torch.no_grad():  # a segment embedding that matters, a head far from uniform
        model.albert.embeddings.token_type_embeddings.weight[1].normal_(0.0, 1.0)
        model.classifier.weight.normal_(0.0, 1.0)
    directory = tmp_path / "classifier"
    model.save_pretrained(str(directory))
    write_tokenizer(directory)
    classifier = pipeline("text-classification", model=str(directory), top_k=None)
    for a, b in PAIRS:
        scores = {entry["label"]: entry["score"] for entry in classifier({"text": a, "text_pair": b})}
        ids, segments = research(a, b)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([segments])).logits
            without = model(input_ids=torch.tensor([ids]), token_type_ids=torch.zeros(1, len(ids), dtype=torch.long))
        probabilities = torch.softmax(logits[0].double(), -1).tolist()
        expected = {config.id2label[i]: p for i, p in enumerate(probabilities)}
        assert scores == pytest.approx(expected, abs=1e-5)
        wrong = torch.softmax(without.logits[0].double(), -1).tolist()
        assert max(abs(p - q) for p, q in zip(probabilities, wrong)) > 1e-3  # segment ids change the answer


def test_the_model_cards_usage_gives_segment_ids_for_an_old_directory(tmp_path):
    """The card's code (act.model_card) loads the tokenizer through load_tokenizer: the multiple-choice example's
    pairs get their segment ids also from a directory with an old tokenizer config."""
    import torch

    import act.pt as pt
    from act import AlbertActConfig
    from act.model_card import write_model_card
    from test_readme import python_blocks
    from training_helpers import TINY_CONFIG

    config = dict(TINY_CONFIG, architectures=["AlbertActForMultipleChoice"])
    torch.manual_seed(0)
    directory = tmp_path / "model"
    pt.AlbertActForMultipleChoice(AlbertActConfig(**{k: v for k, v in config.items() if k != "model_type"})) \
        .save_pretrained(directory)
    old = old_directory(tmp_path)
    for name in TOKENIZER_FILES:
        shutil.copyfile(old / name, directory / name)
    (directory / "README.md").unlink(missing_ok=True)
    write_model_card(directory, config, model_id=str(directory))
    namespace = {}
    exec(compile(python_blocks((directory / "README.md").read_text())[0], "README.md", "exec"), namespace)
    segments = namespace["inputs"]["token_type_ids"]
    assert segments.shape == namespace["inputs"]["input_ids"].shape and bool((segments == 1).any())
