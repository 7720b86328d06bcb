"""What a scaling law is to the rest of Bitscale: a run configuration in, a loss out, and the law's own rules.

`RunConfig` is a training configuration (and its deployment width) as every law reads it. `ScalingLaw` is the
interface each law module implements (fits.laws.chinchilla, .precision, .floating_point) and the registry
(fits.laws.registry) lists: code outside fits.laws asks the law (what it reads, which runs it applies to, how it
checks a plan's bit constraints, which formats it recommends, how it draws its special panels) and never
compares a law's name. docs/laws-engine.md, "Adding a law", walks through a new one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from fits.laws.observations import FloatArray, Observations
from runs.density import DensityConstants

BoolArray = npt.NDArray[np.bool_]

BIT_FIELDS = ("weight_bits", "activation_bits", "kv_bits")
DIM_OF_FIELD = {"weight_bits": "w", "activation_bits": "a", "kv_bits": "kv"}
FULL_PRECISION = 16.0


@dataclass(frozen=True)
class RunConfig:
    """A training configuration: N, D, training bits, and optionally a PTQ width and a floating-point format.

    Every field is a number or an array; arrays broadcast against each other (and against parameter arrays, one
    value per bootstrap draw). Bits default to 16 (full precision). `post_train_bits` None means no PTQ, and a NaN
    element means no PTQ for that element; `exponent_bits`/`mantissa_bits` None means "no format given" (a law
    that reads formats then takes its own best layout for the width).
    """

    n_params: Any
    n_tokens: Any
    weight_bits: Any = FULL_PRECISION
    activation_bits: Any = FULL_PRECISION
    kv_bits: Any = FULL_PRECISION
    post_train_bits: Any = None
    exponent_bits: Any = None
    mantissa_bits: Any = None

    @classmethod
    def of_runs(cls, data: Observations, index: Any = None) -> RunConfig:
        """The training configurations of the runs of `data` (all, or those selected by `index`), with their
        floating-point formats (NaN where a run reported none)."""

        def pick(values: FloatArray) -> FloatArray:
            return values if index is None else values[index]

        return cls(
            n_params=pick(data.n_params),
            n_tokens=pick(data.n_tokens),
            weight_bits=pick(data.weight_bits),
            activation_bits=pick(data.activation_bits),
            kv_bits=pick(data.kv_bits),
            exponent_bits=pick(data.exponent_bits),
            mantissa_bits=pick(data.mantissa_bits),
        )

    @classmethod
    def of_evaluations(cls, data: Observations, mask: npt.NDArray[np.bool_] | None = None) -> RunConfig:
        """The configurations of the PTQ evaluations of `data` (all, or those where `mask`): each evaluated run's
        training configuration with the evaluation's post-train width."""
        keep = np.ones(data.n_evals, dtype=bool) if mask is None else mask
        runs = data.eval_run[keep]
        return replace(cls.of_runs(data, runs), post_train_bits=data.eval_post_bits[keep])

    def replace(self, **changes: Any) -> RunConfig:
        return replace(self, **changes)

    def values(self) -> dict[str, Any]:
        """The fields that are set (not None), by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def shape(self) -> tuple[int, ...]:
        """The broadcast shape of every field that is set."""
        return tuple(np.broadcast_shapes(*(np.shape(v) for v in self.values().values())))

    def bits(self, dim: str) -> Any:
        """Training bits of one precision dimension: ``w``, ``a`` or ``kv``."""
        return {"w": self.weight_bits, "a": self.activation_bits, "kv": self.kv_bits}[dim]

    @property
    def has_ptq(self) -> bool:
        """Whether any element asks for a post-training quantization."""
        post = self.post_train_bits
        return post is not None and bool(np.any(np.isfinite(np.asarray(post, dtype=np.float64))))


@dataclass(frozen=True)
class PointFit:
    """The point estimate plus everything a bootstrap chunk or assemble_fit needs; safe to pickle."""

    law: str
    objective: str
    seed: int
    tie_exponents: bool
    data: Observations  # canonical order, in-domain runs only
    base_spec: Any  # the law's own description of what is fitted (BaseSpec, or FpSpec for the fp law)
    theta_base: FloatArray
    ptq: bool
    theta_ptq: FloatArray
    eval_mask: BoolArray  # evaluations of `data` that enter the PTQ stage
    groups: npt.NDArray[np.intp]  # configuration index of each run, for the cluster bootstrap
    params: dict[str, float]
    fixed: dict[str, float]
    draw_names: list[str]
    metrics: dict[str, float]
    backtest: dict[str, Any]  # numbers, plus the scheme's name and the held-out sizes (fits.laws.backtest)
    warnings: list[str]
    data_range: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    # Runs of the caller's Observations left out by the screening rule (fits.laws.screening), with why.
    screened: list[dict[str, Any]] = field(default_factory=list)


class ConstraintRefused(ValueError):  # noqa: N818 -- a refusal, answered as a 400 naming `field`
    """A plan's constraint this law cannot serve; `field` is the constraint's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class BitRequest:
    """The precision part of a plan request: fixed widths, a grid of widths, a deployment width, tied widths.

    None means "not constrained". A law turns a request into the one its search runs (ScalingLaw.plan_bits):
    the widths it holds, the widths it refuses, whether they must be tied.
    """

    weight_bits: float | None = None
    activation_bits: float | None = None
    kv_bits: float | None = None
    bits_choices: tuple[float, ...] | None = None
    post_train_bits: float | None = None
    tie_bits: bool = False

    def given(self) -> list[str]:
        """The names of the constraints the request sets."""
        out = [f.name for f in fields(self) if f.name != "tie_bits" and getattr(self, f.name) is not None]
        return out + (["tie_bits"] if self.tie_bits else [])


@dataclass(frozen=True)
class BitsPanel:
    """How a law draws its loss-against-training-bits panel: which dimensions, and what the notes say.

    `tie_activations`: the law's runs carry one format for weights and activations, so the panel holds
    activation bits equal to weight bits rather than at the reference width.
    """

    dims: tuple[str, ...]
    tie_activations: bool = False
    lines_note: str = "fitted law"


class ScalingLaw(ABC):
    """A fittable law and the rules that come with it. One instance per law, listed in fits.laws.registry."""

    name: ClassVar[str]
    title: ClassVar[str]  # the label people read: "Precision (Kumar et al.)"
    # The precision dimensions the law models ("w", "a", "kv"); () for a law that ignores precision.
    bit_dims: ClassVar[tuple[str, ...]] = ()
    # Whether the law has a post-training quantization term (a fit has one only when it had evaluations).
    models_ptq: ClassVar[bool] = False
    # The configuration fields a plan's or prediction's extrapolation check compares with the fitted data's range.
    range_fields: ClassVar[tuple[str, ...]] = ()
    # Order in which a family's laws serve as its 16-bit density reference (lower first); None: never.
    density_reference_rank: ClassVar[int | None] = None

    # -- fitting ----------------------------------------------------------------------------------------------

    def applies_to(self, data: Observations) -> bool:
        """Whether the law has anything to fit in `data`."""
        return data.n_runs > 0

    @abstractmethod
    def fit_point(self, data: Observations, *, objective: str, seed: int, tie_exponents: bool) -> PointFit:
        """The point fit, without a backtest (fits.laws.backtest runs it on the whole fit procedure)."""

    @abstractmethod
    def refit(self, point: PointFit, run_weights: FloatArray, eval_weights: FloatArray) -> FloatArray:
        """One bootstrap draw: warm-started refit with case weights; natural-scale parameters in draw order."""

    @abstractmethod
    def predict(self, params: Mapping[str, Any], config: RunConfig) -> FloatArray:
        """Loss of `config` (NaN outside the law's domain), broadcasting over the config and the parameters."""

    # -- what a fit can answer --------------------------------------------------------------------------------

    def ptq_refusal(self, params: Mapping[str, Any]) -> str | None:
        """Why a fit with `params` cannot predict a loss after PTQ, or None when it can."""
        if not self.models_ptq:
            return f"The {self.name} law has no PTQ term."
        if "C_T" not in params:
            return "The family has no evaluations."
        return None

    def predict_for_plan(self, params: Mapping[str, Any], config: RunConfig) -> FloatArray:
        """The loss the planner searches: predict(), NaN where the law's form is not to be trusted for a plan."""
        return self.predict(params, config)

    # -- planning ---------------------------------------------------------------------------------------------

    def plan_bits(self, request: BitRequest, params: Mapping[str, Any], data_range: Mapping[str, float]) -> BitRequest:
        """The bit constraints the plan search runs for `request` on a fit with `params`; ConstraintRefused
        naming the field for a constraint the law cannot serve. By default a law that ignores precision."""
        given = request.given()
        if given:
            raise ConstraintRefused(
                given[0], f"The {self.name} law does not model precision; plan bits with a law that does."
            )
        return BitRequest(weight_bits=16.0, activation_bits=16.0, kv_bits=16.0, tie_bits=True)

    def deployment_format(self, params: Mapping[str, Any], weight_bits: float) -> dict[str, float]:
        """Extra fields that describe a recommended width (the fp law: its exponent and mantissa bits)."""
        return {}

    def suggestion_bit_configs(
        self,
        recommended: tuple[float, float, float],
        params: Mapping[str, Any],
        request: BitRequest,
        default_widths: tuple[float, ...],
    ) -> list[tuple[float, float, float]]:
        """The (weight, activation, KV) widths a next-run suggestion may try, besides the plan's own."""
        return [(16.0, 16.0, 16.0)]

    # -- capacity density (runs.density) -----------------------------------------------------------------------

    def density_constants(self, params: Mapping[str, Any]) -> DensityConstants:
        """The law's 16-bit reference in the form every density uses (runs.density.DensityConstants)."""
        beta = float(params["beta"]) if "beta" in params else float(params["alpha"])
        return DensityConstants(
            E=float(params["E"]), A=float(params["A"]), B=float(params["B"]), alpha=float(params["alpha"]), beta=beta
        )

    # -- plots (fits.plots) -----------------------------------------------------------------------------------

    def bits_panel(self, varying: list[str]) -> BitsPanel | str:
        """The loss-against-bits panel for the dimensions that vary, or a message saying why there is none."""
        return f"The {self.name} law ignores precision; fit a law that models it."

    def effective_params_message(self, params: Mapping[str, Any]) -> str | None:
        """Why the law has no N_eff/N panel, or None when it draws one (effective_params_ratio)."""
        return f"The {self.name} law has no precision term."

    def effective_params_ratio(self, params: Mapping[str, Any], config: RunConfig) -> FloatArray:
        """N_eff/N of `config`'s training bits (only for laws whose effective_params_message is None)."""
        raise NotImplementedError(f"the {self.name} law has no effective parameter count")

    def has_ptq_term(self, params: Mapping[str, Any]) -> bool:
        return self.ptq_refusal(params) is None
