"""PyTorch AlbertActModel against the float64 oracle (tests/oracle.py), plus I/O and input validation."""

import itertools

import numpy as np
import pytest
import torch

import cases
import oracle
from act import AlbertActConfig, AlbertActModel
from alignment import misaligned

# float32 counts may only differ from the float64 oracle where the cumulative halting sum came within
# float32 rounding distance of the threshold (ACT_SEMANTICS.md, "Parity").
FLOAT32_STRADDLE = 1e-6
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


build = cases.build_pt_model


def run(model, ids, mask, types, dtype=torch.float32, **kwargs):
    model = model.to(dtype)
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                     token_type_ids=torch.from_numpy(types), **kwargs)


def assert_same_outputs(got, expected, keys=("last_hidden_state", "pooler_output")):
    """Two model instances (e.g. one loaded from a file): counts exactly, float states within the float32 tolerance
    (never bit for bit: BLAS rounds by memory alignment; callers run one side on `alignment.misaligned` weights)."""
    assert torch.equal(got.updates, expected.updates)
    for key in keys:
        np.testing.assert_allclose(getattr(got, key).numpy(), getattr(expected, key).numpy(), rtol=0,
                                   atol=TOL[torch.float32], err_msg=key)


def assert_counts_match(updates, reference):
    """Exact equality, except tokens the float64 run proves were within rounding distance of the threshold."""
    mismatch = updates != reference["updates"]
    assert np.all(reference["margin"][mismatch] < FLOAT32_STRADDLE), "count mismatch away from the threshold"
    return int(mismatch.sum())


CASES = list(itertools.product(["step1", "cap", "mixed", "default"], ["gelu", "gelu_new"], ["ragged", "allpad"]))


@pytest.mark.parametrize("regime, activation, padding", CASES)
def test_matches_oracle(regime, activation, padding):
    config, model, state = build(regime, seed=len(regime), hidden_act=activation)
    ids, mask, types = cases.make_inputs(seed=7, batch=4, length=13, padding=padding)
    reference = oracle.forward(config, state, ids, mask, types)
    valid = mask > 0
    for dtype in (torch.float64, torch.float32):
        out = run(model, ids, mask, types, dtype)
        assert out.updates.dtype == dtype and out.updates.shape == ids.shape
        assert torch.isfinite(out.last_hidden_state).all() and torch.isfinite(out.pooler_output).all()
        if dtype == torch.float64:
            np.testing.assert_array_equal(out.updates.numpy(), reference["updates"])
            excused = 0
        else:
            excused = assert_counts_match(out.updates.numpy(), reference)
        assert excused == 0, f"{excused} straddling tokens (allowed, but none expected with these seeds)"
        tol = TOL[dtype]
        np.testing.assert_allclose(out.last_hidden_state.numpy()[valid], reference["last_hidden_state"][valid],
                                   atol=tol, rtol=0)
        np.testing.assert_allclose(out.pooler_output.numpy(), reference["pooler_output"], atol=tol, rtol=0)
        np.testing.assert_allclose(out.remainders.numpy(), reference["remainders"], atol=tol, rtol=0)
        assert out.ponder_cost.item() == pytest.approx(reference["ponder_cost"], abs=tol * 10)
    # padding reports nothing
    assert (reference["updates"][~valid] == 0).all() and (reference["remainders"][~valid] == 0).all()


def test_regimes_do_what_they_say():
    """The test regimes really cover step-1 halting, cap hits and a spread of counts."""
    ids, mask, types = cases.make_inputs(seed=7, batch=4, length=13)
    counts = {}
    for regime in ("step1", "cap", "mixed"):
        config, model, state = build(regime)
        counts[regime] = run(model, ids, mask, types).updates.numpy()[mask > 0]
    assert (counts["step1"] == 1).all()
    assert (counts["cap"] == 6).all()
    assert len(np.unique(counts["mixed"])) >= 3
    # tokens that hit the cap without halting keep R = 0
    config, model, state = build("cap")
    assert (run(model, ids, mask, types).remainders == 0).all()


def test_hidden_states_attentions_and_frozen_halted_tokens():
    config, model, state = build("mixed", hidden_act="gelu_new")
    ids, mask, types = cases.make_inputs(seed=3, batch=3, length=12)
    reference = oracle.forward(config, state, ids, mask, types)
    out = run(model, ids, mask, types, torch.float64, output_hidden_states=True, output_attentions=True)
    iterations = int(reference["updates"].max())
    assert iterations + 1 == len(reference["hidden_states"])
    # fixed-length histories: the state after the projection, then one per possible iteration (the cap); after
    # the loop ended they repeat the final state, and the attention maps are all zero
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert len(out.attentions) == config.num_hidden_layers
    for ours, theirs in zip(out.hidden_states, cases.fixed_length(reference["hidden_states"], len(out.hidden_states))):
        np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-10, rtol=0)
    for later in out.attentions[iterations:]:
        assert later.shape == out.attentions[0].shape and not later.any()
    assert out.attentions[0].shape == (3, config.num_attention_heads, 12, 12)
    probs = out.attentions[0].numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-12)
    assert (probs[mask[:, None, None, :].repeat(12, 2).repeat(4, 1) == 0] < 1e-12).all()  # padding not attended
    # a token that halted after n updates keeps exactly its state from then on
    updates = out.updates.numpy().astype(int)
    for b, i in zip(*np.nonzero(mask)):
        n = updates[b, i]
        for later in out.hidden_states[n + 1:]:
            assert torch.equal(later[b, i], out.hidden_states[n][b, i])
    # eager attention (used for attentions) and SDPA give the same result
    plain = run(model, ids, mask, types, torch.float64)
    np.testing.assert_allclose(plain.last_hidden_state.numpy(), out.last_hidden_state.numpy(), atol=1e-12)


def test_single_unpadded_sentence_without_mask_or_types():
    config, model, state = build("mixed")
    ids, _, _ = cases.make_inputs(seed=5, batch=1, length=9, padding="none")
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids))
    reference = oracle.forward(config, state, ids)
    np.testing.assert_array_equal(out.updates.numpy(), reference["updates"])
    assert out.updates.shape == (1, 9)


def test_halting_state_is_float32_in_a_bfloat16_model():
    """ACT_SEMANTICS.md "Halting dtype": float32 halting state in a bfloat16 / float16 model."""
    config, model, _ = build("mixed")
    ids, mask, types = cases.make_inputs(seed=1)
    for dtype in (torch.bfloat16, torch.float16):
        out = run(model, ids, mask, types, dtype)
        assert out.last_hidden_state.dtype == dtype
        assert out.updates.dtype == out.remainders.dtype == out.ponder_cost.dtype == torch.float32
        assert out.updates.device == out.last_hidden_state.device
        assert torch.isfinite(out.last_hidden_state).all()


def test_save_and_load_canonical_and_auto(tmp_path):
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoModel

    config, model, state = build("mixed")
    model.save_pretrained(tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert set(saved) == set(state) and "embeddings.position_ids" not in saved
    assert AutoConfig.from_pretrained(tmp_path).model_type == "albert_act"
    ids, mask, types = cases.make_inputs(seed=2)
    expected = run(misaligned(model), ids, mask, types)
    for loaded in (AlbertActModel.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert type(loaded) is AlbertActModel
        for key, value in loaded.state_dict().items():
            assert torch.equal(value, model.state_dict()[key]), key
        assert_same_outputs(run(loaded.eval(), ids, mask, types), expected)


def test_published_pytorch_model_bin_loads_without_mapping(tmp_path):
    """The research format: a pickled state_dict with the published names and the position_ids buffer."""
    config, model, state = build("mixed")
    research_state = {k: torch.from_numpy(v) for k, v in state.items()}
    research_state["embeddings.position_ids"] = torch.arange(config.max_position_embeddings).expand((1, -1))
    torch.save(research_state, tmp_path / "pytorch_model.bin")
    config.save_pretrained(tmp_path)
    loaded, info = AlbertActModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"] and not info["unexpected_keys"]
    for key, value in loaded.state_dict().items():
        if key in state:
            np.testing.assert_array_equal(value.numpy(), state[key], err_msg=key)
    ids, mask, types = cases.make_inputs(seed=4)
    assert torch.equal(run(loaded.eval(), ids, mask, types).updates, run(model, ids, mask, types).updates)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_ids=torch.tensor([[1, 2, 120]])), r"token id 120 .*out of range"),
        (dict(input_ids=torch.tensor([[1, -1, 3]])), r"token id -1 .*out of range"),
        (dict(input_ids=torch.ones(1, 65, dtype=torch.long)), r"longer than max_position_embeddings=64"),
        (dict(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4)),
         r"attention_mask has shape \(2, 4\)"),
        (dict(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.full((2, 5), 2)),
         r"only 0 \(padding\) and 1"),
        (dict(input_ids=torch.ones(2, 5, dtype=torch.long), token_type_ids=torch.full((2, 5), 2)),
         r"token_type_ids must lie in \[0, 2\)"),
        (dict(input_ids=torch.ones(2, 5, dtype=torch.long), token_type_ids=torch.zeros(2, 4, dtype=torch.long)),
         r"token_type_ids has shape"),
        (dict(input_ids=torch.ones(1, 5, dtype=torch.long), inputs_embeds=torch.zeros(1, 5, 16)), "both"),
        ({}, "neither"),
        (dict(input_ids=torch.ones(5, dtype=torch.long)), r"shape \(batch, seq_len\)"),
        (dict(input_ids=torch.ones(1, 5)), "integer token ids"),
        (dict(inputs_embeds=torch.zeros(1, 5, 7)), "embedding_size=16"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    _, model, _ = build("mixed")
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


def test_inputs_embeds_equals_input_ids():
    _, model, _ = build("mixed")
    ids, mask, types = cases.make_inputs(seed=9)
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
    with torch.no_grad():
        a = model(input_ids=ids_t, attention_mask=mask_t)
        b = model(inputs_embeds=model.embeddings.word_embeddings(ids_t), attention_mask=mask_t)
    assert torch.equal(a.updates, b.updates)
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state)


def test_ponder_cost_gradient_reaches_the_halting_unit():
    config, model, _ = build("mixed")
    model.train()
    ids, mask, types = cases.make_inputs(seed=3)
    out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    out.ponder_cost.backward()
    grad = model.encoder.albert_layer.act.dense.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_legacy_tf_model_h5_loads_in_pytorch(tmp_path):
    """A directory with only the research port's tf_model.h5 (transformers 5 reads no TF weights)."""
    from act import AlbertActForSequenceClassification
    from act.checkpoints import CheckpointError, CheckpointWarning, write_legacy_h5

    config, model, state = build("mixed")
    bare_dir, head_dir = tmp_path / "bare", tmp_path / "head"
    write_legacy_h5(bare_dir / "tf_model.h5", state)
    config.save_pretrained(bare_dir)
    ids, mask, types = cases.make_inputs(seed=6)
    expected = run(misaligned(model), ids, mask, types)
    loaded = AlbertActModel.from_pretrained(bare_dir)
    assert_same_outputs(run(loaded, ids, mask, types), expected)

    torch.manual_seed(1)
    head = AlbertActForSequenceClassification(config).eval()
    head_state = {k: v.numpy() for k, v in head.state_dict().items()}
    write_legacy_h5(head_dir / "tf_model.h5", head_state, outer_name="tf_albert_act_for_sequence_classification")
    config.save_pretrained(head_dir)
    again = AlbertActForSequenceClassification.from_pretrained(head_dir)
    with torch.no_grad():
        inputs = dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                      token_type_ids=torch.from_numpy(types))
        a, b = misaligned(head)(**inputs), again(**inputs)
    assert_same_outputs(b, a, keys=("logits",))
    encoder = AlbertActModel.from_pretrained(head_dir)  # the bare model takes the head file's encoder
    assert torch.equal(run(encoder, ids, mask, types).updates, a.updates)
    # a head model out of a bare file: the encoder loads, the head is initialised, and the warning says so
    with pytest.warns(CheckpointWarning, match=r"bare/tf_model\.h5: AlbertActForSequenceClassification weights not "
                                               r"in the checkpoint, newly initialised .*classifier\.bias, "
                                               r"classifier\.weight"):
        fresh = AlbertActForSequenceClassification.from_pretrained(bare_dir)
    for key, value in fresh.albert.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key], err_msg=key)
    # a config that does not match the weights is named too
    AlbertActConfig(**cases.tiny_config_kwargs(hidden_size=64)).save_pretrained(bare_dir)
    with pytest.raises(CheckpointError, match=r"has shape .* but the model expects"):
        AlbertActModel.from_pretrained(bare_dir)
