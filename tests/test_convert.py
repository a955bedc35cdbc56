"""`act convert` end to end: every source format built from a known PyTorch model, converted, and checked to
reproduce the original's outputs and halting counts exactly; plus the safety rules and the CLI."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import oracle
from act.checkpoints import files
from act.commands.cli import main
from act.commands.convert import VerificationError, convert
from act.checkpoints import CheckpointError
from alignment import misaligned
from cases import make_inputs, tiny_config_kwargs
from test_checkpoint_files import assert_same_state, numpy_state, tf1_variables, tiny_model, write_tf1_checkpoint

HAS_KERAS = importlib.util.find_spec("tensorflow") is not None and \
    importlib.util.find_spec("act.tf.modeling") is not None
needs_keras = pytest.mark.skipif(not HAS_KERAS, reason="src/act/tf/modeling.py or tensorflow is not available")
FLOAT32_ATOL = 1e-5  # ACT_SEMANTICS.md, "Parity": float32 states of two model instances


def tree_hash(path: Path) -> dict[str, str]:
    """sha256 of every file under a path (or of the file), with names: what 'unchanged' means."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def leftovers(directory: Path) -> list[str]:
    """Temporary staging entries a conversion might have left next to DEST."""
    return [p.name for p in directory.iterdir() if ".converting-" in p.name or p.name.startswith(".")]


def run_pt(model, seed=5):
    ids, mask, types = make_inputs(seed, batch=3, length=11, vocab_size=model.config.vocab_size)
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                     token_type_ids=torch.from_numpy(types)), (ids, mask, types)


def assert_reproduces(original, converted_dir: Path, cls_name: str = "AlbertActModel"):
    """The converted checkpoint, loaded by PyTorch, holds the original's weights bit for bit, gives its outputs
    (float states within the float32 tolerance of ACT_SEMANTICS.md; the original computes from misaligned weights,
    `alignment.misaligned`, so the two sides never share an alignment) and the oracle's halting counts exactly."""
    import act.pt as pt

    loaded = getattr(pt, cls_name).from_pretrained(str(converted_dir)).eval()
    assert_same_state(numpy_state(loaded), numpy_state(original))
    (expected, (ids, mask, types)), (got, _) = run_pt(misaligned(original)), run_pt(loaded)
    for key, value in expected.items():
        if key == "updates":
            assert torch.equal(got[key], value)
        elif isinstance(value, torch.Tensor):
            np.testing.assert_allclose(got[key].numpy(), value.numpy(), rtol=0, atol=FLOAT32_ATOL, err_msg=key)
    encoder_out = got if cls_name == "AlbertActModel" else loaded.albert(
        input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), token_type_ids=torch.from_numpy(types))
    prefix = "" if cls_name == "AlbertActModel" else "albert."
    reference = oracle.forward(original.config, numpy_state(original), ids, mask, types, prefix=prefix)
    assert reference["margin"][mask == 1].min() > 1e-6  # no count sits within rounding of the threshold
    np.testing.assert_array_equal(encoder_out.updates.numpy(), reference["updates"])
    assert len(np.unique(reference["updates"][mask == 1])) > 1  # tokens really halt at different steps
    return loaded


@pytest.fixture(scope="module")
def bare():
    return tiny_model(seed=10)


@pytest.fixture()
def bin_dir(tmp_path, bare):
    directory = tmp_path / "research"
    directory.mkdir()
    state = dict(bare.state_dict())
    state["embeddings.position_ids"] = torch.arange(64).expand((1, -1))
    torch.save(state, directory / "pytorch_model.bin")
    config = bare.config.to_dict()
    config.update(gap_size=0, num_hidden_groups=1, inner_group_num=1)  # old keys of the published configs
    (directory / "config.json").write_text(json.dumps(config))
    return directory


# ------------------------------------------------------------------------------------------------ formats


def test_pytorch_bin_to_canonical(tmp_path, bin_dir, bare):
    before = tree_hash(bin_dir)
    report = convert(bin_dir, tmp_path / "out")
    assert report.converted == 27 and report.architecture == "AlbertActModel"
    assert report.skipped == ["embeddings.position_ids (buffer, not a weight)"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "albert_act"
    assert_reproduces(bare, tmp_path / "out")
    assert tree_hash(bin_dir) == before
    assert leftovers(tmp_path) == []


def test_legacy_h5_head_model_to_canonical(tmp_path):
    model = tiny_model("AlbertActForSequenceClassification", seed=11)
    source = tmp_path / "hub"
    files.write_legacy_h5(source / "tf_model.h5", numpy_state(model),
                            outer_name="tf_albert_act_for_sequence_classification")
    config = model.config.to_dict()
    config.pop("architectures", None)  # the class is inferred from the head tensors
    (source / "config.json").write_text(json.dumps(config))
    before = tree_hash(source)
    report = convert(source, tmp_path / "out", to="pytorch")
    assert report.architecture == "AlbertActForSequenceClassification" and report.converted == 29
    assert_reproduces(model, tmp_path / "out", "AlbertActForSequenceClassification")
    assert tree_hash(source) == before


def albert_config_json(**overrides) -> dict:
    """An original albert_config.json: old ALBERT keys, TF1 "gelu", no act_epsilon, no model_type."""
    tiny = tiny_config_kwargs()
    tiny.pop("act_epsilon")
    return dict(tiny, hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                initializer_range=0.02, num_hidden_groups=1, net_structure_type=0, gap_size=0, num_memory_blocks=0,
                inner_group_num=1, down_scale_factor=1, **overrides)


@pytest.fixture(scope="module")
def tf1_dir(tmp_path_factory):
    # the TF1 code's gelu is the tanh approximation: the original model to reproduce uses gelu_new
    model = tiny_model("AlbertActForPreTraining", seed=12, hidden_act="gelu_new")
    directory = tmp_path_factory.mktemp("tf1")
    write_tf1_checkpoint(directory, tf1_variables(model, "LayerNorm"))
    (directory / "albert_config.json").write_text(json.dumps(albert_config_json()))
    return model, directory


def test_tf1_checkpoint_to_bare_model(tmp_path, tf1_dir):
    model, directory = tf1_dir
    before = tree_hash(directory)
    report = convert(directory / "model.ckpt-7", tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["hidden_act"] == "gelu_new" and config["act_epsilon"] == 0.01 and "gap_size" not in config
    assert any('"gelu_new"' in note for note in report.notes)
    skipped = [entry.split(" ")[0] for entry in report.skipped]
    assert "global_step" in skipped and sum(s.endswith(("/adam_m", "/adam_v")) for s in skipped) == 10
    assert sorted(s for s in skipped if s.startswith("cls/")) == sorted(n for n in tf1_variables(model) if n.startswith("cls/"))
    assert report.converted == 27 and report.architecture == "AlbertActModel"
    bare = tiny_model(seed=0, hidden_act="gelu_new")
    bare.load_state_dict({k[len("albert."):]: v for k, v in model.state_dict().items() if k.startswith("albert.")})
    assert_reproduces(bare, tmp_path / "out")
    assert tree_hash(directory) == before


def test_tf1_checkpoint_to_pretraining_model_keeps_heads(tmp_path, tf1_dir):
    model, directory = tf1_dir
    report = convert(directory, tmp_path / "out", architecture="AlbertActForPreTraining")
    assert not [s for s in report.skipped if s.startswith("cls/")]
    assert report.converted == 34  # 27 encoder + 7 head tensors; the tied decoder is not stored
    loaded = assert_reproduces(model, tmp_path / "out", "AlbertActForPreTraining")
    assert loaded.predictions.decoder.weight.data_ptr() == loaded.albert.embeddings.word_embeddings.weight.data_ptr()


@needs_keras
def test_tf1_pretraining_checkpoint_to_keras_with_verify(tmp_path, tf1_dir):
    """A head model goes to a .keras file too; --verify compares its encoder (the `albert` sublayer)."""
    import keras
    import torch

    model, directory = tf1_dir
    report = convert(directory, tmp_path / "pre.keras", to="keras", verify=True,
                     architecture="AlbertActForPreTraining")
    assert report.ok and report.verification["keras"]
    assert "halting counts identical in PyTorch and Keras: yes" in str(report)
    keras_model = keras.models.load_model(tmp_path / "pre.keras")
    assert type(keras_model).__name__ == "TFAlbertActForPreTraining"
    (expected, (ids, mask, types)) = run_pt(model.albert)
    out = keras_model({"input_ids": ids.astype(np.int32), "attention_mask": mask.astype(np.int32),
                       "token_type_ids": types.astype(np.int32)})
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out["updates"]), expected.updates.numpy())
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                       token_type_ids=torch.from_numpy(types)).prediction_logits.numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["prediction_logits"]), logits, rtol=0, atol=1e-5)

def test_tf1_without_config_needs_one(tmp_path, tf1_dir):
    model, directory = tf1_dir
    bare_checkpoint = tmp_path / "ckpt"
    bare_checkpoint.mkdir()
    for path in directory.glob("model.ckpt-7.*"):
        (bare_checkpoint / path.name).write_bytes(path.read_bytes())
    with pytest.raises(CheckpointError, match="no albert_config.json or config.json.*--config"):
        convert(bare_checkpoint / "model.ckpt-7", tmp_path / "out")
    config_path = tmp_path / "my_config.json"
    config_path.write_text(json.dumps(albert_config_json()))
    convert(bare_checkpoint / "model.ckpt-7.index", tmp_path / "out", config=config_path)
    assert (tmp_path / "out" / "model.safetensors").is_file()


@needs_keras
def test_keras_round_trip_with_verify(tmp_path, bin_dir, bare):
    import keras

    report = convert(bin_dir, tmp_path / "model.keras", to="keras", verify=True)
    assert report.verification["ok"] and report.verification["keras"]
    assert "halting counts identical in PyTorch and Keras: yes" in str(report)
    keras_model = keras.models.load_model(tmp_path / "model.keras")
    (expected, (ids, mask, types)) = run_pt(bare)
    out = keras_model({"input_ids": ids.astype(np.int32), "attention_mask": mask.astype(np.int32),
                       "token_type_ids": types.astype(np.int32)})
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out["updates"]), expected.updates.numpy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["last_hidden_state"]),
                               expected.last_hidden_state.numpy(), rtol=0, atol=1e-5)
    # and back: .keras -> canonical gives the original weights bit for bit
    before = tree_hash(tmp_path / "model.keras")
    convert(tmp_path / "model.keras", tmp_path / "back")
    got = files.read_safetensors(tmp_path / "back" / "model.safetensors")
    expected_state = numpy_state(bare)
    assert sorted(got) == sorted(expected_state)
    for key, value in expected_state.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert tree_hash(tmp_path / "model.keras") == before
    # a Keras 3 .weights.h5 with the config beside it
    keras_model.save_weights(tmp_path / "model.weights.h5")
    convert(tmp_path / "model.weights.h5", tmp_path / "from_weights", config=bin_dir / "config.json")
    assert_reproduces(bare, tmp_path / "from_weights")


@needs_keras
def test_failed_verification_writes_nothing(tmp_path, bin_dir):
    with pytest.raises(VerificationError, match="not written") as info:
        convert(bin_dir, tmp_path / "out", verify=True, atol=0.0)  # float32 frameworks never agree to 0
    assert "ABOVE the tolerance 0" in str(info.value.report)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------ errors


def test_missing_unexpected_and_misshaped_tensors_name_file_and_tensor(tmp_path, bin_dir, bare):
    state = dict(bare.state_dict())
    del state["encoder.albert_layer.ffn.bias"]
    state["encoder.albert_layer.mystery.weight"] = torch.zeros(3)
    torch.save(state, bin_dir / "pytorch_model.bin")
    before = tree_hash(bin_dir)
    with pytest.raises(CheckpointError) as info:
        convert(bin_dir, tmp_path / "out")
    message = str(info.value)
    assert message.startswith(str(bin_dir / "pytorch_model.bin") + ":")
    assert "missing tensors: encoder.albert_layer.ffn.bias" in message
    assert "unexpected tensors: encoder.albert_layer.mystery.weight" in message
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == [] and tree_hash(bin_dir) == before

    config = json.loads((bin_dir / "config.json").read_text())
    config["intermediate_size"] = 40  # a config that does not match the weights
    (bin_dir / "config.json").write_text(json.dumps(config))
    torch.save(bare.state_dict(), bin_dir / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"encoder\.albert_layer\.ffn\.weight has shape \(37, 32\) in the "
                                              r"checkpoint but the model expects \(40, 32\)"):
        convert(bin_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_source_leaves_no_dest(tmp_path, bin_dir):
    path = bin_dir / "pytorch_model.bin"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: not a readable PyTorch state dict"):
        convert(bin_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_dest_exists_needs_overwrite_and_overwrite_replaces_only_the_model_files(tmp_path, bin_dir, bare):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "thesis.tex").write_text("years of work")
    (dest / "sub").mkdir()
    (dest / "sub" / "r.csv").write_text("1,2\n")
    (dest / "spiece.model").write_bytes(b"tokenizer")
    (dest / "pytorch_model.bin").write_bytes(b"an older model")  # a model file of another format: replaced
    (dest / "config.json").write_text("{}")
    kept = {name: tree_hash(dest / name) for name in ("thesis.tex", "sub", "spiece.model")}
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert(bin_dir, dest)
    assert (dest / "pytorch_model.bin").read_bytes() == b"an older model"
    convert(bin_dir, dest, overwrite=True)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors", "spiece.model", "sub",
                                                      "thesis.tex"]
    assert {name: tree_hash(dest / name) for name in kept} == kept
    assert_reproduces(bare, dest)
    assert leftovers(tmp_path) == [] and leftovers(dest) == []
    # a file where the model directory would go is never replaced, even with --overwrite
    (tmp_path / "notes").write_text("mine")
    with pytest.raises(FileExistsError, match="not a directory"):
        convert(bin_dir, tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes").read_text() == "mine" and leftovers(tmp_path) == []


def test_dest_inside_source_is_refused(bin_dir):
    before = tree_hash(bin_dir)
    with pytest.raises(ValueError, match="DEST must lie outside SOURCE"):
        convert(bin_dir, bin_dir / "converted")
    with pytest.raises(ValueError, match="DEST must lie outside SOURCE"):
        convert(bin_dir, bin_dir, overwrite=True)
    assert tree_hash(bin_dir) == before


def test_interrupt_leaves_no_dest(tmp_path, bin_dir, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "write_canonical_files", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert(bin_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_unknown_source_and_bad_targets(tmp_path, bin_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty: no checkpoint found"):
        convert(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(CheckpointError, match="no such file or directory"):
        convert(tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(ValueError, match="DEST must end with .keras"):
        convert(bin_dir, tmp_path / "out", to="keras")
    with pytest.raises(ValueError, match="pass --to keras"):
        convert(bin_dir, tmp_path / "out.keras")


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_convert(tmp_path, bin_dir, bare, capsys):
    dest = tmp_path / "out"
    assert main(["convert", str(bin_dir), str(dest), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "tensors converted: 27" in printed and "parity: OK" in printed
    assert ("halting counts identical in PyTorch and Keras: yes" in printed) == HAS_KERAS
    assert_reproduces(bare, dest)
    assert main(["convert", str(bin_dir), str(dest)]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["convert", str(bin_dir), str(dest), "--overwrite", "--to", "pytorch"]) == 0


def test_conversion_scripts_wrap_act_convert(tmp_path, bin_dir, bare, capsys):
    spec = importlib.util.spec_from_file_location("conversion_common",
                                                  Path(__file__).resolve().parents[1] / "conversion" / "_common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    assert common.main("test", "pytorch_bin", [str(bin_dir), str(tmp_path / "out")]) == 0
    assert_reproduces(bare, tmp_path / "out")
    assert common.main("test", "tf1", [str(bin_dir), str(tmp_path / "other")]) == 1
    assert "this script converts a tf1 source, but this is a pytorch_bin source" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
    scripts = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "conversion").glob("convert_*.py"))
    assert scripts == ["convert_keras.py", "convert_legacy_h5.py", "convert_pytorch_bin.py",
                       "convert_tf1_checkpoint.py"]


def test_readme_convert_section_runs_as_written(tmp_path, monkeypatch):
    from test_readme import python_blocks, section

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    text = section("convert")
    assert "[conversion/README.md](conversion-scripts.md)" in text  # the docs page that includes it
    page = Path(__file__).resolve().parents[1] / "docs" / "conversion-scripts.md"
    assert '--8<-- "conversion/README.md"' in page.read_text()
    blocks = python_blocks(text)
    assert blocks
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs (section convert)", "exec"), namespace)
    assert namespace["report"].ok
    assert torch.equal(namespace["same"].encoder.albert_layer.ffn.weight, namespace["model"].encoder.albert_layer.ffn.weight)
