"""`act stats`: how many updates tokens receive over a corpus: the analyses of Simoulin & Crabbé (2021).

    act stats corpus.txt [--model DIR] [--framework keras] [--mask-rate 0.15] [--seed 0]
                         [--categories ours|research] [--cosine] [--json F] [--csv F] [--png F]
    act stats --conllu treebank.conllu [--pieces mean|first] [--bootstrap 1000] [--seed 0] [--json F] ...

**A text file** (the paper's table). Each non-empty line of the file is one sequence, `[CLS] line [SEP]`
(truncated to the model's max_position_embeddings). Before the model sees it, `--mask-rate` of the ordinary tokens
of each sequence (each token independently, seeded) are chosen as in BERT/ALBERT pre-training and split 80/10/10:
replaced by [MASK], replaced by a random token, or kept as they are. The report gives the mean number of updates
of:

    all         every token, [CLS] and [SEP] included
    unmasked    ordinary tokens that were not chosen
    masked      all chosen tokens, and the three kinds of them:
    mask          replaced by [MASK]
    random        replaced by a random token
    original      chosen but kept as they are
    cls, sep    the [CLS] and [SEP] tokens

`--categories research` reports the research code's categories instead (defined in `act.analysis.categories`,
side by side with these), so that its published table can be compared like for like. `--cosine` adds the mean
cosine similarity between the states of consecutive iterations, per category and iteration, over the tokens still
running (`act.analysis.cosine`).

**A CoNLL-U file** (`--conllu`; `act.analysis.conllu`): the sentences' words (the FORMs of the integer-ID lines)
are tokenized as pre-split words, aligned with their pieces by the tokenizer's word ids, and each word gets the
mean of its pieces' updates (`--pieces first`: its first piece's). No masking. The report has one table per UPOS
tag and one per DEPREL: count of words, mean updates, standard deviation and a 95% percentile-bootstrap interval
of the mean (`--bootstrap` resamples, seeded by `--seed`; `act.analysis.summary`).

Sequences are run in batches of similar length (`--order length`, the default; `act.analysis.batching`), which
gives the same result for every token as batching in file order (`--order file`) with less padding.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from ..checkpoints import atomic

from ..analysis.batching import ORDERS, Batch, batch_encode, run_batches  # noqa: F401  (the batching API)
from ..analysis.categories import (CATEGORIES, CATEGORY_SETS, CLS, MASK, ORIGINAL, OTHER_SPECIAL,  # noqa: F401
                                  RANDOM, RESEARCH_LABELS, SEP, UNMASKED, names, selections)
from ..tokenization import load_tokenizer
from .inspect import FRAMEWORKS, Runner, resolve_model_dir

DEFAULT_MASK_RATE = 0.15
DEFAULT_RESAMPLES = 1000


def read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise FileNotFoundError(f"text file {path} does not exist")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    from ..textfiles import read_utf8

    lines = [line.strip() for line in read_utf8(path, "text file").splitlines()]  # not UTF-8: names the line
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"text file {path} has no non-empty line")
    return lines


def mask_sequence(ids: list[int], special_ids: set[int], mask_id: int, ordinary: list[int], rate: float, rng):
    """(masked ids, kind code per token): BERT masking of the ordinary (non-special) tokens, 80/10/10; a random
    replacement is drawn from `ordinary` (the non-special ids)."""
    ids = list(ids)
    kinds = []
    for position, token in enumerate(ids):
        if token in special_ids:
            kinds.append(OTHER_SPECIAL)
            continue
        if rate > 0 and rng.random() < rate:
            roll = rng.random()
            if roll < 0.8:
                ids[position] = mask_id
                kinds.append(MASK)
            elif roll < 0.9:
                ids[position] = ordinary[int(rng.integers(len(ordinary)))]
                kinds.append(RANDOM)
            else:
                kinds.append(ORIGINAL)
        else:
            kinds.append(UNMASKED)
    return ids, kinds


def _check_batching(batch_size: int, order: str) -> None:
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if order not in ORDERS:
        raise ValueError(f"--order must be one of {', '.join(ORDERS)}, got {order!r}")


def _category_rows(updates, masks: dict) -> dict:
    rows = {}
    for name, selected in masks.items():
        values = updates[selected]
        rows[name] = {
            "count": int(values.size),
            "mean_updates": float(values.mean()) if values.size else None,
            "std_updates": float(values.std()) if values.size else None,
        }
    return rows


def compute_stats(lines: list[str], runner: Runner, tokenizer, mask_rate: float = DEFAULT_MASK_RATE, seed: int = 0,
                  batch_size: int = 32, progress: bool = True, *, categories: str = "ours", cosine: bool = False,
                  order: str = "length", max_tokens: int | None = None) -> dict:
    """Run the model over `lines` and aggregate the updates per token category (`categories`: "ours" or
    "research", see `act.analysis.categories`); with `cosine`, also the cosine between consecutive iterations'
    states per category and iteration (`act.analysis.cosine`). Returns the report as a dict."""
    import numpy as np

    from ..analysis.cosine import aggregate, consecutive_cosines

    if not 0.0 <= mask_rate <= 1.0:
        raise ValueError(f"--mask-rate must lie in [0, 1], got {mask_rate}")
    _check_batching(batch_size, order)
    category_names = names(categories)
    rng = np.random.default_rng(seed)
    special_ids = set(tokenizer.all_special_ids)
    cls_id, sep_id, mask_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id
    ordinary = [i for i in range(int(runner.config.vocab_size)) if i not in special_ids]
    encoded = tokenizer(lines, truncation=True, max_length=runner.max_length)["input_ids"]
    full = [line for line, ids in zip(lines, encoded) if len(ids) == runner.max_length]  # only these may be cut
    lengths = [len(ids) for ids in tokenizer(full, truncation=False, verbose=False)["input_ids"]] if full else []
    cut = [length - runner.max_length for length in lengths if length > runner.max_length]
    cap = int(runner.config.num_hidden_layers)

    sequences, all_kinds = [], []
    for ids in encoded:  # masked in file order, whatever the batching: the same seed gives the same masks
        masked, kinds = mask_sequence(ids, special_ids, mask_id, ordinary, mask_rate, rng)
        kinds = [CLS if token == cls_id and position == 0 else SEP if token == sep_id else kind
                 for position, (token, kind) in enumerate(zip(ids, kinds))]
        sequences.append(masked)
        all_kinds.append(kinds)

    def reduce(batch: Batch, out: dict) -> list:
        rows = batch.unpad(out["updates"])
        if not cosine:
            return rows
        return list(zip(rows, batch.unpad(consecutive_cosines(out["hidden_states"], out["updates"], cap))))

    results = run_batches(runner, sequences, batch_size, order=order, max_tokens=max_tokens,
                          pad_id=tokenizer.pad_token_id or 0, hidden_states=cosine, reduce=reduce, progress=progress)
    updates = np.concatenate([result[0] if cosine else result for result in results])
    kinds = np.concatenate([np.asarray(k) for k in all_kinds])
    inputs = np.concatenate([np.asarray(ids) for ids in sequences])
    originals = np.concatenate([np.asarray(ids) for ids in encoded])
    masks = selections(categories, kinds, inputs, originals, cls_id, sep_id, mask_id)
    report = {
        "model": str(runner.directory),
        "framework": runner.framework,
        "sequences": len(lines),
        "tokens": int(updates.size),
        "mask_rate": mask_rate,
        "seed": seed,
        "iteration_cap": cap,
        "categories": _category_rows(updates, {name: masks[name] for name in category_names}),
        "updates_histogram": {str(k): int((updates == k).sum()) for k in range(1, cap + 1)},
        "max_length": int(runner.max_length),
        "truncated": {"sequences": len(cut), "tokens": int(sum(cut))},
    }
    if categories != "ours":
        report["category_set"] = categories
    if cosine:
        cosines = np.concatenate([result[1] for result in results])
        report["cosine"] = {"iterations": list(range(1, cap + 1)),
                            "categories": aggregate(cosines, {name: masks[name] for name in category_names}, cap)}
    return report


def compute_conllu_stats(sentences, runner: Runner, tokenizer, pieces: str = "mean",
                         resamples: int = DEFAULT_RESAMPLES, seed: int = 0, batch_size: int = 32,
                         progress: bool = True, *, order: str = "length", max_tokens: int | None = None,
                         source: str | None = None) -> dict:
    """Mean updates per UPOS and per DEPREL over the words of CoNLL-U `sentences` (`act.analysis.conllu`), each
    row with a seeded bootstrap interval (`act.analysis.summary`). Returns the report as a dict."""
    import numpy as np

    from ..analysis.conllu import PIECES, align, word_values
    from ..analysis.summary import summarize

    if pieces not in PIECES:
        raise ValueError(f"--pieces must be one of {', '.join(PIECES)}, got {pieces!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"--bootstrap must be an integer >= 1, got {resamples!r}")
    _check_batching(batch_size, order)
    aligned = align(sentences, tokenizer, runner.max_length)
    results = run_batches(runner, [item.input_ids for item in aligned], batch_size, order=order,
                          max_tokens=max_tokens, pad_id=tokenizer.pad_token_id or 0,
                          reduce=lambda batch, out: batch.unpad(out["updates"]), progress=progress)
    by_upos: dict[str, list[float]] = {}
    by_deprel: dict[str, list[float]] = {}
    measured = 0
    for sentence, item, updates in zip(sentences, aligned, results):
        for word, value in zip(sentence.words, word_values(updates, item.pieces, pieces)):
            if value is None:
                continue
            measured += 1
            by_upos.setdefault(word.upos, []).append(value)
            by_deprel.setdefault(word.deprel, []).append(value)

    def table(name: str, groups: dict) -> dict:
        rows = {tag: summarize(np.asarray(values), resamples, seed, f"{name}:{tag}") for tag, values in groups.items()}
        return dict(sorted(rows.items(), key=lambda item: (-item[1]["mean_updates"], item[0])))

    truncated = [item for item in aligned if item.truncated]
    return {
        "model": str(runner.directory),
        "framework": runner.framework,
        "file": source,
        "sentences": len(sentences),
        "words": sum(len(sentence.words) for sentence in sentences),
        "measured_words": measured,
        "pieces": pieces,
        "iteration_cap": int(runner.config.num_hidden_layers),
        "max_length": runner.max_length,
        "truncated": {"sentences": len(truncated), "words": sum(len(item.cut) for item in truncated)},
        "words_without_pieces": sum(len(item.empty) for item in aligned),
        "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95},
        "upos": table("upos", by_upos),
        "deprel": table("deprel", by_deprel),
    }


# ------------------------------------------------------------------------------------------------- formatting
def format_report(report: dict) -> str:
    research = report.get("category_set") == "research"
    lines = [f"model: {report['model']} ({report['framework']}); {report['sequences']} sequences, "
             f"{report['tokens']} tokens; mask rate {report['mask_rate']} (seed {report['seed']})"]
    width = 13 if research else 10
    header = f"{'tokens':<{width}} {'count':>8} {'mean updates':>13} {'std':>6}"
    if research:
        lines.append("categories of the research code (act.analysis.categories: its metric_fn; README row)")
        header += "  research metric (README row)"
    lines += [header, "-" * (len(header) if research else 40)]
    for name, entry in report["categories"].items():
        if entry["count"]:
            row = f"{name:<{width}} {entry['count']:>8} {entry['mean_updates']:>13.3f} {entry['std_updates']:>6.2f}"
        else:
            row = f"{name:<{width}} {0:>8} {'-':>13} {'-':>6}"
        if research:
            label, metric = RESEARCH_LABELS[name]
            row += f"  {metric} ({label})"
        lines.append(row)
    histogram = report["updates_histogram"]
    lines.append("updates histogram: " + ", ".join(f"{k}: {v}" for k, v in histogram.items() if v))
    cut = report.get("truncated", {})
    if cut.get("sequences"):
        lines.append(f"note: {cut['sequences']} line(s) longer than the model's {report['max_length']} positions "
                     f"truncated: {cut['tokens']} token(s) cut (not measured)")
    if "cosine" in report:
        lines.append(format_cosine(report["cosine"]))
    return "\n".join(lines)


def format_cosine(cosine: dict) -> str:
    categories = cosine["categories"]
    width = max(9, *(len(name) + 1 for name in categories))
    iterations = [i for k, i in enumerate(cosine["iterations"])
                  if any(row["count"][k] for row in categories.values())]
    head = f"{'iteration':>9}" + "".join(f"{name:>{width}}" for name in categories)
    lines = ["cosine(state after i-1, state after i), mean over the tokens still running at iteration i:", head]
    for i in iterations:
        k = i - 1
        lines.append(f"{i:>9}" + "".join(
            f"{row['mean_cosine'][k]:>{width}.4f}" if row["count"][k] else f"{'-':>{width}}"
            for row in categories.values()))
    lines += ["tokens still running at iteration i:", head]
    for i in iterations:
        lines.append(f"{i:>9}" + "".join(f"{row['count'][i - 1]:>{width}}" for row in categories.values()))
    return "\n".join(lines)


def format_tag_report(report: dict) -> str:
    lines = [f"model: {report['model']} ({report['framework']}); {report['file']}: {report['sentences']} sentences, "
             f"{report['words']} words ({report['measured_words']} measured); a word's updates: "
             f"{'mean over its pieces' if report['pieces'] == 'mean' else 'its first piece'}; 95% bootstrap "
             f"interval: {report['bootstrap']['resamples']} resamples (seed {report['bootstrap']['seed']})"]
    cut = report["truncated"]
    if cut["sentences"]:
        lines.append(f"note: {cut['sentences']} sentence(s) longer than the model's {report['max_length']} positions "
                     f"truncated: {cut['words']} word(s) cut (not measured)")
    if report["words_without_pieces"]:
        lines.append(f"note: {report['words_without_pieces']} word(s) gave no piece (not measured)")
    for key, title in (("upos", "UPOS"), ("deprel", "DEPREL")):
        width = max([10] + [len(tag) for tag in report[key]])
        header = f"{title:<{width}} {'count':>7} {'mean updates':>13} {'std':>6}  {'95% interval':>16}"
        lines += ["", header, "-" * len(header)]
        for tag, row in report[key].items():
            low, high = row["ci95"]
            lines.append(f"{tag:<{width}} {row['count']:>7} {row['mean_updates']:>13.3f} {row['std_updates']:>6.2f}"
                         f"  [{low:>6.3f}, {high:>6.3f}]")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ writing files
def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` crash-safe (`atomic.write_files`): the old file or the new one."""
    atomic.write_files({Path(path): text})


def _number(value) -> str:
    return "" if value is None else f"{value:.6f}"


def csv_text(report: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["tokens", "count", "mean_updates", "std_updates"])
    for name, entry in report["categories"].items():
        writer.writerow([name, entry["count"], _number(entry["mean_updates"]), _number(entry["std_updates"])])
    return buffer.getvalue()


def write_csv(path: Path, report: dict) -> None:
    write_text_atomic(path, csv_text(report))


def tag_csv_text(report: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["table", "tag", "count", "mean_updates", "std_updates", "ci95_low", "ci95_high"])
    for key in ("upos", "deprel"):
        for tag, row in report[key].items():
            writer.writerow([key, tag, row["count"], _number(row["mean_updates"]), _number(row["std_updates"]),
                             _number(row["ci95"][0]), _number(row["ci95"][1])])
    return buffer.getvalue()


def write_tag_csv(path: Path, report: dict) -> None:
    write_text_atomic(path, tag_csv_text(report))


def write_outputs(report: dict, json_path=None, csv_path=None, png_path=None, title: str = "") -> list[str]:
    """The report's --json / --csv / --png files, written as one set (`atomic.writing`): all of them or none (a
    full disk leaves every previous file as it was). Returns what was written, for the user."""
    from ..analysis.plots import write_tag_figure, write_token_figure

    tags = "upos" in report
    outputs = [(kind, path) for kind, path in (("JSON", json_path), ("CSV", csv_path), ("figure", png_path))
               if path is not None]
    if not outputs:
        return []
    with atomic.writing([path for _, path in outputs]) as temporaries:
        for (kind, _), temporary in zip(outputs, temporaries):
            if kind == "figure":
                (write_tag_figure if tags else write_token_figure)(temporary, report, title)
                continue
            text = json.dumps(report, indent=2) + "\n" if kind == "JSON" else \
                (tag_csv_text if tags else csv_text)(report)
            try:
                temporary.write_text(text, encoding="utf-8", newline="")
            except OSError as error:
                error.filename = error.filename or str(temporary)  # write() names no file
                raise
    return [f"{kind} written to {path}" for kind, path in outputs]


# ---------------------------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("mean updates per token type over a text file (the paper's table), per UPOS/DEPREL tag "
                          "over a CoNLL-U file (--conllu), and the cosine between iterations (--cosine)")
    parser.add_argument("file", nargs="?", default=None, help="text file, one sequence per non-empty line")
    parser.add_argument("--conllu", metavar="FILE", default=None,
                        help="a CoNLL-U file instead: mean updates per word by UPOS and by DEPREL tag")
    parser.add_argument("--model", metavar="DIR", default=None,
                        help="model directory (config.json, weights, spiece.model) or hub id "
                             "(e.g. asi/albert-act-tiny); default: the embedded demo model")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="pytorch", help="run the model in PyTorch or Keras")
    parser.add_argument("--mask-rate", type=float, default=None,
                        help="text file: share of the ordinary tokens chosen for masking, split 80/10/10 "
                             f"(default {DEFAULT_MASK_RATE}; 0: none)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the masking (text file) or of the bootstrap (--conllu) (default 0)")
    parser.add_argument("--categories", choices=CATEGORY_SETS, default=None,
                        help="text file: our token categories (default) or the research code's (its metric_fn)")
    parser.add_argument("--cosine", action="store_true",
                        help="text file: also the mean cosine between consecutive iterations' states, per category "
                             "and iteration, over the tokens still running")
    parser.add_argument("--pieces", choices=("mean", "first"), default=None,
                        help="--conllu: a word's updates are the mean over its pieces (default) or its first piece's")
    parser.add_argument("--bootstrap", type=int, default=None, metavar="N",
                        help=f"--conllu: bootstrap resamples of the 95%% interval (default {DEFAULT_RESAMPLES})")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per model call (default 32)")
    parser.add_argument("--order", choices=ORDERS, default="length",
                        help="batch sequences of similar length together (default; less padding) or in file "
                             "order; the results are the same")
    parser.add_argument("--json", metavar="PATH", default=None, help="write the report as JSON")
    parser.add_argument("--csv", metavar="PATH", default=None, help="write the table(s) as CSV")
    parser.add_argument("--png", metavar="PATH", default=None, help="write the figure as PNG")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    from ..hub import add_hub_arguments

    add_hub_arguments(parser)


def _check_options(args: argparse.Namespace) -> None:
    if (args.file is None) == (args.conllu is None):
        raise ValueError("give either a text file or --conllu FILE (exactly one of them)")
    if args.conllu is not None:
        given = [flag for flag, value in (("--mask-rate", args.mask_rate), ("--categories", args.categories))
                 if value is not None] + (["--cosine"] if args.cosine else [])
        if given:
            raise ValueError(f"{', '.join(given)} apply to a text file, not to --conllu (its words are not masked)")
    else:
        given = [flag for flag, value in (("--pieces", args.pieces), ("--bootstrap", args.bootstrap))
                 if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply to --conllu only")
    for option in ("json", "csv", "png"):
        target = getattr(args, option)
        if target is not None and not Path(target).resolve().parent.is_dir():
            raise FileNotFoundError(f"cannot write --{option} {target}: its directory does not exist")


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    if args.conllu is not None:
        from ..analysis.conllu import read_conllu

        sentences = read_conllu(Path(args.conllu))
    else:
        lines = read_lines(Path(args.file))
    directory = resolve_model_dir(args.model, args.revision, args.cache_dir)
    tokenizer = load_tokenizer(directory)
    runner = Runner(directory, args.framework)
    if args.conllu is not None:
        report = compute_conllu_stats(sentences, runner, tokenizer, args.pieces or "mean",
                                      DEFAULT_RESAMPLES if args.bootstrap is None else args.bootstrap, args.seed,
                                      args.batch_size, progress=not args.no_progress, order=args.order,
                                      source=str(args.conllu))
        print(format_tag_report(report))
    else:
        report = compute_stats(lines, runner, tokenizer,
                               DEFAULT_MASK_RATE if args.mask_rate is None else args.mask_rate, args.seed,
                               args.batch_size, progress=not args.no_progress, categories=args.categories or "ours",
                               cosine=args.cosine, order=args.order)
        print(format_report(report))
    title = f"ALBERT-ACT updates ({directory.name}, {args.framework})"
    for line in write_outputs(report, args.json, args.csv, args.png, title):
        print(line)
    return 0
