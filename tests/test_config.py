import json
import subprocess
import sys

import pytest

from act import AlbertActConfig


def test_import_act_is_lazy():
    code = "import sys, act; print(sorted(m for m in ('torch', 'tensorflow', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_defaults_are_the_published_base_model():
    config = AlbertActConfig()
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (768, 12, 3072)
    assert (config.embedding_size, config.vocab_size, config.num_hidden_layers) == (128, 30000, 24)
    assert config.hidden_act == "gelu" and config.act_epsilon == 0.01 and config.ponder_penalty == 0.0
    assert config.model_type == "albert_act"
    assert config.halting_threshold == pytest.approx(0.99)


def test_published_config_with_legacy_keys_loads(tmp_path):
    published = {
        "act_epsilon": 0.01, "architectures": ["AlbertActModel"], "attention_probs_dropout_prob": 0,
        "bos_token_id": 2, "classifier_dropout_prob": 0.1, "down_scale_factor": 1, "embedding_size": 128,
        "eos_token_id": 3, "gap_size": 0, "hidden_act": "gelu", "hidden_dropout_prob": 0, "hidden_size": 768,
        "initializer_range": 0.02, "inner_group_num": 1, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512, "model_type": "albert_act", "net_structure_type": 0,
        "num_attention_heads": 12, "num_hidden_layers": 24, "num_memory_blocks": 0, "pad_token_id": 0,
        "position_embedding_type": "absolute", "transformers_version": "4.23.1", "type_vocab_size": 2,
        "vocab_size": 30000, "num_hidden_groups": 1, "layers_to_keep": [],
    }
    (tmp_path / "config.json").write_text(json.dumps(published))
    config = AlbertActConfig.from_pretrained(tmp_path)
    assert config.num_hidden_layers == 24 and config.hidden_size == 768
    for key in ("gap_size", "net_structure_type", "num_hidden_groups", "layers_to_keep", "inner_group_num"):
        assert not hasattr(config, key), key
    # round trip: what we write loads back equal, without the legacy keys
    config.save_pretrained(tmp_path / "again")
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert "gap_size" not in again and again["model_type"] == "albert_act"
    assert AlbertActConfig.from_pretrained(tmp_path / "again").to_dict() == config.to_dict()


NONSENSE = [
    (dict(act_epsilon=0.0), "act_epsilon"),
    (dict(act_epsilon=1.0), "act_epsilon"),
    (dict(act_epsilon=-0.1), "act_epsilon"),
    (dict(act_epsilon=float("nan")), "act_epsilon"),
    (dict(num_hidden_layers=0), "num_hidden_layers .*iteration cap"),
    (dict(num_hidden_layers=2.5), "num_hidden_layers .*iteration cap"),
    (dict(ponder_penalty=-1e-3), "ponder_penalty"),
    (dict(ponder_penalty=float("inf")), "ponder_penalty must be a finite number"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob"),
    (dict(attention_probs_dropout_prob=float("nan")), "attention_probs_dropout_prob must be a finite number"),
    (dict(classifier_dropout_prob=-0.1), "classifier_dropout_prob"),
    (dict(hidden_act="nonsense"), "hidden_act"),
    (dict(layer_norm_eps=0.0), "layer_norm_eps"),
    (dict(layer_norm_eps=float("nan")), "layer_norm_eps must be a finite number"),
    (dict(initializer_range=-0.02), "initializer_range must be >= 0"),
    (dict(initializer_range=float("inf")), "initializer_range must be a finite number"),
    (dict(position_embedding_type="relative_key"), "position_embedding_type"),
    (dict(pad_token_id=-1), "pad_token_id"),
    (dict(act_fast_path="yes"), "act_fast_path"),
]


@pytest.mark.parametrize("kwargs, message", NONSENSE)
def test_nonsense_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlbertActConfig(**kwargs)


@pytest.mark.parametrize("kwargs, message", [case for case in NONSENSE if "position_embedding_type" not in case[0]])
def test_nonsense_overrides_and_files_are_rejected_on_loading(tmp_path, kwargs, message):
    """`from_pretrained` keyword overrides are set after construction: validated all the same; so is a file."""
    AlbertActConfig().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=message):
        AlbertActConfig.from_pretrained(tmp_path, **kwargs)
    with pytest.raises(ValueError, match=message):
        AlbertActConfig.from_dict(AlbertActConfig().to_dict(), **kwargs)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw.update(kwargs)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=message):
        AlbertActConfig.from_pretrained(tmp_path)


def test_a_config_changed_to_nonsense_is_not_saved(tmp_path):
    config = AlbertActConfig()
    config.act_epsilon = 2.0
    with pytest.raises(ValueError, match="act_epsilon"):
        config.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="act_epsilon"):
        config.validate()


def test_a_config_is_built_in_steps_and_its_relations_are_checked_where_a_model_is_built():
    """Values are checked one by one, so a config may pass through states a model could not use (what
    transformers' ConfigTester does: hidden_size=37 with the default 12 heads); the model refuses them."""
    config = AlbertActConfig(hidden_size=37)  # 37 is not divisible by 12 heads: fine for a config
    assert json.loads(config.to_json_string())["hidden_size"] == 37
    config.num_labels = 5
    config.num_labels = 3
    assert len(config.id2label) == 3
    with pytest.raises(ValueError, match=r"hidden_size \(37\) must be divisible by num_attention_heads \(12\)"):
        config.check()
    config.num_attention_heads = 1
    config.check()
    small = AlbertActConfig(vocab_size=10, pad_token_id=10)
    with pytest.raises(ValueError, match=r"pad_token_id \(10\) must lie in \[0, vocab_size=10\)"):
        small.check()


def test_models_of_both_frameworks_refuse_a_config_they_cannot_use():
    pytest.importorskip("torch")
    from act import AlbertActModel

    bad = AlbertActConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="divisible"):
        AlbertActModel(bad)
    changed = AlbertActConfig(hidden_size=32, num_attention_heads=4, vocab_size=50, embedding_size=8,
                              intermediate_size=16, num_hidden_layers=2)
    changed.act_epsilon = -1.0  # set after construction: caught where the model is built
    with pytest.raises(ValueError, match="act_epsilon"):
        AlbertActModel(changed)
    pytest.importorskip("tensorflow")
    from act import TFAlbertActModel

    with pytest.raises(ValueError, match="divisible"):
        TFAlbertActModel(bad)
    with pytest.raises(ValueError, match="act_epsilon"):
        TFAlbertActModel(changed)
