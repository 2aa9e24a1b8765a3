"""Hostile clients: malformed framing never gets a 500, and stalled connections can't stop the service.

Every request gunicorn refuses whatever the app is tried against the image on its own (gunicorn faces
the client); every malformed request against the compose stack's published port (nginx answers, or
passes a well-framed request to gunicorn). Only the app contract's paths are used: what the example
app answers itself is tested in tests/app/test_example_hostile.py.
"""

import functools
import json
import re
import time
import uuid

import facts
import pytest
from dockertools import ROOT, Container, LogWindow, docker_or_fail, http, no_traceback, wait_for_status
from hostile import (
    CASES,
    GUNICORN_ANSWERS,
    GUNICORN_ANSWERS_BEHIND_NGINX,
    exchange,
    http_get_seconds,
    malformed,
    p99_of_probes,
    parse_responses,
    stalled,
    still_open,
)

pytestmark = [pytest.mark.docker]

# Lines that would page someone or hide a crash. nginx writes "[error]"; gunicorn "[ERROR]".
ALARMING = re.compile(r"ERROR|\[error\]|\[crit\]|\[alert\]|\[emerg\]|CRITICAL|Traceback", re.IGNORECASE)
WARNING = re.compile(r"WARNING|\[warn\]", re.IGNORECASE)
# (target, case): on the bare image only what gunicorn answers is the template's; behind nginx, all of it.
PAIRS = [("image", case) for case in CASES if case in GUNICORN_ANSWERS] + [("stack", case) for case in CASES]


def health_path():
    """The contract's liveness path, read when a test runs: collection never needs the app."""
    return facts.contract()["health_path"]


@functools.cache
def requests():
    """The malformed requests, on the health path; bodies over nginx's client_max_body_size."""
    return malformed(health_path(), health_path(), facts.nginx_bytes("client_max_body_size"))


class Target:
    """Where malformed requests go: a published port, and the containers whose logs count."""

    def __init__(self, name, port, containers):
        self.name, self.port, self.containers = name, port, containers

    def logs_after(self, send):
        """Run send(), then return the log lines it caused, once a sentinel request is logged."""
        window = LogWindow(*self.containers)
        send()
        sentinel = f"sentinel-{uuid.uuid4().hex[:8]}"
        http(f"http://127.0.0.1:{self.port}{health_path()}?{sentinel}")
        window.wait_for(sentinel, count=len(self.containers))
        time.sleep(0.2)  # a worker's WARNING and another worker's access line race to the pipe
        return [line for line in window.new_lines() if sentinel not in line]


@pytest.fixture(scope="session")
def bare(multi_image):
    """The image alone, as `docker run -p` starts it: gunicorn faces the clients itself."""
    app = Container(multi_image)
    wait_for_status(app.url + health_path())
    yield app
    app.remove()


@pytest.fixture
def target(request):
    """The bare image or the stack's front, as the test's (target, case) pair names it."""
    if request.param == "image":
        app = request.getfixturevalue("bare")
        return Target("image", int(app.url.rsplit(":", 1)[1]), [app.name])
    stack = request.getfixturevalue("stack")
    return Target("stack", stack.port, [stack.container("proxy"), stack.container("web")])


@pytest.mark.parametrize("target,case", PAIRS, indirect=["target"])
def test_malformed_request_answers_4xx(target, case):
    """The right 4xx, no traceback, and the server answers the next client; gunicorn's own page where
    gunicorn answers, nginx's JSON (deploy/proxy/nginx.conf) where nginx does."""
    data, expected = requests()[case]
    responses = parse_responses(exchange(target.port, data))
    assert [status for status, _, _ in responses] == [expected], responses
    _, headers, body = responses[0]
    assert no_traceback(body), body
    if target.name == "image" or case in GUNICORN_ANSWERS_BEHIND_NGINX:
        assert not headers["content-type"].startswith("application/json"), headers
    else:
        assert headers["content-type"].startswith("application/json"), headers
        assert json.loads(body)["status"] == expected, body
    assert http(f"http://127.0.0.1:{target.port}{health_path()}")[0] == 200


@pytest.mark.parametrize("target,case", PAIRS, indirect=["target"])
def test_malformed_request_logs_at_most_one_warning(target, case):
    """No ERROR line and no traceback in any container's log; at most one WARNING."""
    data, _ = requests()[case]
    lines = target.logs_after(lambda: exchange(target.port, data))
    assert not [line for line in lines if ALARMING.search(line)], lines
    assert len([line for line in lines if WARNING.search(line)]) <= 1, lines


@pytest.mark.parametrize("target,case", PAIRS, indirect=["target"])
def test_malformed_request_does_not_poison_keepalive(target, case):
    """A valid request sent right behind a malformed one is never misread as part of it."""
    data, expected = requests()[case]
    follow = f"GET {health_path()} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    responses = parse_responses(exchange(target.port, data + follow, responses=2))
    assert responses and responses[0][0] == expected, responses
    # The server may close after the error (then nothing else comes) or answer the next
    # request; anything else means bytes of the bad request were read as a request.
    assert [status for status, _, _ in responses[1:]] in ([], [200]), responses


def test_body_cut_short_never_reaches_the_app(stack):
    """Through the front, a body cut short by the client is dropped before gunicorn sees it."""
    marker = uuid.uuid4().hex[:8]
    data = f"POST {health_path()}?{marker} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc".encode()
    proxy, web = stack.container("proxy"), stack.container("web")
    window = LogWindow(web)
    proxy_window = LogWindow(proxy)
    raw = exchange(stack.port, data, half_close=True)
    # The client has gone: nginx logs the request as a 400 and sends nothing it could read.
    proxy_lines = proxy_window.wait_for(marker)
    assert any(f'{marker} HTTP/1.1" 400 ' in line for line in proxy_lines), proxy_lines
    assert all(status >= 400 for status, _, _ in parse_responses(raw)), raw
    assert not [line for line in window.new_lines() if marker in line]


# --- stalled clients --------------------------------------------------------------------------

STALLED = 200  # partial-header connections, and as many partial-body ones
PROBES = 100  # sequential GETs of the health path, and as many of the app's pages (warm_paths)
FRONT_CLIENT_TIMEOUT = max(facts.nginx_seconds(name) for name in ("client_header_timeout", "client_body_timeout"))


@pytest.fixture(scope="module")
def stalled_front(stack):
    """200 connections holding half a request line and headers, 200 holding half a body."""
    with stalled(stack.port, STALLED, STALLED) as socks:
        yield time.monotonic(), socks


def test_front_answers_within_1s_p99_while_400_clients_stall(stack, stalled_front):
    """While 400 stalled connections stay open, 200 requests all answer with p99 <= 1 s: the health
    path 200, the app's pages (warm_paths) below 500."""
    opened, socks = stalled_front
    health, pages = health_path(), facts.contract()["warm_paths"]
    paths = [path for page in pages for path in (health, page)]
    p99 = p99_of_probes(stack.port, paths, lambda path, status: status == 200 or path != health and status < 500,
                        PROBES * 2)  # fmt: skip
    assert p99 <= 1.0, f"p99 {p99:.3f}s"
    # The measurement counts only if the stalled clients were still there throughout.
    assert time.monotonic() - opened < FRONT_CLIENT_TIMEOUT
    assert sum(map(still_open, socks)) == len(socks)


def test_front_drops_stalled_clients_within_its_timeout(stalled_front):
    """nginx closes every stalled connection once its client timeout passes (bounded cost)."""
    opened, socks = stalled_front
    deadline = opened + FRONT_CLIENT_TIMEOUT + 5
    while any(map(still_open, socks)) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = sum(map(still_open, socks))
    assert left == 0, f"{left} stalled connections still open {time.monotonic() - opened:.0f}s after they stalled"


def bare_tolerance(port, limit=STALLED):
    """How many stalled connections the bare image takes while its health path still answers within 1 s."""
    for count in range(limit + 1):
        with stalled(port, count, 0):
            time.sleep(0.2)
            status, _ = http_get_seconds(port, health_path(), timeout=1)
        if status != 200:
            return count - 1
    return limit


def test_proxy_readme_states_how_many_stalled_clients_the_bare_image_tolerates(bare):
    """Measured, not a virtue: deploy/proxy/README.md's number is what the image does (WEB_CONCURRENCY=2)."""
    tolerated = bare_tolerance(int(bare.url.rsplit(":", 1)[1]))
    readme = (ROOT / "deploy" / "proxy" / "README.md").read_text()
    stated = re.search(r"tolerates (\d+) stalled connection", readme)
    assert stated, "deploy/proxy/README.md lost its sentence on stalled connections"
    assert int(stated.group(1)) == tolerated, f"measured {tolerated}, README says {stated.group(1)}"


def test_stack_access_log_ignores_a_forged_forwarded_for(stack):
    """Behind nginx, which replaces X-Forwarded-For, a client can't choose the address gunicorn logs.
    (That it logs the client's, not nginx's, is the example app's doing: tests/app/test_example_hostile.py.)"""
    marker = uuid.uuid4().hex[:8]
    window = LogWindow(stack.container("web"))
    request = (
        f"GET {health_path()}?{marker} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
    )
    assert parse_responses(exchange(stack.port, request.encode()))[0][0] == 200
    logged = [line.split()[0] for line in window.wait_for(marker) if marker in line]
    assert len(logged) == 1 and logged[0] != "203.0.113.9", logged


def test_bare_image_access_log_ignores_a_forged_forwarded_for(bare):
    """Without a trusted proxy in front, X-Forwarded-For can't choose the address gunicorn logs."""
    marker = uuid.uuid4().hex[:8]
    window = LogWindow(bare.name)
    request = (
        f"GET {health_path()}?{marker} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
    )
    assert parse_responses(exchange(int(bare.url.rsplit(":", 1)[1]), request.encode()))[0][0] == 200
    logged = [line.split()[0] for line in window.wait_for(marker) if marker in line]
    assert len(logged) == 1 and logged[0] != "203.0.113.9", logged


def test_stack_stops_cleanly_while_clients_stall(stack):
    """compose stop with stalled clients: every container of the stack exits 0 within its grace period, no SIGKILL."""
    with stalled(stack.port, 50, 50):
        time.sleep(0.5)
        started = time.monotonic()
        stack.compose("stop", timeout=60)
        took = time.monotonic() - started
    try:
        # Every service, whatever the app runs beside it (the example's database too).
        containers = stack.compose("ps", "--all", "--quiet").stdout.split()
        names = docker_or_fail(
            "inspect", "--format", '{{index .Config.Labels "com.docker.compose.service"}}', *containers
        )
        assert {"web", "proxy"} <= set(names.stdout.split()), names.stdout
        for container in containers:
            state = json.loads(docker_or_fail("inspect", "--format", "{{json .State}}", container).stdout)
            assert state["ExitCode"] == 0, (container, state)
        assert took < 15, f"compose stop took {took:.1f}s"
    finally:
        stack.compose("up", "--wait", "--no-build")
