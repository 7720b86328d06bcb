"""Server-rendered SVG of a run's loss curves: pure matplotlib (Agg backend) on plain lists, no Django.

Non-finite values (a diverged step logs NaN or Infinity) cannot be drawn; they are left out and counted in a note
under the title, so a curve that stops is not mistaken for one that ended.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from plotkit import add_note, axes_of, new_figure, render_svg

FIGSIZE = (6.4, 3.6)


def loss_curves_svg(curves: Mapping[str, Sequence[tuple[int, float]]], *, salt: str = "loss") -> str:
    """One line per metric key, loss against step, as SVG text without the XML prolog ("" when nothing to draw)."""
    drawable = {
        key: [(step, value) for step, value in points if math.isfinite(value)] for key, points in curves.items()
    }
    dropped = sum(len(points) for points in curves.values()) - sum(len(points) for points in drawable.values())
    drawable = {key: points for key, points in drawable.items() if points}
    if not drawable:
        return ""
    fig = new_figure(FIGSIZE)
    ax = axes_of(fig)[0]
    for key, points in sorted(drawable.items()):
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, linewidth=1.2, label=key, marker="." if len(points) < 30 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.set_title("Loss curves")
    if dropped:
        add_note(ax, f"{dropped} NaN/Infinity value(s) not drawn")
    ax.legend(loc="upper right")
    return render_svg(fig, salt=salt)
