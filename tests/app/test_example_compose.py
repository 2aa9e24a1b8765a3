"""The example app in the compose stack: it really talks to Postgres through libpq5, survives its
outages, and keeps its visits across down + up. The template's stack tests are tests/test_compose.py."""

import json
import time

import facts
import pytest
from dockertools import docker_or_fail, http

pytestmark = [pytest.mark.docker, pytest.mark.compose]


@pytest.fixture(params=["multi-stage", "distroless"])
def stack(request):
    """The stack (`make up VARIANT=...`): every test below runs against each web image."""
    return request.getfixturevalue("multi_stack" if request.param == "multi-stage" else "distroless_stack")


def connect_timeout():
    """The app's libpq connect_timeout, read when a test runs (collection never imports the app)."""
    return facts.app_fact("CONNECT_TIMEOUT_S")


def readyz(stack, timeout=10):
    """(status, headers, json body, seconds taken) of one /readyz."""
    start = time.monotonic()
    status, headers, body = http(stack.url + "/readyz", timeout=timeout)
    return status, headers, json.loads(body), time.monotonic() - start


def wait_ready(stack, timeout=30):
    """Poll /readyz until 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, body, _ = readyz(stack)
        if status == 200:
            return body
        time.sleep(0.5)
    raise AssertionError(f"/readyz not 200 within {timeout}s: {body}")


@pytest.mark.platform
def test_db_healthy(stack):
    """compose up --wait left db healthy."""
    health = docker_or_fail("inspect", "--format", "{{.State.Health.Status}}", stack.container("db")).stdout
    assert health.strip() == "healthy"


@pytest.mark.platform
def test_readyz_reports_postgres_and_libpq_versions(stack):
    """/readyz is 200 and names the server and the libpq psycopg2 links against."""
    status, _, body, _ = readyz(stack)
    assert status == 200, body
    assert body["server_version"].startswith("PostgreSQL 17"), body
    assert body["libpq_version"].startswith("17"), body


def test_readyz_503_fast_while_db_stopped_and_recovers(stack):
    """DB stopped: /readyz 503 within connect_timeout + 1 s, /healthz 200; DB back: 200, no web restart."""
    web_started = stack.started_at("web")
    stack.compose("stop", "db")
    try:
        status, headers, body, took = readyz(stack)
        assert status == 503 and headers["Retry-After"], body
        assert took < connect_timeout() + 1, f"/readyz took {took:.2f}s"
        assert http(stack.url + "/healthz")[0] == 200
    finally:
        stack.compose("start", "db")
    wait_ready(stack)
    assert stack.started_at("web") == web_started


def test_readyz_bounded_while_db_paused(stack):
    """DB frozen (packets unanswered): /readyz still answers 503 in bounded time; no worker hangs."""
    stack.compose("pause", "db")
    try:
        for _ in range(2):
            status, _, body, took = readyz(stack, timeout=20)
            assert status == 503, body
            assert took < connect_timeout() + 2, f"/readyz took {took:.2f}s"
        assert http(stack.url + "/healthz", timeout=connect_timeout() + 2)[0] == 200
    finally:
        stack.compose("unpause", "db")
    wait_ready(stack)


def test_visits_survive_down_and_up(stack):
    """A counter written before `compose down` (volume kept) is still there after `up`."""
    status, _, body = http(stack.url + "/visits", method="POST", data=b"")
    assert status == 200, body
    count = json.loads(body)["visits"]
    stack.compose("down")
    stack.compose("up", "--wait", "--no-build")
    status, _, body = http(stack.url + "/visits")
    assert status == 200 and json.loads(body)["visits"] == count, body
