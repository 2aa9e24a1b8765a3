"""gunicorn settings, read from ./gunicorn.conf.py in the working directory (WORKDIR /app)."""

import os

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
# Well above the app's worst database wait (connect + statement timeout, app.py), so
# only a truly stuck worker is killed and restarted.
timeout = 30

# gunicorn >= 25.1 opens a control socket under $HOME by default; this image needs
# no runtime control, and $HOME is not writable with --read-only.
control_socket_disable = True
