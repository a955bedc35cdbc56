"""The fast loop's training twin, `AlbertActEncoder.forward_fast_train` (only running tokens through the layer, with
autograd): the same counts, states and gradients as the dense loop (float64), which loop is taken when, a valid
dropout on the running tokens, activation checkpointing, autocast and a compiled training step.

No timing here: benchmarks/bench_train.py measures the training step.
"""

import itertools

import numpy as np
import pytest
import torch

import cases
import oracle

build = cases.build_pt_model
LOOPS = ("forward_fast_train", "forward_dense", "forward_fast")


class LoopSpy:
    """Records which loop(s) the encoder ran."""

    def __init__(self, monkeypatch, encoder):
        self.calls = []
        for name in LOOPS:
            original = getattr(encoder, name)

            def wrapped(*args, _name=name, _original=original, **kwargs):
                self.calls.append(_name)
                return _original(*args, **kwargs)

            monkeypatch.setattr(encoder, name, wrapped)


def inputs(ids, mask, types):
    return dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.from_numpy(types))


def loss_of(out):
    """A loss that reaches every output a training objective uses: the states, the pooler and the ponder cost."""
    return (out.last_hidden_state ** 2).sum() * 0.1 + out.pooler_output.sum() + out.ponder_cost


def step(model, batch, fast, **kwargs):
    """(output, gradients by parameter name) of one forward + backward with the fast or the dense loop."""
    model.zero_grad(set_to_none=True)
    model.config.act_fast_path = fast
    try:
        out = model(**batch, **kwargs)
        loss_of(out).backward()
    finally:
        model.config.act_fast_path = True
    return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same_step(model, batch, monkeypatch, tol=1e-10, **kwargs):
    """The fast training loop against the dense one on the same float64 model: identical counts, states within
    `tol`, every gradient within `tol` of the largest gradient of its parameter. Returns the fast output."""
    spy = LoopSpy(monkeypatch, model.encoder)
    fast, fast_grads = step(model, batch, True, **kwargs)
    dense, dense_grads = step(model, batch, False, **kwargs)
    assert spy.calls == ["forward_fast_train", "forward_dense"]
    monkeypatch.undo()
    np.testing.assert_array_equal(fast.updates.detach().numpy(), dense.updates.detach().numpy())
    for name in ("last_hidden_state", "pooler_output", "remainders"):
        np.testing.assert_allclose(getattr(fast, name).detach().numpy(), getattr(dense, name).detach().numpy(),
                                   atol=tol, rtol=0, err_msg=name)
    assert sorted(fast_grads) == sorted(dense_grads)
    for name, expected in dense_grads.items():
        scale = max(1.0, float(expected.abs().max()))
        np.testing.assert_allclose(fast_grads[name].numpy(), expected.numpy(), atol=tol * scale, rtol=0,
                                   err_msg=name)
    return fast


CASES = list(itertools.product(["step1", "cap", "mixed", "default"], ["gelu", "gelu_new"],
                               ["none", "ragged", "allpad"]))


@pytest.mark.parametrize("regime, activation, padding", CASES)
def test_fast_train_equals_dense_and_oracle(regime, activation, padding, monkeypatch):
    """Tokens halting at the first iteration (step1), at the cap (cap), at every depth (mixed), padding, a row of
    padding only (allpad: all its tokens halted from the start)."""
    config, model, state = build(regime, seed=3 + len(regime), hidden_act=activation)
    ids, mask, types = cases.make_inputs(seed=11, batch=4, length=13, padding=padding)
    reference = oracle.forward(config, state, ids, mask, types)
    model = model.to(torch.float64).train()  # training mode, dropout 0 (the tiny config's default)
    assert not (config.hidden_dropout_prob or config.attention_probs_dropout_prob)
    fast = assert_same_step(model, inputs(ids, mask, types), monkeypatch)
    np.testing.assert_array_equal(fast.updates.numpy(), reference["updates"])
    valid = mask > 0
    np.testing.assert_allclose(fast.last_hidden_state.detach().numpy()[valid],
                               reference["last_hidden_state"][valid], atol=1e-10, rtol=0)
    np.testing.assert_allclose(fast.remainders.detach().numpy(), reference["remainders"], atol=1e-10, rtol=0)
    if regime == "mixed":
        assert len(np.unique(reference["updates"][valid])) >= 3


@pytest.mark.parametrize("seed, bias, gain", [(1, 0.0, 3.0), (1, -0.5, 10.0), (2, 0.5, 5.0), (2, 1.0, 8.0)])
def test_fast_train_equals_dense_on_varied_batches(seed, bias, gain, monkeypatch):
    """Rows that stop early (they leave the attention altogether) next to rows still running at the cap."""
    config, model, state = build("mixed", seed=seed, hidden_act=["gelu", "gelu_new"][seed % 2])
    layer = model.encoder.albert_layer.act.dense
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(seed)) * gain
                           / layer.weight.shape[1] ** 0.5)
        layer.bias.fill_(bias)
    ids, mask, types = cases.make_inputs(seed=100 + seed, batch=7, length=19, padding="ragged")
    model = model.to(torch.float64).train()
    fast = assert_same_step(model, inputs(ids, mask, types), monkeypatch)
    row_depth = fast.updates.max(1).values
    assert row_depth.min() < row_depth.max() == config.num_hidden_layers


@pytest.mark.parametrize("knob", [dict(max_iterations=3), dict(max_iterations=1), dict(act_epsilon=0.3),
                                  dict(act_epsilon=0.6, max_iterations=4)],
                         ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_fast_train_with_the_compute_knob(knob, monkeypatch):
    config, model, state = build("mixed", seed=4)
    ids, mask, types = cases.make_inputs(seed=21, batch=4, length=15, padding="ragged")
    values = config.to_dict()
    values["act_epsilon"] = knob.get("act_epsilon", config.act_epsilon)
    values["num_hidden_layers"] = knob.get("max_iterations", config.num_hidden_layers)
    reference = oracle.forward(values, state, ids, mask, types)
    model = model.to(torch.float64).train()
    fast = assert_same_step(model, inputs(ids, mask, types), monkeypatch, **knob)
    np.testing.assert_array_equal(fast.updates.numpy(), reference["updates"])


def test_which_loop_when(monkeypatch):
    config, model, state = build("mixed")
    ids, mask, types = cases.make_inputs(seed=1, batch=3, length=9)
    batch = inputs(ids, mask, types)
    spy = LoopSpy(monkeypatch, model.encoder)
    model.train()
    model(**batch)  # gradients: the fast training loop
    model.eval()
    model(**batch)  # gradients in eval mode too
    with torch.no_grad():
        model(**batch)  # inference
        model.train()
        model(**batch)  # training mode without dropout, no gradients: inference loop
    assert spy.calls == ["forward_fast_train", "forward_fast_train", "forward_fast", "forward_fast"]
    spy.calls.clear()
    out = model(**batch, output_hidden_states=True)  # the per-iteration states of every token: dense
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    model(**batch, output_attentions=True)
    model.config.act_fast_path = False
    model(**batch)
    model.config.act_fast_path = True
    assert spy.calls == ["forward_dense"] * 3

    monkeypatch.undo()
    config, model, state = build("mixed", hidden_dropout_prob=0.1)
    spy = LoopSpy(monkeypatch, model.encoder)
    with torch.no_grad():
        model.train()
        model(**batch)  # active dropout without gradients: the training loop (it draws the masks)
        model.eval()
        model(**batch)
    assert spy.calls == ["forward_fast_train", "forward_fast"]


def test_halted_tokens_cost_nothing_in_training():
    """The FFN sees each token as often as it is updated, forward and backward (its weight's gradient is a sum over
    the rows it saw)."""
    config, model, state = build("mixed", seed=5)
    ids, mask, types = cases.make_inputs(seed=3, batch=5, length=16, padding="ragged")
    rows, grad_rows = [], []
    ffn = model.encoder.albert_layer.ffn
    handles = [ffn.register_forward_hook(lambda module, args, output: rows.append(args[0].shape[0])),
               ffn.register_full_backward_hook(lambda module, grad_in, grad_out: grad_rows.append(
                   grad_out[0].shape[0]))]
    try:
        out = model.train()(**inputs(ids, mask, types))
        loss_of(out).backward()
    finally:
        for handle in handles:
            handle.remove()
    assert sum(rows) == sum(grad_rows) == int(out.updates.sum())
    assert rows == sorted(rows, reverse=True) and rows[-1] < rows[0]


def test_dropout_is_active_and_valid():
    """Hidden dropout on the running tokens only: every element is 0 or scaled by 1 / (1 - p), about p of them 0;
    attention dropout unbiased: the mean attention context over many draws is the context without dropout."""
    p = 0.3
    config, model, state = build("step1", seed=2, hidden_dropout_prob=p)
    ids, mask, types = cases.make_inputs(seed=5, batch=3, length=12, padding="ragged")
    batch = inputs(ids, mask, types)
    model = model.to(torch.float64)
    layer = model.encoder.albert_layer
    seen = []
    handle = layer.dropout.register_forward_hook(lambda module, args, output: seen.append((args[0], output)))
    try:
        torch.manual_seed(0)
        out = model.train()(**batch)
        again = model(**batch)
    finally:
        handle.remove()
    zeros = total = 0
    for given, dropped in seen:
        assert given.shape[0] == int(mask.sum())  # the running tokens (step1: every real token, once)
        kept = dropped != 0
        torch.testing.assert_close(dropped[kept], given[kept] / (1 - p), rtol=1e-12, atol=0)
        zeros, total = zeros + int((~kept).sum()), total + kept.numel()
    std = (p * (1 - p) / total) ** 0.5
    assert abs(zeros / total - p) < 5 * std, (zeros / total, p)
    with torch.no_grad():
        evaluated = model.eval()(**batch)
    assert not torch.allclose(out.last_hidden_state, evaluated.last_hidden_state)
    assert not torch.allclose(out.last_hidden_state, again.last_hidden_state)  # fresh masks at every call
    np.testing.assert_array_equal(out.updates.numpy(), evaluated.updates.numpy())  # step1: p > 1 - eps anyway

    config, model, state = build("mixed", seed=2, attention_probs_dropout_prob=p)
    model = model.to(torch.float64)
    contexts = []
    handle = model.encoder.albert_layer.attention.dense.register_forward_hook(
        lambda module, args, output: contexts.append(args[0].detach()))
    try:
        with torch.no_grad():
            model.eval()(**batch)
            expected = contexts[0]
            contexts.clear()
            model.train()
            torch.manual_seed(1)
            for _ in range(150):
                model.encoder.forward_fast_train(model.encoder.embedding_hidden_mapping_in(
                    model.embeddings(batch["input_ids"], batch["token_type_ids"])), batch["attention_mask"], cap=1)
    finally:
        handle.remove()
    draws = torch.stack(contexts)  # the first iteration's context of every real token, 150 draws
    assert draws.shape[1:] == expected.shape
    assert (draws.std(0) > 0).all()  # dropout is active on every token
    error = (draws.mean(0) - expected).abs() / (draws.std(0) / len(draws) ** 0.5)
    assert float(error.mean()) < 1.5 and float(error.max()) < 6.0


def test_gradient_checkpointing_gives_the_same_gradients(monkeypatch):
    """`activation_checkpointing_enable()` (transformers' new name of gradient_checkpointing_enable): each iteration
    recomputed in the backward pass (the FFN runs twice per iteration), the same gradients; with dropout the
    recomputation redraws the same masks."""
    for dropout in (0.0, 0.2):
        config, model, state = build("mixed", seed=6, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
        ids, mask, types = cases.make_inputs(seed=8, batch=4, length=14, padding="ragged")
        batch = inputs(ids, mask, types)
        model = model.to(torch.float64).train()
        results = []
        for checkpointed in (False, True):
            if checkpointed:
                model.activation_checkpointing_enable()
            rows = []
            handle = model.encoder.albert_layer.ffn.register_forward_hook(
                lambda module, args, output: rows.append(args[0].shape[0]))
            spy = LoopSpy(monkeypatch, model.encoder)
            torch.manual_seed(3)
            try:
                results.append((*step(model, batch, True), sum(rows)))
            finally:
                handle.remove()
                monkeypatch.undo()
            assert spy.calls == ["forward_fast_train"]
        (plain, plain_grads, plain_rows), (ckpt, ckpt_grads, ckpt_rows) = results
        assert model.is_activation_checkpointing
        model.activation_checkpointing_disable()
        updates = int(plain.updates.sum())
        assert plain_rows == updates and ckpt_rows == 2 * updates
        np.testing.assert_array_equal(plain.updates.numpy(), ckpt.updates.numpy())
        torch.testing.assert_close(ckpt.last_hidden_state, plain.last_hidden_state, rtol=0, atol=1e-12)
        assert sorted(plain_grads) == sorted(ckpt_grads)
        for name, expected in plain_grads.items():
            torch.testing.assert_close(ckpt_grads[name], expected, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("regime", ["step1", "cap", "mixed"])
def test_fast_train_under_autocast(dtype, regime, monkeypatch):
    """Mixed precision: float32 weights, layers under CPU autocast, the halting state in float32; the same counts as
    the dense loop under autocast wherever the float64 run decided far from the threshold, finite gradients for
    every parameter the dense loop trains."""
    config, model, state = build(regime, seed=8)
    ids, mask, types = cases.make_inputs(seed=4, batch=4, length=12, padding="ragged")
    reference = oracle.forward(config, state, ids, mask, types)
    model.train()
    spy = LoopSpy(monkeypatch, model.encoder)
    results = []
    for fast in (True, False):
        with torch.autocast("cpu", dtype=dtype):
            results.append(step(model, inputs(ids, mask, types), fast))
    assert spy.calls == ["forward_fast_train", "forward_dense"]
    (fast, fast_grads), (dense, dense_grads) = results
    assert fast.updates.dtype == fast.remainders.dtype == torch.float32
    assert fast.last_hidden_state.dtype == dense.last_hidden_state.dtype
    assert sorted(fast_grads) == sorted(dense_grads)
    assert all(torch.isfinite(grad).all() for grad in fast_grads.values())
    if regime != "mixed":  # decisions far from the threshold: exact counts even in half precision
        np.testing.assert_array_equal(fast.updates.numpy(), reference["updates"])
        np.testing.assert_array_equal(dense.updates.numpy(), reference["updates"])
    else:
        valid = mask > 0
        far = valid & (reference["margin"] > 0.05)
        assert far.sum() > valid.sum() // 2
        np.testing.assert_array_equal(fast.updates.numpy()[far], dense.updates.numpy()[far])


def test_compiled_training_step_keeps_the_dense_loop(monkeypatch):
    """torch.compile of a training step: the fast loop's sizes are data-dependent (a host read per iteration), so
    under compilation with gradients the encoder takes the dense loop (benchmarks/bench_train.py measures both);
    the compiled step gives the counts and gradients of the eager fast one."""
    config, model, state = build("mixed", seed=5)
    ids, mask, types = cases.make_inputs(seed=30, batch=3, length=11, padding="ragged")
    batch = inputs(ids, mask, types)
    model.train()
    eager, eager_grads = step(model, batch, True)
    compiled = torch.compile(model, backend="aot_eager", dynamic=True)
    model.zero_grad(set_to_none=True)
    out = compiled(**batch)
    loss_of(out).backward()
    np.testing.assert_array_equal(out.updates.numpy(), eager.updates.numpy())
    for name, expected in eager_grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, expected, rtol=1e-4, atol=1e-5,
                                   msg=name)
