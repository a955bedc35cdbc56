"""Tiny fixtures shared by the training tests: a small ALBERT-format corpus, a tiny model directory with the demo
model's tokenizer, and small labelled tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cases import tiny_config_kwargs

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "src" / "act" / "demo_model"
TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json")

# tests/cases.py's tiny config, with the demo tokenizer's 4,000 pieces, an iteration cap of 4 and 32 positions
TINY_CONFIG = dict(tiny_config_kwargs(vocab_size=4000, num_hidden_layers=4, max_position_embeddings=32),
                   model_type="albert_act", ponder_penalty=1e-3, hidden_dropout_prob=0.0,
                   attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0, pad_token_id=0, bos_token_id=2,
                   eos_token_id=3)


def heldout_lines(count: int) -> list[str]:
    lines = [line.strip() for line in (DEMO / "heldout.txt").read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line][:count]


def write_corpus(path: Path, lines: int = 240, per_document: int = 8) -> Path:
    """ALBERT's format: a sentence a line, a blank line between documents."""
    verses = heldout_lines(lines)
    documents = ["\n".join(verses[i:i + per_document]) for i in range(0, len(verses), per_document)]
    path.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    return path


def write_tokenizer(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(DEMO / name, directory / name)
    return directory


def write_config(path: Path, **overrides) -> Path:
    path.write_text(json.dumps({**TINY_CONFIG, **overrides}), encoding="utf-8")
    return path


def write_model(directory: Path, seed: int = 0, **overrides) -> Path:
    """A tiny AlbertActForPreTraining (halting unit set so that tokens halt at different steps) + tokenizer."""
    import torch

    from act import AlbertActConfig, AlbertActForPreTraining

    torch.manual_seed(seed)
    config = AlbertActConfig(**{k: v for k, v in {**TINY_CONFIG, **overrides}.items() if k != "model_type"})
    model = AlbertActForPreTraining(config)
    with torch.no_grad():
        halting = model.albert.encoder.albert_layer.act.dense
        halting.bias.fill_(-1.0)
        halting.weight.normal_(0.0, 0.3)
    model.save_pretrained(str(directory))
    write_tokenizer(directory)
    return directory


def write_table(path: Path, rows: list[dict]) -> Path:
    """Rows to .jsonl, .csv or .tsv (by suffix)."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return path
    delimiter = "\t" if path.suffix == ".tsv" else ","
    columns = list(rows[0])
    lines = [delimiter.join(columns)]
    for row in rows:
        cells = [str(row[c]) for c in columns]
        if delimiter == ",":
            cells = ['"' + cell.replace('"', '""') + '"' if ("," in cell or '"' in cell) else cell for cell in cells]
        lines.append(delimiter.join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def labelled_rows(count: int, offset: int = 0) -> list[dict]:
    """Verses labelled by whether they mention "he" (classification) and by their length (regression)."""
    rows = []
    for line in heldout_lines(offset + count)[offset:]:
        rows.append({"text": line, "label": "he" if "he" in line.split() else "other",
                     "score": round(len(line.split()) / 10.0, 1)})
    return rows


def act_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    env.update(TF_CPP_MIN_LOG_LEVEL="3", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               TRANSFORMERS_VERBOSITY="error", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    return env


def run_act(*args, cwd=None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m act ARGS` in a fresh process (the command as a user types it)."""
    return subprocess.run([sys.executable, "-m", "act", *map(str, args)], capture_output=True, text=True,
                          env=act_env(), cwd=cwd, timeout=timeout)
