"""Next-run suggestions: the few cheap runs whose results would narrow the plan's optimum-loss interval most.

Pure NumPy (no Django); the loss callables are planner.allocation's `LossFn` shapes (see its docstring).

Method (docs/api.md, Suggestions)
    The fit's S bootstrap draws are treated as samples of the posterior over the law's parameters. Across
    draws, the predicted loss at the plan's recommended configuration (the target, y_t) and at every
    candidate run c (y_c) are jointly approximated as Gaussian with the draws' sample covariance Sigma.
    Observing a candidate's loss with noise variance s_c^2 (s_c = noise_rel * the candidate's predicted
    loss: the relative scatter of the fit's residuals) updates the covariance linearly (Gaussian
    conditioning / Kalman update):

        Sigma <- Sigma - Sigma[:, c] Sigma[c, :] / (Sigma[c, c] + s_c^2)

    so the target's variance falls by Cov(y_t, y_c)^2 / (Var(y_c) + s_c^2): a run helps where the draws
    disagree about its loss (large Var(y_c)) *in the same direction* as they disagree about the target's
    (large covariance), and more the less noisy it is. Runs are picked greedily, each conditioned on the
    ones already picked (so two runs carrying the same information are not both chosen), subject to the
    total cost sum(6 N D cost_factor) <= the experiment budget. Two greedy passes are run, one by
    variance reduction per FLOP and one by variance reduction alone, and the better total reduction is kept
    (the cost-benefit greedy of Leskovec et al. 2007, "Cost-effective outbreak detection", which keeps the
    (1 - 1/e)/2 guarantee for budgeted submodular selection).

    Expected interval: the target's 95% interval (2.5th-97.5th percentiles of the draws) scaled by
    sqrt(Var_after / Var_before) around its median.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.allocation import FLOPS_PER_PARAM_TOKEN, LossFn

FloatArray = npt.NDArray[np.float64]
CostFactorFn = Callable[[FloatArray, FloatArray], FloatArray]  # (weight_bits, activation_bits) -> factor

DEFAULT_NOISE_REL = 0.005
MIN_NOISE_REL = 1e-3
DEFAULT_TOKENS_PER_PARAM: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
DEFAULT_N_POINTS = 16


class SuggestionError(ValueError):
    """The inputs admit no suggestion (no draws, no affordable in-domain candidate)."""


@dataclass(frozen=True)
class Target:
    """The configuration whose predicted loss the suggestions should pin down (the plan's recommendation)."""

    n_params: float
    n_tokens: float
    weight_bits: float
    activation_bits: float
    kv_bits: float
    post_train_bits: float | None = None


@dataclass(frozen=True)
class Candidates:
    """Candidate runs as parallel arrays (one entry per run) with their cost in budget FLOPs."""

    n_params: FloatArray
    n_tokens: FloatArray
    weight_bits: FloatArray
    activation_bits: FloatArray
    kv_bits: FloatArray
    cost_flops: FloatArray

    def __len__(self) -> int:
        return int(self.n_params.shape[0])

    def take(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Candidates:
        return Candidates(
            n_params=self.n_params[keep],
            n_tokens=self.n_tokens[keep],
            weight_bits=self.weight_bits[keep],
            activation_bits=self.activation_bits[keep],
            kv_bits=self.kv_bits[keep],
            cost_flops=self.cost_flops[keep],
        )


@dataclass(frozen=True)
class Suggestion:
    """One suggested run and what observing it is expected to do to the target's interval (cumulative)."""

    n_params: int
    n_tokens: int
    weight_bits: float
    activation_bits: float
    kv_bits: float
    cost_flops: float
    predicted_loss: float  # median across draws
    predicted_loss_interval: tuple[float, float]  # 95% across draws
    variance_reduction: float  # of the target's loss, from this run given the ones ranked before it
    target_interval_width_after: float  # expected 95% width at the target after this and earlier runs


@dataclass(frozen=True)
class SuggestionResult:
    suggestions: tuple[Suggestion, ...]
    target_loss: float  # median across draws
    target_interval_before: tuple[float, float]
    target_interval_after: tuple[float, float]  # expected, after all suggestions
    total_cost_flops: float
    noise_rel: float
    n_draws: int
    n_candidates: int
    strategy: str  # "per_flop" or "absolute": which greedy pass won


def candidate_grid(
    *,
    experiment_flops: float,
    bit_configs: Sequence[tuple[float, float, float]],
    cost_factor_fn: CostFactorFn,
    n_min: float,
    n_max: float,
    n_points: int = DEFAULT_N_POINTS,
    tokens_per_param: Sequence[float] = DEFAULT_TOKENS_PER_PARAM,
) -> Candidates:
    """Log-spaced N in [n_min, n_max] x tokens per parameter x bit configurations, each affordable on its own.

    A cell whose tokens per parameter would cost more than the experiment budget is replaced by the largest
    affordable D at that N (when D >= N, at least one token per parameter); duplicates are removed.
    """
    if not (experiment_flops > 0 and n_min > 0 and n_max >= n_min):
        raise SuggestionError("experiment budget and N range must be positive")
    ns = np.unique(np.geomspace(n_min, n_max, n_points).round())
    bits = np.array(bit_configs, dtype=np.float64).reshape(-1, 3)
    factor = cost_factor_fn(bits[:, 0], bits[:, 1])
    rows: set[tuple[float, float, float, float, float]] = set()
    for (w, a, kv), f in zip(bits, np.broadcast_to(factor, (bits.shape[0],)), strict=True):
        for n in ns:
            d_cap = np.floor(experiment_flops / (FLOPS_PER_PARAM_TOKEN * n * f))
            if d_cap < n:
                continue
            for r in tokens_per_param:
                rows.add((float(n), float(min(np.round(r * n), d_cap)), float(w), float(a), float(kv)))
    if not rows:
        raise SuggestionError("no run of at least one token per parameter fits in the experiment budget")
    arr = np.array(sorted(rows), dtype=np.float64)
    w_, a_ = arr[:, 2], arr[:, 3]
    cost = FLOPS_PER_PARAM_TOKEN * arr[:, 0] * arr[:, 1] * cost_factor_fn(w_, a_)
    return Candidates(
        n_params=arr[:, 0],
        n_tokens=arr[:, 1],
        weight_bits=w_,
        activation_bits=a_,
        kv_bits=arr[:, 4],
        cost_flops=np.asarray(cost, dtype=np.float64),
    )


def _greedy(
    centred: FloatArray, noise_var: FloatArray, cost: FloatArray, budget: float, k: int, per_flop: bool
) -> tuple[list[int], list[float]]:
    """Greedy selection on the joint covariance of the draws (column 0 is the target, 1.. the candidates).

    `centred` is the (S, 1 + M) matrix of predictions minus their means, so the covariance is
    centred.T @ centred / (S - 1). It is never formed (M x M, gigabytes for tens of thousands of candidates):
    each pick is a rank-one update, so the target's row and the diagonal after t picks are the initial ones
    minus t outer-product terms, and a picked column is one matrix-vector product. O(k S M) time, O(S M) memory.
    """
    scale = 1.0 / max(centred.shape[0] - 1, 1)
    diag = np.einsum("ij,ij->j", centred, centred) * scale
    row0 = (centred.T @ centred[:, 0]) * scale
    updates: list[tuple[FloatArray, float]] = []  # (column of the covariance when picked, its denominator)
    chosen: list[int] = []
    gains: list[float] = []
    spent = 0.0
    m = centred.shape[1] - 1
    available = np.ones(m, dtype=bool)
    for _ in range(k):
        var_c = diag[1:]
        gain = row0[1:] ** 2 / (var_c + noise_var)
        ok = available & (spent + cost <= budget * (1 + 1e-9)) & (gain > 0)
        if not ok.any():
            break
        score = gain / cost if per_flop else gain
        j = int(np.argmax(np.where(ok, score, -np.inf)))
        chosen.append(j)
        gains.append(float(gain[j]))
        spent += float(cost[j])
        available[j] = False
        col = (centred.T @ centred[:, j + 1]) * scale
        for u, c in updates:
            col = col - u * (u[j + 1] / c)
        denom = float(col[j + 1] + noise_var[j])
        diag = diag - col**2 / denom
        row0 = row0 - col * (col[0] / denom)
        updates.append((col, denom))
    return chosen, gains


def suggest_runs(
    draws_fn: LossFn,
    target: Target,
    candidates: Candidates,
    *,
    experiment_flops: float,
    max_suggestions: int = 3,
    noise_rel: float = DEFAULT_NOISE_REL,
) -> SuggestionResult:
    """Rank candidate runs by the expected reduction of the target's loss variance across draws (module doc)."""
    if max_suggestions < 1:
        raise SuggestionError("max_suggestions must be at least 1")
    noise_rel = max(float(noise_rel), MIN_NOISE_REL)
    affordable = candidates.cost_flops <= experiment_flops * (1 + 1e-9)
    cands = candidates.take(affordable)
    if len(cands) == 0:
        raise SuggestionError("no candidate run fits in the experiment budget")

    def f(x: float | None) -> FloatArray | None:
        return None if x is None else np.array([float(x)])

    y_t = np.asarray(
        draws_fn(
            np.array([target.n_params]),
            np.array([target.n_tokens]),
            np.array([target.weight_bits]),
            np.array([target.activation_bits]),
            np.array([target.kv_bits]),
            f(target.post_train_bits),
        ),
        dtype=np.float64,
    ).reshape(-1)
    y_c = np.asarray(
        draws_fn(cands.n_params, cands.n_tokens, cands.weight_bits, cands.activation_bits, cands.kv_bits, None),
        dtype=np.float64,
    ).reshape(y_t.shape[0], -1)
    good_draws = np.isfinite(y_t)
    if good_draws.sum() < 3:
        raise SuggestionError("the fit has fewer than 3 usable bootstrap draws at the target")
    y_t, y_c = y_t[good_draws], y_c[good_draws]
    in_domain = np.all(np.isfinite(y_c), axis=0)
    if not in_domain.any():
        raise SuggestionError("no affordable candidate run lies inside the law's domain")
    cands, y_c = cands.take(in_domain), y_c[:, in_domain]

    joint = np.concatenate([y_t[:, None], y_c], axis=1)
    centred = joint - joint.mean(axis=0)
    centre_c = np.median(y_c, axis=0)
    noise_var = (noise_rel * centre_c) ** 2
    var_t = float(np.var(y_t, ddof=1))

    best: tuple[list[int], list[float], str] | None = None
    for per_flop, name in ((True, "per_flop"), (False, "absolute")):
        chosen, gains = _greedy(centred, noise_var, cands.cost_flops, experiment_flops, max_suggestions, per_flop)
        if best is None or sum(gains) > sum(best[1]) * (1 + 1e-12):
            best = (chosen, gains, name)
    assert best is not None
    chosen, gains, strategy = best

    t_lo, t_med, t_hi = (float(v) for v in np.percentile(y_t, [2.5, 50.0, 97.5]))

    def shrink(remaining: float) -> float:
        return float(np.sqrt(max(remaining, 0.0) / var_t)) if var_t > 0 else 1.0

    out: list[Suggestion] = []
    remaining = var_t
    for j, g in zip(chosen, gains, strict=True):
        remaining -= g
        lo, hi = (float(v) for v in np.percentile(y_c[:, j], [2.5, 97.5]))
        out.append(
            Suggestion(
                n_params=int(cands.n_params[j]),
                n_tokens=int(cands.n_tokens[j]),
                weight_bits=float(cands.weight_bits[j]),
                activation_bits=float(cands.activation_bits[j]),
                kv_bits=float(cands.kv_bits[j]),
                cost_flops=float(cands.cost_flops[j]),
                predicted_loss=float(centre_c[j]),
                predicted_loss_interval=(lo, hi),
                variance_reduction=g,
                target_interval_width_after=(t_hi - t_lo) * shrink(remaining),
            )
        )
    s = shrink(remaining)
    return SuggestionResult(
        suggestions=tuple(out),
        target_loss=t_med,
        target_interval_before=(t_lo, t_hi),
        target_interval_after=(t_med - (t_med - t_lo) * s, t_med + (t_hi - t_med) * s),
        total_cost_flops=float(sum(cands.cost_flops[j] for j in chosen)),
        noise_rel=noise_rel,
        n_draws=int(y_t.shape[0]),
        n_candidates=len(cands),
        strategy=strategy,
    )


__all__ = [
    "Candidates",
    "Suggestion",
    "SuggestionError",
    "SuggestionResult",
    "Target",
    "candidate_grid",
    "suggest_runs",
]
