"""PyTorch task heads: outputs, losses, the ponder cost, weight tying, Auto classes, training."""

import numpy as np
import pytest
import torch

import cases
import oracle
from act import (
    AlbertActConfig,
    AlbertActForMaskedLM,
    AlbertActForMultipleChoice,
    AlbertActForPreTraining,
    AlbertActForQuestionAnswering,
    AlbertActForSequenceClassification,
    AlbertActForTokenClassification,
    AlbertActModel,
)
from act.checkpoints import CheckpointWarning
from alignment import misaligned

HEADS = [AlbertActForPreTraining, AlbertActForMaskedLM, AlbertActForSequenceClassification,
         AlbertActForTokenClassification, AlbertActForQuestionAnswering, AlbertActForMultipleChoice]


def config(**overrides):
    return AlbertActConfig(**cases.tiny_config_kwargs(**overrides))


def inputs(seed=0, batch=3, length=10):
    ids, mask, types = cases.make_inputs(seed, batch=batch, length=length)
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)


def labels_for(cls, ids, cfg):
    batch, length = ids.shape
    g = torch.Generator().manual_seed(0)
    if cls is AlbertActForPreTraining:
        mlm = torch.full_like(ids, -100)
        mlm[:, 1] = ids[:, 1]
        return dict(labels=mlm, sentence_order_label=torch.randint(0, 2, (batch,), generator=g))
    if cls is AlbertActForMaskedLM:
        mlm = torch.full_like(ids, -100)
        mlm[:, 2] = ids[:, 2]
        return dict(labels=mlm)
    if cls is AlbertActForSequenceClassification:
        return dict(labels=torch.randint(0, cfg.num_labels, (batch,), generator=g))
    if cls is AlbertActForTokenClassification:
        return dict(labels=torch.randint(0, cfg.num_labels, (batch, length), generator=g))
    if cls is AlbertActForQuestionAnswering:
        return dict(start_positions=torch.tensor([1, 2, 0]), end_positions=torch.tensor([3, 2, 1]))
    return dict(labels=torch.randint(0, 2, (batch // 3 or 1,), generator=g))


def call(model, cls, ids, mask, types, **labels):
    if cls is AlbertActForMultipleChoice:  # (batch=1, choices=3, len)
        ids, mask, types = ids[None], mask[None], types[None]
    return model(input_ids=ids, attention_mask=mask, token_type_ids=types, **labels)


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_head_encoder_matches_oracle_and_loss_adds_the_ponder_cost(cls):
    torch.manual_seed(0)
    cfg = config(ponder_penalty=0.05)
    model = cls(cfg).eval()
    ids, mask, types = inputs()
    labels = labels_for(cls, ids, cfg)
    with torch.no_grad():
        with_labels = call(model, cls, ids, mask, types, **labels)
        without = call(model, cls, ids, mask, types)
    assert without.loss is None and with_labels.loss is not None and torch.isfinite(with_labels.loss)
    # the encoder inside the head is the ALBERT-ACT of the oracle (weights under `albert.`)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    reference = oracle.forward(cfg, state, ids.numpy(), mask.numpy(), types.numpy(), prefix="albert.")
    updates = with_labels.updates.reshape(ids.shape).numpy()
    np.testing.assert_array_equal(updates, reference["updates"])
    assert with_labels.ponder_cost.item() == pytest.approx(reference["ponder_cost"], abs=1e-5)
    # loss = task loss + tau * ponder cost: recompute the task loss with the penalty switched off
    model.config.ponder_penalty = 0.0
    with torch.no_grad():
        task_only = call(model, cls, ids, mask, types, **labels).loss
    assert with_labels.loss.item() == pytest.approx(task_only.item() + 0.05 * reference["ponder_cost"], abs=1e-5)


def test_pretraining_loss_is_mlm_plus_sop():
    torch.manual_seed(0)
    model = AlbertActForPreTraining(config()).eval()
    ids, mask, types = inputs()
    labels = labels_for(AlbertActForPreTraining, ids, model.config)
    with torch.no_grad():
        out = call(model, AlbertActForPreTraining, ids, mask, types, **labels)
    mlm = torch.nn.functional.cross_entropy(out.prediction_logits.reshape(-1, 120), labels["labels"].reshape(-1))
    sop = torch.nn.functional.cross_entropy(out.sop_logits, labels["sentence_order_label"])
    assert out.loss.item() == pytest.approx((mlm + sop).item(), abs=1e-6)
    assert out.prediction_logits.shape == (3, 10, 120) and out.sop_logits.shape == (3, 2)


def test_ponder_term_alone_gives_the_halting_unit_a_gradient():
    torch.manual_seed(0)
    model = AlbertActForSequenceClassification(config(ponder_penalty=1.0, classifier_dropout_prob=0.0))
    ids, mask, types = inputs()
    out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0]))
    task = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 0]))
    halting = model.albert.encoder.albert_layer.act.dense.weight
    (grad_ponder,) = torch.autograd.grad(out.loss - task, halting, retain_graph=True)
    assert grad_ponder.abs().sum() > 0
    assert torch.allclose(out.loss - task, 1.0 * out.ponder_cost)


@pytest.mark.parametrize("problem, labels, loss_fn", [
    ("regression", torch.tensor([0.5, -1.0, 2.0]), "mse"),
    ("single_label_classification", torch.tensor([0, 2, 1]), "ce"),
    ("multi_label_classification", torch.tensor([[1., 0., 1.], [0., 0., 1.], [1., 1., 0.]]), "bce"),
])
def test_sequence_classification_problem_types(problem, labels, loss_fn):
    torch.manual_seed(0)
    num_labels = 1 if problem == "regression" else 3
    model = AlbertActForSequenceClassification(config(num_labels=num_labels)).eval()
    ids, mask, types = inputs()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert model.config.problem_type == problem
    logits = out.logits
    expected = {"mse": lambda: torch.nn.functional.mse_loss(logits.squeeze(-1), labels),
                "ce": lambda: torch.nn.functional.cross_entropy(logits, labels),
                "bce": lambda: torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)}[loss_fn]()
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_multiple_choice_shapes_and_bad_rank():
    torch.manual_seed(0)
    model = AlbertActForMultipleChoice(config()).eval()
    ids, mask, types = inputs(batch=6)
    with torch.no_grad():
        out = model(input_ids=ids.reshape(2, 3, -1), attention_mask=mask.reshape(2, 3, -1))
    assert out.logits.shape == (2, 3) and out.updates.shape == (2, 3, 10)
    with pytest.raises(ValueError, match="num_choices"):
        model(input_ids=ids)


def test_heads_round_trip_and_load_through_auto_classes(tmp_path):
    from safetensors.numpy import load_file
    from transformers import AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AlbertActForPreTraining(config()).eval()
    assert model.predictions.decoder.weight is model.albert.embeddings.word_embeddings.weight
    model.save_pretrained(tmp_path / "pre")
    saved = load_file(str(tmp_path / "pre" / "model.safetensors"))
    assert "albert.encoder.albert_layer.act.dense.weight" in saved and "predictions.bias" in saved
    assert "sop_classifier.classifier.weight" in saved
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path / "pre").eval()
    assert type(loaded) is AlbertActForPreTraining
    assert loaded.predictions.decoder.weight is loaded.albert.embeddings.word_embeddings.weight
    ids, mask, types = inputs()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    with torch.no_grad():  # two instances, one on misaligned weights: counts exactly, floats within tolerance
        a, b = misaligned(model)(input_ids=ids, attention_mask=mask), loaded(input_ids=ids, attention_mask=mask)
    assert torch.equal(a.updates, b.updates)
    for key in ("prediction_logits", "sop_logits"):
        torch.testing.assert_close(getattr(b, key), getattr(a, key), rtol=0, atol=1e-5)
    # the bare encoder loads out of the head checkpoint
    encoder = AutoModel.from_pretrained(tmp_path / "pre").eval()
    assert type(encoder) is AlbertActModel
    with torch.no_grad():
        assert torch.equal(encoder(input_ids=ids, attention_mask=mask).updates, a.updates)
    with pytest.warns(CheckpointWarning, match=r"newly initialised .*classifier\.bias, classifier\.weight"), \
            pytest.warns(CheckpointWarning, match=r"not used by AlbertActForSequenceClassification: predictions\."):
        classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pre", num_labels=3)
    assert type(classifier) is AlbertActForSequenceClassification


def synthetic_task(n=64, length=8, seed=0):
    """The first token is 7 or 8 and says the label: learnable by a tiny model in a few steps."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, 120, (n, length), generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    ids[:, 0] = 7 + labels
    return ids, labels


def train(model, ids, labels, steps, lr=3e-3):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        batch = slice((step * 16) % len(ids), (step * 16) % len(ids) + 16)
        loss = model(input_ids=ids[batch], labels=labels[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def test_raising_the_ponder_penalty_lowers_mean_updates():
    ids, labels = synthetic_task()
    means = []
    for penalty in (0.0, 0.5):
        torch.manual_seed(0)
        model = AlbertActForSequenceClassification(config(ponder_penalty=penalty, num_hidden_layers=8))
        with torch.no_grad():  # start with tokens pondering a few steps
            model.albert.encoder.albert_layer.act.dense.bias.fill_(-2.0)
        train(model, ids, labels, steps=40)
        with torch.no_grad():
            means.append(model(input_ids=ids).updates.mean().item())
    assert means[1] < means[0] - 0.5, means


def test_trainer_fine_tune_reduces_the_loss(tmp_path):
    from transformers import Trainer, TrainingArguments

    ids, labels = synthetic_task(n=96)
    dataset = [{"input_ids": i, "attention_mask": torch.ones_like(i), "labels": l} for i, l in zip(ids, labels)]
    torch.manual_seed(0)
    model = AlbertActForSequenceClassification(config(ponder_penalty=1e-3, classifier_dropout_prob=0.0))

    def mean_loss():
        model.eval()
        with torch.no_grad():
            return model(input_ids=ids, labels=labels).loss.item()

    before = mean_loss()
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=4,
                             learning_rate=3e-3, report_to=[], use_cpu=True, save_strategy="no",
                             logging_strategy="no", disable_tqdm=True, seed=0)
    Trainer(model=model, args=args, train_dataset=dataset).train()
    after = mean_loss()
    assert after < before * 0.7, (before, after)


def test_readme_heads_section_runs(tmp_path, monkeypatch):
    from test_readme import python_blocks, section

    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(section("heads"))
    assert blocks
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md#heads", "exec"), namespace)
    assert namespace["out"].logits.shape == (4, 2) and namespace["out"].loss is not None
