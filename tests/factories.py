"""factory_boy factories for the test suite: model rows and API payloads."""

from typing import Any

import factory
import numpy as np

from runs.models import Evaluation, Run, Team


class TeamFactory(factory.django.DjangoModelFactory[Team]):
    class Meta:
        model = Team
        django_get_or_create = ["slug"]

    slug = factory.Sequence(lambda i: f"team-{i}")
    name = factory.LazyAttribute(lambda team: team.slug.title())


class RunFactory(factory.django.DjangoModelFactory[Run]):
    class Meta:
        model = Run

    team = factory.SubFactory(TeamFactory)
    family = "sweep"
    n_params = factory.Sequence(lambda i: 10_000_000 * (1 + i % 20))
    n_tokens = factory.Sequence(lambda i: 1_000_000_000 * (1 + i % 7))
    final_loss = factory.Sequence(lambda i: 3.0 + (i % 11) / 10)


class EvaluationFactory(factory.django.DjangoModelFactory[Evaluation]):
    class Meta:
        model = Evaluation

    run = factory.SubFactory(RunFactory)
    post_train_bits = 4
    loss = factory.LazyAttribute(lambda e: (e.run.final_loss or 3.0) + 0.1)


class RunPayloadFactory(factory.DictFactory):
    """The JSON body of POST /api/v1/runs/."""

    external_id = factory.Sequence(lambda i: f"run-{i}")
    family = "sweep"
    n_params = factory.Sequence(lambda i: 30_000_000 * (1 + i % 8))
    n_tokens = factory.Sequence(lambda i: 1_500_000_000 * (1 + i % 5))
    weight_bits = 16
    final_loss = 3.21


def payload(**overrides: Any) -> dict[str, Any]:
    """A valid run body with `overrides` applied (a key set to ... is removed)."""
    body: dict[str, Any] = dict(RunPayloadFactory.create())
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def payloads_from_observations(observations: Any, *, family: str, prefix: str = "run") -> list[dict[str, Any]]:
    """Run bodies for POST /api/v1/runs/ from a fits.laws.Observations (evaluations nested)."""
    o = observations
    evaluations: dict[int, list[dict[str, Any]]] = {}
    for run, bits, loss in zip(o.eval_run.tolist(), o.eval_post_bits.tolist(), o.eval_loss.tolist(), strict=True):
        evaluations.setdefault(run, []).append({"post_train_bits": bits, "loss": loss})
    return [
        {
            "external_id": f"{prefix}-{i}",
            "family": family,
            "n_params": round(o.n_params[i]),
            "n_tokens": round(o.n_tokens[i]),
            "weight_bits": float(o.weight_bits[i]),
            "activation_bits": float(o.activation_bits[i]),
            "kv_bits": float(o.kv_bits[i]),
            "final_loss": float(o.final_loss[i]),
            **({"evaluations": evaluations[i]} if i in evaluations else {}),
            **(
                {"exponent_bits": int(o.exponent_bits[i]), "mantissa_bits": int(o.mantissa_bits[i])}
                if np.isfinite(o.exponent_bits[i])
                else {}
            ),
        }
        for i in range(o.n_runs)
    ]
