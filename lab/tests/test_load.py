"""Sustained load through the stack's front stays flat: no errors, workers' memory steady.

`make loadtest` runs scripts/loadtest.py for 60 s and its figures are in the README; here the
same script runs for 15 s, enough to see errors or a leak of any size that matters, while the
suite stays short.
"""

import json
import subprocess
import sys

import pytest
from dockertools import ROOT

pytestmark = [pytest.mark.docker, pytest.mark.compose]
SECONDS = 15


@pytest.fixture(scope="session")
def load(stack, tmp_path_factory):
    """One run of scripts/loadtest.py against the stack: its JSON report."""
    report = tmp_path_factory.mktemp("load") / "load.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "lab" / "scripts" / "loadtest.py"),
            "--url",
            stack.url,
            "--container",
            stack.container("web"),
            "--duration",
            str(SECONDS),
            "--concurrency",
            "20",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 90,
    )
    assert report.exists(), proc.stdout + proc.stderr
    return json.loads(report.read_text())


def test_load_gets_only_2xx_and_no_errors(load):
    """Every request of the run, on / and /visits, answered 2xx; locust saw no connection error."""
    for path, result in load["paths"].items():
        assert result["errors"] == 0, (path, result)
        assert result["statuses"] and all(200 <= int(code) < 300 for code in result["statuses"]), (path, result)


def test_load_keeps_worker_rss_within_10_percent(load):
    """The same gunicorn workers end the run with less than 10 % more memory than they began with."""
    assert load["workers_replaced"] == [], load["worker_rss_kib"]
    assert load["worker_rss_growth"] < 0.10, load["worker_rss_kib"]
