"""`act pretrain`: pre-train ALBERT-ACT the way ALBERT (and the paper) did, on transformers' Trainer.

    act pretrain CORPUS OUT (--from MODEL | --config CONFIG.json --tokenizer DIR) [--max-seq-length N] [options]
                 [every TrainingArguments flag: --learning_rate, --per_device_train_batch_size, --max_steps, ...]

CORPUS: ALBERT's format, one sentence a line, documents separated by blank lines (several files: comma-separated).
The loss is AlbertActForPreTraining's: masked LM (ALBERT's n-gram masking, at most --max-predictions-per-seq
predictions) + sentence-order prediction + ponder_penalty * ponder cost. The data are tokenized once and cached
(memory-mapped `datasets` tables, see `act.training.data`). OUT receives the model (config.json, model.safetensors:
both frameworks load it), the tokenizer, trainer_state.json, train_results.json (and eval_results.json with
--eval-corpus), the Trainer's checkpoints, and act_training.json (the command and its settings).

Runs unchanged under `torchrun --nproc_per_node N -m act pretrain ...` and `accelerate launch -m act pretrain ...`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path

@dataclass
class PretrainArguments:
    from_model: str | None = field(default=None, metadata={
        "aliases": ["--from"], "metavar": "MODEL",
        "help": "continue from this ALBERT-ACT model directory or hub id (its tokenizer too)"})
    config: str | None = field(default=None, metadata={
        "metavar": "CONFIG.json", "help": "start from scratch with this config.json (needs --tokenizer)"})
    tokenizer: str | None = field(default=None, metadata={
        "metavar": "DIR", "help": "tokenizer directory or hub id (default: the --from model's)"})
    revision: str | None = field(default=None, metadata={
        "help": "hub revision (branch, tag or commit) of --from / --tokenizer given as hub ids (default: main; the "
                "hub cache is $HF_HUB_CACHE, offline with HF_HUB_OFFLINE=1)"})
    max_seq_length: int | None = field(default=None, metadata={
        "help": "tokens per pair, [CLS] A [SEP] B [SEP] (default: the model's max_position_embeddings)"})
    max_predictions_per_seq: int = field(default=20, metadata={"help": "at most this many masked-LM targets a pair"})
    masked_lm_prob: float = field(default=0.15, metadata={"help": "share of the tokens chosen for masked LM"})
    max_ngram: int = field(default=3, metadata={"help": "longest masked n-gram, in words (weights 1/n)"})
    short_seq_prob: float = field(default=0.1, metadata={"help": "probability of a shorter target length"})
    dupe_factor: int = field(default=1, metadata={
        "help": "passes over the corpus with different random pairs (masks are drawn anew every epoch anyway)"})
    ponder_penalty: float | None = field(default=None, metadata={
        "help": "tau, the weight of the ponder cost (default: the config's ponder_penalty)"})
    ponder_warmup_steps: int = field(default=0, metadata={
        "help": "ramp tau linearly from 0 over the first N optimizer steps (0: the full tau from the start)"})
    lamb: bool = field(default=False, metadata={
        "help": "optimise with LAMB (act.training.lamb) instead of --optim; uses --learning_rate, --adam_beta1/2, "
                "--adam_epsilon, --weight_decay"})
    eval_corpus: str | None = field(default=None, metadata={
        "help": "held-out corpus (same format) for evaluation, with masks fixed by --seed"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "where the tokenized corpus and the pairs are cached (default: datasets' cache, act_pretrain/)"})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "processes for tokenizing"})
    prepare_data_only: bool = field(default=False, metadata={
        "help": "tokenize the corpus and draw the pairs into the cache, then stop (no model is trained or written)"})
    halting_bias: float | None = field(default=None, metadata={
        "help": "fresh models: initial bias of the halting unit (act.dense)"})
    halting_init_std: float | None = field(default=None, metadata={
        "help": "fresh models: initial std of the halting unit's weights (default: initializer_range)"})
    halting_lr_scale: float = field(default=1.0, metadata={
        "help": "the halting unit's learning rate relative to --learning_rate (0: it keeps its initialisation)"})


def parent_parsers() -> list[argparse.ArgumentParser]:
    from .args import parent_parser

    return [parent_parser(PretrainArguments)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", metavar="CORPUS", help="text file(s), comma-separated: a sentence a line, "
                                                          "documents separated by blank lines")
    parser.add_argument("out", metavar="OUT", help="output directory (model, tokenizer, trainer_state.json)")


def build_model(options: PretrainArguments, seed: int):
    from act.tokenization import load_tokenizer

    from .common import find_spiece, resolve_directory

    import torch
    from transformers import set_seed

    from act.configuration import AlbertActConfig
    from act.pt.modeling import AlbertActForPreTraining

    if (options.from_model is None) == (options.config is None):
        raise ValueError("give exactly one of --from MODEL (continue) or --config CONFIG.json (from scratch)")
    for name, option in (("from_model", "--from"), ("tokenizer", "--tokenizer")):
        if getattr(options, name) is not None:
            setattr(options, name, resolve_directory(getattr(options, name), option, options.revision))
    if options.from_model is not None:
        if options.halting_bias is not None or options.halting_init_std is not None:
            raise ValueError("--halting_bias/--halting_init_std initialise a fresh model: use them with --config")
        model = AlbertActForPreTraining.from_pretrained(options.from_model)
        tokenizer = load_tokenizer(options.tokenizer or options.from_model)
        spiece = find_spiece(options.tokenizer or options.from_model)
    else:
        if options.tokenizer is None:
            raise ValueError("--config needs --tokenizer DIR (the vocabulary of the new model)")
        if not Path(options.config).is_file():
            raise FileNotFoundError(f"--config {options.config}: no such file")
        config = AlbertActConfig.from_json_file(options.config)
        tokenizer = load_tokenizer(options.tokenizer)
        set_seed(seed)
        model = AlbertActForPreTraining(config)
        halting = model.albert.encoder.albert_layer.act.dense
        with torch.no_grad():
            if options.halting_bias is not None:
                halting.bias.fill_(options.halting_bias)
            if options.halting_init_std is not None:
                halting.weight.normal_(0.0, options.halting_init_std)
        spiece = find_spiece(options.tokenizer)
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
                         f"{model.config.vocab_size}")
    if options.ponder_penalty is not None:
        if options.ponder_penalty < 0:
            raise ValueError(f"--ponder_penalty must be >= 0, got {options.ponder_penalty}")
        model.config.ponder_penalty = options.ponder_penalty
    model.config.architectures = ["AlbertActForPreTraining"]
    return model, tokenizer, spiece


def default_cache_dir() -> Path:
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "act_pretrain"


def run(args: argparse.Namespace) -> int:
    from .args import split_namespace
    from .callbacks import HaltingStatsCallback, PonderWarmupCallback
    from .common import check_output_dir, command_line, save_final, write_marker
    from .data import NgramMaskingCollator, PairSettings, build_pairs, premask, tokenize_corpus
    from .trainer import ActTrainer

    out = Path(args.out)
    if getattr(args, "output_dir", None) not in (None, str(args.out)):
        raise ValueError(f"OUT is {args.out!r} but --output_dir says {args.output_dir!r}: give it once, as OUT")
    args.output_dir = str(out)
    (options, training), positional = split_namespace(args, PretrainArguments)
    check_output_dir(out, (options.from_model, options.tokenizer))
    corpus = [path for path in positional.corpus.split(",") if path]

    if options.ponder_warmup_steps < 0:
        raise ValueError(f"--ponder_warmup_steps must be >= 0, got {options.ponder_warmup_steps}")
    model, tokenizer, spiece = build_model(options, training.seed)
    max_length = options.max_seq_length or model.config.max_position_embeddings
    if max_length > model.config.max_position_embeddings:
        raise ValueError(f"--max_seq_length {max_length} is longer than the model's max_position_embeddings "
                         f"({model.config.max_position_embeddings})")
    if training.eval_strategy != "no" and options.eval_corpus is None:
        raise ValueError(f"--eval_strategy {training.eval_strategy} needs --eval_corpus")
    tokenizer.model_max_length = model.config.max_position_embeddings

    cache_dir = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
    seed = training.data_seed if training.data_seed is not None else training.seed
    settings = PairSettings(max_length, options.short_seq_prob, options.dupe_factor, seed)
    collator = NgramMaskingCollator(tokenizer, options.masked_lm_prob, options.max_predictions_per_seq,
                                    options.max_ngram)
    with training.main_process_first(desc="tokenizing the corpus and drawing the pairs"):
        _, fingerprint = tokenize_corpus(corpus, tokenizer, cache_dir, options.preprocessing_num_workers)
        train_pairs, _ = build_pairs(fingerprint, tokenizer, settings, cache_dir)
        eval_pairs = None
        if options.eval_corpus is not None:
            _, eval_fingerprint = tokenize_corpus(options.eval_corpus.split(","), tokenizer, cache_dir,
                                                  options.preprocessing_num_workers)
            eval_settings = PairSettings(max_length, options.short_seq_prob, 1, seed + 1)
            eval_pairs, _ = build_pairs(eval_fingerprint, tokenizer, eval_settings, cache_dir)
            eval_pairs = premask(eval_pairs, collator, seed + 2)

    if options.prepare_data_only:
        if training.should_save:
            print(f"{len(train_pairs)} training pairs cached in {cache_dir}" +
                  (f", {len(eval_pairs)} evaluation pairs" if eval_pairs is not None else ""))
        return 0
    if training.should_save:
        write_marker(out, command_line(args), {"pretrain": asdict(options), "corpus": corpus, "pairs": len(train_pairs),
                      "max_seq_length": max_length})
    trainer = ActTrainer(model=model, args=training, train_dataset=train_pairs, eval_dataset=eval_pairs,
                         data_collator=collator, processing_class=tokenizer,
                         callbacks=[HaltingStatsCallback(), *([PonderWarmupCallback(
                             model.config.ponder_penalty, options.ponder_warmup_steps)]
                             if options.ponder_warmup_steps else [])],
                         lamb=options.lamb, halting_lr_scale=options.halting_lr_scale)
    result = trainer.train(resume_from_checkpoint=training.resume_from_checkpoint)
    save_final(trainer, tokenizer, out, spiece)
    trainer.save_state()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    if eval_pairs is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    if training.should_save:
        print(f"model written to {out}")
    return 0
