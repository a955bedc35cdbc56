"""The `act` command and its subcommands; the library is the rest of `act`.

- `cli.py`: the `act` command (also `python -m act`, `act/__main__.py`), which dispatches to the subcommands;
- `convert.py` (`act convert`), `export.py` (`act export`, ONNX), `inspect.py` (`act inspect`), `stats.py`
  (`act stats`, with its analyses in `act.analysis`): each exposes `add_arguments(parser)` and `run(args) -> int`,
  and a Python function that does the same work (`convert`, `export_onnx`, `Runner` / `inspect_sentence`,
  `compute_stats`).

`act pretrain` and `act finetune` live in `act.training`, which is both library (data, masking, `ActTrainer`, LAMB,
metrics, callbacks) and commands (`act.training.pretrain`, `act.training.finetune`), so it stays one package.

The modules `act.cli`, `act.convert`, `act.export`, `act.inspect` and `act.stats` (where these lived before) are
deprecated aliases of the modules here: importing one warns (`DeprecationWarning`); they are removed in 0.2.0.
"""
