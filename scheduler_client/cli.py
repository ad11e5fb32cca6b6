"""The `scheduler` command: the API from a shell, built on scheduler_client.

Tables for people, `--json` for scripts; SCHEDULER_URL and SCHEDULER_API_KEY (or --url,
--api-key) say which service. A failed call exits 1 with the problem's words; a bad
command line exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from scheduler_client import crontab, transfer
from scheduler_client.client import Client
from scheduler_client.errors import ProblemError
from scheduler_client.models import BulkResult, Job, Run
from scheduler_client.tables import table, target_summary

DEFAULT_URL = "http://127.0.0.1:8000"
LIST_LIMIT = 100  # rows a list shows unless --limit says otherwise (bounded, like the API)
Command = Callable[[Client, argparse.Namespace], int | None]


class UsageError(Exception):
    """A command line that cannot be sent: exit 2, as argparse does."""


# -- output ------------------------------------------------------------------------------


def emit(args: argparse.Namespace, data: Any, human: Callable[[], str]) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else human())


def job_rows(jobs: Sequence[Job]) -> str:
    rows = [
        (j.job_id, j.name, j.status, j.description, j.next_run_at, target_summary(j.target))
        for j in jobs
    ]
    return table(["ID", "NAME", "STATUS", "RULE", "NEXT RUN", "TARGET"], rows)


def run_rows(runs: Sequence[Run]) -> str:
    rows = [(r.run_id, r.job_id, r.status, r.scheduled_for, r.attempts, r.last_error) for r in runs]
    return table(["RUN", "JOB", "STATUS", "SCHEDULED FOR", "ATTEMPTS", "ERROR"], rows)


def show_jobs(args: argparse.Namespace, jobs: Sequence[Job]) -> None:
    emit(args, [j.raw for j in jobs], lambda: job_rows(jobs))


def show_job(args: argparse.Namespace, job: Job) -> None:
    emit(args, job.raw, lambda: job_rows([job]))


def show_bulk(args: argparse.Namespace, action: str, result: BulkResult) -> None:
    def human() -> str:
        lines = [f"{action}: {result.changed} changed"]
        if result.unchanged_ids:
            lines.append(f"already so: {', '.join(result.unchanged_ids)}")
        if result.not_found:
            lines.append(f"not found: {', '.join(result.not_found)}")
        return "\n".join(lines)

    emit(
        args,
        {
            "changed": result.changed,
            "changedIds": result.changed_ids,
            "unchangedIds": result.unchanged_ids,
            "notFound": result.not_found,
        },
        human,
    )


# -- reading options ---------------------------------------------------------------------


def target_of(text: str) -> dict[str, Any]:
    """queue:NAME, sqs:URL, an http(s) URL (a webhook), or the API's JSON."""
    text = text.strip()
    if text.startswith("{"):
        return json_object(text, "--target")
    if text.startswith("queue:"):
        return {"type": "queue", "name": text.removeprefix("queue:")}
    if text.startswith("sqs:"):
        return {"type": "sqs", "queueUrl": text.removeprefix("sqs:")}
    if text.startswith(("http://", "https://")):
        return {"type": "webhook", "url": text}
    raise UsageError("--target: queue:NAME, sqs:QUEUE_URL, an http(s) URL, or JSON")


def labels_of(pairs: Sequence[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs or []:
        key, equals, value = pair.partition("=")
        if not equals:
            raise UsageError(f"--label {pair}: write it as key=value")
        labels[key] = value
    return labels


def whole_spec(args: argparse.Namespace) -> dict[str, Any]:
    """A job as the API's JSON, from --file (- for stdin) then --spec over it."""
    spec: dict[str, Any] = {}
    if args.file:
        spec |= json_object(sys.stdin.read() if args.file == "-" else read_file(args.file))
    if args.spec:
        spec |= json_object(args.spec)
    return spec


def spec_of(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    """A job's fields: --file or --spec (the API's JSON), then the flags over them."""
    spec = dict(base) | whole_spec(args)
    flags = {
        "payload": args.payload, "at": args.at, "minute": args.minute, "timezone": args.timezone,
        "cron": args.cron, "interval": args.interval, "name": args.name,
        "recurring": args.recurring,
    }  # fmt: skip
    spec |= {key: value for key, value in flags.items() if value is not None}
    if args.cron and not args.recurring:
        spec["recurring"] = "cron"
    if args.interval and not args.recurring:
        spec["recurring"] = "interval"
    if args.target:
        spec["target"] = target_of(args.target)
    if args.label:
        spec["labels"] = dict(spec.get("labels") or {}) | labels_of(args.label)
    if args.retry_attempts is not None:
        spec["retry"] = dict(spec.get("retry") or {}) | {"attempts": args.retry_attempts}
    return spec


def json_object(text: str, what: str = "the job") -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{what}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what}: a JSON object")
    return value


def read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def limited(items: Any, limit: int | None) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if limit is not None and len(out) >= limit:
            break
        out.append(item)
    return out


def list_limit(args: argparse.Namespace) -> int | None:
    return None if args.all else args.limit


# -- jobs --------------------------------------------------------------------------------


def jobs_list(client: Client, args: argparse.Namespace) -> None:
    limit = list_limit(args)
    jobs = client.list_jobs(
        status=args.status, recurring=args.recurring, target=args.target_type, q=args.search,
        labels=args.label or None, sort=args.sort, limit=min(limit or 1000, 1000),
    )  # fmt: skip
    show_jobs(args, limited(jobs, limit))


def jobs_get(client: Client, args: argparse.Namespace) -> None:
    show_job(args, client.get_job(args.job_id))


def jobs_create(client: Client, args: argparse.Namespace) -> None:
    spec = spec_of(args, {})
    if "payload" not in spec:
        raise UsageError("--payload (or a payload in --file/--spec) is required")
    show_job(args, client.create_job(spec, idempotency_key=args.idempotency_key))


def jobs_update(client: Client, args: argparse.Namespace) -> None:
    """Get, change the fields given, put back: the rest stays as it is."""
    current = client.get_job(args.job_id)
    show_job(args, client.update_job(args.job_id, spec_of(args, dict(current.spec()))))


def selection(args: argparse.Namespace) -> tuple[list[str] | None, dict[str, str] | None]:
    labels = labels_of(args.label) or None
    if bool(args.job_ids) == bool(labels):
        raise UsageError("give job ids or --label key=value, one of the two")
    return (args.job_ids or None), labels


def action_command(action: str) -> Command:
    """pause, resume, run, delete: one job by its own call, several (or --label) in bulk."""

    def command(client: Client, args: argparse.Namespace) -> None:
        ids, labels = selection(args)
        if ids and len(ids) == 1 and not labels:
            one = ids[0]
            if action == "run":
                run = client.run_job(one)
                emit(args, run.raw, lambda: run_rows([run]))
                return
            if action == "pause":
                show_job(args, client.pause_job(one, note=args.note, until=args.until))
                return
            single = {"resume": client.resume_job, "delete": client.delete_job}[action]
            show_job(args, single(one))
            return
        bulk = {"pause": client.pause_jobs, "resume": client.resume_jobs,
                "run": client.run_jobs, "delete": client.delete_jobs}[action]  # fmt: skip
        show_bulk(args, action, bulk(ids, labels=labels))

    return command


# -- runs, preview, queue ----------------------------------------------------------------


def runs_list(client: Client, args: argparse.Namespace) -> None:
    limit = list_limit(args)
    runs = client.list_runs(
        job_id=args.job, status=args.status, since=args.since, until=args.until,
        limit=min(limit or 1000, 1000),
    )  # fmt: skip
    found = limited(runs, limit)
    emit(args, [r.raw for r in found], lambda: run_rows(found))


def runs_retry(client: Client, args: argparse.Namespace) -> None:
    retried = [client.retry_run(run_id) for run_id in args.run_ids]
    emit(args, [r.raw for r in retried], lambda: run_rows(retried))


def preview(client: Client, args: argparse.Namespace) -> None:
    if args.job:
        shown = client.preview_job(args.job, count=args.count, explain=args.explain)
    elif args.spec or args.file:  # a whole job's JSON: its exclusions, dst and window too
        spec = whole_spec(args)
        timing = {"at": args.at, "minute": args.minute, "cron": args.cron, "rrule": args.rrule,
                  "interval": args.interval, "timezone": args.timezone,
                  "recurring": _recurring_of(args)}  # fmt: skip
        spec |= {key: value for key, value in timing.items() if value is not None}
        shown = client.preview_spec(spec, after=args.after, count=args.count, explain=args.explain)
    else:
        shown = client.preview(
            _recurring_of(args) or "none", at=args.at, minute=args.minute, cron=args.cron,
            interval=args.interval, rrule=args.rrule, timezone=args.timezone, after=args.after,
            count=args.count, explain=args.explain,
        )  # fmt: skip
    data = {"description": shown.description, "timezone": shown.timezone,
            "times": [asdict(t) for t in shown.times]}  # fmt: skip

    def human() -> str:
        rows = [(t.utc, t.local, _note_of(t.skipped, t.explain or t.notes)) for t in shown.times]
        headers = ["UTC", f"LOCAL ({shown.timezone})", "NOTE"]
        return f"{shown.description}\n\n" + table(headers, rows)

    emit(args, data, human)


def _recurring_of(args: argparse.Namespace) -> str | None:
    """--recurring, or the kind a rule flag given implies (as jobs create infers it)."""
    flags = (("cron", args.cron), ("interval", args.interval), ("rrule", args.rrule))
    return args.recurring or next((kind for kind, value in flags if value), None)


def _note_of(skipped: bool, notes: Sequence[str]) -> str:
    words = "; ".join(notes)
    return f"skipped: {words}" if skipped else words or "-"


def queue_receive(client: Client, args: argparse.Namespace) -> None:
    got = client.receive(
        args.queue, max_messages=args.max, visibility_timeout=args.visibility_timeout,
        wait=args.wait,
    )  # fmt: skip
    data = [
        {"id": m.id, "receipt": m.receipt, "payload": m.payload, "jobId": m.job_id,
         "runId": m.run_id, "scheduledFor": m.scheduled_for, "receiveCount": m.receive_count}
        for m in got
    ]  # fmt: skip
    rows = [(m.receipt, m.run_id, m.scheduled_for, m.receive_count, m.payload) for m in got]
    emit(
        args, data, lambda: table(["RECEIPT", "RUN", "SCHEDULED FOR", "RECEIVED", "PAYLOAD"], rows)
    )


def queue_ack(client: Client, args: argparse.Namespace) -> None:
    deleted = client.ack(args.queue, args.receipts)
    emit(args, {"deleted": deleted}, lambda: f"acknowledged {deleted} of {len(args.receipts)}")


def queue_stats(client: Client, args: argparse.Namespace) -> None:
    s = client.queue_stats(args.queue)
    data = {"name": s.name, "depth": s.depth, "inFlight": s.in_flight, "oldestAt": s.oldest_at}
    rows = [(s.name, s.depth, s.in_flight, s.oldest_at)]
    emit(args, data, lambda: table(["QUEUE", "DEPTH", "IN FLIGHT", "OLDEST"], rows))


# -- import and export -------------------------------------------------------------------


def import_crontab(client: Client, args: argparse.Namespace) -> int:
    """Show the jobs the file makes; create them (all or none) with --yes."""
    parsed = crontab.parse(read_file(args.file), args.timezone)
    target = target_of(args.target)
    labels = labels_of(args.label)
    errors = list(parsed.errors)
    specs, rows = [], []
    for entry in parsed.entries:
        try:  # the service's own check of the rule, and its next time
            shown = client.preview("cron", cron=entry.cron, timezone=entry.timezone, count=1)
        except ProblemError as exc:
            if exc.status is None or exc.status >= 500:
                raise
            errors.append((entry.line, "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
                           or str(exc)))  # fmt: skip
            continue
        spec = {"payload": entry.command, "recurring": "cron", "cron": entry.cron,
                "timezone": entry.timezone, "target": target}  # fmt: skip
        spec |= {"name": entry.name} if entry.name else {}
        spec |= {"labels": labels} if labels else {}
        specs.append(transfer.Line(entry.line, spec))
        next_time = shown.times[0].local if shown.times else None
        rows.append((entry.line, entry.name, entry.cron, entry.timezone, next_time, entry.command))
    if args.json:
        print(json.dumps([line.spec | {"line": line.number} for line in specs], indent=2))
    else:
        print(table(["LINE", "NAME", "CRON", "TIMEZONE", "NEXT", "PAYLOAD"], rows))
    for number, why in sorted(errors):
        print(f"line {number}: {why}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} line(s) cannot be imported; nothing was created", file=sys.stderr)
        return 1
    if not specs:
        print("no jobs in the file", file=sys.stderr)
        return 0
    if not args.yes:
        print(f"{len(specs)} job(s) would be created; run again with --yes", file=sys.stderr)
        return 0
    if len(specs) > transfer.BATCH:
        raise UsageError(f"at most {transfer.BATCH} lines at once, so all or none is created")
    made = transfer.create_in_batches(client, specs)
    print(f"created {len(made)} job(s)", file=sys.stderr)
    return 0


def import_jobs(client: Client, args: argparse.Namespace) -> int:
    lines, errors = transfer.read_lines(read_file(args.file))
    for number, why in errors:
        print(f"line {number}: {why}", file=sys.stderr)
    if errors:
        print("nothing was created", file=sys.stderr)
        return 1
    made = transfer.create_in_batches(client, lines) if lines else []
    if args.json:
        for job in made:  # new webhooks' signing secrets are in these answers, this once
            print(json.dumps(job.raw, ensure_ascii=False))
    renewed = sum(1 for line in lines if needs_new_secret(line.spec))
    print(f"created {len(made)} job(s)", file=sys.stderr)
    if renewed:
        print(f"{renewed} webhook job(s) got new signing secrets (see --json)", file=sys.stderr)
    return 0


def needs_new_secret(spec: dict[str, Any]) -> bool:
    target = spec.get("target") or {}
    return target.get("type") == "webhook" and not target.get("secret")


def export(client: Client, args: argparse.Namespace) -> None:
    jobs = client.list_jobs(status=args.status, labels=args.label or None, limit=1000)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        count = 0
        for line in transfer.export_lines(jobs, include_completed=args.include_completed):
            out.write(line + "\n")
            count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {count} job(s)", file=sys.stderr)


# -- the parser --------------------------------------------------------------------------


def common_options() -> argparse.ArgumentParser:
    """--url, --api-key, --json: accepted before or after the command words."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="the service (SCHEDULER_URL)")
    common.add_argument(
        "--api-key", default=argparse.SUPPRESS, help="sent as a bearer token (SCHEDULER_API_KEY)"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output, for scripts"
    )
    return common


def job_fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--payload")
    parser.add_argument("--at", help="RFC 3339; without an offset, a wall time in --timezone")
    parser.add_argument("--minute", type=int, help="minutes since the Unix epoch, UTC")
    parser.add_argument("--recurring", choices=["none", "daily", "weekly", "interval", "cron"])
    parser.add_argument("--cron", help="five fields (six with seconds); implies --recurring cron")
    parser.add_argument("--interval", type=int, help="seconds; implies --recurring interval")
    parser.add_argument("--timezone", help="IANA zone (default UTC)")
    parser.add_argument("--name")
    parser.add_argument("--target", help="queue:NAME, sqs:QUEUE_URL, an http(s) URL, or JSON")
    parser.add_argument("--label", action="append", metavar="KEY=VALUE")
    parser.add_argument("--retry-attempts", type=int)
    parser.add_argument("--spec", help="the job as the API's JSON (flags override its fields)")
    parser.add_argument("--file", help="a file holding the job's JSON ('-': standard input)")


def list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=LIST_LIMIT, help="rows at most")
    parser.add_argument("--all", action="store_true", help="every row, page after page")


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="scheduler",
        parents=[common],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    groups = parser.add_subparsers(dest="group", required=True)

    def command(sub: Any, name: str, func: Command, help_: str) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = sub.add_parser(name, parents=[common], help=help_)
        made.set_defaults(func=func)
        return made

    jobs = groups.add_parser("jobs", help="jobs (schedules)").add_subparsers(
        dest="command", required=True
    )
    listing = command(jobs, "list", jobs_list, "jobs, oldest first")
    listing.add_argument("--status", choices=["active", "paused", "completed"])
    listing.add_argument("--recurring", choices=["none", "daily", "weekly", "interval", "cron"])
    listing.add_argument("--target-type", choices=["queue", "sqs", "webhook"])
    listing.add_argument("--search", help="in names and payloads")
    listing.add_argument("--label", action="append", metavar="KEY[:VALUE]")
    listing.add_argument("--sort", choices=["created", "-created", "nextRun", "name"])
    list_options(listing)
    command(jobs, "get", jobs_get, "one job").add_argument("job_id")
    creating = command(jobs, "create", jobs_create, "create a job")
    job_fields(creating)
    creating.add_argument("--idempotency-key", help="create once, whatever the retries")
    updating = command(jobs, "update", jobs_update, "change a job's fields (the rest stays)")
    updating.add_argument("job_id")
    job_fields(updating)
    for action, help_ in (
        ("pause", "pause jobs"),
        ("resume", "resume paused jobs"),
        ("run", "fire jobs once, now"),
        ("delete", "delete jobs and their runs"),
    ):
        acting = command(jobs, action, action_command(action), help_)
        acting.add_argument("job_ids", nargs="*", metavar="JOB_ID")
        acting.add_argument("--label", action="append", metavar="KEY=VALUE",
                            help="every job carrying these labels")  # fmt: skip
        if action == "pause":
            acting.add_argument("--note", help="why (one job)")
            acting.add_argument("--until", help="RFC 3339: it resumes by itself then (one job)")

    runs = groups.add_parser("runs", help="run history").add_subparsers(
        dest="command", required=True
    )
    run_listing = command(runs, "list", runs_list, "runs, newest first")
    run_listing.add_argument("--job", help="one job's runs")
    run_listing.add_argument(
        "--status", choices=["pending", "delivering", "retrying", "delivered", "dead"]
    )
    run_listing.add_argument("--since", help="RFC 3339: fired at or after")
    run_listing.add_argument("--until", help="RFC 3339: fired before")
    list_options(run_listing)
    command(runs, "retry", runs_retry, "retry dead runs").add_argument("run_ids", nargs="+")

    previewing = command(groups, "preview", preview, "the next times of a rule, in words")
    previewing.add_argument(
        "--recurring", choices=["none", "daily", "weekly", "interval", "cron", "rrule"]
    )
    for name in ("--at", "--cron", "--rrule", "--timezone", "--after"):
        previewing.add_argument(name)
    previewing.add_argument("--minute", type=int)
    previewing.add_argument("--interval", type=int)
    previewing.add_argument("--count", type=int, default=5)
    previewing.add_argument("--explain", action="store_true", help="each note in words")
    previewing.add_argument("--job", help="a stored job's next times")
    previewing.add_argument("--spec", help="a whole job as the API's JSON (exclude, dst, …)")
    previewing.add_argument("--file", help="the same from a file (- for stdin)")

    queue = groups.add_parser("queue", help="the built-in queue").add_subparsers(
        dest="command", required=True
    )
    receiving = command(queue, "receive", queue_receive, "receive messages")
    receiving.add_argument("queue", nargs="?", default="default")
    receiving.add_argument("--max", type=int, default=10)
    receiving.add_argument("--wait", type=float, default=0.0, help="long-poll seconds")
    receiving.add_argument("--visibility-timeout", type=float, default=30.0)
    acking = command(queue, "ack", queue_ack, "acknowledge (delete) received messages")
    acking.add_argument("queue")
    acking.add_argument("receipts", nargs="+")
    command(queue, "stats", queue_stats, "depth and in-flight count").add_argument(
        "queue", nargs="?", default="default"
    )

    importing = groups.add_parser("import", help="jobs from a crontab or an export").add_subparsers(
        dest="command", required=True
    )
    from_cron = command(importing, "crontab", import_crontab, "crontab lines as jobs")
    from_cron.add_argument("file")
    from_cron.add_argument(
        "--target",
        required=True,
        help="where the runs go: queue:NAME, sqs:URL, an http(s) URL, or JSON",
    )
    from_cron.add_argument("--timezone", default="UTC", help="until a CRON_TZ= line says")
    from_cron.add_argument("--label", action="append", metavar="KEY=VALUE")
    from_cron.add_argument("--yes", action="store_true", help="create them (else: only show)")
    from_export = command(importing, "jobs", import_jobs, "jobs from JSON lines (an export)")
    from_export.add_argument("file")

    exporting = command(groups, "export", export, "every job as JSON lines")
    exporting.add_argument("--output", "-o", help="a file (default: standard output)")
    exporting.add_argument("--status", choices=["active", "paused", "completed"])
    exporting.add_argument("--label", action="append", metavar="KEY[:VALUE]")
    exporting.add_argument(
        "--include-completed",
        action="store_true",
        help="completed jobs too (a one-shot among them fires again)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.json = getattr(args, "json", False)
    url = getattr(args, "url", None) or os.environ.get("SCHEDULER_URL") or DEFAULT_URL
    key = getattr(args, "api_key", None) or os.environ.get("SCHEDULER_API_KEY") or None
    try:
        with Client(url, key) as client:
            return int(args.func(client, args) or 0)
    except ProblemError as exc:
        print(f"scheduler: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"scheduler: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
