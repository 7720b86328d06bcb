"""Implausible runs: sizes and token counts no language-model training run reports; pure, no Django.

A run is implausible when it has fewer than MIN_N_PARAMS parameters, fewer than MIN_N_TOKENS training tokens, or
fewer tokens than parameters (D < N: under one token per parameter, far below any training recipe; Chinchilla's
compute-optimal runs see about 20). Such runs are accepted (a typo or a unit mistake must not lose the rest of a
batch), carry their flags in the run's JSON (`flags`), and the screening rule leaves them out of fits
(fits.laws.screening). The check is a few comparisons: it costs nothing on the write path.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# A language model needs at least an embedding per token of a small vocabulary: below a thousand parameters or a
# thousand tokens no run describes language-model scaling (the project's own toy sweep, examples/, trains 18k to
# 197k parameters on 200k tokens and more).
MIN_N_PARAMS = 1_000
MIN_N_TOKENS = 1_000


def run_flags(n_params: float, n_tokens: float) -> list[str]:
    """Why a run's size or token count is implausible (empty when it is plausible)."""
    out = []
    if n_params < MIN_N_PARAMS:
        out.append(f"implausible n_params: {n_params:,.0f}, below {MIN_N_PARAMS:,}")
    if n_tokens < MIN_N_TOKENS:
        out.append(f"implausible n_tokens: {n_tokens:,.0f}, below {MIN_N_TOKENS:,}")
    if n_tokens < n_params:
        out.append(
            f"implausible n_tokens: {n_tokens:,.0f} tokens for {n_params:,.0f} parameters, fewer than one per parameter"
        )
    return out


def implausible(n_params: npt.ArrayLike, n_tokens: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True where run_flags would flag a run (vectorised)."""
    n = np.asarray(n_params, dtype=np.float64)
    d = np.asarray(n_tokens, dtype=np.float64)
    return np.asarray((n < MIN_N_PARAMS) | (d < MIN_N_TOKENS) | (d < n))


__all__ = ["MIN_N_PARAMS", "MIN_N_TOKENS", "implausible", "run_flags"]
