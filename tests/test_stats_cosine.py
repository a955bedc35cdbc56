"""`act stats --categories research` and `act stats --cosine` on the embedded demo model (offline)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from act.analysis.categories import (CLS, MASK, ORIGINAL, OTHER_SPECIAL, RANDOM, RESEARCH_CATEGORIES, SEP, UNMASKED,
                                     selections)
from act.analysis.cosine import aggregate, consecutive_cosines
from act.commands.cli import main
from act.commands.inspect import demo_model_dir

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
def lines():
    text = (DEMO / "heldout.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in text if line.strip()][:24]


# --------------------------------------------------------------------------------------------- the categories
def test_research_categories_by_hand():
    # ids: [CLS]=2 [SEP]=3 [MASK]=4; tokens: CLS, unmasked, mask, random (new id), random that drew the original,
    # original (kept), SEP, another special token
    kinds = np.array([CLS, UNMASKED, MASK, RANDOM, RANDOM, ORIGINAL, SEP, OTHER_SPECIAL])
    originals = np.array([2, 10, 11, 12, 13, 14, 3, 0])
    inputs = np.array([2, 10, 4, 99, 13, 14, 3, 0])
    research = selections("research", kinds, inputs, originals, cls_id=2, sep_id=3, mask_id=4)
    assert list(research) == list(RESEARCH_CATEGORIES)
    expected = {"all": [0, 1, 2, 3, 4, 5, 6, 7], "no_mask": [0, 1, 3, 4, 5, 6, 7], "mask_mask": [2],
                "mask_random": [2, 3], "mask_original": [4, 5], "cls": [0], "sep": [6]}
    assert {name: np.flatnonzero(mask).tolist() for name, mask in research.items()} == expected
    ours = selections("ours", kinds, inputs, originals, cls_id=2, sep_id=3, mask_id=4)
    assert {name: np.flatnonzero(mask).tolist() for name, mask in ours.items()} == {
        "all": list(range(8)), "unmasked": [1], "masked": [2, 3, 4, 5], "mask": [2], "random": [3, 4],
        "original": [5], "cls": [0], "sep": [6]}
    with pytest.raises(ValueError, match="categories"):
        selections("paper", kinds, inputs, originals, 2, 3, 4)


def test_research_categories_relate_to_ours(tmp_path, capsys, lines):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    ours_json, research_json = tmp_path / "ours.json", tmp_path / "research.json"
    common = ["stats", str(corpus), "--mask-rate", "0.3", "--seed", "2", "--no-progress"]
    assert main([*common, "--json", str(ours_json)]) == 0
    assert main([*common, "--categories", "research", "--json", str(research_json)]) == 0
    stdout = capsys.readouterr().out
    assert "n_updates_global/no_mask (All unmasked tokens)" in stdout
    ours = json.loads(ours_json.read_text())
    research = json.loads(research_json.read_text())
    assert "category_set" not in ours and "cosine" not in ours
    assert research["category_set"] == "research" and list(research["categories"]) == list(RESEARCH_CATEGORIES)
    count = {name: row["count"] for name, row in ours["categories"].items()}
    rcount = {name: row["count"] for name, row in research["categories"].items()}
    assert rcount["all"] == count["all"] and rcount["cls"] == count["cls"] and rcount["sep"] == count["sep"]
    assert rcount["mask_mask"] == count["mask"] > 0
    assert rcount["no_mask"] == count["all"] - count["mask"]
    # a random replacement counts as [MASK/random] unless it drew the original token
    assert rcount["mask_random"] + rcount["mask_original"] == count["masked"]
    assert count["mask"] <= rcount["mask_random"] <= count["mask"] + count["random"]
    assert research["categories"]["mask_mask"] == ours["categories"]["mask"]
    assert research["updates_histogram"] == ours["updates_histogram"]


# ------------------------------------------------------------------------------------------------------ cosine
def test_cosines_by_hand():
    states = [np.array([[[1.0, 0.0], [0.0, 2.0]]]), np.array([[[1.0, 1.0], [0.0, 3.0]]]),
              np.array([[[0.0, 1.0], [0.0, 3.0]]])]
    updates = np.array([[2.0, 1.0]])
    cosines = consecutive_cosines(states, updates, cap=3)
    np.testing.assert_allclose(cosines[0, 0, :2], [1 / np.sqrt(2), 1 / np.sqrt(2)])
    assert cosines[0, 1, 0] == pytest.approx(1.0) and np.isnan(cosines[0, 1, 1]) and np.isnan(cosines[0, :, 2]).all()
    # a fixed-length history (later entries repeat the final state) gives the same cosines
    np.testing.assert_array_equal(consecutive_cosines(states + [states[-1]], updates, cap=3), cosines)
    table = aggregate(cosines[0], {"all": [True, True], "first": [True, False]}, cap=3)
    assert table["all"]["count"] == [2, 1, 0] and table["all"]["mean_cosine"][2] is None
    assert table["first"]["mean_cosine"][1] == pytest.approx(1 / np.sqrt(2))
    with pytest.raises(ValueError, match="hidden_states has 2 entries"):
        consecutive_cosines(states[:2], updates, cap=3)


def direct_cosines(model, tokenizer, texts, cap):
    """Per iteration: the cosines of the running tokens of each text, run alone through the PyTorch model."""
    per_iteration = [[] for _ in range(cap)]
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=64)["input_ids"]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        for i in range(1, int(out.updates.max()) + 1):
            running = out.updates[0] >= i
            before, after = out.hidden_states[i - 1][0], out.hidden_states[i][0]
            cosine = torch.nn.functional.cosine_similarity(before, after, dim=-1)
            per_iteration[i - 1] += cosine[running].double().tolist()
    return per_iteration


class FixedLengthRunner:
    """A runner whose hidden states always have cap + 1 entries, later ones repeating the final state."""

    def __init__(self, runner):
        self.inner, self.config, self.max_length = runner, runner.config, runner.max_length
        self.directory, self.framework = runner.directory, runner.framework

    def __call__(self, input_ids, attention_mask, token_type_ids, hidden_states=False):
        out = self.inner(input_ids, attention_mask, token_type_ids, hidden_states=hidden_states)
        if hidden_states:
            states = out["hidden_states"]
            out["hidden_states"] = states + [states[-1]] * (self.config.num_hidden_layers + 1 - len(states))
        return out


def test_cosine_report_agrees_with_a_direct_run(runner, tokenizer, lines):
    from act.commands.stats import compute_stats

    cap = runner.config.num_hidden_layers
    report = compute_stats(lines, runner, tokenizer, mask_rate=0.0, batch_size=5, progress=False, cosine=True)
    cosine = report["cosine"]
    assert cosine["iterations"] == list(range(1, cap + 1))
    expected = direct_cosines(runner.model, tokenizer, lines, cap)
    row = cosine["categories"]["all"]
    assert row["count"] == [len(values) for values in expected]
    for mean, values in zip(row["mean_cosine"], expected):
        assert (mean is None) if not values else mean == pytest.approx(np.mean(values), abs=1e-6)
    # counts: the tokens with at least i updates
    assert row["count"][0] == report["tokens"] and row["count"][1] == report["tokens"] - report["updates_histogram"]["1"]
    fixed = compute_stats(lines, FixedLengthRunner(runner), tokenizer, mask_rate=0.0, batch_size=5, progress=False,
                          cosine=True)
    assert fixed["cosine"] == cosine


@pytest.mark.skipif(not HAS_KERAS, reason="Keras path needs tensorflow + keras")
def test_cosine_pytorch_equals_keras(runner, tokenizer, lines):
    from act.commands.inspect import Runner
    from act.commands.stats import compute_stats

    torch_report = compute_stats(lines[:12], runner, tokenizer, seed=1, progress=False, cosine=True,
                                 categories="research")
    keras_report = compute_stats(lines[:12], Runner(DEMO, "keras"), tokenizer, seed=1, progress=False, cosine=True,
                                 categories="research")
    assert keras_report["categories"] == torch_report["categories"]
    for name, row in torch_report["cosine"]["categories"].items():
        other = keras_report["cosine"]["categories"][name]
        assert other["count"] == row["count"]
        for a, b in zip(other["mean_cosine"], row["mean_cosine"]):
            assert (a is None and b is None) or a == pytest.approx(b, abs=1e-5)


def test_cli_cosine_text_json_png(tmp_path, capsys, lines):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines[:10]), encoding="utf-8")
    out_json, png = tmp_path / "cos.json", tmp_path / "cos.png"
    assert main(["stats", str(corpus), "--cosine", "--no-progress", "--json", str(out_json), "--png", str(png)]) == 0
    stdout = capsys.readouterr().out
    assert "mean over the tokens still running" in stdout and "tokens still running at iteration i" in stdout
    report = json.loads(out_json.read_text())
    assert set(report["cosine"]["categories"]) == set(report["categories"])
    for row in report["cosine"]["categories"].values():
        assert all(m is None or -1.0 <= m <= 1.0 for m in row["mean_cosine"])
        assert all(a >= b for a, b in zip(row["count"], row["count"][1:]))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
