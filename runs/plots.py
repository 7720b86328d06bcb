"""Server-rendered SVG of a run's loss curves: pure matplotlib (Agg backend) on plain lists, no Django.

Non-finite values (a diverged step logs NaN or Infinity) cannot be drawn; they are left out and counted in a note
under the title, so a curve that stops is not mistaken for one that ended.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on a server; set before anything imports pyplot

from matplotlib.figure import Figure

STYLE = {
    "svg.fonttype": "none",  # text as <text>: smaller and searchable
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
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
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": salt}):
        fig = Figure(figsize=FIGSIZE)
        ax = fig.add_subplot()
        for key, points in sorted(drawable.items()):
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, linewidth=1.2, label=key, marker="." if len(points) < 30 else None)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats)")
        ax.set_title("Loss curves")
        if dropped:
            ax.text(0.0, 1.01, f"{dropped} NaN/Infinity value(s) not drawn", transform=ax.transAxes, fontsize=7)
        ax.legend(loc="upper right")
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]
