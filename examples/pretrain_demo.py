#!/usr/bin/env python
"""Pre-train the embedded demo model shipped in `src/act/demo_model/`: fetch the corpus, then ONE `act pretrain`.

1. **Corpus.** The King James Version of the Bible from Debian's package archive (packages `bible-kjv-text`, the text,
   and `bible-kjv`, the program that decodes it): `apt-get download`, unpacked with `dpkg-deb -x` (nothing installed),
   every verse dumped, Genesis 1:1 to Revelation 22:21, lower-cased. The KJV text is in the public domain (the Debian
   packaging is GPL-2+): 31,102 verses, about 820,000 words. Written in ALBERT's pre-training format: a verse a line,
   a chapter a document (blank lines between chapters). The last 50 chapters (Hebrews 7 to Revelation 22, 1,037
   verses) are held out: `heldout.txt` (a verse a line, the sample text of `act stats`) and, as documents, the
   evaluation corpus.
2. **Vocabulary.** The shipped SentencePiece unigram vocabulary (`src/act/demo_model/spiece.model`, 4,000 pieces,
   ALBERT's special tokens at ALBERT's ids: `<pad>`=0, `<unk>`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4), or with
   `--train-vocabulary` a new one trained on the training chapters the same way.
3. **Pre-training.** `act pretrain` (transformers' Trainer): ALBERT's sentence-order pairs from the chapters, n-gram
   masking, MLM + SOP + `ponder_penalty * ponder_cost`; the settings below are the shipped model's, and the exact
   command is recorded in `training.json`.

Run (Debian/Ubuntu with apt; torch, transformers, datasets, accelerate, sentencepiece):

    .venv/bin/python examples/pretrain_demo.py                  # ~10-20 min on a shared 2-core CPU; writes src/act/demo_model/
    .venv/bin/python examples/pretrain_demo.py --max-steps 50 --out /tmp/quick   # a quick smoke run

Everything is seeded: rerunning the recipe with its defaults on the project's machine (torch 2.13, 1 thread) gave
the shipped weights bit for bit; other CPUs or thread counts may round differently.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "src" / "act" / "demo_model"
DEBIAN_PACKAGES = ("bible-kjv-text", "bible-kjv")
SPECIAL = {"<pad>": 0, "<unk>": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
HELD_OUT_CHAPTERS = 50
VERSE = re.compile(r"^(?P<book>[1-3]?[A-Za-z]+)(?P<chapter>\d+):(?P<verse>\d+)\s+(?P<text>.*)$")
SHIPPED = ("config.json", "model.safetensors", "spiece.model", "tokenizer.json", "tokenizer_config.json")


# ----------------------------------------------------------------------------------------------- corpus
def fetch_corpus(work: Path) -> list[list[str]]:
    """Return the KJV as chapters (lists of verse strings), fetching it from Debian's archive if needed."""
    text_file = work / "kjv.txt"
    if not text_file.exists():
        debs = work / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        if not list(debs.glob("bible-kjv_*.deb")) or not list(debs.glob("bible-kjv-text_*.deb")):
            command = ["apt-get", "download", *DEBIAN_PACKAGES]
            result = subprocess.run(command, cwd=debs, capture_output=True, text=True)
            if result.returncode:  # the package lists may be missing on a fresh machine
                subprocess.run(["apt-get", "update", "-qq"], check=True)
                subprocess.run(command, cwd=debs, check=True)
        root = work / "root"
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        program = root / "usr" / "bin" / "bible"
        data = root / "usr" / "lib" / "bible.data"
        # `bible` prints the whole text, then may exit non-zero (255, or a signal) when its stdin is not a
        # terminal, e.g. under nohup: its exit status says nothing, so the text itself is checked.
        # (`-d` takes the data file relative to the working directory: an absolute path fails to open.)
        result = subprocess.run([str(program.resolve()), "-f", "-d", data.name, "Gen1:1-Rev22:21"], cwd=data.parent,
                                capture_output=True, text=True, env={**os.environ, "COLUMNS": "100000"},
                                stdin=subprocess.DEVNULL)
        if not result.stdout.rstrip().endswith("Amen."):  # Rev22:21 ends with "Amen."
            raise RuntimeError(f"{program} did not print the KJV (exit status {result.returncode}): "
                               f"{result.stderr.strip()[:500]}")
        text_file.write_text(result.stdout, encoding="utf-8")
    chapters: dict[tuple[str, str], list[str]] = {}
    last = None
    for line in text_file.read_text(encoding="utf-8").splitlines():
        match = VERSE.match(line.strip())
        if match:
            last = (match["book"], match["chapter"])
            chapters.setdefault(last, []).append(match["text"].strip())
        elif line.strip() and last is not None:  # a wrapped verse
            chapters[last][-1] += " " + line.strip()
    result = [[verse.lower() for verse in verses] for verses in chapters.values()]
    if len(result) < 1000:
        raise RuntimeError(f"expected the 1,189 chapters of the KJV in {text_file}, parsed {len(result)}")
    return result


def write_documents(chapters: list[list[str]], path: Path) -> Path:
    """ALBERT's pre-training format: a verse a line, a blank line between chapters."""
    path.write_text("\n\n".join("\n".join(chapter) for chapter in chapters) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- vocabulary
def train_vocabulary(chapters: list[list[str]], work: Path, vocab_size: int) -> Path:
    """A SentencePiece unigram vocabulary with ALBERT's special tokens, saved as a tokenizer directory."""
    import sentencepiece as spm

    from act.tokenization import load_tokenizer

    prefix = work / f"spiece{vocab_size}"
    if not prefix.with_suffix(".model").exists():
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter([verse for chapter in chapters for verse in chapter]),
            model_prefix=str(prefix), vocab_size=vocab_size, model_type="unigram", character_coverage=1.0,
            normalization_rule_name="nmt_nfkc", pad_id=0, pad_piece="<pad>", unk_id=1, unk_piece="<unk>",
            bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"], num_threads=2, minloglevel=2)
    directory = work / "tokenizer"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(prefix.with_suffix(".model"), directory / "spiece.model")
    load_tokenizer(directory).save_pretrained(str(directory))  # with model_input_names: segment ids for pairs
    return directory


def check_tokenizer(directory: Path) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    for piece, index in SPECIAL.items():
        if tokenizer.convert_tokens_to_ids(piece) != index:
            raise RuntimeError(f"{directory}: {piece} has id {tokenizer.convert_tokens_to_ids(piece)}, "
                               f"expected {index}")
    return len(tokenizer)


# ----------------------------------------------------------------------------------------- nothing lost
def check_out(out: Path) -> None:
    """--out must be new, empty, or a model directory this recipe wrote (its training.json has a "recipe" key):
    the shipped files are written over, and another directory's config.json or model.safetensors are not ours."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        try:
            ours = "recipe" in json.loads((out / "training.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            ours = False
        if not ours:
            raise SystemExit(f"--out {out} is not empty and was not written by this recipe: choose a new directory")


def clear_run(run_dir: Path) -> None:
    """Remove the recipe's previous `act pretrain` output under --work, and only that (act marks it)."""
    if not run_dir.exists():
        return
    if not (run_dir / "act_training.json").is_file():
        raise SystemExit(f"{run_dir} exists and was not written by act pretrain: move it or choose another --work")
    shutil.rmtree(run_dir)


def install(source: Path, out: Path) -> None:
    """Copy a file into --out through a temporary sibling: a killed copy leaves the old file or the new one."""
    temporary = out / f".{source.name}.tmp"
    shutil.copyfile(source, temporary)
    os.chmod(temporary, 0o644)
    os.replace(temporary, out / source.name)


# ------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEMO), help="where the model goes (default: the embedded demo model)")
    parser.add_argument("--work", default=str(REPO / "build" / "demo_pretrain"),
                        help="corpus, vocabulary, data cache and the full act pretrain output")
    parser.add_argument("--train-vocabulary", action="store_true", help="train a new vocabulary instead of the "
                                                                         "shipped one")
    parser.add_argument("--vocab-size", type=int, default=4000)
    # the shipped model's settings (see README, "The demo model")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--embedding-size", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--cap", type=int, default=6, help="iteration cap (num_hidden_layers)")
    parser.add_argument("--max-len", type=int, default=64, help="max_position_embeddings and --max-seq-length")
    parser.add_argument("--act-epsilon", type=float, default=0.01)
    parser.add_argument("--ponder-penalty", type=float, default=5e-4)
    parser.add_argument("--ponder-warmup-steps", type=int, default=0,
                        help="ramp tau linearly from 0 over the first N steps (act pretrain --ponder-warmup-steps)")
    parser.add_argument("--halting-bias", type=float, default=-1.0)
    parser.add_argument("--halting-init-std", type=float, default=0.1)
    parser.add_argument("--halting-lr-scale", type=float, default=0.0)
    parser.add_argument("--max-steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--dupe-factor", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the training process")
    parser.add_argument("--save-steps", type=int, default=0, help="also keep a checkpoint every N steps (0: none)")
    args = parser.parse_args(argv)

    work, out = Path(args.work), Path(args.out)
    check_out(out)
    work.mkdir(parents=True, exist_ok=True)
    chapters = fetch_corpus(work)
    train_chapters, held_out = chapters[:-HELD_OUT_CHAPTERS], chapters[-HELD_OUT_CHAPTERS:]
    corpus = write_documents(train_chapters, work / "kjv_train.txt")
    eval_corpus = write_documents(held_out, work / "kjv_heldout_documents.txt")
    heldout = work / "heldout.txt"
    heldout.write_text("\n".join(verse for chapter in held_out for verse in chapter) + "\n", encoding="utf-8")
    if args.train_vocabulary or not (DEMO / "spiece.model").is_file():
        tokenizer = train_vocabulary(train_chapters, work, args.vocab_size)
    else:
        tokenizer = work / "shipped-tokenizer"
        tokenizer.mkdir(exist_ok=True)
        for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(DEMO / name, tokenizer / name)
    vocab_size = check_tokenizer(tokenizer)

    config = {
        "model_type": "albert_act", "vocab_size": vocab_size, "embedding_size": args.embedding_size,
        "hidden_size": args.hidden_size, "num_attention_heads": args.heads, "intermediate_size": 4 * args.hidden_size,
        "num_hidden_layers": args.cap, "max_position_embeddings": args.max_len, "hidden_act": "gelu_new",
        "act_epsilon": args.act_epsilon, "ponder_penalty": args.ponder_penalty, "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "classifier_dropout_prob": 0.1, "pad_token_id": SPECIAL["<pad>"],
        "bos_token_id": SPECIAL["[CLS]"], "eos_token_id": SPECIAL["[SEP]"],
    }
    config_file = work / "config.json"
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    run_dir = work / "run"
    clear_run(run_dir)  # the recipe's own previous run (under --work)
    command = [
        "act", "pretrain", str(corpus), str(run_dir), "--config", str(config_file), "--tokenizer", str(tokenizer),
        "--max-seq-length", str(args.max_len), "--dupe-factor", str(args.dupe_factor),
        "--halting-bias", str(args.halting_bias), "--halting-init-std", str(args.halting_init_std),
        "--halting-lr-scale", str(args.halting_lr_scale),
        *(["--ponder-warmup-steps", str(args.ponder_warmup_steps)] if args.ponder_warmup_steps else []),
        "--cache-dir", str(work / "cache"),
        "--eval-corpus", str(eval_corpus), "--max_steps", str(args.max_steps),
        "--per_device_train_batch_size", str(args.batch_size), "--learning_rate", str(args.learning_rate),
        "--adam_beta2", "0.98", "--adam_epsilon", "1e-6", "--weight_decay", "0.01", "--warmup_steps",
        str(max(1, args.max_steps // 20)), "--max_grad_norm", "1.0", "--seed", str(args.seed),
        "--logging_steps", "100", "--eval_strategy", "steps", "--eval_steps", str(max(1, args.max_steps // 6)),
        *(["--save_strategy", "steps", "--save_steps", str(args.save_steps)] if args.save_steps
          else ["--save_strategy", "no"]), "--report_to", "none", "--use_cpu", "--disable_tqdm", "true",
        "--dataloader_num_workers", "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    print("$ " + " ".join(command), flush=True)
    start = time.time()
    subprocess.run([sys.executable, "-m", "act", *command[1:]], check=True, env=env)
    elapsed = time.time() - start

    out.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED:
        install(run_dir / name, out)
    install(heldout, out)
    state = json.loads((run_dir / "trainer_state.json").read_text(encoding="utf-8"))
    evaluation = json.loads((run_dir / "eval_results.json").read_text(encoding="utf-8"))
    import torch

    info = {
        "corpus": "King James Version of the Bible (public domain), Debian packages bible-kjv-text + bible-kjv",
        "train_chapters": len(train_chapters), "held_out_chapters": HELD_OUT_CHAPTERS,
        "command": " ".join(command).replace(str(work), "$WORK"), "work": "$WORK = the recipe's --work directory",
        "recipe": ("examples/pretrain_demo.py " + " ".join(argv or sys.argv[1:])).replace(str(work), "$WORK")
        .replace(str(out), "$OUT"),
        "settings": vars(args) | {"work": None, "out": None}, "train_seconds": round(elapsed),
        "torch": torch.__version__,
        "final_training_log": ([e for e in state["log_history"] if "loss" in e] or [None])[-1],
        "heldout_evaluation": evaluation,
    }
    (work / "training.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    install(work / "training.json", out)
    print(f"saved to {out} after {elapsed:.0f}s of training; now: act stats {out / 'heldout.txt'} --model {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
