"""`KerasHaltingStatsCallback`: the Keras counterpart of `HaltingStatsCallback`, for `model.fit`.

    model.fit(train, validation_data=dev, epochs=4,
              callbacks=[KerasHaltingStatsCallback(dev, tokenizer)])

At the end of each epoch it runs the model (inference) over `data` and adds `val_updates_<kind>` (mean updates per
kind of token: all, unmasked, masked, mask, random, original, cls, sep; see `act.training.halting_stats`) to the
epoch's logs, so `History` (and any callback after it in the list, such as `keras.callbacks.TensorBoard`) sees them;
with `log_dir` it also writes them to TensorBoard itself. Importing this module imports Keras (and TensorFlow):
`act.training` loads it only when `KerasHaltingStatsCallback` is used.
"""

from __future__ import annotations

import keras
import numpy as np

from .halting_stats import HaltingAccumulator

MLM_MODELS = ("TFAlbertActForPreTraining", "TFAlbertActForMaskedLM")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def iterate_batches(data, batch_size: int):
    """Batches of input dicts from a dict of arrays (split into `batch_size` rows), a `tf.data.Dataset` or any
    iterable of `x` / `(x, y)` / `(x, y, sample_weight)` batches whose `x` is a dict."""
    if isinstance(data, dict):
        rows = len(np.asarray(data["input_ids"]))
        for start in range(0, rows, batch_size):
            yield {name: np.asarray(value)[start:start + batch_size] for name, value in data.items()}
        return
    for batch in data:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(x, dict):
            raise ValueError("KerasHaltingStatsCallback needs batches whose inputs are a dict with input_ids")
        yield x


class KerasHaltingStatsCallback(keras.callbacks.Callback):
    """Mean updates per kind of token at the end of every epoch (see the module docstring).

    data: a dict of arrays (`input_ids`, optional `attention_mask`, `token_type_ids`, and masked-LM `labels` of the
        input's shape for a pre-training/MLM model), a `tf.data.Dataset` or an iterable of such batches.
    tokenizer: gives the ids of [CLS], [SEP], [MASK] and the special tokens; or pass `special_ids`,
        `cls_token_id`, `sep_token_id`, `mask_token_id`.
    prefix: of the log keys (default "val_"). log_dir: also write the values to TensorBoard there (needs the
        `tensorboard` package). batch_size: rows per call for a dict of arrays. max_batches: at most this many.
    """

    def __init__(self, data, tokenizer=None, *, special_ids=None, cls_token_id=None, sep_token_id=None,
                 mask_token_id=None, prefix: str = "val_", log_dir: str | None = None, batch_size: int = 32,
                 max_batches: int | None = None):
        super().__init__()
        if tokenizer is not None:
            special_ids = tokenizer.all_special_ids if special_ids is None else special_ids
            cls_token_id = tokenizer.cls_token_id if cls_token_id is None else cls_token_id
            sep_token_id = tokenizer.sep_token_id if sep_token_id is None else sep_token_id
            mask_token_id = tokenizer.mask_token_id if mask_token_id is None else mask_token_id
        if special_ids is None:
            raise ValueError("KerasHaltingStatsCallback needs a tokenizer or the special token ids")
        if isinstance(data, dict) and "input_ids" not in data:
            raise ValueError("KerasHaltingStatsCallback: data has no input_ids")
        if batch_size < 1 or (max_batches is not None and max_batches < 1):
            raise ValueError("batch_size and max_batches must be >= 1")
        self.data = data
        self.accumulator = HaltingAccumulator(special_ids, cls_token_id, sep_token_id, mask_token_id)
        self.prefix = prefix
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.log_dir = log_dir
        self.writer = None
        if log_dir is not None:
            try:
                import tensorboard  # noqa: F401  (tf.summary needs it)
            except ImportError as error:
                raise ImportError("KerasHaltingStatsCallback(log_dir=...) writes TensorBoard summaries: install "
                                  "the `tensorboard` package, or leave log_dir out") from error

    def measure(self) -> dict:
        self.accumulator.reset()
        mlm = type(self.model).__name__ in MLM_MODELS
        for index, x in enumerate(iterate_batches(self.data, self.batch_size)):
            if self.max_batches is not None and index >= self.max_batches:
                break
            inputs = {name: x[name] for name in INPUT_NAMES if name in x}
            outputs = self.model(inputs, training=False)
            if not isinstance(outputs, dict) or "updates" not in outputs:
                raise ValueError(f"{type(self.model).__name__} returns no `updates`: KerasHaltingStatsCallback "
                                 f"needs an ALBERT-ACT model")
            labels = x.get("labels") if mlm else None
            self.accumulator.add(np.asarray(outputs["updates"]), np.asarray(inputs["input_ids"]),
                                 None if "attention_mask" not in inputs else np.asarray(inputs["attention_mask"]),
                                 None if labels is None else np.asarray(labels))
        return self.accumulator.means(self.prefix)

    def on_epoch_end(self, epoch, logs=None):
        results = self.measure()
        if logs is not None:
            logs.update(results)
        if self.log_dir is not None:
            import tensorflow as tf

            if self.writer is None:
                self.writer = tf.summary.create_file_writer(self.log_dir)
            with self.writer.as_default():
                for key, value in results.items():
                    tf.summary.scalar(key, value, step=epoch)
            self.writer.flush()
