"""ALBERT-ACT in transformers' tools, as a user meets them: pipelines (batched, padded, truncated), Trainer
predictions and compute_metrics, attention backends, gradient checkpointing, from_pretrained(None, state_dict=...).

Batching with padding must not change a single example's result: padding starts halted and is never attended to,
so the per-example outputs of a padded batch equal the unbatched ones (halting counts exactly, floats within the
float32 tolerance).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import cases  # noqa: E402
from act import (  # noqa: E402
    AlbertActConfig,
    AlbertActForMaskedLM,
    AlbertActForQuestionAnswering,
    AlbertActForSequenceClassification,
    AlbertActForTokenClassification,
    AlbertActModel,
)
from act.tokenization import match_model_max_length, write_model_max_length  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "src" / "act" / "demo_model"
TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json")
ATOL = 1e-5
TEXTS = ["the light shined in darkness .",
         "and the earth was without form , and void ; and darkness was upon the face of the deep ."]


def tiny_kwargs(**overrides):
    """A tiny config with the demo tokenizer's vocabulary (so the demo tokenizer can feed it)."""
    vocab = json.loads((DEMO / "config.json").read_text())["vocab_size"]
    return cases.tiny_config_kwargs(vocab_size=vocab, num_hidden_layers=4, act_epsilon=0.05, **overrides)


def save_tiny(directory: Path, model_class, **overrides) -> Path:
    """A tiny seeded model of `model_class` saved with the demo tokenizer (model_max_length fixed)."""
    torch.manual_seed(0)
    model_class(AlbertActConfig(**tiny_kwargs(**overrides))).save_pretrained(directory)
    for name in TOKENIZER_FILES:
        shutil.copy(DEMO / name, directory / name)
    write_model_max_length(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "masked": save_tiny(root / "masked", AlbertActForMaskedLM),
        "sequence": save_tiny(root / "sequence", AlbertActForSequenceClassification, num_labels=3),
        "token": save_tiny(root / "token", AlbertActForTokenClassification, num_labels=3),
        "qa": save_tiny(root / "qa", AlbertActForQuestionAnswering),
    }


# ----------------------------------------------------------------------------------------------------------
# Pipelines
# ----------------------------------------------------------------------------------------------------------


def run_pipeline(task, model, inputs, batch_size, **kwargs):
    from transformers import pipeline

    return pipeline(task, model=str(model), batch_size=batch_size, **kwargs)(inputs)


@pytest.mark.parametrize("source", ["demo", "tiny"])
def test_fill_mask_batched_equals_unbatched(source, tiny_dirs):
    model = DEMO if source == "demo" else tiny_dirs["masked"]
    texts = ["the [MASK] shined in darkness .", "and the earth was without [MASK] , and void ; and darkness ."]
    batched = run_pipeline("fill-mask", model, texts, batch_size=2)
    single = [run_pipeline("fill-mask", model, text, batch_size=1) for text in texts]
    assert len(batched) == 2
    for got, expected in zip(batched, single):
        assert [r["token"] for r in got] == [r["token"] for r in expected]
        np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in expected], rtol=0, atol=ATOL)


def test_feature_extraction_batched_equals_unbatched():
    from transformers import AutoTokenizer

    batched = run_pipeline("feature-extraction", DEMO, TEXTS, batch_size=2, return_tensors=True)
    tokenizer = AutoTokenizer.from_pretrained(DEMO)
    for text, features in zip(TEXTS, batched):
        single = run_pipeline("feature-extraction", DEMO, text, batch_size=1, return_tensors=True)
        length = len(tokenizer(text)["input_ids"])
        assert single.shape[1] == length and features.shape[1] >= length  # a padded row is as long as the batch
        torch.testing.assert_close(features[:, :length], single, atol=ATOL, rtol=0)


@pytest.mark.parametrize("task,key", [("text-classification", "sequence"), ("token-classification", "token")])
def test_classification_pipelines_batched_equal_unbatched(task, key, tiny_dirs):
    batched = run_pipeline(task, tiny_dirs[key], TEXTS, batch_size=2)
    for text, got in zip(TEXTS, batched):
        expected = run_pipeline(task, tiny_dirs[key], text, batch_size=1)
        got, expected = (got if isinstance(got, list) else [got]), (expected if isinstance(expected, list)
                                                                     else [expected])
        if task == "text-classification":
            got, expected = got[0], expected[0]
            assert got["label"] == expected["label"]
            assert got["score"] == pytest.approx(expected["score"], abs=ATOL)
        else:
            assert [(e["index"], e["entity"]) for e in got] == [(e["index"], e["entity"]) for e in expected]
            np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in expected], atol=ATOL)


def test_question_answering_batched_with_padding(tiny_dirs):
    """transformers 5 removed the question-answering pipeline; the model itself, fed a padded batch of
    (question, context) pairs by the tokenizer, gives each pair the logits and counts it gets alone."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dirs["qa"])
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_dirs["qa"]).eval()
    questions, contexts = ["what shined ?", "what was void ?"], TEXTS
    batch = tokenizer(questions, contexts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
        for row, (question, context) in enumerate(zip(questions, contexts)):
            alone = model(**tokenizer(question, context, return_tensors="pt"))
            length = alone.start_logits.shape[1]
            assert torch.equal(out.updates[row, :length], alone.updates[0])
            assert bool((out.updates[row, length:] == 0).all())
            torch.testing.assert_close(out.start_logits[row, :length], alone.start_logits[0], atol=ATOL, rtol=0)
            torch.testing.assert_close(out.end_logits[row, :length], alone.end_logits[0], atol=ATOL, rtol=0)


def test_ponder_cost_is_a_scalar_attribute_not_a_key():
    """`outputs.ponder_cost` stays the batch scalar of ACT_SEMANTICS.md (usable in a loss); every key of an output
    is per example, which is what pipelines and Trainer split and concatenate."""
    config, model, _ = cases.build_pt_model("mixed", seed=0)
    ids, mask, types = (torch.from_numpy(a) for a in cases.make_inputs(0, batch=3, length=9))
    model.train()
    out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
    assert "ponder_cost" not in out.keys()
    assert all(value.shape[0] == 3 for value in out.values())
    expected = ((out.updates.detach().double() + out.remainders.detach().double()) * mask).sum(1).mean()
    assert out.ponder_cost.dim() == 0
    assert out.ponder_cost.item() == pytest.approx(expected.item(), abs=1e-5)
    assert torch.equal(out["ponder_cost"], out.ponder_cost)  # dict-style access still works
    assert len(out.to_tuple()) == len(out.keys())
    out.ponder_cost.backward()  # differentiable through the remainders
    assert model.encoder.albert_layer.act.dense.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------------------
# Tokenizer: model_max_length follows max_position_embeddings (truncation=True works)
# ----------------------------------------------------------------------------------------------------------

LONG_TEXT = " ".join(["and the light shined in darkness"] * 30)


def test_truncation_in_a_pipeline_on_a_saved_directory(tiny_dirs):
    features = run_pipeline("feature-extraction", tiny_dirs["sequence"], LONG_TEXT, batch_size=1,
                            tokenize_kwargs={"truncation": True}, return_tensors=True)
    assert features.shape[1] == 64  # max_position_embeddings of the tiny config


def test_truncation_in_a_pipeline_on_the_demo_model():
    features = run_pipeline("feature-extraction", DEMO, LONG_TEXT, batch_size=1,
                            tokenize_kwargs={"truncation": True}, return_tensors=True)
    assert features.shape[1] == json.loads((DEMO / "config.json").read_text())["max_position_embeddings"]


def test_write_model_max_length(tmp_path):
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"max_position_embeddings": 48}))
    assert write_model_max_length(directory) is False  # no tokenizer: nothing to write
    shutil.copy(DEMO / "spiece.model", directory)
    assert write_model_max_length(directory) is True  # bare spiece.model: a tokenizer_config.json is created
    assert json.loads((directory / "tokenizer_config.json").read_text()) == {
        "model_max_length": 48, "tokenizer_class": "AlbertTokenizer"}
    umask = os.umask(0)
    os.umask(umask)
    assert (directory / "tokenizer_config.json").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    shutil.copy(DEMO / "tokenizer_config.json", directory)
    (directory / "tokenizer_config.json").chmod(0o640)
    before = json.loads((directory / "tokenizer_config.json").read_text())
    assert write_model_max_length(directory) is True
    assert (directory / "tokenizer_config.json").stat().st_mode & 0o777 == 0o640  # the file keeps its permissions
    after = json.loads((directory / "tokenizer_config.json").read_text())
    assert after == {**before, "model_max_length": 48}  # the other settings are kept
    assert write_model_max_length(directory) is False  # already right: not rewritten
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "spiece.model", "tokenizer_config.json"]
    with pytest.raises(ValueError, match="max_position_embeddings"):
        write_model_max_length(directory, max_length=0)


def test_match_model_max_length_survives_save_pretrained(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = match_model_max_length(AutoTokenizer.from_pretrained(DEMO), AlbertActConfig(**tiny_kwargs()))
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.model_max_length == 64
    assert len(reloaded(LONG_TEXT, truncation=True)["input_ids"]) == 64


# ----------------------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------------------


def trainer_setup(tmp_path, **arguments):
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    config = AlbertActConfig(**cases.tiny_config_kwargs(num_labels=2, num_hidden_layers=4, act_epsilon=0.05))
    model = AlbertActForSequenceClassification(config)
    rng = np.random.default_rng(0)
    rows = []
    for index in range(12):
        length = int(rng.integers(3, 9))
        ids = torch.from_numpy(rng.integers(1, 120, size=length))
        rows.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": int(index % 2)})

    def collate(batch):
        longest = max(len(row["input_ids"]) for row in batch)
        pad = lambda t: torch.nn.functional.pad(t, (0, longest - len(t)))  # noqa: E731
        return {"input_ids": torch.stack([pad(r["input_ids"]) for r in batch]),
                "attention_mask": torch.stack([pad(r["attention_mask"]) for r in batch]),
                "labels": torch.tensor([r["labels"] for r in batch])}

    def compute_metrics(p):  # the usual one, from transformers' examples
        return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}

    arguments = {"per_device_train_batch_size": 4, "num_train_epochs": 1, **arguments}
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_eval_batch_size=4, report_to=[],
                             save_strategy="no", use_cpu=True, **arguments)
    trainer = Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows, data_collator=collate,
                      compute_metrics=compute_metrics)
    return trainer, model, rows, collate


def test_trainer_predictions_are_the_logits(tmp_path):
    trainer, model, rows, collate = trainer_setup(tmp_path)
    prediction = trainer.predict(rows)
    assert isinstance(prediction.predictions, np.ndarray) and prediction.predictions.shape == (12, 2)
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0


def test_trainer_halting_fields_on_request(tmp_path):
    """`trainer.predict(dataset, ignore_keys=[])` returns (logits, updates, remainders), updates padded with -100
    across batches of different lengths."""
    trainer, model, rows, collate = trainer_setup(tmp_path)
    trainer.compute_metrics = None  # the usual compute_metrics expects the logits alone
    logits, updates, remainders = trainer.predict(rows, ignore_keys=[]).predictions
    assert logits.shape == (12, 2) and updates.shape[0] == 12 and remainders.shape == updates.shape
    model.eval()
    with torch.no_grad():
        for start in range(0, 12, 4):
            out = model(**{k: v for k, v in collate(rows[start:start + 4]).items() if k != "labels"})
            got = updates[start:start + 4, :out.updates.shape[1]]
            assert np.array_equal(got, out.updates.numpy())
            np.testing.assert_allclose(logits[start:start + 4], out.logits.numpy(), atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------------------------------------
# Attention backends
# ----------------------------------------------------------------------------------------------------------


def outputs_of(model, inputs):
    with torch.no_grad():
        return model(**inputs)


def test_eager_and_sdpa_agree_and_the_switch_takes_effect(tmp_path):
    config, model, _ = cases.build_pt_model("mixed", seed=3)
    ids, mask, types = (torch.from_numpy(a) for a in cases.make_inputs(3, batch=4, length=12))
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    assert model.config._attn_implementation == "sdpa"
    calls = []
    import act.pt.modeling as modeling

    original = modeling.eager_attention_forward

    def counting_eager(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    modeling.eager_attention_forward = counting_eager
    try:
        sdpa = outputs_of(model, inputs)
        assert not calls  # SDPA by default
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        eager = outputs_of(model, inputs)
        assert calls  # the switch took effect
        model.save_pretrained(tmp_path)
        calls.clear()
        loaded = AlbertActModel.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
        assert loaded.config._attn_implementation == "sdpa"
        outputs_of(loaded, inputs)
        assert not calls
        loaded = AlbertActModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
        outputs_of(loaded, inputs)
        assert calls
    finally:
        modeling.eager_attention_forward = original
    assert torch.equal(eager.updates, sdpa.updates)
    torch.testing.assert_close(eager.last_hidden_state, sdpa.last_hidden_state, atol=ATOL, rtol=0)
    torch.testing.assert_close(eager.pooler_output, sdpa.pooler_output, atol=ATOL, rtol=0)


def test_a_registered_attention_function_is_used():
    """`_supports_attention_backend`: a function registered with transformers' AttentionInterface is called by the
    layer (both loops) once chosen with set_attn_implementation."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    calls = []

    def counted(module, query, key, value, attention_mask, **kwargs):
        calls.append(tuple(query.shape))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("act_test_counted", counted)
    config, model, _ = cases.build_pt_model("mixed", seed=1)
    ids, mask, types = (torch.from_numpy(a) for a in cases.make_inputs(1, batch=3, length=8))
    expected = outputs_of(model, {"input_ids": ids, "attention_mask": mask})
    model.set_attn_implementation("act_test_counted")
    with torch.no_grad():
        fast = model(input_ids=ids, attention_mask=mask)  # fast loop
        assert calls
        calls.clear()
        dense = model.encoder(model.embeddings(ids), mask, fast_path=False)
        assert len(calls) == int(dense.updates.max())  # one call per iteration of the dense loop
    assert torch.equal(fast.updates, expected.updates)


# ----------------------------------------------------------------------------------------------------------
# Gradient checkpointing of each iteration of the dense loop
# ----------------------------------------------------------------------------------------------------------


def checkpointing_case(seed=0):
    config, model, _ = cases.build_pt_model("mixed", seed=seed, hidden_dropout_prob=0.0,
                                            attention_probs_dropout_prob=0.0)
    ids, mask, types = (torch.from_numpy(a) for a in cases.make_inputs(seed, batch=3, length=10))
    return model.train(), {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def gradients(model, inputs):
    model.zero_grad()
    out = model(**inputs)
    (out.last_hidden_state.square().mean() + 1e-2 * out.ponder_cost).backward()
    return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_activation_checkpointing_gives_the_same_gradients_and_recomputes_each_iteration():
    model, inputs = checkpointing_case()
    assert model.supports_gradient_checkpointing
    calls = []  # calls of the layer's FFN: once per iteration, twice when the backward pass recomputes it
    handle = model.encoder.albert_layer.ffn.register_forward_hook(lambda *args: calls.append(1))
    plain_out, plain = gradients(model, inputs)
    plain_calls = len(calls)
    model.activation_checkpointing_enable()  # transformers 5's name (gradient_checkpointing_enable: deprecated alias)
    assert model.is_activation_checkpointing
    calls.clear()
    out, checkpointed = gradients(model, inputs)
    handle.remove()
    assert torch.equal(out.updates, plain_out.updates)
    assert plain_calls == int(plain_out.updates.max())  # one layer call per iteration
    assert len(calls) == 2 * plain_calls  # each iteration recomputed once in the backward pass
    assert checkpointed.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)
    model.activation_checkpointing_disable()
    assert not model.is_activation_checkpointing


def test_activation_checkpointing_recomputes_with_the_same_dropout_masks():
    """What the README says: with dropout active, the recompute of each iteration in the backward pass draws the
    same masks as the forward pass (torch.utils.checkpoint restores the RNG state), so the gradients are those of
    the same step without checkpointing."""
    config, model, _ = cases.build_pt_model("mixed", seed=4, hidden_dropout_prob=0.2,
                                            attention_probs_dropout_prob=0.1)
    ids, mask, types = (torch.from_numpy(a) for a in cases.make_inputs(4, batch=3, length=10))
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    model.train()
    torch.manual_seed(11)
    plain_out, plain = gradients(model, inputs)
    torch.manual_seed(12)
    _, other_masks = gradients(model, inputs)  # the test can fail: other masks give other gradients
    assert any(not torch.allclose(other_masks[name], plain[name], atol=1e-6, rtol=1e-5) for name in plain)
    model.activation_checkpointing_enable()
    torch.manual_seed(11)
    out, checkpointed = gradients(model, inputs)
    assert torch.equal(out.updates, plain_out.updates) and checkpointed.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)


def accumulated_step(tmp_path, batch_size, steps):
    """The parameters after one optimiser step (plain SGD, no clipping) of transformers' own Trainer over the same
    four examples: `steps` micro-batches of `batch_size` accumulated."""
    trainer, model, rows, collate = trainer_setup(
        tmp_path / f"{batch_size}x{steps}", per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=steps, max_steps=1, optim="sgd", learning_rate=0.5, lr_scheduler_type="constant",
        max_grad_norm=0.0, weight_decay=0.0, seed=0)
    trainer.train_dataset = rows[:4]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    return {n: p.detach() - before[n] for n, p in model.named_parameters()}


def test_trainer_gradient_accumulation_equals_the_larger_batch(tmp_path):
    """Two accumulated micro-batches of 2 make the update of one batch of 4. The model takes **kwargs, so transformers
    would assume it normalises the loss by `num_items_in_batch` itself and skip the division by the accumulation
    steps (the update came out twice as large): `accepts_loss_kwargs = False` says it does not."""
    assert AlbertActForSequenceClassification.accepts_loss_kwargs is False
    whole, accumulated = accumulated_step(tmp_path, 4, 1), accumulated_step(tmp_path, 2, 2)
    assert any(delta.abs().max() > 1e-4 for delta in whole.values())
    for name, delta in whole.items():
        torch.testing.assert_close(accumulated[name], delta, atol=1e-6, rtol=1e-4, msg=name)


def test_trainer_with_activation_checkpointing(tmp_path):
    trainer, model, rows, collate = trainer_setup(tmp_path, activation_checkpointing=True, max_steps=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    assert model.is_activation_checkpointing
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


# ----------------------------------------------------------------------------------------------------------
# from_pretrained(None, config=..., state_dict=...)
# ----------------------------------------------------------------------------------------------------------


def test_from_pretrained_with_a_state_dict_and_no_directory():
    config, model, state = cases.build_pt_model("mixed", seed=2)
    loaded = AlbertActModel.from_pretrained(None, config=config, state_dict=model.state_dict()).eval()
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    ids, mask, _ = (torch.from_numpy(a) for a in cases.make_inputs(2))
    expected, got = outputs_of(model, {"input_ids": ids, "attention_mask": mask}), \
        outputs_of(loaded, {"input_ids": ids, "attention_mask": mask})
    assert torch.equal(got.updates, expected.updates)
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------------------------------------
# The README's section, as written
# ----------------------------------------------------------------------------------------------------------


def test_readme_transformers_section_runs(tmp_path, monkeypatch):
    from test_readme import python_blocks, section

    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(section("transformers"))
    assert len(blocks) >= 4
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert len(namespace["vectors"]) == 2
    assert (Path(namespace["classifier"]) / "README.md").is_file()
    assert json.loads((Path(namespace["classifier"]) / "tokenizer_config.json").read_text())["model_max_length"] == 64
