#!/usr/bin/env python
"""Convert a transformers-4 Keras-2 tf_model.h5 (directory with config.json) to the canonical format or a .keras file.

A thin wrapper over `act convert` (act.commands.convert); see conversion/README.md. Usage:
    python conversion/convert_legacy_h5.py SOURCE DEST [--to canonical|pytorch|keras] [--verify] [--config JSON] [--overwrite]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0], "legacy_h5"))
