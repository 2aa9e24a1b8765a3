"""The compose stack: the app really talks to Postgres through libpq5, and survives its outages."""

import json
import time

import facts
import pytest
from dockertools import docker_or_fail, http

pytestmark = [pytest.mark.docker, pytest.mark.compose]
CONNECT_TIMEOUT = facts.app_fact("CONNECT_TIMEOUT_S")  # the app's libpq connect_timeout


@pytest.fixture(params=["multi-stage", "distroless"])
def stack(request):
    """The stack (`make up VARIANT=...`): every test below runs against each web image."""
    return request.getfixturevalue("multi_stack" if request.param == "multi-stage" else "distroless_stack")


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


def test_web_runs_the_chosen_variant(stack):
    """VARIANT picks the web image: the stack really runs the image under test."""
    image = docker_or_fail("inspect", "--format", "{{.Config.Image}}", stack.container("web")).stdout.strip()
    assert image.endswith(":" + stack.env["VARIANT"]), image


@pytest.mark.platform
def test_both_services_healthy(stack):
    """compose up --wait left db, web and proxy healthy."""
    for service in ("db", "web", "proxy"):
        health = docker_or_fail("inspect", "--format", "{{.State.Health.Status}}", stack.container(service)).stdout
        assert health.strip() == "healthy", service


@pytest.mark.platform
def test_readyz_reports_postgres_and_libpq_versions(stack):
    """/readyz is 200 and names the server and the libpq psycopg2 links against."""
    status, _, body, _ = readyz(stack)
    assert status == 200, body
    assert body["server_version"].startswith("PostgreSQL 17"), body
    assert body["libpq_version"].startswith("17"), body


def test_database_published_on_no_port(stack):
    """Only the app is reachable from the host; Postgres has no published port."""
    ports = docker_or_fail("inspect", "--format", "{{json .NetworkSettings.Ports}}", stack.container("db")).stdout
    assert all(not bindings for bindings in json.loads(ports).values()), ports


def test_web_published_on_no_port(stack):
    """gunicorn is reachable only through the proxy: the web service publishes nothing."""
    ports = docker_or_fail("inspect", "--format", "{{json .NetworkSettings.Ports}}", stack.container("web")).stdout
    assert all(not bindings for bindings in json.loads(ports).values()), ports


def test_proxy_published_on_loopback_only(stack):
    """The stack's one published port is bound to 127.0.0.1, not to every interface."""
    ports = json.loads(
        docker_or_fail("inspect", "--format", "{{json .NetworkSettings.Ports}}", stack.container("proxy")).stdout
    )
    assert {b["HostIp"] for b in ports["8080/tcp"]} == {"127.0.0.1"}


def test_readyz_503_fast_while_db_stopped_and_recovers(stack):
    """DB stopped: /readyz 503 within connect_timeout + 1 s, /healthz 200; DB back: 200, no web restart."""
    web_started = stack.started_at("web")
    stack.compose("stop", "db")
    try:
        status, headers, body, took = readyz(stack)
        assert status == 503 and headers["Retry-After"], body
        assert took < CONNECT_TIMEOUT + 1, f"/readyz took {took:.2f}s"
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
            assert took < CONNECT_TIMEOUT + 2, f"/readyz took {took:.2f}s"
        assert http(stack.url + "/healthz", timeout=CONNECT_TIMEOUT + 2)[0] == 200
    finally:
        stack.compose("unpause", "db")
    wait_ready(stack)


def test_write_survives_down_and_up(stack):
    """A counter written before `compose down` (volume kept) is still there after `up`."""
    status, _, body = http(stack.url + "/visits", method="POST", data=b"")
    assert status == 200, body
    count = json.loads(body)["visits"]
    stack.compose("down")
    stack.compose("up", "--wait", "--no-build")
    status, _, body = http(stack.url + "/visits")
    assert status == 200 and json.loads(body)["visits"] == count, body
