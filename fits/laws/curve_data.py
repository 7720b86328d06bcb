"""Real training curves shipped with the project (fits/data/*/README.md: provenance, licences, how they were
trimmed): Luo et al.'s MultiPower curves, OLMo 2's ladder curves, and Gemstones' un-cooled checkpoints."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fits.laws.cooldowns import Checkpoint
from fits.laws.observations import FloatArray, Observations
from fits.laws.schedules import Schedule, ScheduleSpec, build_schedule

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MULTIPOWER_DIR = DATA_DIR / "multipower_curves"
OLMO_CURVES_DIR = DATA_DIR / "olmo_ladder_curves"
GEMSTONES_HOT_CSV = DATA_DIR / "gemstones_hot" / "runs.csv"
GEMSTONES_COOLED_CSV = DATA_DIR / "gemstones" / "runs.csv"


@dataclass(frozen=True)
class LoggedCurve:
    """One run's logged history and its planned schedule, as a data set describes them.

    ``trunk`` names the run this one branched from (its losses before the branch are that run's), or "" for an
    independent run; ``group`` is the model size the run belongs to.
    """

    name: str
    group: str
    n_params: float
    steps: FloatArray
    lr: FloatArray
    loss: FloatArray
    plan: ScheduleSpec
    trunk: str = ""

    @property
    def schedule(self) -> Schedule:
        return build_schedule(self.plan)

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def final_step(self) -> int:
        return int(self.steps[-1])


def _read(path: Path) -> dict[str, FloatArray]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}


# ---------------------------------------------------------------------------------------------------------------
# MultiPower curves (Luo et al. 2025, arXiv:2503.12811): 25M/100M/400M x 9 schedules, one shared warmup and peak.

MULTIPOWER_SIZES = {"25M": 25e6, "100M": 100e6, "400M": 400e6}
MULTIPOWER_PEAK = 3e-4
MULTIPOWER_WARMUP = 2160
MULTIPOWER_FINAL = 3e-5
MULTIPOWER_SCHEDULES = (
    "constant_24000",
    "constant_72000",
    "cosine_24000",
    "cosine_72000",
    "wsd_20000_24000",
    "wsdld_20000_24000",
    "wsdcon_3",
    "wsdcon_9",
    "wsdcon_18",
)
# Published MPL parameters (the repository's README, "Best Parameters"), fitted on cosine_24000, constant_24000 and
# wsdcon_9 of each size, in the repository's convention: raw learning rates, warmup included in S1 and in the
# loss-drop sum (fits.laws.curves.multipower_loss with lr_scale=1 is that convention).
MULTIPOWER_PUBLISHED = {
    "25M": {"L0": 3.040, "A": 0.525, "alpha": 0.508, "B": 363.788, "C": 2.066, "beta": 0.583, "gamma": 0.641},
    "100M": {"L0": 2.651, "A": 0.601, "alpha": 0.453, "B": 437.946, "C": 2.132, "beta": 0.598, "gamma": 0.655},
    "400M": {"L0": 2.375, "A": 0.654, "alpha": 0.429, "B": 523.425, "C": 2.025, "beta": 0.594, "gamma": 0.635},
}
MULTIPOWER_TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")


def multipower_plan(schedule: str) -> ScheduleSpec:
    """The description of one MultiPower schedule (linear warmup 0 -> 3e-4 over 2160 steps, then as named)."""
    peak, warm = MULTIPOWER_PEAK, MULTIPOWER_WARMUP
    if schedule.startswith("constant_"):
        return ScheduleSpec(int(schedule.split("_")[1]), peak, warm, decay="constant")
    if schedule.startswith("cosine_"):
        return ScheduleSpec(int(schedule.split("_")[1]), peak, warm, decay="cosine", final_lr=MULTIPOWER_FINAL)
    if schedule.startswith(("wsd_", "wsdld_")):
        kind, start, end = schedule.split("_")
        decay = "exponential" if kind == "wsd" else "linear"
        return ScheduleSpec(int(end), peak, warm, decay=decay, decay_start=int(start), final_lr=MULTIPOWER_FINAL)
    if schedule.startswith("wsdcon_"):
        level = int(schedule.split("_")[1]) * 1e-5
        return ScheduleSpec(16000, peak, warm, decay="step", decay_start=8000, final_lr=level)
    raise ValueError(f"unknown MultiPower schedule {schedule!r}")


def multipower_trunk(size: str, schedule: str) -> str:
    """The constant-LR run a MultiPower branch shares its stable phase with (data README, "Runs share ...")."""
    if not schedule.startswith("wsd"):
        return ""
    return "constant_72000" if size == "25M" else "constant_24000"


def load_multipower_curves(size: str, path: Path = MULTIPOWER_DIR) -> dict[str, LoggedCurve]:
    """The nine MultiPower curves of one model size ("25M", "100M", "400M"), by schedule name."""
    if size not in MULTIPOWER_SIZES:
        raise ValueError(f"size must be one of {', '.join(MULTIPOWER_SIZES)}")
    out: dict[str, LoggedCurve] = {}
    for name in MULTIPOWER_SCHEDULES:
        cols = _read(path / size / f"{name}.csv")
        out[name] = LoggedCurve(
            name=name,
            group=size,
            n_params=MULTIPOWER_SIZES[size],
            steps=cols["step"],
            lr=cols["lr"],
            loss=cols["loss"],
            plan=multipower_plan(name),
            trunk=multipower_trunk(size, name),
        )
    return out


# ---------------------------------------------------------------------------------------------------------------
# OLMo 2's ladder curves (Bhagia et al. 2024, arXiv:2412.04403): 190M-3.2B at 0.5-10x Chinchilla, C4 validation loss.

OLMO_SIZES = {
    "190M": (190354176, 524288),
    "370M": (371262464, 786432),
    "760M": (758220288, 1310720),
    "1B": (1279395840, 1572864),
    "3B": (3169537280, 3145728),
}
OLMO_MULTIPLES = ("0.5xC", "1xC", "1xC-rerun", "2xC", "5xC", "10xC")


def olmo_plan(size: str, total_steps: int) -> ScheduleSpec:
    """OLMo's ladder recipe: peak 0.0047 (N/108e6)^(-1/3) / 4, linear warmup over round(N / batch tokens) steps,
    cosine to 0.1 x peak at the last step (data README, "Training recipe")."""
    n, batch = OLMO_SIZES[size]
    peak = 0.0047 * (n / 108e6) ** (-1.0 / 3.0) / 4.0
    return ScheduleSpec(
        total_steps=int(total_steps),
        peak_lr=peak,
        warmup_steps=round(n / batch),
        decay="cosine",
        final_lr=0.1 * peak,
        tokens_per_step=float(batch),
    )


def load_olmo_ladder_curves(path: Path = OLMO_CURVES_DIR) -> dict[str, LoggedCurve]:
    """The 30 ladder curves by run name ("1B-5xC"); the loss is C4-en validation, the plan ends at the last step.

    The 1xC run and its rerun are two runs of one configuration (trunk names the pair: a rerun is a replicate).
    """
    out: dict[str, LoggedCurve] = {}
    for size in OLMO_SIZES:
        for multiple in OLMO_MULTIPLES:
            name = f"{size}-{multiple}"
            cols = _read(path / f"{name}.csv")
            out[name] = LoggedCurve(
                name=name,
                group=size,
                n_params=float(OLMO_SIZES[size][0]),
                steps=cols["step"],
                lr=cols["lr"],
                loss=cols["val_loss"],
                plan=olmo_plan(size, int(cols["step"][-1])),
                trunk=f"{size}-1xC" if multiple == "1xC-rerun" else "",
            )
    return out


# ---------------------------------------------------------------------------------------------------------------
# Gemstones' un-cooled checkpoints (McLeish et al. 2025, arXiv:2502.06857).


def load_gemstones_hot(path: Path = GEMSTONES_HOT_CSV, *, embeddings: bool = True) -> Observations:
    """Gemstones' constant-LR checkpoints at 10B, 20B, ... 100B tokens (22 shapes, 220 points), whose learning
    rate had not been decayed: the points a cooldown branches from. N as in fits.laws.load_gemstones."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    column = "n_params" if embeddings else "n_params_no_embed"
    return Observations.build(
        n_params=[float(r[column]) for r in rows],
        n_tokens=[float(r["n_tokens"]) for r in rows],
        final_loss=[float(r["final_loss"]) for r in rows],
    )


def load_gemstones_checkpoints(
    hot: Path = GEMSTONES_HOT_CSV, cooled: Path = GEMSTONES_COOLED_CSV, *, embeddings: bool = True
) -> list[Checkpoint]:
    """Gemstones' un-cooled checkpoints (220) and cooldown ends (199) as Checkpoints, grouped by run name (the
    main run a cooldown branched from). N counts the tied embedding unless `embeddings` is false."""
    column = "n_params" if embeddings else "n_params_no_embed"
    out: list[Checkpoint] = []
    for path, is_cooled in ((hot, False), (cooled, True)):
        with path.open(newline="") as fh:
            for r in csv.DictReader(fh):
                out.append(
                    Checkpoint(
                        run=r["run_name"],
                        n_params=float(r[column]),
                        n_tokens=float(r["n_tokens"]),
                        loss=float(r["final_loss"]),
                        cooled=is_cooled,
                    )
                )
    return out


def gemstones_hot_shapes(path: Path = GEMSTONES_HOT_CSV) -> list[str]:
    """The run name of each row of load_gemstones_hot, in order."""
    with path.open(newline="") as fh:
        return [r["run_name"] for r in csv.DictReader(fh)]


__all__ = [
    "GEMSTONES_HOT_CSV",
    "MULTIPOWER_PUBLISHED",
    "MULTIPOWER_SCHEDULES",
    "MULTIPOWER_SIZES",
    "MULTIPOWER_TRAIN",
    "OLMO_MULTIPLES",
    "OLMO_SIZES",
    "LoggedCurve",
    "gemstones_hot_shapes",
    "load_gemstones_checkpoints",
    "load_gemstones_hot",
    "load_multipower_curves",
    "load_olmo_ladder_curves",
    "multipower_plan",
    "olmo_plan",
]
