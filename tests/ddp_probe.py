"""Runs the `act` command like `python -m act`, and after training writes this rank's final weights to
$ACT_PROBE_DIR/rank<R>.npz (with the world size), so a test can check that every rank of a data-parallel run ends with
the same weights. Used by test_training_distributed.py under torchrun and accelerate launch."""

import os
import sys

import numpy as np

from act.training import trainer as trainer_module

original_train = trainer_module.ActTrainer.train


def train(self, *args, **kwargs):
    result = original_train(self, *args, **kwargs)
    model = self.accelerator.unwrap_model(self.model)
    state = {name: value.detach().cpu().numpy() for name, value in model.state_dict().items()}
    path = os.path.join(os.environ["ACT_PROBE_DIR"], f"rank{self.args.process_index}.npz")
    np.savez(path, __world_size__=self.args.world_size, **state)
    return result


trainer_module.ActTrainer.train = train

if __name__ == "__main__":
    from act.commands.cli import main

    sys.exit(main(sys.argv[1:]))
