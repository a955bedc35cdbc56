"""Checkpoint readers/writers of act.checkpoints.files: each format built from a known PyTorch model, read back
exactly; the format detector; the name table.

The legacy h5 layout and the TF1 names are spelled here from CHECKPOINT_FORMATS.md, independently of the
name table in act/checkpoints/names.py, so a wrong table fails these tests.
"""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch

import oracle
from act.checkpoints import files, names
from act.checkpoints import CheckpointError
from alignment import misaligned_state
from cases import apply_regime, make_inputs, tiny_config_kwargs

# The bare model's tensors in a legacy tf_model.h5, below '<outer>/albert/' (section 3), with transpose flags.
LEGACY_BARE = {
    "embeddings/word_embeddings/weight:0": ("embeddings.word_embeddings.weight", False),
    "embeddings/position_embeddings/embeddings:0": ("embeddings.position_embeddings.weight", False),
    "embeddings/token_type_embeddings/embeddings:0": ("embeddings.token_type_embeddings.weight", False),
    "embeddings/LayerNorm/gamma:0": ("embeddings.LayerNorm.weight", False),
    "embeddings/LayerNorm/beta:0": ("embeddings.LayerNorm.bias", False),
    "encoder/embedding_hidden_mapping_in/kernel:0": ("encoder.embedding_hidden_mapping_in.weight", True),
    "encoder/embedding_hidden_mapping_in/bias:0": ("encoder.embedding_hidden_mapping_in.bias", False),
    **{f"encoder/albert_layer/attention/{m}/kernel:0": (f"encoder.albert_layer.attention.{m}.weight", True)
       for m in ("query", "key", "value", "dense")},
    **{f"encoder/albert_layer/attention/{m}/bias:0": (f"encoder.albert_layer.attention.{m}.bias", False)
       for m in ("query", "key", "value", "dense")},
    **{f"encoder/albert_layer/{m}/gamma:0": (f"encoder.albert_layer.{m}.weight", False)
       for m in ("LayerNorm", "full_layer_layer_norm")},
    **{f"encoder/albert_layer/{m}/beta:0": (f"encoder.albert_layer.{m}.bias", False)
       for m in ("LayerNorm", "full_layer_layer_norm")},
    **{f"encoder/albert_layer/{m}/kernel:0": (f"encoder.albert_layer.{m}.weight", True) for m in ("ffn", "ffn_output")},
    **{f"encoder/albert_layer/{m}/bias:0": (f"encoder.albert_layer.{m}.bias", False) for m in ("ffn", "ffn_output")},
    "encoder/albert_layer/act/dense/kernel:0": ("encoder.albert_layer.act.dense.weight", True),
    "encoder/albert_layer/act/dense/bias:0": ("encoder.albert_layer.act.dense.bias", False),
    "pooler/kernel:0": ("pooler.weight", True),
    "pooler/bias:0": ("pooler.bias", False),
}

# TF1 variable names of section 4 -> (canonical name of the bare model, transpose?).
TF1_BARE = {
    "bert/embeddings/word_embeddings": ("embeddings.word_embeddings.weight", False),
    "bert/embeddings/token_type_embeddings": ("embeddings.token_type_embeddings.weight", False),
    "bert/embeddings/position_embeddings": ("embeddings.position_embeddings.weight", False),
    "bert/embeddings/LayerNorm/gamma": ("embeddings.LayerNorm.weight", False),
    "bert/embeddings/LayerNorm/beta": ("embeddings.LayerNorm.bias", False),
    "bert/encoder/embedding_hidden_mapping_in/kernel": ("encoder.embedding_hidden_mapping_in.weight", True),
    "bert/encoder/embedding_hidden_mapping_in/bias": ("encoder.embedding_hidden_mapping_in.bias", False),
    **{f"bert/encoder/transformer/attention_1/self/{m}/kernel": (f"encoder.albert_layer.attention.{m}.weight", True)
       for m in ("query", "key", "value")},
    **{f"bert/encoder/transformer/attention_1/self/{m}/bias": (f"encoder.albert_layer.attention.{m}.bias", False)
       for m in ("query", "key", "value")},
    "bert/encoder/transformer/attention_1/output/dense/kernel": ("encoder.albert_layer.attention.dense.weight", True),
    "bert/encoder/transformer/attention_1/output/dense/bias": ("encoder.albert_layer.attention.dense.bias", False),
    "bert/encoder/transformer/LayerNorm/gamma": ("encoder.albert_layer.LayerNorm.weight", False),
    "bert/encoder/transformer/LayerNorm/beta": ("encoder.albert_layer.LayerNorm.bias", False),
    "bert/encoder/transformer/ffn_1/intermediate/dense/kernel": ("encoder.albert_layer.ffn.weight", True),
    "bert/encoder/transformer/ffn_1/intermediate/dense/bias": ("encoder.albert_layer.ffn.bias", False),
    "bert/encoder/transformer/ffn_1/intermediate/output/dense/kernel": ("encoder.albert_layer.ffn_output.weight", True),
    "bert/encoder/transformer/ffn_1/intermediate/output/dense/bias": ("encoder.albert_layer.ffn_output.bias", False),
    "bert/encoder/transformer/LayerNorm_1/gamma": ("encoder.albert_layer.full_layer_layer_norm.weight", False),
    "bert/encoder/transformer/LayerNorm_1/beta": ("encoder.albert_layer.full_layer_layer_norm.bias", False),
    "bert/encoder/transformer/halting/dense/kernel": ("encoder.albert_layer.act.dense.weight", True),
    "bert/encoder/transformer/halting/dense/bias": ("encoder.albert_layer.act.dense.bias", False),
    "bert/pooler/dense/kernel": ("pooler.weight", True),
    "bert/pooler/dense/bias": ("pooler.bias", False),
}
TF1_HEADS = {
    "cls/predictions/transform/dense/kernel": ("predictions.dense.weight", True),
    "cls/predictions/transform/dense/bias": ("predictions.dense.bias", False),
    "cls/predictions/transform/LayerNorm/gamma": ("predictions.LayerNorm.weight", False),
    "cls/predictions/transform/LayerNorm/beta": ("predictions.LayerNorm.bias", False),
    "cls/predictions/output_bias": ("predictions.bias", False),
    "cls/seq_relationship/output_weights": ("sop_classifier.classifier.weight", False),  # already (out, in)
    "cls/seq_relationship/output_bias": ("sop_classifier.classifier.bias", False),
}


def tiny_model(cls_name: str = "AlbertActModel", seed: int = 0, regime: str = "mixed", **overrides):
    """A tiny PyTorch model (cases.TINY) with a halting regime where tokens halt at different iterations."""
    import act.pt as pt

    torch.manual_seed(seed)
    config = pt.AlbertActConfig(**tiny_config_kwargs(**overrides))
    model = getattr(pt, cls_name)(config).eval()
    prefix = "" if cls_name == "AlbertActModel" else "albert."
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    state = apply_regime(state, regime, seed=seed, prefix=prefix)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    # Give every head tensor non-trivial values (zero-initialised biases would hide a mix-up).
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed + 1)
        for name, parameter in model.named_parameters():
            if not name.startswith("albert.") and not name.startswith(("embeddings", "encoder", "pooler")):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


def numpy_state(model) -> dict[str, np.ndarray]:
    """The model's weights, canonical names, with tied copies dropped (what a checkpoint must give back)."""
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items() if not names.is_ignored(k)}
    for copy in names.tied_copies(state):
        del state[copy]
    return state


def assert_same_state(got: dict, expected: dict):
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert got[key].shape == expected[key].shape, key
        assert got[key].dtype == expected[key].dtype, key
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


class CallsCode:
    """Unpickling this calls a function (harmless here: os.getcwd); a weights-only load must refuse it."""

    def __reduce__(self):
        import os

        return os.getcwd, ()


@pytest.fixture(scope="module")
def bare():
    return tiny_model()


# ------------------------------------------------------------------------------------------------ pytorch .bin


def test_pytorch_bin_reads_state_dict_with_position_ids_buffer(tmp_path, bare):
    path = tmp_path / "pytorch_model.bin"
    full = dict(bare.state_dict())
    full["embeddings.position_ids"] = torch.arange(64).expand((1, -1))  # published files carry this buffer
    torch.save(full, path)
    got = files.read_pytorch_bin(path)
    assert "embeddings.position_ids" in got and names.is_ignored("embeddings.position_ids")
    got.pop("embeddings.position_ids")
    assert_same_state(got, numpy_state(bare))
    assert files.read_weights(path).keys() == files.read_pytorch_bin(path).keys()


def test_pytorch_bin_without_torch_says_what_to_install(tmp_path, bare, monkeypatch):
    """A TensorFlow-only environment gets a clear error, not a bare ImportError."""
    import sys

    path = tmp_path / "pytorch_model.bin"
    torch.save(bare.state_dict(), path)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin needs PyTorch.*act convert"):
        files.read_pytorch_bin(path)

def test_pytorch_bin_truncated_names_file(tmp_path, bare):
    path = tmp_path / "pytorch_model.bin"
    torch.save(bare.state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path).replace(".", r"\.") + ".*truncated"):
        files.read_pytorch_bin(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pytorch_bin_refuses_code_and_non_state_dicts(tmp_path):
    evil = tmp_path / "evil.bin"
    with evil.open("wb") as handle:  # a pickle that would import and call code: weights_only refuses it
        pickle.dump({"x": CallsCode()}, handle)
    with pytest.raises(CheckpointError, match="evil.bin"):
        files.read_pytorch_bin(evil)
    listing = tmp_path / "list.bin"
    torch.save([torch.zeros(2)], listing)
    with pytest.raises(CheckpointError, match=r"list\.bin: holds a list, not a state dict"):
        files.read_pytorch_bin(listing)
    nested = tmp_path / "nested.bin"
    torch.save({"model": {"a": torch.zeros(1)}}, nested)
    with pytest.raises(CheckpointError, match=r"nested\.bin: not a state dict: entry 'model' is a dict"):
        files.read_pytorch_bin(nested)


# ------------------------------------------------------------------------------------------------ legacy h5


def test_legacy_h5_exact_layout(tmp_path, bare):
    state = numpy_state(bare)
    path = files.write_legacy_h5(tmp_path / "tf_model.h5", state)
    with h5py.File(path, "r") as f:
        assert [n.decode() for n in f.attrs["layer_names"]] == ["albert"]
        names = [n.decode() for n in f["albert"].attrs["weight_names"]]
        assert sorted(names) == sorted(f"tf_albert_act_model/albert/{n}" for n in LEGACY_BARE)
        for suffix, (canonical, transpose) in LEGACY_BARE.items():
            dataset = f["albert"][f"tf_albert_act_model/albert/{suffix}"]
            expected = state[canonical].T if transpose else state[canonical]
            np.testing.assert_array_equal(dataset[()], expected, err_msg=suffix)
        # the dataset path really is albert/<weight name>
        assert isinstance(f["albert/tf_albert_act_model/albert/pooler/kernel:0"], h5py.Dataset)
        assert f["albert/tf_albert_act_model/albert/encoder/albert_layer/act/dense/kernel:0"].shape == (32, 1)


def test_legacy_h5_round_trip_gives_same_outputs(tmp_path, bare):
    state = numpy_state(bare)
    path = files.write_legacy_h5(tmp_path / "tf_model.h5", state)
    got = files.read_legacy_h5(path)
    assert_same_state(got, state)
    ids, mask, types = make_inputs(3)
    reference = oracle.forward(bare.config, state, ids, mask, types)
    expected = oracle.forward(bare.config, misaligned_state(got), ids, mask, types)  # float64, another alignment
    np.testing.assert_array_equal(expected["updates"], reference["updates"])
    np.testing.assert_allclose(expected["last_hidden_state"], reference["last_hidden_state"], rtol=0, atol=1e-10)
    assert len(np.unique(reference["updates"][mask == 1])) > 1  # the regime really mixes halting steps


def test_legacy_h5_head_model_and_any_outer_name(tmp_path):
    model = tiny_model("AlbertActForSequenceClassification", seed=1)
    state = numpy_state(model)
    outer = "tf_albert_act_for_sequence_classification"
    path = files.write_legacy_h5(tmp_path / "tf_model.h5", state, outer_name=outer)
    with h5py.File(path, "r") as f:
        assert sorted(n.decode() for n in f.attrs["layer_names"]) == ["albert", "classifier"]
        assert sorted(n.decode() for n in f["classifier"].attrs["weight_names"]) == [
            f"{outer}/classifier/bias:0", f"{outer}/classifier/kernel:0"]
        assert f"{outer}/albert/pooler/kernel:0" in [n.decode() for n in f["albert"].attrs["weight_names"]]
        np.testing.assert_array_equal(f["classifier"][f"{outer}/classifier/kernel:0"][()], state["classifier.weight"].T)
    assert_same_state(files.read_legacy_h5(path), state)


def test_legacy_h5_pretraining_heads_and_tied_decoder(tmp_path):
    model = tiny_model("AlbertActForPreTraining", seed=2)
    state = numpy_state(model)
    assert "predictions.decoder.weight" not in state and "predictions.bias" in state
    path = files.write_legacy_h5(tmp_path / "tf_model.h5", state, outer_name="tf_albert_act_for_pre_training")
    with h5py.File(path, "r") as f:
        assert sorted(n.decode() for n in f.attrs["layer_names"]) == ["albert", "predictions", "sop_classifier"]
        assert "tf_albert_act_for_pre_training/sop_classifier/classifier/kernel:0" in [
            n.decode() for n in f["sop_classifier"].attrs["weight_names"]]
    assert_same_state(files.read_legacy_h5(path), state)


def test_legacy_h5_unknown_weight_and_chunked_names(tmp_path, bare):
    state = numpy_state(bare)
    path = tmp_path / "tf_model.h5"
    with h5py.File(path, "w") as f:  # Keras 2 splits long attributes into weight_names0, weight_names1, ...
        f.attrs["layer_names"] = np.array([b"albert"])
        group = f.create_group("albert")
        names = [f"tf_albert_act_model_1/albert/{n}" for n in LEGACY_BARE]
        group.attrs["weight_names0"] = np.array([n.encode() for n in names[:10]])
        group.attrs["weight_names1"] = np.array([n.encode() for n in names[10:]])
        for name, (canonical, transpose) in zip(names, LEGACY_BARE.values()):
            group.create_dataset(name, data=state[canonical].T if transpose else state[canonical])
    assert_same_state(files.read_legacy_h5(path), state)
    with h5py.File(path, "a") as f:
        f["albert"].attrs["weight_names2"] = np.array([b"tf_albert_act_model_1/albert/encoder/mystery/kernel:0"])
        f["albert"].create_dataset("tf_albert_act_model_1/albert/encoder/mystery/kernel:0", data=np.zeros(3))
    with pytest.raises(CheckpointError, match=r"tf_model\.h5: unexpected tensors.*encoder/mystery/kernel:0"):
        files.read_legacy_h5(path)


def test_legacy_h5_truncated_and_not_legacy(tmp_path, bare):
    path = files.write_legacy_h5(tmp_path / "tf_model.h5", numpy_state(bare))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"tf_model\.h5: .*truncated or corrupt"):
        files.read_legacy_h5(path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_group("layers")
    with pytest.raises(CheckpointError, match=r"other\.h5: not a transformers-4 tf_model\.h5.*Keras 3"):
        files.read_legacy_h5(other)


# ------------------------------------------------------------------------------------------------ TF1


def test_tf1_name_table_matches_the_format_page():
    for name, (canonical, transpose) in {**TF1_BARE, **TF1_HEADS}.items():
        assert names.tf1_to_canonical(name) == (canonical, transpose), name
    assert names.tf1_to_canonical("bert/pooler/dense/kernel", pretraining=True) == ("albert.pooler.weight", True)
    assert names.tf1_to_canonical("cls/predictions/output_bias", pretraining=True) == ("predictions.bias", False)
    # after the TF2 upgrade, the layer norms are named like Keras layers
    assert names.tf1_to_canonical("bert/encoder/transformer/layer_normalization/gamma")[0] == \
        "encoder.albert_layer.LayerNorm.weight"
    assert names.tf1_to_canonical("bert/encoder/transformer/layer_normalization_1/beta")[0] == \
        "encoder.albert_layer.full_layer_layer_norm.bias"
    with pytest.raises(KeyError):
        names.tf1_to_canonical("bert/encoder/transformer/mystery/kernel")
    assert names.tf1_non_weight("global_step") and names.tf1_non_weight("bert/pooler/dense/kernel/adam_m")
    assert names.tf1_non_weight("bert/pooler/dense/kernel") is None


def tf1_variables(model, layer_norm_naming: str = "LayerNorm", heads: bool = True) -> dict[str, np.ndarray]:
    """The TF1 variables of a model's weights (section 4 names and layouts), spelled from the format page."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    prefix = "" if "pooler.weight" in state else "albert."
    table = dict(TF1_BARE, **(TF1_HEADS if heads else {}))
    variables = {}
    for name, (canonical, transpose) in table.items():
        key = canonical if canonical.startswith(("predictions", "sop_classifier")) else prefix + canonical
        value = state[key]
        if layer_norm_naming != "LayerNorm":
            name = name.replace("/LayerNorm_1/", "/layer_normalization_1/").replace("/LayerNorm/", "/layer_normalization/")
        variables[name] = np.ascontiguousarray(value.T if transpose else value)
    return variables


def write_tf1_checkpoint(directory, variables: dict[str, np.ndarray], step: int = 7, slots: bool = True) -> str:
    """A TF1 checkpoint written the TF1 way: graph-mode variables, a global step, Adam slots and a Saver."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        made = [tf.compat.v1.get_variable(name, initializer=tf.constant(value)) for name, value in variables.items()]
        tf.compat.v1.train.get_or_create_global_step()
        if slots:
            for name, value in list(variables.items())[:5]:
                for slot in ("adam_m", "adam_v"):
                    tf.compat.v1.get_variable(f"{name}/{slot}", initializer=tf.constant(np.ones_like(value)))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(tf.compat.v1.assign(tf.compat.v1.train.get_global_step(), step))
            prefix = saver.save(session, str(directory / "model.ckpt"), global_step=step)
    assert len(made) == len(variables)
    return prefix


@pytest.fixture(scope="module")
def tf1_pretraining(tmp_path_factory):
    model = tiny_model("AlbertActForPreTraining", seed=3)
    directory = tmp_path_factory.mktemp("tf1")
    prefix = write_tf1_checkpoint(directory, tf1_variables(model, "layer_normalization"))
    return model, directory, prefix


def test_tf1_checkpoint_bare_target_skips_heads_and_slots(tf1_pretraining):
    model, directory, prefix = tf1_pretraining
    skipped = {}
    got = files.read_tf1_checkpoint(directory, skipped=skipped)  # a directory resolves to its latest checkpoint
    expected = {k[len("albert."):]: v for k, v in numpy_state(model).items() if k.startswith("albert.")}
    assert_same_state(got, expected)
    skipped_names = sorted(skipped)
    names = list(tf1_variables(model, "layer_normalization"))
    slots = [f"{n}/{s}" for n in names[:5] for s in ("adam_m", "adam_v")]
    heads = [n for n in names if n.startswith("cls/")]
    assert len(heads) == len(TF1_HEADS)
    assert skipped_names == sorted(["global_step", *heads, *slots])
    assert all("pre-training head" in why for name, why in skipped.items() if name.startswith("cls/"))


def test_tf1_checkpoint_pretraining_target_keeps_heads(tf1_pretraining):
    model, directory, prefix = tf1_pretraining
    skipped = {}
    got = files.read_tf1_checkpoint(prefix, pretraining=True, skipped=skipped)
    assert_same_state(got, numpy_state(model))
    assert not [name for name in skipped if name.startswith("cls/")]
    assert files.read_tf1_checkpoint(prefix + ".index", pretraining=True).keys() == got.keys()


def test_tf1_checkpoint_original_naming_unknown_and_truncated(tmp_path):
    model = tiny_model(seed=4)
    variables = tf1_variables(model, "LayerNorm", heads=False)
    prefix = write_tf1_checkpoint(tmp_path, variables, slots=False)
    assert_same_state(files.read_tf1_checkpoint(prefix), numpy_state(model))
    odd = tmp_path / "odd"
    odd.mkdir()
    odd_prefix = write_tf1_checkpoint(odd, {**variables, "bert/encoder/transformer/mystery/kernel": np.zeros(2, np.float32)},
                                      slots=False)
    with pytest.raises(CheckpointError, match=r"model\.ckpt-7: unexpected variables.*transformer/mystery/kernel"):
        files.read_tf1_checkpoint(odd_prefix)
    data = next(tmp_path.glob("model.ckpt-7.data-*"))
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"model\.ckpt-7.*truncated or corrupt"):
        files.read_tf1_checkpoint(prefix)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty: no TF1 checkpoint"):
        files.read_tf1_checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointError, match=r"not a TF1 checkpoint"):
        files.read_tf1_checkpoint(tmp_path / "model.ckpt-99")


# ------------------------------------------------------------------------------------------------ checking


def test_infer_architecture():
    assert names.infer_architecture(["pooler.weight"]) == "AlbertActModel"
    assert names.infer_architecture(["albert.pooler.weight", "predictions.bias", "sop_classifier.classifier.bias"]) \
        == "AlbertActForPreTraining"
    assert names.infer_architecture(["predictions.bias"]) == "AlbertActForMaskedLM"
    assert names.infer_architecture(["classifier.weight", "sop_classifier.classifier.weight"]) == \
        "AlbertActForSequenceClassification"


def test_the_checkpoints_package_imports_no_framework():
    import subprocess
    import sys

    code = ("import sys, act.checkpoints, act.checkpoints.loading; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'transformers', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_one_format_detector(tmp_path, bare):
    """Directories are looked at in one order (safetensors, its shard index, .bin, tf_model.h5, TF1); files by name."""
    from act.checkpoints import detect

    directory = tmp_path / "model"
    directory.mkdir()
    torch.save(bare.state_dict(), directory / "pytorch_model.bin")
    files.write_legacy_h5(directory / "tf_model.h5", numpy_state(bare))
    assert detect(directory).format == "pytorch_bin" and detect(directory).path == directory / "pytorch_model.bin"
    files.write_canonical_files(directory, bare.config.to_dict(), numpy_state(bare))
    found = detect(directory)
    assert (found.format, found.path, found.directory) == ("canonical", directory / "model.safetensors", directory)
    assert detect(directory / "tf_model.h5").format == "legacy_h5"
    assert detect(directory / "pytorch_model.bin").format == "pytorch_bin"
    for name, fmt in (("m.keras", "keras"), ("m.weights.h5", "keras_weights")):
        (tmp_path / name).write_bytes(b"")
        assert detect(tmp_path / name).format == fmt
    with pytest.raises(CheckpointError, match="Keras variables"):
        files.read_weights(tmp_path / "m.keras")
    (tmp_path / "notes.txt").write_text("no model")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        detect(tmp_path / "notes.txt")
    assert [files.is_model_file(n) for n in ("config.json", "model-00001-of-00002.safetensors", "tf_model.h5",
                                             "spiece.model", "model-final.safetensors", "README.md")] == \
        [True, True, True, False, False, False]
