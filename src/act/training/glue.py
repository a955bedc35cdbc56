"""The GLUE tasks as they are distributed (GLUE's download script: one directory per task with train.tsv and
dev.tsv, MNLI with dev_matched.tsv and dev_mismatched.tsv), for `act finetune --glue-task NAME`.

Every file is read as GLUE's own reference code reads it: tab-separated, no quoting (`csv.QUOTE_NONE`: MRPC's
and SST-2's quote characters are part of the text), UTF-8 (a byte-order mark before MRPC's header is dropped). The
columns are found by the task's header, CoLA's header-less files by position (source, label, original judgement,
sentence). The labels are the task's fixed label set (GLUE's processors' order), so an unknown label is an error
naming the file and line; STS-B's score is a float (regression).

Metrics (`act.training.metrics`, NumPy): the official ones of each task, CoLA Matthews correlation, STS-B Pearson
and Spearman correlation, MRPC and QQP F1 (of class 1, "paraphrase" / "duplicate") and accuracy, the others
accuracy; `score` is the task's GLUE number (the mean of the two for MRPC, QQP and STS-B). The best checkpoint and
the --grid search choose by `METRIC` (ALBERT's dev-set tables: Matthews for CoLA, Pearson for STS-B, accuracy for
the rest).
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class GlueTask:
    name: str
    text: str | int                        # header name, or the position in a header-less file
    pair: str | int | None
    label: str | int
    labels: tuple[str, ...] | None         # None: regression
    metrics: tuple[str, ...]
    metric: str                            # what --metric_for_best_model defaults to
    header: bool = True
    dev: tuple[str, ...] = ("dev.tsv",)
    skip_short_rows: bool = False          # QQP: GLUE's reference processors skip rows that lack fields

    @property
    def regression(self) -> bool:
        return self.labels is None


BINARY = ("0", "1")
ENTAILMENT = ("entailment", "not_entailment")
TASKS = {task.name: task for task in (
    GlueTask("cola", 3, None, 1, BINARY, ("matthews_correlation",), "matthews_correlation", header=False),
    GlueTask("sst2", "sentence", None, "label", BINARY, ("accuracy",), "accuracy"),
    GlueTask("mrpc", "#1 String", "#2 String", "Quality", BINARY, ("f1", "accuracy"), "accuracy"),
    GlueTask("qqp", "question1", "question2", "is_duplicate", BINARY, ("f1", "accuracy"), "accuracy",
             skip_short_rows=True),
    GlueTask("stsb", "sentence1", "sentence2", "score", None, ("pearson", "spearman"), "pearson"),
    GlueTask("mnli", "sentence1", "sentence2", "gold_label", ("contradiction", "entailment", "neutral"),
             ("accuracy",), "accuracy", dev=("dev_matched.tsv", "dev_mismatched.tsv")),
    GlueTask("qnli", "question", "sentence", "label", ENTAILMENT, ("accuracy",), "accuracy"),
    GlueTask("rte", "sentence1", "sentence2", "label", ENTAILMENT, ("accuracy",), "accuracy"),
    GlueTask("wnli", "sentence1", "sentence2", "label", BINARY, ("accuracy",), "accuracy"),
)}
ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}


def get_task(name: str) -> GlueTask:
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"--glue-task {name!r}: not a GLUE task; one of {', '.join(TASKS)}")
    return TASKS[key]


def _position(columns: list[str], column, path: Path) -> int:
    if isinstance(column, int):
        return column
    if column not in columns:
        raise ValueError(f"{path}: no column {column!r} in its header ({', '.join(columns)}): not this GLUE task's "
                         f"file?")
    return columns.index(column)


def read_rows(path, task: GlueTask) -> tuple[dict, int]:
    """The task's file as columns {"text", "text_pair" (pair tasks), "label"} of strings (STS-B: float labels), and
    the number of rows skipped (QQP's rows that lack fields, as GLUE's processors skip them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    with path.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE))
    first = 1 if task.header else 0
    if task.header and not rows:
        raise ValueError(f"data file {path} is empty")
    columns = rows[0] if task.header else []
    wanted = {"text": task.text, "label": task.label}
    if task.pair is not None:
        wanted["text_pair"] = task.pair
    positions = {key: _position(columns, column, path) for key, column in wanted.items()}
    needed = max(positions.values()) + 1
    table = {key: [] for key in positions}
    skipped = 0
    for number, row in enumerate(rows[first:], start=first + 1):
        if not row or row == [""]:
            continue  # a blank line (e.g. a trailing one)
        if len(row) < needed:
            if task.skip_short_rows:
                skipped += 1
                continue
            raise ValueError(f"{path}:{number}: {len(row)} tab-separated fields, {task.name} needs {needed} (is it "
                             f"the task's file as distributed, read without quoting?)")
        for key, position in positions.items():
            table[key].append(row[position])
        label = table["label"][-1]
        if task.regression:
            try:
                table["label"][-1] = float(label)
            except ValueError:
                raise ValueError(f"{path}:{number}: {task.name} score {label!r} is not a number") from None
        elif label not in task.labels:
            raise ValueError(f"{path}:{number}: {task.name} label {label!r} is not one of {', '.join(task.labels)}")
    if not table["label"]:
        raise ValueError(f"data file {path} has no rows")
    return table, skipped


def read_task_file(path, task: GlueTask):
    """`read_rows` as a `datasets.Dataset` (a note on stdout for skipped rows)."""
    import datasets

    table, skipped = read_rows(path, task)
    if skipped:
        print(f"{path}: skipped {skipped} rows with missing fields (as GLUE's reference processors do)", flush=True)
    return datasets.Dataset.from_dict(table)


def task_metrics(task: GlueTask, predictions, labels) -> dict:
    """The official metrics of `task` for predictions (class indices, or scores for STS-B), and `score`, the
    task's GLUE number."""
    import numpy as np

    from .metrics import accuracy, f1, matthews_correlation, pearson, spearman

    functions = {"accuracy": accuracy, "f1": f1, "matthews_correlation": matthews_correlation, "pearson": pearson,
                 "spearman": spearman}
    results = {name: functions[name](predictions, labels) for name in task.metrics}
    results["score"] = float(np.mean([results[name] for name in task.metrics]))
    return results


__all__ = ["GlueTask", "TASKS", "get_task", "read_rows", "read_task_file", "task_metrics"]
