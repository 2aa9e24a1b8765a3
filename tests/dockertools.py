"""Helpers for the tests: the real docker CLI through subprocess, HTTP, layer scans."""

import contextlib
import json
import os
import re
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("IMAGE", "pyslim")
PYTHON_IMAGE = os.environ.get("PYTHON_IMAGE", "python:3.13-slim-trixie")
POSTGRES_IMAGE = os.environ.get("POSTGRES_IMAGE", "postgres:17-trixie")
NGINX_IMAGE = os.environ.get("NGINX_IMAGE", "nginx:trixie")
CA_BUNDLE = os.environ.get("CA_BUNDLE") or None
RUN_ID = uuid.uuid4().hex[:8]


def docker(*args, check=True, timeout=600, **kwargs):
    """Run the docker CLI and return the completed process (text output captured)."""
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def build(dockerfile, tag, *extra, context=ROOT, ca_bundle=CA_BUNDLE):
    """docker build with BuildKit, the chosen base image and the optional CA secret."""
    args = ["build", "--progress=plain", "--file", str(dockerfile), "--tag", tag]
    args += ["--build-arg", f"PYTHON_IMAGE={PYTHON_IMAGE}"]
    # The labels `make build` sets, so both build the same image instead of retagging.
    for arg in ("REVISION", "CREATED"):
        if os.environ.get(arg):
            args += ["--build-arg", f"{arg}={os.environ[arg]}"]
    if ca_bundle:
        args += ["--secret", f"id=ca,src={ca_bundle}"]
    return docker(*args, *extra, str(context), timeout=1200)


def inspect(image):
    """The image's `docker image inspect` document."""
    return json.loads(docker("image", "inspect", image).stdout)[0]


def scan_layers(image, keep):
    """Paths of the entries, in every layer of `docker save image`, for which keep(layer, entry) is true."""
    proc = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    found, layers = [], 0
    with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
        for blob in filter(tarfile.TarInfo.isfile, archive):
            # Layers are tar files; the image config and manifests are JSON, which tarfile rejects.
            with contextlib.suppress(tarfile.ReadError):
                with tarfile.open(fileobj=archive.extractfile(blob), mode="r|*") as layer:
                    found += [entry.name for entry in layer if keep(layer, entry)]
                    layers += 1
    assert proc.wait() == 0, f"docker save {image} failed"
    # A layer that could not be read would make every "absent from all layers" check vacuous.
    assert layers == len(set(inspect(image)["RootFS"]["Layers"])), f"read {layers} layers of {image}"
    return found


def layer_paths(image):
    """Every path in every layer of the image, deletions (whiteouts) included."""
    return scan_layers(image, lambda layer, entry: True)


def layer_files_containing(image, needle: bytes):
    """Paths of regular files in any layer of the image whose content contains needle."""
    return scan_layers(image, lambda layer, entry: entry.isfile() and needle in layer.extractfile(entry).read())


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, method="GET", data=None, timeout=5):
    """(status, headers, body) of one request; HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


def wait_for_status(url, status=200, timeout=10.0):
    """Poll url until it answers with status; return seconds waited, fail after timeout."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        try:
            if http(url, timeout=1)[0] == status:
                return time.monotonic() - start
        except OSError as exc:
            last = exc
        time.sleep(0.02)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last error: {last})")


class Container:
    """A detached container with port 8000 published on a random loopback port."""

    def __init__(self, image, *run_args, command=()):
        self.name = f"pyslim-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
        self.started = time.monotonic()
        docker("run", "--detach", "--name", self.name, "--publish", "127.0.0.1::8000", *run_args, image, *command)
        port = docker("port", self.name, "8000/tcp").stdout.splitlines()[0].rsplit(":", 1)[1]
        self.url = f"http://127.0.0.1:{port}"

    def exec(self, *cmd, check=True):
        """Run a command inside the container."""
        return docker("exec", self.name, *cmd, check=check)

    def state(self):
        """The container's .State from docker inspect."""
        return json.loads(docker("inspect", "--format", "{{json .State}}", self.name).stdout)

    def logs(self):
        """Everything the container wrote to stdout and stderr."""
        proc = docker("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def remove(self):
        """Remove the container whatever state it is in."""
        docker("rm", "--force", "--volumes", self.name, check=False)


def shell(image, script, user=None):
    """Run a sh script in a throwaway container of image and return its stdout."""
    args = ["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh"]
    if user is not None:
        args += ["--user", user]
    return docker(*args, image, "-c", script).stdout


def no_traceback(body):
    """True when a response body shows no Python traceback or exception dump."""
    return not re.search(r"Traceback|File \"/|psycopg2\.\w+Error", body)


class Stack:
    """A compose project of its own, on a random loopback port, with a throwaway password."""

    def __init__(self, tmp_path):
        self.project = f"pyslim-test-{RUN_ID}"
        self.port = free_port()
        password = tmp_path / "db_password"
        password.write_text(f"pw-{RUN_ID}")
        password.chmod(0o644)
        self.env = {**os.environ, "WEB_PORT": str(self.port), "DB_PASSWORD_FILE": str(password)}
        self.url = f"http://127.0.0.1:{self.port}"

    def compose(self, *args, check=True, timeout=180):
        """docker compose for this project."""
        return docker(
            "compose", "--project-directory", str(ROOT), "--project-name", self.project, *args,
            check=check, timeout=timeout, env=self.env,
        )

    def container(self, service):
        """The container id of a service."""
        return self.compose("ps", "--all", "--quiet", service).stdout.strip()

    def started_at(self, service):
        """When the service's container last started (changes on every restart)."""
        return docker("inspect", "--format", "{{.State.StartedAt}}", self.container(service)).stdout.strip()


class LogWindow:
    """The log lines containers write from now on: `docker logs` now, diffed against later."""

    def __init__(self, *containers):
        self.containers = containers
        self.seen = {name: self._lines(name) for name in containers}

    @staticmethod
    def _lines(name):
        proc = docker("logs", name, check=False)
        return proc.stdout.splitlines(), proc.stderr.splitlines()

    def new_lines(self):
        """Every line written since the window opened, stdout and stderr, all containers."""
        lines = []
        for name in self.containers:
            out, err = self._lines(name)
            old_out, old_err = self.seen[name]
            lines += out[len(old_out):] + err[len(old_err):]
        return lines

    def wait_for(self, needle, count=1, timeout=10.0):
        """New lines, once `count` of them contain needle (logs reach docker asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.new_lines()
            if sum(needle in line for line in lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)
