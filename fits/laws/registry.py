"""The laws the engine can fit, by the name the API uses (docs/api.md, Fits)."""

from __future__ import annotations

from collections.abc import Mapping

from fits.laws.fitting import ChinchillaLaw, Law, PrecisionLaw
from fits.laws.floating_point import FloatingPointLaw

LAWS: Mapping[str, Law] = {"chinchilla": ChinchillaLaw(), "precision": PrecisionLaw(), "fp": FloatingPointLaw()}


def get_law(name: str) -> Law:
    """The law called `name`; ValueError naming the known laws otherwise."""
    try:
        return LAWS[name]
    except KeyError:
        raise ValueError(f"unknown law {name!r}; expected one of {sorted(LAWS)}") from None
