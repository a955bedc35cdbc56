"""The model card (README.md) next to a saved model: what it says, that its code runs, that a user's card stays."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from act.model_card import CITATION, is_unedited_card, model_card, write_model_card

DEMO = Path(__file__).resolve().parents[1] / "src" / "act" / "demo_model"


def demo_config():
    return json.loads((DEMO / "config.json").read_text())


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_card_says_what_the_model_is():
    config = dict(demo_config(), num_hidden_layers=12, act_epsilon=0.05, ponder_penalty=2e-3)
    card = model_card(config, architecture="AlbertActForSequenceClassification", model_id="me/my-model",
                      num_parameters=773_000)
    header = card.split("---")[1]
    assert "library_name: transformers" in header and "pipeline_tag: text-classification" in header
    assert "# ALBERT-ACT: AlbertActForSequenceClassification" in card
    assert "| iteration cap (`num_hidden_layers`) | 12: one shared layer, applied at most 12 times per token |" in card
    assert "| `act_epsilon` | 0.05: a token halts once its summed halting probability passes 0.95 |" in card
    assert "| `ponder_penalty` (tau) | 0.002 |" in card and "| parameters | 773,000 |" in card
    assert "from act import AlbertActForSequenceClassification" in card
    assert "from act import TFAlbertActForSequenceClassification" in card
    assert card.count('from_pretrained("me/my-model")') == 2  # the model, in both frameworks
    assert card.count('load_tokenizer("me/my-model")') == 2  # the tokenizer (segment ids for pairs), in both
    assert CITATION in card and "Simoulin & Crabbé, ACL-SRW 2021" in card
    assert "10.18653/v1/2021.acl-srw.23" in CITATION


def test_the_architecture_defaults_to_the_config_and_keras_names_are_mapped():
    assert "# ALBERT-ACT: AlbertActForPreTraining" in model_card(demo_config())
    assert "# ALBERT-ACT: AlbertActModel" in model_card(dict(demo_config(), architectures=None))
    card = model_card(demo_config(), architecture="TFAlbertActForMaskedLM")  # a Keras class name
    assert "from act import AlbertActForMaskedLM" in card and "TFTFAlbert" not in card


def test_our_unedited_card_follows_the_model_and_an_edited_one_stays(tmp_path):
    """Saving another model into a directory refreshes the card we wrote there while nobody edited it; an edit
    (even one character) makes it the user's card, never replaced again."""
    config = demo_config()
    assert write_model_card(tmp_path, config, architecture="AlbertActForSequenceClassification") is True
    first = (tmp_path / "README.md").read_text()
    assert "AlbertActForSequenceClassification" in first and is_unedited_card(first)
    assert write_model_card(tmp_path, config, architecture="AlbertActForSequenceClassification") is False  # same
    deeper = dict(config, num_hidden_layers=config["num_hidden_layers"] + 6)
    assert write_model_card(tmp_path, deeper, architecture="AlbertActModel") is True
    second = (tmp_path / "README.md").read_text()
    assert second != first and "# ALBERT-ACT: AlbertActModel" in second and is_unedited_card(second)
    assert str(deeper["num_hidden_layers"]) in second
    edited = second.replace("ALBERT-ACT", "ALBERT-ACT (mine)", 1)
    (tmp_path / "README.md").write_text(edited)
    assert not is_unedited_card(edited)
    assert write_model_card(tmp_path, config) is False
    assert (tmp_path / "README.md").read_text() == edited
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no temporary file left


def test_write_model_card_never_replaces_a_card(tmp_path):
    assert write_model_card(tmp_path, demo_config()) is True
    first = (tmp_path / "README.md").read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "README.md").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert "ALBERT-ACT" in first
    (tmp_path / "README.md").write_text("my own card")
    assert write_model_card(tmp_path, demo_config(), architecture="AlbertActModel") is False
    assert (tmp_path / "README.md").read_text() == "my own card"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no temporary file left


@pytest.mark.parametrize("architecture", ["AlbertActForPreTraining", "AlbertActForMultipleChoice"])
def test_the_usage_code_of_the_card_runs(tmp_path, architecture, monkeypatch):
    """Both blocks, as written in the card, on the directory the card describes (PyTorch and Keras)."""
    torch = pytest.importorskip("torch")
    import act.pt as pt

    config = dict(demo_config(), hidden_size=32, num_attention_heads=4, intermediate_size=37, embedding_size=16,
                  num_hidden_layers=3, architectures=[architecture])
    from act import AlbertActConfig

    torch.manual_seed(0)
    getattr(pt, architecture)(AlbertActConfig(**{k: v for k, v in config.items()
                                                 if k not in ("transformers_version", "model_type")})) \
        .save_pretrained(tmp_path / "model")
    for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(DEMO / name, tmp_path / "model" / name)
    (tmp_path / "model" / "README.md").unlink(missing_ok=True)  # the card save_pretrained may have written
    write_model_card(tmp_path / "model", config, model_id=str(tmp_path / "model"))
    pytorch_block, keras_block = python_blocks((tmp_path / "model" / "README.md").read_text())
    namespace = {}
    exec(compile(pytorch_block, "README.md", "exec"), namespace)
    updates = namespace["outputs"].updates
    assert updates.shape == namespace["inputs"]["input_ids"].shape and bool((updates >= 0).all())
    pytest.importorskip("tensorflow")
    keras_namespace = {}
    exec(compile(keras_block, "README.md", "exec"), keras_namespace)
    assert (keras_namespace["outputs"]["updates"].numpy() == updates.numpy()).all()


def test_save_pretrained_writes_the_card_in_pytorch(tmp_path):
    pytest.importorskip("torch")
    from act import AlbertActConfig, AlbertActForSequenceClassification

    import cases

    model = AlbertActForSequenceClassification(AlbertActConfig(**cases.tiny_config_kwargs(num_labels=3)))
    model.save_pretrained(tmp_path / "a")
    card = (tmp_path / "a" / "README.md").read_text()
    assert "AlbertActForSequenceClassification" in card and f"{model.num_parameters():,}" in card
    (tmp_path / "a" / "README.md").write_text("mine")
    model.save_pretrained(tmp_path / "a")
    assert (tmp_path / "a" / "README.md").read_text() == "mine"


def test_save_pretrained_writes_the_card_in_keras(tmp_path):
    pytest.importorskip("tensorflow")
    from act import AlbertActConfig, TFAlbertActForTokenClassification

    import cases

    TFAlbertActForTokenClassification(AlbertActConfig(**cases.tiny_config_kwargs(num_labels=3))) \
        .save_pretrained(tmp_path / "k")
    card = (tmp_path / "k" / "README.md").read_text()
    assert "from act import TFAlbertActForTokenClassification" in card
