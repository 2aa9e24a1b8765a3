#!/usr/bin/env python3
"""Sustained load on the compose stack with hey: req/s, p50/p99 and gunicorn worker RSS.

Usage: loadtest.py --url URL --container WEB_CONTAINER [--duration 60] [--concurrency 20] [--json F]

Half the clients request /, the other half /visits (a database round trip each), all through
the stack's published port. Worker RSS is read with `docker top` (the image has no ps) after a
short warm-up, because a worker's first requests load code and libpq that it then keeps: the
growth that matters is what sustained load adds on top. Exits 1 on any error, any non-2xx
answer, a worker replaced during the run, or RSS growth of 10 % or more.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import time

PATHS = ("/", "/visits")
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


def hey(url, seconds, clients):
    """Start hey for `seconds` with `clients` concurrent clients; return the process."""
    return subprocess.Popen(
        ["hey", "-z", f"{seconds}s", "-c", str(clients), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def summary(output):
    """Requests/s, p50 and p99 (seconds), status counts and error count from hey's report."""

    def number(pattern):
        match = re.search(pattern, output)
        return float(match.group(1)) if match else None

    statuses = {int(code): int(count) for code, count in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)}
    errors_section = output.split("Error distribution:", 1)[1] if "Error distribution:" in output else ""
    errors = sum(int(n) for n in re.findall(r"\[(\d+)\]", errors_section))
    return {
        "requests_per_second": number(r"Requests/sec:\s+([\d.]+)"),
        "p50_s": number(r"50%+ in ([\d.]+) secs"),
        "p99_s": number(r"99%+ in ([\d.]+) secs"),
        "statuses": statuses,
        "errors": errors,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the stack's published URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--container", required=True, help="the web service's container (for worker RSS)")
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--json", help="write the results here as well")
    args = parser.parse_args()
    if not shutil.which("hey"):
        sys.exit("loadtest: hey is not installed (`make hey` installs Debian's package)")

    per_path = max(1, args.concurrency // len(PATHS))
    for proc in [hey(args.url + path, WARMUP_SECONDS, per_path) for path in PATHS]:
        proc.communicate()
    rss_start = workers(args.container)
    started = time.monotonic()
    procs = {path: hey(args.url + path, args.duration, per_path) for path in PATHS}
    outputs = {path: proc.communicate()[0] for path, proc in procs.items()}
    elapsed = time.monotonic() - started
    rss_end = workers(args.container)

    results = {path: summary(output) for path, output in outputs.items()}
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
