#!/usr/bin/env python3
"""Sustained load on the compose stack with locust (from the dev venv): req/s, p50/p99 and gunicorn worker RSS.

Usage: loadtest.py --url URL --container WEB_CONTAINER [--duration 60] [--concurrency 20] [--json F]

Half the clients request /, the other half /visits (a database round trip each), all through
the stack's published port. Worker RSS is read with `docker top` (the image has no ps) after a
short warm-up, because a worker's first requests load code and libpq that it then keeps: the
growth that matters is what sustained load adds on top. Exits 1 on any error, any non-2xx
answer, a worker replaced during the run, or RSS growth of 10 % or more.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

PATHS = ("/", "/visits")  # what scripts/locustfile.py requests, half of the users each
LOCUSTFILE = pathlib.Path(__file__).with_name("locustfile.py")
WARMUP_SECONDS = 3
MAX_RSS_GROWTH = 0.10


def workers(container):
    """{pid: rss_kib} of the gunicorn workers: the processes whose parent is the master (PID 1's)."""
    out = subprocess.run(
        ["docker", "top", container, "-o", "pid,ppid,rss,args"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1:]
    rows = [line.split(None, 3) for line in out]
    pids = {row[0] for row in rows}
    masters = {row[0] for row in rows if row[1] not in pids}
    return {int(pid): int(rss) for pid, ppid, rss, _ in rows if ppid in masters}


def locust(url, seconds, clients, record):
    """Run locust headless for `seconds` with `clients` users (half on each path); return the
    per-path record its locustfile writes: statuses, connection errors, response times."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "--locustfile",
            str(LOCUSTFILE),
            "--headless",
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--host",
            url,
            "--users",
            str(clients),
            "--spawn-rate",
            str(clients),
            "--run-time",
            f"{seconds}s",
            "--stop-timeout",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env={**os.environ, "LOADTEST_RECORD": str(record)},
    )
    if not record.exists():
        raise RuntimeError(f"locust exited {proc.returncode} without a record:\n{proc.stdout}{proc.stderr}")
    return json.loads(record.read_text())


def percentile(sorted_values, fraction):
    """The value below which `fraction` of the sorted values lie (nearest rank)."""
    if not sorted_values:
        return None
    return sorted_values[max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))]


def summary(entry, seconds):
    """Requests/s, p50 and p99 (seconds), status counts and connection errors of one path."""
    times = sorted(entry["times_s"])
    return {
        "requests_per_second": round(len(times) / seconds, 1),
        "p50_s": percentile(times, 0.50),
        "p99_s": percentile(times, 0.99),
        "statuses": {int(code): count for code, count in entry["statuses"].items()},
        "errors": entry["errors"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the stack's published URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--container", required=True, help="the web service's container (for worker RSS)")
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--json", help="write the results here as well")
    args = parser.parse_args()
    per_path = max(1, args.concurrency // len(PATHS))
    with tempfile.TemporaryDirectory() as tmp:
        locust(args.url, WARMUP_SECONDS, per_path * len(PATHS), pathlib.Path(tmp) / "warmup.json")
        rss_start = workers(args.container)
        started = time.monotonic()
        records = locust(args.url, args.duration, per_path * len(PATHS), pathlib.Path(tmp) / "run.json")
        elapsed = time.monotonic() - started
    rss_end = workers(args.container)

    results = {
        path: summary(records.get(path, {"statuses": {}, "errors": 0, "times_s": []}), args.duration) for path in PATHS
    }
    total_start, total_end = sum(rss_start.values()), sum(rss_end.values())
    report = {
        "duration_s": args.duration,
        "concurrency": per_path * len(PATHS),
        "elapsed_s": round(elapsed, 1),
        "paths": results,
        "worker_rss_kib": {"start": rss_start, "end": rss_end},
        "worker_rss_growth": round(total_end / total_start - 1, 4) if total_start else None,
        "workers_replaced": sorted(set(rss_start) ^ set(rss_end)),
    }

    print(f"{args.duration} s, {per_path} clients on each of {', '.join(PATHS)} ({report['concurrency']} in all)")
    print(f"{'path':<8} {'req/s':>8} {'p50':>9} {'p99':>9} {'non-2xx':>8} {'errors':>7}")
    for path, r in results.items():
        bad = sum(n for code, n in r["statuses"].items() if not 200 <= code < 300)
        print(
            f"{path:<8} {r['requests_per_second'] or 0:>8.1f} {(r['p50_s'] or 0) * 1000:>7.1f}ms "
            f"{(r['p99_s'] or 0) * 1000:>7.1f}ms {bad:>8} {r['errors']:>7}"
        )
    print(
        f"worker RSS: {total_start / 1024:.1f} MiB at start, {total_end / 1024:.1f} MiB at end "
        f"({report['worker_rss_growth']:+.1%}), per worker {rss_start} -> {rss_end} KiB"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)

    failures = []
    for path, r in results.items():
        if r["errors"] or not r["statuses"] or any(not 200 <= code < 300 for code in r["statuses"]):
            failures.append(f"{path}: {r['errors']} errors, statuses {r['statuses']}")
    if report["workers_replaced"]:
        failures.append(f"workers replaced during the run: {report['workers_replaced']}")
    if report["worker_rss_growth"] is None or report["worker_rss_growth"] >= MAX_RSS_GROWTH:
        failures.append(f"worker RSS grew {report['worker_rss_growth']} (limit {MAX_RSS_GROWTH:.0%})")
    for failure in failures:
        print(f"loadtest: FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
