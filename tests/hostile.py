"""Hostile clients on raw sockets: malformed framing, and connections that stall mid-request."""

import contextlib
import resource
import socket
import time

# Never completed, so no app sees their path: "/" names no page of any app in particular.
PARTIAL_HEADERS = b"GET / HTTP/1.1\r\nHost: stalled\r\n"
PARTIAL_BODY = b"POST / HTTP/1.1\r\nHost: stalled\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10

# What gunicorn refuses before any app sees it (request line, headers, framing headers): the bare image
# answers these in gunicorn's words whatever the app. The rest (a chunked body's framing, a body's
# size) is found only when the app reads the body, so on the bare image it is the app's answer.
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


def malformed(get_path, post_path, body_limit):
    """{name: (request bytes, the status it must get)}: GETs of get_path, bodies POSTed to post_path,
    the oversized bodies 4 KiB over body_limit."""
    get, post = get_path.encode(), post_path.encode()
    chunked = b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % post
    big = body_limit + 4096
    requests = {
        "chunk-size-not-hex": (chunked + b"zz\r\nabc\r\n0\r\n\r\n", 400),
        "chunk-missing-crlf": (chunked + b"3\r\nabcXX0\r\n\r\n", 400),
        "get-with-bad-chunk": (b"GET %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" % get, 400),
        "content-length-not-a-number": (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n" % post, 400),
        "content-length-negative": (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" % post, 400),
        "content-length-conflicting": (
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd" % post,
            400,
        ),
        "content-length-and-chunked": (
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % post,
            400,
        ),
        "request-line-garbage": (b"GARBAGE\r\n\r\n", 400),
        "method-invalid": (b"G@T %s HTTP/1.1\r\nHost: x\r\n\r\n" % get, 400),
        "http-version-unknown": (b"GET %s HTTP/9.9\r\nHost: x\r\n\r\n" % get, 400),
        "request-line-too-long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        "header-with-nul": (b"GET %s HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n" % get, 400),
        "header-folded": (b"GET %s HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n" % get, 400),
        "header-space-before-colon": (b"GET %s HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n" % get, 400),
        "host-twice": (b"GET %s HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" % get, 400),
        "header-too-large": (b"GET %s HTTP/1.1\r\nHost: x\r\nX-A: " % get + b"a" * 9000 + b"\r\n\r\n", 431),
        "too-many-headers": (
            b"GET %s HTTP/1.1\r\nHost: x\r\n" % get + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n",
            431,
        ),
        "body-over-limit-content-length": (
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (post, big) + b"x" * big,
            413,
        ),
        "body-over-limit-chunked": (chunked + b"%x\r\n" % big + b"x" * big + b"\r\n0\r\n\r\n", 413),
    }
    assert GUNICORN_ANSWERS_BEHIND_NGINX < GUNICORN_ANSWERS < set(requests)
    return requests


# The case names, for parametrizing before any file is read.
CASES = list(malformed("/", "/", 0))


def exchange(port, data, responses=1, half_close=False, timeout=5.0):
    """Send data on a new connection; read until `responses` whole answers, a close, or timeout."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a server may answer and close before reading all of an oversized request
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(parse_responses(received, partial=True)) < responses:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
    return received


def parse_responses(raw, partial=False):
    """(status, headers, body) of each response in a byte stream, framed by Content-Length."""
    responses = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            if partial:
                break
            raise AssertionError(f"truncated response: {raw[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            if partial:
                break
            raise AssertionError(f"truncated body: {raw[:200]!r}")
        responses.append((status, headers, rest[:length].decode("utf-8", "replace")))
        raw = rest[length:]
    return responses


def allow_open_files(sockets, spare=256):
    """Raise this process's soft limit on open files to fit `sockets` more, plus the session's own
    files (macOS starts shells with `ulimit -n` 256). Fails clearly if the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sockets + spare
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    assert hard == resource.RLIM_INFINITY or hard >= needed, f"`ulimit -Hn` is {hard}; {needed} open files needed"
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@contextlib.contextmanager
def stalled(port, partial_headers=0, partial_bodies=0):
    """Open connections that send part of a request and then nothing; yield the sockets."""
    allow_open_files(partial_headers + partial_bodies)
    socks = []
    try:
        for data in [PARTIAL_HEADERS] * partial_headers + [PARTIAL_BODY] * partial_bodies:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(data)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def still_open(sock):
    """True when the server has neither closed the connection nor answered on it."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # returns b"" on close, data on an answer
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def http_get_seconds(port, path, timeout):
    """(status, seconds) of one GET on a fresh connection; status None if no answer in time."""
    start = time.monotonic()
    request = f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode()
    try:
        raw = exchange(port, request, timeout=timeout)
        status = parse_responses(raw)[0][0] if raw else None
    except (OSError, AssertionError):
        status = None
    return status, time.monotonic() - start


def p99_of_probes(port, paths, accept, count):
    """Seconds at the 99th percentile of count sequential GETs cycling through paths, each answered within
    2 s (a front that stalls fails in seconds, not after count timeouts) with a status accept(path, status)."""
    seconds = []
    for number in range(count):
        path = paths[number % len(paths)]
        status, took = http_get_seconds(port, path, timeout=2)
        assert accept(path, status), f"request {number + 1} ({path}) got {status} after {took:.1f}s"
        seconds.append(took)
    seconds.sort()
    return seconds[int(len(seconds) * 0.99) - 1]
