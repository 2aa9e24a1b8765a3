"""The rendered manifest against the real image: each overlay's pod is run with the docker flags that
mean what its fields mean, next to a real Postgres, and its probes are called as the kubelet calls
them. A port, a path, the UID or the /tmp mount changed in the Dockerfile or the manifest fails here."""

import json
import os
import secrets
import subprocess
import threading
import time
import urllib.error
import uuid

import pytest
from dockertools import IMAGE, POSTGRES_IMAGE, RUN_ID, docker_or_fail, http, inspect, wait_for_status
from manifests import OVERLAYS, Rendered, quantity_bytes

pytestmark = pytest.mark.docker
FIXTURE_FOR_TAG = {"multi-stage": "multi_image", "distroless": "distroless_image"}


def kubelet_uid_gid(rendered, image_user):
    """(uid, gid) the kubelet starts the container as, refusing as it would under runAsNonRoot."""
    user, _, group = image_user.partition(":")
    uid, gid = rendered.security("runAsUser"), rendered.security("runAsGroup")
    if uid is None:
        # The kubelet can't map a name to a UID: a name-only USER fails runAsNonRoot.
        assert not rendered.security("runAsNonRoot") or user.isdigit(), f"runAsNonRoot with USER {image_user!r}"
        uid = int(user or 0)
    if gid is None:
        gid = int(group) if group.isdigit() else 0
    assert not (rendered.security("runAsNonRoot") and uid == 0), "the kubelet refuses runAsNonRoot with UID 0"
    return uid, gid


def docker_run_flags(rendered, image_user, secret_volume):
    """`docker run` flags equivalent to the rendered pod's securityContext, resources, env and volumes."""
    uid, gid = kubelet_uid_gid(rendered, image_user)
    flags = ["--user", f"{uid}:{gid}"]
    if rendered.security("fsGroup") is not None:
        flags += ["--group-add", str(rendered.security("fsGroup"))]
    if rendered.security("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if rendered.security("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    for cap in rendered.container.get("securityContext", {}).get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", cap]
    # RuntimeDefault is docker's default seccomp profile; only Unconfined would need a flag.
    assert rendered.security("seccompProfile") in (None, {"type": "RuntimeDefault"})
    limits = rendered.container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        flags += ["--memory", str(quantity_bytes(limits["memory"]))]
    for name, value in rendered.env().items():
        flags += ["--env", f"{name}={value}"]
    for volume, mount in rendered.volume_mounts("emptyDir"):
        size = volume["emptyDir"].get("sizeLimit")
        # emptyDir is world-writable (the kubelet makes it 0777); medium Memory is a tmpfs.
        assert volume["emptyDir"].get("medium") == "Memory", "a disk-backed emptyDir has no tmpfs equivalent here"
        flags += ["--tmpfs", f"{mount['mountPath']}:mode=1777" + (f",size={quantity_bytes(size)}" if size else "")]
    # The secret volume is a directory, as the kubelet mounts it, with the Secret's files in it.
    (directory,) = {os.path.dirname(path) for path in rendered.secret_files()}
    flags += ["--volume", f"{secret_volume}:{directory}:ro"]
    for port in rendered.container["ports"]:
        flags += ["--publish", f"127.0.0.1::{port['containerPort']}"]
    return flags


class Pod:
    """The overlay's pod as one container on a private network, next to a Postgres reachable by PGHOST."""

    def __init__(self, rendered, image, workdir):
        self.rendered, self.image = rendered, image
        self.env = rendered.env()
        self.prefix = f"pyslim-test-{RUN_ID}-k8s-{rendered.overlay}"
        self.db = f"{self.prefix}-db"
        self.secret_volume = f"{self.prefix}-secret"
        self.network = docker_or_fail("network", "create", self.prefix).stdout.strip()
        try:
            self.start_database(workdir)
            self.flags = docker_run_flags(rendered, inspect(image)["Config"]["User"], self.secret_volume)
            self.name = self.start()
        except BaseException:
            self.remove()
            raise

    def start_database(self, workdir):
        """Postgres on the network as PGHOST, with PGUSER and PGDATABASE; the app's secret volume."""
        password = secrets.token_urlsafe(16)
        db_file = workdir / "db_password"
        db_file.write_text(password)
        db_file.chmod(0o644)
        # The app's copy is what the kubelet projects: root-owned, group fsGroup, the Secret's mode.
        # Written by a root container into a volume, so the test needs no root of its own.
        group = self.rendered.security("fsGroup") or 0
        script = "".join(
            f'cat > "/secret/{os.path.basename(path)}" < /secret.in && '
            f'chown 0:{group} "/secret/{os.path.basename(path)}" && chmod {mode:o} "/secret/{os.path.basename(path)}" && '
            for path, mode in self.rendered.secret_files().items()
        )
        docker_or_fail("volume", "create", self.secret_volume)
        fill = subprocess.run(
            ["docker", "run", "--rm", "--interactive", "--user", "0", "--network", "none",
             "--volume", f"{self.secret_volume}:/secret", "--entrypoint", "sh", POSTGRES_IMAGE,
             "-c", "cat > /secret.in && " + script + "rm /secret.in"],
            input=password, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert fill.returncode == 0, fill.stderr
        docker_or_fail(
            "run", "--detach", "--name", self.db, "--network", self.network,
            "--network-alias", self.env["PGHOST"],
            "--env", f"POSTGRES_USER={self.env['PGUSER']}",
            "--env", f"POSTGRES_DB={self.env['PGDATABASE']}",
            "--env", "POSTGRES_PASSWORD_FILE=/run/secrets/db_password",
            "--volume", f"{db_file}:/run/secrets/db_password:ro",
            POSTGRES_IMAGE,
        )  # fmt: skip

    def start(self):
        """Start one more container of the pod; return its name."""
        name = f"{self.prefix}-web-{uuid.uuid4().hex[:6]}"
        docker_or_fail("run", "--detach", "--name", name, "--network", self.network, *self.flags, self.image)
        return name

    def url(self, port, name=None):
        """http://127.0.0.1:<published> for a container port."""
        published = docker_or_fail("port", name or self.name, f"{port}/tcp").stdout.splitlines()[0]
        return "http://127.0.0.1:" + published.rsplit(":", 1)[1]

    def probe(self, kind):
        """(passed, status) of one call of the probe, as the kubelet makes it: GET with the probe's
        timeout; 200-399 passes; a timeout or a refused connection fails."""
        path, port, timeout = self.rendered.probe(kind)
        try:
            status = http(self.url(port) + path, timeout=timeout)[0]
        except (OSError, urllib.error.URLError) as exc:
            return False, repr(exc)
        return 200 <= status < 400, status

    def wait_probe(self, kind, timeout=30.0):
        """Call the probe once a second until it passes; fail after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.probe(kind)
            if result[0] or time.monotonic() > deadline:
                return result
            time.sleep(1)

    def started_at(self):
        """When the app container last started (a restart changes it)."""
        return docker_or_fail("inspect", "--format", "{{.State.StartedAt}}", self.name).stdout.strip()

    def logs(self):
        """What the app container wrote."""
        proc = docker_or_fail("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def remove(self):
        """Remove every container of the pod and its network."""
        names = docker_or_fail("ps", "--all", "--quiet", "--filter", f"name={self.prefix}-").stdout.split()
        if names:
            docker_or_fail("rm", "--force", "--volumes", *names, check=False)
        docker_or_fail("network", "rm", self.network, check=False)
        docker_or_fail("volume", "rm", "--force", self.secret_volume, check=False)


@pytest.fixture(scope="module", params=OVERLAYS)
def pod(request, tmp_path_factory):
    """The overlay's rendered pod running its image (built this session), serving once ready."""
    rendered = Rendered(request.param)
    name, _, tag = rendered.container["image"].rpartition(":")
    # Run the overlay's tag under make's IMAGE, so a shared engine's other images stay untouched.
    assert name == "pyslim" and tag in FIXTURE_FOR_TAG, rendered.container["image"]
    image = request.getfixturevalue(FIXTURE_FOR_TAG[tag])
    assert image == f"{IMAGE}:{tag}"
    workdir = tmp_path_factory.mktemp(f"k8s-{tag}")
    workdir.chmod(0o755)
    pod = Pod(rendered, image, workdir)
    try:
        passed, status = pod.wait_probe("readinessProbe", timeout=20)
        assert passed, f"{status}\n{pod.logs()}"
        yield pod
    finally:
        pod.remove()


@pytest.fixture
def database_stopped(pod):
    """Postgres stopped for the test, started again after it."""
    docker_or_fail("stop", pod.db)
    try:
        yield
    finally:
        docker_or_fail("start", pod.db)
        pod.wait_probe("readinessProbe", timeout=60)


def test_pod_runs_as_the_image_user(pod):
    """runAsUser:runAsGroup equal the image's numeric USER, and the process runs as that UID."""
    image_user = inspect(pod.image)["Config"]["User"]
    uid, gid = kubelet_uid_gid(pod.rendered, image_user)
    assert image_user == f"{uid}:{gid}"
    rows = docker_or_fail("top", pod.name, "-o", "pid,uid").stdout.splitlines()[1:]
    assert rows and {row.split()[1] for row in rows} == {str(uid)}, rows


def test_container_port_is_the_port_the_image_exposes(pod):
    """Every containerPort is one the image EXPOSEs."""
    exposed = set(inspect(pod.image)["Config"]["ExposedPorts"])
    assert {f"{port['containerPort']}/tcp" for port in pod.rendered.container["ports"]} <= exposed


def test_readiness_probe_passes_with_database_up(pod):
    """With Postgres reachable at PGHOST and the Secret's password, readiness passes."""
    assert pod.probe("readinessProbe") == (True, 200)


def test_tempfile_writes_to_the_tmp_mount(pod):
    """On the read-only root, Python's tempfile picks the emptyDir's mountPath and can write there."""
    mounts = [mount["mountPath"] for _, mount in pod.rendered.volume_mounts("emptyDir")]
    code = "import tempfile; f = tempfile.TemporaryFile(); f.write(b'x'); print(tempfile.gettempdir())"
    proc = docker_or_fail("exec", pod.name, "python", "-c", code, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in mounts, (proc.stdout, mounts)


def test_startup_probe_passes_with_database_stopped(pod, database_stopped):
    """The startup probe (/healthz) does not wait on the database."""
    assert pod.probe("startupProbe") == (True, 200)


def test_liveness_probe_passes_with_database_stopped(pod, database_stopped):
    """A database outage never makes the kubelet restart the app."""
    assert pod.probe("livenessProbe") == (True, 200)


def test_readiness_probe_fails_with_database_stopped(pod, database_stopped):
    """The app's own 503 takes the pod out of the Service, within the probe's timeout."""
    assert pod.probe("readinessProbe") == (False, 503)


def test_readiness_probe_passes_again_when_database_is_back(pod):
    """Postgres stopped, then started: readiness passes again, and the app was never restarted."""
    started = pod.started_at()
    docker_or_fail("stop", pod.db)
    try:
        assert pod.probe("readinessProbe")[0] is False
    finally:
        docker_or_fail("start", pod.db)
    assert pod.wait_probe("readinessProbe") == (True, 200)
    assert pod.started_at() == started


def test_gunicorn_refuses_new_connections_once_sigterm_arrives(pod):
    """Why the preStop sleep: after SIGTERM a request in flight is answered, but a new connection,
    the kind kube-proxy still routes here until the endpoint is gone, is not served."""
    assert pod.rendered.container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    name = pod.start()
    url = pod.url(pod.rendered.port("http"), name)
    in_flight = {}

    def slow_request():
        # With the database frozen, /readyz holds a worker for the 3 s connect_timeout.
        in_flight["status"] = http(url + "/readyz", timeout=10)[0]

    docker_or_fail("pause", pod.db)
    try:
        wait_for_status(url + "/healthz")
        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.5)
        docker_or_fail("kill", "--signal", "TERM", name)
        time.sleep(0.3)
        with pytest.raises(OSError):
            http(url + "/healthz", timeout=5)
        thread.join(timeout=15)
    finally:
        docker_or_fail("unpause", pod.db)
        docker_or_fail("rm", "--force", name, check=False)
    assert in_flight.get("status") == 503


def test_container_survives_load_within_the_memory_limit(pod):
    """A burst of requests on every route leaves the app running and not OOM-killed under the limit."""
    url = pod.url(pod.rendered.port("http"))
    for i in range(200):
        path = ("/", "/healthz", "/readyz", "/visits")[i % 4]
        assert (
            http(url + path, method="POST" if path == "/visits" else "GET", data=b"" if path == "/visits" else None)[0]
            == 200
        )
    state = json.loads(docker_or_fail("inspect", "--format", "{{json .State}}", pod.name).stdout)
    assert state["Running"] and not state["OOMKilled"], state
    usage = docker_or_fail("stats", "--no-stream", "--format", "{{json .}}", pod.name).stdout
    limit = quantity_bytes(pod.rendered.container["resources"]["limits"]["memory"])
    used = json.loads(usage)["MemUsage"].split("/")[0].strip()
    assert parse_docker_size(used) < limit / 2, f"{used} of a {limit} B limit: the limit leaves too little room"


def parse_docker_size(text):
    """Bytes in a docker stats size such as 58.2MiB."""
    units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 10**3, "MB": 10**6, "GB": 10**9}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise AssertionError(f"unknown size {text!r}")
