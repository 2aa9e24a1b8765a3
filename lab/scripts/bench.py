#!/usr/bin/env python3
"""Time cold, code-only and requirements-only rebuilds of both Dockerfiles (standard library only).

Usage: bench.py [--image pyslim] [--runs 3] [--json F] [--logs DIR] [docker build flags ...]

Every option this script does not know is passed to each `docker build` unchanged
(e.g. --build-arg PYTHON_IMAGE=... --secret id=ca,src=...). The builds run on a copy of the
build context in a temporary directory, so your files are never modified; the images are
tagged IMAGE-bench:multi-stage / IMAGE-bench:single-stage and removed at the end.
Each figure is the median of --runs timed builds; a warm-up build before the warm scenarios
is not timed. Builds by others on the same engine skew the timings: run it on a quiet machine.
"""

import argparse
import datetime
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

DOCKERFILES = {
    "multi-stage": "Dockerfile",
    "single-stage": "Dockerfile.single_stage",
    "distroless": "Dockerfile.distroless",
}
PRUNE_CACHE_MOUNTS = ("builder", "prune", "--force", "--filter", "type=exec.cachemount")
SCENARIOS = {  # name -> (file changed before each build or None, what it measures)
    "cold": (
        None,
        "docker build --no-cache, after `docker " + " ".join(PRUNE_CACHE_MOUNTS) + "`: "
        "no layer cache and no BuildKit cache mounts (pip's cache included), so pip downloads "
        "every package and compiles psycopg2 again. The prune drops every cache mount on the "
        "engine, other projects' too.",
    ),
    "code-only": ("app.py", "after a warm build, a unique comment line appended to app.py"),
    "requirements": (
        "requirements.txt",
        "after a warm build, a unique comment line appended to "
        "requirements.txt (same pins): the pip layer reruns; the multi-stage build keeps "
        "pip's cache (--mount=type=cache: downloads and the built psycopg2 wheel), the "
        "single-stage one runs pip with --no-cache-dir and compiles psycopg2 again",
    ),
}
CODE_ONLY_TARGET = 5.0  # seconds, from the issue
TAIL_LINES = 30


def log(message):
    """Print a progress or error message on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def docker_result(*args):
    """The completed `docker ...` process (output captured), whatever its exit code: callers check."""
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def copy_context(source, target):
    """Copy the Dockerfiles, .dockerignore and the build context docker itself selects with it."""
    proc = subprocess.run(
        ["docker", "build", "--quiet", "--output", "type=tar,dest=-", "--file", "-", source],
        input=b"FROM scratch\nCOPY . /\n",
        capture_output=True,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as context:
        context.extractall(target, filter="data")
    for name in [*DOCKERFILES.values(), ".dockerignore"]:
        shutil.copy2(os.path.join(source, name), os.path.join(target, name))


def append_comment(path):
    """Append a unique comment line, which changes the file's content but not its meaning."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"# bench {uuid.uuid4().hex}\n")


def psycopg2_source(output):
    """Say, from a build log, how pip got psycopg2 (or that pip did not run)."""
    if "Building wheel for psycopg2" in output:
        return "compiled"
    lines = [line for line in output.splitlines() if "psycopg2" in line and "Hash" not in line]
    if any("Using cached psycopg2" in line and line.rstrip().endswith(".whl") for line in lines):
        return "cached wheel"
    return "pip did not run" if not any("Collecting psycopg2" in line for line in lines) else "other"


def build(context, dockerfile, tag, flags, no_cache, image_ids):
    """Run one docker build; return (seconds, output, ok) and remember the image it made."""
    iidfile = os.path.join(context, ".iid")
    argv = [
        "docker",
        "build",
        "--progress=plain",
        *flags,
        "--file",
        os.path.join(context, dockerfile),
        "--tag",
        tag,
        "--iidfile",
        iidfile,
        *(["--no-cache"] if no_cache else []),
        context,
    ]
    start = time.monotonic()
    proc = subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "DOCKER_BUILDKIT": "1"}
    )
    seconds = time.monotonic() - start
    if os.path.exists(iidfile):
        with open(iidfile, encoding="utf-8") as f:
            image_ids.add(f.read().strip())
        os.remove(iidfile)
    return seconds, proc.stdout, proc.returncode == 0


def run_scenario(scenario, args, context, flags, image_ids, results):
    """Time --runs builds of each Dockerfile in one scenario, the Dockerfiles taking turns."""
    changed, _ = SCENARIOS[scenario]
    warm_up = [0] if changed else []  # run 0 makes the layer cache and pip's cache mount warm
    for run in warm_up + list(range(1, args.runs + 1)):
        for name, dockerfile in DOCKERFILES.items():
            entry = results[name][scenario]
            label = f"{name} {scenario} " + (f"{run}/{args.runs}" if run else "warm-up")
            if changed:
                append_comment(os.path.join(context, changed))
            else:
                pruned = docker_result(*PRUNE_CACHE_MOUNTS)
                if pruned.returncode != 0:
                    log(f"cache mount prune failed: {pruned.stderr.strip()}")
            log(f"{label} …")
            seconds, output, ok = build(
                context, dockerfile, f"{args.image}-bench:{name}", flags, no_cache=not changed, image_ids=image_ids
            )
            source = psycopg2_source(output)
            if args.logs:
                with open(os.path.join(args.logs, f"{name}-{scenario}-{run}.log"), "w") as f:
                    f.write(output)
            if not ok:
                tail = "\n".join(output.splitlines()[-TAIL_LINES:])
                log(f"FAILED: {label} ({args.image}-bench:{name} from {dockerfile}); last {TAIL_LINES} lines:\n{tail}")
                entry["failures"] += 1
                continue
            log(f"{label} {seconds:.1f} s (psycopg2: {source})")
            if run:
                entry["seconds"].append(round(seconds, 2))
                entry["psycopg2"].append(source)


def median(results, name, scenario):
    """The median time of one Dockerfile in one scenario, or None if no build succeeded."""
    seconds = results[name][scenario]["seconds"]
    return statistics.median(seconds) if seconds else None


def ratio(a, b):
    """a / b, or None when either is missing."""
    return round(a / b, 2) if a is not None and b else None


def summarize(results):
    """Medians, ratios and the code-only target for the report and the JSON."""
    medians = {n: {s: median(results, n, s) for s in SCENARIOS} for n in DOCKERFILES}
    ratios = {
        n: {
            "cold/code-only": ratio(m["cold"], m["code-only"]),
            "cold/requirements": ratio(m["cold"], m["requirements"]),
        }
        for n, m in medians.items()
    }
    ratios["multi/single"] = {s: ratio(medians["multi-stage"][s], medians["single-stage"][s]) for s in SCENARIOS}
    target = {n: None if m["code-only"] is None else m["code-only"] <= CODE_ONLY_TARGET for n, m in medians.items()}
    return medians, ratios, target


def text_report(results, medians, ratios, target):
    """The table, ratios and target lines printed on stdout."""

    def secs(value):
        return "failed" if value is None else f"{value:.1f} s"

    def times(name, scenario):
        runs = results[name][scenario]["seconds"]
        failed = results[name][scenario]["failures"]
        return (
            secs(medians[name][scenario])
            + (f" ({min(runs):.1f}–{max(runs):.1f})" if runs else "")
            + (f" [{failed} failed]" if failed and runs else "")
        )

    def factor(value):
        return "n/a" if value is None else f"{value:.2f}×"

    names = list(DOCKERFILES)
    rows = [("scenario (median)", *names, "multi ÷ single", "psycopg2 (multi / single)")]
    for s in SCENARIOS:
        pip = " / ".join(",".join(sorted(set(results[n][s]["psycopg2"]))) or "-" for n in names)
        rows.append((s, *(times(n, s) for n in names), factor(ratios["multi/single"][s]), pip))
    for key in ("cold/code-only", "cold/requirements"):
        rows.append((key.replace("/", " ÷ "), *(factor(ratios[n][key]) for n in names), "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    met = {None: "", True: " met", False: " NOT met"}
    lines.append(
        f"target: code-only rebuild ≤ {CODE_ONLY_TARGET:.0f} s: "
        + "; ".join(f"{n} {secs(medians[n]['code-only'])}{met[target[n]]}" for n in names)
    )
    lines += ["", "scenarios:"] + [f"  {s}: {desc}" for s, (_, desc) in SCENARIOS.items()]
    return "\n".join(lines)


def cleanup(image, image_ids):
    """Remove the bench tags, then only those images this run built that are left untagged."""
    docker_result("image", "rm", *(f"{image}-bench:{name}" for name in DOCKERFILES))
    for image_id in image_ids:
        tags = docker_result("image", "inspect", "--format", "{{len .RepoTags}}", image_id).stdout.strip()
        if tags == "0":
            docker_result("image", "rm", image_id)


def main():
    """Parse the options, run the three scenarios, report, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--image", default="pyslim", help="name the bench tags start with")
    parser.add_argument("--runs", type=int, default=3, help="timed builds per scenario and Dockerfile")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--logs", help="write every build's log to this directory")
    parser.add_argument(
        "--source",
        default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        help="directory holding the Dockerfiles and the app (default: the repo)",
    )
    args, flags = parser.parse_known_args()
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
    results = {n: {s: {"seconds": [], "psycopg2": [], "failures": 0} for s in SCENARIOS} for n in DOCKERFILES}
    image_ids = set()
    started, load_before = time.monotonic(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pyslim-bench-") as context:
        copy_context(args.source, context)
        try:
            for scenario in SCENARIOS:
                run_scenario(scenario, args, context, flags, image_ids, results)
        finally:
            cleanup(args.image, image_ids)
    medians, ratios, target = summarize(results)
    print(text_report(results, medians, ratios, target))
    duration = time.monotonic() - started
    log(f"done in {duration / 60:.1f} min")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        report = {
            "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "docker_server": docker_result("version", "--format", "{{.Server.Version}}").stdout.strip(),
            "runs": args.runs,
            "build_flags": flags,
            "duration_seconds": round(duration, 1),
            "loadavg_1_5_15": {"start": load_before, "end": os.getloadavg()},
            "scenarios": {s: desc for s, (_, desc) in SCENARIOS.items()},
            "results": results,
            "medians": medians,
            "ratios": ratios,
            "code_only_target": {"max_seconds": CODE_ONLY_TARGET, "met": target},
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    failed = sum(e["failures"] for r in results.values() for e in r.values())
    if failed:
        log(f"{failed} build(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
