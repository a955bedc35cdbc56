"""GLUE as distributed: `act finetune --glue-task` reads each task's files in their own layout (written here, as
GLUE's download script leaves them), with each task's official metrics; the metrics against independent
computations; the paper's search on a GLUE task."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from training_helpers import heldout_lines, write_model

# the layouts of GLUE's files: header (None: header-less), then how a row is written from (a, b, label)
MNLI_TRAIN = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
MNLI_DEV = MNLI_TRAIN[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]


def glue_lines(task: str, rows, dev: bool = False) -> list[str]:
    lines = []
    for i, (a, b, label) in enumerate(rows):
        if task == "cola":
            lines.append(f"gj04\t{label}\t{'' if label == '1' else '*'}\t{a}")
        elif task == "sst2":
            lines.append(f"{a}\t{label}")
        elif task == "mrpc":
            lines.append(f"{label}\t{1000 + i}\t{2000 + i}\t{a}\t{b}")
        elif task == "stsb":
            lines.append(f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t{a}\t{b}\t{label}")
        elif task == "qqp":
            lines.append(f"{i}\t{2 * i}\t{2 * i + 1}\t{a}\t{b}\t{label}")
        elif task == "mnli":
            parse = f"( ( {a} ) )\t( ( {b} ) )\t(ROOT (S {a}))\t(ROOT (S {b}))"
            extra = f"{label}\t{label}\t{label}\t{label}\t" if dev else ""
            lines.append(f"{i}\t{31193 + i}\t{31193 + i}n\tfiction\t{parse}\t{a}\t{b}\t{label}\t{extra}{label}")
        else:  # qnli, rte, wnli
            lines.append(f"{i}\t{a}\t{b}\t{label}")
    header = {"cola": None, "sst2": "sentence\tlabel", "mrpc": "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
              "stsb": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
              "qqp": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
              "mnli": "\t".join(MNLI_DEV if dev else MNLI_TRAIN), "qnli": "index\tquestion\tsentence\tlabel",
              "rte": "index\tsentence1\tsentence2\tlabel", "wnli": "index\tsentence1\tsentence2\tlabel"}[task]
    return lines if header is None else [header, *lines]


def write_glue(path, task: str, rows, dev: bool = False, bom: bool = False):
    path.write_text(("\ufeff" if bom else "") + "\n".join(glue_lines(task, rows, dev)) + "\n", encoding="utf-8")
    return path


LABELS = {"cola": ["0", "1"], "sst2": ["0", "1"], "mrpc": ["0", "1"], "qqp": ["0", "1"], "wnli": ["0", "1"],
          "mnli": ["contradiction", "entailment", "neutral"], "qnli": ["entailment", "not_entailment"],
          "rte": ["entailment", "not_entailment"]}
PAIR_TASKS = ("mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")


def task_rows(task: str, count: int, offset: int = 0, seed: int = 0):
    rng = random.Random(seed)
    lines = heldout_lines(offset + count + 1)[offset:]
    rows = []
    for a, b in zip(lines, lines[1:]):
        label = f"{rng.randint(0, 50) / 10:.1f}" if task == "stsb" else rng.choice(LABELS[task])
        rows.append((a, b, label))
    return rows


# -------------------------------------------------------------------------------------------- the readers
TRICKY = '" Sounds good , " he said , " the "best" one .'  # quote characters, as in MRPC and SST-2


@pytest.mark.parametrize("task", ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"])
def test_every_task_file_is_read_as_distributed(tmp_path, task):
    from act.training.glue import get_task, read_rows

    rows = task_rows(task, 5)
    rows[1] = (TRICKY, TRICKY[::-1], rows[1][2])  # a quoted field with tabs after it: read verbatim
    for dev in ((False, True) if task == "mnli" else (False,)):
        path = write_glue(tmp_path / f"{task}{dev}.tsv", task, rows, dev=dev, bom=task == "mrpc")
        table, skipped = read_rows(path, get_task(task))
        assert skipped == 0
        assert table["text"] == [a for a, _, _ in rows]
        if task in PAIR_TASKS:
            assert table["text_pair"] == [b for _, b, _ in rows]
        else:
            assert "text_pair" not in table
        if task == "stsb":
            assert table["label"] == [float(label) for _, _, label in rows]
        else:
            assert table["label"] == [label for _, _, label in rows]


def test_reader_errors_name_the_file_and_line(tmp_path):
    from act.training.glue import get_task, read_rows

    with pytest.raises(ValueError, match="not a GLUE task; one of cola, sst2"):
        get_task("squad")
    assert get_task("STS-B").name == "stsb" and get_task("SST-2").name == "sst2"
    rte = write_glue(tmp_path / "rte.tsv", "rte", task_rows("rte", 3))
    with pytest.raises(ValueError, match="no column 'question' in its header"):  # RTE's file given as QNLI's
        read_rows(rte, get_task("qnli"))
    bad = tmp_path / "bad.tsv"
    bad.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tcontradiction\n")
    with pytest.raises(ValueError, match=r"bad.tsv:3: rte label 'contradiction' is not one of entailment, "):
        read_rows(bad, get_task("rte"))
    bad.write_text("gj04\t1\t\tfine .\ngj04\t0\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2: 2 tab-separated fields, cola needs 4"):
        read_rows(bad, get_task("cola"))
    bad.write_text(glue_lines("stsb", [("a", "b", "high")])[0] + "\n" + glue_lines("stsb", [("a", "b", "x")])[1])
    with pytest.raises(ValueError, match="bad.tsv:2: stsb score 'x' is not a number"):
        read_rows(bad, get_task("stsb"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_rows(tmp_path / "missing.tsv", get_task("rte"))
    bad.write_text("index\tsentence1\tsentence2\tlabel\n\n")
    with pytest.raises(ValueError, match="has no rows"):
        read_rows(bad, get_task("wnli"))
    # QQP: rows lacking fields are skipped and counted, as GLUE's reference processors do
    lines = glue_lines("qqp", task_rows("qqp", 4))
    lines.insert(2, "17\t34\t35\ta question without its pair")
    bad.write_text("\n".join(lines) + "\n")
    table, skipped = read_rows(bad, get_task("qqp"))
    assert skipped == 1 and len(table["label"]) == 4


# ------------------------------------------------------------------------------------------------ metrics
def counts(predictions, labels, positive=1):
    tp = sum(p == positive and t == positive for p, t in zip(predictions, labels))
    fp = sum(p == positive and t != positive for p, t in zip(predictions, labels))
    fn = sum(p != positive and t == positive for p, t in zip(predictions, labels))
    tn = len(labels) - tp - fp - fn
    return tp, fp, fn, tn


def test_task_metrics_against_independent_computations():
    import pandas

    from act.training.glue import TASKS, task_metrics

    rng = np.random.default_rng(3)
    labels, predictions = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    predictions[:120] = labels[:120]  # better than chance
    tp, fp, fn, tn = counts(predictions.tolist(), labels.tolist())
    accuracy = (tp + tn) / 200
    f1 = 2 * tp / (2 * tp + fp + fn)
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert task_metrics(TASKS["cola"], predictions, labels) == pytest.approx(
        {"matthews_correlation": mcc, "score": mcc}, abs=1e-12)
    for name in ("mrpc", "qqp"):
        assert task_metrics(TASKS[name], predictions, labels) == pytest.approx(
            {"f1": f1, "accuracy": accuracy, "score": (f1 + accuracy) / 2}, abs=1e-12)
    for name in ("sst2", "qnli", "rte", "wnli"):
        assert task_metrics(TASKS[name], predictions, labels) == pytest.approx(
            {"accuracy": accuracy, "score": accuracy}, abs=1e-12)
    three, guess = rng.integers(0, 3, 90), rng.integers(0, 3, 90)
    assert task_metrics(TASKS["mnli"], guess, three)["accuracy"] == pytest.approx(np.mean(guess == three), abs=1e-12)
    # STS-B: pandas' Pearson and Spearman (average ranks for ties: scores in steps of 0.2 tie often)
    truth = rng.integers(0, 26, 150) / 5.0
    scores = np.round(truth + rng.normal(0, 1.0, 150), 1)
    frame = pandas.DataFrame({"p": scores, "t": truth})
    pearson, spearman = frame.corr("pearson").loc["p", "t"], frame.corr("spearman").loc["p", "t"]
    assert task_metrics(TASKS["stsb"], scores, truth) == pytest.approx(
        {"pearson": pearson, "spearman": spearman, "score": (pearson + spearman) / 2}, abs=1e-12)
    # a small case by hand: CoLA with TP 2, FP 1, FN 0, TN 1 -> (2 - 0) / sqrt(3 * 2 * 2 * 1)
    assert task_metrics(TASKS["cola"], [1, 1, 1, 0], [1, 1, 0, 0])["matthews_correlation"] == pytest.approx(
        2 / math.sqrt(12), abs=1e-15)


# --------------------------------------------------------------------------------------- act finetune --glue-task
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # a wide initialisation (of the new classifier head too): predictions that differ from row to row, so that
    # the metrics checked below are not those of a constant
    return write_model(tmp_path_factory.mktemp("glue-model") / "tiny", initializer_range=0.5)


COMMON = ["--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--learning_rate", "1e-3",
          "--report_to", "none", "--use_cpu", "--disable_tqdm", "true", "--save_strategy", "no"]


def predictions_of(out, rows, regression: bool, pair: bool):
    """The saved model's predictions on `rows`, fed the research pipeline's ids and segment ids (built with the
    SentencePiece model directly, test_segment_ids.ResearchIds)."""
    import torch

    from act import AlbertActForSequenceClassification
    from test_segment_ids import ResearchIds

    research = ResearchIds()
    model = AlbertActForSequenceClassification.from_pretrained(str(out)).eval()
    results = []
    for a, b, _ in rows:
        if pair:
            ids, segments = research(a, b, 32)
        else:
            ids = [research.cls, *research.pieces(a)[:30], research.sep]
            segments = [0] * len(ids)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([segments])).logits[0]
        results.append(float(logits[0]) if regression else int(logits.argmax()))
    return np.array(results)


def test_finetune_mnli_evaluates_matched_and_mismatched(tmp_path, model_dir):
    from act.commands.cli import main
    from act.training.metrics import accuracy

    train = write_glue(tmp_path / "train.tsv", "mnli", task_rows("mnli", 24))
    matched_rows, mismatched_rows = task_rows("mnli", 8, 30, seed=1), task_rows("mnli", 8, 40, seed=2)
    matched = write_glue(tmp_path / "dev_matched.tsv", "mnli", matched_rows, dev=True)
    mismatched = write_glue(tmp_path / "dev_mismatched.tsv", "mnli", mismatched_rows, dev=True)
    out = tmp_path / "mnli"
    assert main(["finetune", str(train), f"{matched},{mismatched}", str(out), "--model", str(model_dir),
                 "--glue-task", "MNLI", *COMMON]) == 0
    metrics = json.loads((out / "eval_results.json").read_text())
    for name, rows in (("dev_matched", matched_rows), ("dev_mismatched", mismatched_rows)):
        assert {f"eval_{name}_accuracy", f"eval_{name}_score", f"eval_{name}_updates_all"} <= set(metrics)
        assert f"eval_{name}_f1" not in metrics  # MNLI's official metric is accuracy
        truth = [LABELS["mnli"].index(label) for _, _, label in rows]
        assert metrics[f"eval_{name}_accuracy"] == pytest.approx(
            accuracy(predictions_of(out, rows, False, True), truth), abs=1e-12)
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "contradiction", "1": "entailment", "2": "neutral"}
    marker = json.loads((out / "act_training.json").read_text())
    assert marker["finetune"]["glue_task"] == "mnli" and marker["labels"] == LABELS["mnli"]


def test_finetune_cola_and_stsb(tmp_path, model_dir):
    from act.commands.cli import main
    from act.training.glue import TASKS, task_metrics

    cola_dev = task_rows("cola", 10, 30, seed=1)
    out = tmp_path / "cola"
    assert main(["finetune", str(write_glue(tmp_path / "cola.tsv", "cola", task_rows("cola", 24))),
                 str(write_glue(tmp_path / "dev.tsv", "cola", cola_dev)), str(out), "--model", str(model_dir),
                 "--glue-task", "cola", *COMMON]) == 0
    metrics = json.loads((out / "eval_results.json").read_text())
    assert "eval_accuracy" not in metrics
    expected = task_metrics(TASKS["cola"], predictions_of(out, cola_dev, False, False),
                            [int(label) for _, _, label in cola_dev])
    assert metrics["eval_matthews_correlation"] == pytest.approx(expected["matthews_correlation"], abs=1e-12)
    stsb_dev = task_rows("stsb", 10, 30, seed=1)
    out = tmp_path / "stsb"
    assert main(["finetune", str(write_glue(tmp_path / "stsb.tsv", "stsb", task_rows("stsb", 24))),
                 str(write_glue(tmp_path / "stsb-dev.tsv", "stsb", stsb_dev)), str(out), "--model", str(model_dir),
                 "--glue-task", "sts-b", *COMMON]) == 0
    metrics = json.loads((out / "eval_results.json").read_text())
    assert json.loads((out / "config.json").read_text())["problem_type"] == "regression"
    expected = task_metrics(TASKS["stsb"], predictions_of(out, stsb_dev, True, True),
                            [float(label) for _, _, label in stsb_dev])
    for key in ("pearson", "spearman", "score"):
        assert metrics[f"eval_{key}"] == pytest.approx(expected[key], abs=1e-5)


def test_glue_task_options_are_checked(tmp_path, model_dir):
    from act.commands.cli import main
    from test_training import _capture

    rte = write_glue(tmp_path / "rte.tsv", "rte", task_rows("rte", 4))
    for extra, message in ((["--text-column", "sentence1"], "reads the task's own columns"),
                           (["--task", "regression"], "is a classification task, not --task regression"),
                           (["--glue-task", "squad"], "not a GLUE task")):
        task = [] if "--glue-task" in extra else ["--glue-task", "rte"]
        with _capture() as captured:
            assert main(["finetune", str(rte), str(rte), str(tmp_path / "x"), "--model", str(model_dir), *task,
                         *extra, "--use_cpu"]) == 1
        assert message in captured.err(), captured.err()[-500:]
    with _capture() as captured:
        assert main(["finetune", str(rte), f"{rte},{rte}", str(tmp_path / "y"), "--model", str(model_dir),
                     "--glue-task", "rte", "--use_cpu"]) == 1
    assert "several files named rte" in captured.err()
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_paper_search_on_mrpc(tmp_path, model_dir):
    """The README's recipe on MRPC's quoted TSV: learning rates x batch sizes x seeds, chosen by the mean of the
    default metric (accuracy)."""
    from act.commands.cli import main

    train = write_glue(tmp_path / "train.tsv", "mrpc", task_rows("mrpc", 16), bom=True)
    dev = write_glue(tmp_path / "dev.tsv", "mrpc", task_rows("mrpc", 8, 30, seed=1))
    out = tmp_path / "grid"
    assert main(["finetune", str(train), str(dev), str(out), "--model", str(model_dir), "--glue-task", "mrpc",
                 "--grid", "--grid-learning-rates", "1e-2", "1e-5", "--grid-batch-sizes", "8",
                 "--grid-seeds", "1", "2", "--num_train_epochs", "1", "--report_to", "none", "--use_cpu",
                 "--disable_tqdm", "true"]) == 0
    summary = json.loads((out / "grid_results.json").read_text())
    assert summary["metric"] == "eval_accuracy" and summary["greater_is_better"]
    assert len(summary["runs"]) == 4
    assert all({"eval_f1", "eval_accuracy", "eval_score"} <= set(run["history"][0]) for run in summary["runs"])
    means = {lr: np.mean([r["score"] for r in summary["runs"] if r["learning_rate"] == lr]) for lr in (1e-2, 1e-5)}
    assert summary["chosen"]["mean"] == pytest.approx(max(means.values()))


def test_readme_recipe_commands_parse():
    """Every `act finetune` command of the README's GLUE recipe parses (the loops expanded), names a GLUE task and
    its files as distributed."""
    import re
    import shlex

    from act.commands.cli import build_parser
    from act.training.glue import get_task
    from test_readme import section

    text = section("training")
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "--glue-task $task" in b)
    lines = block.replace("\\\n", " ").splitlines()
    parser = build_parser("finetune")
    tasks, seen = [], set()
    for line in lines:
        line = line.split("#")[0].strip()
        loop = re.match(r"for task in (.*); do", line)
        if loop:
            tasks = loop.group(1).split()
            continue
        if line == "done":
            tasks = []
        if not line.startswith("act finetune"):
            continue
        for task in tasks or [None]:
            command = line if task is None else line.replace("$task", task)
            args = parser.parse_args(shlex.split(command)[1:])
            glue = get_task(args.glue_task)
            seen.add(glue.name)
            assert args.train.endswith("/train.tsv")
            assert [p.rsplit("/", 1)[1] for p in args.dev.split(",")] == list(glue.dev)
    assert seen == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}
