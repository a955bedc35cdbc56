"""`python -m act ...` runs the `act` command (so `torchrun -m act ...` and `accelerate launch -m act ...` work)."""

import sys

from act.commands.cli import main

if __name__ == "__main__":
    sys.exit(main())
