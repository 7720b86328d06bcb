"""The README's "Log from MLflow" example, run as written against the live server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runs.models import FamilyChange, MetricPoint, Run

pytestmark = pytest.mark.django_db(transaction=True)
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Log from MLflow", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return code


def test_the_readme_example_is_ten_lines():
    assert len(readme_example().strip().splitlines()) <= 10


def test_the_readme_example_logs_a_bitscale_run(tracking):
    exec(compile(readme_example(), "README.md", "exec"), {})

    run = Run.objects.get()
    assert (run.family, run.n_params, run.n_tokens, run.weight_bits, run.activation_bits) == (
        "gpt-sweep",
        110_000_000,
        3_000_000_000,
        8.0,
        8.0,
    )
    assert (run.final_loss, run.status) == (3.12, "finished")
    assert list(run.evaluations.values_list("post_train_bits", "method", "loss")) == [(4.0, "rtn", 3.31)]
    assert MetricPoint.objects.filter(run=run, key="train_loss").count() == 100
    assert FamilyChange.objects.filter(team=run.team, family="gpt-sweep").exists()
