"""`HaltingStatsCallback`: a `transformers.TrainerCallback` that reports, at each evaluation, the mean number of
updates per kind of token (all, unmasked, masked, mask, random, original, cls, sep; see `halting_stats`).

    trainer = Trainer(model, args, ..., callbacks=[HaltingStatsCallback()])

At each evaluation it runs the model's encoder (inference, the fast ACT loop) over the evaluation batches and adds
`eval_updates_<kind>` to the metrics that `evaluate()` returns, to `trainer.state.log_history`, and to TensorBoard
when `report_to` includes "tensorboard" and TensorBoard is installed. Masked-LM labels of the shape of the input
(`AlbertActForPreTraining` / `AlbertActForMaskedLM` batches) split the masked tokens into mask/random/original.
Under torch.distributed the counts of every rank are summed, so each rank reports the same numbers.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from transformers import TrainerCallback

from .halting_stats import CATEGORIES, HaltingAccumulator

MLM_MODELS = ("AlbertActForPreTraining", "AlbertActForMaskedLM")


def all_reduce_sum(array: np.ndarray, device=None) -> np.ndarray:
    """Sum a float64 array over the ranks of torch.distributed (identity when it is not initialised)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return array
    if device is None or torch.distributed.get_backend() == "gloo":
        device = torch.device("cpu")
    tensor = torch.as_tensor(array, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return tensor.cpu().numpy()


def reduce_accumulator(accumulator: HaltingAccumulator, device=None) -> HaltingAccumulator:
    both = all_reduce_sum(np.concatenate([accumulator.sums, accumulator.counts]), device)
    reduced = HaltingAccumulator(accumulator.special_ids, accumulator.cls_id, accumulator.sep_id,
                                 accumulator.mask_id)
    reduced.merge(both[:len(CATEGORIES)], both[len(CATEGORIES):])
    return reduced


def encoder_updates(model, batch: dict) -> torch.Tensor:
    """`updates` of the model's ALBERT-ACT encoder for one batch (no gradients; the caller sets eval mode)."""
    encoder = getattr(model, "base_model", model)
    inputs = {name: batch[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in batch}
    if "input_ids" not in inputs:
        raise ValueError("HaltingStatsCallback needs batches with input_ids")
    device = next(encoder.parameters()).device
    inputs = {name: value.to(device) for name, value in inputs.items()}
    with torch.no_grad():
        outputs = encoder(**inputs, return_dict=True)
    updates = getattr(outputs, "updates", None)
    if updates is None:
        raise ValueError(f"{type(encoder).__name__} returns no `updates`: HaltingStatsCallback needs an ALBERT-ACT "
                         f"model")
    return updates


class HaltingStatsCallback(TrainerCallback):
    """Mean updates per kind of token at each evaluation (see the module docstring).

    tokenizer: gives the ids of [CLS], [SEP], [MASK] and the special tokens; default: the Trainer's
        processing_class.
    dataloader: batches to measure; default: the evaluation batches of the evaluation being reported.
    max_batches: measure at most this many batches (default: all).
    """

    def __init__(self, tokenizer=None, dataloader=None, max_batches: int | None = None):
        self.tokenizer = tokenizer
        self.dataloader = dataloader
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"max_batches must be >= 1, got {max_batches}")
        self.max_batches = max_batches
        self.writer = None

    def measure(self, model, dataloader, tokenizer) -> HaltingAccumulator:
        accumulator = HaltingAccumulator.from_tokenizer(tokenizer)
        mlm = type(model).__name__ in MLM_MODELS
        was_training = model.training
        model.eval()
        try:
            for index, batch in enumerate(dataloader):
                if self.max_batches is not None and index >= self.max_batches:
                    break
                updates = encoder_updates(model, batch)
                labels = batch.get("labels") if mlm else None
                accumulator.add(updates.float().cpu().numpy(), batch["input_ids"].cpu().numpy(),
                                None if batch.get("attention_mask") is None else batch["attention_mask"].cpu().numpy(),
                                None if labels is None else labels.cpu().numpy())
        finally:
            model.train(was_training)
        return reduce_accumulator(accumulator, next(model.parameters()).device)

    def on_evaluate(self, args, state, control, model=None, processing_class=None, eval_dataloader=None,
                    metrics=None, **kwargs):
        tokenizer = self.tokenizer if self.tokenizer is not None else processing_class
        if tokenizer is None:
            raise ValueError("HaltingStatsCallback needs a tokenizer: pass one, or give the Trainer a processing_class")
        dataloader = self.dataloader if self.dataloader is not None else eval_dataloader
        if model is None or dataloader is None:
            return
        prefix = "eval"
        if metrics:
            for key in metrics:
                if key.endswith("_runtime"):
                    prefix = key[: -len("_runtime")]
                    break
        keys = [f"{prefix}_updates_{name}" for name in CATEGORIES]
        if self.dataloader is None and metrics and f"{prefix}_updates_all" in metrics:
            # ActTrainer measured them during this evaluation and logged them with its metrics already
            results = {key: metrics[key] for key in keys if key in metrics}
        else:
            results = self.measure(model, dataloader, tokenizer).means(prefix + "_")
            if metrics is not None:
                metrics.update(results)
            state.log_history.append({**results, "epoch": state.epoch, "step": state.global_step})
        if state.is_world_process_zero:
            print(" ".join(f"{key} {value:.3f}" for key, value in results.items()), flush=True)
            self.write_tensorboard(args, state, results)

    def write_tensorboard(self, args, state, results: dict) -> None:
        if "tensorboard" not in (args.report_to or []):
            return
        if self.writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # TensorBoard is not installed: the metrics still go to evaluate() and log_history
                return
            log_dir = (getattr(args, "logging_dir", None) or os.getenv("TENSORBOARD_LOGGING_DIR")
                       or os.path.join(args.output_dir, "runs", "halting_stats"))
            self.writer = SummaryWriter(log_dir=log_dir)
        for key, value in results.items():
            self.writer.add_scalar(key.replace("_", "/", 1), value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class StepTimeCallback(TrainerCallback):
    """The wall time of each optimizer step, from `on_step_begin` to `on_step_end`: the forward and backward passes of
    its (accumulated) batches, gradient clipping and the optimizer step; fetching the batches is not included. On a
    GPU the device is synchronised at both ends, so the time is that of the work, not of its launch.

    `take()` returns (steps, seconds) since the previous call. `ActTrainer` installs one and logs, with every
    training loss, `step_time` (seconds per optimizer step) and `tokens_per_second` (the real tokens, attention mask
    1, of every rank's batches over that time) of the steps since the previous log.
    """

    def __init__(self):
        self.steps, self.seconds, self.start = 0, 0.0, None

    @staticmethod
    def synchronize(device) -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    def on_step_begin(self, args, state, control, **kwargs):
        self.synchronize(args.device)
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.start is None:
            return
        self.synchronize(args.device)
        self.steps, self.seconds = self.steps + 1, self.seconds + time.perf_counter() - self.start
        self.start = None

    def take(self) -> tuple[int, float]:
        steps, seconds = self.steps, self.seconds
        self.steps, self.seconds = 0, 0.0
        return steps, seconds


class PonderWarmupCallback(TrainerCallback):
    """Ramps the ponder penalty tau linearly from 0 to `ponder_penalty` over the first `steps` optimizer steps
    (`act pretrain --ponder-warmup-steps N`): optimizer step k (0-based) trains with tau * min(1, k / steps), and the
    model ends (`on_train_end`) with the full tau in its config. The penalty is the model's `config.ponder_penalty`,
    which its forward reads at every call; a checkpoint saved during the warm-up records the tau of its step, and a
    resumed run continues the ramp from its global step.

    Why: a fresh model's task loss gains nothing from depth yet, so from the first step the ponder cost alone pushes
    the halting unit to stop after one update, where R = 1 leaves it no gradient (an absorbing state). Without the
    penalty for a while, the masked-LM gradient through the update weights can first make depth pay.
    """

    def __init__(self, ponder_penalty: float, steps: int):
        if not (isinstance(ponder_penalty, (int, float)) and ponder_penalty >= 0 and np.isfinite(ponder_penalty)):
            raise ValueError(f"ponder_penalty must be a finite number >= 0, got {ponder_penalty!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"the ponder warm-up needs steps >= 1, got {steps!r}")
        self.ponder_penalty, self.steps = float(ponder_penalty), steps

    def penalty_at(self, step: int) -> float:
        """tau at (0-based) optimizer step `step`."""
        return self.ponder_penalty * min(1.0, step / self.steps)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:
            getattr(model, "module", model).config.ponder_penalty = self.penalty_at(state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            getattr(model, "module", model).config.ponder_penalty = self.ponder_penalty
