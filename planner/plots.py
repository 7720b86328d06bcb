"""The plan page's iso-loss plot: matplotlib (Agg backend) on the fit's parameters, no Django.

It shares the fit plots' rendering (fits.plots): the same style, salted element ids and text kept as text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fits.laws import RunConfig, predict_loss
from planner.allocation import cost_factor, tokens_for_budget
from plotkit import add_note, axes_of, new_figure, render_svg, style


@dataclass(frozen=True)
class PlanPoint:
    """A marked configuration on the plan plot: N, the matmul precision max(P_w, P_a) and its loss."""

    label: str
    n_params: float
    bits: float
    loss: float | None = None


def plan_contour_svg(
    *,
    law: str,
    params: Mapping[str, float],
    budget_flops: float,
    optimum: PlanPoint,
    baseline: PlanPoint | None = None,
    cost_model: str = "linear_bits",
    hardware: str | None = None,
    bits_range: tuple[float, float] = (2.0, 16.0),
    extra_points: Sequence[PlanPoint] = (),
) -> str:
    """Iso-loss contours over (training bits, N) at a fixed budget, with the optimum and the 16-bit baseline.

    At each (P, N) the tokens are what the budget buys: D = C / (6 N cost_factor(P)); bits are tied
    (P_w = P_a = P_kv = P). The optimum is marked at its matmul precision, so an untied optimum can sit
    slightly off the tied surface.
    """
    title = f"Iso-loss at a budget of {budget_flops:.3g} FLOPs"
    centre = math.log10(max(optimum.n_params, 1.0))
    if baseline is not None:
        centre = 0.5 * (centre + math.log10(max(baseline.n_params, 1.0)))
    n_grid = np.logspace(centre - 1.5, centre + 1.5, 140)
    bits_grid = np.linspace(bits_range[0], bits_range[1], 120)
    nn, pp = np.meshgrid(n_grid, bits_grid, indexing="xy")
    factor = cost_factor(pp, pp, cost_model=cost_model, hardware=hardware)  # type: ignore[arg-type]
    tokens = tokens_for_budget(nn, budget_flops, factor)
    with np.errstate(all="ignore"):
        loss = predict_loss(
            law, params, RunConfig(n_params=nn, n_tokens=tokens, weight_bits=pp, activation_bits=pp, kv_bits=pp)
        )
    finite = np.isfinite(loss)
    fig = new_figure()
    ax = axes_of(fig)[0]
    with style():
        if finite.any():
            best = float(np.nanmin(loss))
            spread = float(np.nanpercentile(loss[finite], 90)) - best
            levels = best + spread * np.linspace(0, 1, 14) ** 2 + 1e-9
            filled = ax.contourf(bits_grid, n_grid, loss.T, levels=levels, cmap="viridis_r", extend="max")
            lines = ax.contour(bits_grid, n_grid, loss.T, levels=levels[1::3], colors="white", linewidths=0.6)
            ax.clabel(lines, fmt="%.3f", fontsize=6)
            bar = fig.colorbar(filled, ax=ax, pad=0.01, aspect=30)
            bar.set_label("predicted loss (nats)")
        else:
            ax.text(0.5, 0.5, "every configuration lies outside the law's domain", transform=ax.transAxes, ha="center")
        for point in extra_points:
            ax.scatter([point.bits], [point.n_params], marker="o", s=22, facecolors="none", edgecolors="white")
        if baseline is not None:
            label = baseline.label + (f" ({baseline.loss:.4f})" if baseline.loss is not None else "")
            ax.scatter(
                [baseline.bits],
                [baseline.n_params],
                marker="s",
                s=70,
                color="#ff7f0e",
                edgecolors="black",
                zorder=5,
                label=label,
                clip_on=False,
            )
        label = optimum.label + (f" ({optimum.loss:.4f})" if optimum.loss is not None else "")
        ax.scatter(
            [optimum.bits],
            [optimum.n_params],
            marker="*",
            s=180,
            color="#d62728",
            edgecolors="black",
            zorder=6,
            label=label,
            clip_on=False,
        )
        ax.set_yscale("log")
        ax.set_xlim(bits_grid[0], bits_grid[-1] + 0.3)
        ax.set_xlabel("training bits P (P_w = P_a = P_kv)")
        ax.set_ylabel("N, non-embedding parameters")
        ax.set_title(title, loc="left", pad=14)
        add_note(ax, f"tokens fill the budget at each point: D = C / (6 N cost(P)); cost model {cost_model}")
        ax.legend(loc="upper left", framealpha=0.85, frameon=True)
    return render_svg(fig, salt="plan")
