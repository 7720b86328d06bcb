"""Cooled points (Hagele et al. 2024, arXiv:2405.18392): the rule that only the end of a cooldown (or of a run
whose learning rate decayed) is an (N, D, loss) point for a Chinchilla-style fit, and how far un-cooled
checkpoints sit above it (docs/curves.md, "Laws from cooldowns").

A constant-learning-rate run with short cooldowns branched off its checkpoints gives one fit point per cooldown;
the checkpoints themselves carry the loss the decay has not yet removed, so fitting them biases the law upward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fits.laws.observations import FloatArray, Observations


@dataclass(frozen=True)
class Checkpoint:
    """One evaluated point of a run: N, D (tokens seen), loss, and whether it ends a cooldown (``cooled``; the
    end of a run whose learning rate decayed counts as cooled too)."""

    run: str
    n_params: float
    n_tokens: float
    loss: float
    cooled: bool


def cooled_points(checkpoints: Sequence[Checkpoint]) -> Observations:
    """The fit points of a family: its cooled checkpoints only. Raises ValueError when none is cooled."""
    cooled = [c for c in checkpoints if c.cooled]
    if not cooled:
        raise ValueError("no cooled checkpoint: un-cooled checkpoints never enter a fit")
    return Observations.build(
        n_params=[c.n_params for c in cooled],
        n_tokens=[c.n_tokens for c in cooled],
        final_loss=[c.loss for c in cooled],
    )


def cooldown_gaps(checkpoints: Sequence[Checkpoint]) -> FloatArray:
    """Un-cooled minus cooled loss at the same (N, D), one per cooled checkpoint whose run has un-cooled
    checkpoints on both sides of its D: the run's un-cooled loss is interpolated linearly in log D.

    Checkpoints belong together by ``run`` (a cooldown branch names the run it branched from).
    """
    out: list[float] = []
    runs = sorted({c.run for c in checkpoints})
    for run in runs:
        hot = sorted((c for c in checkpoints if c.run == run and not c.cooled), key=lambda c: c.n_tokens)
        if len(hot) < 2:
            continue
        log_d = np.log([c.n_tokens for c in hot])
        loss = np.array([c.loss for c in hot])
        for c in checkpoints:
            if c.run == run and c.cooled and log_d[0] <= np.log(c.n_tokens) <= log_d[-1]:
                out.append(float(np.interp(np.log(c.n_tokens), log_d, loss)) - c.loss)
    return np.array(out, dtype=np.float64)


__all__ = ["Checkpoint", "cooldown_gaps", "cooled_points"]
