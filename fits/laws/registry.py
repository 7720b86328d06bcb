"""The laws the engine can fit, by the name the API uses (docs/api.md, Fits): one line per law module."""

from __future__ import annotations

from collections.abc import Mapping

from fits.laws.base import ScalingLaw
from fits.laws.chinchilla import ChinchillaLaw
from fits.laws.floating_point import FloatingPointLaw
from fits.laws.precision import PrecisionLaw

LAWS: Mapping[str, ScalingLaw] = {law.name: law for law in (ChinchillaLaw(), PrecisionLaw(), FloatingPointLaw())}

# The law a request that names none falls back to when no ranking decides: the one that models every precision
# input the planner takes.
DEFAULT_LAW = "precision"


def get_law(name: str) -> ScalingLaw:
    """The law called `name`; ValueError naming the known laws otherwise."""
    try:
        return LAWS[name]
    except KeyError:
        raise ValueError(f"unknown law {name!r}; expected one of {sorted(LAWS)}") from None


def law_choices() -> list[tuple[str, str]]:
    """(name, title) of every law, for model and form choices."""
    return [(law.name, law.title) for law in LAWS.values()]


def density_reference_laws() -> list[str]:
    """The laws that can serve as a family's 16-bit density reference, in order of preference."""
    ranked = [law for law in LAWS.values() if law.density_reference_rank is not None]
    return [law.name for law in sorted(ranked, key=lambda law: law.density_reference_rank or 0)]
