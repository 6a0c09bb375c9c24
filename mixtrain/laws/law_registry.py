"""The law registry: `LAWS` (name -> class), the `@register_law` decorator, `make_law(name)` and
`load_law(path)`.

Place in the flow: above the law interface (laws/base.py) and below every law class: a law module
registers its class where it is defined,

    @register_law(order=10)          # or plain @register_law; the key is the class's `name`
    class BiMixLaw(MixingLaw):
        name = "bimix"

so adding a law touches only its own module (and its test). Nothing lists the law classes: the first
`make_law` / `load_law` (and `import mixtrain.laws`, whose __init__ calls `discover_laws`) imports every
module of the laws package once, which runs their decorators. The optimisers (laws/optim/: the check law
of bootstrap.py) and the CLIs build laws by name from here; laws/__init__.py re-exports it with `fit_law`
(the `auto` choice, which tries the laws in `LAWS` order: `order`, then registration). Pure: numpy + scipy.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, overload

from mixtrain.laws.base import MixingLaw

__all__ = ["DEFAULT_ORDER", "LAWS", "discover_laws", "load_law", "make_law", "register_law", "unregister_law"]

LAWS: dict[str, type[MixingLaw]] = {}
DEFAULT_ORDER = 100  # a law registered without `order` comes after the built-in ones
_ORDER: dict[str, float] = {}
_DISCOVERED = False

L = TypeVar("L", bound=type[MixingLaw])


@overload
def register_law(cls: L, /) -> L: ...
@overload
def register_law(*, order: float = DEFAULT_ORDER) -> Callable[[L], L]: ...
def register_law(cls=None, /, *, order: float = DEFAULT_ORDER):
    """Class decorator: put a `MixingLaw` subclass into `LAWS` under its `name` (the key law.json
    files are loaded by). `order` places it in `LAWS` (the order `law="auto"` tries laws in: a tie
    goes to the earlier); equal orders keep registration order."""

    def add(law_cls: L) -> L:
        name = getattr(law_cls, "name", None)
        if not (isinstance(law_cls, type) and issubclass(law_cls, MixingLaw)) or not name or name == MixingLaw.name:
            raise TypeError(f"register_law: {law_cls!r} is not a MixingLaw subclass with its own `name`")
        old = LAWS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (law_cls.__module__, law_cls.__qualname__):
            raise ValueError(f"register_law: law {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        LAWS[name] = law_cls
        _ORDER[name] = order
        ordered = sorted(LAWS.items(), key=lambda item: _ORDER.get(item[0], DEFAULT_ORDER))  # stable
        LAWS.clear()
        LAWS.update(ordered)
        return law_cls

    return add if cls is None else add(cls)


def unregister_law(name: str) -> type[MixingLaw] | None:
    """Remove `name` from the registry (tests that register a law of their own); returns its class."""
    _ORDER.pop(name, None)
    return LAWS.pop(name, None)


def discover_laws() -> dict[str, type[MixingLaw]]:
    """Import every module of the laws package once (not laws/optim/, which holds no law), so that
    their `@register_law` decorators have run; returns `LAWS`."""
    global _DISCOVERED
    if not _DISCOVERED:
        _DISCOVERED = True  # before the imports: a module that builds a law while it loads must not recurse
        try:
            for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
                if not info.ispkg and not info.name.startswith("_"):
                    importlib.import_module(f"{__package__}.{info.name}")
        except BaseException:
            _DISCOVERED = False
            raise
    return LAWS


def make_law(name: str, **config: Any) -> MixingLaw:
    """A fresh (unfitted) law by registry name, with options (e.g. make_law('exp', ridge=1e-2))."""
    discover_laws()
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; choose one of {sorted(LAWS)} or 'auto'")
    return LAWS[name](**config)


def load_law(source: str | Mapping[str, Any]) -> MixingLaw:
    """Load a law written by `law.to_json(path)` (a path, or the dict itself); the class is the
    registry's entry for the file's 'law' key."""
    discover_laws()
    d, where = MixingLaw.read_json(source)
    name = d.get("law")
    if name not in LAWS:
        raise ValueError(f"{where}: unknown law {name!r}; known laws {sorted(LAWS)} (written by a newer mixtrain?)")
    return LAWS[name].from_dict(d, where)
