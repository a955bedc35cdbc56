"""`act inspect` and `act stats` on the embedded demo model (offline), and the demo model itself."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil

import numpy as np
import pytest

from act.commands.cli import main
from act.commands.inspect import EXAMPLE, demo_model_dir

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")
pytest.importorskip("matplotlib")

DEMO = demo_model_dir()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\d+)\s+([0-9.]+)\s*#*$")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AlbertTokenizer

    return AlbertTokenizer.from_pretrained(str(DEMO))


@pytest.fixture(scope="module")
def model():
    from act import AlbertActModel

    return AlbertActModel.from_pretrained(str(DEMO)).eval()


@pytest.fixture(scope="module")
def lines():
    """A few held-out verses shipped with the demo model (never seen in pre-training)."""
    text = (DEMO / "heldout.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in text if line.strip()][:40]


def direct_updates(model, tokenizer, texts):
    """Updates of each text, run one at a time (no padding), straight through the PyTorch model."""
    result = []
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=model.config.max_position_embeddings)["input_ids"]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]))
        result.append(out.updates[0].numpy())
    return result


def table_rows(stdout: str):
    return [ROW.match(line).groups() for line in stdout.splitlines() if ROW.match(line)]


# ------------------------------------------------------------------------------------------------ demo model
def test_demo_model_is_shipped_small_and_loads(model, tokenizer):
    files = {path.name for path in DEMO.iterdir()}
    assert {"config.json", "model.safetensors", "spiece.model"} <= files
    assert sum(path.stat().st_size for path in DEMO.iterdir() if path.is_file()) < 8 * 2**20
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")}
    assert ids == {"<pad>": 0, "<unk>": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert model.config.model_type == "albert_act"


def test_demo_model_updates_vary_per_token(model, tokenizer, lines):
    updates = np.concatenate(direct_updates(model, tokenizer, lines))
    assert updates.min() >= 1 and updates.max() <= model.config.num_hidden_layers
    # the demo model (README, "The demo model") gives every token one or two updates
    assert len(np.unique(updates)) >= 2, f"the demo model should spread its updates, got {np.unique(updates)}"


# --------------------------------------------------------------------------------------------------- inspect
def test_inspect_prints_one_row_per_token_and_writes_png(tmp_path, capsys, model, tokenizer):
    png = tmp_path / "demo.png"
    assert main(["inspect", EXAMPLE, "--png", str(png)]) == 0
    stdout = capsys.readouterr().out
    rows = table_rows(stdout)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(EXAMPLE)["input_ids"])
    assert [row[1] for row in rows] == tokens
    assert [int(row[0]) for row in rows] == list(range(len(tokens)))
    expected = direct_updates(model, tokenizer, [EXAMPLE])[0]
    assert [int(row[2]) for row in rows] == [int(u) for u in expected]
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert png.stat().st_size > 5000


def test_inspect_joins_several_words(capsys, tokenizer):
    assert main(["inspect", "and", "the", "light", "shined"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == len(tokenizer("and the light shined")["input_ids"])


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("keras") is None,
                    reason="Keras path needs tensorflow + keras")
def test_inspect_keras_matches_pytorch(tmp_path, capsys):
    assert main(["inspect", EXAMPLE, "--framework", "pytorch"]) == 0
    torch_rows = table_rows(capsys.readouterr().out)
    png = tmp_path / "keras.png"
    assert main(["inspect", EXAMPLE, "--framework", "keras", "--png", str(png)]) == 0
    keras_rows = table_rows(capsys.readouterr().out)
    assert [row[:3] for row in keras_rows] == [row[:3] for row in torch_rows]  # identical update counts
    np.testing.assert_allclose([float(r[3]) for r in keras_rows], [float(r[3]) for r in torch_rows], atol=2e-4)
    assert png.read_bytes()[:8] == PNG_SIGNATURE


def test_inspect_missing_model_dir(tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    assert main(["inspect", EXAMPLE, "--model", str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err


def test_inspect_missing_tokenizer(tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(DEMO / name, bare / name)
    assert main(["inspect", EXAMPLE, "--model", str(bare)]) == 1
    err = capsys.readouterr().err
    assert "tokenizer" in err and str(bare) in err


def test_inspect_explicit_model_dir(tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(DEMO, copy)
    assert main(["inspect", EXAMPLE, "--model", str(copy)]) == 0
    assert str(copy) in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------- stats
def test_stats_json_csv_and_counts(tmp_path, capsys, lines, model, tokenizer):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n\n", encoding="utf-8")  # a blank line is skipped
    out_json, out_csv = tmp_path / "stats.json", tmp_path / "stats.csv"
    args = ["stats", str(corpus), "--mask-rate", "0.15", "--seed", "3", "--batch-size", "16", "--no-progress",
            "--json", str(out_json), "--csv", str(out_csv)]
    assert main(args) == 0
    assert "mean updates" in capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert {"model", "framework", "sequences", "tokens", "mask_rate", "seed", "iteration_cap", "categories",
            "updates_histogram"} <= set(report)
    categories = report["categories"]
    assert list(categories) == ["all", "unmasked", "masked", "mask", "random", "original", "cls", "sep"]
    for entry in categories.values():
        assert set(entry) == {"count", "mean_updates", "std_updates"}
    count = {name: entry["count"] for name, entry in categories.items()}
    n_tokens = sum(len(tokenizer(line, truncation=True, max_length=model.config.max_position_embeddings)["input_ids"])
                   for line in lines)
    assert report["sequences"] == len(lines) and count["cls"] == len(lines) and count["sep"] == len(lines)
    assert count["all"] == report["tokens"] == n_tokens
    assert count["masked"] == count["mask"] + count["random"] + count["original"]
    assert count["unmasked"] + count["masked"] + count["cls"] + count["sep"] == count["all"]
    assert 0.10 < count["masked"] / (count["all"] - 2 * len(lines)) < 0.20
    assert count["mask"] > count["random"] and count["mask"] > count["original"]
    assert sum(report["updates_histogram"].values()) == count["all"]
    with open(out_csv, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["tokens"] for row in table] == list(categories)
    assert [int(row["count"]) for row in table] == list(count.values())

    # the same seed gives the same report; batching does not change it
    again = tmp_path / "again.json"
    assert main(["stats", str(corpus), "--seed", "3", "--batch-size", "5", "--no-progress", "--json", str(again)]) == 0
    assert json.loads(again.read_text())["categories"] == categories


def test_stats_without_masking_agree_with_a_direct_run(tmp_path, capsys, lines, model, tokenizer):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    out_json = tmp_path / "stats.json"
    assert main(["stats", str(corpus), "--mask-rate", "0", "--no-progress", "--json", str(out_json)]) == 0
    categories = json.loads(out_json.read_text())["categories"]
    direct = direct_updates(model, tokenizer, lines)
    everything = np.concatenate(direct)
    assert categories["all"]["count"] == everything.size
    assert categories["all"]["mean_updates"] == pytest.approx(everything.mean(), abs=1e-9)
    assert categories["cls"]["mean_updates"] == pytest.approx(np.mean([u[0] for u in direct]), abs=1e-9)
    assert categories["sep"]["mean_updates"] == pytest.approx(np.mean([u[-1] for u in direct]), abs=1e-9)
    assert categories["unmasked"]["mean_updates"] == pytest.approx(np.concatenate([u[1:-1] for u in direct]).mean(),
                                                                   abs=1e-9)
    assert categories["masked"] == {"count": 0, "mean_updates": None, "std_updates": None}


def test_stats_errors(tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    assert main(["stats", str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("in the beginning\n", encoding="utf-8")
    assert main(["stats", str(corpus), "--model", str(tmp_path / "nope")]) == 1
    assert str(tmp_path / "nope") in capsys.readouterr().err
    assert main(["stats", str(corpus), "--mask-rate", "1.5", "--no-progress"]) == 1
    assert "mask-rate" in capsys.readouterr().err


def test_stats_notes_lines_cut_at_the_positions(tmp_path, capsys, tokenizer):
    """A text line longer than the model's positions is truncated, and the report says how many lines and tokens
    were cut (they are not measured), as --conllu and act inspect do."""
    corpus = tmp_path / "corpus.txt"
    long_line = " ".join(["and the light shined in darkness"] * 30)
    corpus.write_text("in the beginning was the word .\n" + long_line + "\n", encoding="utf-8")
    out_json = tmp_path / "stats.json"
    assert main(["stats", str(corpus), "--no-progress", "--mask-rate", "0", "--json", str(out_json)]) == 0
    report = json.loads(out_json.read_text())
    full = len(tokenizer(long_line)["input_ids"])
    assert report["max_length"] == 64 and full > 64
    assert report["truncated"] == {"sequences": 1, "tokens": full - 64}
    assert report["tokens"] == len(tokenizer("in the beginning was the word .")["input_ids"]) + 64
    assert f"note: 1 line(s) longer than the model's 64 positions truncated: {full - 64} token(s) cut" in \
        capsys.readouterr().out
