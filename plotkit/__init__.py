"""The SVG plot kit every app's plots are built from: one style, figures, notes and rendering (pure matplotlib).

Pure: matplotlib on the Agg backend, no Django. Text stays text (svg.fonttype "none"), so the plots are small,
searchable and testable; each plot salts its element ids, so several can share one HTML page.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")  # no display on a server; set before anything imports pyplot

from matplotlib.axes import Axes
from matplotlib.figure import Figure

FIGSIZE = (6.4, 4.2)
STYLE = {
    "svg.fonttype": "none",  # text as <text>, not glyph outlines: smaller and searchable
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
NOTE_COLOUR = "#666666"

# matplotlib's rcParams are global to the process, and rc_context restores all of them on exit: two threads in
# rc_context at once (a web process serves requests on several threads) would undo each other's settings, the
# SVG id salt among them. So the style is the process's own (set once, here), drawing between two style()
# blocks reads it too, and style() blocks, render_svg's salt among them, run one thread at a time.
matplotlib.rcParams.update(STYLE)
_RC_LOCK = threading.RLock()


@contextmanager
def style(**extra: object) -> Iterator[None]:
    """matplotlib.rc_context with STYLE (and `extra`), held by one thread at a time."""
    with _RC_LOCK, matplotlib.rc_context({**STYLE, **extra}):
        yield


def render_svg(fig: Figure, *, salt: str) -> str:
    """The figure as SVG text without the XML prolog; element ids are salted per plot and deterministic."""
    buffer = io.StringIO()
    with style(**{"svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def new_figure(size: tuple[float, float] = FIGSIZE) -> Figure:
    with style():
        return Figure(figsize=size, layout="constrained")


def axes_of(fig: Figure, ncols: int = 1) -> list[Axes]:
    with style():
        axes = fig.subplots(1, ncols, squeeze=False)
    return list(axes[0])


def add_note(ax: Axes, text: str) -> None:
    """A small grey note under the axes title (sampling, what is held fixed, what was left out)."""
    ax.text(0.0, 1.01, text, transform=ax.transAxes, fontsize=7, color=NOTE_COLOUR, va="bottom", ha="left")


def message_svg(title: str, message: str, *, salt: str = "message") -> str:
    """A plot-sized SVG that says why there is no plot, so the page keeps its layout."""
    fig = new_figure((6.4, 1.4))
    ax = axes_of(fig)[0]
    ax.set_axis_off()
    ax.set_title(title, loc="left")
    ax.text(0.5, 0.45, message, transform=ax.transAxes, ha="center", va="center", color=NOTE_COLOUR, wrap=True)
    return render_svg(fig, salt=salt)
