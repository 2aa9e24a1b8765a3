"""Hostile clients on raw sockets: malformed framing, and connections that stall mid-request."""

import contextlib
import resource
import socket
import time

PARTIAL_HEADERS = b"GET / HTTP/1.1\r\nHost: stalled\r\n"
PARTIAL_BODY = b"POST /visits HTTP/1.1\r\nHost: stalled\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10


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
