"""Corpus batching of `act stats` (act.analysis.batching): length buckets, the mapping back to file order, and
per-token results identical to file-order batching; plus the python blocks of the analysis section
(docs/analyses.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from act.analysis.batching import batch_encode, batch_order, run_batches
from act.commands.cli import main
from act.commands.inspect import demo_model_dir

DEMO = demo_model_dir()


def random_sequences(seed=0, count=41):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(5, 100, size=int(rng.integers(1, 30)))) for _ in range(count)]


@pytest.mark.parametrize("order", ["length", "file"])
@pytest.mark.parametrize("batch_size, max_tokens", [(1, None), (7, None), (64, None), (50, 60)])
def test_batches_cover_every_sequence_once(order, batch_size, max_tokens):
    sequences = random_sequences()
    seen = []
    for batch in batch_encode(sequences, batch_size, order=order, max_tokens=max_tokens, pad_id=0):
        rows, width = batch.input_ids.shape
        assert 1 <= rows <= batch_size and width == batch.lengths.max()
        assert max_tokens is None or rows == 1 or rows * width <= max_tokens
        for row, index in enumerate(batch.indices):
            length = len(sequences[index])
            assert batch.lengths[row] == length
            assert batch.input_ids[row, :length].tolist() == sequences[index]
            assert (batch.input_ids[row, length:] == 0).all()
            assert batch.attention_mask[row].tolist() == [1] * length + [0] * (width - length)
        assert (batch.token_type_ids == 0).all()
        assert [len(row) for row in batch.unpad(batch.input_ids)] == batch.lengths.tolist()
        seen += batch.indices.tolist()
    assert sorted(seen) == list(range(len(sequences)))
    if order == "file":
        assert seen == list(range(len(sequences)))
    else:
        lengths = [len(sequences[i]) for i in seen]
        assert lengths == sorted(lengths, reverse=True)


def test_length_order_pads_less():
    sequences = random_sequences(1, 200)

    def padding(order):
        return sum(int((b.attention_mask == 0).sum()) for b in batch_encode(sequences, 16, order=order))

    assert padding("length") < padding("file") / 4
    # with a token budget, short sequences come in bigger batches
    sizes = [len(b) for b in batch_order([len(s) for s in sequences], 64, "length", max_tokens=256)]
    assert sizes[0] < sizes[-1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        list(batch_encode([[1], [], [2]]))
    with pytest.raises(ValueError, match="batch_size"):
        list(batch_encode([[1]], 0))
    with pytest.raises(ValueError, match="order"):
        list(batch_encode([[1]], order="random"))
    with pytest.raises(ValueError, match="max_tokens"):
        list(batch_encode([[1]], max_tokens=0))


def test_length_buckets_give_the_same_updates_per_token_as_file_order():
    pytest.importorskip("torch")
    pytest.importorskip("sentencepiece")
    from act.commands.inspect import Runner, load_tokenizer

    tokenizer = load_tokenizer(DEMO)
    runner = Runner(DEMO, "pytorch")
    text = [line for line in (DEMO / "heldout.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    sequences = tokenizer(text[:80], truncation=True, max_length=runner.max_length)["input_ids"]
    by_file = run_batches(runner, sequences, 32, order="file")
    for order, batch_size, max_tokens in (("length", 32, None), ("length", 100, 1024)):
        bucketed = run_batches(runner, sequences, batch_size, order=order, max_tokens=max_tokens)
        assert len(bucketed) == len(sequences)
        for ids, a, b in zip(sequences, by_file, bucketed):
            assert a["updates"].shape == (len(ids),)
            np.testing.assert_array_equal(b["updates"], a["updates"])  # halting counts: exactly
            np.testing.assert_allclose(b["remainders"], a["remainders"], atol=1e-5)


def test_cli_order_does_not_change_the_report(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sentencepiece")
    text = [line for line in (DEMO / "heldout.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(text[:60]), encoding="utf-8")
    reports = []
    for order in ("file", "length"):
        out = tmp_path / f"{order}.json"
        assert main(["stats", str(corpus), "--order", order, "--no-progress", "--json", str(out)]) == 0
        reports.append(json.loads(out.read_text()))
    assert reports[0] == reports[1]


def test_readme_analysis_section_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("sentencepiece")
    from test_readme import python_blocks, section

    blocks = python_blocks(section("analysis"))
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs (section analysis)", "exec"), namespace)
    assert len(namespace["per_sequence"]) == len(namespace["sequences"])
