"""gunicorn's settings, and the app contract: what the images, compose, Kubernetes and the tests know of
the app. Adapting the template to your app? Edit the contract, nothing else names the app.

The images run this file too: `python gunicorn.conf.py warm-up` at build time, `health` as the
HEALTHCHECK, `setup` as the one-off step before the app serves (compose's `setup`, Kubernetes' initContainer).
"""

import os

# --- The app contract ---
# The WSGI callable, module:name (an app factory: "mypackage:create_app()").
wsgi_app = "app:app"
# Liveness: 200 while the process serves. It must not depend on the database (a restart can't fix that).
health_path = "/healthz"
# Readiness: 200 once the app can serve its pages (its database answers, its tables exist).
ready_path = "/readyz"
# Requested once at build time, so the modules they import get bytecode; after `setup`, each must answer
# below 500. List the pages your app serves.
warm_paths = ["/", "/readyz", "/visits"]
# Run once before the app serves (migrations, creating tables), as the image's user; None for nothing.
setup_command = ["flask", "--app", "app", "init-db"]
# The app's state lives in $DATA_DIR (/data), the one writable directory, a volume in compose and Kubernetes.

# --- gunicorn ---
_port = int(os.environ.get("PORT", "8000"))
bind = f"0.0.0.0:{_port}"
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


def _get(path, timeout):
    """The status of GET path on this container's gunicorn."""
    import http.client

    client = http.client.HTTPConnection("127.0.0.1", _port, timeout=timeout)
    client.request("GET", path)
    return client.getresponse().status


def _warm_up():
    """Start gunicorn, request warm_paths, stop it: Python writes bytecode for exactly what runs. Then
    make the step reproducible (_settle). A gunicorn that exits (the app fails to import) fails the
    build at once, its traceback above."""
    import time

    # What this step writes is newer than this: now, less 30 s for what came before this line (Python's
    # start-up writes bytecode, seconds of it when emulated; BuildKit's mount stubs change /etc). Earlier
    # steps' files carry FILE_MTIME; the base's are older than the steps built on it.
    since = time.time() - 30
    import signal
    import sys
    import tempfile

    # The app's state stays out of the image: it writes to a throwaway directory here, never to /data.
    # os.spawnvpe, not subprocess: nothing gunicorn itself never imports gets bytecode.
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "DATA_DIR": scratch}
        server = os.spawnvpe(os.P_NOWAIT, "gunicorn", ["gunicorn", "--config", __file__], env)
        deadline = time.monotonic() + 300  # minutes, not seconds, when the build is emulated (arm64 on amd64)
        while True:
            pid, status = os.waitpid(server, os.WNOHANG)
            if pid:
                sys.exit(f"warm-up: gunicorn exited ({os.waitstatus_to_exitcode(status)}) before it served")
            try:
                _get(health_path, 300)
                break
            except OSError:  # not listening yet, or gunicorn went down with the request (checked above)
                if time.monotonic() > deadline:
                    os.kill(server, signal.SIGKILL)
                    sys.exit("warm-up: gunicorn did not listen within 300 s")
                time.sleep(0.1)
        for path in warm_paths:
            _get(path, 300)  # any status will do: the route's imports run either way
        os.kill(server, signal.SIGTERM)
        exit_code = os.waitstatus_to_exitcode(os.waitpid(server, 0)[1])
    if exit_code:
        sys.exit(exit_code)
    _settle(since)


def _settle(since):
    """Make what this build step wrote the same on every build. Its bytecode is recompiled hash-based
    ("checked": Python compares it with its source's hash, so it stays valid whatever the file times,
    and is never used once the source changes, a dev tree mounted over the code included). compileall
    runs with a fixed hash seed (set constants are written in hash order) and -B (its own imports write
    nothing). Then every file and directory written takes FILE_MTIME, the build's fixed file time."""
    import sys

    root = os.lstat("/").st_dev
    written = []
    for top, dirs, files in os.walk("/"):
        for name in dirs + files:
            path = os.path.join(top, name)
            stat = os.lstat(path)
            if stat.st_dev != root:  # /proc, /dev, and the files BuildKit mounts (/etc/hosts)
                dirs[:] = [d for d in dirs if d != name]
            elif stat.st_mtime >= since:
                written.append(path)
    suffix = f".{sys.implementation.cache_tag}.pyc"  # dir/__pycache__/name.cpython-313.pyc is dir/name.py's
    sources = [
        path.replace("/__pycache__/", "/").removesuffix(suffix) + ".py" for path in written if path.endswith(suffix)
    ]
    compileall = [sys.executable, "-B", "-m", "compileall", "-f", "-q", "--invalidation-mode", "checked-hash"]
    status = os.spawnve(os.P_WAIT, sys.executable, compileall + sources, {**os.environ, "PYTHONHASHSEED": "0"})
    if status:
        sys.exit(f"warm-up: compileall exited {status}")
    mtime = int(os.environ["FILE_MTIME"])
    for path in written:
        os.utime(path, (mtime, mtime), follow_symlinks=False)


if __name__ == "__main__":
    import sys

    command = sys.argv[1:]
    if command == ["warm-up"]:
        _warm_up()
    elif command == ["health"]:
        sys.exit(_get(health_path, 2) != 200)
    elif command == ["setup"]:
        if setup_command:
            os.execvp(setup_command[0], setup_command)
    else:
        sys.exit("usage: python gunicorn.conf.py warm-up|health|setup")
