"""The service's benchmark (`make bench`): fires, lag, API, scale, a peer, SQS and webhooks.

Everything runs against real processes on SQLite and PostgreSQL; docs/BENCHMARKS.md says how
each figure is defined.

    .venv/bin/python scripts/bench.py [--quick] [--db sqlite|postgresql|both]
        [--only burst,window,lag,api,scale,peer,sqs,delivery,brokers,start] [--runs 3]
        [--jobs-scale 1000000] [--profile] [--write]

--quick: small sizes, one run each (a smoke check, under 2 minutes).
--write: write the service section of docs/BENCHMARKS.md (the timing section stays): a run of
every part on both databases replaces it; a partial run (--only, one --db) replaces only the
rows of the parts and databases it ran, keeping the others, their sources and the notes.
--profile: the first 1-dispatcher run of the largest burst runs under py-spy, writing
docs/profile-<db>.svg.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # app and tests.support; this folder (bench/) is already there

from bench import api, brokers, delivery, dispatch, peer, report, sqs  # noqa: E402
from bench.common import FULL, QUICK, Context, Databases, Results  # noqa: E402

Part = Callable[[Context, Databases, str], None]
PARTS: dict[str, Part] = {
    "burst": dispatch.burst,
    "window": dispatch.windowed,
    "lag": dispatch.steady,
    "api": api.creates,
    "scale": api.scale,
    "peer": peer.peer,
    "sqs": sqs.sqs,
    "delivery": delivery.delivery,
    "brokers": brokers.brokers,
    "start": api.start,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run each")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; quick: 1)")
    parser.add_argument("--jobs-scale", type=int, help="jobs stored for the scale part")
    parser.add_argument("--profile", action="store_true", help="py-spy the largest burst")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    return args


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so every part stops its processes and drops its databases.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    if args.jobs_scale:
        sizes = dataclasses.replace(sizes, scale_jobs=args.jobs_scale)
    runs = args.runs or (1 if args.quick else 3)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    parts = [name for name in PARTS if name in args.only.split(",")]
    command = shlex.join([".venv/bin/python", "scripts/bench.py", *sys.argv[1:]])
    workdir = Path(tempfile.mkdtemp(prefix="bench_"))
    ctx = Context(workdir, runs, sizes, Results(), profile=args.profile)
    databases = Databases(workdir)
    began = time.monotonic()
    print(f"{command}\nlogs and SQLite files in {workdir} (removed at the end if all went well)")
    try:
        for kind in kinds:
            for name in parts:
                print(f"{name} on {kind}")
                try:
                    PARTS[name](ctx, databases, kind)
                except Exception as exc:  # one broken part must not hide the others' figures
                    traceback.print_exc()
                    ctx.results.anomaly(f"{name} on {kind} failed: {exc!r}"[:500])
    finally:
        databases.close()
        sqs.stop_endpoint(ctx)
        if not ctx.results.anomalies:  # keep the logs only when there is something to read
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{report.table(ctx.results)}\n\ntook {time.monotonic() - began:.0f} s")
    if ctx.results.anomalies:
        print("anomalies:\n" + "\n".join(f"  {line}" for line in ctx.results.anomalies))
        print(f"logs kept in {workdir}")
    if args.write:
        report.write(ctx.results, command, kinds, runs, args.quick, parts, list(PARTS))
        print(f"wrote {report.BENCHMARKS.relative_to(ROOT)}")
        if ctx.plans:
            report.write_plans(ctx.plans, command, kinds)
            print(f"wrote {report.PLANS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
