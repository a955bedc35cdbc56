"""transformers' logging, quieted where its messages are noise for a user of our commands and analyses.

    from act.hf_logging import quiet_transformers
    with quiet_transformers():      # loading reports and progress bars off, restored on exit
        model = AutoModel.from_pretrained(directory)

Importing this module imports no framework (transformers is imported on use).
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' loading report and progress bars: loading the encoder of a pre-training checkpoint
    reports the (expected) unused head weights, and a tokenizer warns about sequences longer than
    `model_max_length` that the caller truncates itself; both are noise for a command-line user. The previous
    verbosity and progress-bar setting are restored on exit, also when the block raises."""
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
