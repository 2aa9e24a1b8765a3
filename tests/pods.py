"""An overlay's rendered pod run with the real docker CLI: each container of the Deployment as one `docker run`
with the flags that mean what its fields mean, its initContainers run to completion first, its probes
called as the kubelet calls them.

The `pod` fixture lives here, not in a conftest.py, so the contract tests (tests/test_kubernetes_contract.py)
and the example's own (tests/app/) each import it by name: deleting tests/app/ leaves the contract whole."""

import json
import secrets
import time
import urllib.error
import uuid

import pytest
from dockertools import IMAGE, POSTGRES_IMAGE, RUN_ID, docker_or_fail, http, inspect
from manifests import OVERLAYS, Rendered, quantity_bytes

FIXTURE_FOR_TAG = {"multi-stage": "multi_image", "distroless": "distroless_image"}
# Files and modes written into the pod's volumes by a root container, as the kubelet prepares them:
# the test itself needs no root. The app image's own Python does it, so no other image is needed.
PREPARE_VOLUMES = """
import json, os, sys
spec = json.load(sys.stdin)
for path, (mode, gid) in spec["dirs"].items():
    os.chown(path, 0, gid)
    os.chmod(path, mode)
for path, (mode, gid) in spec["files"].items():
    with open(path, "w") as f:
        f.write(spec["secret"])
    os.chown(path, 0, gid)
    os.chmod(path, mode)
"""


def kubelet_uid_gid(rendered, image_user, container=None):
    """(uid, gid) the kubelet starts the container as, refusing as it would under runAsNonRoot."""
    user, _, group = image_user.partition(":")
    uid, gid = rendered.security("runAsUser", container), rendered.security("runAsGroup", container)
    non_root = rendered.security("runAsNonRoot", container)
    if uid is None:
        # The kubelet can't map a name to a UID: a name-only USER fails runAsNonRoot.
        assert not non_root or user.isdigit(), f"runAsNonRoot with USER {image_user!r}"
        uid = int(user or 0)
    if gid is None:
        gid = int(group) if group.isdigit() else 0
    assert not (non_root and uid == 0), "the kubelet refuses runAsNonRoot with UID 0"
    return uid, gid


def docker_run_flags(rendered, container, image_user, volumes):
    """`docker run` flags equivalent to the container's securityContext, resources, env, volumes and ports;
    volumes maps a pod volume's name to the docker volume that stands for it."""
    uid, gid = kubelet_uid_gid(rendered, image_user, container)
    flags = ["--user", f"{uid}:{gid}"]
    if rendered.security("fsGroup", container) is not None:
        flags += ["--group-add", str(rendered.security("fsGroup", container))]
    if rendered.security("readOnlyRootFilesystem", container):
        flags.append("--read-only")
    if rendered.security("allowPrivilegeEscalation", container) is False:
        flags += ["--security-opt", "no-new-privileges"]
    for cap in container.get("securityContext", {}).get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", cap]
    # RuntimeDefault is docker's default seccomp profile; only Unconfined would need a flag.
    assert rendered.security("seccompProfile", container) in (None, {"type": "RuntimeDefault"})
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        flags += ["--memory", str(quantity_bytes(limits["memory"]))]
    for name, value in rendered.env(container).items():
        flags += ["--env", f"{name}={value}"]
    for volume, mount in rendered.volume_mounts("emptyDir", container):
        empty_dir, path = volume["emptyDir"], mount["mountPath"]
        if empty_dir.get("medium") == "Memory":
            # A tmpfs, world-writable as the kubelet makes an emptyDir (0777).
            size = empty_dir.get("sizeLimit")
            flags += ["--tmpfs", f"{path}:mode=1777" + (f",size={quantity_bytes(size)}" if size else "")]
        else:
            # On disk: a volume every container of the pod shares, empty (nocopy: the image's directory
            # at that path is not copied in, as the kubelet copies nothing). Docker can't cap its size:
            # sizeLimit is an eviction threshold of the kubelet, not mapped here.
            flags += ["--mount", f"type=volume,src={volumes[volume['name']]},dst={path},volume-nocopy"]
    # A secret volume is a directory, as the kubelet mounts it, with the Secret's files in it.
    for volume, mount in rendered.volume_mounts("secret", container):
        flags += ["--volume", f"{volumes[volume['name']]}:{mount['mountPath']}:ro"]
    for port in container.get("ports", []):
        flags += ["--publish", f"127.0.0.1::{port['containerPort']}"]
    return flags


def entrypoint_and_args(container):
    """(flags, arguments after the image) for the container's command and args: command replaces the
    image's ENTRYPOINT and args its CMD, as in Kubernetes."""
    command, args = container.get("command"), container.get("args", [])
    if command is None:
        return [], args
    return ["--entrypoint", command[0]], [*command[1:], *args]


def parse_docker_size(text):
    """Bytes in a docker stats size such as 58.2MiB."""
    units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 10**3, "MB": 10**6, "GB": 10**9}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise AssertionError(f"unknown size {text!r}")


class Pod:
    """The overlay's pod on a private network: its volumes, its initContainers run to completion, then its
    app container; beside it the example's Postgres where the pod's ConfigMap names one."""

    def __init__(self, rendered, image, workdir):
        self.rendered, self.image = rendered, image
        self.env = rendered.env()
        self.prefix = f"pyslim-test-{RUN_ID}-k8s-{rendered.overlay}"
        self.db = None
        self.secret = secrets.token_urlsafe(16)
        self.volumes = {}
        self.network = docker_or_fail("network", "create", self.prefix).stdout.strip()
        try:
            self.create_volumes()
            # PGHOST is libpq's: a database is the example app's dependency, not the template's, so an
            # app whose ConfigMap names none runs alone.
            if "PGHOST" in self.env:
                self.start_database(workdir)
            self.image_user = inspect(image)["Config"]["User"]
            for container in rendered.init_containers:
                self.run_init_until_it_succeeds(container)
            self.flags = docker_run_flags(rendered, rendered.container, self.image_user, self.volumes)
            self.name = self.start()
        except BaseException:
            self.remove()
            raise

    def create_volumes(self):
        """A docker volume for each disk-backed emptyDir and each secret volume, prepared as the kubelet
        prepares them: emptyDirs empty, 0777 and group fsGroup (setgid); the Secret's files root-owned,
        group fsGroup, the Secret's mode, holding self.secret."""
        group = self.rendered.security("fsGroup") or 0
        spec, mounts = {"secret": self.secret, "dirs": {}, "files": {}}, []
        for volume in self.rendered.pod.get("volumes", []):
            disk = "emptyDir" in volume and volume["emptyDir"].get("medium") != "Memory"
            if not (disk or "secret" in volume):
                continue
            self.volumes[volume["name"]] = docker_or_fail(
                "volume", "create", f"{self.prefix}-{volume['name']}"
            ).stdout.strip()
            mounts += ["--volume", f"{self.volumes[volume['name']]}:/volumes/{volume['name']}"]
            if disk:
                spec["dirs"][f"/volumes/{volume['name']}"] = (0o2777 if group else 0o777, group)
            else:
                default_mode = volume["secret"].get("defaultMode", 0o644)
                for item in volume["secret"]["items"]:
                    path = f"/volumes/{volume['name']}/{item['path']}"
                    spec["files"][path] = (item.get("mode", default_mode), group)
        if mounts:
            docker_or_fail(
                "run", "--rm", "--interactive", "--user", "0", "--network", "none", *mounts,
                "--entrypoint", "python", self.image, "-c", PREPARE_VOLUMES,
                input=json.dumps(spec), timeout=60,
            )  # fmt: skip

    def start_database(self, workdir):
        """Postgres on the network as PGHOST, with PGUSER and PGDATABASE, its password the Secret's."""
        self.db = f"{self.prefix}-db"
        db_file = workdir / "db_password"
        db_file.write_text(self.secret)
        db_file.chmod(0o644)
        docker_or_fail(
            "run", "--detach", "--name", self.db, "--network", self.network,
            "--network-alias", self.env["PGHOST"],
            "--env", f"POSTGRES_USER={self.env['PGUSER']}",
            "--env", f"POSTGRES_DB={self.env['PGDATABASE']}",
            "--env", "POSTGRES_PASSWORD_FILE=/run/secrets/db_password",
            "--volume", f"{db_file}:/run/secrets/db_password:ro",
            POSTGRES_IMAGE,
        )  # fmt: skip

    def run_init(self, container):
        """One run of an initContainer to its exit (docker run --rm): the completed process."""
        # The overlay's `images:` names one image for every container; the test built it as self.image.
        assert container["image"] == self.rendered.container["image"], container["image"]
        entrypoint, args = entrypoint_and_args(container)
        flags = docker_run_flags(self.rendered, container, self.image_user, self.volumes)
        return docker_or_fail(
            "run", "--rm", "--name", f"{self.prefix}-init-{uuid.uuid4().hex[:6]}", "--network", self.network,
            *flags, *entrypoint, self.image, *args, check=False, timeout=120,
        )  # fmt: skip

    def run_init_until_it_succeeds(self, container, timeout=60.0):
        """Run the initContainer again until it exits 0, as the kubelet restarts a failed one (a database
        still starting, say); fail after timeout, as the app container would never start. The kubelet
        backs off 10 s, 20 s, ...; once a second reaches the same end sooner."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.run_init(container)
            if proc.returncode == 0:
                return proc
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"initContainer {container['name']} never exited 0 ({proc.returncode}), "
                    f"so the app container would never start:\n{proc.stdout}\n{proc.stderr}"
                )
            time.sleep(1)

    def start(self):
        """Start one more app container of the pod; return its name."""
        name = f"{self.prefix}-web-{uuid.uuid4().hex[:6]}"
        entrypoint, args = entrypoint_and_args(self.rendered.container)
        docker_or_fail(
            "run", "--detach", "--name", name, "--network", self.network, *self.flags, *entrypoint, self.image, *args
        )
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

    def memory(self):
        """(.State, bytes in use, the memory limit in bytes) of the app container now."""
        state = json.loads(docker_or_fail("inspect", "--format", "{{json .State}}", self.name).stdout)
        usage = json.loads(docker_or_fail("stats", "--no-stream", "--format", "{{json .}}", self.name).stdout)
        used = parse_docker_size(usage["MemUsage"].split("/")[0].strip())
        return state, used, quantity_bytes(self.rendered.container["resources"]["limits"]["memory"])

    def remove(self):
        """Remove every container of the pod, its network and its volumes."""
        names = docker_or_fail("ps", "--all", "--quiet", "--filter", f"name={self.prefix}-").stdout.split()
        if names:
            docker_or_fail("rm", "--force", "--volumes", *names, check=False)
        docker_or_fail("network", "rm", self.network, check=False)
        if self.volumes:
            docker_or_fail("volume", "rm", "--force", *self.volumes.values(), check=False)


@pytest.fixture(scope="module", params=OVERLAYS)
def pod(request, tmp_path_factory):
    """The overlay's rendered pod running its image (built this session), once its startup probe passed
    (the kubelet calls the other probes only then)."""
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
        # Waits only: whether each probe passes is a test's to say (test_kubernetes_contract.py).
        pod.wait_probe("startupProbe", timeout=30)
        pod.wait_probe("readinessProbe", timeout=20)
        yield pod
    finally:
        pod.remove()
