"""`keras.models.load_model("x.keras")` after a bare `import act`, in either import order.

Keras finds a custom class by its registered name (``"act>TFAlbertActModel"``) in its global custom-object dict,
and imports a class's module only for keras' own packages. `act.tf` (which registers the classes) costs tensorflow
and transformers, so `import act` does not import it; it registers light stand-ins under the same names instead,
whose ``from_config`` imports `act.tf` (that registers the real classes over the stand-ins) and hands over. They are
registered when `act` is imported if keras already is, otherwise right after keras' first import (a one-shot
import hook). Nothing here imports keras, tensorflow or transformers.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

PACKAGE = "act"  # the package of every `register_keras_serializable` in act.tf


class KerasStandIn:
    """Registered with Keras as ``act>NAME`` until `act.tf` registers the class NAME itself."""

    def __init__(self, name: str):
        self.__name__ = self.__qualname__ = name

    def real_class(self):
        return getattr(importlib.import_module("act.tf"), self.__name__)

    def from_config(self, config, custom_objects=None):
        import inspect

        cls = self.real_class()
        if custom_objects is not None and "custom_objects" in inspect.signature(cls.from_config).parameters:
            return cls.from_config(config, custom_objects=custom_objects)
        return cls.from_config(config)

    def get_config(self):  # Keras' registry only accepts objects that look serialisable
        raise TypeError(f"{self!r} is a stand-in for loading; import act.tf for the class")

    def __repr__(self):
        return f"<stand-in for act.tf.{self.__name__}>"


def register_stand_ins(names) -> None:
    """Put a stand-in under ``act>NAME`` for each name Keras does not know yet (real classes stay)."""
    keras = sys.modules["keras"]
    objects = keras.saving.get_custom_objects()
    for name in names:
        objects.setdefault(f"{PACKAGE}>{name}", KerasStandIn(name))


class _RegisterAfterImport(importlib.abc.Loader):
    """Wraps keras' loader: runs it, then registers the stand-ins (keras is complete by then)."""

    def __init__(self, loader, names):
        self._loader, self._names = loader, tuple(names)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        if hasattr(module, "saving"):  # keras 3; otherwise loading a .keras file needs `import act.tf` first
            register_stand_ins(self._names)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... of the real loader
        return getattr(self._loader, name)


class _KerasImportHook(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = tuple(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        uninstall()
        spec = importlib.util.find_spec("keras")  # the other finders' answer
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisterAfterImport(spec.loader, self.names)
        return spec


def uninstall() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _KerasImportHook)]


def install(names) -> None:
    """Register the stand-ins now if keras is imported, else when it is."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "saving"):
        register_stand_ins(names)
    elif not any(isinstance(finder, _KerasImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _KerasImportHook(names))
