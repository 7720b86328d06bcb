"""The Chinchilla law [Hoffmann et al. 2022, arXiv:2203.15556]: L = E + A/N^alpha + B/D^beta; precision ignored.

Fitted by the effective-parameters engine (fits.laws.fitting) with no precision dimension and no PTQ term.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from fits.laws.base import BitRequest, ConstraintRefused, RunConfig
from fits.laws.equations import chinchilla_loss
from fits.laws.fitting import EffectiveParamsLaw
from fits.laws.observations import FloatArray


class ChinchillaLaw(EffectiveParamsLaw):
    """L = E + A/N^alpha + B/D^beta: every configuration is read as 16-bit training without PTQ."""

    name = "chinchilla"
    title = "Chinchilla"
    density_reference_rank: ClassVar[int | None] = 1
    keep_starts = 3

    def predict(self, params: Mapping[str, Any], config: RunConfig) -> FloatArray:
        return chinchilla_loss(params, config.n_params, config.n_tokens)

    def plan_bits(self, request: BitRequest, params: Mapping[str, Any], data_range: Mapping[str, float]) -> BitRequest:
        given = request.given()
        if given:
            message = "The chinchilla law does not model precision; plan bits with law=precision."
            raise ConstraintRefused(given[0], message)
        return BitRequest(weight_bits=16.0, activation_bits=16.0, kv_bits=16.0, tie_bits=True)

    def bits_panel(self, varying: list[str]) -> str:
        return "The chinchilla law ignores precision; fit the precision law."
