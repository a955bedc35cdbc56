#!/usr/bin/env python
"""Pre-train the embedded demo model shipped in `src/act/demo_model/` (reproducible, CPU, ~10 minutes).

What it does, from nothing:

1. **Corpus.** Fetches the King James Version of the Bible from Debian's package archive (packages
   `bible-kjv-text`, the text, and `bible-kjv`, the program that decodes it) with `apt-get download`, unpacks
   them with `dpkg-deb -x` (no installation needed) and dumps every verse, Genesis 1:1 to Revelation 22:21,
   one verse a line. The KJV text is in the public domain (the Debian packaging is GPL-2+): 31,102 verses,
   about 820,000 words, lower-cased. The last 50 chapters (Hebrews 7 to Revelation 22, 1,037 verses) are held
   out of pre-training and shipped as `heldout.txt`, a sample text for `act stats`.
2. **Vocabulary.** Trains a SentencePiece unigram model (4,000 pieces, lower-cased text) with ALBERT's special
   tokens at ALBERT's ids: `<pad>`=0, `<unk>`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4.
3. **Data.** ALBERT's pre-training examples: two consecutive text segments of the same chapter,
   `[CLS] A [SEP] B [SEP]`, swapped half of the time (sentence-order prediction, SOP), with 15% of the tokens
   chosen for masked-LM (of those 80% -> [MASK], 10% -> a random token, 10% kept).
4. **Model.** A tiny ALBERT-ACT (`AlbertActForPreTraining`: hidden 128, 4 heads, FFN 512, iteration cap 12)
   trained with MLM + SOP + `ponder_penalty * ponder_cost` (tau = 2e-3 from the first step; the halting unit
   starts with bias -1 and weights of std 0.1, so that halting depends on the token from the start); saved with `save_pretrained` (config.json +
   model.safetensors, canonical names) plus the tokenizer, so `AlbertActModel.from_pretrained(dir)` loads the
   encoder in PyTorch and `TFAlbertActModel.from_pretrained(dir)` in Keras.

Run (Debian/Ubuntu with apt; about 10 minutes on 2 CPU cores):

    .venv/bin/python examples/pretrain_demo.py            # writes src/act/demo_model/
    .venv/bin/python examples/pretrain_demo.py --steps 50 --out /tmp/quick   # a quick smoke run

Everything is seeded (Python, torch); the same torch version on the same kind of CPU should give the same weights
(not checked bit for bit: the shipped model was trained once).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEBIAN_PACKAGES = ("bible-kjv-text", "bible-kjv")
SPECIAL = {"<pad>": 0, "<unk>": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
HELD_OUT_CHAPTERS = 50
VERSE = re.compile(r"^(?P<book>[1-3]?[A-Za-z]+)(?P<chapter>\d+):(?P<verse>\d+)\s+(?P<text>.*)$")


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


# ------------------------------------------------------------------------------------------- vocabulary
def train_vocabulary(chapters: list[list[str]], work: Path, vocab_size: int) -> Path:
    import sentencepiece as spm

    prefix = work / f"spiece{vocab_size}"
    model = prefix.with_suffix(".model")
    if not model.exists():
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter([verse for chapter in chapters for verse in chapter]),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            normalization_rule_name="nmt_nfkc",
            pad_id=0, pad_piece="<pad>", unk_id=1, unk_piece="<unk>", bos_id=-1, eos_id=-1,
            control_symbols=["[CLS]", "[SEP]", "[MASK]"],
            num_threads=2,
            minloglevel=2,
        )
    processor = spm.SentencePieceProcessor(model_file=str(model))
    for piece, index in SPECIAL.items():
        if processor.piece_to_id(piece) != index:
            raise RuntimeError(f"{piece} has id {processor.piece_to_id(piece)} in {model}, expected {index}")
    return model


def make_tokenizer(spiece: Path, directory: Path):
    """Save an AlbertTokenizer (spiece.model + tokenizer files) to `directory` and load it back from there."""
    from transformers import AlbertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spiece, directory / "spiece.model")
    tokenizer = AlbertTokenizer.from_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    tokenizer = AlbertTokenizer.from_pretrained(str(directory))
    for piece, index in SPECIAL.items():
        if tokenizer.convert_tokens_to_ids(piece) != index:
            raise RuntimeError(f"tokenizer maps {piece} to {tokenizer.convert_tokens_to_ids(piece)}, expected {index}")
    return tokenizer


# ------------------------------------------------------------------------------------------------- data
def encode_chapters(tokenizer, chapters: list[list[str]]) -> list[list[list[int]]]:
    flat = [verse for chapter in chapters for verse in chapter]
    ids = tokenizer(flat, add_special_tokens=False)["input_ids"]
    out, position = [], 0
    for chapter in chapters:
        out.append(ids[position:position + len(chapter)])
        position += len(chapter)
    return out


def sop_example(chapter: list[list[int]], max_len: int, rng: random.Random):
    """ALBERT's pairs: consecutive segments A, B of one chapter; swapped with probability 1/2 (label 1)."""
    budget = max_len - 3
    target = budget if rng.random() > 0.1 else rng.randint(8, budget)  # ALBERT's short-sequence probability
    start = rng.randrange(len(chapter))
    tokens, boundaries = [], []
    for verse in chapter[start:]:
        tokens.extend(verse)
        boundaries.append(len(tokens))
        if len(tokens) >= target:
            break
    if len(boundaries) >= 2:
        split = rng.choice(boundaries[:-1])
    else:  # one long verse: split it
        split = max(1, len(tokens) // 2)
    a, b = tokens[:split], tokens[split:]
    while len(a) + len(b) > budget:  # truncate the longer side, at the far end from the boundary
        if len(a) > len(b):
            a = a[1:]
        else:
            b = b[:-1]
    if not b:
        a, b = a[: len(a) // 2], a[len(a) // 2:]
    swapped = rng.random() < 0.5
    if swapped:
        a, b = b, a
    input_ids = [SPECIAL["[CLS]"], *a, SPECIAL["[SEP]"], *b, SPECIAL["[SEP]"]]
    token_type_ids = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    return input_ids, token_type_ids, int(swapped)


def mask_tokens(input_ids: list[int], vocab_size: int, rate: float, rng: random.Random):
    """BERT/ALBERT masking: `rate` of the non-special tokens are predicted; 80% [MASK], 10% random, 10% kept."""
    ids = list(input_ids)
    labels = [-100] * len(ids)
    candidates = [i for i, t in enumerate(ids) if t not in SPECIAL.values()]
    count = max(1, round(len(candidates) * rate)) if candidates else 0
    for i in rng.sample(candidates, count):
        labels[i] = ids[i]
        roll = rng.random()
        if roll < 0.8:
            ids[i] = SPECIAL["[MASK]"]
        elif roll < 0.9:
            ids[i] = rng.randrange(len(SPECIAL), vocab_size)
    return ids, labels


def make_batch(chapters, batch_size, max_len, vocab_size, rng):
    import torch

    rows = []
    for _ in range(batch_size):
        chapter = chapters[rng.randrange(len(chapters))]
        input_ids, token_type_ids, order = sop_example(chapter, max_len, rng)
        masked, labels = mask_tokens(input_ids, vocab_size, 0.15, rng)
        rows.append((masked, token_type_ids, labels, order))
    length = max(len(r[0]) for r in rows)

    def pad(seq, value):
        return seq + [value] * (length - len(seq))

    return {
        "input_ids": torch.tensor([pad(r[0], 0) for r in rows]),
        "attention_mask": torch.tensor([pad([1] * len(r[0]), 0) for r in rows]),
        "token_type_ids": torch.tensor([pad(r[1], 0) for r in rows]),
        "labels": torch.tensor([pad(r[2], -100) for r in rows]),
        "sentence_order_label": torch.tensor([r[3] for r in rows]),
    }


# ------------------------------------------------------------------------------------------------ model
def make_config(args, vocab_size: int):
    from act import AlbertActConfig

    return AlbertActConfig(
        vocab_size=vocab_size, embedding_size=args.embedding_size, hidden_size=args.hidden_size,
        num_attention_heads=args.heads, intermediate_size=4 * args.hidden_size, num_hidden_layers=args.cap,
        max_position_embeddings=args.max_len, hidden_act="gelu_new", act_epsilon=0.01,
        ponder_penalty=args.ponder_penalty, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        classifier_dropout_prob=0.1, pad_token_id=SPECIAL["<pad>"], bos_token_id=SPECIAL["[CLS]"],
        eos_token_id=SPECIAL["[SEP]"],
    )


def updates_histogram(model, chapters, tokenizer, max_len: int, cap: int, rng: random.Random, n: int = 256):
    """Histogram (count per number of updates) over the real tokens of `n` unmasked SOP examples."""
    import torch

    batch = make_batch(chapters, n, max_len, tokenizer.vocab_size, rng)
    with torch.no_grad():
        original = torch.where(batch["labels"] >= 0, batch["labels"], batch["input_ids"])  # undo the masking
        out = model.albert(input_ids=original, attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
    updates = out.updates[batch["attention_mask"].bool()].long()
    return {k: int((updates == k).sum()) for k in range(1, cap + 1)}


def penalty_scale(step: int, args) -> float:
    """Optional schedule of the ponder penalty (off by default): 0 for the first `--ponder-start` of the steps, then
    a linear ramp to the full value at `--ponder-full`. Tried for the demo and not used: without the penalty
    every token runs to the iteration cap, where R = 0 and the ponder cost has no gradient left to bring it back."""
    start, full = args.ponder_start * args.steps, args.ponder_full * args.steps
    if step <= start:
        return 0.0
    return min(1.0, (step - start) / max(1.0, full - start))


def pretraining_step(model, batch, scale: float = 1.0):
    """`AlbertActForPreTraining`'s loss (MLM + SOP + ponder_penalty * ponder_cost), with the MLM decoder run on
    the masked positions only (the same loss as `model(**batch).loss`, about a third less compute on a CPU)."""
    import types

    import torch.nn.functional as F

    outputs = model.albert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           token_type_ids=batch["token_type_ids"])
    selected = batch["labels"] >= 0
    logits = model.predictions(outputs.last_hidden_state[selected])
    mlm_loss = F.cross_entropy(logits, batch["labels"][selected])
    sop_logits = model.sop_classifier(outputs.pooler_output)
    sop_loss = F.cross_entropy(sop_logits, batch["sentence_order_label"])
    loss = mlm_loss + sop_loss + scale * model.config.ponder_penalty * outputs.ponder_cost
    return types.SimpleNamespace(loss=loss, mlm_loss=float(mlm_loss.detach()), sop_logits=sop_logits,
                                 updates=outputs.updates.detach(), ponder_cost=outputs.ponder_cost)


def train(args) -> None:
    import torch

    from act.pt.modeling import AlbertActForPreTraining

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)

    chapters = fetch_corpus(work)
    train_chapters, held_out = chapters[:-HELD_OUT_CHAPTERS], chapters[-HELD_OUT_CHAPTERS:]
    spiece = train_vocabulary(train_chapters, work, args.vocab_size)
    tokenizer = make_tokenizer(spiece, work / "tokenizer")
    encoded = encode_chapters(tokenizer, train_chapters)
    (work / "heldout.txt").write_text("\n".join(v for c in held_out for v in c) + "\n", encoding="utf-8")

    config = make_config(args, tokenizer.vocab_size)
    model = AlbertActForPreTraining(config)
    with torch.no_grad():  # start with small halting probabilities: every token may use many updates at first
        halting = model.albert.encoder.albert_layer.act.dense
        halting.bias.fill_(args.halting_bias)
        halting.weight.normal_(0.0, args.halting_init_std)  # token-dependent halting from the first step
    parameters = sum(p.numel() for p in model.parameters())
    print(f"corpus: {sum(map(len, chapters))} verses; vocabulary {tokenizer.vocab_size}; {parameters:,} parameters")

    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, args.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (args.steps - s) / max(1, args.steps - warmup))))

    model.train()
    start = time.time()
    log = collections.defaultdict(float)
    for step in range(1, args.steps + 1):
        batch = make_batch(encoded, args.batch_size, args.max_len, tokenizer.vocab_size, rng)
        output = pretraining_step(model, batch, penalty_scale(step, args))
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        mask = batch["attention_mask"].bool()
        log["loss"] += float(output.loss.detach())
        log["mlm"] += float(output.mlm_loss)
        log["sop"] += float((output.sop_logits.argmax(-1) == batch["sentence_order_label"]).float().mean())
        log["updates"] += float(output.updates[mask].mean())
        log["updates_std"] += float(output.updates[mask].float().std())
        if step % args.log_every == 0 or step == args.steps:
            n = args.log_every if step % args.log_every == 0 else step % args.log_every
            print(f"step {step:5d}  penalty x{penalty_scale(step, args):.2f}  loss {log['loss'] / n:.3f}  mlm {log['mlm'] / n:.3f}  sop acc {log['sop'] / n:.2f}  "
                  f"updates {log['updates'] / n:.2f} ± {log['updates_std'] / n:.2f}  "
                  f"{time.time() - start:.0f}s", flush=True)
            log.clear()
    elapsed = time.time() - start

    model.eval()
    histogram = updates_histogram(model, encode_chapters(tokenizer, held_out), tokenizer, args.max_len, args.cap,
                                  random.Random(args.seed + 1))
    print("updates histogram on held-out text (updates: tokens):", histogram)

    if out.exists():
        for stale in out.iterdir():
            if stale.is_file() and stale.name != "__init__.py":
                stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    shutil.copyfile(spiece, out / "spiece.model")
    shutil.copyfile(work / "heldout.txt", out / "heldout.txt")
    info = {
        "corpus": "King James Version of the Bible (public domain), Debian packages bible-kjv-text + bible-kjv",
        "train_chapters": len(train_chapters), "held_out_chapters": HELD_OUT_CHAPTERS,
        "steps": args.steps, "batch_size": args.batch_size, "max_len": args.max_len, "lr": args.lr,
        "seed": args.seed, "halting_bias": args.halting_bias, "halting_init_std": args.halting_init_std, "ponder_penalty": args.ponder_penalty,
        "ponder_start": args.ponder_start, "ponder_full": args.ponder_full,
        "train_seconds": round(elapsed), "threads": args.threads, "torch": torch.__version__,
        "updates_histogram_heldout": histogram,
    }
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"saved to {out} after {elapsed:.0f}s of training")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "src" / "act" / "demo_model"))
    parser.add_argument("--work", default=str(REPO / "build" / "demo_pretrain"), help="corpus and vocabulary cache")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--embedding-size", type=int, default=128)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--cap", type=int, default=12, help="iteration cap (num_hidden_layers)")
    parser.add_argument("--ponder-penalty", type=float, default=2e-3)
    parser.add_argument("--ponder-start", type=float, default=0.0, help="share of the steps without ponder penalty")
    parser.add_argument("--ponder-full", type=float, default=0.0, help="share of the steps where the penalty is full")
    parser.add_argument("--halting-bias", type=float, default=-1.0, help="initial bias of the halting unit")
    parser.add_argument("--halting-init-std", type=float, default=0.1,
                        help="initial std of the halting unit's weights (the other weights use initializer_range)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=50)
    train(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
