"""The example app under hostile clients: what it answers itself (a body it can't read, in its JSON error
shape), its /healthz body behind a malformed request, and the client address it logs behind nginx.
The template's own hostile tests (gunicorn's and nginx's answers) are tests/test_hostile.py."""

import functools
import json
import re
import time
import uuid

import facts
import pytest
from dockertools import Container, LogWindow, docker_or_fail, http, no_traceback, wait_for_status
from hostile import CASES, GUNICORN_ANSWERS, exchange, malformed, p99_of_probes, parse_responses, stalled, still_open

pytestmark = [pytest.mark.docker]

# On the bare image, gunicorn hands these to the app, which finds the problem reading the body.
APP_ANSWERS = [case for case in CASES if case not in GUNICORN_ANSWERS]
ALARMING = re.compile(r"ERROR|\[error\]|\[crit\]|\[alert\]|\[emerg\]|CRITICAL|Traceback", re.IGNORECASE)
WARNING = re.compile(r"WARNING|\[warn\]", re.IGNORECASE)
CHUNKED_POST = b"POST /visits HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
STALLED = 200  # partial-header connections, and as many partial-body ones
PROBES = 100  # sequential GET /healthz, and as many GET /


@functools.cache
def requests():
    """The malformed requests on the example's pages; bodies over the app's own limit (read when a test runs)."""
    return malformed("/", "/visits", facts.app_fact("MAX_CONTENT_LENGTH"))


@pytest.fixture(scope="module")
def bare(multi_image):
    """The image alone, as `docker run -p` starts it: the app reads what gunicorn hands it."""
    app = Container(multi_image)
    wait_for_status(app.url + "/healthz")
    yield app
    app.remove()


def port_of(container):
    """The loopback port a Container is published on."""
    return int(container.url.rsplit(":", 1)[1])


@pytest.fixture
def port(request):
    """The bare image's port or the stack's front's, as the test's (target, case) pair names it."""
    if request.param == "image":
        return port_of(request.getfixturevalue("bare"))
    return request.getfixturevalue("stack").port


@pytest.mark.parametrize("case", APP_ANSWERS)
def test_malformed_body_answers_app_json_4xx(bare, case):
    """The right 4xx in the app's JSON shape, no traceback, and the image answers the next client."""
    data, expected = requests()[case]
    responses = parse_responses(exchange(port_of(bare), data))
    assert [status for status, _, _ in responses] == [expected], responses
    _, headers, body = responses[0]
    assert no_traceback(body), body
    assert headers["content-type"].startswith("application/json"), headers
    assert json.loads(body)["status"] == expected, body
    assert http(bare.url + "/healthz")[0] == 200


@pytest.mark.parametrize("case", APP_ANSWERS)
def test_malformed_body_logs_at_most_one_warning(bare, case):
    """No ERROR line and no traceback in the image's log; at most one WARNING (the app's one line)."""
    data, _ = requests()[case]
    window = LogWindow(bare.name)
    exchange(port_of(bare), data)
    sentinel = f"sentinel-{uuid.uuid4().hex[:8]}"
    http(f"{bare.url}/healthz?{sentinel}")
    window.wait_for(sentinel)
    time.sleep(0.2)  # a worker's WARNING and another worker's access line race to the pipe
    lines = [line for line in window.new_lines() if sentinel not in line]
    assert not [line for line in lines if ALARMING.search(line)], lines
    assert len([line for line in lines if WARNING.search(line)]) <= 1, lines


@pytest.mark.parametrize("port,case", [(t, c) for t in ("image", "stack") for c in CASES], indirect=["port"])
def test_malformed_request_does_not_poison_keepalive(port, case):
    """A /healthz sent right behind a malformed request is answered as /healthz ({"status": "ok"}) or not at all."""
    data, expected = requests()[case]
    follow = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    responses = parse_responses(exchange(port, data + follow, responses=2))
    assert responses and responses[0][0] == expected, responses
    for status, _, body in responses[1:]:
        assert status == 200 and json.loads(body) == {"status": "ok"}, responses
    assert len(responses) <= 2, responses


def test_body_cut_short_answers_400_json(bare):
    """A body that ends (client EOF) before its Content-Length is a 400, not a truncated request."""
    data = b"POST /visits HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
    responses = parse_responses(exchange(port_of(bare), data, half_close=True))
    assert [status for status, _, _ in responses] == [400], responses
    assert json.loads(responses[0][2])["status"] == 400


def test_chunked_body_cut_short_answers_400_json(bare):
    """A chunked body that ends (client EOF) inside a chunk is a 400."""
    responses = parse_responses(exchange(port_of(bare), CHUNKED_POST + b"10\r\nabc", half_close=True))
    assert [status for status, _, _ in responses] == [400], responses
    assert json.loads(responses[0][2])["status"] == 400


def test_root_answers_200_within_1s_p99_while_400_clients_stall(stack):
    """While 400 stalled connections stay open, 200 requests of /healthz and / all answer 200 with p99 <= 1 s."""
    front_timeout = max(facts.nginx_seconds(name) for name in ("client_header_timeout", "client_body_timeout"))
    with stalled(stack.port, STALLED, STALLED) as socks:
        opened = time.monotonic()
        p99 = p99_of_probes(stack.port, ["/healthz", "/"], lambda path, status: status == 200, PROBES * 2)
        assert p99 <= 1.0, f"p99 {p99:.3f}s"
        # The measurement counts only if the stalled clients were still there throughout.
        assert time.monotonic() - opened < front_timeout
        assert sum(map(still_open, socks)) == len(socks)


def test_access_log_names_the_client_not_the_proxy(stack):
    """gunicorn logs the address nginx saw (the app's ProxyFix), not nginx's own, and a client can't forge it."""
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
