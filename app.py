"""Minimal Flask app served by gunicorn, talking to PostgreSQL through psycopg2."""

import ipaddress
import json
import os
from contextlib import contextmanager

import psycopg2
from flask import Flask, abort, g, jsonify, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

# Worst case per request: connect (PGCONNECT_TIMEOUT, default 3 s) + ~2 s of queries,
# far below gunicorn's 30 s worker timeout.
STATEMENT_TIMEOUT_MS = TCP_USER_TIMEOUT_MS = 2000
# A client that vanishes mid-transaction would otherwise keep its locks on the visits
# row until the server's TCP gives up (~15 min); the server ends the session instead.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 5000
RETRY_AFTER_S = "5"

# What gunicorn raises while the app reads a chunked body whose framing is broken (bad chunk
# size, missing CRLF): the client's fault, never a 500. (A body cut short by EOF is an OSError,
# which werkzeug already answers with 400.)
BODY_FRAMING_ERRORS = (ParseException,)

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 64 * 1024


def _trusted_networks():
    """The peers gunicorn trusts with X-Forwarded-* headers ($FORWARDED_ALLOW_IPS), as networks."""
    allowed = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    if allowed.strip() == "*":
        return None
    return [ipaddress.ip_network(item.strip(), strict=False) for item in allowed.split(",") if item.strip()]


class ForwardedFor:
    """Take the client's address from X-Forwarded-For, but only from a proxy gunicorn trusts."""

    # gunicorn honours FORWARDED_ALLOW_IPS for the scheme only, and logs REMOTE_ADDR: behind a
    # proxy every access line would name the proxy. ProxyFix rewrites REMOTE_ADDR in the
    # environ gunicorn's access log reads, so the log names the client; a client that reaches
    # gunicorn directly can't forge it, because its address is not in the trusted list.
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.proxy_fix = ProxyFix(wsgi_app, x_for=1, x_proto=0, x_host=0, x_port=0, x_prefix=0)
        self.networks = _trusted_networks()

    def _trusted(self, addr):
        if self.networks is None:
            return True
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self._trusted(environ.get("REMOTE_ADDR", "")):
            return self.proxy_fix(environ, start_response)
        return self.wsgi_app(environ, start_response)


app.wsgi_app = ForwardedFor(app.wsgi_app)


def _version(number):
    """Format a PostgreSQL version number the way PostgreSQL prints it (170005 -> '17.5')."""
    major, rest = divmod(number, 10000)
    return f"{major}.{rest}" if major >= 10 else f"{major}.{rest // 100}.{rest % 100}"


def _password_from_file():
    """Return the password in $PGPASSWORD_FILE, or None to let libpq decide."""
    # libpq has no *_FILE variable, and PGPASSFILE wants pgpass lines in a 0600 file owned
    # by the app user, which a Compose secret can't promise. This file holds only the
    # password (cf. POSTGRES_PASSWORD_FILE), wins over PGPASSWORD, and is re-read per connect.
    path = os.environ.get("PGPASSWORD_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except (OSError, UnicodeError) as exc:
        msg = f"cannot read PGPASSWORD_FILE ({type(exc).__name__})"
        raise psycopg2.OperationalError(msg) from None


@contextmanager
def _cursor():
    """Yield a cursor on a fresh connection; commit on success, always close."""
    g.pg_password = _password_from_file()
    # statement_timeout bounds a slow server; keepalives and tcp_user_timeout bound a
    # peer whose packets vanish. PGOPTIONS goes last so an operator can override.
    options = " ".join(
        (
            f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}",
            os.environ.get("PGOPTIONS", ""),
        )
    )
    conn = psycopg2.connect(
        "",  # empty DSN: libpq reads PGHOST, PGPORT, PGUSER, PGDATABASE, ... itself
        password=g.pg_password,  # None is dropped, so PGPASSWORD/PGPASSFILE still work
        connect_timeout=os.environ.get("PGCONNECT_TIMEOUT", "3"),
        options=options.strip(),
        keepalives=1,
        keepalives_idle=1,
        keepalives_interval=1,
        keepalives_count=2,
        tcp_user_timeout=TCP_USER_TIMEOUT_MS,
    )
    try:
        yield conn.cursor()
        conn.commit()
    finally:
        conn.close()  # uncommitted work is rolled back by the server; rollback() could mask errors


@app.before_request
def _enforce_body_limit():
    """Reject oversized bodies with 413, even on routes that never read them."""
    # Werkzeug raises 413 on a large Content-Length but silently truncates a chunked
    # body at the limit: one more byte from the server's stream tells them apart.
    limit = app.config["MAX_CONTENT_LENGTH"]
    try:
        body = request.get_data()
        too_large = len(body) >= limit and request.environ["wsgi.input"].read(1)
    except BODY_FRAMING_ERRORS as exc:
        _bad_body(type(exc).__name__)
    if too_large:
        abort(413)
    # gunicorn hands a body cut short by the client's EOF to the app as if it were whole.
    if request.content_length is not None and len(body) < request.content_length:
        _bad_body("body shorter than Content-Length")


def _bad_body(reason):
    """Answer 400 for a body that can't be read as sent, logging one WARNING line."""
    # gunicorn never reuses a connection whose body it failed to read, so nothing left of
    # this body can be read as the next request.
    app.logger.warning("bad request body: %s", reason)
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


@app.route("/visits", methods=["GET", "POST"])
def visits():
    """GET returns the visit count; POST increments it and returns the new count."""
    with _cursor() as cur:
        # Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog.
        cur.execute("SELECT pg_advisory_xact_lock(7331)")
        cur.execute("CREATE TABLE IF NOT EXISTS visits (id int PRIMARY KEY CHECK (id = 1), count bigint NOT NULL)")
        if request.method == "POST":
            cur.execute(
                "INSERT INTO visits VALUES (1, 1) ON CONFLICT (id)"
                " DO UPDATE SET count = visits.count + 1 RETURNING count"
            )
        else:
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
    return jsonify(status="unavailable"), 503, {"Retry-After": RETRY_AFTER_S}


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
