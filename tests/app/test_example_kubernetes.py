"""The example app's pod: what its Postgres dependency means for the probes, the manifest's password
file and the memory limit. The pod is the contract tests' (tests/pods.py), with the example's database
beside it because the rendered ConfigMap names PGHOST. Delete this file with the example."""

import threading
import time

import facts
import pods
import pytest
from dockertools import docker_or_fail, http, wait_for_status
from manifests import OVERLAYS, Rendered

# The contract tests' pod fixture (tests/pods.py), which pytest finds here by name.
pod = pods.pod


@pytest.fixture
def database_stopped(pod):
    """Postgres stopped for the test, started again after it."""
    assert pod.db, "the rendered ConfigMap names no PGHOST: no example database runs beside the pod"
    docker_or_fail("stop", pod.db)
    try:
        yield
    finally:
        docker_or_fail("start", pod.db)
        pod.wait_probe("readinessProbe", timeout=60)


@pytest.mark.docker
def test_readiness_probe_passes_with_database_up(pod):
    """With Postgres reachable at PGHOST and the Secret's password, readiness passes."""
    assert pod.probe("readinessProbe") == (True, 200)


@pytest.mark.docker
def test_startup_probe_passes_with_database_stopped(pod, database_stopped):
    """The startup probe (/healthz) does not wait on the database."""
    assert pod.probe("startupProbe") == (True, 200)


@pytest.mark.docker
def test_liveness_probe_passes_with_database_stopped(pod, database_stopped):
    """A database outage never makes the kubelet restart the app."""
    assert pod.probe("livenessProbe") == (True, 200)


@pytest.mark.docker
def test_readiness_probe_fails_with_database_stopped(pod, database_stopped):
    """The app's own 503 takes the pod out of the Service, within the probe's timeout."""
    assert pod.probe("readinessProbe") == (False, 503)


@pytest.mark.docker
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


@pytest.mark.docker
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


@pytest.mark.docker
def test_container_survives_load_within_the_memory_limit(pod):
    """A burst of requests on every route leaves the app running and not OOM-killed under the limit."""
    url = pod.url(pod.rendered.port("http"))
    for i in range(200):
        path = ("/", "/healthz", "/readyz", "/visits")[i % 4]
        assert (
            http(url + path, method="POST" if path == "/visits" else "GET", data=b"" if path == "/visits" else None)[0]
            == 200
        )
    state, used, limit = pod.memory()
    assert state["Running"] and not state["OOMKilled"], state
    assert used < limit / 2, f"{used} B of a {limit} B limit: the limit leaves too little room"


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request):
    """One overlay, rendered."""
    return Rendered(request.param)


@pytest.mark.lint
def test_password_reaches_the_pod_only_as_a_file(rendered):
    """No PGPASSWORD in the env; PGPASSWORD_FILE is a file of the Secret's volume."""
    env = rendered.env()
    assert "PGPASSWORD" not in env
    assert env["PGPASSWORD_FILE"] in rendered.secret_files()


@pytest.mark.lint
def test_readiness_probe_waits_longer_than_the_apps_connect_timeout(rendered):
    """Readiness waits longer than the app's connect_timeout, so the app's 503 is the answer."""
    assert rendered.probe("readinessProbe")[2] > facts.app_fact("CONNECT_TIMEOUT_S")
