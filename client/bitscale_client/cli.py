"""The `bitscale` command: log runs, sync the spool, plan, show fits or ask for a refit, import and export.

Configuration comes from `--url` / `--api-key` or `BITSCALE_URL` / `BITSCALE_API_KEY`.
Exit status: 0 on success, 1 on an error (the server's field errors are printed), 2 on bad usage,
75 (EX_TEMPFAIL) when the server was unreachable and runs were saved to the spool instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from bitscale_client.client import Client
from bitscale_client.csvformat import CsvFormatError, read_runs
from bitscale_client.display import render_fit, render_forecast, render_plan
from bitscale_client.errors import BitscaleError, ValidationFailed, error_lines
from bitscale_client.importers.mapping import Mapping, MappingError, TrackerRun, load_mapping
from bitscale_client.models import BulkResult, Spooled
from bitscale_client.progress import ProgressBar

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SPOOLED = 0, 1, 2, 75
RUN_FILTERS = (
    "family",
    "status",
    "excluded",
    "weight_bits",
    "activation_bits",
    "kv_bits",
    "number_format",
    "trained_after",
    "trained_before",
)


class UsageError(Exception):
    """A problem with the command line or its input files, reported without a traceback."""


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None  # a subcommand's flag only overrides when given
    parser.add_argument("--url", default=default, help="server URL (default: $BITSCALE_URL)")
    parser.add_argument("--api-key", default=default, help="API key (default: $BITSCALE_API_KEY)")
    parser.add_argument("--spool", default=default, help="spool file (default: ~/.cache/bitscale/spool.jsonl)")
    parser.add_argument("--timeout", type=float, default=argparse.SUPPRESS if suppress else 30.0, help="seconds")
    parser.add_argument(
        "--max-retries", type=int, default=argparse.SUPPRESS if suppress else 5, help="retries per request"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitscale", description="Bitscale client: runs, fits and training plans.")
    _connection_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    log = command("log", "log a run (JSON object) or runs (JSON list) from a file, or - for stdin")
    log.add_argument("file")
    log.set_defaults(handler=cmd_log)

    sync = command("sync", "upload the runs saved in the spool while the server was unreachable")
    sync.set_defaults(handler=cmd_sync)

    plan = command("plan", "plan a training run for a compute budget and print it next to the 16-bit baseline")
    budget = plan.add_mutually_exclusive_group(required=True)
    budget.add_argument("--flops", type=float, help="budget in FLOPs, counted as 6*N*D at 16 bits")
    budget.add_argument("--gpu-hours", type=float, help="budget in GPU-hours (with --hardware)")
    plan.add_argument("--hardware", default="h100", help="hardware profile for --gpu-hours (default h100)")
    plan.add_argument("--family", required=True)
    plan.add_argument(
        "--law",
        choices=["auto", "precision", "chinchilla", "fp"],
        help="law to plan with (default: the server's, auto: the family's best-ranked law that can serve the request)",
    )
    plan.add_argument("--post-train-bits", type=float, help="deployment precision after quantization")
    plan.add_argument("--weight-bits", type=float)
    plan.add_argument("--activation-bits", type=float)
    plan.add_argument("--kv-bits", type=float)
    plan.add_argument("--bits-choices", type=_float_list, help="allowed training bit widths, e.g. 4,8,16")
    plan.add_argument("--n-params", type=float, help="fixed model size")
    plan.add_argument("--n-params-max", type=float)
    plan.add_argument("--n-tokens-max", type=float)
    plan.add_argument("--weights-memory-max-bytes", type=float)
    plan.add_argument("--cost-model", choices=["linear_bits", "hardware"])
    plan.add_argument("--json", action="store_true", help="print the server's JSON instead of the table")
    plan.set_defaults(handler=cmd_plan)

    fit = sub.add_parser(
        "fit",
        parents=[common],
        help="show a family's current fit (fit show FAMILY) or ask for a refit now (fit refit FAMILY)",
        description=(
            "fit show FAMILY prints the newest succeeded fit of a law (fits are made by the server's workers each "
            "time runs change); fit refit FAMILY asks for a new version now. `fit FAMILY` still shows, with a hint."
        ),
        usage="bitscale fit {show,refit} FAMILY [--law LAW] [--json]",
    )
    fit.add_argument("action", metavar="{show,refit}", help="show: the current fit; refit: ask for a new version")
    fit.add_argument("family", nargs="?", metavar="FAMILY")
    fit.add_argument(
        "--law",
        default="precision",
        help="the law (default: precision; the server names its laws when one is unknown)",
    )
    fit.add_argument("--json", action="store_true", help="print the server's JSON instead of the summary")
    fit.set_defaults(handler=cmd_fit)

    forecast = command("forecast", "print where a run's loss will land at the end of its planned schedule")
    forecast.add_argument("run_id", type=int, metavar="RUN_ID")
    forecast.add_argument("--key", help="the metric read as the loss curve (default: the server's choice)")
    forecast.add_argument("--law", help="the curve law (the server names its choices when one is unknown)")
    forecast.add_argument("--level", type=float, help="the interval's level (default 0.95)")
    forecast.add_argument("--json", action="store_true", help="print the server's JSON instead of the summary")
    forecast.set_defaults(handler=cmd_forecast)

    import_csv = command("import-csv", "upload a CSV in the export's format through the bulk endpoint")
    import_csv.add_argument("file")
    import_csv.add_argument("--batch-size", type=int, default=1000)
    import_csv.set_defaults(handler=cmd_import_csv)

    export_csv = command("export-csv", "download the team's runs as CSV (one row per run and evaluation)")
    export_csv.add_argument("file", help="output file, or - for stdout")
    for name in RUN_FILTERS:
        export_csv.add_argument(f"--{name.replace('_', '-')}", dest=name)
    export_csv.add_argument("--filter", action="append", default=[], metavar="NAME=VALUE", help="any list filter")
    export_csv.set_defaults(handler=cmd_export_csv)

    wandb = command("import-wandb", "import runs from a W&B export (CSV or JSON) through a mapping file")
    wandb.add_argument("file")
    wandb.add_argument("--mapping", required=True, help="JSON mapping from W&B names to Bitscale fields")
    wandb.add_argument("--family", help="family for every imported run (overrides the mapping)")
    wandb.add_argument("--dry-run", action="store_true", help="print the payloads instead of uploading them")
    wandb.set_defaults(handler=cmd_import_wandb)

    mlflow = command("import-mlflow", "import the runs of an MLflow experiment through a mapping file")
    mlflow.add_argument("--tracking-uri", required=True, help="tracking server URL, or a local file store path")
    mlflow.add_argument("--experiment", required=True, help="experiment name (or id)")
    mlflow.add_argument("--mapping", required=True, help="JSON mapping from MLflow names to Bitscale fields")
    mlflow.add_argument("--family", help="family for every imported run (overrides the mapping)")
    mlflow.add_argument("--dry-run", action="store_true", help="print the payloads instead of uploading them")
    mlflow.set_defaults(handler=cmd_import_mlflow)
    return parser


def _float_list(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


# Commands ---------------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace, Client, TextIO], int]


def cmd_log(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    data = _read_json(args.file)
    if isinstance(data, dict):
        result = client.log_run(**data)
        if isinstance(result, Spooled):
            return _report_spooled(result)
        out.write(f"run {result.id} ({result.external_id}): {result.family}, final_loss {result.final_loss}\n")
        return EXIT_OK
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return _report_bulk(client.log_runs(data), out)
    raise UsageError(f"{args.file}: expected a JSON object (one run) or a list of objects")


def cmd_sync(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    bar = ProgressBar("sync")
    try:
        result = client.sync(progress=bar)
    finally:
        bar.close()
    out.write(
        f"uploaded {result.uploaded} run(s) ({result.created} created, {result.updated} updated); "
        f"{result.remaining} left in the spool\n"
    )
    if result.rejected:
        sys.stderr.write(f"{result.rejected} run(s) refused by the server, moved to {result.rejected_path}:\n")
        for external_id, errors in result.errors.items():
            for line in error_lines(errors):
                sys.stderr.write(f"  {external_id}: {line}\n")
        return EXIT_ERROR
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    constraints = {
        name: getattr(args, name)
        for name in (
            "post_train_bits",
            "weight_bits",
            "activation_bits",
            "kv_bits",
            "bits_choices",
            "n_params",
            "n_params_max",
            "n_tokens_max",
            "weights_memory_max_bytes",
        )
        if getattr(args, name) is not None
    }
    for name in ("n_params", "n_params_max", "n_tokens_max", "weights_memory_max_bytes"):
        if name in constraints:
            constraints[name] = int(constraints[name])
    plan = client.plan(
        args.family,
        flops=args.flops,
        gpu_hours=args.gpu_hours,
        hardware=args.hardware if args.gpu_hours is not None else None,
        law=args.law,
        constraints=constraints,
        cost_model=args.cost_model,
    )
    out.write((json.dumps(plan.raw, indent=2) if args.json else render_plan(plan)) + "\n")
    return EXIT_OK


FIT_ACTIONS = ("show", "refit")


def fit_action(args: argparse.Namespace) -> tuple[str, str]:
    """(action, family) of `bitscale fit`: `fit show F`, `fit refit F`, or the older `fit F`, which shows F's fit
    and says so on stderr (a family named "show" or "refit" is `fit show show`)."""
    if args.family is not None:
        if args.action not in FIT_ACTIONS:
            raise UsageError(f"fit {args.action!r}: expected `fit show FAMILY` or `fit refit FAMILY`")
        return args.action, args.family
    if args.action in FIT_ACTIONS:
        raise UsageError(f"fit {args.action} needs a FAMILY")
    sys.stderr.write(
        f"hint: `bitscale fit {args.action}` shows the current fit; it is now `bitscale fit show {args.action}` "
        f"(and `bitscale fit refit {args.action}` asks for a new one)\n"
    )
    return "show", args.action


def cmd_fit(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    action, family = fit_action(args)
    if action == "refit":
        queued = client.request_fit(family, law=args.law)
        if args.json:
            out.write(json.dumps(queued.raw, indent=2) + "\n")
        else:
            out.write(
                f"Refit of {family} ({args.law}) asked for: version {queued.version} is {queued.status}; the workers "
                f"fit it in the background. `bitscale fit show {family} --law {args.law}` shows it once it succeeds.\n"
            )
        return EXIT_OK
    fit = client.current_fit(family, law=args.law)
    out.write((json.dumps(fit.raw, indent=2) if args.json else render_fit(fit)) + "\n")
    return EXIT_OK


def cmd_forecast(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    body = client.forecast(args.run_id, key=args.key, law=args.law, level=args.level)
    out.write((json.dumps(body, indent=2) if args.json else render_forecast(body)) + "\n")
    return EXIT_OK


def cmd_import_csv(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    try:
        with open(args.file, encoding="utf-8-sig", newline="") as source:
            runs = list(read_runs(source))
    except OSError as exc:
        raise UsageError(str(exc)) from None
    except CsvFormatError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    return _upload(client, runs, out, label="import", batch_size=args.batch_size)


def cmd_export_csv(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    filters: dict[str, Any] = {name: getattr(args, name) for name in RUN_FILTERS if getattr(args, name) is not None}
    for item in args.filter:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--filter {item!r}: expected NAME=VALUE")
        filters[name] = value
    if args.file == "-":
        client.export_csv(sys.stdout.buffer, **filters)
        return EXIT_OK
    size = client.export_csv(args.file, **filters)
    out.write(f"wrote {size} bytes to {args.file}\n")
    return EXIT_OK


def cmd_import_wandb(args: argparse.Namespace, client: Client | None, out: TextIO) -> int:
    from bitscale_client.importers.wandb_export import read_wandb_export

    mapping = _load_mapping(args.mapping)
    try:
        runs = list(read_wandb_export(args.file))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    return _import_tracker(runs, mapping, args, client, out)


def cmd_import_mlflow(args: argparse.Namespace, client: Client | None, out: TextIO) -> int:
    from bitscale_client.importers.mlflow_store import MlflowMissing, read_mlflow_runs

    mapping = _load_mapping(args.mapping)
    try:
        runs = list(read_mlflow_runs(args.tracking_uri, args.experiment))
    except (MlflowMissing, LookupError) as exc:
        raise UsageError(str(exc)) from None
    return _import_tracker(runs, mapping, args, client, out)


# Helpers ----------------------------------------------------------------------------------


def _read_json(name: str) -> Any:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"{name}: not valid JSON: {exc}") from None


def _load_mapping(path: str) -> Mapping:
    try:
        return load_mapping(path)
    except MappingError as exc:
        raise UsageError(f"mapping: {exc}") from None


def _import_tracker(
    runs: Sequence[TrackerRun], mapping: Mapping, args: argparse.Namespace, client: Client | None, out: TextIO
) -> int:
    payloads, skipped = [], 0
    for run in runs:
        try:
            payloads.append(mapping.to_payload(run, family=args.family))
        except MappingError as exc:
            skipped += 1
            sys.stderr.write(f"skipped {run.source} run {run.run_id} ({run.name or 'unnamed'}): {exc}\n")
    if skipped:
        sys.stderr.write(f"{skipped} of {len(runs)} run(s) skipped\n")
    if args.dry_run or client is None:
        out.write(json.dumps(payloads, indent=2) + "\n")
        return EXIT_OK
    if not payloads:
        raise UsageError("nothing to import")
    return _upload(client, payloads, out, label="import")


def _upload(client: Client, runs: list[dict[str, Any]], out: TextIO, *, label: str, batch_size: int = 1000) -> int:
    bar = ProgressBar(label)
    try:
        result = client.log_runs(runs, batch_size=batch_size, progress=bar)
    finally:
        bar.close()
    return _report_bulk(result, out)


def _report_bulk(result: BulkResult, out: TextIO) -> int:
    out.write(f"{result.sent} run(s) sent: {result.created} created, {result.updated} updated\n")
    if result.spooled is not None:
        return _report_spooled(result.spooled)
    return EXIT_OK


def _report_spooled(spooled: Spooled) -> int:
    sys.stderr.write(
        f"server unreachable: {spooled.count} run(s) saved to {spooled.path}; run `bitscale sync` to upload them\n"
    )
    return EXIT_SPOOLED


def _make_client(args: argparse.Namespace) -> Client:
    url = args.url or os.environ.get("BITSCALE_URL")
    api_key = args.api_key or os.environ.get("BITSCALE_API_KEY")
    if not url:
        raise UsageError("no server URL: pass --url or set BITSCALE_URL")
    if not api_key:
        raise UsageError("no API key: pass --api-key or set BITSCALE_API_KEY")
    return Client(url, api_key, timeout=args.timeout, max_retries=args.max_retries, spool_path=args.spool)


def main(argv: Iterable[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run one command; returns the exit status (the console script exits with it)."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    stdout = out or sys.stdout
    handler: Handler = args.handler
    offline = getattr(args, "dry_run", False)
    try:
        client = None if offline else _make_client(args)
        try:
            return handler(args, client, stdout)  # type: ignore[arg-type]
        finally:
            if client is not None:
                client.close()
    except UsageError as exc:
        sys.stderr.write(f"bitscale: {exc}\n")
        return EXIT_USAGE
    except ValidationFailed as exc:
        sys.stderr.write(f"bitscale: the server refused the input (HTTP 400): {exc.message}\n")
        for line in error_lines(exc.errors):
            sys.stderr.write(f"  {line}\n")
        return EXIT_ERROR
    except BitscaleError as exc:
        sys.stderr.write(f"bitscale: {exc.message}\n")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
