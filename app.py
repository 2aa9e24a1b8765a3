"""Minimal Flask app served by gunicorn, talking to PostgreSQL through psycopg2."""

import json
import os
from contextlib import contextmanager

import psycopg2
from flask import Flask, abort, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

# Worst case per request: connect + statement timeout, far below gunicorn's worker timeout.
CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = TCP_USER_TIMEOUT_MS = 2000
# The server ends a session whose client vanished mid-transaction, instead of holding its locks ~15 min.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 5000

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

# gunicorn trusts proxy headers from the peers in FORWARDED_ALLOW_IPS; "*" says only a proxy can
# reach it, so X-Forwarded-For names the client (in REMOTE_ADDR, which the access log prints).
if os.environ.get("FORWARDED_ALLOW_IPS", "").strip() == "*":
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)


def _version(number):
    """Format a PostgreSQL version number the way PostgreSQL prints it (170005 -> '17.5')."""
    major, rest = divmod(number, 10000)
    return f"{major}.{rest}" if major >= 10 else f"{major}.{rest // 100}.{rest % 100}"


def _password_from_file():
    """Return the password in $PGPASSWORD_FILE, or None to let libpq decide."""
    # libpq has no *_FILE variable, and PGPASSFILE wants pgpass lines in a 0600 file owned by the app
    # user. This file holds only the password, wins over PGPASSWORD, and is re-read per connect.
    path = os.environ.get("PGPASSWORD_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except (OSError, UnicodeError) as exc:
        raise psycopg2.OperationalError(f"cannot read PGPASSWORD_FILE ({type(exc).__name__})") from None


@contextmanager
def _cursor():
    """Yield a cursor on a fresh connection; commit on success, always close."""
    g.pg_password = _password_from_file()
    # statement_timeout bounds a slow server, keepalives and tcp_user_timeout a peer whose packets
    # vanish; libpq reads PGHOST, PGUSER, ... itself. PGOPTIONS goes last so an operator can override.
    timeouts = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
    timeouts += f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}"
    conn = psycopg2.connect(
        "keepalives=1 keepalives_idle=1 keepalives_interval=1 keepalives_count=2",
        password=g.pg_password,  # None is dropped, so PGPASSWORD/PGPASSFILE still work
        connect_timeout=os.environ.get("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_S),
        options=f"{timeouts} {os.environ.get('PGOPTIONS', '')}".strip(),
        tcp_user_timeout=TCP_USER_TIMEOUT_MS,
    )
    try:
        yield conn.cursor()
        conn.commit()
    finally:
        conn.close()  # uncommitted work is rolled back by the server; rollback() could mask errors


@app.before_request
def _read_body():
    """Read the whole body before any work: too large is a 413, unreadable as sent a 400."""
    # Werkzeug stops reading a chunked body at the limit without a 413: one more byte from the
    # server tells. A body cut short by the client's EOF arrives shorter than its Content-Length.
    try:
        body = request.get_data()
        if len(body) >= app.config["MAX_CONTENT_LENGTH"] and request.environ["wsgi.input"].read(1):
            abort(413)
        short = request.content_length is not None and len(body) < request.content_length
        problem = "body shorter than Content-Length" if short else None
    except HTTPException:
        raise
    except Exception as exc:  # what the server raises on broken chunk framing: the client's fault
        problem = type(exc).__name__
    if problem:
        app.logger.warning("bad request body: %s", problem)
        abort(400)


@app.get("/")
def index():
    """Greet the caller."""
    return "Hello from a multi-stage build!\n", {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/healthz")
def healthz():
    """Liveness: the process answers; never touches the database."""
    return jsonify(status="ok")


@app.get("/readyz")
def readyz():
    """Readiness: the database answers a query."""
    with _cursor() as cur:
        cur.execute("SHOW server_version_num")
        server_version = "PostgreSQL " + _version(int(cur.fetchone()[0]))
    libpq_version = _version(psycopg2.extensions.libpq_version())
    return jsonify(status="ok", server_version=server_version, libpq_version=libpq_version)


@app.cli.command("init-db")
def init_db():
    """Create the app's table: the one-off setup step (gunicorn.conf.py's setup_command)."""
    with _cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS visits (id int PRIMARY KEY CHECK (id = 1), count bigint NOT NULL)")


@app.route("/visits", methods=["GET", "POST"])
def visits():
    """GET returns the visit count; POST increments it and returns the new count."""
    with _cursor() as cur:
        if request.method == "POST":
            cur.execute("INSERT INTO visits VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET count = visits.count + 1")
        cur.execute("SELECT count FROM visits WHERE id = 1")
        row = cur.fetchone()
    return jsonify(visits=row[0] if row else 0)


@app.errorhandler(psycopg2.OperationalError)
@app.errorhandler(psycopg2.InterfaceError)
def database_unavailable(exc):
    """Answer 503 and log one line: exception class and first message line, secrets redacted."""
    detail = (str(exc).strip().splitlines() or [""])[0]
    for secret in (os.environ.get("PGPASSWORD"), g.get("pg_password")):
        if secret:
            detail = detail.replace(secret, "***")
    app.logger.warning("database unavailable: %s: %s", type(exc).__name__, detail)
    return jsonify(status="unavailable"), 503, {"Retry-After": "5"}


@app.errorhandler(HTTPException)
def http_error(exc):
    """Render 404, 405, 413 and other HTTP errors as JSON, keeping headers such as Allow."""
    response = exc.get_response()
    response.data = json.dumps({"error": exc.name, "status": exc.code})
    response.content_type = "application/json"
    return response


@app.errorhandler(Exception)
def unexpected_error(exc):
    """Last resort: log the exception class only and answer a generic 500."""
    app.logger.error("unhandled error: %s", type(exc).__name__)
    return jsonify(error="Internal Server Error", status=500), 500
