"""Bitscale's scaling-law engine: pure NumPy/SciPy, no Django (docs/laws-engine.md, docs/laws.md).

Each law is one module implementing fits.laws.base.ScalingLaw, listed in fits.laws.registry: ``chinchilla``
(Hoffmann et al. 2022, arXiv:2203.15556), ``precision`` (Kumar et al. 2024, arXiv:2411.04330) and ``fp`` (Sun et
al. 2025, arXiv:2501.02423). A training configuration is a RunConfig. Fits minimise summed Huber (delta = 1e-3)
or least squares on log-loss residuals.
"""

from fits.laws.base import BitRequest, BitsPanel, ConstraintRefused, PointFit, RunConfig, ScalingLaw
from fits.laws.datasets import (
    fp_synthetic,
    kumar_synthetic,
    load_chinchilla_epoch,
    load_gemstones,
    load_olmo_ladder,
)
from fits.laws.equations import DIMS, KUMAR_TABLE2, effective_params_ratio, in_domain
from fits.laws.fitting import HUBER_DELTA, OBJECTIVES, huber_sum
from fits.laws.floating_point import SUN_TABLE2, fp_layout, fp_loss, sun_params
from fits.laws.forecast import FamilyRun, Forecast, Verdict, compare_with_law, forecast_loss
from fits.laws.observations import FitFailed, Observations
from fits.laws.prediction import Prediction, predict_loss, predict_loss_draws, predict_with_interval
from fits.laws.registry import DEFAULT_LAW, LAWS, density_reference_laws, get_law, law_choices
from fits.laws.results import DEFAULT_BOOTSTRAP, FitResult, assemble_fit, bootstrap_chunk, fit_law, fit_point
from fits.laws.schedules import Schedule, ScheduleError, ScheduleSpec, build_schedule, schedule_from_log

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_LAW",
    "BitRequest",
    "BitsPanel",
    "ConstraintRefused",
    "RunConfig",
    "ScalingLaw",
    "density_reference_laws",
    "law_choices",
    "DIMS",
    "HUBER_DELTA",
    "KUMAR_TABLE2",
    "LAWS",
    "OBJECTIVES",
    "FitFailed",
    "FitResult",
    "Observations",
    "PointFit",
    "Prediction",
    "SUN_TABLE2",
    "assemble_fit",
    "bootstrap_chunk",
    "effective_params_ratio",
    "fit_law",
    "fit_point",
    "fp_layout",
    "fp_synthetic",
    "fp_loss",
    "get_law",
    "huber_sum",
    "in_domain",
    "kumar_synthetic",
    "load_chinchilla_epoch",
    "load_gemstones",
    "load_olmo_ladder",
    "predict_loss",
    "predict_loss_draws",
    "predict_with_interval",
    "sun_params",
]
# Whole training curves (docs/curves.md): schedules, forecasts of running runs and their verdict against a law.
__all__ += ["FamilyRun", "Forecast", "Schedule", "ScheduleError", "ScheduleSpec", "Verdict"]
__all__ += ["build_schedule", "compare_with_law", "forecast_loss", "schedule_from_log"]
