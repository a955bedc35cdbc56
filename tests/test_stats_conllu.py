"""`act stats --conllu`: reading CoNLL-U, aligning words with pieces by word ids, the tag tables, their bootstrap
intervals and outputs, on the embedded demo model (offline)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import stat

import numpy as np
import pytest

from act.analysis.conllu import align, parse_conllu, read_conllu, word_values
from act.analysis.summary import bootstrap_interval, summarize
from act.commands.cli import main
from act.commands.inspect import demo_model_dir
from stats_data import SAMPLE, WORDS

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

DEMO = demo_model_dir()
HAS_KERAS = importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("keras") is not None


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AlbertTokenizer

    return AlbertTokenizer.from_pretrained(str(DEMO))


@pytest.fixture(scope="module")
def runner():
    from act.commands.inspect import Runner

    return Runner(DEMO, "pytorch")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("conllu") / "sample.conllu"
    path.write_text(SAMPLE, encoding="utf-8")
    return path


def expected_alignment(tokenizer, forms, max_length):
    """Input ids and piece positions per word, from tokenizing each FORM on its own (not from word_ids): `[CLS]`,
    the pieces of the words in order, `[SEP]`; a word that does not fit whole in max_length - 2 is cut."""
    ids, positions, cut = [tokenizer.cls_token_id], [], []
    for index, form in enumerate(forms):
        pieces = tokenizer(form, add_special_tokens=False)["input_ids"]
        if cut or len(ids) - 1 + len(pieces) > max_length - 2:
            positions.append([])
            cut.append(index)
            ids += pieces[:max(0, max_length - 1 - len(ids))]
            continue
        positions.append(list(range(len(ids), len(ids) + len(pieces))))
        ids += pieces
    return ids[:max_length - 1] + [tokenizer.sep_token_id], positions, cut


# ---------------------------------------------------------------------------------------------------- reading
def test_parse_keeps_the_integer_id_words_only(sample):
    sentences = read_conllu(sample)
    assert [[(w.form, w.upos, w.deprel) for w in s.words] for s in sentences] == WORDS
    assert [s.sent_id for s in sentences] == ["s1", "s2", "s3", "s4-long"]
    assert sentences[0].words[1].line == SAMPLE.splitlines().index("2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_") + 1


@pytest.mark.parametrize("line, message", [
    ("1\tword\tword\tNOUN\t_\t_\t0\troot\t_", "expected 10 tab-separated fields"),
    ("1 word word NOUN _ _ 0 root _ _", "expected 10 tab-separated fields"),
    ("x\tword\tword\tNOUN\t_\t_\t0\troot\t_\t_", "bad ID 'x'"),
    ("3\tword\tword\tNOUN\t_\t_\t0\troot\t_\t_", "word ID 3 where 2 was expected"),
    ("3-2\tword\t_\t_\t_\t_\t_\t_\t_\t_", "multiword token range 3-2"),
    ("2\tword\tword\t\t_\t_\t0\troot\t_\t_", "empty UPOS"),
])
def test_malformed_line_names_its_number(line, message):
    text = ["# sent_id = a", "1\tin\tin\tADP\t_\t_\t2\tcase\t_\t_", line, ""]
    with pytest.raises(ValueError) as error:
        parse_conllu(text, "bad.conllu")
    assert f"bad.conllu, line 3: {message}" in str(error.value)


def test_cli_errors(tmp_path, capsys, sample):
    missing = tmp_path / "missing.conllu"
    assert main(["stats", "--conllu", str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err
    bad = tmp_path / "bad.conllu"
    bad.write_text("# c\n1\tin\tin\tADP\t_\t_\t0\troot\t_\t_\n\n1\tthe\tthe\tDET\t_\t_\t0\n", encoding="utf-8")
    assert main(["stats", "--conllu", str(bad), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}, line 4: expected 10 tab-separated fields" in err
    empty = tmp_path / "empty.conllu"
    empty.write_text("# only a comment\n\n", encoding="utf-8")
    assert main(["stats", "--conllu", str(empty)]) == 1
    assert "no sentence" in capsys.readouterr().err
    for extra in (["--cosine"], ["--mask-rate", "0.1"], ["--categories", "research"], [str(sample)]):
        assert main(["stats", "--conllu", str(sample), *extra]) == 1
        assert "error" in capsys.readouterr().err
    assert main(["stats", str(sample), "--pieces", "first"]) == 1
    assert "--pieces" in capsys.readouterr().err
    assert main(["stats"]) == 1
    assert "--conllu" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------------- alignment
def test_alignment_by_word_ids_matches_the_pieces_of_each_word(sample, tokenizer):
    sentences = read_conllu(sample)
    aligned = align(sentences, tokenizer, max_length=64)
    split = 0
    for sentence, item in zip(sentences, aligned):
        forms = [word.form for word in sentence.words]
        ids, positions, cut = expected_alignment(tokenizer, forms, 64)
        assert item.input_ids == ids
        assert item.pieces == positions
        assert item.cut == cut and item.truncated == bool(cut) and item.empty == []
        split += sum(len(p) > 1 for p in positions)
    assert split >= 3, "the sample must hold words split into several pieces"
    assert [item.truncated for item in aligned] == [False, False, False, True]
    assert len(aligned[3].input_ids) == 64 and aligned[3].cut


def test_word_without_pieces_is_counted_not_measured(tokenizer):
    sentence = parse_conllu(["1\ta\ta\tDET\t_\t_\t2\tdet\t_\t_", "2\t\u200b\t_\tX\t_\t_\t0\troot\t_\t_",
                             "3\tpriest\tpriest\tNOUN\t_\t_\t2\tnsubj\t_\t_"])
    (item,) = align(sentence, tokenizer, 64)
    assert item.empty == [1] and item.pieces[1] == []
    assert word_values(np.arange(len(item.input_ids)), item.pieces) [1] is None


def test_word_values_mean_or_first_piece():
    updates = np.array([1.0, 2.0, 4.0, 9.0, 3.0, 5.0])
    pieces = [[1, 2, 3], [], [4], [5]]
    assert word_values(updates, pieces, "mean") == [5.0, None, 3.0, 5.0]
    assert word_values(updates, pieces, "first") == [2.0, None, 3.0, 5.0]
    with pytest.raises(ValueError, match="pieces"):
        word_values(updates, pieces, "last")


# --------------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    rng = np.random.default_rng(5)
    values = rng.integers(1, 13, size=400).astype(float) / rng.integers(1, 4, size=400)
    row = summarize(values, 2000, seed=3, key="upos:NOUN")
    assert row["count"] == 400 and row["mean_updates"] == pytest.approx(values.mean(), abs=1e-12)
    assert row["std_updates"] == pytest.approx(values.std(), abs=1e-12)
    low, high = row["ci95"]
    assert low < row["mean_updates"] < high
    # a bootstrap of the mean is close to the normal interval for n = 400
    half = 1.96 * values.std() / np.sqrt(values.size)
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert summarize(values, 2000, seed=3, key="upos:NOUN") == row
    assert bootstrap_interval(values, 2000, seed=4, key="upos:NOUN") != tuple(row["ci95"])
    assert summarize([2.0] * 7, 100)["ci95"] == [2.0, 2.0]
    assert summarize([])["count"] == 0
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval(values, 0)


# ------------------------------------------------------------------------------------------------- end to end
def direct_tables(model, tokenizer, sentences, pieces="mean"):
    """{tag: [word values]} from running each sentence alone through the PyTorch model, pieces from
    `expected_alignment`."""
    tables = {"upos": {}, "deprel": {}}
    for sentence in sentences:
        ids, positions, _ = expected_alignment(tokenizer, [w.form for w in sentence.words], 64)
        with torch.no_grad():
            updates = model(input_ids=torch.tensor([ids])).updates[0].numpy().astype(float)
        for word, where in zip(sentence.words, positions):
            if where:
                value = updates[where].mean() if pieces == "mean" else updates[where[0]]
                tables["upos"].setdefault(word.upos, []).append(value)
                tables["deprel"].setdefault(word.deprel, []).append(value)
    return tables


@pytest.mark.parametrize("pieces", ["mean", "first"])
def test_tables_agree_with_a_direct_run(sample, tokenizer, runner, pieces):
    from act.commands.stats import compute_conllu_stats

    sentences = read_conllu(sample)
    report = compute_conllu_stats(sentences, runner, tokenizer, pieces, 200, seed=1, batch_size=3, progress=False)
    expected = direct_tables(runner.model, tokenizer, sentences, pieces)
    for key in ("upos", "deprel"):
        assert set(report[key]) == set(expected[key])
        for tag, row in report[key].items():
            values = np.asarray(expected[key][tag])
            assert row["count"] == values.size
            assert row["mean_updates"] == pytest.approx(values.mean(), abs=1e-12)
            assert row["ci95"][0] <= row["mean_updates"] <= row["ci95"][1]
        means = [row["mean_updates"] for row in report[key].values()]
        assert means == sorted(means, reverse=True)
    long_pieces = [len(tokenizer(w.form, add_special_tokens=False)["input_ids"]) for w in sentences[3].words]
    kept = int(np.searchsorted(np.cumsum(long_pieces), 62, side="right"))
    assert report["truncated"] == {"sentences": 1, "words": len(long_pieces) - kept}
    assert report["measured_words"] == report["words"] - report["truncated"]["words"] == \
        sum(len(s) for s in WORDS) - (len(long_pieces) - kept)


@pytest.mark.skipif(not HAS_KERAS, reason="Keras path needs tensorflow + keras")
def test_pytorch_and_keras_give_the_same_tables(sample, tokenizer, runner):
    from act.commands.inspect import Runner
    from act.commands.stats import compute_conllu_stats

    sentences = read_conllu(sample)
    torch_report = compute_conllu_stats(sentences, runner, tokenizer, resamples=100, progress=False)
    keras_report = compute_conllu_stats(sentences, Runner(DEMO, "keras"), tokenizer, resamples=100, progress=False)
    # updates are exact counts, so the word values, means and intervals are the same numbers
    assert keras_report["upos"] == torch_report["upos"]
    assert keras_report["deprel"] == torch_report["deprel"]


def test_cli_json_csv_png(tmp_path, capsys, sample):
    out_json, out_csv, png = tmp_path / "tags.json", tmp_path / "tags.csv", tmp_path / "tags.png"
    args = ["stats", "--conllu", str(sample), "--no-progress", "--bootstrap", "300", "--seed", "7",
            "--json", str(out_json), "--csv", str(out_csv), "--png", str(png)]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "UPOS" in stdout and "DEPREL" in stdout and "truncated" in stdout
    report = json.loads(out_json.read_text())
    assert {"upos", "deprel"} <= set(report)
    for key in ("upos", "deprel"):
        for row in report[key].values():
            assert set(row) == {"count", "mean_updates", "std_updates", "ci95"}
            assert row["ci95"][0] <= row["mean_updates"] <= row["ci95"][1]
    assert set(report["upos"]) == {upos for sentence in WORDS for _, upos, _ in sentence}
    with open(out_csv, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["table"], r["tag"]) for r in table] == [(k, t) for k in ("upos", "deprel") for t in report[k]]
    for r in table:
        row = report[r["table"]][r["tag"]]
        assert int(r["count"]) == row["count"]
        assert float(r["ci95_low"]) == pytest.approx(row["ci95"][0], abs=1e-6)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    umask = os.umask(0)
    os.umask(umask)
    for written in (out_json, out_csv, png):  # the usual permissions, not the private ones of a temporary file
        assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask, written
    # the same seed gives the same report, and so does file-order batching
    again = tmp_path / "again.json"
    assert main([*args[:8], "--order", "file", "--batch-size", "2", "--json", str(again)]) == 0
    assert json.loads(again.read_text())["upos"] == report["upos"]
