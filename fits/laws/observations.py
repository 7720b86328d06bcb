"""Typed, validated input arrays for the fitter: one row per run, one row per PTQ evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


class FitFailed(Exception):  # noqa: N818 -- the contract's name; the message is the stored failure reason
    """The data cannot support the requested fit (degenerate design, too few points, no convergence)."""


def _as_float(name: str, values: Sequence[float] | npt.ArrayLike, size: int | None = None) -> FloatArray:
    arr = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    if size is not None and arr.shape[0] != size:
        raise ValueError(f"{name} has {arr.shape[0]} values, expected {size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


@dataclass(frozen=True)
class Observations:
    """Finished, non-excluded runs and their post-training-quantization (PTQ) evaluations.

    Run arrays all have one entry per run; ``n_params`` is N (non-embedding parameters), ``n_tokens`` is D,
    the bits are training precisions P_w, P_a, P_kv and ``final_loss`` is the loss in nats before PTQ.
    Evaluations are flattened: ``eval_run[j]`` indexes the run, ``eval_post_bits[j]`` is P_post and
    ``eval_loss[j]`` the loss after PTQ. Construction validates shapes, finiteness and positivity.
    """

    n_params: FloatArray
    n_tokens: FloatArray
    weight_bits: FloatArray
    activation_bits: FloatArray
    kv_bits: FloatArray
    final_loss: FloatArray
    eval_run: IndexArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    eval_post_bits: FloatArray = field(default_factory=lambda: np.zeros(0))
    eval_loss: FloatArray = field(default_factory=lambda: np.zeros(0))
    # The floating-point format of each run (Sun et al.'s E and M), NaN where the run did not report one. Only
    # the fp law reads them; empty means "none reported" for every run.
    exponent_bits: FloatArray = field(default_factory=lambda: np.zeros(0))
    mantissa_bits: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        n = np.asarray(self.n_params).reshape(-1).shape[0]
        for name in ("n_params", "n_tokens", "weight_bits", "activation_bits", "kv_bits", "final_loss"):
            object.__setattr__(self, name, _as_float(name, getattr(self, name), n))
        for name in ("n_params", "n_tokens", "weight_bits", "activation_bits", "kv_bits", "final_loss"):
            if np.any(getattr(self, name) <= 0):
                raise ValueError(f"{name} must be positive")
        m = np.asarray(self.eval_run).reshape(-1).shape[0]
        eval_run = np.ascontiguousarray(self.eval_run).reshape(-1)
        if m and not np.issubdtype(eval_run.dtype, np.integer):
            raise ValueError("eval_run must hold integer run indices")
        eval_run = eval_run.astype(np.intp)
        if m and (eval_run.min() < 0 or eval_run.max() >= n):
            raise ValueError("eval_run indexes a run that does not exist")
        object.__setattr__(self, "eval_run", eval_run)
        object.__setattr__(self, "eval_post_bits", _as_float("eval_post_bits", self.eval_post_bits, m))
        object.__setattr__(self, "eval_loss", _as_float("eval_loss", self.eval_loss, m))
        if m and (np.any(self.eval_post_bits <= 0) or np.any(self.eval_loss <= 0)):
            raise ValueError("eval_post_bits and eval_loss must be positive")
        for name in ("exponent_bits", "mantissa_bits"):
            arr = np.ascontiguousarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if arr.shape[0] == 0:
                arr = np.full(n, np.nan)
            if arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} values, expected {n}")
            if np.any(np.isinf(arr)) or np.any(arr[np.isfinite(arr)] < 0):
                raise ValueError(f"{name} must be non-negative, or NaN where unknown")
            object.__setattr__(self, name, arr)
        if np.any(np.isnan(self.exponent_bits) != np.isnan(self.mantissa_bits)):
            raise ValueError("exponent_bits and mantissa_bits must be known for the same runs")

    @classmethod
    def build(
        cls,
        *,
        n_params: Sequence[float] | npt.ArrayLike,
        n_tokens: Sequence[float] | npt.ArrayLike,
        final_loss: Sequence[float] | npt.ArrayLike,
        weight_bits: Sequence[float] | npt.ArrayLike | None = None,
        activation_bits: Sequence[float] | npt.ArrayLike | None = None,
        kv_bits: Sequence[float] | npt.ArrayLike | None = None,
        eval_run: Sequence[int] | npt.ArrayLike = (),
        eval_post_bits: Sequence[float] | npt.ArrayLike = (),
        eval_loss: Sequence[float] | npt.ArrayLike = (),
        exponent_bits: Sequence[float] | npt.ArrayLike = (),
        mantissa_bits: Sequence[float] | npt.ArrayLike = (),
    ) -> Observations:
        """Build from lists; bits default to 16 (full precision) when omitted, the fp format to unknown."""
        n = np.asarray(n_params).reshape(-1).shape[0]
        sixteen = np.full(n, 16.0)
        return cls(
            n_params=np.asarray(n_params, dtype=np.float64),
            n_tokens=np.asarray(n_tokens, dtype=np.float64),
            weight_bits=sixteen if weight_bits is None else np.asarray(weight_bits, dtype=np.float64),
            activation_bits=sixteen if activation_bits is None else np.asarray(activation_bits, dtype=np.float64),
            kv_bits=sixteen if kv_bits is None else np.asarray(kv_bits, dtype=np.float64),
            final_loss=np.asarray(final_loss, dtype=np.float64),
            eval_run=np.asarray(eval_run, dtype=np.intp),
            eval_post_bits=np.asarray(eval_post_bits, dtype=np.float64),
            eval_loss=np.asarray(eval_loss, dtype=np.float64),
            exponent_bits=np.asarray(exponent_bits, dtype=np.float64),
            mantissa_bits=np.asarray(mantissa_bits, dtype=np.float64),
        )

    @property
    def n_runs(self) -> int:
        return int(self.n_params.shape[0])

    @property
    def n_evals(self) -> int:
        return int(self.eval_run.shape[0])

    def bits(self, dim: str) -> FloatArray:
        """Training bits of one precision dimension: ``w``, ``a`` or ``kv``."""
        return {"w": self.weight_bits, "a": self.activation_bits, "kv": self.kv_bits}[dim]

    def subset(self, run_mask: npt.NDArray[np.bool_]) -> Observations:
        """The runs where ``run_mask`` is true, with their evaluations re-indexed."""
        keep = np.flatnonzero(run_mask)
        new_index = np.full(self.n_runs, -1, dtype=np.intp)
        new_index[keep] = np.arange(keep.shape[0], dtype=np.intp)
        eval_keep = run_mask[self.eval_run] if self.n_evals else np.zeros(0, dtype=bool)
        return Observations(
            n_params=self.n_params[keep],
            n_tokens=self.n_tokens[keep],
            weight_bits=self.weight_bits[keep],
            activation_bits=self.activation_bits[keep],
            kv_bits=self.kv_bits[keep],
            final_loss=self.final_loss[keep],
            eval_run=new_index[self.eval_run[eval_keep]],
            eval_post_bits=self.eval_post_bits[eval_keep],
            eval_loss=self.eval_loss[eval_keep],
            exponent_bits=self.exponent_bits[keep],
            mantissa_bits=self.mantissa_bits[keep],
        )

    def canonical(self) -> Observations:
        """The same observations in a canonical row order, so a fit cannot depend on input order."""
        order = np.lexsort(
            (
                self.final_loss,
                self.mantissa_bits,
                self.exponent_bits,
                self.kv_bits,
                self.activation_bits,
                self.weight_bits,
                self.n_tokens,
                self.n_params,
            )
        )
        new_index = np.empty(self.n_runs, dtype=np.intp)
        new_index[order] = np.arange(self.n_runs, dtype=np.intp)
        eval_run = new_index[self.eval_run]
        eorder = np.lexsort((self.eval_loss, self.eval_post_bits, eval_run))
        return Observations(
            n_params=self.n_params[order],
            n_tokens=self.n_tokens[order],
            weight_bits=self.weight_bits[order],
            activation_bits=self.activation_bits[order],
            kv_bits=self.kv_bits[order],
            final_loss=self.final_loss[order],
            eval_run=eval_run[eorder],
            eval_post_bits=self.eval_post_bits[eorder],
            eval_loss=self.eval_loss[eorder],
            exponent_bits=self.exponent_bits[order],
            mantissa_bits=self.mantissa_bits[order],
        )
