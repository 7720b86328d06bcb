"""SVG of a family's curve fit for the admin: each run's binned loss history and the fitted law along it (pure
matplotlib via plotkit, no Django)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fits.laws.curve_family import stored_curve_loss
from fits.laws.forecast import FamilyRun
from plotkit import add_note, axes_of, new_figure, render_svg

FIGSIZE = (7.2, 4.2)
MAX_RUNS_DRAWN = 12


def curve_fit_svg(runs: Sequence[FamilyRun], predict: Mapping[str, np.ndarray] | None, *, title: str, salt: str) -> str:
    """One colour per run: its binned history (dots) and, where `predict` has it, the fitted law at those steps
    (line). "" when there is nothing to draw."""
    drawn = [r for r in runs if r.curve().steps.shape[0]][:MAX_RUNS_DRAWN]
    if not drawn:
        return ""
    fig = new_figure(FIGSIZE)
    ax = axes_of(fig)[0]
    for index, run in enumerate(drawn):
        curve = run.curve()
        colour = f"C{index % 10}"
        ax.plot(curve.steps, curve.loss, ".", markersize=2.5, color=colour, label=f"run {run.run} ({run.group})")
        fitted = (predict or {}).get(run.run)
        if fitted is not None and fitted.shape == curve.steps.shape:
            ax.plot(curve.steps, fitted, "-", linewidth=1.0, color=colour)
    ax.set_xscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.set_title(title)
    if len(runs) > len(drawn):
        add_note(ax, f"{len(runs) - len(drawn)} more run(s) not drawn")
    ax.legend(loc="upper right")
    return render_svg(fig, salt=salt)


def fitted_losses(law: str, params: dict[str, Any], runs: Sequence[FamilyRun]) -> dict[str, np.ndarray]:
    """The stored fit's law at each run's binned steps, for the runs of a size the fit has."""
    out: dict[str, np.ndarray] = {}
    for run in runs:
        values = stored_curve_loss(law, params, run, run.curve().steps)
        if values is not None:
            out[run.run] = values
    return out
