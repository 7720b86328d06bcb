"""The unified precision law of Kumar et al. 2024 (arXiv:2411.04330, Eq. 11): N_eff over weight, activation and
KV-cache bits, plus the post-training-quantization term (fits.laws.equations has the formulas).

Fitted by the effective-parameters engine (fits.laws.fitting). Its rules: a width outside the fitted law's
domain is refused; a dimension the family never varied (its factor held at 1) is held at the family's width;
under PTQ, activation and KV widths must lie above the deployment width, since Kumar's robustness product
vanishes at equal widths (an artifact of the functional form the planner does not use).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from fits.laws.base import BIT_FIELDS, DIM_OF_FIELD, BitRequest, BitsPanel, ConstraintRefused, RunConfig
from fits.laws.equations import DIMS, effective_params_ratio, in_domain, precision_loss
from fits.laws.fitting import EffectiveParamsLaw
from fits.laws.observations import FloatArray
from runs.density import DensityConstants


class PrecisionLaw(EffectiveParamsLaw):
    """Kumar et al.'s unified law: N_eff over w, a, kv, plus the PTQ term."""

    name = "precision"
    title = "Precision (Kumar et al.)"
    bit_dims = DIMS
    models_ptq = True
    range_fields = (*BIT_FIELDS, "post_train_bits")
    density_reference_rank: ClassVar[int | None] = 0
    keep_starts = 4

    def predict(self, params: Mapping[str, Any], config: RunConfig) -> FloatArray:
        return precision_loss(
            params,
            n_params=config.n_params,
            n_tokens=config.n_tokens,
            weight_bits=config.weight_bits,
            activation_bits=config.activation_bits,
            kv_bits=config.kv_bits,
            post_train_bits=config.post_train_bits,
        )

    def predict_for_plan(self, params: Mapping[str, Any], config: RunConfig) -> FloatArray:
        out = self.predict(params, config)
        post = config.post_train_bits
        if post is None:
            return out
        above = (np.asarray(config.activation_bits) > post) & (np.asarray(config.kv_bits) > post)
        return np.asarray(np.where(above, out, np.nan), dtype=np.float64)

    def plan_bits(self, request: BitRequest, params: Mapping[str, Any], data_range: Mapping[str, float]) -> BitRequest:
        post = request.post_train_bits
        if post is not None and "C_T" not in params:
            raise ConstraintRefused("post_train_bits", "This fit has no PTQ term (the family has no evaluations).")
        held: dict[str, Any] = {}
        for key in BIT_FIELDS:
            value = getattr(request, key)
            if value is not None and not bool(in_domain(params, **{key: float(value)})):
                raise ConstraintRefused(key, f"{value:g} bits lies outside the fitted law's domain.")
            never_varied = float(params.get(f"gamma_{DIM_OF_FIELD[key]}", 0.0)) <= 0.0
            if never_varied and value is None and not request.tie_bits:
                held[key] = data_range.get(f"{key}_max", 16.0)
        planned = replace(request, **held)
        w = planned.weight_bits
        if post is not None and w is not None and w > post:
            for key in ("activation_bits", "kv_bits"):
                value = getattr(planned, key)
                if value is not None and value <= post:
                    raise ConstraintRefused(
                        key,
                        "Must be above post_train_bits when the weights are quantized after training "
                        "(Kumar's PTQ term vanishes at equal widths, an artifact the planner does not use).",
                    )
        return planned

    def suggestion_bit_configs(
        self,
        recommended: tuple[float, float, float],
        params: Mapping[str, Any],
        request: BitRequest,
        default_widths: tuple[float, ...],
    ) -> list[tuple[float, float, float]]:
        """The plan's widths, 16 bits and tied widths; a width the request fixes or the family never varied (its
        gamma held at 0) stays at the plan's value."""
        tied = request.bits_choices or default_widths
        out = {recommended, (16.0, 16.0, 16.0), *((float(b), float(b), float(b)) for b in tied)}
        fixed = [
            i
            for i, key in enumerate(BIT_FIELDS)
            if getattr(request, key) is not None or float(params.get(f"gamma_{DIM_OF_FIELD[key]}", 0.0)) <= 0.0
        ]
        configs = set()
        for widths in out:
            values = list(widths)
            for i in fixed:
                values[i] = recommended[i]
            configs.add((values[0], values[1], values[2]))
        return sorted(configs)

    def density_constants(self, params: Mapping[str, Any]) -> DensityConstants:
        """N enters as N_eff: the 16-bit reference discounts it by N_eff/N at 16/16/16 bits (Kumar's offsets)."""
        return replace(
            super().density_constants(params), ratio16=float(effective_params_ratio(params, 16.0, 16.0, 16.0))
        )

    def bits_panel(self, varying: list[str]) -> BitsPanel:
        return BitsPanel(dims=tuple(varying))

    def effective_params_message(self, params: Mapping[str, Any]) -> str | None:
        return None

    def effective_params_ratio(self, params: Mapping[str, Any], config: RunConfig) -> FloatArray:
        return effective_params_ratio(params, config.weight_bits, config.activation_bits, config.kv_bits)
