"""The rendered manifest against the real image: each overlay's pod is run with the docker flags that
mean what its fields mean (tests/pods.py), its initContainer first, and its probes are called as the
kubelet calls them. A port, a path, the UID, a mount or the setup step changed in the Dockerfile, the
manifest or the app contract (gunicorn.conf.py) fails here. The example app's own pod tests, with its
database stopped and paused, are in tests/app/test_example_kubernetes.py."""

import facts
import pods
import pytest
from dockertools import docker_or_fail, http, inspect
from pods import kubelet_uid_gid

pytestmark = pytest.mark.docker
# The pod fixture (tests/pods.py), which pytest finds here by name; the example's tests bind it the same way.
pod = pods.pod
PROBES = ["startupProbe", "livenessProbe", "readinessProbe"]


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


@pytest.mark.parametrize("kind", PROBES)
def test_probe_answers_200(pod, kind):
    """Each probe, called on its own path and port within its own timeout, gets the 200 the contract
    promises once setup has run (gunicorn.conf.py: health_path, ready_path)."""
    assert pod.probe(kind) == (True, 200), pod.logs()


def test_tempfile_writes_to_the_tmp_mount(pod):
    """On the read-only root, Python's tempfile picks the emptyDir's mountPath and can write there."""
    mounts = [mount["mountPath"] for _, mount in pod.rendered.volume_mounts("emptyDir")]
    code = "import tempfile; f = tempfile.TemporaryFile(); f.write(b'x'); print(tempfile.gettempdir())"
    proc = docker_or_fail("exec", pod.name, "python", "-c", code, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in mounts, (proc.stdout, mounts)


def test_data_dir_is_a_disk_backed_empty_dir(pod):
    """The app's $DATA_DIR is the mountPath of an emptyDir on disk: its state is out of the read-only
    root and out of RAM (the memory limit), and outlives a restart of the container."""
    code = "import os; print(os.environ['DATA_DIR'])"
    data_dir = docker_or_fail("exec", pod.name, "python", "-c", code).stdout.strip()
    on_disk = [
        m["mountPath"] for v, m in pod.rendered.volume_mounts("emptyDir") if v["emptyDir"].get("medium") != "Memory"
    ]
    assert data_dir in on_disk, (data_dir, on_disk)


def test_app_user_can_write_the_data_dir(pod):
    """The app, as the pod runs it, creates and removes a file in $DATA_DIR."""
    code = "import os; p = os.path.join(os.environ['DATA_DIR'], 'write-test'); open(p, 'w').write('x'); os.remove(p)"
    proc = docker_or_fail("exec", pod.name, "python", "-c", code, check=False)
    assert proc.returncode == 0, proc.stderr


def test_setup_runs_again_cleanly(pod):
    """Every replica, and every restarted pod, runs the initContainers again on what the first run left:
    a second run of the setup exits 0 at once. (The first had to exit 0 for the app to start at all.)"""
    assert pod.rendered.init_containers, "no initContainer runs the setup step"
    for container in pod.rendered.init_containers:
        proc = pod.run_init(container)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_warm_path_answers_below_500(pod):
    """After setup, each page the contract lists (warm_paths) answers without a server error."""
    url = pod.url(pod.rendered.port("http"))
    statuses = {path: http(url + path)[0] for path in facts.contract()["warm_paths"]}
    assert all(status < 500 for status in statuses.values()), statuses


def test_burst_stays_within_half_the_memory_limit(pod):
    """200 requests on the probes' paths and every warm path, each below 500, leave the app running,
    not OOM-killed, using under half its memory limit: the limit leaves room for a worker being replaced."""
    contract = facts.contract()
    paths = [contract["health_path"], contract["ready_path"], *contract["warm_paths"]]
    url = pod.url(pod.rendered.port("http"))
    for i in range(200):
        status = http(url + paths[i % len(paths)])[0]
        assert status < 500, (paths[i % len(paths)], status)
    state, used, limit = pod.memory()
    assert state["Running"] and not state["OOMKilled"], state
    assert used < limit / 2, f"{used} B of a {limit} B limit: the limit leaves too little room"
