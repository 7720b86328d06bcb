"""manage.py load_demo [--if-missing] [--credentials-file PATH]: the team `demo` with a synthetic precision sweep,
Epoch's Chinchilla runs, a synthetic floating-point sweep and OLMo 2's model ladder with its loss curves (one run
shown running, half-way, so its forecast can be compared with where it really ended); prints a key for it (alone,
on the last line)."""

import os
import secrets
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from fits.laws import Observations, fp_synthetic, kumar_synthetic, load_chinchilla_epoch
from fits.laws.curve_data import LoggedCurve, load_olmo_ladder_curves
from mlflow_compat import selectors as mlflow_selectors
from mlflow_compat import services as mlflow
from mlflow_compat.errors import MlflowError
from runs.api.serializers import runs_validate
from runs.models import Membership, Team
from runs.services import api_key_create, runs_upsert, team_get_or_create

SYNTHETIC_NOTE = {
    "synthetic": True,
    "source": "Generated from Kumar et al. 2024 (arXiv 2411.04330) Table 2 constants on the paper's grid, "
    "with 0.5% multiplicative noise; not a real training run.",
}
FP_NOTE = {
    "synthetic": True,
    "source": "Generated from Sun et al. 2025 (arXiv 2501.02423) Table 2 constants, 128-element scaling blocks, "
    "over 12 floating-point formats, with 0.2% multiplicative noise; not a real training run.",
}
EPOCH_NOTE = {
    "synthetic": False,
    "source": "Chinchilla training runs (Hoffmann et al. 2022) as digitised by Epoch AI, arXiv 2404.10102; "
    "D = FLOP / (6N). See fits/data/README.md for provenance and licence.",
}
BATCH = 1000
OLMO_FAMILY = "olmo-ladder"
# The ladder run the demo shows still running, logged up to half its planned steps; its full curve is left out, so
# the family knows nothing of its second half.
OLMO_RUNNING = "1B-5xC"
OLMO_NOTE = (
    "OLMo 2's model ladder (Apache-2.0; fits/data/olmo_ladder_curves/README.md): C4-en validation loss and the "
    "learning rate by step, the schedule as OLMo's ladder recipe describes it."
)
# When each family's runs were trained (start, end): the Chinchilla runs before their paper (March 2022), the
# synthetic sweeps over the months before Kumar et al.'s (November 2024) and Sun et al.'s (January 2025) papers.
TRAINING_PERIODS = {
    "chinchilla-epoch": (datetime(2021, 3, 1, 9, tzinfo=UTC), datetime(2021, 12, 1, 9, tzinfo=UTC)),
    "kumar-synthetic": (datetime(2024, 4, 1, 9, tzinfo=UTC), datetime(2024, 10, 15, 9, tzinfo=UTC)),
    "fp-synthetic": (datetime(2024, 7, 1, 9, tzinfo=UTC), datetime(2024, 12, 16, 9, tzinfo=UTC)),
}


def training_dates(observations: Observations, *, start: datetime, end: datetime) -> list[datetime]:
    """When each run finished training, in the order a team trains a sweep: the smallest models first, each
    model's token budgets from the fewest, evenly spread over [start, end] to the minute; deterministic."""
    o = observations
    order = sorted(range(o.n_runs), key=lambda i: (float(o.n_params[i]), float(o.n_tokens[i]), i))
    step = (end - start) / max(o.n_runs - 1, 1)
    dates = [start] * o.n_runs
    for rank, i in enumerate(order):
        dates[i] = start + timedelta(minutes=round((step * rank).total_seconds() / 60))
    return dates


def _payloads(observations: Observations, *, family: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
    o = observations
    trained = training_dates(o, start=TRAINING_PERIODS[family][0], end=TRAINING_PERIODS[family][1])
    evaluations: dict[int, list[dict[str, float]]] = {}
    for run, bits, loss in zip(o.eval_run.tolist(), o.eval_post_bits.tolist(), o.eval_loss.tolist(), strict=True):
        evaluations.setdefault(run, []).append({"post_train_bits": bits, "loss": loss})
    bodies = []
    for i in range(o.n_runs):
        bits = (float(o.weight_bits[i]), float(o.activation_bits[i]), float(o.kv_bits[i]))
        body: dict[str, Any] = {
            "external_id": f"{family}-{i:05d}",
            "name": f"{o.n_params[i] / 1e6:.0f}M {o.n_tokens[i] / 1e9:.2f}B w{bits[0]:g}a{bits[1]:g}kv{bits[2]:g}",
            "family": family,
            "n_params": round(float(o.n_params[i])),
            "n_tokens": round(float(o.n_tokens[i])),
            "weight_bits": bits[0],
            "activation_bits": bits[1],
            "kv_bits": bits[2],
            "final_loss": float(o.final_loss[i]),
            "trained_at": trained[i].isoformat(),
            "dataset": "synthetic" if metadata["synthetic"] else "MassiveText (Chinchilla)",
            "metadata": metadata,
        }
        if np.isfinite(o.exponent_bits[i]):
            body.update(
                number_format="fp", exponent_bits=int(o.exponent_bits[i]), mantissa_bits=int(o.mantissa_bits[i])
            )
            body["name"] += f" E{body['exponent_bits']}M{body['mantissa_bits']}"
        if i in evaluations:
            body["evaluations"] = evaluations[i]
        bodies.append(body)
    return bodies


def _load_olmo_curves(team: Team) -> int:
    """OLMo 2's ladder through the MLflow services, as a training script logs it: each run's sizes and planned
    schedule as params, `val_loss` and `lr` by step, `final_loss` and FINISHED at the end; OLMO_RUNNING only up
    to half its planned steps, still RUNNING, with where it really ended in a tag. Returns the runs logged: none
    when the team has the experiment already (a second load keeps what the first logged)."""
    try:
        mlflow_selectors.experiment_get_by_name(team=team, name=OLMO_FAMILY)
        return 0
    except MlflowError:
        pass
    experiment = mlflow.experiment_create(team=team, name=OLMO_FAMILY, tags={"demo.source": OLMO_NOTE})
    curves = load_olmo_ladder_curves()
    for name, curve in curves.items():
        running = name == OLMO_RUNNING
        tags = {"demo.source": OLMO_NOTE}
        if running:
            tags["demo.true_final_loss"] = (
                f"{curve.final_loss:.4f} at step {curve.final_step} (the published run; not logged here)"
            )
        run = mlflow.run_create(
            team=team,
            experiment_id=str(experiment.pk),
            run_name=name,
            start_time=None,
            tags=tags,
            user_id="load_demo",
        )
        mlflow.run_log(team=team, run_id=run.run_id, params=_olmo_params(curve))
        upto = curve.plan.total_steps / 2 if running else float("inf")
        points = [
            mlflow.MetricInput(key=key, value=float(value), timestamp=int(step), step=int(step))
            for key, values in (("val_loss", curve.loss), ("lr", curve.lr))
            for step, value in zip(curve.steps, values, strict=True)
            if step <= upto
        ]
        if not running:
            points.append(mlflow.MetricInput(key="final_loss", value=curve.final_loss, timestamp=0, step=0))
        mlflow.run_log(team=team, run_id=run.run_id, metrics=points)
        if not running:
            mlflow.run_update(team=team, run_id=run.run_id, status="FINISHED", end_time=None, run_name=None)
    return len(curves)


def _olmo_params(curve: LoggedCurve) -> dict[str, str]:
    plan = curve.plan
    tokens_per_step = plan.tokens_per_step or 0.0
    params = {
        "n_params": curve.n_params,
        "n_tokens": round(plan.total_steps * tokens_per_step),
        "number_format": "fp",
        "exponent_bits": 8,
        "mantissa_bits": 7,
        "dataset": "OLMo-mix-1124 (OLMo 2 ladder)",
        "eval_set": "C4-en validation",
        "total_steps": plan.total_steps,
        "peak_lr": plan.peak_lr,
        "warmup_steps": plan.warmup_steps,
        "lr_schedule": plan.decay,
        "final_lr": plan.final_lr,
        "tokens_per_step": tokens_per_step,
    }
    return {key: str(value) for key, value in params.items()}


class Command(BaseCommand):
    help = "Create the team `demo` with demo runs (fits follow through the workers) and print a key to try the API."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--if-missing", action="store_true", help="Do nothing when the team `demo` exists.")
        parser.add_argument(
            "--credentials-file",
            type=Path,
            help="Also write the key and the admin login there, as shell exports (`make run`: var/demo.env).",
        )

    def handle(self, *args: Any, if_missing: bool, credentials_file: Path | None, **options: Any) -> None:
        if if_missing and Team.objects.filter(slug="demo").exists():
            saved = f" Its key and admin login are in {credentials_file}." if credentials_file else ""
            if credentials_file and not credentials_file.exists():
                saved = (
                    f" {credentials_file} is gone: make a key with `manage.py create_api_key demo` and set the admin "
                    "password with `manage.py changepassword demo`."
                )
            self.stdout.write(f"Demo data already loaded (team `demo`).{saved}")
            return
        noisy, _ = kumar_synthetic(noise=0.005, seed=0)
        families = [
            ("kumar-synthetic", _payloads(noisy, family="kumar-synthetic", metadata=SYNTHETIC_NOTE)),
            ("chinchilla-epoch", _payloads(load_chinchilla_epoch(), family="chinchilla-epoch", metadata=EPOCH_NOTE)),
            ("fp-synthetic", _payloads(fp_synthetic(), family="fp-synthetic", metadata=FP_NOTE)),
        ]
        with transaction.atomic():  # all or nothing; the refits are sent when it commits
            team, _ = team_get_or_create(slug="demo", name="Demo")
            for family, bodies in families:
                for start in range(0, len(bodies), BATCH):
                    items, errors = runs_validate(bodies[start : start + BATCH])
                    if errors:  # our own data: a failure here is a bug, not user input
                        raise RuntimeError(f"demo data of {family} failed validation: {errors}")
                    runs_upsert(team=team, items=items)
                self.stderr.write(f"  {family}: {len(bodies)} runs")
            n_curves = _load_olmo_curves(team)
            self.stderr.write(f"  {OLMO_FAMILY}: {n_curves} runs with loss curves ({OLMO_RUNNING} running, half-way)")
            _, secret = api_key_create(team=team, label="load_demo")
            password = self._demo_user(team)
        site = settings.SITE_URL.rstrip("/")
        login = "password unchanged" if password is None else f"password `{password}`"
        lines = [
            "",
            "Demo data loaded: team `demo`, families `kumar-synthetic` (synthetic, from Kumar et al.'s constants),",
            "`chinchilla-epoch` (Epoch AI's digitised Chinchilla runs), `fp-synthetic` (synthetic floating-point",
            "formats, from Sun et al.'s constants) and `olmo-ladder` (OLMo 2's ladder with its loss curves; run",
            f"{OLMO_RUNNING} is shown half-way: its page forecasts where it lands). The workers fit every law that",
            "applies in the background.",
            f"Admin: {site}/admin/ (user `demo`, {login})",
        ]
        if credentials_file is not None:
            write_credentials(credentials_file, site=site, key=secret, password=password)
            lines.append(f"Key and admin login saved to {credentials_file} (`. {credentials_file}` sets DEMO_KEY).")
        self.stdout.write("\n".join([*lines, "A read-write key for team `demo`:", ""]))
        self.stdout.write(secret)

    def _demo_user(self, team: Team) -> str | None:
        """A superuser `demo` for the admin on a fresh database, and its password; an existing one keeps its
        password (None)."""
        users = get_user_model()
        if users.objects.filter(username="demo").exists():
            return None
        password = secrets.token_urlsafe(9)
        user = users.objects.create_superuser(username="demo", email="", password=password)
        Membership.objects.get_or_create(user=user, team=team, defaults={"role": Membership.Role.OWNER})
        return password


CREDENTIALS_HEADER = (
    "# Written by `manage.py load_demo` (make run): the demo team's API key and admin login, for this machine.\n"
    "# `. var/demo.env` sets them in your shell; the client and `bitscale` read BITSCALE_URL and BITSCALE_API_KEY.\n"
)


def write_credentials(path: Path, *, site: str, key: str, password: str | None) -> None:
    """The demo's key and admin login as shell exports, readable by the owner only; a password left unchanged
    keeps the one the file already holds."""
    values = {
        "DEMO_URL": site,
        "DEMO_KEY": key,
        "BITSCALE_URL": site,
        "BITSCALE_API_KEY": key,
        "DEMO_ADMIN_USER": "demo",
    }
    old = read_credentials(path)
    if password is not None or "DEMO_ADMIN_PASSWORD" in old:
        values["DEMO_ADMIN_PASSWORD"] = password if password is not None else old["DEMO_ADMIN_PASSWORD"]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = CREDENTIALS_HEADER + "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def read_credentials(path: Path) -> dict[str, str]:
    """The exports of a credentials file written by write_credentials; empty when there is none."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line.removeprefix("export ").partition("=")
            parsed = shlex.split(value)
            values[name] = parsed[0] if parsed else ""
    return values
