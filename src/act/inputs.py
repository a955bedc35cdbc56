"""Model inputs: what is valid, written once for both frameworks and checked at the edge (the model's call).

The rules: exactly one of `input_ids` / `inputs_embeds`; token ids in [0, vocab_size); an attention mask of 0
(padding) and 1 (token); token types in [0, type_vocab_size) and positions in [0, max_position_embeddings); at
most max_position_embeddings tokens; finite `inputs_embeds` at token positions; at least one sequence of at
least one token. How a violation is reported depends on what the execution mode allows, never by a plausible
answer:

- shapes and dtypes are static: a `ValueError` in every mode (`check_shapes`);
- values, eagerly (PyTorch, Keras): a `ValueError` naming the problem, before anything is computed;
- values in a TensorFlow graph (`tf.function`, Keras `fit` / `predict`): graph assertions, an
  `InvalidArgumentError` naming the problem;
- values where nothing can raise (XLA strips assertions; PyTorch under torch.compile / torch.export): the rows
  with a bad value come out NaN (`mark_rows`): hidden states, pooled output, updates, remainders, and so the
  ponder cost, logits and loss. The other rows are unaffected.

Padding never influences real tokens: non-finite `inputs_embeds` at padding positions are replaced by 0 in every
mode (a padded key is masked out; only a NaN or inf could leak through the attention's zero weight).

The functions take an ops namespace first (`act.pt.ops.OPS` or `act.tf.ops.OPS`), like `act.halting`.
"""

from __future__ import annotations

NAMES = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")


def check_shapes(ops, config, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                 inputs_embeds=None) -> tuple:
    """Raise a `ValueError` for a wrong rank, shape or dtype; return the static (batch, seq_len), None where a
    dimension is unknown (symbolic Keras inputs, `tf.function` signatures)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("Pass exactly one of input_ids or inputs_embeds (got "
                         f"{'both' if input_ids is not None else 'neither'})")
    if input_ids is not None:
        shape = tuple(input_ids.shape)
        if len(shape) != 2:
            raise ValueError(f"input_ids must have shape (batch, seq_len), got {shape}")
        if not ops.is_integer(input_ids):
            raise ValueError(f"input_ids must be integer token ids, got dtype {input_ids.dtype}")
    else:
        if len(inputs_embeds.shape) != 3 or inputs_embeds.shape[-1] != config.embedding_size:
            raise ValueError(f"inputs_embeds must have shape (batch, seq_len, embedding_size="
                             f"{config.embedding_size}), got {tuple(inputs_embeds.shape)}")
        shape = tuple(inputs_embeds.shape[:2])
    if 0 in shape:
        raise ValueError(f"the inputs are empty (shape {shape}): pass at least one sequence of at least one token")
    if shape[1] is not None and shape[1] > config.max_position_embeddings:
        raise ValueError(
            f"sequence length {shape[1]} is longer than max_position_embeddings={config.max_position_embeddings}"
        )
    for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids),
                         ("position_ids", position_ids)):
        if tensor is None:
            continue
        other = tuple(tensor.shape)
        one_row = name != "attention_mask" and other[:1] == (1,)  # one row of types / positions serves the batch
        if len(other) != 2 or any(a is not None and b is not None and a != b and not (i == 0 and one_row)
                                  for i, (a, b) in enumerate(zip(shape, other))):
            raise ValueError(f"{name} has shape {other} but the inputs have shape {shape}")
        if name != "attention_mask" and not ops.is_integer(tensor):
            raise ValueError(f"{name} must be integers, got dtype {tensor.dtype}")
    return shape


def check_values(ops, config, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                 inputs_embeds=None, static_shape=(None, None)):
    """Apply the value rules (after `check_shapes`, which returned `static_shape`).

    Returns ``(inputs, invalid)``: a dict of the five inputs made safe to compute with, and ``invalid``, None
    eagerly (a bad value raised) or, in a graph, the (batch,) boolean tensor of the rows with a bad value (see
    `mark_rows`). Values are checked before any cast: int64 ids beyond the int32 range are reported, not truncated.
    """
    eager = ops.executing_eagerly()
    # Each rule: (bad rows, broadcastable to (batch,); the eager message; the graph message and the data it shows)
    rules = []

    def in_range(name, tensor, limit, eager_message):
        bad = (tensor < 0) | (tensor >= limit)
        rules.append((ops.any(bad, -1), eager_message,
                      lambda: (f"{name} must lie in [0, {limit}); min and max:", [ops.min(tensor), ops.max(tensor)])))
        return tensor if eager else ops.where(bad, ops.zeros_like(tensor), tensor)

    def extremes(tensor):
        return ops.to_python(ops.min(tensor)), ops.to_python(ops.max(tensor))

    if input_ids is not None:
        def ids_message(ids=input_ids, vocab=config.vocab_size):
            low, high = extremes(ids)
            return f"token id {low if low < 0 else high} in input_ids is out of range [0, vocab_size={vocab})"

        input_ids = in_range("input_ids", input_ids, config.vocab_size, ids_message)
    if token_type_ids is not None:
        limit = config.type_vocab_size
        token_type_ids = in_range("token_type_ids", token_type_ids, limit, lambda tensor=token_type_ids, limit=limit:
                                  f"token_type_ids must lie in [0, {limit}), got values in {list(extremes(tensor))}")
    if position_ids is not None:
        limit = config.max_position_embeddings
        position_ids = in_range("position_ids", position_ids, limit, lambda tensor=position_ids, limit=limit:
                                f"position_ids must lie in [0, {limit}), got values in {list(extremes(tensor))}")
    token = None
    if attention_mask is not None:
        mask = ops.cast(attention_mask, ops.float32)
        token = mask != 0.0
        text = "attention_mask must hold only 0 (padding) and 1 (token)"
        rules.append((ops.any(token & (mask != 1.0), -1), lambda: text,
                      lambda: (text + "; min and max:", [ops.min(mask), ops.max(mask)])))
        attention_mask = attention_mask if eager else ops.cast(mask == 1.0, ops.int32)
    if inputs_embeds is not None:
        finite = ops.isfinite(inputs_embeds)
        bad = ~ops.all(finite, -1)
        text = "inputs_embeds must be finite (no NaN or inf) at token positions (attention_mask = 1)"
        rules.append((ops.any(bad if token is None else bad & token, -1), lambda: text, lambda: (text, [])))
        inputs_embeds = ops.where(finite, inputs_embeds, ops.zeros_like(inputs_embeds))  # padding: see the docstring

    if eager:
        flags = ops.to_python(ops.stack([ops.any(bad) for bad, _, _ in rules]))  # one device sync for all rules
        for flag, (_, message, _) in zip(flags, rules):
            if flag:
                raise ValueError(message())
        return dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                    position_ids=position_ids, inputs_embeds=inputs_embeds), None

    # In a graph, what `check_shapes` could not check on an unknown static shape.
    size = ops.shape(input_ids if input_ids is not None else inputs_embeds)
    batch, length = size[0], size[1]
    if static_shape[1] is None:
        limit = config.max_position_embeddings
        rules.append((length > limit, None,
                      lambda: (f"sequence length must be at most max_position_embeddings={limit}; got", [length])))
        if position_ids is None:  # the default positions, kept in range (the rows are invalid anyway)
            position_ids = ops.minimum(ops.arange(length), limit - 1)[None]
    if None in static_shape:
        rules.append(((batch == 0) | (length == 0), None, lambda: (
            "the inputs are empty: pass at least one sequence of at least one token; batch and length:",
            [batch, length])))
    invalid = rules[0][0]
    for bad, _, _ in rules[1:]:
        invalid = invalid | bad
    checks = [ops.require(~ops.any(bad), *graph_message()) for bad, _, graph_message in rules]
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                  position_ids=position_ids, inputs_embeds=inputs_embeds)
    return {name: ops.after(checks, tensor) for name, tensor in inputs.items()}, invalid


def mark_rows(ops, tensor, invalid):
    """NaN in the rows (first axis) of `tensor` that `invalid` flags; `tensor` as it is when `invalid` is None."""
    if invalid is None or tensor is None:
        return tensor
    rows = ops.reshape(invalid, [-1] + [1] * (len(tensor.shape) - 1))
    return ops.where(rows, ops.full_like(tensor, float("nan")), tensor)


def mark_outputs(ops, encoded, invalid):
    """`mark_rows` on every per-row field of an encoder output (a dict or a ModelOutput, updated in place)."""
    if invalid is not None:
        for name in ("last_hidden_state", "updates", "remainders"):
            encoded[name] = mark_rows(ops, encoded[name], invalid)
        for name in ("hidden_states", "attentions"):
            if encoded.get(name) is not None:
                encoded[name] = tuple(mark_rows(ops, tensor, invalid) for tensor in encoded[name])
    return encoded


__all__ = ["NAMES", "check_shapes", "check_values", "mark_rows", "mark_outputs"]
