#!/usr/bin/env python
"""Convert a Keras .keras file to the canonical format (config.json + model.safetensors).

A thin wrapper over `act convert` (act.commands.convert); see conversion/README.md. Usage:
    python conversion/convert_keras.py SOURCE DEST [--to canonical|pytorch|keras] [--verify] [--config JSON] [--overwrite]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0], "keras"))
