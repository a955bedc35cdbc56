"""The one checked load path (act.checkpoints.loading), as a user meets it: both frameworks' `from_pretrained`, every
format, transformers' loading options, and every CLI command. A checkpoint that does not fit the model is never
loaded silently: a missing or unexpected encoder tensor, a wrong shape or a non-float tensor where a float weight
belongs is a `CheckpointError` naming the file and the tensor (and both shapes); a task head missing from the
checkpoint is initialised, with a warning naming the new weights."""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

import cases
from act import AlbertActConfig, AlbertActForSequenceClassification, AlbertActModel
from act.checkpoints import CheckpointError, CheckpointWarning, files
from act.commands.cli import main

HAS_KERAS = importlib.util.find_spec("tensorflow") is not None
DEMO = Path(__file__).resolve().parents[1] / "src" / "act" / "demo_model"
HALTING = "encoder.albert_layer.act.dense.weight"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny model saved in the canonical format: (config, model, NumPy state, directory)."""
    config, model, state = cases.build_pt_model("mixed")
    directory = tmp_path_factory.mktemp("saved")
    model.save_pretrained(directory)
    return config, model, state, directory


def broken_copy(directory: Path, target: Path, change) -> Path:
    """A copy of a model directory whose model.safetensors went through `change(state)`."""
    shutil.copytree(directory, target)
    state = load_file(str(target / "model.safetensors"))
    change(state)
    save_file(state, str(target / "model.safetensors"))
    return target


def _shape(state):
    state["encoder.albert_layer.ffn.weight"] = np.zeros((36, 32), np.float32)


BROKEN = {
    "missing": (lambda s: s.pop(HALTING), rf"model\.safetensors: missing tensors: {HALTING}"),
    "unexpected": (lambda s: s.__setitem__("encoder.albert_layer.mystery.weight", np.zeros(3, np.float32)),
                   r"model\.safetensors: unexpected tensors: encoder\.albert_layer\.mystery\.weight"),
    "shape": (_shape, r"model\.safetensors: encoder\.albert_layer\.ffn\.weight has shape \(36, 32\) in the "
                      r"checkpoint but the model expects \(37, 32\)"),
    "int32": (lambda s: s.__setitem__(HALTING, (s[HALTING] * 100).astype(np.int32)),
              rf"model\.safetensors: {HALTING} holds int32 values in the checkpoint but the model's weight is "
              r"floating point"),
    "nan": (lambda s: s[HALTING].__setitem__((0, 3), np.nan),
            rf"model\.safetensors: {HALTING} holds NaN or infinite values in the checkpoint"),
    "inf": (lambda s: s["embeddings.word_embeddings.weight"].__setitem__((5, 0), -np.inf),
            r"model\.safetensors: embeddings\.word_embeddings\.weight holds NaN or infinite values"),
}
FRAMEWORKS = ["pytorch", pytest.param("keras", marks=pytest.mark.skipif(not HAS_KERAS, reason="no tensorflow"))]


def load(framework: str, directory, **kwargs):
    if framework == "pytorch":
        return AlbertActModel.from_pretrained(directory, **kwargs)
    from act import TFAlbertActModel

    return TFAlbertActModel.from_pretrained(directory, **kwargs)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_checkpoint_that_does_not_fit_is_a_checkpoint_error(tmp_path, saved, framework, case):
    change, message = BROKEN[case]
    directory = broken_copy(saved[3], tmp_path / case, change)
    with pytest.raises(CheckpointError, match=message) as info:
        load(framework, directory)
    assert str(info.value).startswith(str(directory / "model.safetensors") + ": ")


@pytest.mark.parametrize("fmt", ["pytorch_model.bin", "tf_model.h5"])
def test_every_format_goes_through_the_checks_in_pytorch(tmp_path, saved, fmt):
    config, model, state, _ = saved
    broken = {k: v for k, v in state.items() if k != HALTING}
    directory = tmp_path / "research"
    directory.mkdir()
    config.save_pretrained(directory)
    if fmt == "pytorch_model.bin":
        torch.save({k: torch.from_numpy(v) for k, v in broken.items()}, directory / fmt)
    else:
        files.write_legacy_h5(directory / fmt, broken)
    with pytest.raises(CheckpointError, match=rf"{fmt.replace('.', '[.]')}: missing tensors: {HALTING}"):
        AlbertActModel.from_pretrained(directory)


def test_transformers_own_file_resolution_is_checked_too(tmp_path, saved):
    """Where transformers resolves the files itself (a hub id), the tensors still pass the checks: here its
    from_pretrained is called directly on a local directory, as it would be for downloaded files."""
    from transformers import AutoModel, PreTrainedModel

    directory = broken_copy(saved[3], tmp_path / "broken", BROKEN["missing"][0])
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: missing tensors: {HALTING}"):
        PreTrainedModel.from_pretrained.__func__(AlbertActModel, directory)
    with pytest.raises(CheckpointError, match=rf"missing tensors: {HALTING}"):
        AutoModel.from_pretrained(directory)
    config, model, state, good = saved
    fine = PreTrainedModel.from_pretrained.__func__(AlbertActModel, good)
    for key, value in fine.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key], err_msg=key)


def test_transformers_loading_options_keep_working(tmp_path, saved):
    config, model, state, directory = saved
    double, info = AlbertActModel.from_pretrained(directory, dtype=torch.float64, output_loading_info=True)
    assert double.dtype == torch.float64 and not info["missing_keys"] and not info["unexpected_keys"]
    for key, value in double.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key].astype(np.float64), err_msg=key)
    assert str(double.name_or_path) == str(directory) and double.config.name_or_path == str(directory)

    other = AlbertActConfig(**cases.tiny_config_kwargs(ponder_penalty=0.5))
    given = AlbertActModel.from_pretrained(directory, config=other)
    assert given.config.ponder_penalty == 0.5
    no_pooler = AlbertActModel.from_pretrained(directory, add_pooling_layer=False)  # a model keyword
    assert no_pooler.pooler is None

    # a state dict given by the caller goes through the same checks
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    ok = AlbertActModel.from_pretrained(None, config=config, state_dict=tensors)
    assert torch.equal(ok.encoder.albert_layer.act.dense.weight, tensors[HALTING])
    with pytest.raises(CheckpointError, match=rf"the state_dict given to from_pretrained: missing tensors: {HALTING}"):
        AlbertActModel.from_pretrained(None, config=config,
                                       state_dict={k: v for k, v in tensors.items() if k != HALTING})


def test_an_encoder_loaded_into_a_task_model_initialises_the_head_and_says_so(tmp_path, saved):
    from transformers import AutoModelForSequenceClassification

    config, model, state, directory = saved
    with pytest.warns(CheckpointWarning, match=r"model\.safetensors: AlbertActForSequenceClassification weights not "
                                               r"in the checkpoint, newly initialised .*classifier\.bias, "
                                               r"classifier\.weight"):
        head = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=3)
    assert type(head) is AlbertActForSequenceClassification and tuple(head.classifier.weight.shape) == (3, 32)
    assert torch.isfinite(head.classifier.weight).all() and head.classifier.weight.abs().sum() > 0
    for key, value in head.albert.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key], err_msg=key)

    # a head of another shape: an error naming both shapes, unless transformers' ignore_mismatched_sizes is asked
    head.save_pretrained(tmp_path / "three")
    with pytest.raises(CheckpointError, match=r"classifier\.weight has shape \(3, 32\) in the checkpoint but the "
                                              r"model expects \(5, 32\)"):
        AlbertActForSequenceClassification.from_pretrained(tmp_path / "three", num_labels=5)
    with pytest.warns(CheckpointWarning, match=r"newly initialised .*classifier\.bias, classifier\.weight"):
        five = AlbertActForSequenceClassification.from_pretrained(tmp_path / "three", num_labels=5,
                                                                  ignore_mismatched_sizes=True)
    assert tuple(five.classifier.weight.shape) == (5, 32)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_ignore_mismatched_sizes_in_both_frameworks(saved, framework, caplog):
    """A weight of another shape (here the vocabulary) is a ShapeMismatchError, also a RuntimeError as in
    transformers; with ignore_mismatched_sizes=True it is initialised instead, with transformers' "Reinit due to size
    mismatch" warning on its logger and a CheckpointWarning, and every other weight is loaded."""
    from act.checkpoints import ShapeMismatchError

    config, model, state, directory = saved
    with pytest.raises(ShapeMismatchError, match=r"word_embeddings\.weight has shape \(\d+, \d+\) in the "
                                                 r"checkpoint but the model expects \(10, ") as error:
        load(framework, directory, vocab_size=10)
    assert isinstance(error.value, RuntimeError) and isinstance(error.value, CheckpointError)
    assert "ignore_mismatched_sizes=True" in str(error.value)
    with caplog.at_level("WARNING", logger="transformers.modeling_utils"):
        with pytest.warns(CheckpointWarning, match=r"another shape .*newly initialised .*word_embeddings\.weight"):
            loaded = load(framework, directory, vocab_size=10, ignore_mismatched_sizes=True)
    assert any("Reinit due to size mismatch" in record.getMessage() and record.name == "transformers.modeling_utils"
               for record in caplog.records)
    got = loaded.canonical_state_dict() if framework == "keras" else \
        {k: v.numpy() for k, v in loaded.state_dict().items()}
    for key, value in state.items():
        if "word_embeddings" in key or key not in got:
            continue
        np.testing.assert_array_equal(np.asarray(got[key]), value, err_msg=key)
    assert np.asarray(got["embeddings.word_embeddings.weight"]).shape[0] == 10
    if framework == "pytorch":  # transformers' loading info lists them as mismatched, not missing
        _, info = AlbertActModel.from_pretrained(directory, vocab_size=10, ignore_mismatched_sizes=True,
                                                 output_loading_info=True)
        mismatched = {name: (tuple(a), tuple(b)) for name, a, b in info["mismatched_keys"]}
        name = "embeddings.word_embeddings.weight"
        assert mismatched[name] == (tuple(state[name].shape), (10, config.embedding_size))
        assert name not in info["missing_keys"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("override, message", [(dict(num_hidden_layers=0), "num_hidden_layers"),
                                               (dict(act_epsilon=2.0), "act_epsilon"),
                                               (dict(act_epsilon=-1.0), "act_epsilon"),
                                               (dict(layer_norm_eps=float("nan")), "layer_norm_eps")])
def test_keyword_overrides_are_validated(saved, framework, override, message):
    with pytest.raises(ValueError, match=message) as error:
        load(framework, saved[3], **override)
    assert "config.json" not in str(error.value)  # the bad value is the keyword's, not the file's


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_invalid_config_file_is_named(tmp_path, saved, framework):
    directory = tmp_path / "bad"
    shutil.copytree(saved[3], directory)
    raw = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(dict(raw, act_epsilon=2.0)))
    with pytest.raises(ValueError, match=rf"^{directory / 'config.json'}: act_epsilon must lie strictly between"):
        load(framework, directory)


def test_a_tied_copy_must_equal_its_source(tmp_path):
    from act import AlbertActForMaskedLM

    torch.manual_seed(0)
    model = AlbertActForMaskedLM(AlbertActConfig(**cases.tiny_config_kwargs())).eval()
    directory = tmp_path / "mlm"
    directory.mkdir()
    model.config.save_pretrained(directory)
    state = {k: v.clone() for k, v in model.state_dict().items()}  # torch.save keeps the tied copies
    torch.save(state, directory / "pytorch_model.bin")
    again = AlbertActForMaskedLM.from_pretrained(directory)
    assert again.predictions.decoder.weight is again.albert.embeddings.word_embeddings.weight
    state["predictions.decoder.weight"] = state["predictions.decoder.weight"] + 1.0
    torch.save(state, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"predictions\.decoder\.weight differs from "
                                              r"albert\.embeddings\.word_embeddings\.weight"):
        AlbertActForMaskedLM.from_pretrained(directory)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sharded_and_bfloat16_checkpoints(tmp_path, saved, framework):
    config, model, state, _ = saved
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    loaded = load(framework, tmp_path / "sharded")
    got = loaded.canonical_state_dict() if framework == "keras" else {k: v.numpy() for k, v in
                                                                      loaded.state_dict().items()}
    for key in state:
        np.testing.assert_array_equal(got[key], state[key], err_msg=key)
    shard = sorted((tmp_path / "sharded").glob("model-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(CheckpointError, match=rf"lists the shard {shard.name}, which does not exist"):
        load(framework, tmp_path / "sharded")

    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    half = load(framework, tmp_path / "bf16", **({"dtype": torch.bfloat16} if framework == "pytorch" else {}))
    got = half.canonical_state_dict() if framework == "keras" else {k: v.float().numpy() for k, v in
                                                                    half.state_dict().items()}
    for key in state:  # bfloat16 values, exactly (float32 holds every bfloat16)
        want = torch.from_numpy(state[key]).to(torch.bfloat16).float().numpy()
        np.testing.assert_array_equal(got[key], want, err_msg=key)


# ------------------------------------------------------------------------------------------------ the CLI


@pytest.fixture()
def broken_demo(tmp_path):
    """The issue's example: the demo model with its halting unit deleted from model.safetensors."""
    return broken_copy(DEMO, tmp_path / "demo", lambda s: s.pop("albert." + HALTING))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_cli_commands_exit_1_with_the_message(tmp_path, broken_demo, framework, capsys):
    message = f"{broken_demo / 'model.safetensors'}: missing tensors: {HALTING}"
    assert main(["inspect", "a lump in the middle", "--model", str(broken_demo), "--framework", framework]) == 1
    assert message in capsys.readouterr().err
    text = tmp_path / "text.txt"
    text.write_text("a lump in the middle of the monkeys\n")
    assert main(["stats", str(text), "--model", str(broken_demo), "--framework", framework, "--no-progress"]) == 1
    assert message in capsys.readouterr().err
    if framework == "pytorch":
        assert main(["convert", str(broken_demo), str(tmp_path / "out")]) == 1
        assert "missing tensors: albert." + HALTING in capsys.readouterr().err
        assert not (tmp_path / "out").exists()


def test_convert_verify_refuses_an_integer_weight(tmp_path, saved, capsys):
    directory = broken_copy(saved[3], tmp_path / "int", BROKEN["int32"][0])
    assert main(["convert", str(directory), str(tmp_path / "out"), "--verify"]) == 1
    assert f"{HALTING} holds int32 values" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_loaders_refuse_keras_and_tf1_sources_with_a_hint(tmp_path, saved):
    (tmp_path / "w.weights.h5").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"w\.weights\.h5: .*convert"):
        AlbertActModel.from_pretrained(tmp_path / "w.weights.h5")
    with pytest.raises(CheckpointError, match="no such file or directory"):
        files.detect(tmp_path / "nothing")
    assert json.loads((saved[3] / "config.json").read_text())["model_type"] == "albert_act"


def test_check_state_names_every_problem_and_reports_what_it_skipped():
    from act.checkpoints import check_state

    expected = {"encoder.a.weight": ((3, 2), True), "encoder.b.bias": ((4,), True), "encoder.c.weight": ((1, 5), True),
                "classifier.weight": ((2, 4), True)}
    state = {"encoder.a.weight": np.zeros((2, 3)), "encoder.b.bias": np.zeros(4, np.int64),
             "encoder.x.weight": np.zeros(1), "embeddings.position_ids": np.zeros((1, 8))}
    with pytest.raises(CheckpointError) as info:
        check_state(state, expected, "some/file.bin", "M")
    message = str(info.value)
    assert message.startswith("some/file.bin: ")
    assert "missing tensors: classifier.weight, encoder.c.weight" in message  # strict: the head too
    assert "unexpected tensors: encoder.x.weight" in message and "position_ids" not in message
    assert "encoder.a.weight has shape (2, 3) in the checkpoint but the model expects (3, 2)" in message
    assert "encoder.b.bias holds int64 values" in message
    good = {"encoder.a.weight": np.zeros((3, 2), np.float32), "encoder.b.bias": np.zeros(4, np.float32),
            "encoder.c.weight": np.zeros((1, 5), np.float32), "embeddings.position_ids": np.zeros((1, 8)),
            "sop_classifier.classifier.bias": np.zeros(2, np.float32)}
    checked, report = check_state(good, expected, "f", "M", strict=False)
    assert sorted(checked) == ["encoder.a.weight", "encoder.b.bias", "encoder.c.weight"]
    assert report.initialised == ["classifier.weight"] and report.unused_heads == ["sop_classifier.classifier.bias"]
    assert report.skipped == {"embeddings.position_ids": "buffer, not a weight",
                              "sop_classifier.classifier.bias": "not used by M"}


def test_an_untied_model_loads_both_copies():
    from act.checkpoints import check_state

    expected = {"albert.embeddings.word_embeddings.weight": ((3, 2), True),
                "predictions.decoder.weight": ((3, 2), True)}
    state = {"albert.embeddings.word_embeddings.weight": np.ones((3, 2), np.float32),
             "predictions.decoder.weight": np.zeros((3, 2), np.float32)}
    checked, _ = check_state(state, expected, "f", "M", ties=False)
    assert sorted(checked) == sorted(state)
    with pytest.raises(CheckpointError, match="differs from albert.embeddings.word_embeddings.weight"):
        check_state(state, expected, "f", "M", ties=True)


def test_an_untied_mlm_checkpoint_loads_in_pytorch_and_keras_refuses_it_by_name(tmp_path):
    """`tie_word_embeddings=False`: PyTorch keeps both matrices; the Keras MLM head has no decoder weight of its own,
    so it refuses the config (naming the key and the file) instead of silently tying (its save then claimed an
    untied model without a decoder, and PyTorch initialised the decoder at random)."""
    from act import AlbertActForMaskedLM
    from act.commands.convert import convert

    torch.manual_seed(0)
    model = AlbertActForMaskedLM(AlbertActConfig(**cases.tiny_config_kwargs(tie_word_embeddings=False))).eval()
    assert not torch.equal(model.predictions.decoder.weight, model.albert.embeddings.word_embeddings.weight)
    model.save_pretrained(tmp_path / "untied")
    again = AlbertActForMaskedLM.from_pretrained(tmp_path / "untied")
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    convert(tmp_path / "untied", tmp_path / "canonical")
    assert "predictions.decoder.weight" in load_file(str(tmp_path / "canonical" / "model.safetensors"))
    converted = AlbertActForMaskedLM.from_pretrained(tmp_path / "canonical")
    for key, value in model.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key
    if not HAS_KERAS:
        return
    from act import TFAlbertActForMaskedLM, TFAlbertActForPreTraining

    for cls in (TFAlbertActForMaskedLM, TFAlbertActForPreTraining):
        with pytest.raises(ValueError, match="tie_word_embeddings=False: the Keras MLM head always ties"):
            cls(model.config)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'untied' / 'config.json'}: tie_word_embeddings=False"):
        TFAlbertActForMaskedLM.from_pretrained(tmp_path / "untied")
    with pytest.raises(CheckpointError, match=rf"{tmp_path / 'untied' / 'config.json'}: cannot be written as a "
                                              rf"Keras TFAlbertActForMaskedLM: tie_word_embeddings=False"):
        convert(tmp_path / "untied", tmp_path / "untied.keras", to="keras")
    assert not (tmp_path / "untied.keras").exists()
