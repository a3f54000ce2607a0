"""Lazy re-exports: a package's public names are imported from their module on first use."""

from __future__ import annotations

import importlib


def attach(package: str, names: dict[str, str]):
    """Return ``(__getattr__, __dir__, __all__)`` for ``package``.

    ``names`` maps each public name to the submodule (relative, e.g.
    ``"_linear"``) that defines it.
    """
    all_ = sorted(names)

    def __getattr__(name):
        try:
            module = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f".{module}", package), name)
        import sys

        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return all_

    return __getattr__, __dir__, all_
