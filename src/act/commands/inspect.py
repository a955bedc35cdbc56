"""`act inspect`: how many updates each token of a sentence receives, as a table and a heat map.

    act inspect "a lump in the middle of the monkeys stirred and then fell quiet ."
    act inspect "..." --model DIR --framework keras --png halting.png

Without `--model`, the embedded demo model (`act/demo_model/`, a tiny ALBERT-ACT pre-trained by
`examples/pretrain_demo.py`) is used, so this works offline right after installation.

This module also holds what `act stats` shares with it: finding the model directory, the tokenizer
(`act.tokenization.load_tokenizer`) and a model of either framework behind one call that returns NumPy arrays.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..hf_logging import quiet_transformers  # noqa: F401  (Runner uses it; still importable from here)
from ..tokenization import load_tokenizer

FRAMEWORKS = ("pytorch", "keras")
EXAMPLE = "a lump in the middle of the monkeys stirred and then fell quiet ."


def demo_model_dir() -> Path:
    """The directory of the embedded demo model (installed with the package)."""
    return Path(__file__).resolve().parents[1] / "demo_model"


def resolve_model_dir(model: str | Path | None, revision: str | None = None, cache_dir=None) -> Path:
    """The model directory to use (the demo model when `model` is None; a hub id that is not a local path comes from
    the hub's cache or the hub, `act.hub.resolve_model`); FileNotFoundError if it is not one."""
    from ..hub import is_hub_id, resolve_model

    directory = demo_model_dir() if model is None else Path(model)
    if not directory.exists() and is_hub_id(str(model)):
        directory = resolve_model(model, revision=revision, cache_dir=cache_dir)
    if not directory.exists():
        raise FileNotFoundError(f"model directory {directory} does not exist")
    if not directory.is_dir():
        raise FileNotFoundError(f"model path {directory} is not a directory (expected config.json + model weights)")
    from ..checkpoints import files

    files.refuse_interrupted(directory)  # a CheckpointError (ValueError): a killed save left it half-replaced
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in model directory {directory}")
    return directory


class Runner:
    """A model of either framework behind one call: token ids in, NumPy `updates` and `remainders` out."""

    def __init__(self, directory: Path, framework: str = "pytorch"):
        if framework not in FRAMEWORKS:
            raise ValueError(f"unknown framework {framework!r}: use one of {', '.join(FRAMEWORKS)}")
        self.framework = framework
        self.directory = directory
        with quiet_transformers():
            self.model = self._load(directory, framework)
        self.config = self.model.config

    @staticmethod
    def _load(directory: Path, framework: str):
        if framework == "pytorch":
            try:
                import torch  # noqa: F401

                from act import AlbertActModel
            except ImportError as error:
                raise ValueError(f"--framework pytorch needs torch ({error}): pip install 'albert-act[torch]'") \
                    from error
            return AlbertActModel.from_pretrained(str(directory)).eval()
        else:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter
            try:
                from act import TFAlbertActModel
            except (ImportError, AttributeError) as error:
                raise ValueError(f"--framework keras needs tensorflow and keras ({error}): "
                                 "pip install 'albert-act[tf]'") from error
            return TFAlbertActModel.from_pretrained(str(directory))

    @property
    def max_length(self) -> int:
        return int(self.config.max_position_embeddings)

    def __call__(self, input_ids, attention_mask, token_type_ids, hidden_states: bool = False) -> dict:
        """Arrays of shape (batch, seq_len) in; {"updates", "remainders"} as float NumPy arrays out. With
        `hidden_states=True`, also "hidden_states": a list of float32 (batch, seq_len, hidden) arrays, index i the
        state after iteration i (0: the projected embeddings), as many as the model returns (the iterations its
        loop ran, or a fixed num_hidden_layers + 1 whose later entries repeat the final state)."""
        import numpy as np

        if self.framework == "pytorch":
            import torch

            with torch.no_grad():
                out = self.model(input_ids=torch.as_tensor(np.asarray(input_ids), dtype=torch.long),
                                 attention_mask=torch.as_tensor(np.asarray(attention_mask), dtype=torch.long),
                                 token_type_ids=torch.as_tensor(np.asarray(token_type_ids), dtype=torch.long),
                                 output_hidden_states=hidden_states)
            result = {"updates": out.updates.float().numpy(), "remainders": out.remainders.float().numpy()}
            if hidden_states:
                result["hidden_states"] = [state.float().numpy() for state in out.hidden_states]
            return result
        import keras

        inputs = {"input_ids": np.asarray(input_ids, dtype="int32"),
                  "attention_mask": np.asarray(attention_mask, dtype="int32"),
                  "token_type_ids": np.asarray(token_type_ids, dtype="int32")}
        out = self.model(inputs, training=False, output_hidden_states=hidden_states)
        result = {key: np.asarray(keras.ops.convert_to_numpy(out[key]), dtype="float32")
                  for key in ("updates", "remainders")}
        if hidden_states:
            result["hidden_states"] = [np.asarray(keras.ops.convert_to_numpy(state), dtype="float32")
                                       for state in out["hidden_states"]]
        return result


def halting_grid(updates, cap: int):
    """(tokens, cap) array: 1 where the token was updated at that iteration, 0.5 at the halting (last) update,
    0 once halted. Recomputed from the update counts: a token runs at iterations 1..N and then stops."""
    import numpy as np

    updates = np.asarray(updates, dtype=int)
    grid = np.zeros((len(updates), cap))
    for row, count in enumerate(updates):
        grid[row, :count] = 1.0
        if count:
            grid[row, count - 1] = 0.5
    return grid


def write_heatmap(path: Path, tokens: list[str], updates, remainders, cap: int, title: str) -> None:
    """PNG of tokens (rows) by iteration (columns), showing at which iteration each token halted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    grid = halting_grid(updates, cap)
    height = max(2.5, 0.28 * len(tokens) + 1.4)
    width = max(5.0, 0.42 * cap + 3.2)
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    cmap = ListedColormap(["#f4f4f4", "#e6863b", "#2b6ca3"])  # halted, halting update, updated
    ax.imshow(grid, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(tokens)))
    ax.set_yticklabels([f"{token}  ({int(n)})" for token, n in zip(tokens, updates)], fontsize=8)
    ax.set_xticks(range(cap))
    ax.set_xticklabels([str(k + 1) for k in range(cap)], fontsize=8)
    ax.set_xlabel("iteration (application of the shared layer)")
    ax.set_ylabel("token  (updates)")
    ax.set_xticks([k - 0.5 for k in range(1, cap)], minor=True)
    ax.set_yticks([k - 0.5 for k in range(1, len(tokens))], minor=True)
    ax.grid(which="minor", color="white", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    for row, (n, r) in enumerate(zip(updates, remainders)):
        if n and r > 0:
            ax.text(int(n) - 1, row, f"{r:.2f}", ha="center", va="center", fontsize=6, color="white")
    ax.set_title(title, fontsize=9)
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color="#2b6ca3", label="updated"),
                        Patch(color="#e6863b", label="last update (number: remainder R)"),
                        Patch(facecolor="#f4f4f4", edgecolor="#bbbbbb", label="halted")],
               loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0.0, 0.3 / height, 1.0, 1.0))
    from ..analysis.plots import save_figure

    try:
        save_figure(fig, path)  # crash-safe: a full disk leaves the previous PNG, never a truncated one
    finally:
        plt.close(fig)


def check_text(text, what: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{what} is empty{' (only whitespace)' if text else ''}: nothing to inspect (the model would "
                         f"see only [CLS] [SEP]); give a sentence, e.g. act inspect \"{EXAMPLE}\"")


def inspect_sentence(text: str, runner: Runner, tokenizer, pair: str | None = None) -> dict:
    """Tokenize `text` (and an optional second segment), run the model; tokens, updates and remainders. An empty
    or whitespace-only text (or pair) is a ValueError: the model would only see [CLS] [SEP]."""
    check_text(text, "the text")
    if pair is not None:
        check_text(pair, "--pair")
    encoding = tokenizer(text, pair, truncation=True, max_length=runner.max_length)
    ids = encoding["input_ids"]
    token_types = encoding.get("token_type_ids") or [0] * len(ids)
    out = runner([ids], [[1] * len(ids)], [token_types])
    return {
        "tokens": tokenizer.convert_ids_to_tokens(ids),
        "input_ids": list(ids),
        "updates": [float(u) for u in out["updates"][0]],
        "remainders": [float(r) for r in out["remainders"][0]],
        "truncated": len(tokenizer(text, pair)["input_ids"]) > len(ids),
    }


def format_table(result: dict, cap: int) -> str:
    width = max([5] + [len(token) for token in result["tokens"]])
    lines = [f"{'#':>3}  {'token':<{width}}  {'updates':>7}  {'remainder':>9}", "-" * (width + 27)]
    for index, (token, n, r) in enumerate(zip(result["tokens"], result["updates"], result["remainders"])):
        bar = "#" * int(n)
        lines.append(f"{index:>3}  {token:<{width}}  {n:>7.0f}  {r:>9.4f}  {bar}")
    updates = result["updates"]
    lines.append("-" * (width + 27))
    lines.append(f"{len(updates)} tokens, mean updates {sum(updates) / len(updates):.2f} "
                 f"(min {min(updates):.0f}, max {max(updates):.0f}, iteration cap {cap})")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="+", help=f"the sentence (quoted, or several words), e.g. \"{EXAMPLE}\"")
    parser.add_argument("--model", metavar="DIR", default=None,
                        help="model directory (config.json, weights, spiece.model) or hub id "
                             "(e.g. asi/albert-act-tiny); default: the embedded demo model")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="pytorch", help="run the model in PyTorch or Keras")
    parser.add_argument("--png", metavar="PATH", default=None,
                        help="write a heat map of tokens by iteration (when each token halted) to PATH")
    parser.add_argument("--pair", metavar="TEXT", default=None,
                        help="an optional second segment: [CLS] text [SEP] pair [SEP]")
    from ..hub import add_hub_arguments

    add_hub_arguments(parser)


def run(args: argparse.Namespace) -> int:
    check_text(" ".join(args.text), "the text")  # before any model is loaded
    if args.pair is not None:
        check_text(args.pair, "--pair")
    directory = resolve_model_dir(args.model, args.revision, args.cache_dir)
    tokenizer = load_tokenizer(directory)
    if args.png is not None and not Path(args.png).resolve().parent.is_dir():
        raise FileNotFoundError(f"cannot write {args.png}: directory {Path(args.png).resolve().parent} does not exist")
    runner = Runner(directory, args.framework)
    text = " ".join(args.text)
    result = inspect_sentence(text, runner, tokenizer, args.pair)
    cap = int(runner.config.num_hidden_layers)
    print(f"model: {directory} ({args.framework})")
    if result["truncated"]:
        print(f"note: the input was truncated to max_position_embeddings={runner.max_length} tokens", file=sys.stderr)
    print(format_table(result, cap))
    if args.png is not None:
        write_heatmap(Path(args.png), result["tokens"], result["updates"], result["remainders"], cap,
                      f"ALBERT-ACT updates per token ({directory.name}, {args.framework})")
        print(f"heat map written to {args.png}")
    return 0
