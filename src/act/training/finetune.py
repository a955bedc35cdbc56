"""`act finetune`: fine-tune ALBERT-ACT for sequence (pair) classification or regression on transformers' Trainer.

    act finetune TRAIN DEV OUT --model MODEL [--text-column text] [--text-pair-column COL] [--label-column label]
                 [--task auto|classification|regression] [--grid] [every TrainingArguments flag]
    act finetune glue/MRPC/train.tsv glue/MRPC/dev.tsv OUT --model MODEL --glue-task mrpc [...]
    act finetune glue/MNLI/train.tsv glue/MNLI/dev_matched.tsv,glue/MNLI/dev_mismatched.tsv OUT --glue-task mnli

TRAIN and DEV: CSV (.csv), TSV (.tsv, no quoting) or JSON Lines (.jsonl, .json); DEV may name several files
separated by commas, each evaluated on its own (metrics `eval_<file stem>_accuracy`, ...; the first one chooses the
best checkpoint and the --grid setting). The task is inferred from TRAIN's label column (numbers with a fraction or a
float column: regression; strings, integers, booleans: classification) unless --task says. With --glue-task NAME
(cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli) TRAIN and DEV are that GLUE task's files as distributed
(`act.training.glue`: its columns, labels and official metrics).

A pair (--text-pair-column, the GLUE pair tasks) is encoded as ALBERT's run_classifier does it: `[CLS] A [SEP] B
[SEP]` with segment ids (token_type_ids) 0 up to and including the first [SEP] and 1 after, and a pair longer than
the model's positions loses tokens from the end of its longer text, one at a time (of B when both are as long).

Defaults follow the paper's fine-tuning: 4 epochs, an evaluation per epoch. The evaluation reports accuracy, F1
(binary: of class 1; more classes: macro) and Matthews correlation, or Pearson and Spearman correlation (and MSE)
(with --glue-task: the task's official metrics), and the mean updates per kind of token; OUT receives the model,
the tokenizer, eval_results.json, trainer_state.json and act_training.json.

--grid runs the paper's search instead: every learning rate (--grid-learning-rates, default 5e-5 3e-5 2e-5) x total
batch size (--grid-batch-sizes, default 16 32) x seed (--grid-seeds, default 1..5), each run's score being its best
per-epoch value of --metric_for_best_model (default accuracy, or pearson for regression; with --glue-task the
task's, see act.training.glue); the setting with the best mean over seeds is chosen. OUT receives grid_results.json (every run, the means, the choice) and each run's
eval history in OUT/grid/; no model is saved (train the chosen setting without --grid).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from act.checkpoints.atomic import write_files

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "json", ".json": "json"}


@dataclass
class FinetuneArguments:
    model: str = field(metadata={"help": "ALBERT-ACT model directory or hub id (a pre-trained one; its tokenizer too)"})
    revision: str | None = field(default=None, metadata={
        "help": "hub revision (branch, tag or commit) of --model given as a hub id (default: main; the hub cache is "
                "$HF_HUB_CACHE, offline with HF_HUB_OFFLINE=1)"})
    text_column: str = field(default="text", metadata={"help": "column of the (first) text"})
    text_pair_column: str | None = field(default=None, metadata={"help": "column of the second text of a pair"})
    glue_task: str | None = field(default=None, metadata={
        "help": "TRAIN and DEV are this GLUE task's files as distributed (cola, sst2, mrpc, qqp, stsb, mnli, qnli, "
                "rte, wnli; MNLI: DEV = dev_matched.tsv,dev_mismatched.tsv): its columns, labels and official "
                "metrics"})
    label_column: str = field(default="label", metadata={"help": "column of the label"})
    task: Literal["auto", "classification", "regression"] = field(default="auto", metadata={
        "help": "auto: regression for fractional/float labels, classification otherwise"})
    max_seq_length: int | None = field(default=None, metadata={
        "help": "truncate to this many tokens (default: the model's max_position_embeddings)"})
    ponder_penalty: float | None = field(default=None, metadata={
        "help": "tau, the weight of the ponder cost (default: the model config's ponder_penalty)"})
    grid: bool = field(default=False, metadata={"help": "run the learning rate x batch size x seed search"})
    grid_learning_rates: list[float] = field(default_factory=lambda: [5e-5, 3e-5, 2e-5],
                                             metadata={"help": "--grid: learning rates"})
    grid_batch_sizes: list[int] = field(default_factory=lambda: [16, 32], metadata={
        "help": "--grid: total batch sizes (per device x processes x accumulation steps)"})
    grid_seeds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5], metadata={"help": "--grid: seeds"})


def parent_parsers() -> list[argparse.ArgumentParser]:
    from .args import parent_parser

    parser = parent_parser(FinetuneArguments)
    parser.set_defaults(num_train_epochs=4.0, eval_strategy="epoch")  # the paper's fine-tuning
    return [parser]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("train", metavar="TRAIN", help="training data: .csv, .tsv or .jsonl")
    parser.add_argument("dev", metavar="DEV", help="evaluation data, same format (several: a.tsv,b.tsv, each "
                                                   "evaluated)")
    parser.add_argument("out", metavar="OUT", help="output directory")


# ------------------------------------------------------------------------------------------------------ data
def read_table(path: str):
    """A CSV/TSV/JSON Lines file as a `datasets.Dataset`."""
    import datasets

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    kind = FORMATS.get(file.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: unknown format {file.suffix!r}; expected one of {', '.join(FORMATS)}")
    try:
        if kind == "tsv":
            table = datasets.load_dataset("csv", data_files=str(file), delimiter="\t", quoting=csv.QUOTE_NONE,
                                          split="train")
        else:
            table = datasets.load_dataset(kind, data_files=str(file), split="train")
    except Exception:  # datasets' error names no line: a file that is not UTF-8 is said so, with file and line
        from act.textfiles import check_utf8

        check_utf8(file, "data file")
        raise
    if len(table) == 0:
        raise ValueError(f"data file {path} has no rows")
    return table


def dev_files(dev: str) -> list[str]:
    """DEV: one file or several separated by commas, no two with the same name (their metrics' prefix)."""
    paths = [path for path in dev.split(",") if path]
    if not paths:
        raise ValueError("DEV names no file")
    names = [dev_name(path) for path in paths]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"DEV {dev}: several files named {', '.join(repeated)} (the name of a file's metrics: "
                         f"eval_<name>_...); rename one")
    return paths


def dev_name(path: str) -> str:
    return Path(path).stem


def check_columns(table, path: str, columns) -> None:
    for column in columns:
        if column is not None and column not in table.column_names:
            raise ValueError(f"{path} has no column {column!r}; its columns: {', '.join(table.column_names)}")


def infer_task(table, label_column: str) -> str:
    import datasets

    feature = table.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return "classification"
    dtype = getattr(feature, "dtype", None)
    if dtype in ("float16", "float32", "float64"):
        values = [v for v in table[label_column] if v is not None]
        if values and all(float(v).is_integer() for v in values):
            # a float column of whole numbers (e.g. a CSV column with an empty cell) is still ambiguous: regression
            # is the safe reading only with a fraction somewhere; say so rather than guess
            raise ValueError(f"label column {label_column!r} holds whole numbers stored as floats: "
                             f"pass --task classification or --task regression")
        return "regression"
    return "classification"


def label_list(train, devs: list, label_column: str, train_path: str, dev_paths: list[str]) -> list:
    values = train[label_column]
    if any(v is None for v in values):
        raise ValueError(f"{train_path}: column {label_column!r} has empty labels")
    labels = sorted(set(values), key=lambda v: (str(type(v)), v))
    for dev, dev_path in zip(devs, dev_paths):
        if any(v is None for v in dev[label_column]):
            raise ValueError(f"{dev_path}: column {label_column!r} has empty labels")
        unknown = set(dev[label_column]) - set(labels)
        if unknown:
            shown = ", ".join(map(repr, sorted(unknown, key=str)[:5]))
            raise ValueError(f"{dev_path} has labels that {train_path} never uses: {shown}")
    return labels


def encode_pairs(tokenizer, first: list[str], second: list[str], max_length: int) -> dict:
    """run_classifier's pair encoding: the pieces of each text, the longer one cut at its end until
    `[CLS] A [SEP] B [SEP]` fits in `max_length`, segment ids 0 then 1 (`data.pair_inputs`). A tokenizer without
    [CLS]/[SEP] (not ALBERT's) encodes the pair itself."""
    from .data import pair_inputs, truncate_pair_at_end

    cls_id, sep_id = getattr(tokenizer, "cls_token_id", None), getattr(tokenizer, "sep_token_id", None)
    if cls_id is None or sep_id is None:
        return tokenizer(first, second, truncation=True, max_length=max_length, return_token_type_ids=True)
    if max_length < 5:
        raise ValueError(f"a pair needs at least 5 positions ([CLS] A [SEP] B [SEP]), got max length {max_length}")
    pieces_a = tokenizer(first, add_special_tokens=False)["input_ids"]
    pieces_b = tokenizer(second, add_special_tokens=False)["input_ids"]
    encoded = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    for a, b in zip(pieces_a, pieces_b):
        truncate_pair_at_end(a, b, max_length - 3)
        inputs = pair_inputs(a, b, cls_id, sep_id)
        encoded["input_ids"].append(inputs["input_ids"])
        encoded["token_type_ids"].append(inputs["token_type_ids"])
        encoded["attention_mask"].append([1] * len(inputs["input_ids"]))
    return encoded


def encode(table, tokenizer, options: FinetuneArguments, max_length: int, label_ids: dict | None, path: str):
    text, pair, label = options.text_column, options.text_pair_column, options.label_column

    def apply(batch):
        for column in (text, pair):
            if column is not None and any(value is None for value in batch[column]):
                raise ValueError(f"{path}: column {column!r} has empty cells")
        if any(value is None for value in batch[label]):  # an empty cell: no label, not a float(None) traceback
            raise ValueError(f"{path}: column {label!r} has empty labels")
        if pair:
            encoded = encode_pairs(tokenizer, batch[text], batch[pair], max_length)
        else:
            encoded = dict(tokenizer(batch[text], truncation=True, max_length=max_length))
        if label_ids is None:
            encoded["labels"] = [float(v) for v in batch[label]]
        else:
            encoded["labels"] = [label_ids[v] for v in batch[label]]
        return encoded

    return table.map(apply, batched=True, remove_columns=table.column_names, desc=f"tokenizing {path}")


def metric_function(task: str, glue=None):
    """compute_metrics of the Trainer: every metric of the kind of task, or with `glue` (an `act.training.glue`
    task) the task's official ones."""
    import numpy as np

    from .metrics import classification_metrics, regression_metrics

    def compute(prediction):
        logits = prediction.predictions
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        if glue is not None:
            from .glue import task_metrics

            logits = np.asarray(logits)
            predictions = logits.reshape(-1) if glue.regression else logits.argmax(-1)
            return task_metrics(glue, predictions, prediction.label_ids)
        if task == "regression":
            return regression_metrics(logits, prediction.label_ids)
        return classification_metrics(logits, prediction.label_ids)

    return compute


# ------------------------------------------------------------------------------------------------------- run
def prepare(args: argparse.Namespace):
    from .args import split_namespace
    from act.tokenization import load_tokenizer

    from .common import resolve_directory

    out = Path(args.out)
    if getattr(args, "output_dir", None) not in (None, str(args.out)):
        raise ValueError(f"OUT is {args.out!r} but --output_dir says {args.output_dir!r}: give it once, as OUT")
    args.output_dir = str(out)
    (options, training), positional = split_namespace(args, FinetuneArguments)
    options.model = resolve_directory(options.model, "--model", options.revision)
    dev_paths = dev_files(positional.dev)
    glue = None
    if options.glue_task is not None:
        from .glue import get_task, read_task_file

        glue = get_task(options.glue_task)
        if (options.text_column, options.text_pair_column, options.label_column) != ("text", None, "label"):
            raise ValueError(f"--glue-task {glue.name} reads the task's own columns: leave out --text-column, "
                             f"--text-pair-column and --label-column")
        kind = "regression" if glue.regression else "classification"
        if options.task not in ("auto", kind):
            raise ValueError(f"--glue-task {glue.name} is a {kind} task, not --task {options.task}")
        options.glue_task, options.task = glue.name, kind
        options.text_pair_column = None if glue.pair is None else "text_pair"
        train = read_task_file(positional.train, glue)
        devs = {path: read_task_file(path, glue) for path in dev_paths}
    else:
        train = read_table(positional.train)
        devs = {path: read_table(path) for path in dev_paths}
    columns = (options.text_column, options.text_pair_column, options.label_column)
    check_columns(train, positional.train, columns)
    for path, dev in devs.items():
        check_columns(dev, path, columns)
    task = infer_task(train, options.label_column) if options.task == "auto" else options.task
    if task == "regression":
        labels = None
    elif glue is not None:
        labels = list(glue.labels)
    else:
        labels = label_list(train, list(devs.values()), options.label_column, positional.train, list(devs))
    if labels is not None and len(labels) < 2:
        raise ValueError(f"{positional.train}: classification needs at least two labels, found {labels}")
    tokenizer = load_tokenizer(options.model)
    from act.configuration import AlbertActConfig

    config = AlbertActConfig.from_pretrained(options.model)
    from act.tokenization import match_model_max_length

    match_model_max_length(tokenizer, config)  # OUT's tokenizer_config.json: truncation=True fits the model
    max_length = options.max_seq_length or config.max_position_embeddings
    if max_length > config.max_position_embeddings:
        raise ValueError(f"--max_seq_length {max_length} is longer than the model's max_position_embeddings "
                         f"({config.max_position_embeddings})")
    label_ids = None if labels is None else {value: index for index, value in enumerate(labels)}
    with training.main_process_first(desc="tokenizing"):
        train_set = encode(train, tokenizer, options, max_length, label_ids, positional.train)
        dev_sets = {path: encode(dev, tokenizer, options, max_length, label_ids, path) for path, dev in devs.items()}
    if len(dev_sets) == 1:
        dev_set = next(iter(dev_sets.values()))
        prefix = ""
    else:  # each evaluated, its metrics named eval_<stem>_...; the first chooses
        dev_set = {dev_name(path): dataset for path, dataset in dev_sets.items()}
        prefix = f"{next(iter(dev_set))}_"
    if training.metric_for_best_model is None:
        metric = glue.metric if glue is not None else "pearson" if task == "regression" else "accuracy"
        training.metric_for_best_model = prefix + metric
        training.greater_is_better = True
    return out, options, training, task, labels, tokenizer, train_set, dev_set


def glue_of(options: FinetuneArguments):
    if options.glue_task is None:
        return None
    from .glue import get_task

    return get_task(options.glue_task)


def build_model(options: FinetuneArguments, task: str, labels, seed: int):
    from transformers import set_seed

    from act.pt.modeling import AlbertActForSequenceClassification

    set_seed(seed)  # the classifier's initialisation
    overrides = {"problem_type": "regression", "num_labels": 1} if task == "regression" else {
        "problem_type": "single_label_classification", "num_labels": len(labels),
        "id2label": {i: str(v) for i, v in enumerate(labels)}, "label2id": {str(v): i for i, v in enumerate(labels)}}
    model = AlbertActForSequenceClassification.from_pretrained(options.model, **overrides)
    if options.ponder_penalty is not None:
        if options.ponder_penalty < 0:
            raise ValueError(f"--ponder_penalty must be >= 0, got {options.ponder_penalty}")
        model.config.ponder_penalty = options.ponder_penalty
    model.config.architectures = ["AlbertActForSequenceClassification"]
    return model


def make_trainer(model, training, tokenizer, train_set, dev_set, task, glue=None):
    from transformers import DataCollatorWithPadding

    from .callbacks import HaltingStatsCallback
    from .trainer import ActTrainer

    return ActTrainer(model=model, args=training, train_dataset=train_set, eval_dataset=dev_set,
                      data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                      compute_metrics=metric_function(task, glue), callbacks=[HaltingStatsCallback()])


def run(args: argparse.Namespace) -> int:
    from .common import check_output_dir, command_line, find_spiece, save_final, write_marker

    out, options, training, task, labels, tokenizer, train_set, dev_set = prepare(args)
    check_output_dir(out, (options.model,))
    if training.should_save:
        write_marker(out, command_line(args), {"finetune": asdict(options), "task": task, "labels": labels})
    if options.grid:
        return run_grid(out, options, training, task, labels, tokenizer, train_set, dev_set)
    model = build_model(options, task, labels, training.seed)
    trainer = make_trainer(model, training, tokenizer, train_set, dev_set, task, glue_of(options))
    result = trainer.train(resume_from_checkpoint=training.resume_from_checkpoint)
    save_final(trainer, tokenizer, out, find_spiece(options.model))
    trainer.save_state()
    trainer.save_metrics("train", result.metrics)
    metrics = trainer.evaluate()
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)
    return 0


def run_grid(out: Path, options, training, task, labels, tokenizer, train_set, dev_set) -> int:
    import numpy as np

    metric = training.metric_for_best_model
    key = metric if metric.startswith("eval_") else f"eval_{metric}"
    sign = 1.0 if training.greater_is_better in (None, True) else -1.0
    divisor = training.world_size * training.gradient_accumulation_steps
    runs = []
    for learning_rate in options.grid_learning_rates:
        for batch_size in options.grid_batch_sizes:
            if batch_size % divisor:
                raise ValueError(f"--grid_batch_sizes: {batch_size} is not a multiple of processes x accumulation "
                                 f"steps ({divisor})")
            for seed in options.grid_seeds:
                name = f"lr{learning_rate:g}-bs{batch_size}-seed{seed}"
                run_args = dataclasses.replace(training, learning_rate=learning_rate, seed=seed,
                                               per_device_train_batch_size=batch_size // divisor,
                                               output_dir=str(out / "grid" / name), save_strategy="no",
                                               load_best_model_at_end=False)
                model = build_model(options, task, labels, seed)
                trainer = make_trainer(model, run_args, tokenizer, train_set, dev_set, task, glue_of(options))
                trainer.train()
                history = [entry for entry in trainer.state.log_history if key in entry]
                if not history:
                    raise ValueError(f"no evaluation reported {key}: check --metric_for_best_model and --eval_strategy")
                scores = [entry[key] for entry in history]
                best = max(scores, key=lambda s: sign * s)
                runs.append({"learning_rate": learning_rate, "batch_size": batch_size, "seed": seed, "score": best,
                             "per_epoch": scores, "history": history})
                if run_args.should_save:
                    run_dir = Path(run_args.output_dir)
                    run_dir.mkdir(parents=True, exist_ok=True)
                    write_files({run_dir / "eval_results.json": json.dumps(history, indent=2) + "\n"})
                print(f"grid {name}: {key} {best:.4f} (per epoch: {', '.join(f'{s:.4f}' for s in scores)})",
                      flush=True)
                del trainer, model
    settings = []
    for learning_rate in options.grid_learning_rates:
        for batch_size in options.grid_batch_sizes:
            scores = [r["score"] for r in runs if r["learning_rate"] == learning_rate and r["batch_size"] == batch_size]
            settings.append({"learning_rate": learning_rate, "batch_size": batch_size,
                             "mean": float(np.mean(scores)), "std": float(np.std(scores)), "scores": scores})
    chosen = max(settings, key=lambda s: sign * s["mean"])
    summary = {"metric": key, "greater_is_better": sign > 0, "chosen": chosen, "settings": settings, "runs": runs,
               "seeds": options.grid_seeds, "epochs": training.num_train_epochs}
    if training.should_save:
        write_files({out / "grid_results.json": json.dumps(summary, indent=2) + "\n"})  # crash-safe
        print(f"{'learning rate':>13} {'batch':>5} {'mean ' + metric:>16} {'std':>7}")
        for s in settings:
            mark = "  <- chosen" if s is chosen else ""
            print(f"{s['learning_rate']:>13g} {s['batch_size']:>5} {s['mean']:>16.4f} {s['std']:>7.4f}{mark}")
        print(f"grid results written to {out / 'grid_results.json'}")
    return 0
