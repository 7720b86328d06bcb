"""The hand-built run JSON must equal what DRF's generic field-by-field rendering produces."""

import pytest
from rest_framework import serializers

from runs.api.serializers import RunSerializer
from runs.models import Run
from tests.factories import EvaluationFactory, RunFactory

pytestmark = pytest.mark.django_db


def _generic(run: Run) -> dict:
    """DRF's own rendering of the same declared fields."""
    return serializers.ModelSerializer.to_representation(RunSerializer(), run)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {
            "weight_bits": 4.25,
            "activation_bits": 8,
            "kv_bits": 6,
            "number_format": "mixed",
            "n_layers": 12,
            "seq_len": 2048,
        },
        {"status": "running", "final_loss": None, "external_id": "x-1", "metadata": {"lr": 0.001, "tags": ["a"]}},
        {"excluded": True, "exclusion_reason": "spike", "n_tokens": 10**16 - 1, "n_params": 10**14},
    ],
)
def test_fast_rendering_equals_drfs(fields):
    run = RunFactory(**fields)
    EvaluationFactory(run=run, post_train_bits=3)
    EvaluationFactory(run=run, post_train_bits=4.5, method="gptq")
    run = Run.objects.prefetch_related("evaluations").get(pk=run.pk)

    assert RunSerializer(run).data == _generic(run)
