"""Fast host-only tests of app.py with Flask's test client: no Docker, no database needed."""

import importlib.util
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest

import app as app_module

PASSWORD = "s3cret-pw-do-not-leak"
BIG_BODY = b"x" * (app_module.app.config["MAX_CONTENT_LENGTH"] + 1)
APP_PY = Path(app_module.__file__)


@pytest.fixture
def client():
    """A test client for the app."""
    return app_module.app.test_client()


@pytest.fixture
def unreachable_db(monkeypatch):
    """Point libpq at a closed local port, with a password set, and nothing else from the host."""
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "1")
    monkeypatch.setenv("PGUSER", "app")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)


@pytest.fixture
def fake_connect(monkeypatch, unreachable_db):
    """Replace psycopg2.connect with a recorder that refuses to connect."""
    calls = []

    def connect(*args, **kwargs):
        calls.append({"dsn": args[0] if args else "", **kwargs})
        raise psycopg2.OperationalError("refused by test double")

    monkeypatch.setattr(psycopg2, "connect", connect)
    return calls


def assert_json_error(response, status):
    """Check an error response: status, JSON body, no traceback."""
    assert response.status_code == status
    assert response.is_json
    assert "Traceback" not in response.get_data(as_text=True)


def test_index_returns_greeting(client):
    """/ answers 200 with the greeting text."""
    response = client.get("/")
    assert response.status_code == 200
    assert "Hello from a multi-stage build" in response.get_data(as_text=True)


def test_healthz_never_connects(client, fake_connect):
    """/healthz answers 200 ok without touching the database."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert fake_connect == []


def test_readyz_is_503_with_retry_after_when_db_unreachable(client, unreachable_db):
    """/readyz answers 503 JSON with Retry-After when the database is down."""
    response = client.get("/readyz")
    assert_json_error(response, 503)
    assert response.get_json() == {"status": "unavailable"}
    assert int(response.headers["Retry-After"]) > 0


def test_readyz_answers_fast_when_db_unreachable(client, unreachable_db):
    """/readyz gives up within 2 s on a refused connection."""
    start = time.monotonic()
    client.get("/readyz")
    assert time.monotonic() - start < 2


def test_readyz_is_bounded_when_server_never_answers(client, unreachable_db, monkeypatch):
    """/readyz gives up after PGCONNECT_TIMEOUT when the server accepts TCP but stays silent."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes handshakes; nobody ever reads or writes
        monkeypatch.setenv("PGPORT", str(silent.getsockname()[1]))
        monkeypatch.setenv("PGCONNECT_TIMEOUT", "2")
        start = time.monotonic()
        response = client.get("/readyz")
    assert response.status_code == 503
    assert time.monotonic() - start < 4


def test_get_visits_is_503_when_db_unreachable(client, unreachable_db):
    """GET /visits answers 503 JSON with Retry-After when the database is down."""
    response = client.get("/visits")
    assert_json_error(response, 503)
    assert "Retry-After" in response.headers


def test_post_visits_is_503_when_db_unreachable(client, unreachable_db):
    """POST /visits answers 503 JSON with Retry-After when the database is down."""
    response = client.post("/visits")
    assert_json_error(response, 503)
    assert "Retry-After" in response.headers


def test_unknown_route_is_json_404(client):
    """An unknown path answers 404 JSON."""
    assert_json_error(client.get("/no-such-page"), 404)


def test_wrong_method_is_json_405_with_allow(client):
    """A wrong method answers 405 JSON and keeps the Allow header."""
    response = client.delete("/healthz")
    assert_json_error(response, 405)
    assert "GET" in response.headers["Allow"]


def test_oversized_body_is_json_413_without_connecting(client, fake_connect):
    """A body over 64 KiB answers 413 JSON before any database work."""
    assert_json_error(client.post("/visits", data=BIG_BODY), 413)
    assert fake_connect == []


def test_oversized_chunked_body_is_json_413(client, fake_connect):
    """A chunked body over 64 KiB (no Content-Length) also answers 413 JSON."""
    response = client.post(
        "/visits",
        input_stream=io.BytesIO(BIG_BODY),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets it
    )
    assert_json_error(response, 413)


def test_body_at_the_limit_is_accepted(client, fake_connect):
    """A body of exactly 64 KiB is not rejected as too large."""
    assert client.post("/visits", data=BIG_BODY[:-1]).status_code == 503


def test_unexpected_error_is_generic_json_500(client, monkeypatch, caplog):
    """An unexpected exception answers a generic 500 JSON and logs its class name only."""

    def boom():
        raise RuntimeError("internal detail " + PASSWORD)

    monkeypatch.setitem(app_module.app.view_functions, "index", boom)
    response = client.get("/")
    assert_json_error(response, 500)
    assert PASSWORD not in response.get_data(as_text=True)
    assert [r.getMessage() for r in caplog.records] == ["unhandled error: RuntimeError"]


def test_db_failure_logs_one_line(client, unreachable_db, caplog):
    """A database failure is logged as exactly one line naming the exception class."""
    client.get("/readyz")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert messages[0].startswith("database unavailable: OperationalError")
    assert "\n" not in messages[0]
    assert all(r.exc_info is None for r in caplog.records)


def test_password_never_leaks_when_db_unreachable(client, unreachable_db, caplog):
    """PGPASSWORD appears in no response body and no log line."""
    bodies = [client.get("/readyz"), client.get("/visits"), client.post("/visits")]
    for response in bodies:
        assert PASSWORD not in response.get_data(as_text=True)
    assert caplog.records
    assert PASSWORD not in caplog.text


def test_password_is_redacted_if_libpq_echoes_it(client, monkeypatch, unreachable_db, caplog):
    """A driver message that contains the password is logged with it redacted."""

    def connect(*args, **kwargs):
        raise psycopg2.OperationalError(f"bad password {PASSWORD}")

    monkeypatch.setattr(psycopg2, "connect", connect)
    client.get("/readyz")
    assert PASSWORD not in caplog.text
    assert "***" in caplog.text


def test_password_file_is_read_at_connect(client, fake_connect, monkeypatch, tmp_path):
    """PGPASSWORD_FILE's content, minus the trailing newline, is passed as the password."""
    secret = tmp_path / "pg_password"
    secret.write_text("from-file\n")
    monkeypatch.setenv("PGPASSWORD_FILE", str(secret))
    client.get("/readyz")
    assert fake_connect[0]["password"] == "from-file"


def test_missing_password_file_is_503_without_path_or_traceback(client, monkeypatch, unreachable_db, caplog):
    """An unreadable PGPASSWORD_FILE answers 503 and logs one line, no traceback."""
    monkeypatch.setenv("PGPASSWORD_FILE", "/nonexistent/pg_password")
    response = client.get("/readyz")
    assert_json_error(response, 503)
    assert [r.getMessage() for r in caplog.records] == [
        "database unavailable: OperationalError: cannot read PGPASSWORD_FILE (FileNotFoundError)"
    ]


def test_connect_bounds_every_wait(client, fake_connect, monkeypatch):
    """connect gets connect_timeout, statement_timeout, keepalives and tcp_user_timeout; PGOPTIONS is kept."""
    monkeypatch.setenv("PGOPTIONS", "-c search_path=demo")
    client.get("/readyz")
    kwargs = fake_connect[0]
    assert kwargs["connect_timeout"] == app_module.CONNECT_TIMEOUT_S
    assert kwargs["options"] == (
        "-c statement_timeout=2000 -c idle_in_transaction_session_timeout=5000 -c search_path=demo"
    )
    assert "keepalives=1 " in kwargs["dsn"] + " "
    assert kwargs["tcp_user_timeout"] == 2000


def test_version_numbers_are_formatted():
    """libpq/server version numbers are formatted the way PostgreSQL prints them."""
    assert app_module._version(170005) == "17.5"
    assert app_module._version(90624) == "9.6.24"


def _seen_remote_addr(remote_addr, forwarded_for, allowed, monkeypatch):
    """REMOTE_ADDR as a view sees it, in an app imported with FORWARDED_ALLOW_IPS=allowed (None: unset)."""
    if allowed is None:
        monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    else:
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", allowed)
    spec = importlib.util.spec_from_file_location("app_with_env", APP_PY)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    monkeypatch.setitem(fresh.app.view_functions, "index", lambda: fresh.request.remote_addr)
    response = fresh.app.test_client().get(
        "/", headers={"X-Forwarded-For": forwarded_for}, environ_base={"REMOTE_ADDR": remote_addr}
    )
    return response.get_data(as_text=True)


def test_forwarded_for_is_ignored_without_a_proxy_in_front(monkeypatch):
    """A client that reaches gunicorn directly can't choose the address the access log names."""
    assert _seen_remote_addr("172.17.0.1", "203.0.113.9", None, monkeypatch) == "172.17.0.1"


def test_forwarded_for_is_ignored_unless_every_peer_is_trusted(monkeypatch):
    """With a list of trusted peers, the app can't tell which peer sent the header: it trusts none."""
    assert _seen_remote_addr("172.17.0.1", "203.0.113.9", "127.0.0.1,::1", monkeypatch) == "172.17.0.1"
    assert _seen_remote_addr("127.0.0.1", "203.0.113.9", "127.0.0.1,::1", monkeypatch) == "127.0.0.1"


def test_forwarded_for_names_the_client_when_only_the_proxy_reaches_gunicorn(monkeypatch):
    """FORWARDED_ALLOW_IPS=* (compose.yaml: only nginx reaches gunicorn): the proxy's X-Forwarded-For counts."""
    assert _seen_remote_addr("172.18.0.4", "198.51.100.7", "*", monkeypatch) == "198.51.100.7"


def test_app_imports_without_gunicorn():
    """app.py is a plain WSGI app: importing it (and serving a request) needs no gunicorn module."""
    code = (
        "import sys\n"
        "class NoGunicorn:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'gunicorn':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoGunicorn())\n"
        "import app\n"
        "assert app.app.test_client().get('/healthz').status_code == 200\n"
        "print(sorted(m for m in sys.modules if m.startswith('gunicorn')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FORWARDED_ALLOW_IPS"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=APP_PY.parent, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_body_shorter_than_content_length_is_json_400(client, fake_connect, caplog):
    """A body that ends before its Content-Length is a 400 and one WARNING, never processed."""
    response = client.post(
        "/visits",
        input_stream=io.BytesIO(b"abc"),
        # gunicorn's environ for such a request: the declared length, a stream that ends early.
        environ_overrides={"CONTENT_LENGTH": "100", "wsgi.input_terminated": True},
    )
    assert_json_error(response, 400)
    assert fake_connect == []
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "bad request body: body shorter than Content-Length")
    ]
