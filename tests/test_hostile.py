"""Hostile clients: malformed framing never gets a 500, and stalled connections can't stop the service.

Every malformed request is tried against both the image on its own (gunicorn answers what it can't
parse, the app a body it can't read) and the compose stack's published port (nginx answers, or
passes a well-framed request to gunicorn).
"""

import json
import re
import time
import uuid

import facts
import pytest
from dockertools import ROOT, Container, LogWindow, docker_or_fail, http, no_traceback, wait_for_status
from hostile import exchange, http_get_seconds, parse_responses, stalled, still_open

pytestmark = [pytest.mark.docker]

CHUNKED_POST = b"POST /visits HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
BIG = facts.app_fact("MAX_CONTENT_LENGTH") + 4096  # over the app's limit

# name: (request bytes, the status it must get)
MALFORMED = {
    "chunk-size-not-hex": (CHUNKED_POST + b"zz\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-missing-crlf": (CHUNKED_POST + b"3\r\nabcXX0\r\n\r\n", 400),
    "get-with-bad-chunk": (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    "content-length-not-a-number": (b"POST /visits HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    "content-length-negative": (b"POST /visits HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    "content-length-conflicting": (
        b"POST /visits HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
    "content-length-and-chunked": (
        b"POST /visits HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "request-line-garbage": (b"GARBAGE\r\n\r\n", 400),
    "method-invalid": (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "http-version-unknown": (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    "request-line-too-long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "header-with-nul": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "header-folded": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    "header-space-before-colon": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n", 400),
    "host-twice": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "header-too-large": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "too-many-headers": (
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n",
        431,
    ),
    "body-over-limit-content-length": (
        b"POST /visits HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG + b"x" * BIG,
        413,
    ),
    "body-over-limit-chunked": (CHUNKED_POST + b"%x\r\n" % BIG + b"x" * BIG + b"\r\n0\r\n\r\n", 413),
}
CASES = list(MALFORMED)
# What gunicorn refuses before the app sees it (request line, headers, framing headers): on the bare
# image it answers in its own words (an HTML page); everything else is answered by the app, in JSON.
GUNICORN_ANSWERS = {
    "content-length-not-a-number",
    "content-length-negative",
    "content-length-conflicting",
    "content-length-and-chunked",
    "request-line-garbage",
    "method-invalid",
    "http-version-unknown",
    "request-line-too-long",
    "header-with-nul",
    "header-folded",
    "header-space-before-colon",
    "host-twice",
    "header-too-large",
    "too-many-headers",
}
# nginx has no limit on the number of header fields: that request reaches gunicorn behind it too.
GUNICORN_ANSWERS_BEHIND_NGINX = {"too-many-headers"}
assert GUNICORN_ANSWERS_BEHIND_NGINX < GUNICORN_ANSWERS < set(CASES)
# Lines that would page someone or hide a crash. nginx writes "[error]"; gunicorn "[ERROR]".
ALARMING = re.compile(r"ERROR|\[error\]|\[crit\]|\[alert\]|\[emerg\]|CRITICAL|Traceback", re.IGNORECASE)
WARNING = re.compile(r"WARNING|\[warn\]", re.IGNORECASE)


class Target:
    """Where malformed requests go: a published port, and the containers whose logs count."""

    def __init__(self, name, port, containers):
        self.name, self.port, self.containers = name, port, containers

    def logs_after(self, send):
        """Run send(), then return the log lines it caused, once a sentinel request is logged."""
        window = LogWindow(*self.containers)
        send()
        sentinel = f"sentinel-{uuid.uuid4().hex[:8]}"
        http(f"http://127.0.0.1:{self.port}/healthz?{sentinel}")
        window.wait_for(sentinel, count=len(self.containers))
        time.sleep(0.2)  # a worker's WARNING and another worker's access line race to the pipe
        return [line for line in window.new_lines() if sentinel not in line]


@pytest.fixture(scope="session")
def bare(multi_image):
    """The image alone, as `docker run -p` starts it: gunicorn faces the clients itself."""
    app = Container(multi_image)
    wait_for_status(app.url + "/healthz")
    yield app
    app.remove()


@pytest.fixture(params=["image", "stack"])
def target(request):
    """Each malformed-request test runs against the bare image and against the stack's front."""
    if request.param == "image":
        app = request.getfixturevalue("bare")
        return Target("image", int(app.url.rsplit(":", 1)[1]), [app.name])
    stack = request.getfixturevalue("stack")
    return Target("stack", stack.port, [stack.container("proxy"), stack.container("web")])


@pytest.mark.parametrize("case", CASES)
def test_malformed_request_answers_4xx(target, case):
    """The right 4xx, no traceback, and the server answers the next client; JSON (the app's error
    shape) from the app and from the stack's front, gunicorn's own page where gunicorn answers."""
    data, expected = MALFORMED[case]
    responses = parse_responses(exchange(target.port, data))
    assert [status for status, _, _ in responses] == [expected], responses
    _, headers, body = responses[0]
    assert no_traceback(body), body
    if case in (GUNICORN_ANSWERS if target.name == "image" else GUNICORN_ANSWERS_BEHIND_NGINX):
        assert not headers["content-type"].startswith("application/json"), headers
    else:
        assert headers["content-type"].startswith("application/json"), headers
        assert json.loads(body)["status"] == expected, body
    assert http(f"http://127.0.0.1:{target.port}/healthz")[0] == 200


@pytest.mark.parametrize("case", CASES)
def test_malformed_request_logs_at_most_one_warning(target, case):
    """No ERROR line and no traceback in any container's log; at most one WARNING."""
    data, _ = MALFORMED[case]
    lines = target.logs_after(lambda: exchange(target.port, data))
    assert not [line for line in lines if ALARMING.search(line)], lines
    assert len([line for line in lines if WARNING.search(line)]) <= 1, lines


@pytest.mark.parametrize("case", CASES)
def test_malformed_request_does_not_poison_keepalive(target, case):
    """A valid request sent right behind a malformed one is never misread as part of it."""
    data, expected = MALFORMED[case]
    follow = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    responses = parse_responses(exchange(target.port, data + follow, responses=2))
    assert responses and responses[0][0] == expected, responses
    # The server may close after the error (then nothing else comes) or answer the next
    # request; anything else means bytes of the bad request were read as a request.
    for status, _, body in responses[1:]:
        assert status == 200 and json.loads(body) == {"status": "ok"}, responses
    assert len(responses) <= 2, responses


def test_body_cut_short_answers_400_json(bare):
    """A body that ends (client EOF) before its Content-Length is a 400, not a truncated request."""
    port = int(bare.url.rsplit(":", 1)[1])
    data = b"POST /visits HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
    responses = parse_responses(exchange(port, data, half_close=True))
    assert [status for status, _, _ in responses] == [400], responses
    assert json.loads(responses[0][2])["status"] == 400


def test_chunked_body_cut_short_answers_400_json(bare):
    """A chunked body that ends (client EOF) inside a chunk is a 400."""
    port = int(bare.url.rsplit(":", 1)[1])
    responses = parse_responses(exchange(port, CHUNKED_POST + b"10\r\nabc", half_close=True))
    assert [status for status, _, _ in responses] == [400], responses
    assert json.loads(responses[0][2])["status"] == 400


def test_body_cut_short_never_reaches_the_app(stack):
    """Through the front, a body cut short by the client is dropped before gunicorn sees it."""
    marker = uuid.uuid4().hex[:8]
    data = f"POST /visits?{marker} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc".encode()
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
PROBES = 100  # sequential GET /healthz, and as many GET /
FRONT_CLIENT_TIMEOUT = max(facts.nginx_seconds(name) for name in ("client_header_timeout", "client_body_timeout"))


@pytest.fixture(scope="module")
def stalled_front(stack):
    """200 connections holding half a request line and headers, 200 holding half a body."""
    with stalled(stack.port, STALLED, STALLED) as socks:
        yield time.monotonic(), socks


def test_front_answers_within_1s_p99_while_400_clients_stall(stack, stalled_front):
    """While 400 stalled connections stay open, 200 requests all answer 200 with p99 <= 1 s."""
    opened, socks = stalled_front
    seconds = []
    for number in range(PROBES * 2):
        path = ("/healthz", "/")[number % 2]
        # 2 s each: a front that stalls fails the test in seconds, not after 200 timeouts.
        status, took = http_get_seconds(stack.port, path, timeout=2)
        assert status == 200, f"request {number + 1} ({path}) got {status} after {took:.1f}s"
        seconds.append(took)
    seconds.sort()
    p99 = seconds[int(len(seconds) * 0.99) - 1]
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
    """How many stalled connections the bare image takes while /healthz still answers within 1 s."""
    for count in range(limit + 1):
        with stalled(port, count, 0):
            time.sleep(0.2)
            status, _ = http_get_seconds(port, "/healthz", timeout=1)
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


def test_access_log_names_the_client_not_the_proxy(stack):
    """gunicorn logs the address nginx saw, not nginx's own, and a client can't forge it."""
    marker = uuid.uuid4().hex[:8]
    proxy, web = stack.container("proxy"), stack.container("web")
    window, proxy_window = LogWindow(web), LogWindow(proxy)
    request = f"GET /?{marker} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
    assert parse_responses(exchange(stack.port, request.encode()))[0][0] == 200
    seen_by_proxy = [line.split()[0] for line in proxy_window.wait_for(marker) if marker in line]
    seen_by_web = [line.split()[0] for line in window.wait_for(marker) if marker in line]
    proxy_ip = docker_or_fail(
        "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", proxy
    ).stdout.strip()
    assert len(seen_by_proxy) == 1 and seen_by_web == seen_by_proxy, (seen_by_proxy, seen_by_web)
    assert seen_by_web[0] not in (proxy_ip, "203.0.113.9")


def test_bare_image_access_log_ignores_a_forged_forwarded_for(bare):
    """Without a trusted proxy in front, X-Forwarded-For can't choose the address gunicorn logs."""
    marker = uuid.uuid4().hex[:8]
    window = LogWindow(bare.name)
    request = f"GET /?{marker} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
    assert parse_responses(exchange(int(bare.url.rsplit(":", 1)[1]), request.encode()))[0][0] == 200
    logged = [line.split()[0] for line in window.wait_for(marker) if marker in line]
    assert len(logged) == 1 and logged[0] != "203.0.113.9", logged


def test_stack_stops_cleanly_while_clients_stall(stack):
    """compose stop with stalled clients: every service exits 0 within its grace period, no SIGKILL."""
    with stalled(stack.port, 50, 50):
        time.sleep(0.5)
        started = time.monotonic()
        stack.compose("stop", timeout=60)
        took = time.monotonic() - started
    try:
        for service in ("proxy", "web", "db"):
            state = json.loads(
                docker_or_fail("inspect", "--format", "{{json .State}}", stack.container(service)).stdout
            )
            assert state["ExitCode"] == 0, (service, state)
        assert took < 15, f"compose stop took {took:.1f}s"
    finally:
        stack.compose("up", "--wait", "--no-build")
