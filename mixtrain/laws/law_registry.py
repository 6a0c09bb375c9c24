"""The law registry: `LAWS` (name -> class), `make_law(name)` and `load_law(path)`.

Place in the flow: below the optimiser (laws/sampled.py builds its check law by name from here)
and above every law class; laws/__init__.py re-exports it with `fit_law` (the `auto` choice).
Pure: numpy + scipy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mixtrain.laws.base import MixingLaw
from mixtrain.laws.bimix import BiMixLaw
from mixtrain.laws.exp import ExpLaw
from mixtrain.laws.loglinear import LogLinearLaw
from mixtrain.laws.scaling_mixing import ScalingMixingLaw
from mixtrain.laws.surrogate import RidgeLaw
from mixtrain.laws.transfer import TransferLaw
from mixtrain.laws.trees import LightGBMLaw

LAWS: dict[str, type[MixingLaw]] = {
    "bimix": BiMixLaw,
    "exp": ExpLaw,
    "loglinear": LogLinearLaw,
    "transfer": TransferLaw,
    "ridge": RidgeLaw,
    "lightgbm": LightGBMLaw,
    "scaling": ScalingMixingLaw,
}


def make_law(name: str, **config: Any) -> MixingLaw:
    """A fresh (unfitted) law by registry name, with options (e.g. make_law('exp', ridge=1e-2))."""
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; choose one of {sorted(LAWS)} or 'auto'")
    return LAWS[name](**config)


def load_law(source: str | Mapping[str, Any]) -> MixingLaw:
    """Load a law written by `law.to_json(path)` (a path, or the dict itself); the class is the
    registry's entry for the file's 'law' key."""
    d, where = MixingLaw.read_json(source)
    name = d.get("law")
    if name not in LAWS:
        raise ValueError(f"{where}: unknown law {name!r}; known laws {sorted(LAWS)} (written by a newer mixtrain?)")
    return LAWS[name].from_dict(d, where)
