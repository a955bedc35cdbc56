"""act.training: LAMB, the metrics, the pre-training data (pairs, n-gram masking, cache), the halting statistics and
callbacks (Trainer and Keras), `act pretrain`, `act finetune` (and --grid), gradient accumulation, the README's
training section."""

from __future__ import annotations

import itertools
import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest

from training_helpers import (DEMO, act_env, heldout_lines, labelled_rows, write_config, write_corpus, write_model,
                              write_table, write_tokenizer)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(DEMO))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("model") / "tiny")


# ---------------------------------------------------------------------------------------------------------- LAMB
def lamb_reference(w, grads, lr, beta1, beta2, eps, weight_decay, bias_correction, adapt):
    """LAMB written out step by step in float64 (You et al., 2019, Algorithm 2)."""
    w = np.array(w, np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t) if bias_correction else m
        v_hat = v / (1 - beta2 ** t) if bias_correction else v
        r = m_hat / (np.sqrt(v_hat) + eps) + weight_decay * w
        w_norm, r_norm = np.sqrt((w * w).sum()), np.sqrt((r * r).sum())
        trust = w_norm / r_norm if adapt and w_norm > 0 and r_norm > 0 else 1.0
        w = w - lr * trust * r
    return w


@pytest.mark.parametrize("bias_correction", [True, False])
def test_lamb_matches_the_algorithm(bias_correction):
    import torch

    from act.training.lamb import Lamb

    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((3, 4)), rng.standard_normal(5)
    grads1 = [rng.standard_normal((3, 4)) for _ in range(4)]
    grads2 = [rng.standard_normal(5) for _ in range(4)]
    p1 = torch.nn.Parameter(torch.tensor(w1))
    p2 = torch.nn.Parameter(torch.tensor(w2))
    optimizer = Lamb([{"params": [p1], "weight_decay": 0.01},
                      {"params": [p2], "weight_decay": 0.0, "adapt": False}],
                     lr=0.05, betas=(0.9, 0.99), eps=1e-6, bias_correction=bias_correction)
    for g1, g2 in zip(grads1, grads2):
        p1.grad, p2.grad = torch.tensor(g1), torch.tensor(g2)
        optimizer.step()
    expected1 = lamb_reference(w1, grads1, 0.05, 0.9, 0.99, 1e-6, 0.01, bias_correction, True)
    expected2 = lamb_reference(w2, grads2, 0.05, 0.9, 0.99, 1e-6, 0.0, bias_correction, False)
    np.testing.assert_allclose(p1.detach().numpy(), expected1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p2.detach().numpy(), expected2, rtol=0, atol=1e-12)


def test_lamb_first_step_by_hand():
    """One step of a 2-element weight: with bias correction m_hat = g, v_hat = g^2, so u = g / (|g| + eps) = sign(g)
    (eps = 0) and the trust ratio is ||w|| / ||u||."""
    import torch

    from act.training.lamb import Lamb

    p = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))  # ||w|| = 5
    p.grad = torch.tensor([0.5, -2.0], dtype=torch.float64)  # u = (1, -1), ||u|| = sqrt(2)
    Lamb([p], lr=0.1, eps=0.0).step()
    step = 0.1 * 5 / math.sqrt(2)
    np.testing.assert_allclose(p.detach().numpy(), [3.0 - step, 4.0 + step], rtol=0, atol=1e-15)
    zero = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))  # ||w|| = 0: trust ratio 1
    zero.grad = torch.tensor([1.0, -1.0], dtype=torch.float64)
    Lamb([zero], lr=0.1, eps=0.0).step()
    np.testing.assert_allclose(zero.detach().numpy(), [-0.1, 0.1], rtol=0, atol=1e-15)


def test_lamb_rejects_bad_settings():
    import torch

    from act.training.lamb import Lamb

    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="learning rate"):
        Lamb(p, lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        Lamb(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="weight_decay"):
        Lamb(p, weight_decay=-0.1)


# ------------------------------------------------------------------------------------------------------- metrics
def test_classification_metrics_by_hand():
    from act.training import metrics

    predictions = [1, 1, 0, 1, 0, 0, 1, 0]
    labels = [1, 0, 0, 1, 1, 0, 1, 0]
    # TP = 3 (0, 3, 6), FP = 1 (1), FN = 1 (4), TN = 3 (2, 5, 7)
    assert metrics.accuracy(predictions, labels) == 6 / 8
    assert metrics.f1(predictions, labels) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1), abs=1e-15)
    mcc = (3 * 3 - 1 * 1) / math.sqrt(4 * 4 * 4 * 4)  # (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))
    assert metrics.matthews_correlation(predictions, labels) == pytest.approx(mcc, abs=1e-15)
    # three classes: confusion (rows truth, columns prediction) [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    truth = [0, 0, 0, 1, 1, 2, 2, 2]
    guess = [0, 0, 1, 1, 2, 0, 2, 2]
    # Gorodkin: c = 5 correct, s = 8, t = (3, 2, 3), p = (3, 2, 3): (5*8 - 22) / sqrt((64 - 22) * (64 - 22))
    assert metrics.matthews_correlation(guess, truth, 3) == pytest.approx(18 / 42, abs=1e-15)
    # per-class F1: 2*2/(3+3), 2*1/(2+2), 2*2/(3+3) -> macro mean
    assert metrics.f1(guess, truth, 3) == pytest.approx((4 / 6 + 2 / 4 + 4 / 6) / 3, abs=1e-15)
    assert metrics.matthews_correlation([1, 1, 1], [0, 1, 1]) == 0.0  # constant prediction: undefined -> 0
    with pytest.raises(ValueError, match="predictions for"):
        metrics.accuracy([1, 0], [1])


def test_regression_metrics_by_hand():
    from act.training import metrics

    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 4.0]
    # means 2.5 and 3.75; deviations (-1.5, -.5, .5, 1.5) and (-1.75, .25, 1.25, .25):
    # sum xy = 2.625 + -.125 + .625 + .375 = 3.5; sum xx = 5; sum yy = 3.0625 + .0625 + 1.5625 + .0625 = 4.75
    assert metrics.pearson(x, y) == pytest.approx(3.5 / math.sqrt(5 * 4.75), abs=1e-15)
    # ranks of y with the tie at 4 sharing 2.5: (1, 2.5, 4, 2.5)
    np.testing.assert_array_equal(metrics.average_ranks(y), [1.0, 2.5, 4.0, 2.5])
    assert metrics.spearman(x, y) == pytest.approx(metrics.pearson([1, 2, 3, 4], [1, 2.5, 4, 2.5]), abs=1e-15)
    # pearson of ranks, by hand: deviations (-1.5, -.5, .5, 1.5) and (-1.5, 0, 1.5, 0):
    # sum xy = 2.25 + 0 + .75 + 0 = 3, sum xx = 5, sum yy = 4.5
    assert metrics.spearman(x, y) == pytest.approx(3.0 / math.sqrt(5 * 4.5), abs=1e-15)
    assert metrics.regression_metrics(np.array([[1.0], [2.0]]), [1.0, 4.0])["mse"] == pytest.approx(2.0)


# ----------------------------------------------------------------------------------------------------- the pairs
def numbered_documents():
    """Documents whose tokens say where they come from: token = 1000 * document + 10 * segment + position."""
    documents = []
    for d in range(1, 6):
        documents.append([[1000 * d + 10 * s + k for k in range(1 + (s + d) % 4)] for s in range(2 + d)])
    return documents


def test_pairs_follow_albert():
    from act.training.data import PairSettings, stream_pairs

    documents = numbered_documents()
    lines = [segment for document in documents for segment in [*document, []]]
    settings = PairSettings(max_seq_length=12, short_seq_prob=0.2)
    pairs = list(stream_pairs(lines, settings, random.Random(0), cls_id=2, sep_id=3))
    assert len(pairs) >= len(documents)
    for pair in pairs:
        ids, types, swapped = pair["input_ids"], pair["token_type_ids"], pair["sentence_order_label"]
        assert len(ids) <= 12 and len(types) == len(ids)
        assert ids[0] == 2 and ids[-1] == 3 and ids.count(3) == 2
        cut = ids.index(3)
        a, b = ids[1:cut], ids[cut + 1:-1]
        assert a and b
        assert types == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        first, second = (b, a) if swapped else (a, b)
        whole = first + second
        assert len({token // 1000 for token in whole}) == 1  # one document
        assert whole == sorted(whole)  # consecutive text, in order (trimming only removes ends)
        assert len(set(whole)) == len(whole)
    labels = [pair["sentence_order_label"] for pair in pairs]
    assert 0 in labels and 1 in labels


def test_pairs_stream_without_reading_everything():
    """An endless corpus (one document that never ends): the pairs still come, one chunk at a time."""
    from act.training.data import PairSettings, stream_pairs

    endless = ([k, k + 1, k + 2] for k in itertools.count(10, 3))
    pairs = list(itertools.islice(stream_pairs(endless, PairSettings(max_seq_length=16, short_seq_prob=0.0),
                                               random.Random(1), 2, 3), 50))
    assert len(pairs) == 50
    assert all(len(pair["input_ids"]) <= 16 for pair in pairs)


def test_ngram_masking(tokenizer):
    from act.training.data import NgramMaskingCollator, word_start_table

    collator = NgramMaskingCollator(tokenizer, masked_lm_prob=0.15, max_predictions_per_seq=5, max_ngram=3)
    starts = word_start_table(tokenizer)
    lines = heldout_lines(400)
    encoded = tokenizer(lines, add_special_tokens=True, truncation=True, max_length=64)["input_ids"]
    rng = random.Random(0)
    special = set(tokenizer.all_special_ids)
    kinds = {"mask": 0, "random": 0, "kept": 0}
    for ids in encoded:
        masked, labels = collator.mask(ids, rng)
        chosen = [i for i, label in enumerate(labels) if label != -100]
        assert len(chosen) <= 5
        assert len(chosen) >= min(1, len(ids) - 2)
        for i in chosen:
            assert labels[i] == ids[i] and ids[i] not in special
            kinds["mask" if masked[i] == tokenizer.mask_token_id else "kept" if masked[i] == ids[i] else "random"] += 1
        for i, token in enumerate(ids):
            if i not in chosen:
                assert masked[i] == token
        # whole words: a chosen continuation piece has its word's first piece chosen too (left neighbour)
        for i in chosen:
            if not starts[ids[i]]:
                assert i - 1 in chosen
    total = sum(kinds.values())
    assert total > 1500
    for kind, share in (("mask", 0.8), ("random", 0.1), ("kept", 0.1)):
        sigma = math.sqrt(share * (1 - share) / total)
        assert abs(kinds[kind] / total - share) < 5 * sigma, kinds


def test_ngram_lengths_weighted_one_over_n():
    """Words of one piece each: the masked spans' lengths follow 1/n (6/11, 3/11, 2/11 for n = 1, 2, 3)."""
    from act.training.data import NgramMaskingCollator

    class Words:  # every piece starts a word; ids 0..4 special
        all_special_ids = [0, 1, 2, 3, 4]
        pad_token_id, mask_token_id = 0, 4

        def __len__(self):
            return 100

        def convert_ids_to_tokens(self, ids):
            return ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"] + [f"▁w{i}" for i in ids[5:]]

    collator = NgramMaskingCollator(Words(), masked_lm_prob=0.5, max_predictions_per_seq=1000, max_ngram=3)
    rng = random.Random(3)
    lengths = {1: 0, 2: 0, 3: 0}
    for _ in range(3000):
        ids = [2] + [rng.randrange(5, 100) for _ in range(40)] + [3]
        _, labels = collator.mask(ids, rng)
        chosen = [i for i, label in enumerate(labels) if label != -100]
        # the first span picked is the only one that cannot have been shortened by the budget: count all runs
        runs, run = [], 0
        for i in range(len(ids)):
            if i in chosen:
                run += 1
            elif run:
                runs.append(run)
                run = 0
        for r in runs:
            if r <= 3:
                lengths[r] += 1
    total = sum(lengths.values())
    # adjacent spans merge into longer runs, so the check is on the order and rough shares, not exact values
    assert lengths[1] > lengths[2] > lengths[3] > 0
    assert 0.35 < lengths[1] / total < 0.75


def test_collator_pads_and_keeps_premasked(tokenizer):
    from act.training.data import NgramMaskingCollator

    collator = NgramMaskingCollator(tokenizer)
    features = [{"input_ids": [2, 10, 3, 11, 12, 3], "token_type_ids": [0, 0, 0, 1, 1, 1], "sentence_order_label": 1,
                 "labels": [-100, 10, -100, -100, -100, -100]},
                {"input_ids": [2, 20, 3, 21, 3], "token_type_ids": [0, 0, 0, 1, 1], "sentence_order_label": 0,
                 "labels": [-100, -100, -100, 21, -100]}]
    batch = collator(features)
    assert batch["input_ids"].tolist() == [[2, 10, 3, 11, 12, 3], [2, 20, 3, 21, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 6, [1] * 5 + [0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 10, -100, -100, -100, -100], [-100, -100, -100, 21, -100, -100]]
    assert batch["sentence_order_label"].tolist() == [1, 0]


def test_data_cached_and_memory_mapped(tmp_path, tokenizer):
    from act.training.data import PairSettings, build_pairs, tokenize_corpus

    corpus = write_corpus(tmp_path / "corpus.txt", lines=80)
    cache = tmp_path / "cache"
    tokens, fingerprint = tokenize_corpus([corpus], tokenizer, cache)
    expected = [tokenizer(line.strip(), add_special_tokens=False)["input_ids"] if line.strip() else []
                for line in corpus.read_text(encoding="utf-8").splitlines()]
    assert tokens["input_ids"] == expected
    pairs, pairs_fingerprint = build_pairs(fingerprint, tokenizer, PairSettings(32), cache)
    assert len(pairs) > 0 and pairs.cache_files  # read from Arrow files on disk (memory-mapped)
    entries = sorted(p.name for p in cache.iterdir() if not p.name.startswith("text"))
    # the same corpus and settings: the cache answers (no new entry); other settings or text: a new one
    again, same = tokenize_corpus([corpus], tokenizer, cache)
    assert same == fingerprint
    assert build_pairs(fingerprint, tokenizer, PairSettings(32), cache)[1] == pairs_fingerprint
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith("text")) == entries
    assert build_pairs(fingerprint, tokenizer, PairSettings(24), cache)[1] != pairs_fingerprint
    corpus.write_text(corpus.read_text(encoding="utf-8") + "\nand one more line .\n", encoding="utf-8")
    assert tokenize_corpus([corpus], tokenizer, cache)[1] != fingerprint
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name or p.name.startswith("generator-")]


# ------------------------------------------------------------------------------------------- halting statistics
def test_token_kinds_by_hand():
    import torch

    from act.training.halting_stats import CATEGORIES, HaltingAccumulator, kind_totals, token_kinds

    # ids: 0 pad, 2 [CLS], 3 [SEP], 4 [MASK]; row 0 masked-LM labels at positions 2 (-> [MASK]), 3 (random 50 for
    # 11), 4 (kept 12)
    ids = np.array([[2, 10, 4, 50, 12, 3, 0], [2, 20, 21, 3, 22, 3, 0]])
    mask = np.array([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 0]])
    labels = np.full(ids.shape, -100)
    labels[0, 2], labels[0, 3], labels[0, 4] = 30, 11, 12
    updates = np.array([[6, 1, 5, 4, 3, 2, 0], [5, 2, 2, 1, 3, 1, 0]], dtype=float)
    kinds = token_kinds(ids, mask, [0, 1, 2, 3, 4], 2, 3, 4, labels)
    expected = {"all": 12, "unmasked": 4, "masked": 3, "mask": 1, "random": 1, "original": 1, "cls": 2, "sep": 3}
    assert {k: int(v.sum()) for k, v in kinds.items()} == expected
    accumulator = HaltingAccumulator([0, 1, 2, 3, 4], 2, 3, 4)
    accumulator.add(updates, ids, mask, labels)
    means = accumulator.means()
    assert means["updates_unmasked"] == (1 + 2 + 2 + 3) / 4
    assert means["updates_masked"] == (5 + 4 + 3) / 3
    assert means["updates_mask"] == 5 and means["updates_random"] == 4 and means["updates_original"] == 3
    assert means["updates_cls"] == 5.5 and means["updates_sep"] == (2 + 1 + 1) / 3
    assert means["updates_all"] == updates.sum() / 12
    # the same with torch tensors (what ActTrainer uses on the device)
    tkinds = token_kinds(torch.tensor(ids), torch.tensor(mask), [0, 1, 2, 3, 4], 2, 3, 4, torch.tensor(labels))
    sums, counts = kind_totals(torch.tensor(updates), tkinds)
    np.testing.assert_array_equal([float(s) for s in sums], accumulator.sums)
    np.testing.assert_array_equal([float(c) for c in counts], accumulator.counts)
    # without labels: no random/original, the [MASK] stays "mask"
    plain = HaltingAccumulator([0, 1, 2, 3, 4], 2, 3, 4)
    plain.add(updates, ids, mask)
    assert "updates_random" not in plain.means() and plain.means()["updates_mask"] == 5
    assert len(CATEGORIES) == 8


def direct_updates(model, batches, tokenizer, mlm: bool) -> dict:
    """Mean updates per kind computed straight from the model's outputs, by hand (no act.training code)."""
    import torch

    sums, counts = {}, {}
    special = set(tokenizer.all_special_ids)
    with torch.no_grad():
        for batch in batches:
            out = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   token_type_ids=batch.get("token_type_ids"))
            for row in range(batch["input_ids"].shape[0]):
                for position in range(batch["input_ids"].shape[1]):
                    if not batch["attention_mask"][row, position]:
                        continue
                    token = int(batch["input_ids"][row, position])
                    label = int(batch["labels"][row, position]) if mlm else -100
                    names = ["all"]
                    if token == tokenizer.mask_token_id:
                        names += ["masked", "mask"]
                    elif label >= 0:
                        names += ["masked", "original" if label == token else "random"]
                    elif token == tokenizer.cls_token_id and position == 0:
                        names.append("cls")
                    elif token == tokenizer.sep_token_id:
                        names.append("sep")
                    elif token not in special:
                        names.append("unmasked")
                    for name in names:
                        sums[name] = sums.get(name, 0.0) + float(out.updates[row, position])
                        counts[name] = counts.get(name, 0) + 1
    return {f"eval_updates_{name}": sums[name] / counts[name] for name in sums}


def test_halting_callback_in_a_plain_trainer(tmp_path, model_dir, tokenizer):
    """A user's own Trainer with HaltingStatsCallback: evaluate() reports the mean updates per kind, equal to the
    values computed from the model's outputs."""
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from act import AlbertActForSequenceClassification
    from act.training import HaltingStatsCallback

    model = AlbertActForSequenceClassification.from_pretrained(str(model_dir), num_labels=2)
    rows = labelled_rows(24)
    encoded = tokenizer([r["text"] for r in rows], truncation=True, max_length=32)
    data = [{"input_ids": ids, "attention_mask": m, "labels": int(r["label"] == "he")}
            for ids, m, r in zip(encoded["input_ids"], encoded["attention_mask"], rows)]
    for row in data[:6]:  # a few [MASK] tokens
        row["input_ids"] = [row["input_ids"][0], tokenizer.mask_token_id, *row["input_ids"][2:]]
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_eval_batch_size=8, report_to=[],
                             use_cpu=True, disable_tqdm=True)
    collator = DataCollatorWithPadding(tokenizer)
    trainer = Trainer(model=model, args=args, eval_dataset=data, data_collator=collator, processing_class=tokenizer,
                      callbacks=[HaltingStatsCallback()])
    metrics = trainer.evaluate()
    model.eval()
    expected = direct_updates(model, [collator(data[i:i + 8]) for i in range(0, 24, 8)], tokenizer, mlm=False)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
    assert {"eval_updates_all", "eval_updates_cls", "eval_updates_mask", "eval_updates_unmasked"} <= set(metrics)
    assert trainer.state.log_history[-1]["eval_updates_all"] == metrics["eval_updates_all"]
    with pytest.raises(ValueError, match="max_batches"):
        HaltingStatsCallback(max_batches=0)


def test_keras_halting_callback(tokenizer):
    import keras

    from act import AlbertActConfig, TFAlbertActForSequenceClassification
    from act.training import KerasHaltingStatsCallback
    from training_helpers import TINY_CONFIG

    config = AlbertActConfig(**{k: v for k, v in TINY_CONFIG.items() if k != "model_type"}, num_labels=2)
    keras.utils.set_random_seed(0)
    model = TFAlbertActForSequenceClassification(config)
    rows = labelled_rows(16)
    encoded = tokenizer([r["text"] for r in rows], truncation=True, max_length=32, padding="max_length",
                        return_tensors="np")
    x = {"input_ids": encoded["input_ids"].astype("int32"), "attention_mask": encoded["attention_mask"].astype("int32")}
    x["input_ids"][:4, 1] = tokenizer.mask_token_id
    y = np.array([int(r["label"] == "he") for r in rows], dtype="int32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = KerasHaltingStatsCallback(x, tokenizer, batch_size=8)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    updates = np.asarray(model(x, training=False)["updates"])
    real = x["attention_mask"].astype(bool)
    assert history.history["val_updates_all"][0] == pytest.approx(updates[real].mean(), abs=1e-6)
    assert history.history["val_updates_cls"][0] == pytest.approx(updates[:, 0].mean(), abs=1e-6)
    mask = x["input_ids"] == tokenizer.mask_token_id
    assert history.history["val_updates_mask"][0] == pytest.approx(updates[mask].mean(), abs=1e-6)
    with pytest.raises(ValueError, match="tokenizer"):
        KerasHaltingStatsCallback(x)


# ------------------------------------------------------------------------------------------------- act pretrain
def test_pretrain_end_to_end(tmp_path):
    from act import AlbertActForPreTraining

    corpus = write_corpus(tmp_path / "corpus.txt")
    held_out = tmp_path / "heldout.txt"
    held_out.write_text("\n\n".join("\n".join(heldout_lines(300)[i:i + 6]) for i in range(240, 300, 6)) + "\n",
                        encoding="utf-8")
    config = write_config(tmp_path / "config.json")
    tokenizer_dir = write_tokenizer(tmp_path / "tokenizer")
    settings = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    settings.pop("model_input_names")  # an old tokenizer config, as the published checkpoints carry
    (tokenizer_dir / "tokenizer_config.json").write_text(json.dumps(settings))
    out = tmp_path / "out"
    result = run_cli("pretrain", corpus, out, "--config", config, "--tokenizer", tokenizer_dir, "--cache-dir",
                     tmp_path / "cache", "--max_steps", 8, "--per_device_train_batch_size", 4,
                     "--gradient_accumulation_steps", 2, "--lamb", "--learning_rate", 1e-3, "--logging_steps", 4,
                     "--eval_corpus", held_out, "--eval_strategy", "steps", "--eval_steps", 8,
                     "--max-predictions-per-seq", 5, "--halting_bias", -1.0, "--halting_init_std", 0.3,
                     "--ponder_penalty", 5e-4, "--report_to", "none", "--use_cpu", "--disable_tqdm", "true")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("config.json", "model.safetensors", "spiece.model", "tokenizer.json", "tokenizer_config.json",
                 "trainer_state.json", "train_results.json", "eval_results.json", "act_training.json"):
        assert (out / name).is_file(), name
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    logs = [entry for entry in state["log_history"] if "loss" in entry]
    assert len(logs) == 2
    for key in ("mlm_accuracy", "sop_accuracy", "ponder_cost", "updates_all", "updates_mask", "updates_cls",
                "updates_unmasked", "step_time", "tokens_per_second"):
        assert key in logs[0], key
    assert logs[0]["step_time"] > 0 and logs[0]["tokens_per_second"] > 0
    assert 0.0 <= logs[0]["sop_accuracy"] <= 1.0 and logs[0]["ponder_cost"] > 0
    evaluation = json.loads((out / "eval_results.json").read_text())
    for key in ("eval_loss", "eval_mlm_accuracy", "eval_sop_accuracy", "eval_updates_mask", "eval_updates_random",
                "eval_updates_original", "eval_updates_cls"):
        assert key in evaluation, key
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 32
    from transformers import AlbertTokenizer

    assert AlbertTokenizer.from_pretrained(str(out))("jesus wept .", "amen .")["token_type_ids"][-3:] == [1, 1, 1]
    assert json.loads((out / "config.json").read_text())["ponder_penalty"] == 5e-4
    assert "--lamb" in json.loads((out / "act_training.json").read_text())["command"]
    model = AlbertActForPreTraining.from_pretrained(str(out))  # both frameworks load it
    from act import TFAlbertActModel

    keras_model = TFAlbertActModel.from_pretrained(str(out))
    ids = np.array([[2, 10, 11, 4, 12, 3]])
    import torch

    with torch.no_grad():
        pt = model.albert(input_ids=torch.tensor(ids)).updates.numpy()
    tf = np.asarray(keras_model({"input_ids": ids.astype("int32")})["updates"])
    np.testing.assert_array_equal(pt, tf)
    # nothing lost: a second run into a directory it did not write is refused
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refused = run_cli("pretrain", corpus, foreign, "--from", out, "--max_steps", 1, "--use_cpu")
    assert refused.returncode == 1 and "not empty" in refused.stderr
    assert (foreign / "notes.txt").read_text() == "mine" and len(list(foreign.iterdir())) == 1
    # ... also when resuming from a checkpoint: the final model, card and marker would land among the user's files
    checkpoint = next(out.glob("checkpoint-*"))
    refused = run_cli("pretrain", corpus, foreign, "--from", out, "--lamb", "--max_steps", 10, "--use_cpu",
                      "--resume_from_checkpoint", checkpoint)
    assert refused.returncode == 1 and "not empty" in refused.stderr
    assert (foreign / "notes.txt").read_text() == "mine" and len(list(foreign.iterdir())) == 1
    # ... and OUT is never the model the run starts from (it carries act's marker, but would be replaced)
    before = (out / "model.safetensors").read_bytes()
    refused = run_cli("pretrain", corpus, out, "--from", out, "--max_steps", 1, "--use_cpu")
    assert refused.returncode == 1 and "is the model the run starts from" in refused.stderr
    assert (out / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("arguments, message", [
    (["--max_steps", "1"], "exactly one of --from"),
    (["--config", "CONFIG", "--max_steps", "1"], "needs --tokenizer"),
    (["--config", "CONFIG", "--tokenizer", "TOKENIZER", "--max-seq-length", "64"], "longer than the model"),
    (["--config", "CONFIG", "--tokenizer", "TOKENIZER", "--eval_strategy", "steps"], "needs --eval_corpus"),
    (["--from", "MISSING"], "no such model directory"),
])
def test_pretrain_rejects_bad_arguments(tmp_path, arguments, message):
    from act.commands.cli import main

    corpus = write_corpus(tmp_path / "corpus.txt", lines=20)
    replace = {"CONFIG": str(write_config(tmp_path / "config.json")),
               "TOKENIZER": str(write_tokenizer(tmp_path / "tokenizer")), "MISSING": str(tmp_path / "missing")}
    argv = ["pretrain", str(corpus), str(tmp_path / "out"), "--use_cpu", "--report_to", "none",
            *[replace.get(a, a) for a in arguments]]
    with _capture() as captured:
        code = main(argv)
    assert code == 1
    assert message in captured.err()
    assert not (tmp_path / "out" / "model.safetensors").exists()


def run_cli(*args):
    """`act ARGS` in this process: (exit status, stderr) as `returncode`/`stderr` attributes."""
    import types

    from act.commands.cli import main

    with _capture() as captured:
        code = main([str(a) for a in args])
    return types.SimpleNamespace(returncode=code, stderr=captured.err())


class _capture:
    """Captures stderr written by the CLI (its error line)."""

    def __enter__(self):
        import contextlib
        import io

        self.buffer = io.StringIO()
        self.redirect = contextlib.redirect_stderr(self.buffer)
        self.redirect.__enter__()
        return self

    def __exit__(self, *exc):
        self.redirect.__exit__(*exc)
        return False

    def err(self):
        return self.buffer.getvalue()


def test_missing_corpus_is_an_error(tmp_path, model_dir):
    from act.commands.cli import main

    with _capture() as captured:
        assert main(["pretrain", str(tmp_path / "nope.txt"), str(tmp_path / "out"), "--from", str(model_dir),
                     "--use_cpu"]) == 1
    assert "nope.txt does not exist" in captured.err()


def test_corpus_without_text_or_pairs_is_a_clear_error(tmp_path, model_dir, tokenizer):
    from act.commands.cli import main
    from act.training.data import PairSettings, build_pairs, tokenize_corpus

    for name, text in (("empty.txt", ""), ("blank.txt", "\n  \n\n")):  # not a datasets traceback
        (tmp_path / name).write_text(text, encoding="utf-8")
        with _capture() as captured:
            assert main(["pretrain", str(tmp_path / name), str(tmp_path / "out"), "--from", str(model_dir),
                         "--cache-dir", str(tmp_path / "cache"), "--use_cpu"]) == 1
        assert f"corpus {tmp_path / name} is empty" in captured.err(), captured.err()[-500:]
    assert not (tmp_path / "out").exists()
    single = tmp_path / "single.txt"  # one-piece documents: no pair has two non-empty sides
    single.write_text("the\n\nthe\n", encoding="utf-8")
    assert len(tokenizer("the", add_special_tokens=False)["input_ids"]) == 1
    _, fingerprint = tokenize_corpus([single], tokenizer, tmp_path / "cache")
    with pytest.raises(ValueError, match="no sentence-order pair"):
        build_pairs(fingerprint, tokenizer, PairSettings(32), tmp_path / "cache")


# ------------------------------------------------------------------------------------------------- act finetune
def test_finetune_classification_csv(tmp_path, model_dir):
    train = write_table(tmp_path / "train.csv", labelled_rows(48))
    dev = write_table(tmp_path / "dev.csv", labelled_rows(16, offset=48))
    out = tmp_path / "out"
    result = run_cli("finetune", train, dev, out, "--model", model_dir, "--num_train_epochs", 2,
                     "--per_device_train_batch_size", 8, "--learning_rate", 1e-3, "--report_to", "none", "--use_cpu",
                     "--disable_tqdm", "true", "--save_strategy", "no")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "eval_results.json").read_text())
    for key in ("eval_accuracy", "eval_f1", "eval_matthews_correlation", "eval_updates_all", "eval_updates_cls",
                "eval_updates_unmasked", "eval_updates_sep"):
        assert key in metrics, key
    state = json.loads((out / "trainer_state.json").read_text())
    assert [round(e["epoch"]) for e in state["log_history"] if "eval_accuracy" in e] == [1, 2]  # one per epoch
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "he", "1": "other"} and config["problem_type"] == "single_label_classification"
    # the tokenizer follows the model (its source said 64, the model has 32 positions): truncation=True works
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["model_max_length"] == 64
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 32 == \
        config["max_position_embeddings"]
    # the saved classifier reproduces the reported accuracy
    import torch
    from transformers import AutoTokenizer

    from act import AlbertActForSequenceClassification
    from act.training.metrics import accuracy

    model = AlbertActForSequenceClassification.from_pretrained(str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    rows = labelled_rows(16, offset=48)
    batch = tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        predictions = model(**batch).logits.argmax(-1).numpy()
    truth = [0 if r["label"] == "he" else 1 for r in rows]
    assert metrics["eval_accuracy"] == pytest.approx(accuracy(predictions, truth), abs=1e-12)


def test_finetune_regression_jsonl_and_tsv_pairs(tmp_path, model_dir):
    from act.commands.cli import main

    rows = labelled_rows(40)
    train = write_table(tmp_path / "train.jsonl", rows[:32])
    dev = write_table(tmp_path / "dev.jsonl", rows[32:])
    out = tmp_path / "regression"
    assert main(["finetune", str(train), str(dev), str(out), "--model", str(model_dir), "--label-column", "score",
                 "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--report_to", "none",
                 "--use_cpu", "--disable_tqdm", "true", "--save_strategy", "no"]) == 0
    metrics = json.loads((out / "eval_results.json").read_text())
    assert {"eval_pearson", "eval_spearman", "eval_mse", "eval_updates_all"} <= set(metrics)
    assert json.loads((out / "config.json").read_text())["problem_type"] == "regression"
    # TSV with a text pair and integer labels
    pair_rows = [{"first": r["text"], "second": s["text"], "label": int(r["label"] == s["label"])}
                 for r, s in zip(rows, rows[1:])]
    train_tsv = write_table(tmp_path / "train.tsv", pair_rows[:30])
    dev_tsv = write_table(tmp_path / "dev.tsv", pair_rows[30:])
    out2 = tmp_path / "pairs"
    assert main(["finetune", str(train_tsv), str(dev_tsv), str(out2), "--model", str(model_dir), "--text-column",
                 "first", "--text-pair-column", "second", "--num_train_epochs", "1", "--report_to", "none",
                 "--use_cpu", "--disable_tqdm", "true", "--save_strategy", "no"]) == 0
    assert "eval_matthews_correlation" in json.loads((out2 / "eval_results.json").read_text())


def test_finetune_rejects_bad_data(tmp_path, model_dir):
    from act.commands.cli import main

    train = write_table(tmp_path / "train.csv", labelled_rows(8))
    dev = write_table(tmp_path / "dev.csv", labelled_rows(4))
    common = ["--model", str(model_dir), "--use_cpu", "--report_to", "none"]
    with _capture() as captured:
        assert main(["finetune", str(train), str(dev), str(tmp_path / "a"), "--text-column", "sentence", *common]) == 1
    assert "no column 'sentence'" in captured.err() and "text, label, score" in captured.err()
    odd = tmp_path / "train.xlsx"
    odd.write_text("x")
    with _capture() as captured:
        assert main(["finetune", str(odd), str(dev), str(tmp_path / "b"), *common]) == 1
    assert "unknown format" in captured.err()
    dev_new_label = write_table(tmp_path / "dev2.csv", [{"text": "x", "label": "surprise", "score": 1.0}])
    with _capture() as captured:
        assert main(["finetune", str(train), str(dev_new_label), str(tmp_path / "c"), *common]) == 1
    assert "'surprise'" in captured.err()
    # an empty label cell: a clear error naming the file (regression and classification, TRAIN and DEV)
    blank = tmp_path / "blank.csv"
    blank.write_text("text,label,score\njesus wept .,he,0.5\ngod is love .,,\n", encoding="utf-8")
    for files, label, out in (((blank, dev), "score", "d"), ((train, blank), "score", "e"),
                              ((train, blank), "label", "f")):
        regression = ["--task", "regression"] if label == "score" else []
        with _capture() as captured:
            assert main(["finetune", *map(str, files), str(tmp_path / out), "--label-column", label, *regression,
                         *common]) == 1
        assert f"{blank}: column {label!r} has empty labels" in captured.err(), captured.err()[-500:]
        assert not (tmp_path / out).exists()


def test_finetune_grid_chooses_the_best_mean(tmp_path, model_dir):
    from act.commands.cli import main

    train = write_table(tmp_path / "train.csv", labelled_rows(24))
    dev = write_table(tmp_path / "dev.csv", labelled_rows(12))
    out = tmp_path / "grid"
    assert main(["finetune", str(train), str(dev), str(out), "--model", str(model_dir), "--grid",
                 "--grid-learning-rates", "1e-2", "1e-5", "--grid-batch-sizes", "8", "--grid-seeds", "1", "2",
                 "--num_train_epochs", "2", "--metric_for_best_model", "loss", "--report_to", "none", "--use_cpu",
                 "--disable_tqdm", "true"]) == 0
    summary = json.loads((out / "grid_results.json").read_text())
    assert len(summary["runs"]) == 4 and summary["metric"] == "eval_loss" and not summary["greater_is_better"]
    means = {}
    for run in summary["runs"]:
        assert len(run["per_epoch"]) == 2 and run["score"] == min(run["per_epoch"])  # loss: lower is better
        means.setdefault(run["learning_rate"], []).append(run["score"])
    best = min(means, key=lambda lr: np.mean(means[lr]))
    assert summary["chosen"]["learning_rate"] == best
    assert summary["chosen"]["mean"] == pytest.approx(np.mean(means[best]))
    assert sorted(p.name for p in (out / "grid").iterdir()) == [
        "lr0.01-bs8-seed1", "lr0.01-bs8-seed2", "lr1e-05-bs8-seed1", "lr1e-05-bs8-seed2"]
    assert not (out / "model.safetensors").exists()


def test_gradient_accumulation_averages(tmp_path, model_dir, tokenizer):
    """2 accumulated batches of 2 make the same update as one batch of 4 (the loss is divided by the steps)."""
    import torch
    from transformers import DataCollatorWithPadding, TrainingArguments

    from act import AlbertActForSequenceClassification
    from act.training.trainer import ActTrainer

    rows = labelled_rows(4)
    encoded = tokenizer([r["text"] for r in rows], truncation=True, max_length=16)
    data = [{"input_ids": i, "attention_mask": m, "labels": int(r["label"] == "he")}
            for i, m, r in zip(encoded["input_ids"], encoded["attention_mask"], rows)]
    weights = []
    torch.manual_seed(0)
    start = AlbertActForSequenceClassification.from_pretrained(str(model_dir), num_labels=2).state_dict()
    for batch, steps in ((4, 1), (2, 2)):
        model = AlbertActForSequenceClassification.from_pretrained(str(model_dir), num_labels=2)
        model.load_state_dict(start)  # the same (new) classifier in both runs
        args = TrainingArguments(output_dir=str(tmp_path / f"ga{steps}"), per_device_train_batch_size=batch,
                                 gradient_accumulation_steps=steps, max_steps=1, learning_rate=0.5, optim="sgd",
                                 lr_scheduler_type="constant", max_grad_norm=0.0, report_to=[], use_cpu=True,
                                 save_strategy="no", disable_tqdm=True, train_sampling_strategy="sequential")
        ActTrainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer),
                   processing_class=tokenizer).train()
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    moved = weights[0]["albert.encoder.albert_layer.ffn.weight"] - start["albert.encoder.albert_layer.ffn.weight"]
    assert float(moved.abs().max()) > 1e-4  # the step did something
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=0, atol=2e-6, msg=name)


def test_step_time_and_tokens_per_second_are_logged(tmp_path, model_dir, tokenizer, monkeypatch):
    """`ActTrainer` logs, with each loss, the seconds per optimizer step and the real tokens (attention mask) of its
    accumulated batches per second: a clock that advances 1.5 s per reading makes every step last 1.5 s."""
    import types

    from transformers import DataCollatorWithPadding, TrainingArguments

    import act.training.callbacks as callbacks
    from act import AlbertActForSequenceClassification
    from act.training.trainer import ActTrainer

    rows = labelled_rows(12)
    encoded = tokenizer([r["text"] for r in rows], truncation=True, max_length=16)
    data = [{"input_ids": i, "attention_mask": m, "labels": int(r["label"] == "he")}
            for i, m, r in zip(encoded["input_ids"], encoded["attention_mask"], rows)]
    readings = iter(range(1000))
    monkeypatch.setattr(callbacks, "time", types.SimpleNamespace(perf_counter=lambda: 1.5 * next(readings)))
    model = AlbertActForSequenceClassification.from_pretrained(str(model_dir), num_labels=2)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, max_steps=3, logging_steps=1, report_to=[],
                             use_cpu=True, save_strategy="no", disable_tqdm=True, train_sampling_strategy="sequential")
    trainer = ActTrainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer),
                         processing_class=tokenizer)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 3
    for step, entry in enumerate(logs):  # step k used the rows 4k .. 4k + 3 (sequential, 2 x 2 per step)
        tokens = sum(len(row["input_ids"]) for row in data[4 * step:4 * step + 4])
        assert entry["step_time"] == 1.5
        assert entry["tokens_per_second"] == pytest.approx(tokens / 1.5, abs=1e-4)


# ---------------------------------------------------------------------------------------------------- the CLI
def test_python_m_act_and_lazy_help():
    code = ("import sys, act.commands.cli; act.commands.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'tensorflow', 'datasets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=act_env(), timeout=120)
    assert result.stdout.strip() == "[]", result.stderr
    result = subprocess.run([sys.executable, "-m", "act", "--help"], capture_output=True, text=True, env=act_env(),
                            timeout=120)
    assert result.returncode == 0 and "pretrain" in result.stdout and "finetune" in result.stdout
    result = subprocess.run([sys.executable, "-m", "act", "pretrain", "--help"], capture_output=True, text=True,
                            env=act_env(), timeout=120)
    assert result.returncode == 0
    for flag in ("--from", "--max-seq-length", "--max-predictions-per-seq", "--lamb", "--learning_rate",
                 "--gradient_accumulation_steps", "--per_device_train_batch_size"):
        assert flag in result.stdout, flag


# ------------------------------------------------------------------------------------------------------ README
def test_readme_training_section_runs(tmp_path, monkeypatch):
    from test_readme import python_blocks, section

    text = section("training")
    blocks = python_blocks(text)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md (training)", "exec"), namespace)
    assert namespace["metrics"]["eval_updates_all"] > 0
    assert 1 in namespace["pair"]["token_type_ids"]  # the pair task: segment ids from the demo tokenizer
    results = json.loads((tmp_path / "rte-demo" / "eval_results.json").read_text())
    assert {"eval_accuracy", "eval_score"} <= set(results)
    for command in ("act pretrain", "act finetune", "torchrun --nproc_per_node", "accelerate launch"):
        assert command in text


@pytest.mark.parametrize("lamb", [False, True])
def test_halting_lr_scale_zero_keeps_the_halting_unit(tmp_path, model_dir, tokenizer, lamb):
    import torch
    from transformers import DataCollatorWithPadding, TrainingArguments

    from act import AlbertActForSequenceClassification
    from act.training.trainer import ActTrainer

    rows = labelled_rows(8)
    encoded = tokenizer([r["text"] for r in rows], truncation=True, max_length=16)
    data = [{"input_ids": i, "attention_mask": m, "labels": int(r["label"] == "he")}
            for i, m, r in zip(encoded["input_ids"], encoded["attention_mask"], rows)]
    model = AlbertActForSequenceClassification.from_pretrained(str(model_dir), num_labels=2)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, learning_rate=1e-2,
                             weight_decay=0.1, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
    trainer = ActTrainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer),
                         processing_class=tokenizer, lamb=lamb, halting_lr_scale=0.0)
    trainer.train()
    after = model.state_dict()
    for name in ("albert.encoder.albert_layer.act.dense.weight", "albert.encoder.albert_layer.act.dense.bias"):
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)
    ffn = "albert.encoder.albert_layer.ffn.weight"
    assert not torch.equal(after[ffn], before[ffn])
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    assert type(optimizer).__name__ == ("Lamb" if lamb else "AdamW")
    with pytest.raises(ValueError, match="halting_lr_scale"):
        ActTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, halting_lr_scale=-1.0)


def test_pretrain_prepare_data_only(tmp_path):
    """--prepare_data_only fills the cache (e.g. before a multi-process run) and trains nothing."""
    corpus = write_corpus(tmp_path / "corpus.txt", lines=40)
    cache = tmp_path / "cache"
    result = run_cli("pretrain", corpus, tmp_path / "out", "--config", write_config(tmp_path / "config.json"),
                     "--tokenizer", write_tokenizer(tmp_path / "tok"), "--cache_dir", cache, "--prepare_data_only",
                     "--use_cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name.split("-")[0] for p in sorted(cache.iterdir()) if not p.name.startswith("text")] == ["pairs",
                                                                                                     "tokens"]
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_pretrain_demo_recipe_writes_only_its_own_directories(tmp_path):
    """examples/pretrain_demo.py writes the shipped files into --out and clears --work/run: only where it wrote."""
    import importlib.util

    from training_helpers import REPO

    spec = importlib.util.spec_from_file_location("pretrain_demo", REPO / "examples" / "pretrain_demo.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    recipe.check_out(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    recipe.check_out(tmp_path / "empty")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")
    (foreign / "training.json").write_text('{"mine": 1}')
    with pytest.raises(SystemExit, match="not written by this recipe"):
        recipe.check_out(foreign)
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "training.json").write_text('{"recipe": "examples/pretrain_demo.py"}')
    recipe.check_out(tmp_path / "ours")
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not written by act pretrain"):
        recipe.clear_run(run)
    assert (run / "notes.txt").read_text() == "mine"
    (run / "act_training.json").write_text("{}")
    recipe.clear_run(run)
    assert not run.exists()
    recipe.install(foreign / "config.json", tmp_path / "ours")
    assert (tmp_path / "ours" / "config.json").read_text() == "{}" and len(list((tmp_path / "ours").iterdir())) == 2


def test_pretrain_ponder_warmup_ramps_tau_in_the_loss(tmp_path):
    """--ponder-warmup-steps 4: step k's loss is MLM + SOP + tau * min(1, k/4) * ponder cost, read back from the logged
    losses of each step; the saved config has the full tau."""
    corpus = write_corpus(tmp_path / "corpus.txt", lines=80)
    out = tmp_path / "out"
    tau, warmup, steps = 1e-2, 4, 6
    result = run_cli("pretrain", corpus, out, "--config", write_config(tmp_path / "config.json"), "--tokenizer",
                     write_tokenizer(tmp_path / "tok"), "--cache-dir", tmp_path / "cache", "--max_steps", steps,
                     "--per_device_train_batch_size", 4, "--learning_rate", 1e-3, "--logging_steps", 1,
                     "--halting_bias", -1.0, "--halting_init_std", 0.3, "--ponder_penalty", tau,
                     "--ponder-warmup-steps", warmup, "--save_strategy", "no", "--report_to", "none", "--use_cpu",
                     "--disable_tqdm", "true")
    assert result.returncode == 0, result.stderr[-3000:]
    logs = [entry for entry in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in entry]
    assert [entry["step"] for entry in logs] == list(range(1, steps + 1))
    for entry in logs:
        k = entry["step"] - 1
        ponder_term = entry["loss"] - entry["mlm_loss"] - entry["sop_loss"]
        assert entry["ponder_cost"] > 10  # so that the ramp's values are told apart
        assert ponder_term == pytest.approx(tau * min(1.0, k / warmup) * entry["ponder_cost"], abs=2e-3), entry
    assert json.loads((out / "config.json").read_text())["ponder_penalty"] == tau
    assert json.loads((out / "act_training.json").read_text())["pretrain"]["ponder_warmup_steps"] == warmup


def test_ponder_warmup_callback_rejects_bad_settings(tmp_path):
    from act.training.callbacks import PonderWarmupCallback

    assert [PonderWarmupCallback(2e-3, 4).penalty_at(k) for k in (0, 2, 4, 9)] == [0.0, 1e-3, 2e-3, 2e-3]
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps >= 1"):
            PonderWarmupCallback(1e-3, steps)
    with pytest.raises(ValueError, match="ponder_penalty"):
        PonderWarmupCallback(float("nan"), 4)
    result = run_cli("pretrain", write_corpus(tmp_path / "corpus.txt", lines=20), tmp_path / "out", "--config",
                     write_config(tmp_path / "config.json"), "--tokenizer", write_tokenizer(tmp_path / "tok"),
                     "--ponder-warmup-steps", -1, "--use_cpu", "--report_to", "none")
    assert result.returncode == 1 and "--ponder_warmup_steps must be >= 0" in result.stderr
    assert not (tmp_path / "out").exists() or not (tmp_path / "out" / "model.safetensors").exists()
