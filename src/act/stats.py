"""Deprecated alias of `act.commands.stats` (the command modules moved to `act.commands`); removed in 0.2.0.

Importing it warns (`DeprecationWarning`) and gives every public name of `act.commands.stats`.
"""

import types as _types
import warnings as _warnings

from act.commands import stats as _moved

_warnings.warn("act.stats is deprecated and will be removed in act 0.2.0: import act.commands.stats instead",
               DeprecationWarning, stacklevel=1 if __name__ == "__main__" else 2)  # shown for `python -m`

# the public names: not the private ones, nor the modules and the __future__ feature it imports
__all__ = [_name for _name, _value in vars(_moved).items()
           if not _name.startswith("_") and _name != "annotations" and not isinstance(_value, _types.ModuleType)]
globals().update({_name: getattr(_moved, _name) for _name in __all__})
