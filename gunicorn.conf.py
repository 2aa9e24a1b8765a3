"""gunicorn settings, read from ./gunicorn.conf.py in the working directory (WORKDIR /app)."""

import json
import os

from gunicorn import util

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))

# Each worker fchmod()s a heartbeat file on every loop; on a disk-backed /tmp that
# can stall the worker. /dev/shm is tmpfs, never blocks on I/O, and stays
# writable when the container runs with --read-only.
worker_tmp_dir = "/dev/shm"

# Container logs: access log to stdout, errors (and the app's log lines) to stderr.
accesslog = "-"
errorlog = "-"

# docker stop sends SIGKILL 10 s after SIGTERM: finish in-flight requests before that.
graceful_timeout = 5
# Well above the app's worst database wait (~3 s connect + ~2 s query), so only a
# truly stuck worker is killed and restarted.
timeout = 30

# gunicorn >= 25.1 opens a control socket under $HOME by default; this image needs
# no runtime control, and $HOME is not writable with --read-only.
control_socket_disable = True


def _write_json_error(sock, status_int, reason, mesg):
    """gunicorn's own error responses (bad request line or headers: 400, 414, 431) as JSON."""
    # gunicorn answers requests it can't parse before the app sees them, with an HTML page
    # that names the offending input; clients of this JSON API get the app's error shape,
    # and the detail stays in gunicorn's one WARNING line.
    body = json.dumps({"error": reason, "status": status_int}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


# Read by every worker: they are forked from the master process that reads this file.
util.write_error = _write_json_error
