"""`ActTrainer`: transformers' `Trainer` for ALBERT-ACT models, as used by `act pretrain` and `act finetune`.

What it adds to `Trainer`:

- logs, with the loss, the mean ponder cost and the mean updates per kind of token (`updates_all`, `updates_cls`,
  ...; see `halting_stats`) of the batches since the last log, and for pre-training the masked-LM and
  sentence-order accuracies and losses (`mlm_accuracy`, `sop_accuracy`, `mlm_loss`, `sop_loss`); the same keys with
  the `eval_` prefix at each evaluation. Under torch.distributed the sums of every rank are added up first.
- LAMB (`act.training.lamb.Lamb`) as the optimizer when `lamb=True`: biases and LayerNorm weights get neither weight
  decay nor the trust ratio (ALBERT's exclusions); learning rate, betas, epsilon and weight decay come from the
  TrainingArguments (`--learning_rate`, `--adam_beta1/2`, `--adam_epsilon`, `--weight_decay`).
- logs, with each training loss, the time per optimizer step (`step_time`, seconds: forward, backward and optimizer
  step of its accumulated batches, `StepTimeCallback`) and the throughput (`tokens_per_second`: real tokens of every
  rank's batches per second of those steps) since the last log.
- `halting_lr_scale`: the halting unit's learning rate relative to the others (0 keeps its initialisation: the
  encoder then learns when to halt through the states it feeds the unit).
- gradient accumulation that averages: the ALBERT-ACT models' `forward` takes `**kwargs`, which makes `Trainer`
  believe that the model normalises its loss over the whole accumulated batch (it does not), so the loss would not
  be divided by the accumulation steps; `ActTrainer` tells `Trainer` that it is not.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import Trainer

from .callbacks import StepTimeCallback, all_reduce_sum
from .halting_stats import CATEGORIES, kind_totals, means_from_totals, token_kinds
from .lamb import Lamb

HALTING_UNIT = "encoder.albert_layer.act."  # the halting unit's parameters (act.dense)
HALTING_FIELDS = ("updates", "remainders", "ponder_cost", "hidden_states", "attentions")
# the scalar statistics accumulated besides the halting ones: name -> index
SCALARS = ("batches", "tokens", "ponder_cost", "mlm_correct", "mlm_total", "mlm_loss", "sop_correct", "sop_total",
           "sop_loss")


class StepStatistics:
    """Device-side sums of the statistics of every batch since the last reset (no host sync per step)."""

    def __init__(self):
        self.values = None

    def add(self, values: torch.Tensor) -> None:
        values = values.detach().to(torch.float64)
        self.values = values if self.values is None else self.values + values

    def reduce_and_reset(self) -> np.ndarray | None:
        if self.values is None:
            totals = None
        else:
            totals = self.values.cpu().numpy()
        self.values = None
        return totals


class ActTrainer(Trainer):
    """See the module docstring. `lamb`: use LAMB. `halting_lr_scale`: the halting unit's learning rate factor. The
    processing_class must be the model's tokenizer."""

    def __init__(self, *args, lamb: bool = False, halting_lr_scale: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not halting_lr_scale >= 0.0:
            raise ValueError(f"halting_lr_scale must be >= 0, got {halting_lr_scale}")
        self.use_lamb = lamb
        self.halting_lr_scale = float(halting_lr_scale)
        self.model_accepts_loss_kwargs = False  # see the module docstring
        tokenizer = self.processing_class
        if tokenizer is None or not hasattr(tokenizer, "all_special_ids"):
            raise ValueError("ActTrainer needs the model's tokenizer as processing_class (for the kinds of token)")
        self.kind_ids = (sorted(tokenizer.all_special_ids), tokenizer.cls_token_id, tokenizer.sep_token_id,
                         tokenizer.mask_token_id)
        self.statistics = {"train": StepStatistics(), "eval": StepStatistics()}
        self.step_timer = StepTimeCallback()
        self.add_callback(self.step_timer)

    # ------------------------------------------------------------------------------------------------ optimizer
    def create_optimizer(self, model=None):
        if self.optimizer is not None or (not self.use_lamb and self.halting_lr_scale == 1.0):
            return super().create_optimizer(model) if model is not None else super().create_optimizer()
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        named = [(name, p) for name, p in opt_model.named_parameters() if p.requires_grad]
        halting = {name for name, _ in named if HALTING_UNIT in name}
        lr = self.args.learning_rate
        groups = [
            {"params": [p for name, p in named if name in decay and name not in halting],
             "weight_decay": self.args.weight_decay},
            {"params": [p for name, p in named if name not in decay and name not in halting], "weight_decay": 0.0},
            {"params": [p for name, p in named if name in decay and name in halting],
             "weight_decay": self.args.weight_decay, "lr": lr * self.halting_lr_scale},
            {"params": [p for name, p in named if name not in decay and name in halting], "weight_decay": 0.0,
             "lr": lr * self.halting_lr_scale},
        ]
        if self.use_lamb:  # ALBERT: no trust ratio where there is no weight decay (biases, LayerNorm)
            for group in groups:
                group["adapt"] = group["weight_decay"] > 0
            optimizer_cls, kwargs = Lamb, {"lr": lr, "betas": (self.args.adam_beta1, self.args.adam_beta2),
                                           "eps": self.args.adam_epsilon}
        else:
            optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls([group for group in groups if group["params"]], **kwargs)
        return self.optimizer

    # ----------------------------------------------------------------------------------------------------- loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs, return_dict=True)
        loss = outputs["loss"]
        if loss is None:
            raise ValueError(f"the model returned no loss: the batch has no labels (keys: {', '.join(inputs)})")
        with torch.no_grad():
            self.statistics["train" if model.training else "eval"].add(self.batch_statistics(inputs, outputs))
        return (loss, outputs) if return_outputs else loss

    def batch_statistics(self, inputs, outputs) -> torch.Tensor:
        updates = outputs["updates"]
        labels = inputs.get("labels")
        mlm_labels = labels if labels is not None and "prediction_logits" in outputs else None
        kinds = token_kinds(inputs["input_ids"], inputs.get("attention_mask"), *self.kind_ids, mlm_labels=mlm_labels)
        sums, counts = kind_totals(updates.float(), kinds)
        zero = updates.new_zeros(())
        scalars = dict.fromkeys(SCALARS, zero)
        scalars["batches"] = zero + 1
        mask = inputs.get("attention_mask")
        scalars["tokens"] = zero + (inputs["input_ids"].numel() if mask is None else mask.sum())
        ponder_cost = getattr(outputs, "ponder_cost", None)  # an attribute of the output, not a key
        if ponder_cost is not None:
            scalars["ponder_cost"] = ponder_cost.float()
        if mlm_labels is not None:
            selected = mlm_labels >= 0
            logits = outputs["prediction_logits"][selected].float()
            targets = mlm_labels[selected]
            scalars["mlm_correct"] = (logits.argmax(-1) == targets).sum().float()
            scalars["mlm_total"] = zero + targets.numel()
            if targets.numel():
                scalars["mlm_loss"] = torch.nn.functional.cross_entropy(logits, targets)
        order = inputs.get("sentence_order_label")
        if order is not None and outputs.get("sop_logits") is not None:
            sop_logits = outputs["sop_logits"].float()
            scalars["sop_correct"] = (sop_logits.argmax(-1) == order).sum().float()
            scalars["sop_total"] = zero + order.numel()
            scalars["sop_loss"] = torch.nn.functional.cross_entropy(sop_logits, order)
        values = [*(s.float() for s in sums), *(c.float() for c in counts), *scalars.values()]
        return torch.stack([v.reshape(()).to(updates.device) for v in values])

    def summarize(self, split: str, prefix: str = "", timing: tuple[int, float] | None = None) -> dict:
        """The statistics of `split` since the last call, summed over every rank, as loggable means; with `timing`
        ((steps, seconds) of `StepTimeCallback.take`), the step time and the tokens per second too."""
        totals = self.statistics[split].reduce_and_reset()
        size = 2 * len(CATEGORIES) + len(SCALARS)
        totals = all_reduce_sum(np.zeros(size) if totals is None else totals, self.args.device)
        sums, counts = totals[:len(CATEGORIES)], totals[len(CATEGORIES):2 * len(CATEGORIES)]
        scalars = dict(zip(SCALARS, totals[2 * len(CATEGORIES):]))
        results = {}
        batches = scalars["batches"]
        if batches:
            results[f"{prefix}ponder_cost"] = scalars["ponder_cost"] / batches
        if scalars["mlm_total"]:
            results[f"{prefix}mlm_accuracy"] = scalars["mlm_correct"] / scalars["mlm_total"]
            results[f"{prefix}mlm_loss"] = scalars["mlm_loss"] / batches
        if scalars["sop_total"]:
            results[f"{prefix}sop_accuracy"] = scalars["sop_correct"] / scalars["sop_total"]
            results[f"{prefix}sop_loss"] = scalars["sop_loss"] / batches
        results.update(means_from_totals(sums, counts, prefix))
        if timing is not None and timing[0] and timing[1] > 0:
            results[f"{prefix}step_time"] = timing[1] / timing[0]
            results[f"{prefix}tokens_per_second"] = scalars["tokens"] / timing[1]
        return {key: round(float(value), 4) for key, value in results.items()}

    # -------------------------------------------------------------------------------------------------- logging
    def log(self, logs, start_time=None):
        if "loss" in logs:  # a training log (every rank gets here together): add the statistics since the last one
            logs.update(self.summarize("train", timing=self.step_timer.take()))
        return super().log(logs, start_time) if start_time is not None else super().log(logs)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        self.statistics["eval"].reduce_and_reset()
        if ignore_keys is None:  # predictions are the task's logits only (not the halting fields)
            ignore_keys = list(HALTING_FIELDS)
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                         metric_key_prefix)
        output.metrics.update(self.summarize("eval", f"{metric_key_prefix}_"))
        return output
