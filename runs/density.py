"""Capacity density of a run against its family's 16-bit reference: pure NumPy, no Django (docs/laws.md 11).

A run's density rho = N_hat / N, where N_hat is the parameter count a 16-bit model of the family's reference law,
trained on the run's own D, needs to reach the run's final loss. Every law's 16-bit reference has the form

    L = E + (A + k D^beta) / (r16 N_hat)^alpha + B / D^beta

so N_hat has a closed form from seven constants, which the law supplies (fits.laws.ScalingLaw.density_constants):
r16 is N_eff/N at 16 bits (Kumar's precision law; 1 otherwise) and k the fp law's interaction term at bf16's
format (0 otherwise). N_hat is undefined (NaN) where L - E - B/D^beta <= 0: the run reaches the law's asymptote
for its D, or goes below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DensityConstants:
    """The reference law at 16 bits: L = E + (A + k D^beta) / (ratio16 N)^alpha + B / D^beta."""

    E: float  # noqa: N815 -- the laws' names
    A: float  # noqa: N815
    B: float  # noqa: N815
    alpha: float
    beta: float
    ratio16: float = 1.0
    k: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DensityConstants:
        return cls(**{name: float(values[name]) for name in ("E", "A", "B", "alpha", "beta", "ratio16", "k")})


def effective_params_16bit(
    constants: DensityConstants, *, n_tokens: npt.ArrayLike, final_loss: npt.ArrayLike
) -> FloatArray:
    """N_hat: the N a 16-bit model of the reference trained on the same D needs for the same final loss;
    broadcasts; NaN where undefined."""
    c = constants
    d = np.asarray(n_tokens, dtype=np.float64)
    loss = np.asarray(final_loss, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        amplitude = c.A + c.k * d**c.beta
        gap = loss - c.E - c.B * d ** (-c.beta)
        n_hat = (amplitude / gap) ** (1.0 / c.alpha) / c.ratio16
    ok = (gap > 0) & np.isfinite(n_hat) & (n_hat > 0)
    return np.asarray(np.where(ok, n_hat, np.nan), dtype=np.float64)


def capacity_density(
    constants: DensityConstants, *, n_params: npt.ArrayLike, n_tokens: npt.ArrayLike, final_loss: npt.ArrayLike
) -> FloatArray:
    """rho = N_hat / N per run (eq. 1 of the densing law); NaN where N_hat is undefined or N is not positive."""
    n = np.asarray(n_params, dtype=np.float64)
    n_hat = effective_params_16bit(constants, n_tokens=n_tokens, final_loss=final_loss)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = n_hat / n
    return np.asarray(np.where((n > 0) & np.isfinite(rho), rho, np.nan), dtype=np.float64)
